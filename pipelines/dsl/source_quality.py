"""What an extract saw of its source, as OpenLineage input facets on the source dataset.

``dataQualityMetrics``: row count and, per declared column, nulls, distinct values and numeric
min/max of the records that loaded. ``dataQualityAssertions``: one assertion that every record
fit the declared columns, and one per row rule (``reject: unique``, ``accepted_values``), each
failed when it refused a record, with how many. They say what was wrong with the source, not
with our tables (the refused records are in the dead-letter file), so the audit can watch a
source's quality over runs.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from pipelines.dsl.columns import RowRuleCheck
from pipelines.runtime.quality import Check, assertions_facet, metrics_facet


def source_facets(rows: Sequence[tuple[Any, ...]], names: Sequence[str], refused: int,
                  rules: RowRuleCheck | None) -> tuple[Any, Any]:
    """The metrics and assertions facets of a source from its loaded ``rows`` (in ``names`` order),
    the number of records ``refused`` in all, and the row rules that refused some of them."""
    metrics = metrics_facet([dict(zip(names, row)) for row in rows], list(names))
    by_rules = rules.records_refused if rules else 0
    misfits = refused - by_rules
    checks = [Check("records_fit_declared_columns", "fits_declared_columns", misfits == 0,
                    expected="0 records refused", actual=f"{misfits} refused",
                    description="every record has the declared columns with values of their types")]
    if rules is not None and rules.key_names:
        key = ", ".join(rules.key_names)
        checks.append(Check(f"{'_'.join(rules.key_names)}_unique", "unique", rules.unique_broken == 0,
                            column=rules.key_names[0] if len(rules.key_names) == 1 else None,
                            expected="no repeated key", actual=f"{rules.unique_broken} repeats",
                            description=f"{key} identifies a record"))
    for _, (name, values) in sorted((rules.accepted if rules else {}).items()):
        broken = rules.values_broken[name] if rules else 0
        checks.append(Check(f"{name}_accepted_values", "accepted_values", broken == 0, column=name,
                            expected=", ".join(sorted(values)), actual=f"{broken} other values"))
    for _, (name, pattern) in sorted((rules.patterns if rules else {}).items()):
        broken = rules.pattern_broken[name] if rules else 0
        checks.append(Check(f"{name}_matches_pattern", "matches_pattern", broken == 0, column=name,
                            expected=pattern.pattern, actual=f"{broken} not matching"))
    return metrics, assertions_facet(checks)
