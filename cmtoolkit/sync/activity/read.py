"""Reading campaign activity from Campaign Monitor into a staging table, per campaign and event
from its cursor (DESIGN §6a).

A campaign is read when it was sent at most :data:`LOOKBACK` before the lower bound of
``since`` (activity trails a send by weeks). Each (campaign, event) is read from its cursor (the
latest event time seen) minus :data:`LAG` (events can be recorded late; the overlap is
de-duplicated when written), or from the lower bound on the first run. Pages go into the DuckDB
staging table ``activity_read`` in batches, so a few million events never become Python objects.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Protocol

import duckdb
import polars as pl

from cmtoolkit.connection.activity import EmailActivity

LAG = timedelta(hours=1)
LOOKBACK = timedelta(days=30)
BATCH_ROWS = 200_000
SELECTIONS_IN_FLIGHT = 4
READ_TABLE = "activity_read"
Cursors = dict[tuple[str, str], datetime]


class CampaignLike(Protocol):
    campaign_id: str
    name: str


class ActivitySource(Protocol):
    """The client calls the phase needs (CampaignMonitor has them)."""

    def campaigns(self, client_id: str, *, sent_from: object = None) -> Iterator[CampaignLike]: ...

    def campaign_event_frames(
        self, campaign_id: str, event: str, *, since: object = None
    ) -> Iterator[pl.DataFrame]: ...


@dataclass
class ActivityRead:
    """What was read: the staging table in ``con``, the campaigns and the bounds used."""

    settings: EmailActivity
    now: datetime
    start: datetime
    campaigns: dict[str, str] = field(default_factory=dict)  # id → name
    rows: int = 0
    requests: int = 0


def load_cursors(con: duckdb.DuckDBPyConnection, connection: str) -> Cursors:
    """The connection's cursors; none in a store without the table (a new store)."""
    exists = con.execute(
        "SELECT count(*) FROM duckdb_tables() WHERE table_name = 'email_activity_state'"
        " AND database_name = current_database()"
    ).fetchall()[0][0]
    if not exists:
        return {}
    rows = con.execute(
        "SELECT campaign_id, event, cursor FROM email_activity_state WHERE connection = $c",
        {"c": connection},
    ).fetchall()
    return {(cid, event): at for cid, event, at in rows}


def read_activity(
    source: ActivitySource,
    client_id: str,
    settings: EmailActivity,
    cursors: Cursors,
    con: duckdb.DuckDBPyConnection,
    now: datetime,
    progress: Callable[[str, int, int | None], None] | None = None,
) -> ActivityRead:
    """Stage every event to read into ``activity_read`` of ``con``."""
    # Rows carry a selection number, not the campaign id, name and event (half the bytes of a
    # staged event at millions of rows); the view gives them back to the SQL that reads it.
    con.execute(
        """CREATE OR REPLACE TEMP TABLE activity_raw (
            sel INTEGER, email VARCHAR, "at" TIMESTAMP, detail VARCHAR)"""
    )
    con.execute(
        """CREATE OR REPLACE TEMP TABLE activity_selections (
            sel INTEGER, campaign_id VARCHAR, campaign VARCHAR, event VARCHAR)"""
    )
    con.execute(
        f"""CREATE OR REPLACE TEMP VIEW {READ_TABLE} AS
        SELECT s.campaign_id, s.campaign, s.event, r.email, r."at", r.detail
        FROM activity_raw AS r JOIN activity_selections AS s USING (sel)"""
    )
    start = settings.start(now)
    read = ActivityRead(settings, now, start)
    pending: list[pl.DataFrame] = []
    pending_rows = 0

    def flush() -> None:
        nonlocal pending, pending_rows
        if pending:
            batch = pl.concat(pending).to_arrow()
            con.register("activity_batch", batch)
            con.execute("INSERT INTO activity_raw SELECT * FROM activity_batch")
            con.unregister("activity_batch")
            pending, pending_rows = [], 0

    campaigns = list(source.campaigns(client_id, sent_from=(start - LOOKBACK).date()))
    read.requests += 1
    selections = []
    for campaign in campaigns:
        read.campaigns[campaign.campaign_id] = campaign.name
        for event in settings.events:
            cursor = cursors.get((campaign.campaign_id, event))
            since = start if cursor is None else max(start, cursor - LAG)
            selections.append((campaign, event, since))
    con.executemany(
        "INSERT INTO activity_selections VALUES (?, ?, ?, ?)",
        [[n, c.campaign_id, c.name, event] for n, (c, event, _) in enumerate(selections)],
    )

    def fetch(campaign_id: str, event: str, since: datetime) -> list[pl.DataFrame]:
        return list(source.campaign_event_frames(campaign_id, event, since=since))

    # A few (campaign, event) selections at once: a re-run reads mostly near-empty ones, one
    # request each, so their round trips overlap; the client bounds the requests in flight.
    with ThreadPoolExecutor(SELECTIONS_IN_FLIGHT, thread_name_prefix="cmtoolkit-activity") as pool:
        futures: deque[tuple[int, Future[list[pl.DataFrame]]]] = deque()
        queue = iter(enumerate(selections))
        done = 0
        while True:
            while len(futures) < SELECTIONS_IN_FLIGHT:
                nxt = next(queue, None)
                if nxt is None:
                    break
                sel, (campaign, event, since) = nxt
                futures.append((sel, pool.submit(fetch, campaign.campaign_id, event, since)))
            if not futures:
                break
            sel, future = futures.popleft()
            for frame in future.result():
                read.requests += 1
                if not frame.height:
                    continue
                pending.append(
                    frame.select(pl.lit(sel, pl.Int32).alias("sel"), "email", "at", "detail")
                )
                pending_rows += frame.height
                read.rows += frame.height
                if pending_rows >= BATCH_ROWS:
                    flush()
            done += 1
            if progress is not None and done % len(settings.events) == 0:
                progress("email activity", done // len(settings.events), len(campaigns))
    flush()
    return read
