"""Variants of the shipped reference specs for tests: the same spec with a few settings changed.

A variant is written beside the test's files, so the spec's relative paths (its SQL file, the
sample orders) are made absolute first; each replacement must match exactly once, so a test
never runs the unchanged spec by mistake.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from pipelines.specs import REFERENCE_SPEC_DIR, reference_spec_path

if TYPE_CHECKING:
    from pipelines.dsl.model import HttpExtract


def spec_variant(folder: Path, name: str, *replacements: tuple[str, str]) -> Path:
    """``pipelines/specs/<name>.yml`` with each ``(old, new)`` replaced, written to ``folder``."""
    text = reference_spec_path(name).read_text(encoding="utf-8")
    text = text.replace("../", f"{REFERENCE_SPEC_DIR.parent.as_posix()}/").replace(
        "$schema=" + REFERENCE_SPEC_DIR.parent.as_posix() + "/", "$schema=")
    for old, new in replacements:
        assert text.count(old) == 1, f"{old!r} is not once in {name}.yml"
        text = text.replace(old, new)
    path = folder / f"{name}.yml"
    path.write_text(text, encoding="utf-8")
    return path


def users_extract(url: str) -> "HttpExtract":
    """The shipped users-orders spec's users extract (its columns and row rules), reading ``url``."""
    from pipelines.reference import reference_spec

    (step,) = [s for s in reference_spec("users_orders").pipeline.steps if s.id == "extract_users"]
    assert step.extract is not None and step.extract.http is not None
    return step.extract.http.model_copy(update={"url": f"{url}/users"})


def user_problem(user: dict[str, Any]) -> str:
    """Why the users-orders spec would refuse ``user`` as a record ('' when it loads)."""
    from pipelines.dsl.columns import RowRuleCheck, fit_record, logical_type

    extract = users_extract("http://unused")
    row, problem = fit_record(user, [(c.key, logical_type(c.type), c.nullable) for c in extract.columns])
    if problem:
        return problem
    assert extract.reject is not None
    rules = RowRuleCheck.of(extract.reject.model_copy(update={"unique": []}), [c.name for c in extract.columns])
    return "; ".join(rules.problems(row, "") if rules else [])
