"""The export goal: a segment's profiles become subscribers of Campaign Monitor lists (DESIGN §6).

Three phases, so the store's write lock is never held while Campaign Monitor is talking:

1. **Plan** (a read connection, temp tables only; the field types come from
   ``client.custom_fields`` first): candidates, consent, email check, every mapped value formatted
   and checked against its field type, the exact JSON payload of each row, its hash and the delta
   against ``export_state`` are set-based SQL, one statement per list. The plan is extracted as
   Arrow and the connection closed. Preview stops here.
2. **Send**: rows go out through ``import_batch`` (≤1000 per request). Acknowledged rows' hashes
   are recorded in ``export_state`` by a :class:`StateWriter` thread within seconds, in short
   transactions that overlap the next requests, so an interrupted export resumes where it
   stopped (rows acknowledged in its last seconds are sent once more). Leavers are
   unsubscribed/deleted one call each (Campaign Monitor has no bulk unsubscribe) and their state
   rows dropped the same way.
3. **Finish** (one short write transaction): the ledger rows and ``FINISHED``.

Decisions not spelled out in DESIGN §6, made here:

- Custom fields are written under their ``FieldName`` (what subscriber records carry; the
  emulator and, per the reference, the real API accept it). A mapping to a field that is not on a
  list, or to a standard field other than ``Name``/``MobileNumber``, is a configuration error
  raised before anything is sent.
- Formatting: Text fields (and ``Name``) get the values pipe-joined and must stay ≤250
  characters; MultiSelectMany fields get a ``Clear`` entry followed by one entry per value
  (repeated keys), so a removed option is removed in Campaign Monitor too, whether the API merges
  or replaces options. Number, Date, MultiSelectOne, Country and USState take exactly one value
  (more is ``INVALID``). Dates are accepted as ``YYYY-MM-DD``/``YYYY/MM/DD`` (optionally followed by
  a time, i.e. ISO datetimes) and sent as ``YYYY/MM/DD``. Options match case-insensitively and are
  sent in the field's own spelling. A property without values sends ``Clear`` for that field (the
  store is the source of truth), except ``Name``, which is left out.
- The email is the first value of ``match_property``, trimmed; it must match Campaign Monitor's
  rule (one ``@``, a dot in the domain, no spaces). Two candidates with the same email (any case)
  on one list: the first by profile id is sent, the others are ``INVALID``.
- A row's hash covers what its payload is made of (email, values, the list's field types, the
  mappings, ``ConsentToTrack`` and ``Resubscribe``), so changing any of them resends everything
  once; the JSON itself is built only for rows that will be sent. ``REJECTED`` rows record no
  hash and are retried by the next run (Campaign Monitor may accept them later); ``INVALID`` and
  ``CONSENT_MISMATCH`` rows leave an existing state row alone unless the profile lost consent.
- Leavers are the ``export_state`` rows of this connection and list whose profile is no longer an
  eligible candidate (left the segment, or lost consent). ``keep`` only drops the state row, and
  all modes report ``REMOVED``. An address already gone from the list (code 203) counts as removed.
- A profile whose email changed is exported under the new address; the old subscriber is not
  touched (Campaign Monitor cannot rename through an import).
- The segment's membership must be materialised: when the ``segments`` table has no row for it,
  it is refreshed from ``segments.yaml`` (``Workspace.segments.refresh``); a segment that is not
  defined there is a configuration error.
"""

from __future__ import annotations

import hashlib
import logging
import os
import queue
import tempfile
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

import duckdb
import orjson
import polars as pl
import pyarrow as pa

from cmtoolkit.errors import BadRequest, ConfigurationError
from cmtoolkit.profiles.consent import consent_predicate
from cmtoolkit.profiles.quoting import quote_ident
from cmtoolkit.sync import ledger
from cmtoolkit.sync.goal import GoalContext, GoalName, Outcome

if TYPE_CHECKING:
    from cmtoolkit.connection.model import Connection

log = logging.getLogger("cmtoolkit.sync.export")

EXPORT_OUTCOMES = ("EXPORTED", "UNCHANGED", "INVALID", "REJECTED", "CONSENT_MISMATCH", "REMOVED")
MAX_BATCH = 1000
MEMORY_LIMIT = "1GB"  # the plan's DuckDB; see compute_plan
MAX_TEXT = 250
# Campaign Monitor's (and the emulator's) address rule, applied before sending.
EMAIL_RE = r"[^@\s]+@[^@\s.]+(\.[^@\s.]+)+"
MOBILE_RE = r"\+[1-9][0-9]{6,14}"
SINGLE_VALUE_TYPES = ("Number", "Date", "MultiSelectOne", "Country", "USState")
STANDARD_WRITABLE = ("Name", "MobileNumber")
NOT_IN_LIST = 203

PLAN_SCHEMA = {
    "list_id": pl.Utf8,
    "profile_id": pl.Utf8,
    "email": pl.Utf8,
    "outcome": pl.Utf8,
    "reason": pl.Utf8,
    "hash": pl.Utf8,
    "payload": pl.Utf8,
    "action": pl.Utf8,
}


# --- what a goal exports -------------------------------------------------------------------------


@dataclass(frozen=True)
class Value:
    """One exported value: ``kind`` is profile_id | segments | interactions | property |
    target_segments (the targeting goal's membership of its selected segments)."""

    kind: str
    field: str
    property: str | None = None


@dataclass(frozen=True)
class FieldType:
    """A list's field as the plan needs it (standard fields have data_type ``Name``/…)."""

    name: str
    data_type: str
    options: tuple[str, ...] = ()


@dataclass(frozen=True)
class GoalSpec:
    """The parts of a connection an export-like goal needs; shared by export and targeting."""

    connection: str
    goal: str  # export | targeting (the export_state goal)
    lists: tuple[str, ...]
    segments: tuple[str, ...]  # candidates are members of any of these
    match_property: str
    objectives: tuple[str, ...] = ()
    values: tuple[Value, ...] = ()
    consent_to_track: str = "Unchanged"
    resubscribe: bool = False
    on_leave: str = "keep"  # keep | unsubscribe | delete | clear (targeting: clear its field)

    @classmethod
    def from_connection(cls, conn: Any) -> GoalSpec:
        goal = conn.export
        if goal is None:
            raise ConfigurationError(f"connection {conn.name!r} has no export goal")
        if not goal.segment:
            raise ConfigurationError("export.segment is not set; name the segment to export")
        if not goal.match_property:
            raise ConfigurationError(
                "export.match_property is not set; name the property that holds the email"
            )
        return cls(
            connection=conn.name,
            goal="export",
            lists=tuple(goal.lists),
            segments=(goal.segment,),
            match_property=goal.match_property,
            objectives=tuple(conn.objectives or ()),
            values=tuple(Value(m.value, m.field, m.property) for m in goal.mappings),
            consent_to_track=goal.consent_to_track or "Unchanged",
            resubscribe=bool(goal.resubscribe),
            on_leave=goal.on_leave or "keep",
        )


def field_types(client: Any, spec: GoalSpec) -> dict[str, dict[str, FieldType]]:
    """Per list, the type of every field a value writes; a missing field is a ConfigurationError."""
    out: dict[str, dict[str, FieldType]] = {}
    for list_id in spec.lists:
        custom = {f.field_name: f for f in client.custom_fields(list_id)}
        types: dict[str, FieldType] = {}
        for v in spec.values:
            if v.field in STANDARD_WRITABLE:
                types[v.field] = FieldType(v.field, v.field)
            elif v.field == "EmailAddress":
                raise ConfigurationError(
                    "export mapping to EmailAddress: the address comes from match_property; "
                    "remove this mapping"
                )
            elif v.field in custom:
                f = custom[v.field]
                types[v.field] = FieldType(f.field_name, f.data_type, tuple(f.options))
            else:
                raise ConfigurationError(
                    f"list {list_id} has no custom field {v.field!r}; create it in Campaign "
                    "Monitor or fix the export mapping (standard fields: Name, MobileNumber)"
                )
        out[list_id] = types
    return out


# --- plan ----------------------------------------------------------------------------------------


@dataclass
class Plan:
    """The extracted plan: one row per (list, profile) with a decided outcome or an action.

    ``action`` is ``send`` (payload to import), ``clear`` (a targeting leaver's clearing payload)
    or ``leave`` (an export leaver per ``on_leave``); its ``outcome`` is NULL until done.
    """

    spec: GoalSpec
    rows: pl.DataFrame
    counts: dict[str, int] = field(default_factory=dict)

    @property
    def pending(self) -> pl.DataFrame:
        return self.rows.filter(pl.col("action").is_not_null())

    @property
    def decided(self) -> pl.DataFrame:
        return self.rows.filter(pl.col("action").is_null())

    def predicted(self) -> pl.DataFrame:
        """Rows with the outcome a preview expects (sends succeed)."""
        return self.rows.with_columns(
            outcome=pl.when(pl.col("action") == "send")
            .then(pl.lit("EXPORTED"))
            .when(pl.col("action").is_in(["leave", "clear"]))
            .then(pl.lit("REMOVED"))
            .otherwise(pl.col("outcome"))
        )


def _ensure_segments(
    ctx: GoalContext, con_factory: Callable[[], Any], names: Sequence[str]
) -> None:
    def missing() -> list[str]:
        with con_factory() as con:
            have = {
                r[0]
                for r in con.execute(
                    "SELECT name FROM segments WHERE list_contains($n, name)", {"n": list(names)}
                ).fetchall()
            }
        return [n for n in names if n not in have]

    gone = missing()
    if not gone:
        return
    defined = set(ctx.segments.definitions())
    for name in gone:
        if name in defined:
            ctx.segments.refresh(name)
    gone = missing()
    if gone:
        raise ConfigurationError(
            f"segment(s) {', '.join(gone)} have no materialised membership; define them in "
            "segments.yaml and run 'cmtoolkit segments refresh'"
        )


def _candidates(con: duckdb.DuckDBPyConnection, spec: GoalSpec, props: dict[str, str]) -> None:
    """exp_cand: one row per member of the segments: email, consent and every value's list."""
    if spec.match_property not in props:
        raise ConfigurationError(
            f"match property {spec.match_property!r} does not exist in the profile store"
        )
    joins: list[str] = []
    cols: list[str] = []
    kinds = {v.kind for v in spec.values}
    if "segments" in kinds or "target_segments" in kinds:
        joins.append(
            "LEFT JOIN (SELECT profile_id, list(DISTINCT segment ORDER BY segment) AS segs "
            "FROM segment_members WHERE profile_id IN (SELECT profile_id FROM exp_members) "
            "GROUP BY profile_id) sg ON sg.profile_id = p.profile_id"
        )
    if "interactions" in kinds:
        joins.append(
            "LEFT JOIN (SELECT profile_id, list(interaction ORDER BY first_view NULLS LAST, "
            "interaction) AS names FROM (SELECT profile_id, interaction, min(viewed_at) AS "
            "first_view FROM interactions WHERE profile_id IN (SELECT profile_id FROM "
            "exp_members) GROUP BY ALL) GROUP BY profile_id) ia ON ia.profile_id = p.profile_id"
        )
    for i, v in enumerate(spec.values):
        if v.kind == "profile_id":
            expr = "[p.profile_id]"
        elif v.kind == "segments":
            expr = "coalesce(sg.segs, [])"
        elif v.kind == "target_segments":
            expr = "list_filter($segments, lambda s: list_contains(coalesce(sg.segs, []), s))"
        elif v.kind == "interactions":
            expr = "coalesce(ia.names, [])"
        elif v.kind == "property":
            if not v.property or v.property not in props:
                raise ConfigurationError(
                    f"export mapping to {v.field!r}: property {v.property!r} does not exist in "
                    "the profile store"
                )
            expr = f"list_filter(coalesce(p.{quote_ident(v.property)}, []), lambda x: x <> '')"
        else:
            raise ConfigurationError(
                f"export mapping to {v.field!r}: unknown value {v.kind!r}; use profile_id, "
                "segments, interactions or property"
            )
        cols.append(f"{expr}::VARCHAR[] AS v{i}")
    con.execute(
        "CREATE OR REPLACE TEMP TABLE exp_members AS SELECT DISTINCT profile_id "
        "FROM segment_members WHERE list_contains($segments, segment)",
        {"segments": list(spec.segments)},
    )
    params: dict[str, Any] = {"objectives": list(spec.objectives)}
    if "target_segments" in kinds:
        params["segments"] = list(spec.segments)
    con.execute(
        f"""
        CREATE OR REPLACE TEMP TABLE exp_cand AS
        SELECT *, CASE WHEN email IS NOT NULL AND row_number() OVER (
                      PARTITION BY lower(email) ORDER BY consented DESC, profile_id) > 1
                  THEN first_value(profile_id) OVER (
                      PARTITION BY lower(email) ORDER BY consented DESC, profile_id) END AS dup_of
        FROM (
            SELECT p.profile_id, nullif(trim(p.{quote_ident(spec.match_property)}[1]), '')
                   AS email, (len($objectives::VARCHAR[]) = 0
                   OR {consent_predicate("p", "$objectives")}) AS consented
                   {"".join(", " + c for c in cols)}
            FROM profiles p {" ".join(joins)}
            WHERE p.profile_id IN (SELECT profile_id FROM exp_members)
            QUALIFY row_number() OVER (PARTITION BY p.profile_id) = 1
        )
        """,
        params,
    )


def _value_sql(i: int, ft: FieldType, params: dict[str, Any]) -> tuple[str, str, str]:
    """(error, custom-field entries JSON[], name) SQL for value ``i`` written to field ``ft``."""
    v = f"v{i}"
    fp = f"f{i}"
    params[fp] = ft.name
    label = f"'field ' || ${fp} || ': '"
    many = (
        f"CASE WHEN len({v}) > 1 THEN {label} || len({v}) || ' values for a single-value "
        f"{ft.data_type} field' END"
    )
    clear = f"[json_object('Key', ${fp}, 'Value', '', 'Clear', true)]"
    no_entries = "[]::JSON[]"
    if ft.data_type == "Name":
        joined = f"array_to_string({v}, '|')"
        err = (
            f"CASE WHEN length({joined}) > {MAX_TEXT} THEN {label} || 'longer than {MAX_TEXT} "
            f"characters' END"
        )
        return err, no_entries, f"nullif({joined}, '')"
    if ft.data_type == "MobileNumber":
        err = (
            f"coalesce({many}, CASE WHEN len({v}) = 1 AND NOT regexp_full_match(trim({v}[1]), "
            f"'{MOBILE_RE}') THEN {label} || 'not an E.164 mobile number: ' || {v}[1] END)"
        )
        return err, no_entries, f"trim({v}[1])"
    if ft.data_type == "Text" or ft.data_type not in (*SINGLE_VALUE_TYPES, "MultiSelectMany"):
        joined = f"array_to_string({v}, '|')"
        err = (
            f"CASE WHEN length({joined}) > {MAX_TEXT} THEN {label} || 'longer than {MAX_TEXT} "
            f"characters' END"
        )
        entries = (
            f"CASE WHEN len({v}) = 0 THEN {clear} "
            f"ELSE [json_object('Key', ${fp}, 'Value', {joined})] END"
        )
        return err, entries, "NULL"
    op = f"o{i}"
    if ft.data_type in ("MultiSelectOne", "MultiSelectMany"):
        params[op] = list(ft.options)
    canon = f"list_filter(${op}::VARCHAR[], lambda o: lower(o) = lower(trim(x)))[1]"
    if ft.data_type == "MultiSelectMany":
        bad = f"list_filter({v}, lambda x: {canon} IS NULL)"
        err = f"CASE WHEN len({bad}) > 0 THEN {label} || 'not an option: ' || {bad}[1] END"
        entries = (
            f"list_concat({clear}, list_transform({v}, lambda x: "
            f"json_object('Key', ${fp}, 'Value', {canon})))"
        )
        return err, entries, "NULL"
    x = f"{v}[1]"
    if ft.data_type == "Number":
        check = (
            f"CASE WHEN NOT isfinite(coalesce(try_cast(trim({x}) AS DOUBLE), 'nan'::DOUBLE))"
            f" THEN {label} || 'not a number: ' || {x} END"
        )
        value = f"trim({x})"
    elif ft.data_type == "Date":
        parsed = f"try_strptime(replace(left(trim({x}), 10), '/', '-'), '%Y-%m-%d')::DATE"
        shape = f"regexp_full_match(trim({x}), '[0-9]{{4}}[-/][0-9]{{2}}[-/][0-9]{{2}}([ T].*)?')"
        check = (
            f"CASE WHEN NOT {shape} OR {parsed} IS NULL THEN {label} || "
            f"'not a date (YYYY-MM-DD or YYYY/MM/DD): ' || {x} "
            f"WHEN {parsed} NOT BETWEEN DATE '1900-01-01' AND DATE '2076-06-06' THEN {label} || "
            f"'date ' || {x} || ' outside 1900/01/01-2076/06/06' END"
        )
        value = f"strftime({parsed}, '%Y/%m/%d')"
    elif ft.data_type == "MultiSelectOne":
        canon_x = canon.replace("trim(x)", f"trim({x})")
        check = f"CASE WHEN {canon_x} IS NULL THEN {label} || 'not an option: ' || {x} END"
        value = canon_x
    else:  # Country, USState: free text, one value
        check = (
            f"CASE WHEN length({x}) > {MAX_TEXT} THEN {label} || 'longer than {MAX_TEXT} "
            f"characters' END"
        )
        value = f"trim({x})"
    err = f"coalesce({many}, CASE WHEN len({v}) = 1 THEN {check} END)"
    entries = (
        f"CASE WHEN len({v}) = 0 THEN {clear} "
        f"ELSE [json_object('Key', ${fp}, 'Value', {value})] END"
    )
    return err, entries, "NULL"


def _plan_list(
    con: duckdb.DuckDBPyConnection,
    spec: GoalSpec,
    list_id: str,
    types: dict[str, FieldType],
    *,
    full: bool,
) -> None:
    params: dict[str, Any] = {
        "list_id": list_id,
        "connection": spec.connection,
        "goal": spec.goal,
        "consent": spec.consent_to_track,
        "resubscribe": "R" if spec.resubscribe else "-",
        "full": full,
    }
    errs, entries = [], []
    name = mobile = "NULL"
    for i, v in enumerate(spec.values):
        err, ent, scalar = _value_sql(i, types[v.field], params)
        errs.append(err)
        entries.append(ent)
        if types[v.field].data_type == "Name":
            name = scalar
        elif types[v.field].data_type == "MobileNumber":
            mobile = scalar
    email_err = (
        "CASE WHEN email IS NULL THEN 'no value for match property ' || $match "
        f"WHEN NOT regexp_full_match(email, '{EMAIL_RE}') THEN 'not a valid email address: ' "
        "|| email WHEN dup_of IS NOT NULL THEN 'profile ' || dup_of || ' in the segment has the "
        "same email' END"
    )
    params["match"] = spec.match_property
    cf = f"to_json(list_concat({', '.join(entries)}))" if entries else "to_json([]::JSON[])"
    payload = (
        "json_merge_patch('{}', json_object('EmailAddress', email, 'Name', "
        f"{name}, 'MobileNumber', {mobile}, 'CustomFields', {cf}, 'ConsentToTrack', $consent))"
    )
    # The hash covers what the payload is made of (the values, the email, the list's field types
    # and the goal's settings), so only rows that will be sent pay for building their JSON.
    params["fingerprint"] = hashlib.md5(
        orjson.dumps(
            [
                sorted((k, t.data_type, t.options) for k, t in types.items()),
                [(v.kind, v.field, v.property) for v in spec.values],
            ]
        )
    ).hexdigest()
    hashed = "".join(f", array_to_string(v{i}, chr(31))" for i in range(len(spec.values)))
    con.execute(
        f"""
        INSERT INTO exp_plan
        SELECT $list_id, c.profile_id, c.email, c.outcome, c.reason, c.hash,
               CASE WHEN c.action = 'send' THEN {payload}::VARCHAR END, c.action
        FROM (
            SELECT c.*,
                   CASE WHEN NOT c.consented THEN 'CONSENT_MISMATCH'
                        WHEN c.err IS NOT NULL THEN 'INVALID'
                        WHEN NOT $full AND s.hash = c.hash THEN 'UNCHANGED' END AS outcome,
                   CASE WHEN NOT c.consented
                        THEN 'profile has not consented to any of: '
                             || array_to_string($objectives, ', ')
                        WHEN c.err IS NOT NULL THEN c.err
                        WHEN NOT $full AND s.hash = c.hash THEN 'not changed since the last run'
                   END AS reason,
                   CASE WHEN c.consented AND c.err IS NULL
                             AND ($full OR s.hash IS DISTINCT FROM c.hash)
                        THEN 'send' END AS action
            FROM (
                SELECT *, md5(concat_ws(chr(30), $fingerprint, $resubscribe, $consent, email
                                        {hashed})) AS hash
                FROM (SELECT *, coalesce({email_err}, {", ".join(errs) or "NULL"}) AS err
                      FROM exp_cand)
            ) c
            LEFT JOIN export_state s ON s.connection = $connection AND s.goal = $goal
                  AND s.list_id = $list_id AND s.profile_id = c.profile_id
        ) c
        """,
        {**params, "objectives": list(spec.objectives)},
    )


def _plan_leavers(con: duckdb.DuckDBPyConnection, spec: GoalSpec, leave_field: str | None) -> None:
    """State rows of this goal whose profile is no longer an eligible candidate."""
    if spec.on_leave == "clear":
        payload = (
            "json_object('EmailAddress', s.email, 'CustomFields', "
            "[json_object('Key', $field, 'Value', '', 'Clear', true)], "
            "'ConsentToTrack', 'Unchanged')::VARCHAR"
        )
        action = "'clear'"
    else:
        payload = "NULL"
        action = "'leave'"
    what = "every targeted segment" if spec.goal == "targeting" else "the segment"
    done = {
        "keep": "kept in Campaign Monitor",
        "unsubscribe": "unsubscribed",
        "delete": "deleted",
        "clear": f"field {leave_field} cleared",
    }[spec.on_leave]
    con.execute(
        f"""
        INSERT INTO exp_plan
        SELECT s.list_id, s.profile_id, s.email, NULL,
               CASE WHEN c.profile_id IS NULL THEN 'left ' || $what
                    ELSE 'no longer consents to any of: ' || array_to_string($objectives, ', ')
               END || '; ' || $done,
               NULL, {payload}, {action}
        FROM export_state s LEFT JOIN exp_cand c USING (profile_id)
        WHERE s.connection = $connection AND s.goal = $goal AND list_contains($lists, s.list_id)
          AND (c.profile_id IS NULL OR NOT c.consented)
        """,
        {
            "connection": spec.connection,
            "goal": spec.goal,
            "lists": list(spec.lists),
            "objectives": list(spec.objectives),
            "what": what,
            "done": done,
            **({"field": leave_field} if spec.on_leave == "clear" else {}),
        },
    )


def plan_goal(
    con: duckdb.DuckDBPyConnection,
    spec: GoalSpec,
    types: dict[str, dict[str, FieldType]],
    *,
    full: bool = False,
    leave_field: str | None = None,
) -> Plan:
    """Decide every (list, profile) row on ``con`` (temp tables) and extract the plan."""
    props = dict(con.execute("SELECT name, type FROM property_definitions").fetchall())
    _candidates(con, spec, props)
    con.execute(
        "CREATE OR REPLACE TEMP TABLE exp_plan (list_id VARCHAR, profile_id VARCHAR, "
        "email VARCHAR, outcome VARCHAR, reason VARCHAR, hash VARCHAR, payload VARCHAR, "
        "action VARCHAR)"
    )
    for list_id in spec.lists:
        _plan_list(con, spec, list_id, types[list_id], full=full)
    _plan_leavers(con, spec, leave_field)
    rows = con.sql(
        "SELECT * FROM exp_plan ORDER BY list_position($lists, list_id), profile_id",
        params={"lists": list(spec.lists)},
    ).pl()
    plan = Plan(spec, rows)
    plan.counts = count_outcomes(plan.predicted())
    return plan


def count_outcomes(rows: pl.DataFrame) -> dict[str, int]:
    counts = dict.fromkeys(EXPORT_OUTCOMES, 0)
    for outcome, n in rows.group_by("outcome").len().iter_rows():
        if outcome is not None:
            counts[outcome] = int(n)
    return counts


# --- send ----------------------------------------------------------------------------------------


class AckJournal:
    """Acknowledged rows, appended and fsynced the moment Campaign Monitor accepts a batch.

    The store is updated from it in the background (:class:`StateWriter`), every few seconds; the
    journal is what makes "recorded as soon as accepted" true even for a process killed between
    two store writes: the next run folds what it holds into ``export_state`` before planning, and
    a preview reads it as if it had been folded. One line of JSON per acknowledged batch; a line
    cut by a crash is ignored (its batch was not acknowledged to us either).
    """

    COLUMNS = ("list_id", "profile_id", "email", "hash", "action")

    def __init__(self, workspace: Path, connection: str, goal: str) -> None:
        slug = "".join(c if c.isalnum() or c in "-_." else "_" for c in connection)
        self.path = Path(workspace) / ".journal" / f"{slug}.{goal}.jsonl"
        self._file: Any = None

    def append(self, rows: pa.Table) -> None:
        if self._file is None:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._file = open(self.path, "ab")  # noqa: SIM115 - held open for the whole send
        self._file.write(orjson.dumps({c: rows.column(c).to_pylist() for c in self.COLUMNS}))
        self._file.write(b"\n")
        self._file.flush()
        os.fsync(self._file.fileno())

    def read(self) -> pa.Table | None:
        """Every complete line as one table, or None when there is no journal."""
        if not self.path.exists():
            return None
        parts = []
        for line in self.path.read_bytes().split(b"\n"):
            try:
                parts.append(
                    pl.DataFrame(orjson.loads(line), schema=dict.fromkeys(self.COLUMNS, pl.Utf8))
                )
            except (orjson.JSONDecodeError, TypeError, ValueError):
                continue  # an empty or cut line
        if not parts:
            return None
        return pl.concat(parts).to_arrow()

    def close(self, *, remove: bool) -> None:
        if self._file is not None:
            self._file.close()
            self._file = None
        if remove:
            self.path.unlink(missing_ok=True)


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
        store: Any,
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


@dataclass
class SendResult:
    """Rows that did not go as planned: (list_id, profile_id) → (outcome, reason)."""

    exceptions: dict[tuple[str, str], tuple[str, str]] = field(default_factory=dict)
    requests: int = 0


def _batch_rows(frame: pl.DataFrame) -> list[dict[str, Any]]:
    return orjson.loads(("[" + ",".join(frame.get_column("payload").to_list()) + "]").encode())


def send_imports(
    client: Any,
    pending: pl.DataFrame,
    writer: StateWriter,
    result: SendResult,
    *,
    resubscribe: bool,
    progress: Callable[[int], None] | None = None,
) -> None:
    """Import the ``send``/``clear`` rows list by list, ≤1000 per request; acks go to ``writer``.

    A 400 without ResultData (the whole request refused) is split in halves until the bad rows
    are alone, each of which is then ``REJECTED`` with that error.
    """
    # The plan is ordered by list: walk each list's run of rows as zero-copy slices (a
    # group_by would copy a million payloads once more).
    done = 0
    runs = pending.get_column("list_id").rle()
    for list_id, length in zip(runs.struct.field("value"), runs.struct.field("len"), strict=True):
        for start in range(done, done + length, MAX_BATCH):
            batch = pending.slice(start, min(MAX_BATCH, done + length - start))
            _post(client, str(list_id), batch, _batch_rows(batch), writer, result, resubscribe)
            if progress is not None:
                progress(start + batch.height)
        done += length


def _post(
    client: Any,
    list_id: str,
    batch: pl.DataFrame,
    payloads: list[dict[str, Any]],
    writer: StateWriter,
    result: SendResult,
    resubscribe: bool,
) -> None:
    result.requests += 1
    try:
        answer = client.import_batch(list_id, payloads, resubscribe=resubscribe)
    except BadRequest as exc:
        if batch.height == 1:
            reason = f"code {exc.code}: {exc}"
            result.exceptions[(list_id, batch.item(0, "profile_id"))] = ("REJECTED", reason)
            return
        half = batch.height // 2
        _post(client, list_id, batch.slice(0, half), payloads[:half], writer, result, resubscribe)
        _post(client, list_id, batch.slice(half), payloads[half:], writer, result, resubscribe)
        return
    failed = {f.email.strip().lower(): f for f in answer.failures}
    if failed:
        low = batch.get_column("email").str.to_lowercase()
        hit = low.is_in(list(failed))
        for pid, email in batch.filter(hit).select("profile_id", "email").iter_rows():
            f = failed[email.lower()]
            result.exceptions[(list_id, pid)] = ("REJECTED", f"code {f.code}: {f.message}")
        batch = batch.filter(~hit)
    writer.ack(batch)


def remove_leavers(
    client: Any,
    leavers: pl.DataFrame,
    writer: StateWriter,
    result: SendResult,
    on_leave: str,
) -> None:
    """Unsubscribe or delete each leaver (one call each); every mode drops the state rows."""
    chunk: list[dict[str, Any]] = []
    for row in leavers.iter_rows(named=True):
        key = (row["list_id"], row["profile_id"])
        try:
            if on_leave == "unsubscribe":
                result.requests += 1
                client.unsubscribe(row["list_id"], row["email"])
            elif on_leave == "delete":
                result.requests += 1
                client.delete_subscriber(row["list_id"], row["email"])
        except BadRequest as exc:
            if exc.code != NOT_IN_LIST:
                result.exceptions[key] = ("REJECTED", f"code {exc.code}: {exc}")
                continue
            result.exceptions[key] = ("REMOVED", "not in the list any more")
        chunk.append(row)
        if len(chunk) >= MAX_BATCH:
            writer.ack(pl.DataFrame(chunk, schema=PLAN_SCHEMA))
            chunk = []
    if chunk:
        writer.ack(pl.DataFrame(chunk, schema=PLAN_SCHEMA))


def finish(
    con: duckdb.DuckDBPyConnection, run_id: str, plan: Plan, result: SendResult
) -> tuple[dict[str, int], pl.DataFrame]:
    """Final outcomes of every row, written as run rows; returns counts and the rows."""
    rows = plan.predicted()
    if result.exceptions:
        ex = pl.DataFrame(
            [(k[0], k[1], v[0], v[1]) for k, v in result.exceptions.items()],
            schema={
                "list_id": pl.Utf8,
                "profile_id": pl.Utf8,
                "x_outcome": pl.Utf8,
                "x_reason": pl.Utf8,
            },
            orient="row",
        )
        rows = (
            rows.join(ex, on=["list_id", "profile_id"], how="left")
            .with_columns(
                outcome=pl.coalesce("x_outcome", "outcome"),
                reason=pl.when(pl.col("x_outcome") == "REJECTED")
                .then(pl.col("x_reason"))
                .when(pl.col("x_outcome") == "REMOVED")
                .then(pl.concat_str([pl.col("reason"), pl.col("x_reason")], separator="; "))
                .otherwise(pl.col("reason")),
            )
            .drop("x_outcome", "x_reason")
        )
    out = rows.select("list_id", "email", "profile_id", "outcome", "reason")
    arrow = out.to_arrow()
    con.register("exp_run_rows", arrow)
    con.execute(
        """
        INSERT INTO run_rows (run_id, seq, list_id, email, identifier, profile_id, outcome, reason)
        SELECT $run_id, row_number() OVER () - 1, list_id, email, email, profile_id, outcome,
               reason
        FROM exp_run_rows
        """,
        {"run_id": run_id},
    )
    con.unregister("exp_run_rows")
    return count_outcomes(out), out


def samples(plan: Plan, per_outcome: int = 5) -> pl.DataFrame:
    """A few rows per predicted outcome, with the payload exactly as it would be sent."""
    rows = plan.predicted()
    if not rows.height:
        return rows.select("list_id", "profile_id", "email", "outcome", "reason", "payload")
    return (
        rows.with_columns(n=pl.int_range(pl.len()).over("outcome"))
        .filter(pl.col("n") < per_outcome)
        .select("list_id", "profile_id", "email", "outcome", "reason", "payload")
    )


# --- running a plan ------------------------------------------------------------------------------


def compute_plan(
    ctx: GoalContext,
    spec: GoalSpec,
    types: dict[str, dict[str, FieldType]],
    leave_field: str | None = None,
    *,
    preview: bool = False,
) -> Plan:
    """Plan on a read connection (temp tables only), closed before anything is sent."""
    store = ctx.store
    _ensure_segments(ctx, store.connect, spec.segments)
    journal = AckJournal(ctx.root, spec.connection, spec.goal)
    leftover = journal.read()  # acknowledged by an interrupted run, not yet in the store
    if leftover is not None and not preview:
        with store.transaction() as con:
            write_state(con, spec.connection, spec.goal, leftover)
        journal.close(remove=True)
        leftover = None
    with store.connect() as con, tempfile.TemporaryDirectory(prefix="cmtoolkit-export-") as spill:
        # Bounded memory: the plan's temp tables spill to a private folder past the limit.
        con.execute("SET memory_limit = $limit", {"limit": MEMORY_LIMIT})
        con.execute("SET temp_directory = $spill", {"spill": spill})
        if leftover is not None:  # a preview sees the state as the next run will
            con.execute(
                """
                CREATE TEMP TABLE export_state (
                    connection VARCHAR, goal VARCHAR, list_id VARCHAR, profile_id VARCHAR,
                    email VARCHAR, hash VARCHAR, exported_at TIMESTAMP,
                    PRIMARY KEY (connection, goal, list_id, profile_id))
                """
            )
            con.execute("INSERT INTO temp.export_state SELECT * FROM main.export_state")
            write_state(con, spec.connection, spec.goal, leftover)
        return plan_goal(con, spec, types, full=ctx.full, leave_field=leave_field)


def execute_plan(ctx: GoalContext, run_id: str, plan: Plan) -> Outcome:
    """Send, remove leavers, then the ledger rows and FINISHED in one short transaction."""
    spec = plan.spec
    store = ctx.store
    result = SendResult()
    imports = plan.rows.filter(pl.col("action").is_in(["send", "clear"]))
    leavers = plan.rows.filter(pl.col("action") == "leave")
    total = imports.height + leavers.height
    plan.rows = plan.rows.drop("payload")  # the ledger needs no payload: free it while sending
    journal = AckJournal(ctx.root, spec.connection, spec.goal)
    writer = StateWriter(store, spec.connection, spec.goal, journal)
    try:
        send_imports(
            ctx.client,
            imports,
            writer,
            result,
            resubscribe=spec.resubscribe,
            progress=lambda n: ctx.report("send", n, total),
        )
        remove_leavers(ctx.client, leavers, writer, result, spec.on_leave)
    except BaseException:
        # Record what was acknowledged before failing, so the next run resumes after it.
        try:
            writer.close()
        except Exception:
            log.exception(
                "%s of %s: could not record acknowledged rows", spec.goal, spec.connection
            )
        raise
    writer.close()
    with store.transaction() as con:
        counts, _ = finish(con, run_id, plan, result)
        ledger.finish_run(con, run_id, counts)
    log.info("%s of %s: %s in %d requests", spec.goal, spec.connection, counts, result.requests)
    return Outcome(counts=counts, details={"requests": result.requests})


def preview_outcome(plan: Plan) -> Outcome:
    """A preview's result: counts, sample payloads as they would be sent, the first rows."""
    return Outcome(
        counts=plan.counts,
        samples=samples(plan),
        rows=plan.predicted().drop("hash", "action").head(1000),
        details={"to_send": plan.pending.height},
    )


# --- the goal (see cmtoolkit.sync.runner) ------------------------------------------------------


class ExportGoal:
    """Segment members out to Campaign Monitor lists (DESIGN §6)."""

    name: ClassVar[GoalName] = GoalName.EXPORT

    def configured(self, connection: Connection) -> bool:
        return connection.export is not None

    def preview(self, ctx: GoalContext) -> Outcome:
        """Dry run: counts per outcome and sample payloads exactly as they would be sent."""
        spec = GoalSpec.from_connection(ctx.connection)
        return preview_outcome(compute_plan(ctx, spec, field_types(ctx.client, spec), preview=True))

    def run(self, ctx: GoalContext, run_id: str) -> Outcome:
        spec = GoalSpec.from_connection(ctx.connection)
        plan = compute_plan(ctx, spec, field_types(ctx.client, spec))
        return execute_plan(ctx, run_id, plan)
