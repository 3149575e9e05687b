"""The plan kept as a DuckDB file in the run's scratch folder, read a piece at a time.

A plan of a million rows carries a million payloads (about 1 KB each). Held in memory it
doubled the export's peak, so the planning SQL writes it once to ``plan.duckdb`` (each row
numbered in list, then profile order) and every later step reads only what it needs under a
small memory limit: the preview its first rows and samples, the send one batch at a time, the
finish a join in SQL.
The folder (DESIGN §2) is removed when the plan is closed, or by the next run after a crash.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Generator, Iterator
from pathlib import Path

import duckdb
import polars as pl
import pyarrow as pa

from cmtoolkit.campaign_monitor import MAX_IMPORT_BATCH
from cmtoolkit.sync.exports.spec import EXPORT_OUTCOMES, GoalSpec
from cmtoolkit.sync.scratch import scratch_dir
from cmtoolkit.sync.statement import Statement

#: DuckDB's memory while a plan file is read (its rows stream; only a sort would spill).
READ_MEMORY = "256MB"
#: The name a plan file is attached under on another connection (the store's, to plan or finish).
ATTACHED = "exp_plan_file"

#: What a row of the plan file says: ``outcome`` is the one a preview predicts (sends
#: succeed); ``action`` says what the run does (``send``, ``clear``, ``leave``, ``forget``).
PREDICTED = (
    "CASE WHEN action = 'send' THEN 'EXPORTED' "
    "WHEN action IN ('leave', 'clear', 'forget') THEN 'REMOVED' ELSE outcome END"
)


#: Rows a preview shows (:meth:`Plan.head`). Of the UNCHANGED rows (nothing to send, no ledger
#: row: they are only counted) the file keeps the first this many in plan order, which holds every
#: row a preview's head and samples can show; a re-run of 10M kept 10M rows for nothing.
HEAD_ROWS = 1000


def write_statements(spec: GoalSpec, path: Path) -> list[Statement]:
    """Copy the temp exp_plan into the file at ``path``, each row with its ``seq`` in the plan's
    order (list, then profile), all but the first :data:`HEAD_ROWS` UNCHANGED rows left out.
    Only the keys are sorted: sorting the rows with their payloads ran out of memory at 10M
    rows under the plan's limit."""
    keys = "rowid AS r, list_position($lists, list_id) AS l, profile_id AS p, action"
    return [
        Statement(f"ATTACH $path AS {ATTACHED} (READ_WRITE)", {"path": str(path)}),
        Statement(
            f"""
            CREATE TABLE {ATTACHED}.plan AS
            WITH kept AS (
                SELECT {keys} FROM exp_plan WHERE {PREDICTED} IS DISTINCT FROM 'UNCHANGED'
                UNION ALL
                (SELECT {keys} FROM exp_plan WHERE {PREDICTED} = 'UNCHANGED'
                 ORDER BY l, p LIMIT $head)
            )
            SELECT e.list_id, e.profile_id, e.email, {PREDICTED} AS outcome, e.reason, e.hash,
                   e.payload, e.action, o.seq
            FROM exp_plan e JOIN (
                SELECT r, row_number() OVER (ORDER BY l, p, action NULLS FIRST) - 1 AS seq
                FROM kept
            ) o ON e.rowid = o.r
            """,
            {"lists": list(spec.lists), "head": HEAD_ROWS},
        ),
        Statement(f"DETACH {ATTACHED}"),
    ]


class Plan:
    """One (list, profile) row per decision, kept in ``plan.duckdb`` under ``folder`` (of the
    UNCHANGED ones, only those a preview can show: :data:`HEAD_ROWS`).

    A row's ``action`` is ``send`` (its payload to import), ``clear`` (a targeting leaver's
    clearing payload), ``leave`` (an export leaver, per ``on_leave``), ``forget`` (a leaver whose
    address a member holds: the state row only) or NULL (decided: nothing to do). ``counts``
    are the predicted outcomes, ``pending`` the rows with an action.
    """

    def __init__(self, spec: GoalSpec, folder: Path) -> None:
        self.spec = spec
        self.folder = folder
        self.path = folder / "plan.duckdb"
        self.counts: dict[str, int] = dict.fromkeys(EXPORT_OUTCOMES, 0)
        self.pending = 0

    @contextlib.contextmanager
    def connect(self) -> Iterator[duckdb.DuckDBPyConnection]:
        con = duckdb.connect(
            str(self.path),
            read_only=True,
            config={"memory_limit": READ_MEMORY, "temp_directory": str(self.folder / "spill")},
        )
        try:
            yield con
        finally:
            con.close()

    @contextlib.contextmanager
    def attached(self, con: duckdb.DuckDBPyConnection) -> Iterator[str]:
        """The file attached read-only to ``con`` (the store's, to finish): yields its name."""
        con.execute(f"ATTACH $path AS {ATTACHED} (READ_ONLY)", {"path": str(self.path)})
        try:
            yield ATTACHED
        finally:
            con.execute(f"DETACH {ATTACHED}")

    def head(self, n: int | None = None) -> pl.DataFrame:
        """The first ``n`` rows (:data:`HEAD_ROWS`), with the outcome a preview expects."""
        n = HEAD_ROWS if n is None else min(n, HEAD_ROWS)
        with self.connect() as con:
            return con.sql(
                "SELECT list_id, profile_id, email, outcome, reason, payload FROM plan "
                "ORDER BY seq LIMIT $n",
                params={"n": n},
            ).pl()

    def samples(self, per_outcome: int = 5) -> pl.DataFrame:
        """A few rows per predicted outcome, with the payload exactly as it would be sent."""
        with self.connect() as con:
            return con.sql(
                "SELECT list_id, profile_id, email, outcome, reason, payload FROM plan "
                "WHERE seq IN (SELECT seq FROM plan QUALIFY row_number() OVER ("
                "PARTITION BY outcome ORDER BY seq) <= $n) ORDER BY seq",
                params={"n": per_outcome},
            ).pl()

    def sends(self) -> Generator[tuple[str, pl.DataFrame]]:
        """``(list_id, rows)``: the ``send``/``clear`` rows, ≤1000 of one list at a time,
        streamed from the file as it is stored (the order of sends within a list is free: no
        two rows that write share an address)."""
        with self.connect() as con:
            for list_id in self.spec.lists:
                rows = con.sql(
                    "SELECT list_id, profile_id, email, hash, action, payload FROM plan "
                    "WHERE list_id = $list_id AND action IN ('send', 'clear')",
                    params={"list_id": list_id},
                )
                for batch in rows.to_arrow_reader(MAX_IMPORT_BATCH):
                    yield list_id, _frame(batch)

    def leavers(self) -> Generator[pl.DataFrame]:
        """The ``leave``/``forget`` rows, a chunk at a time."""
        with self.connect() as con:
            rows = con.sql(
                "SELECT list_id, profile_id, email, hash, action FROM plan "
                "WHERE action IN ('leave', 'forget')"
            )
            for batch in rows.to_arrow_reader(MAX_IMPORT_BATCH):
                yield _frame(batch)


def _frame(batch: pa.RecordBatch) -> pl.DataFrame:
    frame = pl.from_arrow(batch)
    assert isinstance(frame, pl.DataFrame)
    return frame


@contextlib.contextmanager
def plan_folder(workspace: str | os.PathLike[str] | None, spec: GoalSpec) -> Iterator[Plan]:
    """An empty plan in a private scratch folder, removed on exit."""
    with scratch_dir(workspace, "export") as folder:
        yield Plan(spec, folder)


__all__ = ["HEAD_ROWS", "PREDICTED", "Plan", "plan_folder", "write_statements"]
