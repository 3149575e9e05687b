"""Reading campaign activity from Campaign Monitor into a staging table, per campaign and event
from its cursor (DESIGN §6a).

A campaign is read when it was sent at most :data:`LOOKBACK` before the lower bound of
``since`` (activity trails a send by weeks). Each (campaign, event) is read from its cursor (the
latest event time seen) minus :data:`LAG` (events can be recorded late; the overlap is
de-duplicated when written), or from the lower bound on the first run.

Pages go into DuckDB in batches, so a few million events never become Python objects, and are
staged as small keys, not text: ``activity_raw(sel, eid, at, did)``, where ``sel`` numbers the
(campaign, event) read (``activity_selections``), ``eid`` the address (``activity_addresses``)
and ``did`` the detail (``activity_details``). An address is some 30 bytes and repeats in every
campaign its owner opened: keyed, a staged event takes a third of the memory, and the import's
own work that follows (its plan and apply, in the same DuckDB) keeps that room. The keys are
given a chunk at a time (:data:`COMPACT_ROWS` events; per batch, the growing address table
was joined forty times and cost more than the read saved).
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
from cmtoolkit.profiles.schema import table_exists

LAG = timedelta(hours=1)
LOOKBACK = timedelta(days=30)
BATCH_ROWS = 200_000  # events gathered as frames before one insert into DuckDB
COMPACT_ROWS = 1_000_000  # events staged as text before their addresses and details are keyed
SELECTIONS_IN_FLIGHT = 4
RAW_TABLE = "activity_raw"
SELECTIONS_TABLE = "activity_selections"
ADDRESSES_TABLE = "activity_addresses"
DETAILS_TABLE = "activity_details"
_WIDE_TABLE = "activity_wide"
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
    if not table_exists(con, "email_activity_state"):
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
    """Stage every event to read into ``activity_raw`` of ``con`` (see the module's doc)."""
    con.execute(
        f"""CREATE OR REPLACE TEMP TABLE {RAW_TABLE} (
            sel INTEGER, eid INTEGER, "at" TIMESTAMP, did INTEGER);
        CREATE OR REPLACE TEMP TABLE {SELECTIONS_TABLE} (
            sel INTEGER, campaign_id VARCHAR, campaign VARCHAR, event VARCHAR);
        CREATE OR REPLACE TEMP TABLE {ADDRESSES_TABLE} (eid INTEGER, email VARCHAR);
        CREATE OR REPLACE TEMP TABLE {DETAILS_TABLE} (did INTEGER, detail VARCHAR)"""
    )
    start = settings.start(now)
    read = ActivityRead(settings, now, start)
    keys = _Keys(con)
    pending: list[pl.DataFrame] = []
    pending_rows = 0

    def flush() -> None:
        nonlocal pending, pending_rows
        if pending:
            keys.add(pl.concat(pending))
            pending, pending_rows = [], 0

    campaigns = list(source.campaigns(client_id, sent_from=(start - LOOKBACK).date()))
    read.requests += 1
    selections = []
    for campaign in campaigns:
        if campaign.campaign_id in read.campaigns:
            continue  # listed twice (paging): one selection per (campaign, event)
        read.campaigns[campaign.campaign_id] = campaign.name
        for event in settings.events:
            cursor = cursors.get((campaign.campaign_id, event))
            since = start if cursor is None else max(start, cursor - LAG)
            selections.append((campaign, event, since))
    con.executemany(
        f"INSERT INTO {SELECTIONS_TABLE} VALUES (?, ?, ?, ?)",
        [[n, c.campaign_id, c.name, event] for n, (c, event, _) in enumerate(selections)],
    )

    def fetch(sel: int, campaign_id: str, event: str, since: datetime) -> list[pl.DataFrame]:
        # Only the columns staged (a selection's pages wait here while others are read).
        return [
            frame.select(pl.lit(sel, pl.Int32).alias("sel"), "email", "at", "detail")
            for frame in source.campaign_event_frames(campaign_id, event, since=since)
        ]

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
                futures.append((sel, pool.submit(fetch, sel, campaign.campaign_id, event, since)))
            if not futures:
                break
            sel, future = futures.popleft()
            frames = future.result()[::-1]
            del future  # a frame is let go once flushed, not when the selection is done
            while frames:
                frame = frames.pop()
                read.requests += 1
                if not frame.height:
                    continue
                pending.append(frame)
                pending_rows += frame.height
                read.rows += frame.height
                if pending_rows >= BATCH_ROWS:
                    flush()
            done += 1
            if progress is not None and done % len(settings.events) == 0:
                progress("email activity", done // len(settings.events), len(read.campaigns))
    flush()
    keys.finish()
    return read


class _Keys:
    """Batches in, staged as text in ``activity_wide``; every :data:`COMPACT_ROWS` events the
    new addresses and details get their keys and the chunk moves to ``activity_raw`` as keys."""

    def __init__(self, con: duckdb.DuckDBPyConnection) -> None:
        self.con = con
        self.rows = 0
        self.addresses = 0
        self.details = 0
        self._new_wide()

    def _new_wide(self) -> None:
        # Dropped and created again, not emptied: a DELETE would keep the chunk's memory.
        self.con.execute(
            f"""CREATE OR REPLACE TEMP TABLE {_WIDE_TABLE} (
                sel INTEGER, email VARCHAR, "at" TIMESTAMP, detail VARCHAR)"""
        )

    def add(self, batch: pl.DataFrame) -> None:
        self.con.register("activity_batch", batch.to_arrow())
        # No address or detail (never from the client, which sends ""): read as "", which
        # matches no profile and is stored as the empty detail, as before.
        self.con.execute(
            f"""INSERT INTO {_WIDE_TABLE} SELECT sel, coalesce(email, ''), "at",
            coalesce(detail, '') FROM activity_batch"""
        )
        self.con.unregister("activity_batch")
        self.rows += batch.height
        if self.rows >= COMPACT_ROWS:
            self.compact()

    def compact(self) -> None:
        if not self.rows:
            return
        self.addresses = self._key(ADDRESSES_TABLE, "eid", "email", self.addresses)
        self.details = self._key(DETAILS_TABLE, "did", "detail", self.details)
        self.con.execute(
            f"""INSERT INTO {RAW_TABLE}
            SELECT w.sel, a.eid, w."at", d.did FROM {_WIDE_TABLE} AS w
            JOIN {ADDRESSES_TABLE} AS a USING (email) JOIN {DETAILS_TABLE} AS d USING (detail)"""
        )
        self._new_wide()
        self.rows = 0

    def finish(self) -> None:
        """The last chunk keyed; the text table dropped."""
        self.compact()
        self.con.execute(f"DROP TABLE {_WIDE_TABLE}")

    def _key(self, table: str, key: str, column: str, known: int) -> int:
        """Keys for the chunk's values not yet in ``table``; the table's new size."""
        self.con.execute(
            f"""INSERT INTO {table}
            SELECT $known + row_number() OVER () - 1, {column}
            FROM (SELECT DISTINCT {column} FROM {_WIDE_TABLE})
            ANTI JOIN {table} USING ({column})""",
            {"known": known},
        )
        (count,) = self.con.execute(f"SELECT count(*) FROM {table}").fetchone() or (0,)
        return int(count)
