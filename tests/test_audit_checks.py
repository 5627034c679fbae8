"""Each audit check on hand-built events: what must be found, and what must not."""

from __future__ import annotations

import copy
from datetime import timedelta

import numpy as np
import pandas as pd

from audit_events import (
    SHOP_CONFIG as CONFIG, FEATURES_SQL, NS, ORDERS, T0, USERS, WEATHER, dataset, run_events, shop_events, sql_job_events,
)
from lineage_auditor.audit import AuditView, parse_config, run_audit
from lineage_auditor.audit.config import Thresholds
from lineage_auditor.audit.data_drift import compare_frames, psi
from lineage_auditor.audit.lineage_drift import snapshot
from lineage_auditor.audit.types import NARROWING, WIDENING, classify_type_change
from lineage_auditor.graph import LineageGraph



def audit(events, *, config: str = CONFIG, checks=None, **kw):
    graph = LineageGraph.from_events(events)
    return run_audit(graph, AuditView.from_events(events), parse_config(config), checks=checks, **kw)


def titles(result, check=None):
    return sorted(f.title for f in result.findings if check is None or f.check == check)


# ------------------------------------------------------------------ reported vs rebuilt


def test_reported_lineage_matching_the_sql_gives_no_finding() -> None:
    assert titles(audit(shop_events(), checks=["reported_vs_rebuilt"])) == []


def _features_output(events):
    return [e for e in events if e["job"]["name"] == "build_churn"]


def test_missing_extra_and_wrong_type_edges_are_found() -> None:
    events = shop_events()
    for event in _features_output(events):
        fields = event["outputs"][0]["facets"]["columnLineage"]["fields"]
        fields["revenue"]["inputFields"] = [i for i in fields["revenue"]["inputFields"] if i["field"] != "amount"]
        fields["n_orders"]["inputFields"].append(
            {"namespace": NS, "name": "warehouse.raw.users", "field": "country",
             "transformations": [{"type": "DIRECT", "subtype": "IDENTITY", "masking": False}]})
        for item in fields["name_key"]["inputFields"]:
            if item["field"] == "name":
                item["transformations"] = [{"type": "DIRECT", "subtype": "IDENTITY", "masking": False}]
        del fields["contact"]
    result = audit(events, checks=["reported_vs_rebuilt"])
    found = {(f.severity, f.title) for f in result.findings}
    assert ("medium", "missing edge warehouse.raw.orders.amount -> warehouse.features.churn.revenue") in found
    assert ("medium", "extra edge warehouse.raw.users.country -> warehouse.features.churn.n_orders") in found
    # masking reported wrong: PII tracing depends on it, so it is high
    assert ("high", "transformation of warehouse.raw.users.name -> warehouse.features.churn.name_key differs") in found
    assert ("medium", "column warehouse.features.churn.contact has no reported lineage") in found


# ------------------------------------------------------------------ schema drift


def _two_versions(second_sql: str, second_types: dict[str, str] | None = None):
    events = shop_events()
    events += sql_job_events("build_churn", second_sql, {"raw.users": USERS, "raw.orders": ORDERS},
                             at=T0 + timedelta(days=1), output_types=second_types)
    return events


def test_dropped_column_and_type_narrowing_are_found_with_the_run() -> None:
    sql = FEATURES_SQL.replace("       md5(u.name) AS name_key,\n", "")
    events = _two_versions(sql, {"revenue": "INTEGER"})
    events[:6] = [e for e in events[:6]]
    # first version reports revenue as DECIMAL(14,2)
    for e in _features_output(events)[:2]:
        for f in e["outputs"][0]["facets"]["schema"]["fields"]:
            if f["name"] == "revenue":
                f["type"] = "DECIMAL(14,2)"
    result = audit(events, checks=["schema_drift"])
    by_title = {f.title: f for f in result.findings}
    removed = by_title["column name_key removed"]
    assert removed.severity == "high" and removed.evidence["to_version"] == 2
    assert removed.evidence["run_id"] == _features_output(events)[-1]["run"]["runId"]
    narrowed = by_title["type of revenue changed (narrowing): DECIMAL(14,2) -> INTEGER"]
    assert narrowed.severity == "high"


def test_widening_is_low_and_an_unchanged_schema_is_silent() -> None:
    assert classify_type_change("INTEGER", "BIGINT") == WIDENING
    assert classify_type_change("DECIMAL(14,2)", "DECIMAL(18,2)") == WIDENING
    assert classify_type_change("VARCHAR(50)", "VARCHAR(20)") == NARROWING
    assert classify_type_change("DOUBLE", "INTEGER") == NARROWING
    assert classify_type_change("TIMESTAMP", "DATE") == NARROWING
    assert classify_type_change("INTEGER", "TEXT") == WIDENING
    assert titles(audit(_two_versions(FEATURES_SQL), checks=["schema_drift"])) == []


def test_contract_type_and_nullability() -> None:
    config = CONFIG.replace("    consumers: [churn-model]\n", "    consumers: [churn-model]\n    contract:\n      columns:\n        user_id: BIGINT\n        churned: BOOLEAN\n")
    result = audit(shop_events(), config=config, checks=["schema_drift"])
    assert "contract column churned is missing" in titles(result)


# ------------------------------------------------------------------ lineage drift


def test_a_new_upstream_source_reaching_the_ai_dataset_is_high() -> None:
    before = shop_events()
    baseline = snapshot(LineageGraph.from_events(before), [LineageGraph.from_events(before).datasets()[0]])
    sql = FEATURES_SQL.replace("FROM raw.users AS u", ", AVG(w.temperature_c) AS temp\nFROM raw.users AS u").replace(
        "WHERE", "JOIN raw.weather AS w ON w.country = u.country\nWHERE")
    after = before + run_events("load_weather", [], [dataset("raw.weather", WEATHER)], at=T0 + timedelta(hours=20))
    after += sql_job_events("build_churn", sql, {"raw.users": USERS, "raw.orders": ORDERS, "raw.weather": WEATHER},
                            at=T0 + timedelta(days=1))
    result = audit(after, checks=["lineage_drift"], baseline=baseline)
    by_title = {f.title: f for f in result.findings}
    new_source = by_title["new upstream source duckdb:///data/warehouse.duckdb/warehouse.raw.weather reaches warehouse.features.churn"]
    assert new_source.severity == "high"
    assert new_source.evidence["path"][-1].endswith("features.churn")
    assert "job shop/build_churn inputs changed" in by_title
    assert any(t.startswith("sources of ") for t in by_title)
    # and against itself nothing changed
    assert titles(audit(before, checks=["lineage_drift"], baseline=baseline)) == []


# ------------------------------------------------------------------ data drift


def _frames(shift: float, n: int, seed: int = 0):
    rng = np.random.default_rng(seed)
    ref = pd.DataFrame({"revenue": rng.normal(100, 20, n), "plan": rng.choice(["free", "pro", "ent"], n, p=[.7, .25, .05])})
    rng2 = np.random.default_rng(seed + 1)
    cur = pd.DataFrame({"revenue": rng2.normal(100 + shift, 20, n),
                        "plan": rng2.choice(["free", "pro", "ent"], n, p=[.7, .25, .05] if not shift else [.4, .4, .2])})
    return ref, cur


def test_a_shifted_distribution_drifts_and_an_unshifted_one_does_not() -> None:
    th = Thresholds()
    for n in (500, 20_000):  # KS + chi-square, then Wasserstein + Jensen-Shannon
        ref, cur = _frames(shift=15, n=n)
        shifted = compare_frames(ref, cur, th)
        assert shifted.drifted and all(c.drifted for c in shifted.columns), shifted.to_json()
        ref, cur = _frames(shift=0, n=n, seed=3)
        same = compare_frames(ref, cur, th)
        assert not same.drifted and not any(c.drifted for c in same.columns), same.to_json()
    methods = {c.method for c in compare_frames(*_frames(0, 500), th).columns}
    assert methods == {"ks", "chisquare"}
    methods = {c.method for c in compare_frames(*_frames(0, 20_000), th).columns}
    assert methods == {"wasserstein", "jensenshannon"}


def test_unshifted_samples_alert_no_more_often_than_the_tests_significance_level() -> None:
    """KS and chi-square at p < 0.05 wrongly alert on about 5% of unshifted samples, not more."""
    alerts = [c.drifted for seed in range(40) for c in compare_frames(*_frames(0, 500, seed=seed * 10), Thresholds()).columns]
    assert sum(alerts) / len(alerts) <= 0.1, sum(alerts)
    # large samples use distances, which do not alert on noise at all
    assert not any(compare_frames(*_frames(0, 20_000, seed=seed * 10), Thresholds()).drifted for seed in range(5))


def test_psi_and_per_column_settings() -> None:
    ref, cur = _frames(shift=15, n=5000)
    assert psi(ref["revenue"].to_numpy(), cur["revenue"].to_numpy()) > 0.2
    same_ref, same_cur = _frames(shift=0, n=5000)
    assert psi(same_ref["revenue"].to_numpy(), same_cur["revenue"].to_numpy()) < 0.1
    from lineage_auditor.audit.config import DriftConfig

    drift = DriftConfig.model_validate({"columns": {"revenue": {"method": "psi"}, "plan": {"skip": True}}})
    result = compare_frames(ref, cur, Thresholds(), drift)
    assert [(c.column, c.method, c.drifted) for c in result.columns] == [("revenue", "psi", True)]


def test_data_drift_check_reports_columns_and_dataset() -> None:
    ref, cur = _frames(shift=15, n=800)
    config = CONFIG.replace("    consumers: [churn-model]\n",
                            "    consumers: [churn-model]\n    data: {warehouse: 'duckdb:unused.duckdb', table: features.churn}\n")
    result = audit(shop_events(), config=config, checks=["data_drift"],
                   load_rows=lambda target, which, baseline: ref if which == "reference" else cur)
    assert "dataset drift: 2 of 2 columns drifted" in titles(result)
    assert result.details["data_drift"]
    calm = audit(shop_events(), config=config, checks=["data_drift"],
                 load_rows=lambda target, which, baseline: _frames(0, 800)[0 if which == "reference" else 1])
    assert titles(calm) == []


# ------------------------------------------------------------------ freshness and volume


def test_stale_dataset_and_row_count_out_of_band() -> None:
    config = CONFIG.replace("    consumers: [churn-model]\n",
                            "    consumers: [churn-model]\n    freshness: {max_age: 26h}\n    volume: {min_rows: 10, tolerance: 0.5}\n")
    events = shop_events(rows=1000) + sql_job_events("build_churn", FEATURES_SQL, {"raw.users": USERS, "raw.orders": ORDERS},
                                                     at=T0 + timedelta(days=1), rows=100)
    fresh = audit(events, config=config, checks=["freshness"], now=T0 + timedelta(days=1, hours=3))
    assert [f.title for f in fresh.findings] == ["row count outside the expected band: 100 rows, 90% off the median 1000 of earlier runs"]
    stale = audit(events, config=config, checks=["freshness"], now=T0 + timedelta(days=3))
    assert any(t.startswith("stale: last successful run") for t in titles(stale))


def test_a_failed_latest_run_is_reported() -> None:
    events = shop_events() + sql_job_events("build_churn", FEATURES_SQL, {"raw.users": USERS, "raw.orders": ORDERS},
                                            at=T0 + timedelta(days=1), state="FAIL")
    assert "latest run failed" in titles(audit(events, checks=["freshness"]))


# ------------------------------------------------------------------ PII


def test_pii_reaching_a_feature_through_a_join_is_high_with_its_path() -> None:
    result = audit(shop_events(), checks=["pii"])
    assert len(result.findings) == 1
    finding = result.findings[0]
    assert finding.severity == "high"
    assert finding.subject == "warehouse.features.churn.contact"
    (path,) = finding.evidence["paths"]
    assert path[0]["source"].endswith("warehouse.raw.users.email")
    assert path[-1]["target"].endswith("features.churn.contact")
    assert path[0]["jobs"] == ["shop/build_churn"]


def test_pii_hashed_before_the_feature_is_not_a_finding() -> None:
    sql = FEATURES_SQL.replace("u.email AS contact", "sha256(u.email) AS contact")
    assert titles(audit(shop_events(sql=sql), checks=["pii"])) == []


def test_an_allow_listed_masking_function_counts_as_masking() -> None:
    sql = FEATURES_SQL.replace("u.email AS contact", "my_tokenize(u.email) AS contact")
    assert len(audit(shop_events(sql=sql), checks=["pii"]).findings) == 1
    config = CONFIG + "masking:\n  functions: [my_tokenize]\n"
    assert titles(audit(shop_events(sql=sql), config=config, checks=["pii"])) == []


def test_tags_from_openlineage_tags_facet_are_traced() -> None:
    config = "ai_datasets:\n  - name: features.churn\n"
    result = audit(shop_events(tag_email_in_store=True), config=config, checks=["pii"])
    assert [f.subject for f in result.findings] == ["warehouse.features.churn.contact"]
    assert audit(shop_events(), config=config, checks=["pii"]).findings == []


def test_pii_through_two_jobs_keeps_every_hop_in_the_path() -> None:
    staging = "CREATE TABLE staging.users AS SELECT user_id, lower(email) AS email_norm, name FROM raw.users"
    features = "CREATE TABLE features.churn AS SELECT s.user_id, s.email_norm AS contact FROM staging.users AS s"
    events = run_events("load_users", [], [dataset("raw.users", USERS)], at=T0 - timedelta(hours=2))
    events += sql_job_events("stage_users", staging, {"raw.users": USERS}, at=T0 - timedelta(hours=1))
    events += sql_job_events("build_churn", features, {"staging.users": {"user_id": "BIGINT", "email_norm": "TEXT", "name": "TEXT"}}, at=T0)
    result = audit(events, checks=["pii"])
    (finding,) = [f for f in result.findings if "email" in f.title]
    assert [h["jobs"] for h in finding.evidence["paths"][0]] == [["shop/stage_users"], ["shop/build_churn"]]


# ------------------------------------------------------------------ coverage and runner


def test_coverage_flags_missing_owner_and_description() -> None:
    events = [e for e in shop_events()]
    bare = copy.deepcopy(events)
    for e in bare:
        e["job"]["facets"].pop("ownership", None)
        e["job"]["facets"].pop("documentation", None)
    result = audit(bare, config="ai_datasets:\n  - name: features.churn\n", checks=["coverage"])
    got = titles(result)
    assert "AI dataset has no owner" in got and "AI dataset has no description or purpose" in got
    assert "upstream job has no owner" in got
    assert titles(audit(events, checks=["coverage"])) == []


def test_ids_are_stable_and_an_absent_ai_dataset_is_reported() -> None:
    a, b = audit(shop_events()), audit(shop_events())
    assert [f.id for f in a.findings] == [f.id for f in b.findings]
    cfg = CONFIG.replace("ai_datasets:\n", "ai_datasets:\n  - name: features.nowhere\n")
    assert "AI dataset is not in the lineage store" in titles(audit(shop_events(), config=cfg, checks=["coverage"]))
