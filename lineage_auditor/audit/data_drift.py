"""Check 4: data drift of AI datasets, current rows against reference rows.

Per column, the method follows common practice for drift monitoring:

* numeric, small samples: two-sample Kolmogorov-Smirnov (``scipy.stats.ks_2samp``), drift
  when p < ``ks_pvalue``;
* numeric, large samples: Wasserstein distance normalized by the reference's standard
  deviation (``scipy.stats.wasserstein_distance``), drift when above ``wasserstein``
  (with many rows every KS test is "significant", so a distance is the useful measure);
* categorical, small: chi-square test of homogeneity of the two samples' category counts
  (``scipy.stats.chi2_contingency``); large: Jensen-Shannon distance
  (``scipy.spatial.distance.jensenshannon``, base 2, in [0, 1]);
* PSI on demand (per column ``method: psi``): the symmetric KL divergence of binned shares,
  from ``scipy.special.rel_entr``.

The dataset drifts when the share of drifted columns reaches ``drift_share``.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
import pandas as pd
from scipy import stats
from scipy.spatial.distance import jensenshannon
from scipy.special import rel_entr

from lineage_auditor.audit.config import AIDataset, DriftConfig, Thresholds
from lineage_auditor.audit.context import AuditContext
from lineage_auditor.audit.findings import HIGH, MEDIUM, Finding, make_finding
from lineage_auditor.model import DatasetRef

CHECK = "data_drift"
EPS = 1e-6
PSI_BINS = 10


@dataclass
class ColumnDriftResult:
    column: str
    kind: str  # numeric | categorical
    method: str
    statistic: float
    threshold: float
    drifted: bool
    reference_rows: int
    current_rows: int
    p_value: float | None = None

    def to_json(self) -> dict[str, Any]:
        return {k: (round(v, 6) if isinstance(v, float) else v) for k, v in asdict(self).items()}


@dataclass
class DatasetDriftResult:
    dataset: str
    columns: list[ColumnDriftResult]
    drift_share: float
    threshold_share: float

    @property
    def drifted(self) -> bool:
        return bool(self.columns) and self.drift_share >= self.threshold_share

    def to_json(self) -> dict[str, Any]:
        return {"dataset": self.dataset, "drifted": self.drifted, "drift_share": round(self.drift_share, 4),
                "threshold_share": self.threshold_share, "columns": [c.to_json() for c in self.columns]}


def compare_frames(
    reference: pd.DataFrame, current: pd.DataFrame, thresholds: Thresholds, drift: DriftConfig | None = None, *, dataset: str = ""
) -> DatasetDriftResult:
    """Drift of every column both frames share (minus excluded and skipped ones)."""
    drift = drift or DriftConfig()
    results = []
    for column in [c for c in reference.columns if c in current.columns and c not in drift.exclude]:
        spec = drift.columns.get(column)
        if spec is not None and spec.skip:
            continue
        result = column_drift(
            reference[column], current[column], thresholds,
            method=spec.method if spec else "auto", threshold=spec.threshold if spec else None, column=str(column),
        )
        if result is not None:
            results.append(result)
    share = sum(r.drifted for r in results) / len(results) if results else 0.0
    return DatasetDriftResult(dataset, results, share, drift.drift_share or thresholds.drift_share)


def column_drift(
    reference: pd.Series, current: pd.Series, thresholds: Thresholds, *, method: str = "auto",
    threshold: float | None = None, column: str = "",
) -> ColumnDriftResult | None:
    """One column's drift; None when either side has no values."""
    ref, cur = reference.dropna(), current.dropna()
    if ref.empty or cur.empty:
        return None
    numeric = _is_numeric(ref) and _is_numeric(cur)
    small = min(len(ref), len(cur)) < thresholds.small_sample
    if method == "auto":
        method = ("ks" if small else "wasserstein") if numeric else ("chisquare" if small else "jensenshannon")
    if numeric:
        ref_values, cur_values = _as_float(ref), _as_float(cur)
    kind = "numeric" if numeric else "categorical"
    p_value = None
    if method == "ks" and numeric:
        test = stats.ks_2samp(ref_values, cur_values)
        stat, p_value, limit = float(test.statistic), float(test.pvalue), threshold or thresholds.ks_pvalue
        drifted = p_value < limit
    elif method == "wasserstein" and numeric:
        scale = float(np.std(ref_values)) or float(np.mean(np.abs(ref_values))) or 1.0
        stat = float(stats.wasserstein_distance(ref_values, cur_values)) / scale
        limit = threshold or thresholds.wasserstein
        drifted = stat > limit
    elif method == "psi":
        stat, limit = psi(ref_values, cur_values) if numeric else _categorical_psi(ref, cur), threshold or thresholds.psi
        drifted = stat > limit
    elif method == "chisquare" or (method == "ks" and not numeric):
        test = stats.chi2_contingency(_counts(ref, cur))
        stat, p_value, limit = float(test.statistic), float(test.pvalue), threshold or thresholds.chi2_pvalue
        method, drifted = "chisquare", p_value < limit
    else:  # jensenshannon, or wasserstein asked of a categorical column
        ref_share, cur_share = _shares(ref, cur)
        stat, limit = float(jensenshannon(ref_share, cur_share, base=2)), threshold or thresholds.jensenshannon
        method, drifted = "jensenshannon", stat > limit
    return ColumnDriftResult(column, kind, method, stat, float(limit), bool(drifted), len(ref), len(cur), p_value)


def psi(reference: np.ndarray, current: np.ndarray, bins: int = PSI_BINS) -> float:
    """Population stability index over reference quantile bins.

    Zero-inflated or near-constant columns collapse quantile bins into one or two; then
    equal-width bins over both samples' range are used instead, so a shift still shows.
    """
    edges = np.unique(np.quantile(reference, np.linspace(0, 1, bins + 1)))
    if len(edges) - 1 < bins // 2:
        edges = np.unique(np.histogram_bin_edges(np.concatenate([reference, current]), bins=bins))
    if len(edges) < 2:
        edges = np.array([reference.min() - 0.5, reference.max() + 0.5])
    edges = edges.astype(float)
    edges[0], edges[-1] = -np.inf, np.inf
    ref_share = np.histogram(reference, edges)[0] / len(reference) + EPS
    cur_share = np.histogram(current, edges)[0] / len(current) + EPS
    return float(np.sum(rel_entr(cur_share, ref_share) + rel_entr(ref_share, cur_share)))


def _categorical_psi(ref: pd.Series, cur: pd.Series) -> float:
    ref_share, cur_share = _shares(ref, cur)
    ref_share, cur_share = ref_share + EPS, cur_share + EPS
    return float(np.sum(rel_entr(cur_share, ref_share) + rel_entr(ref_share, cur_share)))


def _shares(ref: pd.Series, cur: pd.Series) -> tuple[np.ndarray, np.ndarray]:
    ref_counts = ref.astype(str).value_counts()
    cur_counts = cur.astype(str).value_counts()
    categories = sorted(set(ref_counts.index) | set(cur_counts.index))
    r = ref_counts.reindex(categories, fill_value=0).to_numpy(dtype=float)
    c = cur_counts.reindex(categories, fill_value=0).to_numpy(dtype=float)
    return r / r.sum(), c / c.sum()


def _counts(ref: pd.Series, cur: pd.Series) -> np.ndarray:
    """A 2 x k table of category counts (reference row, current row) for the homogeneity test."""
    ref_counts = ref.astype(str).value_counts()
    cur_counts = cur.astype(str).value_counts()
    categories = sorted(set(ref_counts.index) | set(cur_counts.index))
    return np.array([ref_counts.reindex(categories, fill_value=0).to_numpy(),
                     cur_counts.reindex(categories, fill_value=0).to_numpy()])


def _is_numeric(series: pd.Series) -> bool:
    return pd.api.types.is_numeric_dtype(series) and not pd.api.types.is_bool_dtype(series)


def _as_float(series: pd.Series) -> np.ndarray:
    return series.to_numpy(dtype=float)


def run(ctx: AuditContext) -> list[Finding]:
    findings: list[Finding] = []
    results: dict[str, Any] = {}
    for dataset, target in sorted(ctx.targets.items()):
        if target.data is None or ctx.load_rows is None:
            continue
        reference = ctx.load_rows(target, "reference", ctx.baseline)
        current = ctx.load_rows(target, "current", ctx.baseline)
        if reference is None or current is None or reference.empty or current.empty:
            results[str(dataset)] = {"skipped": "no reference data (save a baseline with the data section configured)"}
            continue
        result = compare_frames(reference, current, ctx.config.thresholds, target.drift, dataset=str(dataset))
        results[str(dataset)] = result.to_json()
        findings.extend(drift_findings(dataset, target, result))
    ctx.details[CHECK] = results
    return findings


def drift_findings(dataset: DatasetRef, target: AIDataset, result: DatasetDriftResult) -> list[Finding]:
    findings = []
    for col in result.columns:
        if col.drifted:
            findings.append(make_finding(
                CHECK, MEDIUM, f"{dataset.name}.{col.column}", f"{col.column} drifted ({col.method} {col.statistic:.4g})",
                key="column", evidence={"dataset": str(dataset), **col.to_json()},
                remediation="Check the upstream change behind the shift (see lineage and schema drift); retrain or recalibrate if it is real.",
            ))
    if result.drifted:
        findings.append(make_finding(
            CHECK, HIGH, dataset.name,
            f"dataset drift: {sum(c.drifted for c in result.columns)} of {len(result.columns)} columns drifted",
            key="dataset", evidence={"dataset": str(dataset), "drift_share": round(result.drift_share, 4),
                                     "threshold_share": result.threshold_share,
                                     "drifted_columns": [c.column for c in result.columns if c.drifted]},
            remediation=f"The inputs of {', '.join(target.consumers) or 'the model'} no longer look like the reference; investigate before the next training or scoring run.",
        ))
    return findings
