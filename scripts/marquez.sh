#!/usr/bin/env bash
# A local Marquez lineage server for tests, benchmarks and demos (no Docker needed).
#
#   scripts/marquez.sh up [--port N --admin-port N]   # fetch (first time), start, wait for health
#   scripts/marquez.sh status                          # exit 0 when running
#   scripts/marquez.sh logs [-n N] [--follow]
#   scripts/marquez.sh down                            # stop what `up` started
#
# Same implementation as `lineage-audit marquez ...`; PostgreSQL comes from
# scripts/postgres.sh (started here when LINEAGE_AUDIT_PG_DSN is not set).
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
PY="${PYTHON:-$ROOT/.venv/bin/python}"
[ -x "$PY" ] || PY="$(command -v python3)"

if [ "${1:-}" = "up" ] && [ -z "${LINEAGE_AUDIT_PG_DSN:-}" ]; then
  "$ROOT/scripts/postgres.sh" start >/dev/null
fi

cd "$ROOT"
PYTHONPATH="$ROOT${PYTHONPATH:+:$PYTHONPATH}" exec "$PY" -m lineage_auditor.cli marquez "$@"
