"""OpenLineage JSON/NDJSON files, and the spec validator every pipeline test relies on."""

from __future__ import annotations

import copy
import json
from datetime import datetime, timezone

import pytest

from collectors.emit import to_event_dict
from collectors.emit.examples import example_run
from collectors.openlineage_json import append_ndjson, event_identity, iter_events, read_events, write_events
from lineage_auditor.errors import LineageAuditError
from tests import olspec

T0 = datetime(2024, 5, 1, 6, 0, tzinfo=timezone.utc)


def events() -> list[dict]:
    return [to_event_dict(e) for e in example_run(start=T0)]


@pytest.mark.parametrize("name", ["events.json", "events.ndjson", "events.jsonl"])
def test_round_trip(tmp_path, name):
    path = tmp_path / name
    written = events()
    assert write_events(path, written) == 2
    assert read_events(path) == written


def test_single_event_json_and_folder(tmp_path):
    start, complete = events()
    (tmp_path / "b.json").write_text(json.dumps(start))
    append_ndjson(tmp_path / "a.ndjson", complete)
    (tmp_path / ".hidden.json").write_text("not json")
    (tmp_path / "notes.txt").write_text("ignored")
    assert list(iter_events(tmp_path)) == [complete, start], "files in name order"


def test_bad_json_names_file_line_and_column(tmp_path):
    path = tmp_path / "bad.ndjson"
    good = json.dumps(events()[0])
    path.write_text(good + "\n\n" + '{"eventType": "START", oops}\n')
    with pytest.raises(LineageAuditError) as err:
        read_events(path)
    assert (err.value.file, err.value.line, err.value.column) == (str(path), 3, 24)
    assert str(err.value).startswith(f"{path}:3:24: invalid JSON")

    multi = tmp_path / "bad.json"
    multi.write_text('[\n  {"a": 1},\n  {"b": 2,}\n]')
    with pytest.raises(LineageAuditError) as err:
        read_events(multi)
    assert err.value.line == 3

    scalar = tmp_path / "scalar.ndjson"
    scalar.write_text("[1, 2]\n")
    with pytest.raises(LineageAuditError, match="expected an OpenLineage event"):
        read_events(scalar)
    with pytest.raises(LineageAuditError, match="no such file"):
        read_events(tmp_path / "missing.json")


def test_event_identity_of_run_dataset_and_job_events():
    start = events()[0]
    assert event_identity(start) == (start["run"]["runId"], "START", start["eventTime"])
    assert event_identity({"eventTime": "t", "dataset": {"namespace": "n", "name": "d"}}) == ("dataset:n/d", "DATASET", "t")
    assert event_identity({"eventTime": "t", "job": {"namespace": "n", "name": "j"}}) == ("job:n/j", "JOB", "t")


# ---------------------------------------------------------------- the validator


def test_validator_accepts_spec_events():
    assert olspec.validate_events(events() + [to_event_dict(e) for e in example_run(start=T0, fail=True)]) == 4
    olspec.validate_event(example_run(start=T0)[0])  # event_v2 objects too


def test_validator_reports_each_problem_with_its_place():
    bad = copy.deepcopy(events()[0])
    bad["run"]["runId"] = "not-a-uuid"
    bad["eventTime"] = "2024-05-01 06:00"
    bad["run"]["facets"]["processingEngine"] = bad["run"]["facets"].pop("processing_engine")
    out = bad["outputs"][0]
    out["facets"]["datasetVersion"] = out["facets"].pop("version")
    out["facets"]["columnLineage"]["fields"]["revenue"]["inputFields"][0].pop("field")
    users = bad["inputs"][0]
    users["facets"]["dataQualityMetrics"] = users["inputFacets"].pop("dataQualityMetrics")
    errors = olspec.event_errors(bad)
    joined = "\n".join(errors)
    assert "run.runId: 'not-a-uuid' is not a 'uuid'" in joined
    assert "eventTime: '2024-05-01 06:00' is not a 'date-time'" in joined
    assert "run.facets.processingEngine: no RunFacet named 'processingEngine'" in joined
    assert "outputs[0].facets.datasetVersion: no DatasetFacet named 'datasetVersion'" in joined
    assert "outputs[0].facets.columnLineage.fields.revenue.inputFields[0]: 'field' is a required property" in joined
    assert "inputs[0].facets.dataQualityMetrics: _schemaURL names DataQualityMetricsInputDatasetFacet.json" in joined
    with pytest.raises(AssertionError, match="is not valid"):
        olspec.validate_event(bad)
    custom = copy.deepcopy(events()[0])
    custom["run"]["facets"]["myFacet"] = {"_producer": "https://x.test", "_schemaURL": "https://x.test/s.json", "a": 1}
    assert olspec.event_errors(custom, custom_facets=["myFacet"]) == []
    custom["run"]["facets"]["myFacet"].pop("_producer")
    assert any("'_producer' is a required property" in e for e in olspec.event_errors(custom, custom_facets=["myFacet"]))


def test_missing_spec_fails_instead_of_skipping(tmp_path, monkeypatch):
    monkeypatch.setenv(olspec.SPEC_ENV, str(tmp_path / "nowhere"))
    with pytest.raises(pytest.fail.Exception, match="OpenLineage JSON schemas not found"):
        olspec.validate_event(events()[0])
