"""Rows Campaign Monitor accepted: journaled at once, folded into ``export_state`` soon after.

The journal makes "recorded as soon as accepted" true even for a killed process; the writer
thread keeps store transactions short and off the sending path. See docs/export.md.
"""

from __future__ import annotations

import logging
import os
import queue
import threading
import time
from pathlib import Path
from typing import TYPE_CHECKING, BinaryIO

import duckdb
import orjson
import polars as pl
import pyarrow as pa

if TYPE_CHECKING:
    from cmtoolkit.profiles.store import Store


log = logging.getLogger("cmtoolkit.sync.exports")


class AckJournal:
    """Acknowledged rows, appended and fsynced the moment Campaign Monitor accepts a batch.

    The next run folds what it holds into ``export_state`` before planning, and a preview reads
    it as if it had been folded. One line of JSON per acknowledged batch; a line cut by a crash
    is ignored (its batch was not acknowledged to us either).
    """

    COLUMNS = ("list_id", "profile_id", "email", "hash", "action")

    def __init__(self, workspace: Path, connection: str, goal: str) -> None:
        slug = "".join(c if c.isalnum() or c in "-_." else "_" for c in connection)
        self.path = Path(workspace) / ".journal" / f"{slug}.{goal}.jsonl"
        self._file: BinaryIO | None = None
        self.rejected: list[tuple[int, bytes]] = []  # (line number, line) of the last read

    @classmethod
    def taking_over(cls, workspace: Path, key: str, name: str, goal: str) -> AckJournal:
        """The journal under the connection's state key. One an interrupted export left under
        the connection's name, before the connection had an id, is moved to it first: its
        acknowledged rows must reach the state, not be sent again."""
        journal = cls(workspace, key, goal)
        old = cls(workspace, name, goal)
        if key != name and old.path.exists() and not journal.path.exists():
            old.path.replace(journal.path)
        return journal

    def append(self, rows: pa.Table) -> None:
        if self._file is None:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._file = open(self.path, "ab")  # noqa: SIM115 - held open for the whole send
        self._file.write(orjson.dumps({c: rows.column(c).to_pylist() for c in self.COLUMNS}))
        self._file.write(b"\n")
        self._file.flush()
        os.fsync(self._file.fileno())

    def read(self) -> pa.Table | None:
        """Every complete line as one table, or None when there is no journal.

        A line of the wrong shape (edited by hand, written by another version) is skipped with
        a warning and set aside when the journal is folded (:meth:`close`), so it cannot block
        every later export; its rows are simply planned, and sent, again."""
        if not self.path.exists():
            return None
        parts = []
        lines = self.path.read_bytes().split(b"\n")
        self.rejected = []
        for number, line in enumerate(lines, start=1):
            try:
                data = orjson.loads(line)
            except orjson.JSONDecodeError:
                if line.strip() and number < len(lines):  # the last line may be cut by a crash
                    self.rejected.append((number, line))
                continue
            if not _journal_shape(data, self.COLUMNS):
                self.rejected.append((number, line))
                continue
            parts.append(pl.DataFrame(data, schema=dict.fromkeys(self.COLUMNS, pl.Utf8)))
        if self.rejected:
            log.warning(
                "%s: line(s) %s are not acknowledgements (hand-edited or from another version);"
                " skipped, and set aside in %s when this journal is folded",
                self.path,
                ", ".join(str(n) for n, _ in self.rejected[:10]),
                self.quarantine_path,
            )
        if not parts:
            return None
        return pl.concat(parts).to_arrow()

    @property
    def quarantine_path(self) -> Path:
        return self.path.with_name(self.path.name + ".rejected")

    def close(self, *, remove: bool) -> None:
        if self._file is not None:
            self._file.close()
            self._file = None
        if remove:
            if self.rejected:
                with open(self.quarantine_path, "ab") as aside:
                    aside.writelines(line + b"\n" for _, line in self.rejected)
                self.rejected = []
            self.path.unlink(missing_ok=True)


def _journal_shape(data: object, columns: tuple[str, ...]) -> bool:
    """One journal line: every column a list of strings (or nulls), all of one length."""
    if not isinstance(data, dict) or set(data) != set(columns):
        return False
    values = [data[c] for c in columns]
    if not all(isinstance(v, list) for v in values) or len({len(v) for v in values}) != 1:
        return False
    return all(x is None or isinstance(x, str) for v in values for x in v)


def write_state(
    con: duckdb.DuckDBPyConnection, connection: str, goal: str, acked: pa.Table
) -> None:
    """Fold acknowledged rows into ``export_state`` (idempotent: the latest hash wins)."""
    params = {"connection": connection, "goal": goal}
    con.register("exp_acked", acked)
    con.execute(
        """
        DELETE FROM export_state WHERE connection = $connection AND goal = $goal
          AND (list_id, profile_id) IN (
              SELECT (list_id, profile_id) FROM exp_acked WHERE action <> 'send')
        """,
        params,
    )
    con.execute(
        """
        INSERT OR REPLACE INTO export_state
            (connection, goal, list_id, profile_id, email, hash, exported_at)
        SELECT $connection, $goal, list_id, profile_id, last(email), last(hash), now()
        FROM exp_acked WHERE action = 'send' GROUP BY list_id, profile_id
        """,
        params,
    )
    con.unregister("exp_acked")


class StateWriter:
    """Records acknowledged rows in ``export_state`` from a thread, in short transactions.

    Opening and closing the store costs far more than the write itself, so acknowledgements are
    gathered for up to ``interval`` seconds and written together: a crash loses at most that
    much progress (those rows are simply sent again, which the import endpoint treats as an
    update). The store is never held between writes; a send waits for a write only when
    ``max_pending`` acknowledgements are queued.
    """

    def __init__(
        self,
        store: Store,
        connection: str,
        goal: str,
        journal: AckJournal,
        *,
        interval: float = 2.0,
        max_pending: int = 256,
    ) -> None:
        self._store = store
        self._connection = connection
        self._goal = goal
        self._journal = journal
        self._interval = interval
        self._queue: queue.Queue[pa.Table | None] = queue.Queue(max_pending)
        self._error: BaseException | None = None
        self.writes = 0
        self._thread = threading.Thread(target=self._work, name="export-state", daemon=True)
        self._thread.start()

    def ack(self, rows: pl.DataFrame) -> None:
        """Rows (list_id, profile_id, email, hash, action) that Campaign Monitor accepted."""
        if self._error is not None:
            raise self._error
        if rows.height:
            acked = rows.select(*AckJournal.COLUMNS).to_arrow()
            self._journal.append(acked)
            self._queue.put(acked)

    def close(self) -> None:
        """Write everything queued and stop; re-raises a write's error.

        The journal is removed only once the store holds everything it recorded.
        """
        self._queue.put(None)
        self._thread.join()
        self._journal.close(remove=self._error is None)
        if self._error is not None:
            raise self._error

    def _work(self) -> None:
        done = False
        while not done:
            items = [self._queue.get()]
            deadline = time.monotonic() + self._interval
            while items[-1] is not None:
                try:
                    items.append(self._queue.get(timeout=max(0.0, deadline - time.monotonic())))
                except queue.Empty:
                    break
            done = items[-1] is None
            tables = [t for t in items if t is not None]
            if not tables or self._error is not None:
                continue
            try:
                self._write(pa.concat_tables(tables))
            except BaseException as exc:  # surfaced by the next ack() or close()
                self._error = exc

    def _write(self, acked: pa.Table) -> None:
        with self._store.transaction() as con:
            write_state(con, self._connection, self._goal, acked)
        self.writes += 1
