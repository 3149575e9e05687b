"""Writing new events and moving the cursors, inside the import's store transaction.

Only events not already stored go in (``activity_new``: an anti-join over the whole event,
distinct), in the transaction that moves the cursors: the boundary overlap of a re-read (the lag
window) and a re-run after a kill can never store an event twice. (``email_events`` has no
primary key: it made the insert ten times slower; see ledger migration 5.)
"""

from __future__ import annotations

from cmtoolkit.sync.activity.match import NEW_TABLE
from cmtoolkit.sync.activity.read import RAW_TABLE, SELECTIONS_TABLE
from cmtoolkit.sync.statement import Statement


def write_statements(connection: str) -> list[Statement]:
    return [
        Statement(
            f"""INSERT INTO email_events
                (profile_id, campaign_id, campaign, event, "at", detail)
            SELECT profile_id, campaign_id, campaign, event, "at", detail FROM {NEW_TABLE}"""
        ),
        Statement(
            f"""INSERT INTO email_activity_state (connection, campaign_id, event, cursor, read_at)
            SELECT $connection, s.campaign_id, s.event, r.cursor, now()
            FROM (SELECT sel, max("at") AS cursor FROM {RAW_TABLE} WHERE "at" IS NOT NULL
                  GROUP BY sel) AS r JOIN {SELECTIONS_TABLE} AS s USING (sel)
            ON CONFLICT (connection, campaign_id, event) DO UPDATE
            SET cursor = greatest(cursor, excluded.cursor), read_at = excluded.read_at""",
            {"connection": connection},
        ),
    ]
