"""The run ledger: every real run and one row per contact or profile it touched (DESIGN §7).

A run is written ``STARTING`` in its own short transaction before any work, so a run that dies is
still on record; it becomes ``FINISHED`` in the *same* transaction as its profile writes (so the
ledger never claims work the store does not hold), or ``FAILED`` with the error. A run left
``STARTING``/``RUNNING`` by a killed process is marked ``FAILED`` by the next run of its
connection, which can only start once the dead run's lock is gone.
"""

from __future__ import annotations

import json
import os
import uuid
from collections.abc import Sequence

import duckdb
import polars as pl

from cmtoolkit.errors import RunError
from cmtoolkit.sync.run import Run, RunState, utc_now

# The tables (runs, run_rows, import_state, export_state) are defined in
# cmtoolkit.sync.ledger_schema (the store's migration 2).


def start_run(con: duckdb.DuckDBPyConnection, connection: str, goal: str, *, full: bool) -> str:
    """Record a new run as STARTING (and earlier unfinished runs as FAILED); returns its id."""
    run_id = utc_now().strftime("%Y%m%dT%H%M%SZ-") + uuid.uuid4().hex[:8]
    con.execute(
        """
        UPDATE runs SET state = 'FAILED', ended_at = coalesce(ended_at, now()),
               error = 'interrupted: the process running it ended before it finished'
        WHERE connection = $connection AND state IN ('STARTING', 'RUNNING')
        """,
        {"connection": connection},
    )
    con.execute(
        """
        INSERT INTO runs (run_id, connection, goal, full_run, started_at, state, pid)
        VALUES ($run_id, $connection, $goal, $full, now(), 'STARTING', $pid)
        """,
        {
            "run_id": run_id,
            "connection": connection,
            "goal": goal,
            "full": full,
            "pid": os.getpid(),
        },
    )
    return run_id


def claim_run(
    con: duckdb.DuckDBPyConnection, run_id: str, connection: str, goal: str, *, full: bool
) -> None:
    """Continue a run that :func:`start_run` recorded in another process (``cmtoolkit run``
    allocates the run and hands its id to the goal notebook). It must still be STARTING and be
    of this connection and goal; earlier runs are left alone (the allocation dealt with them).
    """
    claimed = con.execute(
        """
        UPDATE runs SET pid = $pid, full_run = $full
        WHERE run_id = $run_id AND connection = $connection AND goal = $goal
              AND state = 'STARTING'
        RETURNING run_id
        """,
        {
            "pid": os.getpid(),
            "full": full,
            "run_id": run_id,
            "connection": connection,
            "goal": goal,
        },
    ).fetchall()
    if not claimed:
        raise RunError(
            f"run {run_id} is not waiting to start as the {goal} run of {connection!r}; a run "
            "id given to a notebook must come from the `cmtoolkit run` that recorded it"
        )


def set_state(con: duckdb.DuckDBPyConnection, run_id: str, state: RunState) -> None:
    con.execute(
        "UPDATE runs SET state = $state WHERE run_id = $run_id",
        {"state": str(state), "run_id": run_id},
    )


def finish_run(con: duckdb.DuckDBPyConnection, run_id: str, counts: dict[str, int]) -> None:
    con.execute(
        "UPDATE runs SET state = 'FINISHED', ended_at = now(), counts = $counts "
        "WHERE run_id = $run_id",
        {"counts": json.dumps(counts), "run_id": run_id},
    )


def fail_run(con: duckdb.DuckDBPyConnection, run_id: str, error: str) -> None:
    con.execute(
        "UPDATE runs SET state = 'FAILED', ended_at = now(), error = $error WHERE run_id = $run_id",
        {"error": error, "run_id": run_id},
    )


def history(
    con: duckdb.DuckDBPyConnection, connection: str | None = None, limit: int = 100
) -> list[Run]:
    """Runs, newest first (all connections when ``connection`` is None)."""
    rows = con.execute(
        """
        SELECT run_id, connection, goal, full_run, started_at, ended_at, state, counts, error
        FROM runs WHERE $connection IS NULL OR connection = $connection
        ORDER BY started_at DESC, run_id DESC LIMIT $limit
        """,
        {"connection": connection, "limit": limit},
    ).fetchall()
    return [_run(r) for r in rows]


def get_run(con: duckdb.DuckDBPyConnection, run_id: str) -> Run | None:
    rows = con.execute(
        """
        SELECT run_id, connection, goal, full_run, started_at, ended_at, state, counts, error
        FROM runs WHERE run_id = $run_id
        """,
        {"run_id": run_id},
    ).fetchall()  # fetchall: a half-read execute() result would hold the connection (DuckDB 2)
    if not rows:
        return None
    return _run(rows[0])


def _run(row: tuple[object, ...]) -> Run:
    run_id, connection, goal, full, started, ended, state, counts, error = row
    return Run(
        connection=str(connection),
        goal=str(goal),
        state=RunState(str(state)),
        counts=json.loads(str(counts)) if counts else {},
        started_at=started,  # type: ignore[arg-type]
        ended_at=ended,  # type: ignore[arg-type]
        run_id=str(run_id),
        full=bool(full),
        error=str(error) if error is not None else None,
    )


def prune_rows(con: duckdb.DuckDBPyConnection, connection: str, keep_runs: int) -> None:
    """Drop the row-level detail of all but the connection's last ``keep_runs`` runs; the runs
    and their counts stay (DESIGN §7 ``history.keep_runs``)."""
    con.execute(
        """
        DELETE FROM run_rows WHERE run_id IN (
            SELECT run_id FROM runs WHERE connection = $connection
            QUALIFY row_number() OVER (ORDER BY started_at DESC, run_id DESC) > $keep)
        """,
        {"connection": connection, "keep": keep_runs},
    )


#: A row's Campaign Monitor code, as the export writes it at the head of the reason.
_CODE_SQL = "nullif(regexp_extract(reason, '^code ([0-9]+)', 1), '')"


def rows(
    con: duckdb.DuckDBPyConnection,
    connection: str,
    *,
    run_id: str | None = None,
    outcomes: Sequence[str] | None = None,
    limit: int | None = None,
) -> pl.DataFrame:
    """The row-level records of a connection's runs (newest run first, then in run order):
    run, goal, list, email, identifier, profile, outcome, Campaign Monitor code, reason.

    Rows are kept for the connection's last ``history.keep_runs`` runs (DESIGN §7); older runs
    keep only their counts.
    """
    frame = con.sql(
        f"""
        SELECT r.run_id, u.goal, r.list_id, r.email, r.identifier, r.profile_id, r.outcome,
               TRY_CAST({_CODE_SQL} AS INTEGER) AS code, r.reason
        FROM run_rows r JOIN runs u USING (run_id)
        WHERE u.connection = $connection
          AND ($run_id IS NULL OR r.run_id = $run_id)
          AND (len($outcomes::VARCHAR[]) = 0 OR list_contains($outcomes::VARCHAR[], r.outcome))
        ORDER BY u.started_at DESC, r.run_id DESC, r.seq
        LIMIT $limit
        """,
        params={
            "connection": connection,
            "run_id": run_id,
            "outcomes": [o.upper() for o in outcomes or ()],
            "limit": limit if limit is not None else 2**62,
        },
    ).pl()
    return frame


#: A reason without the value that made it (``not a valid email address: x@`` → ``not a valid
#: email address``); Campaign Monitor's ``code N: message`` up to the advice after ``;``.
REASON_KIND = r"""CASE WHEN regexp_matches(reason, '^code [0-9]+:') THEN split_part(reason, ';', 1)
    ELSE coalesce(nullif(regexp_replace(reason, ': [^:]*$', ''), ''), '(no reason given)') END"""


def count_rows(
    con: duckdb.DuckDBPyConnection, run_id: str, outcomes: Sequence[str] | None = None
) -> list[tuple[str, str, int]]:
    """How many row-level records a run holds (of ``outcomes``, when given), by outcome and
    reason without its value (:data:`REASON_KIND`), most first: their sum is the run's count."""
    found = con.execute(
        f"""
        SELECT outcome, {REASON_KIND} AS kind, count(*) AS n FROM run_rows
        WHERE run_id = $run_id
          AND (len($outcomes::VARCHAR[]) = 0 OR list_contains($outcomes::VARCHAR[], outcome))
        GROUP BY outcome, kind ORDER BY n DESC, outcome, kind
        """,
        {"run_id": run_id, "outcomes": [o.upper() for o in outcomes or ()]},
    ).fetchall()
    return [(str(o), str(k), int(n)) for o, k, n in found]
