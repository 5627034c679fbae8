"""The engine on the 121 TPC-H and TPC-DS queries, with their schemas."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import pytest

from lineage_auditor.facets import column_lineage_facet
from lineage_auditor.sql import analyze_sql
from shared_data import corpus_dir

EXPECTED = Path(__file__).parent / "data" / "corpus_outputs_without_direct.tsv"


def _queries():
    root = corpus_dir()
    for bench in ("tpch", "tpcds"):
        schema = json.loads((root / f"{bench}_schema.json").read_text())
        for path in sorted((root / bench).glob("*.sql")):
            yield f"{bench}/{path.name}", path.read_text(), schema


def _expected_without_direct() -> Counter:
    rows = [line.split("\t") for line in EXPECTED.read_text().splitlines() if line and not line.startswith("#")]
    return Counter((f, name, reason) for f, name, reason in rows)


def test_corpus_is_complete():
    assert len(list(_queries())) == 121


def test_every_query_parses_resolves_and_every_value_column_has_direct_lineage():
    without_direct: Counter = Counter()
    for name, sql, schema in _queries():
        result = analyze_sql(sql, schema=schema, file=name)
        assert not result.errors, (name, [str(e) for e in result.errors])
        assert not result.warnings, (name, [str(w) for w in result.warnings])
        (statement,) = result.statements
        (out,) = statement.outputs
        assert out.fields, name
        for field in out.fields:
            types = {t.type for item in field.inputs for t in item.transformations}
            if "DIRECT" not in types:
                reason = "indirect-only" if types else "count-or-constant"
                without_direct[(name, field.name, reason)] += 1
    assert without_direct == _expected_without_direct()


@pytest.mark.parametrize("wrap", ["INSERT INTO out_table {q}", "CREATE TABLE out_table AS {q}"])
def test_corpus_as_writes_keeps_the_same_lineage(wrap):
    for name, sql, schema in list(_queries())[:30]:
        select = analyze_sql(sql, schema=schema).statements[0].outputs[0]
        write = analyze_sql(wrap.format(q=sql), schema=schema).statements[0].outputs[0]
        assert write.dataset.name == "out_table"
        assert column_lineage_facet(write)["fields"] == column_lineage_facet(select)["fields"], name
