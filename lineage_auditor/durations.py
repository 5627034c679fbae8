"""The one duration grammar of every file lineage-audit reads, and the one way to print a duration.

Specs (``max_staleness: 1d 12h``) and the audit config (``max_age: 26h``, ``current_window:
2w``, ``1.5h``) share it: one or more ``<number><unit>`` parts, units ``w d h m s``, each at
most once, numbers with an optional fraction, parts optionally separated by spaces; or a
plain number of seconds (``45`` or ``"45"``). ``"1d 12h"``, ``"2w"``, ``"1.5h"``, ``"90m"``, ``"1h30m"``, ``45``.

Errors are :class:`ValueError` with the accepted forms, so pydantic turns them into a
validation error at the key's file, line and column; a value too large for a timedelta is
one of them (never an ``OverflowError``).
"""

from __future__ import annotations

import math
import re
from datetime import timedelta
from typing import Any

UNIT_SECONDS = {"w": 604800, "d": 86400, "h": 3600, "m": 60, "s": 1}
MAX_SECONDS = float(timedelta.max.days * 86400)  # 999999999 days: about timedelta's own limit
EXAMPLES = "e.g. 90s, 30m, 1.5h, 36h, 1d 12h, 2w"
_NUMBER = re.compile(r"\d+(?:\.\d+)?")
_PART = re.compile(r"\s*(\d+(?:\.\d+)?|\.\d+)\s*([wdhms])(?![a-z])", re.IGNORECASE)


def parse_seconds(value: Any) -> float:
    """Seconds in ``value``: a duration text (see the module doc), a number, or a timedelta."""
    if isinstance(value, timedelta):
        return _checked(value.total_seconds(), value)
    if isinstance(value, bool):
        raise ValueError(f"not a duration: {value!r} ({EXAMPLES})")
    if isinstance(value, (int, float)):
        return _checked(float(value), value)
    if not isinstance(value, str):
        raise ValueError(f"not a duration: {value!r} ({EXAMPLES})")
    text = value.strip()
    if not text:
        raise ValueError(f"empty duration ({EXAMPLES})")
    if _NUMBER.fullmatch(text):
        return _checked(float(text), value)
    total, seen, pos = 0.0, set(), 0
    while pos < len(text):
        match = _PART.match(text, pos)
        if match is None:
            raise ValueError(f"not a duration: {value!r} ({EXAMPLES})")
        unit = match.group(2).lower()
        if unit in seen:
            raise ValueError(f"not a duration: {value!r} (unit {unit!r} given twice)")
        seen.add(unit)
        total += float(match.group(1)) * UNIT_SECONDS[unit]
        pos = match.end()
        while pos < len(text) and text[pos] in " ,":
            pos += 1
    return _checked(total, value)


def parse_duration(value: Any) -> timedelta:
    """A timedelta from a duration text, a number of seconds, or a timedelta."""
    return timedelta(seconds=parse_seconds(value))


def _checked(seconds: float, value: Any) -> float:
    if not math.isfinite(seconds) or seconds < 0:
        raise ValueError(f"not a duration: {value!r} (a duration is a finite, non-negative amount)")
    if seconds > MAX_SECONDS:
        raise ValueError(f"duration too long: {value!r} (at most {int(MAX_SECONDS // 86400)} days)")
    return seconds


def display_duration(value: timedelta | float | None) -> str:
    """A duration for people, in its two largest units: ``2s``, ``0.4s``, ``12m 5s``, ``1d 12h``.

    The result reads back with :func:`parse_duration` (to the shown precision); a few seconds
    never round down to ``0m``.
    """
    if value is None:
        return "?"
    seconds = value.total_seconds() if isinstance(value, timedelta) else float(value)
    if not math.isfinite(seconds):
        return "?"
    sign, seconds = ("-" if seconds < 0 else ""), abs(seconds)
    if seconds < 10:
        return f"{sign}{float(f'{seconds:.2g}'):g}s"
    rest = int(round(seconds))
    counts = []
    for unit in ("d", "h", "m", "s"):
        count, rest = divmod(rest, UNIT_SECONDS[unit])
        counts.append((count, unit))
    first = next(i for i, (count, _) in enumerate(counts) if count)
    return sign + " ".join(f"{count}{unit}" for count, unit in counts[first:first + 2] if count)
