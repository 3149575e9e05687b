"""Segment conditions on email behaviour (DESIGN §6a): ``{event: open, within: 30d}``,
``{event: click, campaign_contains: "spring"}``, ``{event: open, since: 2025-01-01,
at_least: 3}``, compiled to parameterised SQL over ``email_events``.

``email_events`` is written by an import with ``email_activity`` (its table comes with the
sync ledger's migrations); a store that has never had one gets a clear error instead of a
missing-table failure.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Callable

import duckdb

from cmtoolkit.errors import ConfigurationError
from cmtoolkit.profiles.schema import table_exists

EVENTS = ("open", "click", "bounce", "unsubscribe", "any")
EVENT_KEYS = ("event", "within", "since", "campaign_contains", "at_least")
_WITHIN_RE = re.compile(r"^(\d{1,5})\s*([hdw])$")
_UNITS = {"h": dt.timedelta(hours=1), "d": dt.timedelta(days=1), "w": dt.timedelta(weeks=1)}
NO_EVENTS = (
    "uses an email event condition, but this store holds no email activity yet: set "
    "import.email_activity in a connection and run its import, then refresh the segment"
)


def has_events(con: duckdb.DuckDBPyConnection) -> bool:
    """Whether the store has the ``email_events`` table."""
    return table_exists(con, "email_events")


def event_condition(
    rule: dict[str, object],
    params: list[object],
    fail: Callable[[str], ConfigurationError],
    now: dt.datetime | None = None,
) -> str:
    """SQL over ``profiles AS p``: the profile has (enough) matching events; appends the
    parameters to ``params`` in the order they appear."""
    unknown = sorted(set(rule) - set(EVENT_KEYS))
    if unknown:
        raise fail(f"unknown key(s) {unknown} in an event condition; use {', '.join(EVENT_KEYS)}")
    event = rule["event"]
    if event not in EVENTS:
        raise fail(f"'event' must be one of {', '.join(EVENTS)}, not {event!r}")
    where = ["true"] if event == "any" else ["e.event = ?"]
    values: list[object] = [] if event == "any" else [event]
    now = now or dt.datetime.now(dt.UTC).replace(tzinfo=None)
    if "within" in rule:
        m = _WITHIN_RE.match(str(rule["within"]).strip())
        if not m:
            raise fail(f"'within' takes a duration such as 30d, 12h or 4w, not {rule['within']!r}")
        where.append('e."at" >= ?')
        values.append(now - int(m.group(1)) * _UNITS[m.group(2)])
    if "since" in rule:
        since = rule["since"]
        try:
            moment = (
                dt.datetime.combine(since, dt.time())
                if isinstance(since, dt.date) and not isinstance(since, dt.datetime)
                else dt.datetime.fromisoformat(str(since))
            )
        except ValueError:
            raise fail(f"'since' needs an ISO date like 2026-01-01, not {since!r}") from None
        where.append('e."at" >= ?')
        values.append(moment.replace(tzinfo=None))
    if "campaign_contains" in rule:
        text = rule["campaign_contains"]
        if not isinstance(text, str) or not text:
            raise fail("'campaign_contains' needs some text of the campaign name")
        where.append("contains(lower(e.campaign), lower(?))")
        values.append(text)
    least = rule.get("at_least", 1)
    if isinstance(least, bool) or not isinstance(least, int) or least < 1:
        raise fail(f"'at_least' needs a whole number of events ≥ 1, not {least!r}")
    values.append(least)
    params.extend(values)
    return (
        "p.profile_id IN (SELECT e.profile_id FROM email_events AS e WHERE "
        + " AND ".join(where)
        + " GROUP BY e.profile_id HAVING count(*) >= ?)"
    )
