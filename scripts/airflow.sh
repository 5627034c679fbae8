#!/usr/bin/env bash
# Install the `airflow` extra (Apache Airflow 3 and its OpenLineage provider, versions from
# setup.cfg) into the project's virtualenv. Idempotent: does nothing when every requirement
# of the extra is already met. Runs unattended (CI: root, no stdin).
#
# uv resolves and installs it in about a minute, a third of plain pip's time, and compiles
# bytecode at install: where PYTHONDONTWRITEBYTECODE is set, Airflow's imports take twice
# as long without it.
set -euo pipefail
cd "$(dirname "$0")/.."
BIN="${VENV:-.venv}/bin"

missing() {
  # The extra's requirements not met in the venv, one per line (none: installed already).
  "$BIN/python" - <<'PY'
import configparser
from importlib import metadata

from packaging.requirements import Requirement

config = configparser.ConfigParser()
config.read("setup.cfg")
for line in config["options.extras_require"]["airflow"].splitlines():
    line = line.split("#")[0].strip()
    if not line:
        continue
    req = Requirement(line)
    try:
        ok = req.specifier.contains(metadata.version(req.name), prereleases=True)
    except metadata.PackageNotFoundError:
        ok = False
    if not ok:
        print(line)
PY
}

if [ -z "$(missing)" ]; then
  echo "airflow extra: installed" >&2
  exit 0
fi
started=$(date +%s)
"$BIN/python" -m pip install -q uv
"$BIN/uv" pip install --quiet --python "$BIN/python" --compile-bytecode -e '.[airflow]' </dev/null
"$BIN/python" -m pip check >&2
left="$(missing)"
if [ -n "$left" ]; then
  echo "airflow extra: still missing after install: $left" >&2
  exit 1
fi
echo "airflow extra: installed in $(( $(date +%s) - started ))s" >&2
