#!/usr/bin/env bash
# Prometheus and Alertmanager from Debian's packages, for the monitoring end-to-end test.
#
#   scripts/prometheus.sh        # install 'prometheus' and 'prometheus-alertmanager' if missing; print the bin folder
#
# Idempotent: when both are there it only prints the folder. The packages' own services are
# never started here (the test starts its own processes on 127.0.0.1 and stops them).
# LINEAGE_AUDIT_PROMETHEUS_BIN overrides the folder (binaries installed somewhere else).
set -euo pipefail

BIN="${LINEAGE_AUDIT_PROMETHEUS_BIN:-/usr/bin}"

missing() {
  [ ! -x "$BIN/prometheus" ] || [ ! -x "$BIN/promtool" ] || [ ! -x "$BIN/prometheus-alertmanager" ]
}

if missing; then
  if [ "$(id -u)" != "0" ]; then
    echo "prometheus.sh: prometheus, promtool or prometheus-alertmanager is missing in $BIN; run as root to install Debian's 'prometheus' and 'prometheus-alertmanager'" >&2
    exit 1
  fi
  echo "prometheus.sh: installing Prometheus and Alertmanager from Debian's packages..." >&2
  export DEBIAN_FRONTEND=noninteractive
  # The packages' maintainer scripts try to start their services; in a container without an
  # init system that is refused, which is what we want. Wait for a dpkg lock instead of failing.
  apt-get -o DPkg::Lock::Timeout=600 update -qq >/dev/null
  apt-get -o DPkg::Lock::Timeout=600 install -y -qq --no-install-recommends prometheus prometheus-alertmanager >/dev/null
  if missing; then
    echo "prometheus.sh: the packages installed but a binary is still missing in $BIN" >&2
    exit 1
  fi
fi

echo "$BIN"
