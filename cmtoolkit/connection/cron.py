"""Validation of a connection's ``schedule``: a five-field cron expression, evaluated in UTC.

Only validation lives here (so a typo is reported when the file is read, with the field that is
wrong); computing run times is the batch package's job.
"""

from __future__ import annotations

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
