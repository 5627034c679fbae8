"""Money from measured work: the cost model's rates applied to CPU time, bytes scanned and warehouse time.

    amount = cpu_seconds / 3600 * cpu_hour
           + bytes_scanned / 2**40 * tib_scanned
           + warehouse_seconds / 3600 * credits_per_hour * credit_hour

One function, used where a step's cost is recorded and where a run recorded without a cost
model is priced afterwards (``lineage-audit costs``), so both give the same figure.
"""

from __future__ import annotations

from lineage_auditor.governance.model import Rates

TIB = 2**40


def price(rates: Rates, *, cpu_seconds: float, bytes_scanned: int | None, warehouse_seconds: float | None) -> dict[str, float]:
    """The cost by part (``cpu``, ``scanned``, ``credits``) and its ``total``, rounded to 1e-9."""
    parts = {
        "cpu": cpu_seconds / 3600.0 * rates.cpu_hour,
        "scanned": (bytes_scanned or 0) / TIB * rates.tib_scanned,
        "credits": (warehouse_seconds or 0.0) / 3600.0 * rates.credits_per_hour * rates.credit_hour,
    }
    parts = {k: round(v, 9) for k, v in parts.items()}
    parts["total"] = round(sum(parts.values()), 9)
    return parts
