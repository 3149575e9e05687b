"""``import.email_activity`` (DESIGN §6a): which campaign events an import reads, from how far
back on its first run, and which derived properties it keeps up to date."""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import NoReturn, Protocol

EVENTS: tuple[str, ...] = ("open", "click", "bounce", "unsubscribe")
#: derived property → its type (recomputed set-based on every run; see cmtoolkit.sync.activity)
DERIVED: dict[str, str] = {
    "last_open": "datetime",
    "last_click": "datetime",
    "opens_90d": "number",
    "clicks_90d": "number",
    "opened_campaigns": "text",
    "clicked_campaigns": "text",
}
_SINCE_RE = re.compile(r"^(\d{1,5})\s*([hdw])$")
_SINCE_HINT = "write a duration such as 90d, 12h or 4w, or a date such as 2025-01-01"


@dataclass(frozen=True)
class EmailActivity:
    since: str = "90d"
    events: tuple[str, ...] = EVENTS
    properties: tuple[tuple[str, str], ...] = ()  # (derived name, profile property)

    def start(self, now: datetime) -> datetime:
        """The first run's lower bound: ``now`` minus the duration, or the date itself."""
        return since_start(self.since, now)

    def to_dict(self) -> dict[str, object]:
        data: dict[str, object] = {"since": self.since, "events": list(self.events)}
        if self.properties:
            data["properties"] = dict(self.properties)
        return data


def since_start(text: str, now: datetime) -> datetime:
    m = _SINCE_RE.match(text.strip())
    if m:
        unit = {"h": timedelta(hours=1), "d": timedelta(days=1), "w": timedelta(weeks=1)}
        return now - int(m.group(1)) * unit[m.group(2)]
    return datetime.combine(date.fromisoformat(text.strip()), datetime.min.time())


def since_problem(text: str) -> str | None:
    if _SINCE_RE.match(text.strip()):
        return None
    try:
        date.fromisoformat(text.strip())
    except ValueError:
        return f"{text!r} is not a duration or a date: {_SINCE_HINT}"
    return None


class _Parser(Protocol):
    def fail(self, key: str | None, message: str) -> NoReturn: ...

    def mapping(self, value: object, key: str, allowed: tuple[str, ...]) -> dict[str, object]: ...

    def text(self, value: object, key: str, hint: str = "") -> str: ...

    def texts(self, value: object, key: str, hint: str) -> tuple[str, ...]: ...

    def choice(self, value: object, key: str, choices: tuple[str, ...], what: str) -> str: ...


def parse_email_activity(p: _Parser, value: object, key: str) -> EmailActivity | None:
    """``{since: 90d, events: [...], properties: {last_open: cm_last_open, ...}}``."""
    if value is None or value is False:
        return None
    if value is True:
        return EmailActivity()
    data = p.mapping(value, key, ("since", "events", "properties"))
    since = "90d"
    if data.get("since") is not None:
        since = (
            str(data["since"])
            if isinstance(data["since"], date)
            else p.text(data["since"], f"{key}.since", _SINCE_HINT)
        )
        problem = since_problem(since)
        if problem:
            p.fail(f"{key}.since", problem)
    events = EVENTS
    if data.get("events") is not None:
        raw = p.texts(data["events"], f"{key}.events", "e.g. [open, click]")
        events = tuple(
            p.choice(e, f"{key}.events[{i}]", EVENTS, "event") for i, e in enumerate(raw)
        )
        if not events:
            p.fail(f"{key}.events", f"select at least one of {', '.join(EVENTS)}")
    props: list[tuple[str, str]] = []
    raw_props = data.get("properties")
    if raw_props is not None:
        mapping = p.mapping(raw_props, f"{key}.properties", tuple(DERIVED))
        for name, prop in mapping.items():
            props.append((name, p.text(prop, f"{key}.properties.{name}", "a property name")))
        targets = [t.lower() for _, t in props]
        if len(set(targets)) != len(targets):
            p.fail(f"{key}.properties", "two derived properties write one property: rename one")
    return EmailActivity(since, events, tuple(props))
