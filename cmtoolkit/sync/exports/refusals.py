"""What Campaign Monitor will refuse, and who is on each list: read before every plan (DESIGN §6).

The import endpoint refuses a subscriber because of their state: 204 on the client's suppression
list, 205 deleted, 206 unsubscribed, 207 bounced (unless ``Resubscribe``). Reading those states
through the client (paged) before planning lets the plan mark such rows ``SUPPRESSED`` without
sending them, and lets a preview predict exactly what the run will do. A row is sent again as
soon as the subscriber's state changes (they are no longer in the read) or with
``resubscribe: true``. Targeting also needs the list's Active subscribers: it only updates people
already subscribed (``NOT_SUBSCRIBED`` otherwise).

What a run learns is remembered in ``export_suppressions`` (when a refusal was first seen, its
code), which ``cmtoolkit rows`` and the reports show with the reason.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import duckdb
import polars as pl

if TYPE_CHECKING:
    from cmtoolkit.campaign_monitor import CampaignMonitor
    from cmtoolkit.sync.exports.spec import GoalSpec

#: The import endpoint's refusal for each inactive state, and for the suppression list.
STATE_REFUSAL = {
    "Deleted": (205, "Subscriber is deleted"),
    "Unsubscribed": (206, "Subscriber is unsubscribed"),
    "Bounced": (207, "Subscriber is bounced"),
}
SUPPRESSED_REFUSAL = (204, "Subscriber is in the suppression list")
#: Codes of refusals caused by the subscriber's state (remembered, not sent again).
STATE_CODES = frozenset({204, 205, 206, 207})

REFUSED_SCHEMA = {"list_id": pl.Utf8, "email": pl.Utf8, "code": pl.Int32, "message": pl.Utf8}
ACTIVE_SCHEMA = {"list_id": pl.Utf8, "email": pl.Utf8}


@dataclass
class ListStates:
    """Per list: the (lower-cased) emails Campaign Monitor will refuse, and (targeting only)
    its Active subscribers."""

    refused: pl.DataFrame
    active: pl.DataFrame | None = None

    def register(self, con: duckdb.DuckDBPyConnection) -> None:
        """As the temp tables the plan joins: exp_refused, exp_active."""
        con.execute("CREATE OR REPLACE TEMP TABLE exp_refused AS SELECT * FROM refused_in", [])
        con.execute("CREATE OR REPLACE TEMP TABLE exp_active AS SELECT * FROM active_in", [])


def read_states(
    client: CampaignMonitor, client_id: str | None, spec: GoalSpec, *, active: bool
) -> ListStates:
    """Read every list's inactive subscribers, the client's suppression list and (``active``)
    the Active subscribers: every (list, state) at once, through the client's concurrent read,
    as a far-away service answers each first page only after a round trip."""
    suppressed: list[str] = []
    if client_id and not spec.resubscribe:
        suppressed = [s.email.strip().lower() for s in client.suppression_list(client_id)]
    # Resubscribe: Campaign Monitor refuses nobody for their state.
    states = [] if spec.resubscribe else list(STATE_REFUSAL)
    selections = [(list_id, state) for list_id in spec.lists for state in states]
    if active:
        selections += [(list_id, "Active") for list_id in spec.lists]
    emails: list[list[pl.Series]] = [[] for _ in selections]
    for i, frame in client.subscriber_frames_many(selections):
        emails[i].append(frame.get_column("email"))

    parts: list[pl.DataFrame] = []
    read = iter(emails)  # in selection order
    for list_id in spec.lists:
        if suppressed:
            parts.append(_frame(list_id, suppressed, *SUPPRESSED_REFUSAL))
        for state in states:
            refused = [e.strip().lower() for column in next(read) for e in column.to_list()]
            if refused:
                parts.append(_frame(list_id, refused, *STATE_REFUSAL[state]))
    members = None
    if active:
        found = [
            pl.DataFrame(
                {"list_id": list_id, "email": column.str.to_lowercase()}, schema=ACTIVE_SCHEMA
            )
            for list_id in spec.lists
            for column in next(read)
        ]
        members = pl.concat(found) if found else pl.DataFrame(schema=ACTIVE_SCHEMA)
    refused_all = (
        pl.concat(parts).unique(["list_id", "email"], keep="first", maintain_order=True)
        if parts
        else pl.DataFrame(schema=REFUSED_SCHEMA)
    )
    return ListStates(refused_all, members)


def _frame(list_id: str, emails: list[str], code: int, message: str) -> pl.DataFrame:
    return pl.DataFrame(
        {"list_id": list_id, "email": emails, "code": code, "message": message},
        schema=REFUSED_SCHEMA,
    )


def install(con: duckdb.DuckDBPyConnection, states: ListStates) -> None:
    """The temp tables exp_refused(list_id, email, code, message) and exp_active(list_id,
    email) on the plan's connection; exp_active is NULL-free and empty unless targeting."""
    con.register("refused_in", states.refused.to_arrow())
    active = states.active if states.active is not None else pl.DataFrame(schema=ACTIVE_SCHEMA)
    con.register("active_in", active.to_arrow())
    try:
        states.register(con)
    finally:
        con.unregister("refused_in")
        con.unregister("active_in")


def remember(con: duckdb.DuckDBPyConnection, connection: str, goal: str, run_id: str) -> None:
    """Keep refusals seen by the run (its SUPPRESSED rows, or REJECTED with a state code) in
    export_suppressions; forget those of rows that went through (EXPORTED)."""
    params = {"connection": connection, "goal": goal, "run_id": run_id}
    seen = "(SELECT list_id, email, outcome, reason FROM run_rows WHERE run_id = $run_id)"
    con.execute(
        f"""
        DELETE FROM export_suppressions WHERE connection = $connection AND goal = $goal
          AND (list_id, email) IN (
              SELECT (list_id, lower(email)) FROM {seen} WHERE outcome = 'EXPORTED')
        """,
        params,
    )
    con.execute(
        f"""
        INSERT INTO export_suppressions (connection, goal, list_id, email, code, reason, seen_at)
        SELECT $connection, $goal, list_id, lower(email), any_value(code), any_value(reason), now()
        FROM (SELECT *, TRY_CAST(regexp_extract(reason, '^code ([0-9]+)', 1) AS INTEGER) AS code
              FROM {seen} WHERE outcome IN ('SUPPRESSED', 'REJECTED') AND email IS NOT NULL)
        WHERE code IN (204, 205, 206, 207)
        GROUP BY list_id, lower(email)
        ON CONFLICT DO NOTHING
        """,
        params,
    )
