"""lineage-audit.yml: the documented example loads, mistakes point at file:line:column."""

from __future__ import annotations

from pathlib import Path

import pytest

from lineage_auditor.audit.config import load_config, parse_config
from lineage_auditor.errors import LineageAuditError

EXAMPLE = Path(__file__).resolve().parent.parent / "pipelines" / "features" / "lineage-audit.yml"


def test_the_documented_example_is_valid() -> None:
    config = load_config(EXAMPLE)
    names = [a.name for a in config.ai_datasets]
    assert "features.churn_features" in names
    churn = config.ai_datasets[names.index("features.churn_features")]
    assert churn.freshness is not None and churn.freshness.max_age == 26 * 3600
    assert any("pii" in t for rule in config.tags for t in rule.tags)


@pytest.mark.parametrize(
    ("text", "where", "message"),
    [
        ("ai_datasets:\n  - name: x\n    bogus: 1\n", ":3:5", "ai_datasets.0.bogus: unknown key"),
        ("ai_datasets:\n  - name: x\n    freshness:\n      max_age: soon\n", ":4:16", "not a duration"),
        ("thresholds:\n  psi: -1\n", ":2:8", "thresholds.psi"),
        ("tags:\n  - column: email\n    tags: [pii]\n", ":2:13", "dataset.column"),
        ("ai_datasets:\n  - purpose: x\n", ":2:5", "ai_datasets.0.name: Field required"),
        ("ai_datasets: [\n", ":2:1", "invalid YAML"),
        ("- just\n- a list\n", ":1", "must be a mapping"),
    ],
)
def test_errors_name_file_line_and_column(text: str, where: str, message: str) -> None:
    with pytest.raises(LineageAuditError) as info:
        parse_config(text, source="audit.yml")
    assert str(info.value).startswith("audit.yml" + where), str(info.value)
    assert message in str(info.value)


def test_missing_file_is_an_input_error(tmp_path: Path) -> None:
    with pytest.raises(LineageAuditError, match="cannot read config"):
        load_config(tmp_path / "nope.yml")
