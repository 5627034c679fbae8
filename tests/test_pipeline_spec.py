"""The shipped reference specs: valid, planned with column lineage, and what the pipelines promise."""

from __future__ import annotations

from datetime import date, timedelta

import pytest
from click.testing import CliRunner

from lineage_auditor.cli import _register, cli
from pipelines.dsl import plan_spec
from pipelines.dsl.model import OnSourceFailure
from pipelines.reference import reference_spec
from pipelines.specs import REFERENCE_PIPELINES, REFERENCE_SPEC_DIR, reference_spec_path


def test_every_shipped_spec_validates() -> None:
    _register()
    result = CliRunner().invoke(cli, ["pipelines", "validate", str(REFERENCE_SPEC_DIR), "--format", "json"])
    assert result.exit_code == 0, result.output
    assert sorted(p.name for p in REFERENCE_SPEC_DIR.glob("*.yml")) == sorted(f"{n}.yml" for n in REFERENCE_PIPELINES)


@pytest.mark.parametrize("name", REFERENCE_PIPELINES)
def test_each_reference_spec_plans_with_its_owners_and_column_lineage(name: str) -> None:
    loaded = reference_spec(name)
    assert loaded.pipeline.id == name and loaded.path == reference_spec_path(name.replace("_", "-"))
    assert loaded.pipeline.owners and loaded.pipeline.team
    plan = plan_spec(loaded, date(2024, 6, 1))
    assert [s.id for s in plan.steps] and all(s.writes or s.checks for s in plan.steps)


def test_failure_policies_are_the_pipelines_promises() -> None:
    users = reference_spec("users_orders").pipeline
    assert users.on_source_failure is OnSourceFailure.USE_LAST_SNAPSHOT and users.max_staleness == timedelta(hours=24)
    assert reference_spec("weather").pipeline.on_source_failure is OnSourceFailure.FAIL
    churn = reference_spec("churn_features").pipeline
    assert [o.table for o in churn.outputs if o.ai_dataset] == ["features.churn_features"]
    plan = plan_spec(reference_spec("churn_features"), date(2024, 6, 1))
    (build,) = [s for s in plan.steps if s.kind.value == "sql"]
    (lineage,) = build.lineage
    tenure = next(f for f in lineage.fields if f.name == "tenure_days")
    assert [(i.column.dataset.name, i.column.field) for i in tenure.inputs] == [("analytics.user_orders", "signup_date")]


def test_an_unknown_reference_pipeline_names_the_known_ones() -> None:
    with pytest.raises(KeyError, match="weather, users_orders, churn_features"):
        reference_spec_path("cooking")
