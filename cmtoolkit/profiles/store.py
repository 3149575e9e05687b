"""The DuckDB file behind a workspace: short-lived connections, lock waits, and the profile API.

Nothing here keeps a connection open (DuckDB lets one process hold a file for writing): every call
opens the file, works and closes it, waiting out another process's lock with backoff up to
``lock_timeout`` before raising :class:`StoreLocked`. Reading a store that does not exist yet
yields an empty in-memory store, so read commands create no files. See docs/profiles.md.
"""

from __future__ import annotations

import os
import re
import time
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Literal, TypedDict, TypeVar

import duckdb

from cmtoolkit.errors import ConfigurationError, StoreError, StoreLocked
from cmtoolkit.profiles import schema
from cmtoolkit.profiles.interactions import interaction_names, load_interactions
from cmtoolkit.profiles.loaders import LoadResult, load, load_frame
from cmtoolkit.profiles.properties import check_type, define_property, defined_properties
from cmtoolkit.profiles.quoting import quote_ident
from cmtoolkit.profiles.sources import Frame, Source

T = TypeVar("T")

DEFAULT_LOCK_TIMEOUT = 60.0
LOCK_TIMEOUT_ENV = "CMTOOLKIT_LOCK_TIMEOUT"
_PID_RE = re.compile(r"PID (\d+)")
_HOLDER_RE = re.compile(r"lock is held in (.+?) \(PID")


# Every connection to a store: timestamps (``now()``) in UTC, as the ledger's readers expect them
# whatever the machine's zone, and no progress bar on a terminal or in a notebook.
SESSION_SETTINGS = "SET enable_progress_bar = false; SET TimeZone = 'UTC'"


def lock_timeout_from_env() -> float:
    raw = os.environ.get(LOCK_TIMEOUT_ENV)
    if raw is None or raw.strip() == "":
        return DEFAULT_LOCK_TIMEOUT
    try:
        value = float(raw)
    except ValueError:
        raise ConfigurationError(
            f"{LOCK_TIMEOUT_ENV}={raw!r} is not a number of seconds; set e.g. 60"
        ) from None
    if value < 0:
        raise ConfigurationError(f"{LOCK_TIMEOUT_ENV} must be >= 0 seconds, not {raw!r}")
    return value


def _sql_string(text: str) -> str:
    """A SQL string literal (ATTACH takes no parameters)."""
    return "'" + text.replace("'", "''") + "'"


def _is_lock_error(exc: BaseException) -> bool:
    return isinstance(exc, duckdb.IOException) and "Could not set lock" in str(exc)


# DuckDB's checkpoint rewrites every row group that holds deleted rows (its vacuum; an update of
# a list column deletes and re-inserts the row): at a million profiles that took 2 s after an
# import changed 5 % of them, and again after every such import, whatever its size. Deleted rows
# only cost scans, so the store's connections do not vacuum as they go, and the checkpoint that
# ends a write vacuums once a table holds more deleted rows than live ones: scans then read at
# most twice the rows, and each rewrite is paid for by at least as many changed rows.
_NO_VACUUM = "SET max_vacuum_tasks = 0"


def _checkpoint(con: duckdb.DuckDBPyConnection, database: str) -> None:
    """Fold the write-ahead log into the file, vacuuming only where deleted rows outnumber live."""
    tables = con.execute(
        "SELECT schema_name, table_name, estimated_size FROM duckdb_tables() "
        "WHERE database_name = ? AND NOT temporary",
        [database],
    ).fetchall()
    vacuum = False
    for schema_name, table, stored in tables:
        name = ".".join(quote_ident(part) for part in (database, schema_name, table))
        (live,) = con.execute(f"SELECT count(*) FROM {name}").fetchone() or (0,)
        vacuum = vacuum or stored - live > live
    con.execute("RESET max_vacuum_tasks" if vacuum else _NO_VACUUM)
    try:
        con.execute(f"CHECKPOINT {quote_ident(database)}")
    finally:
        con.execute(_NO_VACUUM)


class PropertyStats(TypedDict):
    type: str
    profiles_with_values: int


class StoreStats(TypedDict):
    path: str
    schema_version: int
    profiles: int
    properties: dict[str, PropertyStats]
    interactions: int
    interaction_names: int
    segments: dict[str, int]


class Store:
    """The profile store of one workspace (``profiles.duckdb``)."""

    def __init__(
        self,
        path: str | os.PathLike[str],
        *,
        migrations: Iterable[schema.Migration] = (),
        lock_timeout: float | None = None,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
        initial_backoff: float = 0.05,
        max_backoff: float = 2.0,
    ) -> None:
        self.path = Path(path)
        self._extra_migrations = tuple(migrations)
        self.lock_timeout = lock_timeout_from_env() if lock_timeout is None else lock_timeout
        self._clock = clock
        self._sleep = sleep
        self._initial_backoff = initial_backoff
        self._max_backoff = max_backoff

    def __repr__(self) -> str:
        return f"Store({str(self.path)!r})"

    @property
    def migrations(self) -> list[schema.Migration]:
        """The profile store's migrations and those of the tables other packages keep here."""
        return sorted([*schema.MIGRATIONS, *self._extra_migrations], key=lambda m: m.version)

    # --- connections ---------------------------------------------------------------------------

    def _open_file(self, read_only: bool) -> duckdb.DuckDBPyConnection:
        """Open the file, waiting out another process's lock with exponential backoff."""
        mode = [read_only]

        def open_() -> duckdb.DuckDBPyConnection:
            try:
                con = duckdb.connect(str(self.path), read_only=mode[0])
            except duckdb.ConnectionException as exc:
                # This process already has the file open in the other mode: share that instance.
                if mode[0] and "different configuration" in str(exc):
                    mode[0] = False
                    return open_()
                raise StoreError(f"cannot open the profile store {self.path}: {exc}") from exc
            con.execute(SESSION_SETTINGS)
            return con

        return self._waiting_out_locks(open_)

    def _waiting_out_locks(self, open_: Callable[[], T]) -> T:
        """``open_()``, retried with exponential backoff while another process holds the file."""
        deadline = self._clock() + self.lock_timeout
        delay = self._initial_backoff
        while True:
            try:
                return open_()
            except duckdb.IOException as exc:
                if not _is_lock_error(exc):
                    raise self._unreadable(exc) from exc
                remaining = deadline - self._clock()
                if remaining <= 0:
                    raise self._locked_error(exc) from exc
                self._sleep(min(delay, remaining))
                delay = min(delay * 2, self._max_backoff)

    def _unreadable(self, exc: BaseException) -> StoreError:
        text = str(exc).splitlines()[0][:300]
        if "Read-only" in text or "Permission denied" in text:
            hint = "the workspace must be writable by this user (or copy it somewhere writable)"
        else:
            hint = (
                "the file is damaged, cut short or not a cmtoolkit store: restore it from a "
                "backup, or move it aside and load the profiles again"
            )
        return StoreError(f"cannot open the profile store {self.path}: {text}; {hint}")

    def _locked_error(self, exc: BaseException) -> StoreLocked:
        text = str(exc)
        pid_match = _PID_RE.search(text)
        pid = int(pid_match.group(1)) if pid_match else None
        holder_match = _HOLDER_RE.search(text)
        holder = holder_match.group(1) if holder_match else "another process"
        who = f"process {pid} ({holder})" if pid is not None else holder
        return StoreLocked(
            f"the profile store {self.path} is locked by {who} and stayed locked for "
            f"{self.lock_timeout:g} s. Close the connection that process holds (a notebook "
            "kernel: restart it or let its cell finish), or wait for its run to end, then try "
            f"again; set {LOCK_TIMEOUT_ENV} to wait longer.",
            holder_pid=pid,
        )

    @contextmanager
    def connect(self, write: bool = False) -> Iterator[duckdb.DuckDBPyConnection]:
        """A short-lived DuckDB connection, closed on exit.

        ``write=True`` creates the file (and its folder) if needed and applies pending
        migrations. Statements autocommit; use :meth:`transaction` for all-or-nothing work.
        """
        if write:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            con = self._open_file(read_only=False)
            try:
                con.execute(_NO_VACUUM)
                schema.migrate(con, str(self.path), self.migrations)
            except BaseException:
                con.close()
                raise
        elif not self.path.exists():
            con = duckdb.connect(":memory:")
            con.execute(SESSION_SETTINGS)
            schema.migrate(con, migrations=self.migrations)
        else:
            con = self._open_file(read_only=True)
            try:
                applied = schema.applied_versions(con)
                schema.check_version(max(applied, default=0), str(self.path), self.migrations)
                outdated = bool(schema.pending(applied, self.migrations))
            except BaseException:
                con.close()
                raise
            if outdated:
                con.close()
                with self.connect(write=True):
                    pass
                con = self._open_file(read_only=True)
        try:
            yield con
            if write:  # rather than closing's checkpoint, which would vacuum
                (database,) = con.execute("SELECT current_database()").fetchone() or ("",)
                _checkpoint(con, database)
        finally:
            con.close()

    @contextmanager
    def attached(
        self, con: duckdb.DuckDBPyConnection, *, write: bool = False, alias: str = "store"
    ) -> Iterator[duckdb.DuckDBPyConnection]:
        """This store ATTACHed to an existing (in-memory) connection, as its default database.

        For work staged in memory before the store is needed (an import reads Campaign Monitor
        first): the file is locked only from here on, and the staged TEMP tables join the
        store's tables without being copied. Lock waits, migrations and the empty in-memory store
        of a missing file work as in :meth:`connect`. Detached on exit.
        """
        if write or self.path.exists():
            if write:
                self.path.parent.mkdir(parents=True, exist_ok=True)
                con.execute(_NO_VACUUM)  # the instance's setting: see _checkpoint
            target = str(self.path)
            options = "" if write else " (READ_ONLY)"
            if not write:  # bring an old file up to date first, as connect() does
                with self.connect():
                    pass
            self._waiting_out_locks(
                lambda: con.execute(
                    f"ATTACH {_sql_string(target)} AS {quote_ident(alias)}{options}"
                )
            )
        else:
            con.execute(f"ATTACH ':memory:' AS {quote_ident(alias)}")
        try:
            con.execute(f"USE {quote_ident(alias)}")
            if write or not self.path.exists():
                schema.migrate(con, str(self.path), self.migrations)
            yield con
            if write:
                # Fold the writes into the file now, as closing a connect(write=True) does:
                # DETACH left them in the log for the next writer to fold in (1.1 s after a
                # million-contact import) and for every read-only open to replay.
                _checkpoint(con, alias)
        finally:
            con.execute("USE memory")
            con.execute(f"DETACH {quote_ident(alias)}")

    @contextmanager
    def transaction(self) -> Iterator[duckdb.DuckDBPyConnection]:
        """A write connection inside BEGIN … COMMIT; ROLLBACK when the block raises."""
        with self.connect(write=True) as con:
            con.begin()
            try:
                yield con
            except BaseException:
                con.rollback()
                raise
            con.commit()

    def schema_version(self) -> int:
        with self.connect() as con:
            return schema.current_version(con)

    # --- properties ----------------------------------------------------------------------------

    def properties(self) -> dict[str, str]:
        """Defined properties: name → type."""
        with self.connect() as con:
            return defined_properties(con)

    def define_property(self, name: str, type: str) -> bool:
        """Define a property (adds its column); False if it already exists with that type."""
        check_type(type)
        with self.transaction() as con:
            return define_property(con, name, type)

    def sample_values(self, prop: str, n: int) -> list[str]:
        """First values of ``prop`` from up to ``n`` profiles, sampled repeatably (status checks
        that an export's matching property holds email addresses)."""
        if not self.path.exists():
            return []
        with self.connect() as con:
            if prop not in defined_properties(con):
                return []
            rows = con.execute(
                # The sample is drawn after the filter: sampling first would leave a store where
                # few profiles have the property with next to nothing to check.
                f"SELECT v FROM (SELECT {quote_ident(prop)}[1] AS v FROM profiles "
                f"WHERE v IS NOT NULL) USING SAMPLE reservoir({int(n)} ROWS) REPEATABLE (1)"
            ).fetchall()
        return [str(r[0]) for r in rows]

    # --- profiles ------------------------------------------------------------------------------

    def count(self) -> int:
        with self.connect() as con:
            return int(con.execute("SELECT count(*) FROM profiles").fetchall()[0][0])

    def get(self, profile_id: str) -> dict[str, list[str]] | None:
        """The profile's properties that have values, or None when there is no such profile."""
        with self.connect() as con:
            names = list(defined_properties(con))
            cols = ", ".join(quote_ident(n) for n in names) or "NULL"
            rows = con.execute(
                f"SELECT {cols} FROM profiles WHERE profile_id = ?", [profile_id]
            ).fetchall()
        if not rows:
            return None
        values = rows[0] if names else ()
        return {n: list(v) for n, v in zip(names, values, strict=True) if v}

    def find(self, property: str, value: str) -> list[str]:
        """Ids of profiles whose ``property`` holds ``value`` (emails: trimmed, any case)."""
        with self.connect() as con:
            props = defined_properties(con)
            if property not in props:
                raise ConfigurationError(
                    f"unknown property {property!r}; defined: {', '.join(props) or 'none'}"
                )
            col = quote_ident(property)
            if props[property] == "email":
                cond = f"len(list_filter({col}, lambda x: lower(trim(x)) = lower(trim(?)))) > 0"
            else:
                cond = f"list_contains({col}, ?)"
            rows = con.execute(
                f"SELECT profile_id FROM profiles WHERE coalesce({cond}, false)"
                " ORDER BY profile_id",
                [value],
            ).fetchall()
        return [r[0] for r in rows]

    def set_values(
        self,
        frame: Frame,
        mode: Literal["set", "add"] = "set",
        *,
        id_column: str = "profile_id",
        types: dict[str, str] | None = None,
    ) -> int:
        """Upsert a pandas/polars/Arrow frame (id + property columns); returns rows written.

        ``set`` replaces each given property, ``add`` appends values not yet present. Columns
        may hold lists or scalars; None/empty means no value. One transaction.
        """
        with self.transaction() as con:
            return load_frame(con, frame, id_column=id_column, types=types, mode=mode).rows

    def delete_profiles(self, ids: Iterable[str]) -> int:
        """Delete profiles (with their interactions and segment memberships); returns count."""
        id_list = [str(i) for i in ids]
        with self.transaction() as con:
            n = con.execute(
                "SELECT count(*) FROM profiles WHERE list_contains(?::VARCHAR[], profile_id)",
                [id_list],
            ).fetchall()[0][0]
            for table in ("profiles", "interactions", "segment_members"):
                con.execute(
                    f"DELETE FROM {table} WHERE list_contains(?::VARCHAR[], profile_id)", [id_list]
                )
        return int(n)

    def stats(self) -> StoreStats:
        """Counts: profiles, per-property type and filled count, interactions, segments."""
        with self.connect() as con:
            props = defined_properties(con)
            filled: dict[str, int] = {}
            if props:
                exprs = ", ".join(f"count({quote_ident(n)})" for n in props)
                counts = con.execute(f"SELECT {exprs} FROM profiles").fetchall()[0]
                filled = dict(zip(props, (int(c) for c in counts), strict=True))
            profiles = con.execute("SELECT count(*) FROM profiles").fetchall()[0][0]
            interactions = con.execute(
                "SELECT count(*), count(DISTINCT interaction) FROM interactions"
            ).fetchall()[0]
            segments = con.execute("SELECT name, size FROM segments ORDER BY name").fetchall()
            return {
                "path": str(self.path),
                "schema_version": schema.current_version(con),
                "profiles": int(profiles),
                "properties": {
                    n: {"type": t, "profiles_with_values": filled.get(n, 0)}
                    for n, t in props.items()
                },
                "interactions": int(interactions[0]),
                "interaction_names": int(interactions[1]),
                "segments": {name: int(size) for name, size in segments},
            }

    # --- loading -------------------------------------------------------------------------------

    def load(
        self,
        source: Source,
        *,
        id_column: str = "profile_id",
        types: dict[str, str] | None = None,
        mode: Literal["set", "add"] = "set",
    ) -> LoadResult:
        """Load profiles from a CSV/Parquet path or a frame, all-or-nothing (see loaders)."""
        with self.transaction() as con:
            return load(con, source, id_column=id_column, types=types, mode=mode)

    def load_interactions(self, source: Source) -> int:
        """Append viewed interactions (idempotent); returns rows added."""
        with self.transaction() as con:
            return load_interactions(con, source)

    def interaction_names(self, profile_id: str) -> list[str]:
        with self.connect() as con:
            return interaction_names(con, profile_id)
