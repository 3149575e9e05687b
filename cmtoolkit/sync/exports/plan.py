"""The export plan: every (list, profile) row decided in set-based SQL on a read connection.

The statements are generated apart from where they run (:func:`plan_statements` returns them,
:func:`plan_goal` runs them), so a plan can be printed and tested. See docs/export.md.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Mapping

import duckdb

from cmtoolkit.errors import ConfigurationError
from cmtoolkit.profiles.consent import consent_predicate
from cmtoolkit.profiles.quoting import quote_ident
from cmtoolkit.sync.exports.acknowledgements import AckJournal, write_state
from cmtoolkit.sync.exports.live import install_segments, live_segments
from cmtoolkit.sync.exports.options import (
    AddOptions,
    OptionCreator,
    stale_sql,
    with_missing_options,
)
from cmtoolkit.sync.exports.plan_file import PREDICTED, Plan, plan_folder, write_statements
from cmtoolkit.sync.exports.refusals import install as install_states
from cmtoolkit.sync.exports.refusals import read_states
from cmtoolkit.sync.exports.spec import FieldType, GoalSpec, fingerprint
from cmtoolkit.sync.exports.values import value_sql
from cmtoolkit.sync.goal import GoalContext
from cmtoolkit.sync.scratch import memory_limit
from cmtoolkit.sync.statement import Statement, execute

#: The plan's DuckDB memory (see compute_plan): 400 MB, growing past a million members
#: (scratch.memory_limit), as its joins of every member with export_state grow.
MEMORY_LIMIT_MB = 400
# Campaign Monitor's (and the emulator's) address rule, applied before sending.
EMAIL_RE = r"[^@\s]+@[^@\s.]+(\.[^@\s.]+)+"

#: The plan's columns, all text: the temp exp_plan the statements fill.
PLAN_COLUMNS = ("list_id", "profile_id", "email", "outcome", "reason", "hash", "payload", "action")


# --- the statements ------------------------------------------------------------------------------


def members_sql(spec: GoalSpec) -> Statement:
    """exp_members: the profiles in any of the goal's segments."""
    return Statement(
        "CREATE OR REPLACE TEMP TABLE exp_members AS SELECT DISTINCT profile_id "
        "FROM segment_members WHERE list_contains($segments, segment)",
        {"segments": list(spec.segments)},
    )


def candidates_sql(spec: GoalSpec, props: Mapping[str, str]) -> Statement:
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
    params: dict[str, object] = {"objectives": list(spec.objectives)}
    if "target_segments" in kinds:
        params["segments"] = list(spec.segments)
    email = f"nullif(trim(p.{quote_ident(spec.match_property)}[1]), '')"
    consented = f"(len($objectives::VARCHAR[]) = 0 OR {consent_predicate('p', '$objectives')})"
    # Who keeps a shared address is decided on the keys alone, by aggregates that only count:
    # windows over whole rows (every value's list) spilled most of 3M rows under the plan's
    # memory limit (3.8 s at 1M, 24.4 s at 3M).
    members = "FROM profiles p WHERE p.profile_id IN (SELECT profile_id FROM exp_members)"
    return Statement(
        f"""
        CREATE OR REPLACE TEMP TABLE exp_cand AS
        WITH twice AS (
            -- the store has no key: of a profile stored twice, the first row counts
            SELECT p.profile_id {members} GROUP BY ALL HAVING count(*) > 1
        ),
        extra AS (
            SELECT p.rowid AS r {members} AND p.profile_id IN (SELECT profile_id FROM twice)
            QUALIFY row_number() OVER (PARTITION BY p.profile_id ORDER BY p.rowid) > 1
        ),
        keys AS (
            SELECT lower({email}) AS address, p.profile_id, {consented} AS consented
            {members} AND p.rowid NOT IN (SELECT r FROM extra)
        ),
        -- an address held by several members: the first of them (consented, then by id) keeps it
        shared AS (
            SELECT address, arg_min(profile_id, (NOT consented, profile_id)) AS holder
            FROM keys
            WHERE address IN (SELECT address FROM keys WHERE address IS NOT NULL
                              GROUP BY ALL HAVING count(*) > 1)
            GROUP BY ALL
        )
        SELECT p.profile_id, {email} AS email, {consented} AS consented
               {"".join(", " + c for c in cols)},
               CASE WHEN h.holder <> p.profile_id THEN h.holder END AS dup_of
        FROM profiles p {" ".join(joins)}
        LEFT JOIN shared h ON h.address = lower({email})
        WHERE p.profile_id IN (SELECT profile_id FROM exp_members)
          AND p.rowid NOT IN (SELECT r FROM extra)
        """,
        params,
    )


#: What Campaign Monitor refuses and who is Active (filled by refusals.install before planning;
#: empty when a plan is run on its own).
STATE_TABLES = [
    Statement(
        "CREATE TEMP TABLE IF NOT EXISTS exp_refused "
        "(list_id VARCHAR, email VARCHAR, code INTEGER, message VARCHAR)"
    ),
    Statement("CREATE TEMP TABLE IF NOT EXISTS exp_active (list_id VARCHAR, email VARCHAR)"),
]

PLAN_TABLE = Statement(
    f"CREATE OR REPLACE TEMP TABLE exp_plan ({', '.join(f'{c} VARCHAR' for c in PLAN_COLUMNS)})"
)


def list_plan_sql(
    spec: GoalSpec, list_id: str, types: Mapping[str, FieldType], *, full: bool
) -> Statement:
    """exp_plan rows of one list: outcome and reason decided, or ``send`` with its payload."""
    params: dict[str, object] = {
        "list_id": list_id,
        "connection": spec.key,
        "goal": spec.goal,
        "consent": spec.consent_to_track,
        "resubscribe": "R" if spec.resubscribe else "-",
        "full": full,
    }
    errs, entries = [], []
    name = mobile = "NULL"
    skip = spec.invalid_values == "skip_field"
    params["only_subscribed"] = spec.only_subscribed
    for i, v in enumerate(spec.values):
        sql = value_sql(i, types[v.field], skip=skip)
        params.update(sql.params)
        errs.append(sql.error)
        entries.append(sql.entries)
        if types[v.field].data_type == "Name":
            name = sql.scalar
        elif types[v.field].data_type == "MobileNumber":
            mobile = sql.scalar
    email_err = (
        "CASE WHEN email IS NULL THEN 'no value for match property ' || $match "
        f"WHEN NOT regexp_full_match(email, '{EMAIL_RE}') THEN 'not a valid email address: ' "
        "|| email WHEN dup_of IS NOT NULL THEN 'profile ' || dup_of || ' in the segment has the "
        "same email' END"
    )
    params["match"] = spec.match_property
    # skip_field: a value's error is a warning (the row goes without it); skip_row: INVALID.
    value_errs = ", ".join(errs) or "NULL"
    row_err = email_err if skip else f"coalesce({email_err}, {value_errs})"
    warning = f"concat_ws('; ', {value_errs})" if skip and errs else "NULL"
    cf = f"to_json(list_concat({', '.join(entries)}))" if entries else "to_json([]::JSON[])"
    payload = (
        "json_merge_patch('{}', json_object('EmailAddress', email, 'Name', "
        f"{name}, 'MobileNumber', {mobile}, 'CustomFields', {cf}, 'ConsentToTrack', $consent))"
    )
    # The hash covers what the payload is made of (the values, the email, the list's field types
    # and the goal's settings), so only rows that will be sent pay for building their JSON.
    params["fingerprint"] = fingerprint(spec, types)
    hashed = "".join(f", array_to_string(v{i}, chr(31))" for i in range(len(spec.values)))
    stale = stale_sql(spec, types, params)
    params["objectives"] = list(spec.objectives)
    return Statement(
        f"""
        INSERT INTO exp_plan
        SELECT $list_id, c.profile_id, c.email, c.outcome, c.reason, c.hash,
               CASE WHEN c.action = 'send' THEN {payload}::VARCHAR END, c.action
        FROM (
            SELECT c.*,
                   CASE WHEN NOT c.consented THEN 'CONSENT_MISMATCH'
                        WHEN c.err IS NOT NULL THEN 'INVALID'
                        WHEN NOT (c.stale OR $full) AND s.hash = c.hash THEN 'UNCHANGED'
                        WHEN $only_subscribed AND a.email IS NULL THEN 'NOT_SUBSCRIBED'
                        WHEN r.code IS NOT NULL THEN 'SUPPRESSED' END AS outcome,
                   CASE WHEN NOT c.consented
                        THEN 'profile has not consented to any of: '
                             || array_to_string($objectives, ', ')
                        WHEN c.err IS NOT NULL THEN c.err
                        WHEN NOT (c.stale OR $full) AND s.hash = c.hash
                        THEN 'not changed since the last run'
                        WHEN $only_subscribed AND a.email IS NULL
                        THEN 'not an active subscriber of the list (targeting never subscribes)'
                        WHEN r.code IS NOT NULL
                        THEN 'code ' || r.code || ': ' || r.message || '; not sent (resubscribe: '
                             || 'true, or a change of state in Campaign Monitor, sends it again)'
                        WHEN c.stale AND s.hash = c.hash
                        THEN concat_ws('; ', 'sent again: Campaign Monitor lacked a field or '
                             || 'option of its values (deleted there?), now created again',
                             c.warning)
                        ELSE c.warning
                   END AS reason,
                   CASE WHEN c.consented AND c.err IS NULL
                             AND (c.stale OR $full OR s.hash IS DISTINCT FROM c.hash)
                             AND NOT ($only_subscribed AND a.email IS NULL)
                             AND r.code IS NULL
                        THEN 'send' END AS action
            FROM (
                SELECT *, md5(concat_ws(chr(30), $fingerprint, $resubscribe, $consent, email
                                        {hashed})) AS hash, {stale} AS stale
                FROM (SELECT *, {row_err} AS err, {warning} AS warning FROM exp_cand)
            ) c
            LEFT JOIN export_state s ON s.connection = $connection AND s.goal = $goal
                  AND s.list_id = $list_id AND s.profile_id = c.profile_id
            LEFT JOIN exp_refused r ON r.list_id = $list_id AND r.email = lower(c.email)
            LEFT JOIN exp_active a ON a.list_id = $list_id AND a.email = lower(c.email)
        ) c
        """,
        params,
    )


def leavers_sql(spec: GoalSpec, leave_field: str | None) -> Statement:
    """exp_plan rows for state rows of this goal whose profile is no longer an eligible
    candidate: ``leave`` per ``on_leave``, ``clear`` with the clearing payload, or ``forget``
    (the state row only) when a member that stays holds the address."""
    if spec.on_leave == "clear":
        # Someone no longer subscribed is not written to (Campaign Monitor would refuse it, and
        # targeting never subscribes): the state row goes, the field is left as it is.
        gone = "(r.code IS NOT NULL OR a.email IS NULL)"
        payload = (
            f"CASE WHEN NOT {gone} THEN json_object('EmailAddress', s.email, 'CustomFields', "
            "[json_object('Key', $field, 'Value', '', 'Clear', true)], "
            "'ConsentToTrack', 'Unchanged')::VARCHAR END"
        )
        action = f"CASE WHEN {gone} THEN 'leave' ELSE 'clear' END"
        done_sql = (
            f"CASE WHEN {gone} THEN 'no longer subscribed; field left as it is' ELSE $done END"
        )
    else:
        payload = "NULL"
        action = "'leave'"
        done_sql = "$done"
    if spec.on_leave != "keep":
        # A profile that stays holds the address (sent, or unchanged): unsubscribing, deleting
        # or clearing it would undo that member, so only the state row goes ('forget').
        payload = f"CASE WHEN h.holder IS NULL THEN {payload} END"
        action = f"CASE WHEN h.holder IS NULL THEN {action} ELSE 'forget' END"
        done_sql = (
            f"CASE WHEN h.holder IS NULL THEN {done_sql} ELSE 'its address now belongs to "
            "profile ' || h.holder || ', who stays: left as it is' END"
        )
    what = "every targeted segment" if spec.goal == "targeting" else "the segment"
    done = {
        "keep": "kept in Campaign Monitor",
        "unsubscribe": "unsubscribed",
        "delete": "deleted",
        "clear": f"field {leave_field} cleared",
    }[spec.on_leave]
    return Statement(
        f"""
        INSERT INTO exp_plan
        WITH leaving AS MATERIALIZED (
            SELECT s.list_id, s.profile_id, s.email, c.profile_id IS NULL AS gone
            FROM export_state s LEFT JOIN exp_cand c USING (profile_id)
            WHERE s.connection = $connection AND s.goal = $goal
              AND list_contains($lists, s.list_id) AND (c.profile_id IS NULL OR NOT c.consented)
        ),
        -- who of those staying holds a leaver's address: only those addresses are looked up, not
        -- every address grouped (10M groups on a 10M re-run, to find the holders of a few)
        holders AS (
            SELECT p.list_id, lower(p.email) AS email, min(p.profile_id) AS holder
            FROM exp_plan p
            SEMI JOIN leaving l ON l.list_id = p.list_id AND lower(l.email) = lower(p.email)
            WHERE p.action = 'send' OR p.outcome = 'UNCHANGED'
            GROUP BY ALL
        )
        SELECT s.list_id, s.profile_id, s.email, NULL,
               CASE WHEN s.gone THEN 'left ' || $what
                    ELSE 'no longer consents to any of: ' || array_to_string($objectives, ', ')
               END || '; ' || {done_sql},
               NULL, {payload}, {action}
        FROM leaving s
        LEFT JOIN exp_refused r ON r.list_id = s.list_id AND r.email = lower(s.email)
        LEFT JOIN exp_active a ON a.list_id = s.list_id AND a.email = lower(s.email)
        LEFT JOIN holders h ON h.list_id = s.list_id AND h.email = lower(s.email)
        """,
        {
            "connection": spec.key,
            "goal": spec.goal,
            "lists": list(spec.lists),
            "objectives": list(spec.objectives),
            "what": what,
            "done": done,
            **({"field": leave_field} if spec.on_leave == "clear" else {}),
        },
    )


def plan_statements(
    spec: GoalSpec,
    props: Mapping[str, str],
    types: Mapping[str, Mapping[str, FieldType]],
    *,
    full: bool = False,
    leave_field: str | None = None,
) -> list[Statement]:
    """Every statement that fills exp_plan, in order; ``props`` maps property names to types."""
    return [
        *STATE_TABLES,
        members_sql(spec),
        candidates_sql(spec, props),
        PLAN_TABLE,
        *(list_plan_sql(spec, list_id, types[list_id], full=full) for list_id in spec.lists),
        leavers_sql(spec, leave_field),
    ]


def plan_goal(
    con: duckdb.DuckDBPyConnection,
    plan: Plan,
    types: Mapping[str, Mapping[str, FieldType]],
    *,
    full: bool = False,
    leave_field: str | None = None,
    add_options: AddOptions | None = None,
) -> Plan:
    """Decide every (list, profile) row on ``con`` (temp tables) and write ``plan``'s file.

    With ``create_missing``, the MultiSelect options the candidates' values need are handed to
    ``add_options`` once the candidates are known, and planned as if they existed.
    """
    spec = plan.spec
    props = dict(con.execute("SELECT name, type FROM property_definitions").fetchall())
    statements = plan_statements(spec, props, types, full=full, leave_field=leave_field)
    head = len(STATE_TABLES) + 2  # up to the candidates
    execute(con, statements[: head - 1])  # the members first: the memory follows their number
    (members,) = con.execute("SELECT count(*) FROM exp_members").fetchone() or (0,)
    con.execute("SET memory_limit = $limit", {"limit": memory_limit(MEMORY_LIMIT_MB, int(members))})
    execute(con, statements[head - 1 : head])
    if spec.create_missing:
        types = with_missing_options(con, spec, types, add_options)
        statements = plan_statements(spec, props, types, full=full, leave_field=leave_field)
    execute(con, statements[head:])
    counted = con.sql(f"SELECT {PREDICTED}, count(*), count(action) FROM exp_plan GROUP BY ALL")
    for outcome, n, actions in counted.fetchall():
        plan.counts[outcome] = int(n)
        plan.pending += int(actions)
    execute(con, write_statements(spec, plan.path))
    return plan


# --- planning on the store -----------------------------------------------------------------------


def adopt_statements(spec: GoalSpec) -> list[Statement]:
    """A real run first moves state kept under the connection's name to its id (an upgrade, or
    a connection used before its file had an id): copied under the id, then removed under the
    name (when state under the id exists already, it wins and the name's is dropped)."""
    if spec.key == spec.connection:
        return []
    params = {"key": spec.key, "name": spec.connection, "goal": spec.goal}
    tables = {
        "export_state": "list_id, profile_id, email, hash, exported_at",
        "export_suppressions": "list_id, email, code, reason, seen_at",
    }
    out = []
    for table, columns in tables.items():
        mine = "connection = $name AND goal = $goal"
        out.append(
            Statement(
                f"INSERT INTO {table} (connection, goal, {columns}) "
                f"SELECT $key, goal, {columns} FROM {table} WHERE {mine} AND NOT EXISTS "
                f"(SELECT 1 FROM {table} WHERE connection = $key AND goal = $goal)",
                params,
            )
        )
        mine_params = {"name": spec.connection, "goal": spec.goal}
        out.append(Statement(f"DELETE FROM {table} WHERE {mine}", mine_params))
    return out


def session_sql(spill: str) -> list[Statement]:
    """Bounded memory: the plan's temp tables spill to a private folder past the limit."""
    return [
        Statement("SET memory_limit = $limit", {"limit": memory_limit(MEMORY_LIMIT_MB, 0)}),
        Statement("SET temp_directory = $spill", {"spill": spill}),
    ]


#: A temp copy of export_state that shadows the stored one, for a preview to fold a journal into.
STATE_OVERLAY = [
    # Copied first: once the temp table exists, "main.export_state" names the temp catalog's
    # main schema, i.e. the temp table itself.
    Statement("CREATE TEMP TABLE exp_state_copy AS SELECT * FROM export_state"),
    Statement(
        """
        CREATE TEMP TABLE export_state (
            connection VARCHAR, goal VARCHAR, list_id VARCHAR, profile_id VARCHAR,
            email VARCHAR, hash VARCHAR, exported_at TIMESTAMP,
            PRIMARY KEY (connection, goal, list_id, profile_id))
        """
    ),
    Statement("INSERT INTO temp.export_state SELECT * FROM exp_state_copy"),
    Statement("DROP TABLE exp_state_copy"),
]


@contextlib.contextmanager
def compute_plan(
    ctx: GoalContext,
    spec: GoalSpec,
    types: Mapping[str, Mapping[str, FieldType]],
    leave_field: str | None = None,
    *,
    preview: bool = False,
) -> Iterator[Plan]:
    """The plan, decided on a read connection (temp tables only) that is closed before
    anything is sent; its file is removed on exit."""
    store = ctx.store
    live = live_segments(ctx, spec)
    states = read_states(ctx.client, spec.client_id, spec, active=spec.only_subscribed)
    adopt = adopt_statements(spec)
    journal = (
        AckJournal(ctx.root, spec.key, spec.goal)
        if preview
        else AckJournal.taking_over(ctx.root, spec.key, spec.connection, spec.goal)
    )
    if adopt and not preview:
        with store.transaction() as con:
            execute(con, adopt)
    leftover = journal.read()  # acknowledged by an interrupted run, not yet in the store
    if leftover is not None and not preview:
        with store.transaction() as con:
            write_state(con, spec.key, spec.goal, leftover)
        journal.close(remove=True)
        leftover = None
    elif journal.rejected and not preview:
        journal.close(remove=True)  # only lines of the wrong shape: set them aside
    with plan_folder(ctx.root, spec) as plan:
        with store.connect() as con:
            execute(con, session_sql(str(plan.folder / "spill")))
            install_segments(con, live)
            install_states(con, states)
            if leftover is not None or (adopt and preview):  # seen as the next run will see it
                execute(con, STATE_OVERLAY)
                execute(con, adopt[:2] if preview else [])
                if leftover is not None:
                    write_state(con, spec.key, spec.goal, leftover)
            plan_goal(
                con,
                plan,
                types,
                full=ctx.full,
                leave_field=leave_field,
                add_options=None if preview else OptionCreator(ctx.client),
            )
        yield plan
