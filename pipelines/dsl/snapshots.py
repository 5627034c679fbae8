"""When each extract step last succeeded: what ``on_source_failure: use_last_snapshot`` needs.

One small JSON file per pipeline step in the lineage home (``snapshots/<pipeline>.<step>.json``),
written after the step's tables were replaced, so the time is that of data actually loaded.
"""

from __future__ import annotations

import json
import os
from datetime import datetime, timezone
from pathlib import Path

from lineage_auditor.times import iso, try_parse_time


def _path(home: Path, pipeline: str, step: str) -> Path:
    return home / "snapshots" / f"{pipeline}.{step}.json"


def record(home: Path, pipeline: str, step: str, tables: list[str]) -> None:
    """Note that ``step`` just loaded ``tables`` (written aside, then renamed: never half a file)."""
    path = _path(home, pipeline, step)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps({"at": iso(datetime.now(timezone.utc)), "tables": tables}), encoding="utf-8")
    os.replace(tmp, path)


def taken_at(home: Path, pipeline: str, step: str) -> datetime | None:
    """When the step last loaded its tables, or None (never, or a file that cannot be read)."""
    try:
        data = json.loads(_path(home, pipeline, step).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return try_parse_time(data.get("at")) if isinstance(data, dict) else None
