#!/usr/bin/env bash
# Gets Bun and Deno for test/runtimes.test.ts: the npm registry ships their real binaries inside
# platform packages (@oven/bun-linux-x64: package/bin/bun; @deno/linux-x64-glibc: package/deno).
# They are unpacked into a cache folder outside the repo, never made dependencies of the package.
# Idempotent. Prints the binaries' paths. Tests find them at the same default paths (or $BUN_BIN, $DENO_BIN).
set -euo pipefail

dest="${MISTRAL_USAGE_RUNTIMES_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/mistral-usage-log/runtimes}"
fetch() { # NAME PACKAGE@RANGE BINARY-IN-PACKAGE
  local dir="$dest/$1" bin="$dest/$1/package/$3"
  if [ ! -x "$bin" ]; then
    rm -rf "$dir" && mkdir -p "$dir"
    (cd "$dir" && npm pack --silent "$2" >/dev/null && tar xzf ./*.tgz && rm -f ./*.tgz)
    "$bin" --version >&2
  fi
  echo "$bin"
}
fetch bun "@oven/bun-linux-x64@1" bin/bun
fetch deno "@deno/linux-x64-glibc@2" deno
