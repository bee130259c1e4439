#!/usr/bin/env bash
# The proxy tests (test/proxy*.test.ts) run real Python clients and curl: Debian's python3-requests and
# python3-httpx under /usr/bin/python3 (a pyenv python3 earlier on PATH does not have them), and curl.
# Idempotent: installs only what is missing.
set -euo pipefail
missing=()
/usr/bin/python3 -c 'import requests' 2>/dev/null || missing+=(python3-requests)
/usr/bin/python3 -c 'import httpx' 2>/dev/null || missing+=(python3-httpx)
command -v curl >/dev/null 2>&1 || missing+=(curl)
command -v openssl >/dev/null 2>&1 || missing+=(openssl)
if [ "${#missing[@]}" -gt 0 ]; then
  echo "== apt-get install ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${missing[@]}" python3 >/dev/null
fi
