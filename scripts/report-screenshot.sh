#!/usr/bin/env bash
# Takes a headless-Chromium screenshot of a hallmark report, as a reader would see it.
#
#   scripts/report-screenshot.sh REPORT_DIR OUT.png [WIDTH,HEIGHT]
#
# REPORT_DIR holds index.html (written by `hallmark report RUN --out REPORT_DIR`). Installs Debian's
# `chromium` when it is missing (apt-get; needs root). The page is opened from disk with networking
# features off; the script fails if Chromium exits non-zero, writes no PNG, or logs an error about the
# page (a failed load, a refused or blocked request, a console error).
set -euo pipefail

if [[ $# -lt 2 || $# -gt 3 ]]; then
    echo "usage: $0 REPORT_DIR OUT.png [WIDTH,HEIGHT]" >&2
    exit 2
fi
report_dir=$1
out=$2
size=${3:-1280,4000}
index="$report_dir/index.html"
if [[ ! -f $index ]]; then
    echo "$0: no $index (write the report first: hallmark report RUN --out $report_dir)" >&2
    exit 2
fi

browser=""
for candidate in chromium chromium-browser; do
    if command -v "$candidate" >/dev/null 2>&1; then
        browser=$candidate
        break
    fi
done
if [[ -z $browser ]]; then
    echo "$0: installing Debian's chromium" >&2
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq chromium >/dev/null
    browser=chromium
fi

# The page must stand alone: no scripts, nothing loaded from elsewhere (the SVG namespace is a name,
# not a load).
outside=$(sed 's#http://www.w3.org/2000/svg##g' "$index" | grep -o -i -E '<script|https?://[^"<> ]*|url\(|<img[^>]*>|<link[^>]*>|<iframe' | sort -u | head -n 5 || true)
if [[ -n $outside ]]; then
    echo "$0: $index is not self-contained:" >&2
    echo "$outside" >&2
    exit 1
fi

abs_index=$(cd "$(dirname "$index")" && pwd)/$(basename "$index")
out_abs=$(cd "$(dirname "$out")" && pwd)/$(basename "$out")
profile=$(mktemp -d)
log=$(mktemp)
trap 'rm -rf "$profile" "$log"' EXIT
rm -f "$out_abs"

status=0
timeout 120 "$browser" --headless --no-sandbox --disable-gpu --disable-quic --no-first-run \
    --disable-background-networking --disable-component-update --disable-sync \
    --disable-default-apps --disable-extensions --hide-scrollbars \
    --user-data-dir="$profile" --window-size="$size" --enable-logging=stderr --v=0 \
    --screenshot="$out_abs" "file://$abs_index" >"$log" 2>&1 || status=$?

# Errors about the page itself: any console message (the report has no scripts, so there should be
# none), a failed or refused load. Chromium's own start-up chatter in a container (D-Bus, the
# sandbox, GPU probing) is not about the page and is ignored.
page_errors=$(grep -E ':CONSOLE|net::ERR_|Failed to load|Refused to|Not allowed to load|Uncaught' "$log" || true)
if [[ $status -ne 0 || ! -s $out_abs || -n $page_errors ]]; then
    echo "$0: chromium failed (exit $status) on $abs_index" >&2
    [[ -n $page_errors ]] && echo "$page_errors" >&2
    tail -n 30 "$log" >&2
    exit 1
fi
echo "screenshot of $abs_index ($size) written to $out_abs"
