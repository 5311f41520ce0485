#!/usr/bin/env bash
# Install the Debian packages the test suite needs (real Fashion-MNIST data, a
# disposable PostgreSQL server), once. Usage: scripts/system_deps.sh PACKAGE...
set -euo pipefail
missing=()
for pkg in "$@"; do
    dpkg -s "$pkg" >/dev/null 2>&1 || missing+=("$pkg")
done
[ ${#missing[@]} -eq 0 ] && exit 0
sudo=""
if [ "$(id -u)" -ne 0 ]; then
    if command -v sudo >/dev/null 2>&1; then sudo="sudo"; else
        echo "activelab: need root (or sudo) to install: ${missing[*]}" >&2; exit 1
    fi
fi
echo "activelab: installing Debian packages: ${missing[*]}"
$sudo apt-get update -qq
DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
