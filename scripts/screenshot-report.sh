#!/usr/bin/env bash
# Render a workbench HTML report in headless Chromium and save a PNG, to check it by eye.
# Usage: scripts/screenshot-report.sh [report.html] [out.png] [width,height]
# Defaults: tmp/workbench-report.html, tmp/workbench-report.png, 1400,2000.
# Needs chromium (Debian: apt-get install -y chromium). No network is used.
set -euo pipefail
report="${1:-tmp/workbench-report.html}"
out="${2:-tmp/workbench-report.png}"
size="${3:-1400,2000}"
browser="$(command -v chromium || command -v chromium-browser || command -v google-chrome || true)"
if [ -z "$browser" ]; then
  echo "screenshot-report: chromium not found (apt-get install -y chromium)" >&2
  exit 3
fi
if [ ! -f "$report" ]; then
  echo "screenshot-report: no report at $report (run npm start first)" >&2
  exit 2
fi
profile="$(mktemp -d)"
trap 'rm -rf "$profile"' EXIT
mkdir -p "$(dirname "$out")"
"$browser" --headless --no-sandbox --disable-gpu --disable-background-networking --disable-component-update \
  --disable-sync --no-first-run --hide-scrollbars --user-data-dir="$profile" \
  --screenshot="$(realpath -m "$out")" --window-size="$size" "file://$(realpath "$report")" >/dev/null 2>&1
test -s "$out"
echo "$out"
