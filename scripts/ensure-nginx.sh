#!/usr/bin/env bash
# The scale-out tests run several gateways behind Debian's nginx (deploy/nginx.conf). Installs
# it on a fresh machine (as root, from Debian's packages); `npm test` runs this first.
set -euo pipefail
NGINX="${NGINX_PATH:-/usr/sbin/nginx}"
[ -x "$NGINX" ] && exit 0
if [ "$(id -u)" != 0 ] || ! command -v apt-get >/dev/null; then
  echo "nginx is missing at $NGINX: install Debian's nginx-light package (or set NGINX_PATH)" >&2
  exit 1
fi
echo "installing Debian's nginx for the scale-out tests"
apt-get update -qq
DEBIAN_FRONTEND=noninteractive apt-get install -y -qq nginx-light >/dev/null
# The package starts a system nginx on port 80; the tests run their own.
(service nginx stop || nginx -s stop || true) >/dev/null 2>&1
