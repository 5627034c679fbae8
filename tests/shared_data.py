"""Where tests find the shared corpus and OpenLineage schemas.

The data lives outside the repository; an environment variable points at it, defaulting to
``../shared/...`` beside the checkout. Missing data fails the test with a clear message: a
skip would hide it in CI.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent


def shared_path(env: str, default_name: str) -> Path:
    path = Path(os.environ.get(env) or REPO.parent / "shared" / default_name)
    if not path.exists():
        pytest.fail(f"{path} not found: set {env} to the folder holding the shared {default_name} data")
    return path


def corpus_dir() -> Path:
    return shared_path("LINEAGE_AUDIT_CORPUS", "corpus")
