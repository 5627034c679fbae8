#!/usr/bin/env bash
# Headless Chromium for the browser tests and the graph benchmark, from Debian's packages.
#
#   scripts/chromium.sh        # install the Debian package 'chromium' if missing; print its path
#
# Idempotent: when the browser is already there it only prints the path. Playwright drives
# this binary through `executable_path`; it never downloads a browser of its own.
# LINEAGE_AUDIT_CHROMIUM overrides the path (a browser installed somewhere else).
set -euo pipefail

CHROMIUM="${LINEAGE_AUDIT_CHROMIUM:-/usr/bin/chromium}"

if [ ! -x "$CHROMIUM" ]; then
  if [ "$(id -u)" != "0" ]; then
    echo "chromium.sh: $CHROMIUM is missing; run as root to install the Debian package 'chromium'" >&2
    exit 1
  fi
  echo "chromium.sh: installing Chromium from Debian's packages..." >&2
  export DEBIAN_FRONTEND=noninteractive
  # Other installs may hold the dpkg lock for a while; wait for it instead of failing.
  apt-get -o DPkg::Lock::Timeout=600 update -qq >/dev/null
  apt-get -o DPkg::Lock::Timeout=600 install -y -qq --no-install-recommends chromium fonts-dejavu-core >/dev/null
  if [ ! -x "$CHROMIUM" ]; then
    echo "chromium.sh: the package installed but $CHROMIUM is still missing" >&2
    exit 1
  fi
fi

echo "$CHROMIUM"
