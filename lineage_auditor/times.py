"""The one parser of event times.

OpenLineage event times are ISO 8601 strings with any UTC offset and any precision (Java
producers send nanoseconds). Everything that orders, compares or stores events goes through
here, so ``10:00+02:00`` and ``08:00Z`` are the same moment everywhere:

* :func:`parse_time` gives an aware UTC ``datetime`` (microseconds);
* :func:`time_key` gives the canonical sortable text ``YYYY-MM-DDTHH:MM:SS.fffffffffZ``
  (UTC, nine fraction digits), so string order is time order and nanoseconds survive;
* :func:`display_time` turns a key back into readable ISO text.
"""

from __future__ import annotations

import re
from datetime import datetime, timezone

_ISO = re.compile(r"^(?P<head>\d{4}-\d{2}-\d{2}[T ]\d{2}:\d{2}(?::\d{2})?)(?:[.,](?P<frac>\d+))?(?P<tz>.*)$")


def _split(value: str) -> tuple[datetime, str]:
    """The moment (aware UTC, whole seconds) and the fraction digits of an ISO time."""
    match = _ISO.match(value.strip())
    if not match:
        raise ValueError(f"not an ISO 8601 date-time: {value!r}")
    tz = match.group("tz").strip()
    try:
        moment = datetime.fromisoformat(match.group("head") + ("+00:00" if tz in ("z", "Z") else tz))
    except ValueError:
        raise ValueError(f"not an ISO 8601 date-time: {value!r}") from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=timezone.utc)
    return moment.astimezone(timezone.utc), match.group("frac") or ""


def parse_time(value: str | datetime) -> datetime:
    """An event time as an aware UTC datetime; naive times are taken as UTC.

    Raises ValueError for text that is not an ISO 8601 date-time.
    """
    if isinstance(value, datetime):
        moment = value if value.tzinfo else value.replace(tzinfo=timezone.utc)
        return moment.astimezone(timezone.utc)
    if not isinstance(value, str):
        raise ValueError(f"not an ISO 8601 date-time: {value!r}")
    moment, fraction = _split(value)
    return moment.replace(microsecond=int(fraction[:6].ljust(6, "0")))


def try_parse_time(value: object) -> datetime | None:
    """:func:`parse_time`, or None for a missing or unreadable time."""
    if not value:
        return None
    try:
        return parse_time(value)  # type: ignore[arg-type]
    except ValueError:
        return None


def time_key(value: str | datetime) -> str:
    """The canonical UTC key of an event time (see the module docstring).

    Raises ValueError for text that is not an ISO 8601 date-time.
    """
    if isinstance(value, datetime):
        utc = parse_time(value)
        return utc.strftime("%Y-%m-%dT%H:%M:%S") + f".{utc.microsecond:06d}000Z"
    if not isinstance(value, str):
        raise ValueError(f"not an ISO 8601 date-time: {value!r}")
    moment, fraction = _split(value)
    return moment.strftime("%Y-%m-%dT%H:%M:%S") + "." + fraction[:9].ljust(9, "0") + "Z"


def display_time(key: str | None) -> str | None:
    """A key as readable ISO text: microseconds unless the nanoseconds matter."""
    if not key:
        return key
    head, _, rest = key.partition(".")
    fraction = rest.rstrip("Z")
    if fraction.endswith("000"):
        fraction = fraction[:6]
    return f"{head}.{fraction}Z" if fraction.strip("0") else f"{head}Z"


def iso(moment: datetime) -> str:
    """An aware datetime as ISO text in UTC with a ``Z`` (what our events carry)."""
    return parse_time(moment).isoformat().replace("+00:00", "Z")
