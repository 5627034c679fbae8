"""Schedules: cron or a preset, staggered deterministically, and the next run time.

Fifty pipelines on ``@daily`` must not all start at 00:00 and hit one API at once. A spec's
``stagger: 2h`` moves its runs by an offset inside that window derived from the pipeline id
(the same id always gets the same offset, ids spread evenly), whole minutes, applied to the
cron expression itself so the staggered schedule is still plain cron (what Airflow gets).
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from lineage_auditor.errors import ConfigError

PRESETS = {
    "@hourly": "0 * * * *",
    "@daily": "0 0 * * *",
    "@midnight": "0 0 * * *",
    "@weekly": "0 0 * * 0",
    "@monthly": "0 0 1 * *",
    "@yearly": "0 0 1 1 *",
    "@annually": "0 0 1 1 *",
}
_FIELDS = (("minute", 0, 59), ("hour", 0, 23), ("day of month", 1, 31), ("month", 1, 12), ("day of week", 0, 6))
_NAMES = {"jan": 1, "feb": 2, "mar": 3, "apr": 4, "may": 5, "jun": 6, "jul": 7, "aug": 8, "sep": 9, "oct": 10,
          "nov": 11, "dec": 12, "sun": 0, "mon": 1, "tue": 2, "wed": 3, "thu": 4, "fri": 5, "sat": 6}


@dataclass(frozen=True)
class Cron:
    """A parsed five-field cron expression (minute hour day-of-month month day-of-week)."""

    text: str
    minutes: tuple[int, ...]
    hours: tuple[int, ...]
    days: frozenset[int]
    months: frozenset[int]
    weekdays: frozenset[int]
    any_day: bool
    any_weekday: bool

    def next_after(self, moment: datetime, zone: ZoneInfo) -> datetime | None:
        """The first time strictly after ``moment`` this schedule fires (in ``zone``), as UTC."""
        local = moment.astimezone(zone).replace(second=0, microsecond=0)
        day = local.date()
        for _ in range(366 * 8):  # leap-day schedules fire at least every 8 years
            if day.month in self.months and self._day_matches(day.day, (day.weekday() + 1) % 7):
                for hour in self.hours:
                    for minute in self.minutes:
                        candidate = datetime(day.year, day.month, day.day, hour, minute, tzinfo=zone)
                        if candidate > local:
                            return candidate.astimezone(timezone.utc)
            day += timedelta(days=1)
        return None

    def _day_matches(self, dom: int, dow: int) -> bool:
        if self.any_day or self.any_weekday:  # one restricted: that one decides
            return dom in self.days and dow in self.weekdays
        return dom in self.days or dow in self.weekdays  # both restricted: cron's OR


def parse_cron(text: str) -> Cron | None:
    """A schedule as cron (``none`` gives None); ConfigError names the bad field."""
    spec = text.strip().lower()
    if spec in ("none", "manual", "@once", ""):
        return None
    expression = PRESETS.get(spec, spec)
    parts = expression.split()
    if len(parts) != 5:
        raise ConfigError(f"schedule {text!r}: expected five cron fields or one of {', '.join(PRESETS)}, none")
    values = [_field(part, name, low, high, text) for part, (name, low, high) in zip(parts, _FIELDS)]
    weekdays = {v % 7 for v in values[4]}  # 7 is Sunday too
    return Cron(expression, tuple(sorted(values[0])), tuple(sorted(values[1])), frozenset(values[2]),
                frozenset(values[3]), frozenset(weekdays), parts[2] == "*", parts[4] == "*")


def _field(part: str, name: str, low: int, high: int, text: str) -> set[int]:
    found: set[int] = set()
    top = 7 if name == "day of week" else high
    for item in part.split(","):
        body, _, step_text = item.partition("/")
        try:
            step = int(step_text) if step_text else 1
            if body == "*":
                start, end = low, high
            elif "-" in body:
                a, b = body.split("-", 1)
                start, end = _number(a), _number(b)
            else:
                start = _number(body)
                end = high if step_text else start
        except ValueError:
            raise ConfigError(f"schedule {text!r}: {name} {item!r} is not a number, range or step") from None
        if step < 1 or not (low <= start <= top and low <= end <= top and start <= end):
            raise ConfigError(f"schedule {text!r}: {name} {item!r} is outside {low}-{top}")
        found.update(range(start, end + 1, step))
    return found


def _number(text: str) -> int:
    return _NAMES[text] if text in _NAMES else int(text)


def stagger_offset(pipeline_id: str, window: timedelta | None) -> timedelta:
    """A deterministic offset inside ``window`` for ``pipeline_id`` (whole minutes)."""
    minutes = int(window.total_seconds() // 60) if window else 0
    if minutes <= 0:
        return timedelta(0)
    digest = int.from_bytes(hashlib.sha256(pipeline_id.encode("utf-8")).digest()[:8], "big")
    return timedelta(minutes=digest % minutes)


def staggered(cron: Cron, offset: timedelta) -> str:
    """The cron expression with its fixed minute/hour moved by ``offset`` (plain cron again)."""
    if not offset or len(cron.minutes) != 1:
        return cron.text
    parts = cron.text.split()
    total = cron.minutes[0] + int(offset.total_seconds() // 60)
    if len(cron.hours) == 24:  # hourly: the offset stays inside the hour
        parts[0] = str(total % 60)
        return " ".join(parts)
    if len(cron.hours) != 1:
        parts[0] = str(total % 60)
        return " ".join(parts)
    hour = cron.hours[0] + total // 60
    if hour > 23:  # keep the run on its day: a stagger never moves a run past midnight
        hour, total = 23, 59
    parts[0], parts[1] = str(total % 60), str(hour)
    return " ".join(parts)


def zone(name: str) -> ZoneInfo:
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise ConfigError(f"timezone {name!r}: not a known IANA time zone (e.g. UTC, Europe/Berlin)") from None
