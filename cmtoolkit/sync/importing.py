"""The import goal: Campaign Monitor subscribers enrich or create profiles (DESIGN §5).

Three phases, so that the store is locked only while it is really needed:

1. **Stage** (no store lock): every selected list and state is paged through the client; a worker
   thread turns each batch of pages into ``imp_in`` rows (identifier, delta hash, each mapped
   field's incoming values) in an in-memory DuckDB while the next pages are read.
2. **Plan**: the store is ATTACHed to that same connection (no copy of the staged rows) and
   every decision — delta, identifier match, consent, type checks, the four merge rules, list
   names — is a set-based SQL statement over temp tables. Contacts unchanged since the last run
   stop at the delta, so a re-run costs little more than reading. A preview stops here, with the
   store attached read-only.
3. **Apply** (real runs, in the same transaction as the ledger's ``FINISHED``): new profiles,
   changed property columns, delta hashes and ledger rows, a handful of statements.

Decisions that are not spelled out in DESIGN §5 and are made here:

- A contact's *hash* covers the connection's import configuration, the identifier and the values of
  every field the connection reads, so editing a mapping re-applies contacts once.
- A contact whose values already hold in the profile is ``UNCHANGED`` ("values already current")
  even when its hash changed; its new hash is recorded.
- A contact whose hash is the one last applied stops at the delta and is not matched again: a
  profile deleted since stays ``UNCHANGED`` until ``--full`` (its ledger row has no profile id).
- A created profile's id is derived from its identifier (``cm-`` + 24 hex digits of an md5), so an
  interrupted and re-run import creates the same ids as an uninterrupted one.
- An incoming value that does not fit the target property's type (a non-date into a ``date``
  property, …) makes the contact ``INVALID`` and nothing of it is applied; ``sum`` mappings instead
  leave the property unchanged and note why (DESIGN §5).
- Consent of an existing profile is judged on its values before the run; a new profile on the
  values it would be created with. An objective counts as consented when it is in
  ``consented_objectives`` and not in ``refused_objectives``.
"""

from __future__ import annotations

import hashlib
import json
import tempfile
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any, ClassVar, Protocol

import duckdb
import polars as pl

from cmtoolkit.profiles.consent import consent_predicate
from cmtoolkit.profiles.properties import define_property, defined_properties, resolve
from cmtoolkit.profiles.quoting import quote_ident
from cmtoolkit.sync import ledger
from cmtoolkit.sync.goal import GoalContext, GoalName, Outcome

if TYPE_CHECKING:
    from cmtoolkit.connection.model import Connection

IMPORT_OUTCOMES = (
    "CREATED",
    "MODIFIED",
    "UNCHANGED",
    "NO_IDENTIFIER",
    "NOT_FOUND",
    "AMBIGUOUS",
    "CONSENT_MISMATCH",
    "INVALID",
)

# Standard subscriber fields, as records carry them, and the staging column that holds each.
STANDARD_FIELDS = {
    "EmailAddress": "email",
    "Name": "name",
    "MobileNumber": "mobile_number",
    "State": "state",
    "Date": "date",
    "ListJoinedDate": "list_joined_date",
    "ReadsEmailWith": "reads_email_with",
    "ConsentToTrack": "consent_to_track",
}
TIMESTAMP_FIELDS = ("Date", "ListJoinedDate")  # read back as Campaign Monitor writes them


def _standard_value(field: str) -> str:
    """SQL text of a standard field (a whitelist: no user text reaches the SQL)."""
    column = STANDARD_FIELDS[field]
    if field in TIMESTAMP_FIELDS:
        return f"strftime({column}, '%Y-%m-%d %H:%M:%S')"
    return f"CAST({column} AS VARCHAR)"


# The import's own DuckDB: staging, plan, and the pages of the store ATTACHed to it. At a
# million contacts, 1 GB made the plan and apply evict and re-read pages (preview plan 2.8 s,
# first-run apply 4.4 s); 1.5 GB: 2.1 s and 3.4 s, with the process peaking at 1.6 GB.
MEMORY_LIMIT = "1500MB"

# Values that fit a typed property; each is a SQL predicate over ``value``.
TYPE_CHECKS = {
    "number": "try_cast(trim(value) AS DOUBLE) IS NOT NULL",
    "date": "try_cast(trim(value) AS DATE) IS NOT NULL",
    "datetime": "try_cast(trim(value) AS TIMESTAMP) IS NOT NULL",
    "boolean": "lower(trim(value)) IN ('true', 'false', 'yes', 'no', '1', '0')",
    "email": "regexp_full_match(trim(value), '[^@\\s]+@[^@\\s]+\\.[^@\\s]+')",
}

CONTACT_SCHEMA = {
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


class SubscriberSource(Protocol):
    """What the import reads through: the Campaign Monitor client."""

    def lists(self, client_id: str) -> Iterable[Any]: ...

    def subscriber_frames(
        self, list_id: str, state: str = "Active", **kw: Any
    ) -> Iterator[pl.DataFrame]: ...


@dataclass(frozen=True)
class ImportSpec:
    """The parts of a connection the import goal needs (see ``cmtoolkit.connection``)."""

    connection: str
    client_id: str
    lists: tuple[str, ...]
    states: tuple[str, ...]
    allow_create: bool
    save_list_names_to: str | None
    identifiers: tuple[tuple[str, str], ...]  # (field, property), tried in order
    mappings: tuple[tuple[str, str, str], ...]  # (field, property, rule)
    objectives: tuple[str, ...]

    @classmethod
    def from_connection(cls, conn: Any) -> ImportSpec:
        goal = conn.import_
        return cls(
            connection=conn.name,
            client_id=conn.campaign_monitor.client_id,
            lists=tuple(goal.lists),
            states=tuple(goal.states),
            allow_create=bool(goal.allow_create),
            save_list_names_to=goal.save_list_names_to,
            identifiers=tuple((i.field, i.property) for i in goal.identifiers),
            mappings=tuple((m.field, m.property, m.rule) for m in goal.mappings),
            objectives=tuple(conn.objectives or ()),
        )

    @property
    def fingerprint(self) -> str:
        """Changes when the configuration that shapes a contact's effect changes."""
        doc = [self.identifiers, self.mappings, self.save_list_names_to, self.allow_create]
        return hashlib.md5(json.dumps(doc).encode()).hexdigest()


# --- read ----------------------------------------------------------------------------------------


class ContactStage:
    """Pages in, one ``imp_in`` row per contact out, computed while the next pages are read.

    The client parses pages in this thread; every ``batch_rows`` contacts (and at each new list) a
    worker thread turns the batch into ``imp_in`` rows (identifier, delta hash, and each mapped
    field's incoming values) in a private in-memory DuckDB, which releases the GIL, so the two
    overlap and the store is not held while Campaign Monitor is being read (a preview reads it
    once, briefly, in the worker: see :meth:`alongside`). The store is ATTACHed to this same
    connection for planning, so the staged rows are never copied.
    """

    def __init__(self, spec: ImportSpec, *, batch_rows: int = 50_000) -> None:
        self.spec = spec
        self.batch_rows = batch_rows
        self.sql, self.params = _stage_sql(spec, targets_for(spec))
        # Bounded memory: past the limit DuckDB spills to a private temp folder instead of
        # growing.
        self.spill = tempfile.TemporaryDirectory(prefix="cmtoolkit-import-")
        self.con = duckdb.connect(
            config={"memory_limit": MEMORY_LIMIT, "temp_directory": self.spill.name}
        )
        # One thread while staging: the other core is busy reading pages. Row order means
        # nothing here (every ordering is explicit, by cid or list), and keeping it made the
        # apply of a million contacts 1.3× slower.
        self.con.execute(
            "SET enable_progress_bar = false; SET threads = 1; SET preserve_insertion_order = false"
        )
        self.pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="cmtoolkit-stage")
        self.pending: list[pl.DataFrame] = []
        self.pending_rows = 0
        self.origin: tuple[int, str, str] = (0, "", "")
        self.next_cid = 0
        self.jobs: list[Future[None]] = []
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

    def alongside(self, job: Callable[[duckdb.DuckDBPyConnection], None]) -> None:
        """Run ``job(con)`` in the worker, in turn with the batches; :meth:`finish` re-raises."""
        self.jobs.append(self.pool.submit(job, self.con))

    def _flush(self) -> None:
        if not self.pending:
            return
        # Everything else happens in the worker: this thread is busy parsing pages.
        job = self.pool.submit(self._ingest, self.pending, self.next_cid, *self.origin)
        self.jobs.append(job)
        self.next_cid += self.pending_rows
        self.pending, self.pending_rows = [], 0

    def _ingest(
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
        if self.staged:
            self.con.execute(f"INSERT INTO imp_in {self.sql}", self.params)
        else:
            self.con.execute(f"CREATE TEMP TABLE imp_in AS {self.sql}", self.params)
        self.con.unregister("batch")
        self.staged = True

    def finish(self) -> ContactStage:
        """Wait for the last batch; ``imp_in`` is then complete. The caller closes the stage."""
        self._flush()
        try:
            for job in self.jobs:
                job.result()  # re-raises a worker's error here
            self.con.execute("RESET threads")
        except BaseException:
            self.close()
            raise
        finally:
            self.pool.shutdown(wait=True)
        return self

    def close(self) -> None:
        self.pool.shutdown(wait=True)
        self.con.close()
        self.spill.cleanup()

    def __enter__(self) -> ContactStage:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def stage_contacts(
    source: SubscriberSource,
    spec: ImportSpec,
    *,
    alongside: Callable[[duckdb.DuckDBPyConnection], None] | None = None,
) -> ContactStage:
    """Read every subscriber of the selected lists and states, in list order, into ``imp_in``.

    ``alongside(con)`` runs on the stage's connection in its worker before the first batch, so
    it overlaps the reading. Returns the finished stage: ``stage.con`` holds the TEMP table
    ``imp_in``; close the stage.
    """
    names = {lst.list_id: lst.name for lst in source.lists(spec.client_id)}
    stage = ContactStage(spec)
    try:
        if alongside:
            stage.alongside(alongside)
        for list_index, list_id in enumerate(spec.lists):
            for state in spec.states:
                for frame in source.subscriber_frames(
                    list_id, state, include_tracking_preference=True
                ):
                    stage.add(frame, list_index, list_id, names.get(list_id, list_id))
    except BaseException:
        stage.close()
        raise
    return stage.finish()


def _conform(frame: pl.DataFrame) -> pl.DataFrame:
    cols = []
    for name, dtype in CONTACT_SCHEMA.items():
        col = pl.col(name) if name in frame.columns else pl.lit(None)
        cols.append(col.cast(dtype).alias(name))
    return frame.select(cols)


# --- plan ----------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Target:
    """One property the import writes: where its incoming values come from and the merge rule.

    ``alias`` names the target's columns in the temp tables (``in_<n>``, ``new_<n>``); property
    names reach SQL only through ``quote_ident`` and field names only as parameters.
    """

    alias: str
    property: str
    rule: str
    field: str | None  # a subscriber field; None for the pseudo-targets below
    kind: str = "field"  # field | list_names | identifier


def targets_for(spec: ImportSpec) -> list[Target]:
    targets = [
        Target(f"t{i}", prop, rule, field) for i, (field, prop, rule) in enumerate(spec.mappings)
    ]
    mapped = {t.property for t in targets}
    if spec.save_list_names_to and spec.save_list_names_to not in mapped:
        targets.append(Target("tl", spec.save_list_names_to, "add", None, "list_names"))
        mapped.add(spec.save_list_names_to)
    # A created profile gets its identifier, unless a mapping already writes that property.
    for j, (_, prop) in enumerate(spec.identifiers):
        if prop not in mapped:
            targets.append(Target(f"ti{j}", prop, "set_if_empty", None, "identifier"))
            mapped.add(prop)
    return targets


def _stored(t: Target, props: dict) -> str:
    """SQL of the values ``profiles AS p`` holds for ``t``'s property ([] before it exists)."""
    if t.property in props:
        return f"coalesce(p.{quote_ident(t.property)}, [])"
    return "[]::VARCHAR[]"


@dataclass
class ImportPlan:
    """The result of planning: temp tables on ``con`` plus summary figures."""

    con: duckdb.DuckDBPyConnection
    spec: ImportSpec
    targets: list[Target]
    counts: dict[str, int]
    new_properties: dict[str, str]  # properties the run will define, name → type
    values: bool = True  # imp_new holds every new value (False: a preview's plan)

    def rows(self, limit: int | None = None) -> pl.DataFrame:
        """One row per contact: list, email, identifier, profile, outcome, reason."""
        return self.con.sql(
            "SELECT cid, list_id, email, identifier, "
            "CASE WHEN NOT is_new OR outcome = 'CREATED' THEN profile_id END AS profile_id, "
            "outcome, reason FROM imp_plan ORDER BY cid LIMIT $limit",
            params={"limit": limit if limit is not None else 2**62},
        ).pl()

    def samples(self, limit: int = 20) -> pl.DataFrame:
        """Before/after of every changed property for a sample of affected profiles.

        Read before the plan is applied (a preview): ``before`` comes from the store.
        """
        props = defined_properties(self.con)
        parts = [
            f"SELECT n.profile_id, n.is_new AS created, $p_{t.alias} AS property, "
            f"{_stored(t, props)} AS before, n.new_{t.alias} AS after "
            "FROM picked n LEFT JOIN profiles p USING (profile_id) "
            f"WHERE n.new_{t.alias} IS DISTINCT FROM {_stored(t, props)}"
            for t in self.targets
        ]
        if not parts:
            return pl.DataFrame()
        first = "SELECT * FROM imp_new WHERE changed ORDER BY profile_id LIMIT $limit"
        params = {"limit": limit, **{f"p_{t.alias}": t.property for t in self.targets}}
        if self.values:
            ctes = f"picked AS ({first})"
        else:  # a preview's plan keeps no values: merge again for the picked profiles
            again, merge_params = _merge_sql(
                self.targets,
                props,
                "outcome IN ('CREATED', 'MODIFIED') AND profile_id IN (SELECT profile_id FROM ids)",
                self.targets,
            )
            ctes = f"ids AS ({first}), picked AS ({again})"
            params.update(merge_params)
        return self.con.sql(
            f"WITH {ctes} {' UNION ALL '.join(parts)} ORDER BY profile_id, property",
            params=params,
        ).pl()


def plan_import(
    con: duckdb.DuckDBPyConnection,
    spec: ImportSpec,
    *,
    full: bool = False,
    values: bool = True,
    matched: bool = False,
) -> ImportPlan:
    """Decide every contact's outcome and every profile change, in temp tables on ``con``.

    ``con`` holds the staged TEMP table ``imp_in`` (:func:`stage_contacts`) with the store as its
    default database (:meth:`Store.attached`). Without ``values`` (a preview) the plan counts
    changes without keeping every profile's new values, and cannot be applied. ``matched``:
    ``con`` already holds imp_match for every profile (``_match(todo_only=False)``).
    """
    props = defined_properties(con)
    spec = _canonical(spec, props)
    targets = targets_for(spec)
    con.execute(
        # Lists of 0 or 1 value (nearly all) skip the lambda.
        "CREATE OR REPLACE TEMP MACRO ordered_distinct(l) AS CASE WHEN len(l) <= 1 THEN l "
        "ELSE list_filter(l, lambda x, i: list_position(l, x) = i) END"
    )
    _delta(con, spec, full=full)
    if not matched:
        _match(con, spec, props)
    elif not (con.execute("SELECT count(*) FROM imp_todo").fetchone() or (0,))[0]:
        # Nothing past the delta (a re-run): joining every contact to the identifiers matched
        # while reading would cost 0.3 s a million for nothing.
        con.execute("CREATE OR REPLACE TEMP TABLE imp_match AS FROM imp_match LIMIT 0")
    _classify(con, spec, targets)
    # Everything later needs is in imp_plan.
    con.execute("DROP TABLE imp_in; DROP TABLE imp_todo; DROP TABLE imp_match")
    _consent_existing(con, spec)
    _type_check(con, targets, props)
    # Consent decides on a created profile's new consent values, so they are always kept.
    consent = ("consented_objectives", "refused_objectives")
    keep = targets if values else [t for t in targets if t.property in consent]
    _merge(con, targets, props, keep)
    _consent_new(con, spec, targets)
    _outcomes(con)
    counts = dict.fromkeys(IMPORT_OUTCOMES, 0)
    counts.update(con.execute("SELECT outcome, count(*) FROM imp_plan GROUP BY outcome").fetchall())
    new_properties = {
        t.property: ("number" if t.rule == "sum" else "text")
        for t in targets
        if t.property not in props
    }
    return ImportPlan(con, spec, targets, counts, new_properties, values)


def _canonical(spec: ImportSpec, props: dict[str, str]) -> ImportSpec:
    """The spec with property names spelled as defined (DuckDB columns fold case)."""

    def canon(name: str) -> str:
        return resolve(props, name) or name

    return replace(
        spec,
        save_list_names_to=canon(spec.save_list_names_to) if spec.save_list_names_to else None,
        identifiers=tuple((f, canon(p)) for f, p in spec.identifiers),
        mappings=tuple((f, canon(p), r) for f, p, r in spec.mappings),
    )


def _stage_sql(spec: ImportSpec, targets: list[Target]) -> tuple[str, dict[str, Any]]:
    """SELECT over ``batch``: per contact its identifier, delta hash and each field target's
    incoming values (``in_<alias>``, non-blank values as VARCHAR[]).

    DuckDB, not polars: polars work in the staging thread competes with the client's polars
    parsing of the next page (measured 1.5× slower together), DuckDB's does not. The custom
    fields themselves are not kept, so staging a million contacts stays small.
    """
    fields = {f for f, _ in spec.identifiers} | {t.field for t in targets if t.field}
    custom = sorted(f for f in fields if f not in STANDARD_FIELDS)
    standard = sorted(f for f in fields if f in STANDARD_FIELDS)
    params: dict[str, Any] = {"fingerprint": spec.fingerprint, "custom": custom}

    def values(field: str, param: str) -> str:
        if field in STANDARD_FIELDS:
            value = _standard_value(field)
            return f"CASE WHEN trim(coalesce({value}, '')) <> '' THEN [{value}] ELSE [] END"
        params[param] = field
        return f"list_transform(list_filter(filled, lambda f: f.key = ${param}), lambda f: f.value)"

    ids = [
        f"nullif(trim({_standard_value(field)}), '')"
        if field in STANDARD_FIELDS
        else f"{values(field, f'id_{r}')}[1]"
        for r, (field, _) in enumerate(spec.identifiers)
    ]
    first_id = f"coalesce({', '.join(ids)})" if ids else "NULL"
    which = " ".join(f"WHEN {expr} IS NOT NULL THEN {r}" for r, expr in enumerate(ids))
    # The key a profile is matched on: EmailAddress folds case (DESIGN §5), other fields don't.
    fold = [r for r, (field, _) in enumerate(spec.identifiers) if field == "EmailAddress"]
    identifier = (
        f"CASE WHEN id_rule IN ({', '.join(map(str, fold))}) THEN lower(id_raw) ELSE id_raw END"
        if fold
        else "id_raw"
    )
    list_name = ", list_name" if spec.save_list_names_to else ""
    std_values = "".join(f", {_standard_value(f)}" for f in standard)
    incoming = "".join(
        f", {values(t.field, f'f_{t.alias}')} AS in_{t.alias}" for t in targets if t.kind == "field"
    )
    # Campaign Monitor lists a subscriber's fields in the list's field order, so the text of the
    # fields read is a stable fingerprint of what the goal reads. md5 is stable across versions
    # (DuckDB's hash() is not). The format must not change: stored hashes depend on it (a
    # changed hash applies a contact again, and ``sum`` twice).
    fields_text = (
        "array_to_string(list_transform(custom_fields, lambda f: f.key || chr(31) || f.value), "
        "chr(29))"
    )
    std_columns = "".join(f", {STANDARD_FIELDS[f]}" for f in standard if f != "EmailAddress")
    sql = f"""
        SELECT cid, list_index, list_id, list_name, email, id_raw, id_rule,
               {identifier} AS identifier,
               md5(concat_ws(chr(30), $fingerprint, id_raw{list_name}{std_values},
                             {fields_text})) AS hash
               {incoming}
        FROM (
            SELECT *, trim({first_id}) AS id_raw, CASE {which or "WHEN false THEN 0"} END AS id_rule
            FROM (
                -- filled: the non-blank fields, judged once here, not once per target
                SELECT *, list_filter(custom_fields, lambda f: trim(f.value) <> '') AS filled
                FROM (
                    SELECT cid, list_index, list_id, list_name, trim(email) AS email{std_columns},
                           list_filter(coalesce(custom_fields, []),
                                       lambda f: list_contains($custom, f.key) AND f.value <> '')
                               AS custom_fields
                    FROM batch
                )
            )
        )
        """
    return sql, params


def _delta(con: duckdb.DuckDBPyConnection, spec: ImportSpec, *, full: bool) -> None:
    """imp_todo: the contacts past the delta (DESIGN §5), whose hash is not the one last applied.

    The others need no more work: on a re-run this table is empty, and matching is skipped.
    """
    con.execute(
        """
        CREATE OR REPLACE TEMP TABLE imp_todo AS
        SELECT c.cid, c.id_rule, c.identifier
        FROM imp_in c
        LEFT JOIN import_state s
               ON s.connection = $connection AND s.list_id = c.list_id
              AND s.identifier = c.identifier
        WHERE $full OR s.hash IS DISTINCT FROM c.hash
        """,
        {"full": full, "connection": spec.connection},
    )


def _match(
    con: duckdb.DuckDBPyConnection, spec: ImportSpec, props: dict, *, todo_only: bool = True
) -> None:
    """imp_match(r, key, n, profile_id): how many profiles hold each identifier of the contacts
    still to apply, or (``todo_only=False``, before the contacts are known) every identifier."""
    keys = []
    if todo_only:
        (todo,) = con.execute("SELECT count(*) FROM imp_todo").fetchone() or (0,)
    for r, (field, prop) in enumerate(spec.identifiers):
        if (todo_only and not todo) or prop not in props:
            continue  # nothing to match, or no profile holds a property not defined yet
        norm = "lower(trim(v))" if field == "EmailAddress" else "trim(v)"
        wanted = f"WHERE {norm} IN (SELECT identifier FROM imp_todo WHERE id_rule = {r})"
        keys.append(
            f"""
            SELECT {r} AS r, {norm} AS key, profile_id
            FROM (SELECT profile_id, unnest({quote_ident(prop)}) AS v FROM profiles)
            {wanted if todo_only else ""}
            """
        )
    union = (
        " UNION ALL ".join(keys)
        if keys
        else ("SELECT NULL::INTEGER AS r, NULL AS key, NULL AS profile_id WHERE false")
    )
    con.execute(
        f"""
        CREATE OR REPLACE TEMP TABLE imp_match AS
        SELECT r, key, count(*) AS n, min(profile_id) AS profile_id
        FROM (SELECT DISTINCT r, key, profile_id FROM ({union}))
        GROUP BY r, key
        """
    )


def _classify(con: duckdb.DuckDBPyConnection, spec: ImportSpec, targets: list[Target]) -> None:
    """imp_plan: one row per contact with the outcomes decided before merging and, for the
    contacts past the delta, every target's incoming values."""
    props = [p for _, p in spec.identifiers]
    params: dict[str, Any] = {"allow_create": spec.allow_create, "props": props}
    is_new = "NOT c.delta_hit AND coalesce(m.n, 0) = 0"
    incoming = []
    for t in targets:
        if t.kind == "field":  # not copied for contacts that stop at the delta
            incoming.append(f", CASE WHEN NOT c.delta_hit THEN c.in_{t.alias} END AS in_{t.alias}")
        elif t.kind == "list_names":
            incoming.append(f", [c.list_name] AS in_{t.alias}")
        else:  # the identifier of a created profile
            params[f"p_{t.alias}"] = t.property
            incoming.append(
                f", CASE WHEN {is_new} AND $props[c.id_rule + 1] = $p_{t.alias} "
                f"THEN [c.id_raw] ELSE [] END AS in_{t.alias}"
            )
    con.execute(
        f"""
        CREATE OR REPLACE TEMP TABLE imp_plan AS
        SELECT c.cid, c.list_index, c.list_id, c.email, c.identifier, c.hash, c.delta_hit,
               {is_new} AS is_new,
               CASE WHEN m.n = 1 THEN m.profile_id
                    WHEN NOT c.delta_hit AND coalesce(m.n, 0) = 0 AND c.identifier IS NOT NULL
                    THEN 'cm-' || substr(md5($props[c.id_rule + 1] || chr(31) || c.identifier),
                                         1, 24)
               END AS profile_id,
               CASE WHEN c.identifier IS NULL THEN 'NO_IDENTIFIER'
                    WHEN c.delta_hit THEN 'UNCHANGED'
                    WHEN m.n > 1 THEN 'AMBIGUOUS'
                    WHEN coalesce(m.n, 0) = 0 AND NOT $allow_create THEN 'NOT_FOUND'
               END AS outcome,
               CASE WHEN c.identifier IS NULL THEN 'no value for any identifier field'
                    WHEN c.delta_hit THEN 'not changed since the last import'
                    WHEN m.n > 1
                    THEN m.n || ' profiles hold ' || $props[c.id_rule + 1] || ' = ' || c.id_raw
                    WHEN coalesce(m.n, 0) = 0 AND NOT $allow_create
                    THEN 'no profile holds ' || $props[c.id_rule + 1] || ' = ' || c.id_raw
               END AS reason
               {"".join(incoming)}
        FROM (
            SELECT c.*, t.cid IS NULL AS delta_hit
            FROM imp_in c LEFT JOIN imp_todo t USING (cid)
        ) c
        LEFT JOIN imp_match m ON m.r = c.id_rule AND m.key = c.identifier
        """,
        params,
    )


def _consent_existing(con: duckdb.DuckDBPyConnection, spec: ImportSpec) -> None:
    if not spec.objectives:
        return
    con.execute(
        f"""
        UPDATE imp_plan SET outcome = 'CONSENT_MISMATCH',
               reason = 'profile has not consented to any of: '
                        || array_to_string($objectives, ', ')
        WHERE outcome IS NULL AND NOT is_new
          AND profile_id NOT IN (
              SELECT profile_id FROM profiles AS p WHERE {consent_predicate("p", "$objectives")})
        """,
        {"objectives": list(spec.objectives)},
    )


def _type_check(con: duckdb.DuckDBPyConnection, targets: list[Target], props: dict) -> None:
    """A contact with a value that does not fit its (non-sum) target property becomes INVALID."""
    checks, bad = [], []
    params: dict[str, Any] = {}
    for t in targets:
        pred = TYPE_CHECKS.get(props.get(t.property, "text"))
        if t.kind != "field" or t.rule == "sum" or pred is None:
            continue
        bad_values = f"list_filter(in_{t.alias}, lambda value: NOT ({pred}))"
        params[f"m_{t.alias}"] = (
            f"field {t.field}: not a valid {props[t.property]} for property {t.property}: "
        )
        checks.append(f"WHEN len({bad_values}) > 0 THEN $m_{t.alias} || {bad_values}[1]")
        bad.append(f"len({bad_values}) > 0")
    if not checks:
        return
    con.execute(
        f"""
        UPDATE imp_plan SET outcome = 'INVALID', reason = CASE {" ".join(checks)} END
        WHERE outcome IS NULL AND ({" OR ".join(bad)})
        """,
        params,
    )


_SUM = "try_cast(trim(x) AS DECIMAL(38, 9))"


def _merge(
    con: duckdb.DuckDBPyConnection, targets: list[Target], props: dict, keep: list[Target]
) -> None:
    """imp_new: per affected profile whether it changes, its sum notes and its new value of every
    target in ``keep`` (the merge rules).

    A run keeps every target's values; a preview only those consent needs, as it counts
    changes and :meth:`ImportPlan.samples` recomputes the values of its few profiles.
    """
    if not targets:
        con.execute(
            "CREATE OR REPLACE TEMP TABLE imp_new AS SELECT NULL AS profile_id, "
            "false AS is_new, false AS changed, NULL AS note WHERE false"
        )
        return
    con.execute(
        """
        CREATE OR REPLACE TEMP TABLE imp_multi AS
        SELECT profile_id FROM imp_plan WHERE outcome IS NULL
        GROUP BY profile_id HAVING count(*) > 1
        """
    )
    sql, params = _merge_sql(targets, props, "outcome IS NULL", keep)
    con.execute(f"CREATE OR REPLACE TEMP TABLE imp_new AS {sql}", params)


def _merge_sql(
    targets: list[Target], props: dict, contacts: str, keep: list[Target]
) -> tuple[str, dict[str, Any]]:
    """SELECT of imp_new's rows from the imp_plan contacts matching ``contacts`` (SQL).

    Most profiles are reached by one contact; only those reached by several (imp_multi: several
    lists) go through a GROUP BY, which orders their contributions by list and then by read order.
    """

    def agg(t: Target) -> str:
        col = f"in_{t.alias}"
        order = "(list_index, cid)"
        if t.rule == "set":
            return f"coalesce(arg_max({col}, {order}) FILTER (WHERE len({col}) > 0), [])"
        if t.rule == "set_if_empty":
            return f"coalesce(arg_min({col}, {order}) FILTER (WHERE len({col}) > 0), [])"
        return f"flatten(list({col} ORDER BY list_index, cid))"

    ins = ", ".join(f"in_{t.alias}" for t in targets)
    merged = f"""
        SELECT profile_id, is_new, {ins}
        FROM imp_plan ANTI JOIN imp_multi USING (profile_id) WHERE {contacts}
        UNION ALL
        SELECT profile_id, bool_or(is_new) AS is_new,
               {", ".join(f"{agg(t)} AS in_{t.alias}" for t in targets)}
        FROM imp_plan SEMI JOIN imp_multi USING (profile_id) WHERE {contacts}
        GROUP BY profile_id
        """

    def old(t: Target, created: bool) -> str:
        return "[]::VARCHAR[]" if created else _stored(t, props)

    def new(t: Target) -> str:
        a, o = f"a.in_{t.alias}", f"old_{t.alias}"
        if t.rule == "set":
            return f"CASE WHEN len({a}) > 0 THEN ordered_distinct({a}) ELSE {o} END"
        if t.rule == "set_if_empty":
            return (
                f"CASE WHEN len({o}) = 0 AND len({a}) > 0 THEN ordered_distinct({a}) ELSE {o} END"
            )
        if t.rule == "add":  # stored values are distinct already (cmtoolkit.profiles)
            new = f"list_filter(ordered_distinct({a}), lambda x: NOT list_contains({o}, x))"
            return f"CASE WHEN len({a}) > 0 THEN list_concat({o}, {new}) ELSE {o} END"
        total = (
            f"coalesce(try_cast(trim({o}[1]) AS DECIMAL(38, 9)), 0) + "
            f"coalesce(list_sum(list_transform({a}, lambda x: {_SUM})), 0)"
        )
        # Plain decimal text without trailing zeros: 12.500000000 -> 12.5, 3.000000000 -> 3.
        text = f"regexp_replace(CAST({total} AS VARCHAR), '\\.?0+$', '')"
        return f"CASE WHEN len({a}) = 0 OR NOT sum_ok_{t.alias} THEN {o} ELSE [{text}] END"

    sum_ok = "".join(
        f", len(old_{t.alias}) <= 1 AND list_bool_and(list_transform("
        f"list_concat(old_{t.alias}, a.in_{t.alias}), lambda x: {_SUM} IS NOT NULL)) "
        f"AS sum_ok_{t.alias}"
        for t in targets
        if t.rule == "sum"
    )
    notes = [
        f"CASE WHEN len(a.in_{t.alias}) > 0 AND NOT sum_ok_{t.alias} THEN $n_{t.alias} END"
        for t in targets
        if t.rule == "sum"
    ]
    params = {
        f"n_{t.alias}": f"sum into {t.property} skipped: a value is not a single number"
        for t in targets
        if t.rule == "sum"
    }
    changed = " OR ".join(f"new_{t.alias} IS DISTINCT FROM old_{t.alias}" for t in targets)
    kept = "".join(f", new_{t.alias}" for t in keep)

    def select(created: bool | None) -> str:
        """Every profile (None), or only created (True) or existing ones (False): a created one
        has no old values to read and changes by definition."""
        olds = ", ".join(f"{old(t, bool(created))} AS old_{t.alias}" for t in targets)
        join = "" if created else "LEFT JOIN profiles p USING (profile_id)"
        where = "" if created is None else f"WHERE {'' if created else 'NOT '}a.is_new"
        # Old values are not kept: a preview's sample reads them back for its few profiles.
        return f"""
            SELECT profile_id, is_new{kept},
                   {"true" if created else f"is_new OR {changed}"} AS changed, note
            FROM (
                SELECT a.profile_id, a.is_new,
                       {", ".join(f"{new(t)} AS new_{t.alias}" for t in targets)},
                       {", ".join(f"old_{t.alias}" for t in targets)},
                       {f"concat_ws('; ', {', '.join(notes)})" if notes else "NULL"} AS note
                FROM (SELECT a.*, {olds}{sum_ok} FROM ({merged}) a {join} {where}) a
            )
            """

    if len(keep) == len(targets):
        return select(None), params
    # Without the values, only the existing profiles need the rules: a created one changes.
    return f"{select(False)} UNION ALL {select(True)}", params


def _consent_new(con: duckdb.DuckDBPyConnection, spec: ImportSpec, targets: list[Target]) -> None:
    """A new profile is created only when, as created, it consented to one of the objectives."""
    if not spec.objectives:
        return
    by_prop = {t.property: f"new_{t.alias}" for t in targets}
    yes = by_prop.get("consented_objectives", "[]::VARCHAR[]")
    no = by_prop.get("refused_objectives", "[]::VARCHAR[]")
    con.execute(
        f"""
        CREATE OR REPLACE TEMP TABLE imp_refused_new AS
        SELECT profile_id FROM imp_new
        WHERE is_new AND len(list_filter($objectives::VARCHAR[], lambda o:
                  list_contains({yes}, o) AND NOT list_contains({no}, o))) = 0
        """,
        {"objectives": list(spec.objectives)},
    )
    con.execute(
        """
        UPDATE imp_plan SET outcome = 'CONSENT_MISMATCH',
               reason = 'a new profile would not consent to any of: '
                        || array_to_string($objectives, ', ')
        WHERE outcome IS NULL AND profile_id IN (SELECT profile_id FROM imp_refused_new)
        """,
        {"objectives": list(spec.objectives)},
    )
    con.execute("DELETE FROM imp_new WHERE profile_id IN (SELECT profile_id FROM imp_refused_new)")


def _outcomes(con: duckdb.DuckDBPyConnection) -> None:
    """CREATED / MODIFIED / UNCHANGED for the applied contacts, with sum notes as reasons."""
    con.execute(
        """
        UPDATE imp_plan SET
            outcome = CASE WHEN n.is_new THEN 'CREATED'
                           WHEN n.changed THEN 'MODIFIED' ELSE 'UNCHANGED' END,
            reason = coalesce(nullif(n.note, ''),
                              CASE WHEN NOT n.changed THEN 'values already current' END)
        FROM imp_new n
        WHERE imp_plan.profile_id = n.profile_id AND imp_plan.outcome IS NULL
        """
    )


# --- apply ---------------------------------------------------------------------------------------


def apply_import(plan: ImportPlan, run_id: str, define_property: Any) -> None:
    """Write the plan into the store; the caller holds the transaction.

    ``define_property(con, name, type)`` creates a missing property (the store's function).
    """
    if not plan.values:
        raise ValueError("a preview's plan (values=False) cannot be applied")
    con = plan.con
    for name, type_ in plan.new_properties.items():
        define_property(con, name, type_)
    targets = plan.targets
    if targets:
        # A changed profile is written as a new row and its old row deleted, rather than
        # UPDATEd: DuckDB updates a list column by deleting and re-inserting the row anyway,
        # and logged the re-inserted rows at commit (1 s for 500k profiles), while an INSERT
        # this large goes straight to the file.
        con.execute(
            """
            CREATE OR REPLACE TEMP TABLE imp_old AS
            SELECT p.rowid AS old_rowid FROM profiles p
            SEMI JOIN (SELECT profile_id FROM imp_new WHERE changed AND NOT is_new)
                 USING (profile_id)
            """
        )
        # No value is stored as NULL, never [], as the loaders do.
        news = ", ".join(
            f"nullif(n.new_{t.alias}, []) AS {quote_ident(t.property)}" for t in targets
        )
        con.execute(
            f"""
            INSERT INTO profiles BY NAME
            SELECT p.* REPLACE ({news}, now() AS updated_at)
            FROM profiles p JOIN imp_new n USING (profile_id)
            WHERE n.changed AND NOT n.is_new
            """
        )
        con.execute("DELETE FROM profiles WHERE rowid IN (SELECT old_rowid FROM imp_old)")
        con.execute(
            f"""
            INSERT INTO profiles BY NAME
            SELECT n.profile_id, {news}, now() AS created_at, now() AS updated_at
            FROM imp_new n WHERE n.is_new
            """
        )
    # import_state has no key index (an index makes a million-row upsert many times slower):
    # the rows of the contacts applied now replace theirs.
    con.execute(
        """
        CREATE OR REPLACE TEMP TABLE imp_state AS
        SELECT list_id, identifier, any_value(hash) AS hash
        FROM imp_plan
        WHERE outcome IN ('CREATED', 'MODIFIED', 'UNCHANGED') AND NOT delta_hit
          AND identifier IS NOT NULL
        GROUP BY list_id, identifier
        """
    )
    con.execute(
        """
        DELETE FROM import_state WHERE connection = $connection
          AND (list_id, identifier) IN (SELECT (list_id, identifier) FROM imp_state)
        """,
        {"connection": plan.spec.connection},
    )
    con.execute(
        """
        INSERT INTO import_state (connection, list_id, identifier, hash, applied_at)
        SELECT $connection, list_id, identifier, hash, now() FROM imp_state
        """,
        {"connection": plan.spec.connection},
    )
    con.execute(
        """
        INSERT INTO run_rows (run_id, seq, list_id, email, identifier, profile_id, outcome, reason)
        SELECT $run_id, cid, list_id, email, identifier,
               CASE WHEN NOT is_new OR outcome = 'CREATED' THEN profile_id END, outcome, reason
        FROM imp_plan
        """,
        {"run_id": run_id},
    )


# --- the goal (see cmtoolkit.sync.runner) ------------------------------------------------------


class ImportGoal:
    """Campaign Monitor subscribers into the profile store (DESIGN §5)."""

    name: ClassVar[GoalName] = GoalName.IMPORT

    def configured(self, connection: Connection) -> bool:
        return connection.import_ is not None

    def preview(self, ctx: GoalContext) -> Outcome:
        """Dry run: the full plan, counts and a before/after sample; the store read-only."""
        spec = _spec_for(ctx)
        store = ctx.store

        def match_profiles(con: duckdb.DuckDBPyConnection) -> None:
            # While Campaign Monitor is read: the store as it is then, which a dry run may show.
            # A run matches inside its write transaction instead.
            with store.attached(con):
                _match(con, spec, defined_properties(con), todo_only=False)

        with (
            stage_contacts(ctx.client, spec, alongside=match_profiles) as stage,
            store.attached(stage.con),
        ):
            plan = plan_import(stage.con, spec, full=ctx.full, values=False, matched=True)
            return Outcome(
                counts=plan.counts,
                samples=plan.samples(),
                rows=plan.rows(limit=1000),
                details={"new_properties": plan.new_properties},
            )

    def run(self, ctx: GoalContext, run_id: str) -> Outcome:
        """Read, then plan and apply in one store transaction with the ledger rows and FINISHED."""
        spec = _spec_for(ctx)
        with stage_contacts(ctx.client, spec) as stage:
            con = stage.con
            with ctx.store.attached(con, write=True):
                con.begin()
                try:
                    plan = plan_import(con, spec, full=ctx.full)
                    apply_import(plan, run_id, define_property)
                    ledger.finish_run(con, run_id, plan.counts)
                except BaseException:
                    con.rollback()
                    raise
                con.commit()
        return Outcome(counts=plan.counts, details={"new_properties": plan.new_properties})


def _spec_for(ctx: GoalContext) -> ImportSpec:
    """The connection's import spec, property names spelled as the store defines them."""
    return _canonical(ImportSpec.from_connection(ctx.connection), ctx.store.properties())
