#!/usr/bin/env bash
# Installs the system packages the tests and `make run` need (mosquitto, its clients, chromium for the console's
# browser tests), or says exactly what to install.
set -euo pipefail
missing=()
command -v mosquitto >/dev/null 2>&1 || [ -x /usr/sbin/mosquitto ] || missing+=(mosquitto)
# mosquitto_sub/mosquitto_pub: `make run` prints a mosquitto_sub command to watch the uplinks
command -v mosquitto_sub >/dev/null 2>&1 || missing+=(mosquitto-clients)
command -v npm >/dev/null 2>&1 || missing+=(nodejs npm)
# the console's browser tests drive Debian's chromium with Playwright (which downloads no browser of its own)
[ -x /usr/bin/chromium ] || missing+=(chromium)
check_node() {
  # The CDK CLI (and its jsii runtime) needs Node 20 or newer; Debian 12's own nodejs package is 18.
  local version major
  version=$(node --version 2>/dev/null || echo none)
  major=${version#v}
  major=${major%%.*}
  if [[ ! "$major" =~ ^[0-9]+$ ]] || [ "$major" -lt 20 ]; then
    echo "Node.js 20 or newer is needed for the CDK CLI; found: $version" >&2
    echo "Debian 12's nodejs package is 18: install Node 20 from https://github.com/nodesource/distributions" >&2
    echo "(or with nvm: nvm install 20), then run make again" >&2
    exit 1
  fi
}
if [ ${#missing[@]} -eq 0 ]; then
  check_node
  exit 0
fi
if [ "$(id -u)" -eq 0 ] && command -v apt-get >/dev/null 2>&1; then
  echo "installing ${missing[*]} with apt-get"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
  check_node
  exit 0
fi
echo "missing: ${missing[*]}" >&2
echo "install them first, for example: sudo apt-get install ${missing[*]}   (Debian/Ubuntu)" >&2
echo "                                 brew install ${missing[*]}         (macOS)" >&2
exit 1
