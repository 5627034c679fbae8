"""The shipped pipeline specs (YAML); a package so they install with the code."""

from __future__ import annotations

from pathlib import Path

REFERENCE_SPEC_DIR = Path(__file__).resolve().parent
REFERENCE_PIPELINES = ("weather", "users_orders", "churn_features")


def reference_spec_path(name: str) -> Path:
    """The spec file of a reference pipeline (``weather``, ``users_orders``, ``churn_features``).

    Callers name the pipeline, never the folder: where the shipped specs live may change.
    """
    key = name.replace("-", "_")
    if key not in REFERENCE_PIPELINES:
        raise KeyError(f"no reference pipeline {name!r} (one of {', '.join(REFERENCE_PIPELINES)})")
    return REFERENCE_SPEC_DIR / f"{key}.yml"
