"""Stage: every selected subscriber read into the TEMP table ``imp_in`` of a private in-memory
DuckDB (identifier, delta hash, each field target's incoming values), the store not yet locked."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import ExitStack
from datetime import datetime
from pathlib import Path
from typing import Protocol

import duckdb
import polars as pl

from cmtoolkit.campaign_monitor.fields import STANDARD_FIELD_COLUMNS, TIMESTAMP_FIELDS
from cmtoolkit.profiles.store import SESSION_SETTINGS
from cmtoolkit.sync.imports.identity import IDENTITY_MACROS, key_macro, value_macro
from cmtoolkit.sync.imports.spec import LEAVING_STATES, ImportSpec
from cmtoolkit.sync.scratch import memory_limit, scratch_dir
from cmtoolkit.sync.statement import Statement

log = logging.getLogger("cmtoolkit.sync.imports")

# The import's own DuckDB (staging, plan, and the pages of the store ATTACHed to it) spills past
# its memory limit into the workspace's .runs/ (the OS page cache, not this process). Outside
# DuckDB the process holds about 250 MB (interpreter, libraries, pages being parsed), so 640 MB
# keeps a million contacts under 1 GB with room (bench/import.py peaks: 1.5 GB gave 1.63 GB,
# 700 MB 1,008-1,023 MiB with polars 2.1, 640 MB 942-966 MiB in the same time); past a million
# the limit grows with the contacts staged (scratch.memory_limit; 10M: 1.5 GB).
MEMORY_LIMIT_MB = 640


#: Batches handed to the staging worker and not yet staged, at most (each holds its frames).
MAX_QUEUED_BATCHES = 2

#: The columns of a staged batch, as the client's subscriber frames carry them.
CONTACT_SCHEMA: dict[str, pl.DataType | type[pl.DataType]] = {
    "cid": pl.Int64,
    "list_index": pl.Int32,
    "list_id": pl.Utf8,
    "list_name": pl.Utf8,
    "email": pl.Utf8,
    "name": pl.Utf8,
    "mobile_number": pl.Utf8,
    "state": pl.Utf8,
    "date": pl.Datetime("us"),
    "list_joined_date": pl.Datetime("us"),
    "reads_email_with": pl.Utf8,
    "consent_to_track": pl.Utf8,
    "custom_fields": pl.List(pl.Struct({"key": pl.Utf8, "value": pl.Utf8})),
}


class NamedList(Protocol):
    @property
    def list_id(self) -> str: ...

    @property
    def name(self) -> str: ...


class SubscriberSource(Protocol):
    """What the import reads through: the Campaign Monitor client (a fake in tests)."""

    def lists(self, client_id: str) -> Iterable[NamedList]: ...

    def subscriber_frames_many(
        self,
        selections: Iterable[tuple[str, str, datetime | None]],
        *,
        include_tracking_preference: bool = True,
        totals: Callable[[int, int], None] | None = None,
    ) -> Iterator[tuple[int, pl.DataFrame]]: ...


#: ``progress(contacts_read, total)``: ``total`` is None until every selection's size is known.
ReadProgress = Callable[[int, int | None], None]


Job = Callable[[duckdb.DuckDBPyConnection], None]


class ContactStage:
    """Pages in, one ``imp_in`` row per contact out, computed while the next pages are read.

    The client parses pages in this thread; every ``batch_rows`` contacts (and at each new list) a
    worker thread turns the batch into ``imp_in`` rows in a private in-memory DuckDB, which
    releases the GIL, so the two overlap and the store is not held while Campaign Monitor is being
    read (a preview reads it once, briefly, in the worker: see :meth:`alongside`). The store is
    ATTACHed to this same connection for planning, so the staged rows are never copied.
    """

    def __init__(
        self, spec: ImportSpec, *, batch_rows: int = 50_000, root: Path | None = None
    ) -> None:
        self.spec = spec
        self.batch_rows = batch_rows
        self.select = stage_select(spec)
        # Bounded memory: past the limit DuckDB spills to a private folder in the workspace
        # (``root``) instead of growing.
        self.scratch = ExitStack()
        spill = self.scratch.enter_context(scratch_dir(root, "import"))
        #: DuckDB's memory limit, raised for the rows read once they are all in (``finish``)
        self.memory_limit = memory_limit(MEMORY_LIMIT_MB, 0)
        self.con = duckdb.connect(
            config={"memory_limit": self.memory_limit, "temp_directory": str(spill)}
        )
        # One thread while staging: the other core is busy reading pages. Row order means
        # nothing here (every ordering is explicit, by cid or list), and keeping it made the
        # apply of a million contacts 1.3× slower.
        self.con.execute(
            f"{SESSION_SETTINGS}; SET threads = 1; SET preserve_insertion_order = false"
        )
        self.con.execute(IDENTITY_MACROS.sql)
        self.pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="cmtoolkit-stage")
        self.pending: list[pl.DataFrame] = []
        self.pending_rows = 0
        self.origin: tuple[int, str, str] = (0, "", "")
        self.next_cid = 0
        self.jobs: list[Future[None]] = []
        self.busy = 0.0  # seconds the worker spent staging batches
        self.stalled = 0.0  # seconds the reader waited for the worker (queue full)
        self.staged = False
        self._ingest([pl.DataFrame(schema=CONTACT_SCHEMA)], 0, 0, "", "")  # fixes the columns

    def add(self, frame: pl.DataFrame, list_index: int, list_id: str, list_name: str) -> None:
        if not frame.height:
            return
        origin = (list_index, list_id, list_name)
        if self.pending and origin != self.origin:
            self._flush()  # a batch comes from one list
        self.origin = origin
        self.pending.append(frame)
        self.pending_rows += frame.height
        if self.pending_rows >= self.batch_rows:
            self._flush()

    def alongside(self, job: Job) -> None:
        """Run ``job(con)`` in the worker, in turn with the batches; :meth:`finish` re-raises."""
        self.jobs.append(self.pool.submit(job, self.con))

    def _flush(self) -> None:
        if not self.pending:
            return
        # Bounded memory: when the worker falls behind the reader (a fast network), the reader
        # waits rather than queueing batches of frames without limit.
        waiting = [job for job in self.jobs if not job.done()]
        started = time.perf_counter()
        for job in waiting[: max(0, len(waiting) - MAX_QUEUED_BATCHES + 1)]:
            job.result()
        self.stalled += time.perf_counter() - started
        # Everything else happens in the worker: this thread is busy parsing pages.
        job = self.pool.submit(self._ingest, self.pending, self.next_cid, *self.origin)
        self.jobs.append(job)
        self.next_cid += self.pending_rows
        self.pending, self.pending_rows = [], 0

    def _ingest(
        self, frames: list[pl.DataFrame], first_cid: int, list_index: int, list_id: str, name: str
    ) -> None:
        started = time.perf_counter()
        try:
            self._stage(frames, first_cid, list_index, list_id, name)
        finally:
            self.busy += time.perf_counter() - started

    def _stage(
        self, frames: list[pl.DataFrame], first_cid: int, list_index: int, list_id: str, name: str
    ) -> None:
        batch = _conform(
            pl.concat(frames, how="diagonal_relaxed").with_columns(
                cid=pl.int_range(first_cid, first_cid + sum(f.height for f in frames)),
                list_index=pl.lit(list_index),
                list_id=pl.lit(list_id),
                list_name=pl.lit(name),
            )
        )
        # One table, appended to batch by batch, so the plan scans it on every core (a view
        # over one table per batch was scanned by one thread, and copying them into one table
        # at the end took a second).
        self.con.register("batch", batch)
        into = "INSERT INTO imp_in" if self.staged else "CREATE TEMP TABLE imp_in AS"
        self.con.execute(f"{into} {self.select.sql}", dict(self.select.params))
        self.con.unregister("batch")
        self.staged = True

    def finish(self) -> ContactStage:
        """Wait for the last batch; ``imp_in`` is then complete. The caller closes the stage."""
        self._flush()
        try:
            for job in self.jobs:
                job.result()  # re-raises a worker's error here
            self.con.execute("RESET threads")
            self.memory_limit = memory_limit(MEMORY_LIMIT_MB, self.next_cid)
            self.con.execute("SET memory_limit = $limit", {"limit": self.memory_limit})
        except BaseException:
            self.close()
            raise
        finally:
            self.pool.shutdown(wait=True)
        return self

    def close(self) -> None:
        self.pool.shutdown(wait=True)
        self.con.close()
        self.scratch.close()

    def __enter__(self) -> ContactStage:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def stage_contacts(
    source: SubscriberSource,
    spec: ImportSpec,
    *,
    alongside: Job | None = None,
    root: Path | None = None,
    progress: ReadProgress | None = None,
    leavers_since: Mapping[str, datetime] | None = None,
) -> ContactStage:
    """Read every subscriber of the selected lists and states, in list order, into ``imp_in``.

    Every (list, state) selection goes through one concurrent read
    (``subscriber_frames_many``): pages come back in selection then page order, so contact ids
    (``cid``) follow list order as the merges need. ``alongside(con)`` runs on the stage's
    connection in its worker before the first batch, so it overlaps the reading.
    ``progress(contacts_read, total)`` follows the read. ``leavers_since`` (list id → status
    date, :func:`~cmtoolkit.sync.imports.state.leaver_cursors`): that list's leavers outside
    ``states`` are read from that date only. Returns the finished stage:
    ``stage.con`` holds the TEMP table ``imp_in``; close the stage. ``root`` is the workspace,
    where its spill folder goes.
    """
    names = {lst.list_id: lst.name for lst in source.lists(spec.client_id)}
    # Leavers too (DESIGN §5.6): those outside ``states`` from the list's cursor.
    since = leavers_since or {}
    reads = [
        (
            (list_index, list_id, names.get(list_id, list_id)),
            (list_id, state, since.get(list_id) if state in spec.leaver_states else None),
        )
        for list_index, list_id in enumerate(spec.lists)
        for state in spec.read_states
    ]
    origins = [origin for origin, _ in reads]
    selections = [selection for _, selection in reads]
    sizes: dict[int, int] = {}
    stage = ContactStage(spec, root=root)
    try:
        if alongside:
            stage.alongside(alongside)
        read = 0
        started = time.perf_counter()
        frames = source.subscriber_frames_many(
            selections, include_tracking_preference=True, totals=sizes.__setitem__
        )
        for i, frame in frames:
            stage.add(frame, *origins[i])
            read += frame.height
            if progress is not None:
                total = sum(sizes.values()) if len(sizes) == len(selections) else None
                progress(read, total)
        reading = time.perf_counter() - started
        stage.finish()
    except BaseException:
        stage.close()
        raise
    # Where a slow import spends its time: a reader that waited on the worker, or a worker
    # still busy after the last page, means staging (not the network) set the pace.
    log.info(
        "staged %d contacts: read in %.2f s (%.2f s of it waiting for the staging worker), "
        "worker busy %.2f s, done %.2f s after the last page",
        read,
        reading,
        stage.stalled,
        stage.busy,
        time.perf_counter() - started - reading,
    )
    return stage


def _conform(frame: pl.DataFrame) -> pl.DataFrame:
    cols = []
    for name, dtype in CONTACT_SCHEMA.items():
        col = pl.col(name) if name in frame.columns else pl.lit(None)
        cols.append(col.cast(dtype).alias(name))
    return frame.select(cols)


def _standard_value(field: str) -> str:
    """SQL text of a standard field (a whitelist: no user text reaches the SQL)."""
    column = STANDARD_FIELD_COLUMNS[field]
    if field in TIMESTAMP_FIELDS:
        return f"strftime({column}, '%Y-%m-%d %H:%M:%S')"
    return f"CAST({column} AS VARCHAR)"


def stage_select(spec: ImportSpec) -> Statement:
    """SELECT over ``batch``: per contact its identifier, delta hash and each field target's
    incoming values (``in_<alias>``, non-blank values as VARCHAR[]).

    DuckDB, not polars: polars work in the staging thread competes with the client's polars
    parsing of the next page (measured 1.5× slower together), DuckDB's does not. The custom
    fields themselves are not kept, so staging a million contacts stays small.
    """
    targets = spec.targets
    fields = {f for f, _ in spec.identifiers} | {t.field for t in targets if t.field}
    custom = sorted(f for f in fields if f not in STANDARD_FIELD_COLUMNS)
    standard = sorted(f for f in fields if f in STANDARD_FIELD_COLUMNS)
    params: dict[str, object] = {"fingerprint": spec.fingerprint, "custom": custom}

    def values(field: str, param: str) -> str:
        if field in STANDARD_FIELD_COLUMNS:
            value = _standard_value(field)
            return f"CASE WHEN trim(coalesce({value}, '')) <> '' THEN [{value}] ELSE [] END"
        params[param] = field
        return f"list_transform(list_filter(filled, lambda f: f.key = ${param}), lambda f: f.value)"

    # The hash keeps the first applying rule's raw value as it always did (id_raw): stored hashes
    # depend on it. Matching uses each rule's normalised key (k_<r>, DESIGN §5.1), and a created
    # profile stores each applying rule's normalised value (v_<r>).
    raws = [
        f"nullif(trim({_standard_value(field)}), '')"
        if field in STANDARD_FIELD_COLUMNS
        else f"{values(field, f'id_{r}')}[1]"
        for r, (field, _) in enumerate(spec.identifiers)
    ]
    first_id = f"coalesce({', '.join(raws)})" if raws else "NULL"
    keys = "".join(
        f", {key_macro(field)}({raw}) AS k_{r}, {value_macro(field)}({raw}) AS v_{r}"
        for r, ((field, _), raw) in enumerate(zip(spec.identifiers, raws, strict=True))
    )
    rules = range(len(spec.identifiers))
    which = " ".join(f"WHEN k_{r} IS NOT NULL THEN {r}" for r in rules)
    identifier = f"coalesce({', '.join(f'k_{r}' for r in rules)})" if raws else "NULL"
    rule_columns = "".join(f", k_{r}, v_{r}" for r in rules)
    params["states"] = list(spec.states)
    params["leaving"] = list(LEAVING_STATES)
    list_name = ", list_name" if spec.save_list_names_to else ""
    std_values = "".join(f", {_standard_value(f)}" for f in standard)
    incoming = "".join(
        f", {values(t.field, f'f_{t.alias}')} AS in_{t.alias}"
        for t in targets
        if t.kind == "field" and t.field
    )
    for t in targets:
        if t.kind == "consent" and t.field:
            params[f"w_{t.alias}"], params[f"g_{t.alias}"] = t.when, list(t.grants)
            incoming += (
                f", CASE WHEN list_contains({values(t.field, f'f_{t.alias}')}, $w_{t.alias}) "
                f"THEN $g_{t.alias}::VARCHAR[] ELSE [] END AS in_{t.alias}"
            )
    # Campaign Monitor lists a subscriber's fields in the list's field order, so the text of the
    # fields read is a stable fingerprint of what the goal reads. md5 is stable across versions
    # (DuckDB's hash() is not). The format must not change: stored hashes depend on it (a
    # changed hash applies a contact again, and ``sum`` twice).
    fields_text = (
        "array_to_string(list_transform(custom_fields, lambda f: f.key || chr(31) || f.value), "
        "chr(29))"
    )
    std_columns = "".join(
        f", {STANDARD_FIELD_COLUMNS[f]}" for f in standard if f not in ("EmailAddress", "State")
    )
    # A leaver's state is part of its hash (concat_ws skips the NULL of everyone else, so the
    # hashes of active contacts stay as they were).
    sql = f"""
        SELECT cid, list_index, list_id, list_name, email, email_key(email) AS subscriber,
               state, leaving, selected,
               CASE WHEN leaving AND NOT selected THEN status_date END AS left_at,
               id_raw, id_rule, identifier{rule_columns},
               md5(concat_ws(chr(30), $fingerprint, id_raw{list_name}{std_values},
                             {fields_text}, CASE WHEN leaving THEN state END)) AS hash
               {incoming}
        FROM (
            SELECT *, CASE {which or "WHEN false THEN 0"} END AS id_rule,
                   {identifier} AS identifier
            FROM (
            SELECT *, trim({first_id}) AS id_raw, list_contains($leaving, state) AS leaving,
                   list_contains($states, state) AS selected{keys}
            FROM (
                -- filled: the non-blank fields, judged once here, not once per target
                SELECT *, list_filter(custom_fields, lambda f: trim(f.value) <> '') AS filled
                FROM (
                    SELECT cid, list_index, list_id, list_name, trim(email) AS email,
                           coalesce(CAST(state AS VARCHAR), 'Active') AS state,
                           "date" AS status_date{std_columns},
                           list_filter(coalesce(custom_fields, []),
                                       lambda f: list_contains($custom, f.key) AND f.value <> '')
                               AS custom_fields
                    FROM batch
                )
            )
            )
        )
        """
    return Statement(sql, params)
