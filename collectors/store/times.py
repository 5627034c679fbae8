"""Event times as sortable UTC keys.

OpenLineage event times are ISO 8601 strings with any offset and any precision
(Java producers send nanoseconds). The store dedupes and orders on one canonical form,
``YYYY-MM-DDTHH:MM:SS.fffffffffZ`` in UTC with nine fraction digits, so string order is time
order and ``...Z`` and ``...+00:00`` are the same event.
"""

from __future__ import annotations

import re
from datetime import datetime, timezone

_FRACTION = re.compile(r"^(?P<head>\d{4}-\d{2}-\d{2}[T ]\d{2}:\d{2}(?::\d{2})?)(?:[.,](?P<frac>\d+))?(?P<tz>.*)$")


def time_key(value: str | datetime) -> str:
    """The canonical UTC key of an event time; naive times are taken as UTC.

    Raises ValueError for a string that is not an ISO 8601 date-time.
    """
    if isinstance(value, datetime):
        moment = value if value.tzinfo else value.replace(tzinfo=timezone.utc)
        utc = moment.astimezone(timezone.utc)
        return utc.strftime("%Y-%m-%dT%H:%M:%S") + f".{utc.microsecond:06d}000Z"
    match = _FRACTION.match(str(value).strip())
    if not match:
        raise ValueError(f"not an ISO 8601 date-time: {value!r}")
    tz = match.group("tz")
    moment = datetime.fromisoformat(match.group("head") + (tz if tz not in ("z", "Z") else "+00:00"))
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=timezone.utc)
    utc = moment.astimezone(timezone.utc)
    fraction = (match.group("frac") or "")[:9].ljust(9, "0")
    return utc.strftime("%Y-%m-%dT%H:%M:%S") + f".{fraction}Z"


def display_time(key: str | None) -> str | None:
    """A key as a readable ISO time: microseconds unless the nanoseconds matter."""
    if not key:
        return key
    head, _, rest = key.partition(".")
    fraction = rest.rstrip("Z")
    if fraction.endswith("000"):
        fraction = fraction[:6]
    return f"{head}.{fraction}Z" if fraction.strip("0") else f"{head}Z"
