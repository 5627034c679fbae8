"""Real `lineage-audit serve` processes for tests, and pipeline-shaped OpenLineage events.

A server is the CLI in a subprocess (uvicorn on 127.0.0.1, a free port), ready when
/healthz answers; it is stopped (and waited for) when the test ends.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

REPO = Path(__file__).resolve().parent.parent
PRODUCER = "https://example.com/producer/1.0"
SCHEMA_URL = "https://openlineage.io/spec/2-0-2/OpenLineage.json#/$defs/RunEvent"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class Server:
    url: str
    process: subprocess.Popen[str]
    log: Path
    args: list[str] = field(default_factory=list)

    def stop(self, sig: int = signal.SIGTERM) -> None:
        if self.process.poll() is None:
            self.process.send_signal(sig)
            try:
                self.process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=10)


def start_server(args: list[str], cwd: Path, *, env: dict[str, str] | None = None, timeout: float = 60.0) -> Server:
    """``lineage-audit serve ARGS --port P``, ready when /healthz answers 200 (else the test fails with its log)."""
    port = free_port()
    log = cwd / f"serve-{port}.log"
    full_env = {**os.environ, "PYTHONPATH": str(REPO), **(env or {})}
    handle = log.open("w")
    process = subprocess.Popen([sys.executable, "-m", "lineage_auditor.cli", "serve", *args, "--port", str(port)],
                               cwd=cwd, env=full_env, stdout=handle, stderr=subprocess.STDOUT, text=True)
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise AssertionError(f"serve exited with {process.returncode}: {log.read_text()}")
        try:
            if httpx.get(f"{url}/healthz", timeout=2).status_code == 200:
                return Server(url, process, log, args)
        except httpx.HTTPError:
            pass
        time.sleep(0.1)
    process.kill()
    raise AssertionError(f"serve did not become healthy within {timeout}s: {log.read_text()}")


def add_token(home: Path, user: str) -> str:
    done = subprocess.run([sys.executable, "-m", "lineage_auditor.cli", "tokens", "add", user, "--tokens",
                           str(home / "tokens.json"), "--format", "json"], capture_output=True, text=True, timeout=60,
                          env={**os.environ, "PYTHONPATH": str(REPO)})
    assert done.returncode == 0, done.stderr
    import json

    return str(json.loads(done.stdout)["token"])


def run_id(i: int, part: int = 0) -> str:
    return f"01900000-0000-7000-{8000 + part:04x}-{i:012d}"


def pipeline_run(i: int, *, pipeline: str = "sales_daily", team: str = "growth", failed: bool = False,
                 namespace: str = "postgres://wh:5432", table: str | None = None, minute: int = 0) -> list[dict[str, Any]]:
    """One pipeline run as the runner reports it: the parent run and one load step, 4 events.

    The step writes ``table`` (default ``wh.mart.<pipeline>``) with 100 + i rows; a failed run's
    step and parent end in FAIL with an error message.
    """
    day = 1 + i // 1440
    hh, mm = divmod(i % 1440, 60)
    start = f"2024-05-{day:02d}T{hh:02d}:{mm:02d}:00Z"
    end_step = f"2024-05-{day:02d}T{hh:02d}:{mm:02d}:{10 + minute:02d}Z"
    end = f"2024-05-{day:02d}T{hh:02d}:{mm:02d}:{20 + minute:02d}Z"
    parent, step = run_id(i, 0), run_id(i, 1)
    owners = {"_producer": PRODUCER, "_schemaURL": "https://openlineage.io/spec/facets/1-0-1/OwnershipJobFacet.json",
              "owners": [{"name": f"team:{team}", "type": "MAINTAINER"}]}
    nominal = {"_producer": PRODUCER, "_schemaURL": "https://openlineage.io/spec/facets/1-0-1/NominalTimeRunFacet.json",
               "nominalStartTime": f"2024-05-{day:02d}T00:00:00Z"}
    job = {"namespace": "lineage-audit", "name": pipeline, "facets": {"ownership": owners}}
    step_job = {"namespace": "lineage-audit", "name": f"{pipeline}.load", "facets": {"ownership": owners}}
    parent_facet = {"_producer": PRODUCER, "_schemaURL": "https://openlineage.io/spec/facets/1-1-0/ParentRunFacet.json",
                    "run": {"runId": parent}, "job": {"namespace": "lineage-audit", "name": pipeline}}
    final = "FAIL" if failed else "COMPLETE"
    error = {"errorMessage": {"_producer": PRODUCER, "_schemaURL": "https://openlineage.io/spec/facets/1-0-1/ErrorMessageRunFacet.json",
                              "message": "load failed: connection refused", "programmingLanguage": "python"}} if failed else {}
    output = {"namespace": namespace, "name": table or f"wh.mart.{pipeline}",
              "outputFacets": {"outputStatistics": {"_producer": PRODUCER,
                                                    "_schemaURL": "https://openlineage.io/spec/facets/1-0-2/OutputStatisticsOutputDatasetFacet.json",
                                                    "rowCount": 100 + i, "size": 1000}}}

    def event(kind: str, when: str, j: dict, rid: str, facets: dict, outputs: list) -> dict[str, Any]:
        return {"eventType": kind, "eventTime": when, "producer": PRODUCER, "schemaURL": SCHEMA_URL,
                "run": {"runId": rid, "facets": facets}, "job": j, "inputs": [], "outputs": outputs}

    return [
        event("START", start, job, parent, {"nominalTime": nominal}, []),
        event("START", start, step_job, step, {"parent": parent_facet}, []),
        event(final, end_step, step_job, step, {"parent": parent_facet, **error}, [] if failed else [output]),
        event(final, end, job, parent, {"nominalTime": nominal, **error}, []),
    ]
