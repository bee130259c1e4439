#!/usr/bin/env bash
# Debian's chromium, for the test that opens `mistral-usage report --html` in a real browser
# (test/cli/report-html.test.ts). Idempotent; needs only apt. When it cannot be installed the test
# skips with a message saying so.
set -uo pipefail
if command -v chromium >/dev/null 2>&1; then
  echo "chromium: $(chromium --version 2>/dev/null || echo present)"
  exit 0
fi
if [ "$(id -u)" != "0" ] || ! command -v apt-get >/dev/null 2>&1; then
  echo "chromium: not installed and cannot apt-get install it here; the browser test will skip"
  exit 0
fi
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq || true
if apt-get install -y -qq --no-install-recommends chromium fonts-dejavu-core >/dev/null; then
  echo "chromium: $(chromium --version 2>/dev/null || echo installed)"
else
  echo "chromium: apt-get install failed; the browser test will skip"
fi
exit 0
