#!/usr/bin/env bash
# Gets VictoriaMetrics (an OTLP/HTTP protobuf receiver that answers PromQL) for test/otel*.test.ts.
# Debian bookworm's package (1.79) predates OTLP ingestion (1.92), so the trixie package is fetched
# with a private apt configuration and unpacked with dpkg -x: nothing on the system changes.
# Idempotent. Prints the binary's path. Tests find it at the same default path (or $VICTORIA_METRICS_BIN).
set -euo pipefail

dest="${MISTRAL_USAGE_OTEL_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/mistral-usage-log/victoria-metrics}"
bin="$dest/vm/usr/bin/victoria-metrics"
if [ -x "$bin" ]; then
  echo "$bin"
  exit 0
fi

mkdir -p "$dest/lists/partial" "$dest/cache/archives/partial"
mirror="$(awk '/^URIs:/{print $2; exit}' /etc/apt/sources.list.d/debian.sources 2>/dev/null || true)"
mirror="${mirror:-http://deb.debian.org/debian}"
echo "deb [signed-by=/usr/share/keyrings/debian-archive-keyring.gpg] $mirror trixie main" > "$dest/sources.list"
apt_opts=(-o "Dir::Etc::SourceList=$dest/sources.list" -o Dir::Etc::SourceParts=/dev/null
  -o "Dir::State::Lists=$dest/lists" -o "Dir::Cache=$dest/cache" -o Debug::NoLocking=1)
apt-get "${apt_opts[@]}" update >&2
(cd "$dest" && apt-get "${apt_opts[@]}" download victoria-metrics >&2)
rm -rf "$dest/vm"
dpkg -x "$(ls "$dest"/victoria-metrics_*.deb | head -n 1)" "$dest/vm"
rm -f "$dest"/victoria-metrics_*.deb
rm -rf "$dest/lists" "$dest/cache"
"$bin" -version >&2
echo "$bin"
