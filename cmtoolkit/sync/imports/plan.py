"""Plan: every contact's outcome and every profile change, decided by set-based SQL over temp
tables on the stage's connection with the store ATTACHed (a preview stops here).

The statements are built by small functions (printable, testable); :func:`plan_import` is the one
place that runs them, in order, and keeps them on the plan.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import duckdb
import polars as pl

from cmtoolkit.profiles.consent import consent_predicate
from cmtoolkit.profiles.properties import VALUE_CHECKS, defined_properties
from cmtoolkit.profiles.quoting import quote_ident
from cmtoolkit.sync.imports.merge import ORDERED_DISTINCT, merge_select, merge_statements, stored
from cmtoolkit.sync.imports.spec import ImportSpec, Target
from cmtoolkit.sync.statement import Statement, count, execute

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

# Consent decides on a created profile's new consent values, so a preview keeps them too.
CONSENT_PROPERTIES = ("consented_objectives", "refused_objectives")


@dataclass
class ImportPlan:
    """The result of planning: temp tables on ``con``, summary figures and the statements run."""

    con: duckdb.DuckDBPyConnection
    spec: ImportSpec
    counts: dict[str, int]
    new_properties: dict[str, str]  # properties the run will define, name → type
    values: bool = True  # imp_new holds every new value (False: a preview's plan)
    statements: tuple[Statement, ...] = ()

    @property
    def targets(self) -> tuple[Target, ...]:
        return self.spec.targets

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
        statement = samples_select(self.targets, defined_properties(self.con), self.values, limit)
        if statement is None:
            return pl.DataFrame()
        return self.con.sql(statement.sql, params=dict(statement.params)).pl()


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
    ``con`` already holds imp_match for every profile (``match_statement(todo_only=False)``).
    """
    props = defined_properties(con)
    targets = spec.targets
    done: list[Statement] = []

    def run(*statements: Statement) -> None:
        execute(con, statements)
        done.extend(statements)

    run(ORDERED_DISTINCT, delta_statement(spec, full=full))
    todo = count(con, "imp_todo")
    if not matched:
        run(match_statement(spec, props, todo=todo))
    elif not todo:
        # Nothing past the delta (a re-run): joining every contact to the identifiers matched
        # while reading would cost 0.3 s a million for nothing.
        run(Statement("CREATE OR REPLACE TEMP TABLE imp_match AS FROM imp_match LIMIT 0"))
    run(classify_statement(spec))
    # Everything later needs is in imp_plan.
    run(Statement("DROP TABLE imp_in; DROP TABLE imp_todo; DROP TABLE imp_match"))
    run(*consent_existing_statements(spec))
    run(*type_check_statements(targets, props))
    keep = targets if values else tuple(t for t in targets if t.property in CONSENT_PROPERTIES)
    run(*merge_statements(targets, props, keep))
    run(*consent_new_statements(spec))
    run(OUTCOMES)
    counts = dict.fromkeys(IMPORT_OUTCOMES, 0)
    counts.update(con.execute("SELECT outcome, count(*) FROM imp_plan GROUP BY outcome").fetchall())
    new_properties = {
        t.property: ("number" if t.rule == "sum" else "text")
        for t in targets
        if t.property not in props
    }
    return ImportPlan(con, spec, counts, new_properties, values, tuple(done))


def delta_statement(spec: ImportSpec, *, full: bool) -> Statement:
    """imp_todo: the contacts past the delta (DESIGN §5), whose hash is not the one last applied.

    The others need no more work: on a re-run this table is empty, and matching is skipped.
    """
    return Statement(
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


def match_statement(
    spec: ImportSpec, props: Mapping[str, str], *, todo: int | None = None
) -> Statement:
    """imp_match(r, key, n, profile_id): how many profiles hold each identifier of the ``todo``
    contacts still to apply (imp_todo), or (``todo=None``, before the contacts are known) every
    identifier."""
    keys = []
    for r, (field, prop) in enumerate(spec.identifiers):
        if todo == 0 or prop not in props:
            continue  # nothing to match, or no profile holds a property not defined yet
        norm = "lower(trim(v))" if field == "EmailAddress" else "trim(v)"
        wanted = f"WHERE {norm} IN (SELECT identifier FROM imp_todo WHERE id_rule = {r})"
        keys.append(
            f"""
            SELECT {r} AS r, {norm} AS key, profile_id
            FROM (SELECT profile_id, unnest({quote_ident(prop)}) AS v FROM profiles)
            {wanted if todo is not None else ""}
            """
        )
    union = (
        " UNION ALL ".join(keys)
        if keys
        else ("SELECT NULL::INTEGER AS r, NULL AS key, NULL AS profile_id WHERE false")
    )
    return Statement(
        f"""
        CREATE OR REPLACE TEMP TABLE imp_match AS
        SELECT r, key, count(*) AS n, min(profile_id) AS profile_id
        FROM (SELECT DISTINCT r, key, profile_id FROM ({union}))
        GROUP BY r, key
        """
    )


def classify_statement(spec: ImportSpec) -> Statement:
    """imp_plan: one row per contact with the outcomes decided before merging and, for the
    contacts past the delta, every target's incoming values."""
    props = [p for _, p in spec.identifiers]
    params: dict[str, object] = {"allow_create": spec.allow_create, "props": props}
    is_new = "NOT c.delta_hit AND coalesce(m.n, 0) = 0"
    incoming = []
    for t in spec.targets:
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
    return Statement(
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


def consent_existing_statements(spec: ImportSpec) -> list[Statement]:
    """An existing profile that consented to none of the objectives is skipped."""
    if not spec.objectives:
        return []
    consented = consent_predicate("p", "$objectives")
    return [
        Statement(
            f"""
            UPDATE imp_plan SET outcome = 'CONSENT_MISMATCH',
                   reason = 'profile has not consented to any of: '
                            || array_to_string($objectives, ', ')
            WHERE outcome IS NULL AND NOT is_new
              AND profile_id NOT IN (SELECT profile_id FROM profiles AS p WHERE {consented})
            """,
            {"objectives": list(spec.objectives)},
        )
    ]


def type_check_statements(targets: Sequence[Target], props: Mapping[str, str]) -> list[Statement]:
    """A contact with a value that does not fit its (non-sum) target property becomes INVALID.

    What fits a type is the store's rule (:data:`~cmtoolkit.profiles.properties.VALUE_CHECKS`).
    """
    checks, bad = [], []
    params: dict[str, object] = {}
    for t in targets:
        type_ = props.get(t.property, "text")
        pred = VALUE_CHECKS.get(type_, "true")
        if t.kind != "field" or t.rule == "sum" or pred == "true":
            continue
        bad_values = f"list_filter(in_{t.alias}, lambda x: NOT ({pred}))"
        params[f"m_{t.alias}"] = f"field {t.field}: not a valid {type_} for property {t.property}: "
        checks.append(f"WHEN len({bad_values}) > 0 THEN $m_{t.alias} || {bad_values}[1]")
        bad.append(f"len({bad_values}) > 0")
    if not checks:
        return []
    return [
        Statement(
            f"""
            UPDATE imp_plan SET outcome = 'INVALID', reason = CASE {" ".join(checks)} END
            WHERE outcome IS NULL AND ({" OR ".join(bad)})
            """,
            params,
        )
    ]


def consent_new_statements(spec: ImportSpec) -> list[Statement]:
    """A new profile is created only when, as created, it consented to one of the objectives."""
    if not spec.objectives:
        return []
    by_prop = {t.property: f"new_{t.alias}" for t in spec.targets}
    yes = by_prop.get("consented_objectives", "[]::VARCHAR[]")
    no = by_prop.get("refused_objectives", "[]::VARCHAR[]")
    objectives = {"objectives": list(spec.objectives)}
    return [
        Statement(
            f"""
            CREATE OR REPLACE TEMP TABLE imp_refused_new AS
            SELECT profile_id FROM imp_new
            WHERE is_new AND len(list_filter($objectives::VARCHAR[], lambda o:
                      list_contains({yes}, o) AND NOT list_contains({no}, o))) = 0
            """,
            objectives,
        ),
        Statement(
            """
            UPDATE imp_plan SET outcome = 'CONSENT_MISMATCH',
                   reason = 'a new profile would not consent to any of: '
                            || array_to_string($objectives, ', ')
            WHERE outcome IS NULL AND profile_id IN (SELECT profile_id FROM imp_refused_new)
            """,
            objectives,
        ),
        Statement(
            "DELETE FROM imp_new WHERE profile_id IN (SELECT profile_id FROM imp_refused_new)"
        ),
    ]


#: CREATED / MODIFIED / UNCHANGED for the applied contacts, with sum notes as reasons.
OUTCOMES = Statement(
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


def samples_select(
    targets: Sequence[Target], props: Mapping[str, str], values: bool, limit: int
) -> Statement | None:
    """Before/after of every changed target for ``limit`` affected profiles (None: no targets).

    A preview's plan keeps no values: the merge runs again for the picked profiles only.
    """
    parts = [
        f"SELECT n.profile_id, n.is_new AS created, $p_{t.alias} AS property, "
        f"{stored(t, props)} AS before, n.new_{t.alias} AS after "
        "FROM picked n LEFT JOIN profiles p USING (profile_id) "
        f"WHERE n.new_{t.alias} IS DISTINCT FROM {stored(t, props)}"
        for t in targets
    ]
    if not parts:
        return None
    first = "SELECT * FROM imp_new WHERE changed ORDER BY profile_id LIMIT $limit"
    params: dict[str, object] = {"limit": limit, **{f"p_{t.alias}": t.property for t in targets}}
    if values:
        ctes = f"picked AS ({first})"
    else:
        again = merge_select(
            targets,
            props,
            "outcome IN ('CREATED', 'MODIFIED') AND profile_id IN (SELECT profile_id FROM ids)",
            targets,
        )
        ctes = f"ids AS ({first}), picked AS ({again.sql})"
        params.update(again.params)
    return Statement(
        f"WITH {ctes} {' UNION ALL '.join(parts)} ORDER BY profile_id, property", params
    )
