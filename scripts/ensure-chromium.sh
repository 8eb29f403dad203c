#!/usr/bin/env bash
# The browser tests drive Debian's Chromium (playwright-core, no browser download). Installs it
# on a fresh machine (as root, from Debian's packages); `npm test` runs this first.
set -euo pipefail
CHROMIUM="${CHROMIUM_PATH:-/usr/bin/chromium}"
[ -x "$CHROMIUM" ] && exit 0
if [ "$(id -u)" != 0 ] || ! command -v apt-get >/dev/null; then
  echo "Chromium is missing at $CHROMIUM: install Debian's chromium package (or set CHROMIUM_PATH)" >&2
  exit 1
fi
echo "installing Debian's chromium for the browser tests"
apt-get update -qq
DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null
