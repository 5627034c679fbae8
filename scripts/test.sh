#!/usr/bin/env bash
# Start every real component the suite needs, run the whole suite, stop what we started.
set -euo pipefail
cd "$(dirname "$0")/.."
BIN="${VENV:-.venv}/bin"

export LINEAGE_AUDIT_CORPUS="${LINEAGE_AUDIT_CORPUS:-$(cd .. && pwd)/shared/corpus}"
export LINEAGE_AUDIT_OL_SPEC="${LINEAGE_AUDIT_OL_SPEC:-$(cd .. && pwd)/shared/openlineage-spec}"

cleanup() {
  bash scripts/postgres.sh stop || true
}
trap cleanup EXIT

export LINEAGE_AUDIT_PG_DSN="$(bash scripts/postgres.sh start)"
export LINEAGE_AUDIT_CHROMIUM="$(bash scripts/chromium.sh)"

"$BIN/python" -m pytest -q -p no:cacheprovider "$@"
