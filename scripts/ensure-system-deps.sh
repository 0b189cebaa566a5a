#!/usr/bin/env bash
# Installs the system packages the tests and `make run` need (mosquitto, its clients), or says exactly what to install.
set -euo pipefail
missing=()
command -v mosquitto >/dev/null 2>&1 || [ -x /usr/sbin/mosquitto ] || missing+=(mosquitto)
# mosquitto_sub/mosquitto_pub: `make run` prints a mosquitto_sub command to watch the uplinks
command -v mosquitto_sub >/dev/null 2>&1 || missing+=(mosquitto-clients)
command -v npm >/dev/null 2>&1 || missing+=(nodejs npm)
[ ${#missing[@]} -eq 0 ] && exit 0
if [ "$(id -u)" -eq 0 ] && command -v apt-get >/dev/null 2>&1; then
  echo "installing ${missing[*]} with apt-get"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
  exit 0
fi
echo "missing: ${missing[*]}" >&2
echo "install them first, for example: sudo apt-get install ${missing[*]}   (Debian/Ubuntu)" >&2
echo "                                 brew install ${missing[*]}         (macOS)" >&2
exit 1
