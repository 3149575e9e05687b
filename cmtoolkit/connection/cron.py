"""A connection's ``schedule``: a five-field cron expression, evaluated in UTC.

The one home of cron: validation (:func:`cron_problem`, so a typo is reported when the file is
read, with the field that is wrong) and evaluation (:class:`Cron`: when it fires next), used by the
scheduler (``cmtoolkit.batch.scheduler``) and by the notebook's schedule widget, which shows the
next run times.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from cmtoolkit.errors import ConfigurationError

MACROS = ("@yearly", "@annually", "@monthly", "@weekly", "@daily", "@midnight", "@hourly")

_MONTHS = "jan feb mar apr may jun jul aug sep oct nov dec".split()
_DAYS = "sun mon tue wed thu fri sat".split()

# (name, low, high, names that stand for numbers)
CRON_FIELDS: tuple[tuple[str, int, int, dict[str, int]], ...] = (
    ("minute", 0, 59, {}),
    ("hour", 0, 23, {}),
    ("day of month", 1, 31, {}),
    ("month", 1, 12, {m: i + 1 for i, m in enumerate(_MONTHS)}),
    ("day of week", 0, 7, {d: i for i, d in enumerate(_DAYS)}),
)


def cron_problem(expression: str) -> str | None:
    """Why ``expression`` is not a valid cron schedule, or None when it is."""
    text = expression.strip()
    if text.lower() in MACROS:
        return None
    parts = text.split()
    if len(parts) != 5:
        return (
            f"a cron schedule has 5 fields (minute hour day-of-month month day-of-week), "
            f"got {len(parts)}; e.g. '0 3 * * *' for 03:00 UTC every day"
        )
    for part, (name, low, high, names) in zip(parts, CRON_FIELDS, strict=True):
        problem = _field_problem(part, low, high, names)
        if problem:
            return f"{name} field {part!r}: {problem}"
    return None


def _field_problem(part: str, low: int, high: int, names: dict[str, int]) -> str | None:
    for item in part.split(","):
        if not item:
            return "empty list item"
        base, _, step = item.partition("/")
        if step and (not step.isdigit() or int(step) == 0):
            return f"step {step!r} must be a positive number"
        if base == "*":
            continue
        bounds = base.split("-")
        if len(bounds) > 2:
            return f"{base!r} is not a value or a range"
        values = []
        for b in bounds:
            value = names.get(b.lower()) if names else None
            if value is None:
                if not b.isdigit():
                    return f"{b!r} is not a number between {low} and {high}"
                value = int(b)
            if not low <= value <= high:
                return f"{value} is outside {low}-{high}"
            values.append(value)
        if len(values) == 2 and values[0] > values[1]:
            return f"range {base!r} runs backwards"
    return None


_MACRO_EXPANSION = {
    "@yearly": "0 0 1 1 *",
    "@annually": "0 0 1 1 *",
    "@monthly": "0 0 1 * *",
    "@weekly": "0 0 * * 0",
    "@daily": "0 0 * * *",
    "@midnight": "0 0 * * *",
    "@hourly": "0 * * * *",
}


@dataclass(frozen=True)
class Cron:
    """A parsed cron expression; times are naive UTC or aware datetimes (compared in UTC)."""

    expression: str
    minutes: frozenset[int]
    hours: frozenset[int]
    days: frozenset[int]
    months: frozenset[int]
    weekdays: frozenset[int]  # 0 = Sunday
    days_any: bool
    weekdays_any: bool

    @classmethod
    def parse(cls, expression: str) -> Cron:
        problem = cron_problem(expression)
        if problem:
            raise ConfigurationError(f"schedule {expression!r}: {problem}")
        text = _MACRO_EXPANSION.get(expression.strip().lower(), expression.strip())
        parts = text.split()
        sets = [
            _expand(part, low, high, names)
            for part, (_, low, high, names) in zip(parts, CRON_FIELDS, strict=True)
        ]
        weekdays = frozenset(d % 7 for d in sets[4])
        return cls(
            expression,
            frozenset(sets[0]),
            frozenset(sets[1]),
            frozenset(sets[2]),
            frozenset(sets[3]),
            weekdays,
            parts[2].startswith("*"),
            parts[4].startswith("*"),
        )

    def matches(self, when: datetime) -> bool:
        when = _utc(when)
        if when.minute not in self.minutes or when.hour not in self.hours:
            return False
        if when.month not in self.months:
            return False
        day_ok = when.day in self.days
        weekday_ok = (when.isoweekday() % 7) in self.weekdays
        # Vixie cron: when both day fields are restricted, either may match.
        if self.days_any or self.weekdays_any:
            return day_ok and weekday_ok
        return day_ok or weekday_ok

    def next_after(self, when: datetime) -> datetime:
        """The first fire time strictly after ``when`` (naive UTC, whole minutes)."""
        t = _utc(when).replace(second=0, microsecond=0) + timedelta(minutes=1)
        limit = t + timedelta(days=366 * 5)
        while t < limit:
            if t.month not in self.months:
                t = (t.replace(day=1, hour=0, minute=0) + timedelta(days=32)).replace(day=1)
                continue
            if not self._day_ok(t):
                t = t.replace(hour=0, minute=0) + timedelta(days=1)
                continue
            if t.hour not in self.hours:
                t = t.replace(minute=0) + timedelta(hours=1)
                continue
            if t.minute not in self.minutes:
                t += timedelta(minutes=1)
                continue
            return t
        raise ConfigurationError(f"schedule {self.expression!r} never fires")

    def fires_between(self, start: datetime, end: datetime) -> list[datetime]:
        """Fire times in ``(start, end]``."""
        out: list[datetime] = []
        t = _utc(start)
        end = _utc(end)
        while True:
            t = self.next_after(t)
            if t > end:
                return out
            out.append(t)

    def _day_ok(self, t: datetime) -> bool:
        day_ok = t.day in self.days
        weekday_ok = (t.isoweekday() % 7) in self.weekdays
        if self.days_any or self.weekdays_any:
            return day_ok and weekday_ok
        return day_ok or weekday_ok


def _expand(part: str, low: int, high: int, names: dict[str, int]) -> set[int]:
    values: set[int] = set()
    for item in part.split(","):
        base, _, step_text = item.partition("/")
        step = int(step_text) if step_text else 1
        if base == "*":
            start, stop = low, high
        else:
            bounds = [names.get(b.lower()) if names else None for b in base.split("-")]
            nums = [
                b if b is not None else int(raw)
                for b, raw in zip(bounds, base.split("-"), strict=True)
            ]
            start = nums[0]
            stop = nums[-1] if len(nums) == 2 else (high if step_text else nums[0])
        values.update(range(start, stop + 1, step))
    return values


def _utc(when: datetime) -> datetime:
    if when.tzinfo is not None:
        when = when.astimezone(UTC).replace(tzinfo=None)
    return when


def next_runs(expression: str, now: datetime, count: int = 3) -> list[datetime]:
    """The next ``count`` fire times of ``expression`` strictly after ``now`` (naive UTC)."""
    cron = Cron.parse(expression)
    out: list[datetime] = []
    t = now
    for _ in range(count):
        t = cron.next_after(t)
        out.append(t)
    return out
