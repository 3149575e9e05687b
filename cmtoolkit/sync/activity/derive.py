"""The derived properties (``import.email_activity.properties``), recomputed set-based from
``email_events`` on every run: one aggregate over the events, then one UPDATE per property that
touches only profiles whose value changed. A profile without events keeps what it has."""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from datetime import datetime, timedelta

from cmtoolkit.connection.activity import DERIVED
from cmtoolkit.profiles.quoting import quote_ident
from cmtoolkit.sync.activity.match import NEW_KEYS_TABLE
from cmtoolkit.sync.statement import Statement

DERIVED_TABLE = "activity_derived"
_NINETY_DAYS = timedelta(days=90)
_TS = "strftime({x}, '%Y-%m-%dT%H:%M:%S')"
# derived name → SQL (over email_events grouped by profile) giving a VARCHAR[] or NULL
_SQL: dict[str, str] = {
    "last_open": "[" + _TS.format(x="""max("at") FILTER (WHERE event = 'open')""") + "]",
    "last_click": "[" + _TS.format(x="""max("at") FILTER (WHERE event = 'click')""") + "]",
    "opens_90d": """[CAST(count(*) FILTER (WHERE event = 'open' AND "at" >= $window)
        AS VARCHAR)]""",
    "clicks_90d": """[CAST(count(*) FILTER (WHERE event = 'click' AND "at" >= $window)
        AS VARCHAR)]""",
    "opened_campaigns": "list_sort(list_distinct(list(campaign) FILTER (WHERE event = 'open')))",
    "clicked_campaigns": "list_sort(list_distinct(list(campaign) FILTER (WHERE event = 'click')))",
}


def derive_statements(
    properties: Sequence[tuple[str, str]], now: datetime, last_run: datetime | None = None
) -> list[Statement]:
    """Aggregate once, then set the configured properties of the profiles where one differs.

    With ``last_run`` (the previous run of the same settings), only profiles whose values can
    have changed are aggregated: those with new events (``activity_new_keys``) and those with an
    event that left the 90-day window since then. Without it, every profile with events.
    """
    if not properties:
        return []
    window = now.replace(microsecond=0) - _NINETY_DAYS
    scope, params = "", {"window": window}
    if last_run is not None:
        scope = f"""WHERE profile_id IN (SELECT profile_id FROM {NEW_KEYS_TABLE} UNION
            SELECT profile_id FROM email_events WHERE "at" >= $lo AND "at" < $window)"""
        params["lo"] = last_run - _NINETY_DAYS
    columns = ", ".join(
        f"nullif(list_filter({_SQL[name]}, lambda v: v IS NOT NULL), []) AS {quote_ident(name)}"
        for name, _ in properties
    )
    out = [
        Statement(
            f"""CREATE OR REPLACE TEMP TABLE {DERIVED_TABLE} AS
            SELECT profile_id, {columns} FROM email_events {scope} GROUP BY profile_id""",
            params,
        )
    ]
    # One UPDATE for all of them: one pass over the profiles that changed.
    sets = ", ".join(f"{quote_ident(p)} = d.{quote_ident(n)}" for n, p in properties)
    differs = " OR ".join(
        f"profiles.{quote_ident(p)} IS DISTINCT FROM d.{quote_ident(n)}" for n, p in properties
    )
    out.append(
        Statement(
            f"""UPDATE profiles SET {sets}, updated_at = now() FROM {DERIVED_TABLE} AS d
            WHERE profiles.profile_id = d.profile_id AND ({differs})"""
        )
    )
    return out


def property_types(properties: Sequence[tuple[str, str]]) -> list[tuple[str, str]]:
    """(property, type) to define before deriving."""
    return [(prop, DERIVED[name]) for name, prop in properties]


def fingerprint(properties: Sequence[tuple[str, str]]) -> str:
    """The derived settings as a key: a run whose settings differ from the last recomputes all."""
    return "derived:" + hashlib.sha256(repr(sorted(properties)).encode()).hexdigest()[:16]
