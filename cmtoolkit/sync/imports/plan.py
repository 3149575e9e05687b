"""Plan: every contact's outcome and every profile change, decided by set-based SQL over temp
tables on the stage's connection with the store ATTACHed (a preview stops here).

The statements are built by small functions (printable, testable); :func:`plan_import` is the one
place that runs them, in order, and keeps them on the plan.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import duckdb
import polars as pl

from cmtoolkit.profiles.consent import consent_predicate
from cmtoolkit.profiles.properties import VALUE_CHECKS, defined_properties
from cmtoolkit.profiles.quoting import quote_ident
from cmtoolkit.sync.imports.identity import IDENTITY_MACROS, key_macro
from cmtoolkit.sync.imports.merge import ORDERED_DISTINCT, merge_select, merge_statements, stored
from cmtoolkit.sync.imports.spec import ImportSpec, Target
from cmtoolkit.sync.imports.state import (
    last_sums_statements,
    leaver_read_statement,
    leaver_statements,
    plan_details,
    sum_columns,
)
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


@dataclass(frozen=True)
class NumberSpread:
    """A Number property's stored values (every profile) before and after the run, counted in
    the same bins: bin ``i`` holds values in ``[edges[i], edges[i + 1])``."""

    property: str
    rule: str
    edges: tuple[float, ...]
    before: tuple[int, ...]
    after: tuple[int, ...]

    def to_detail(self) -> str:
        """As text, for a preview's details (``Run.details["number_spreads"]``)."""
        return json.dumps([self.property, self.rule, self.edges, self.before, self.after])

    @classmethod
    def from_detail(cls, text: str) -> NumberSpread:
        prop, rule, edges, before, after = json.loads(text)
        return cls(prop, rule, tuple(edges), tuple(before), tuple(after))


@dataclass
class ImportPlan:
    """The result of planning: temp tables on ``con``, summary figures and the statements run."""

    con: duckdb.DuckDBPyConnection
    spec: ImportSpec
    counts: dict[str, int]
    new_properties: dict[str, str]  # properties the run will define, name → type
    values: bool = True  # imp_new holds every new value (False: a preview's plan)
    statements: tuple[Statement, ...] = ()
    #: what the counts do not say: values already summed, leavers, mappings skipped
    details: dict[str, int] = field(default_factory=dict)

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

    def number_spreads(self, bins: int = 8) -> list[NumberSpread]:
        """Each Number property mapped with ``sum``, ``add`` or ``set``: its values before and
        after, from the same merge the run applies (read before the plan is applied)."""
        props, out = defined_properties(self.con), []
        for t in self.targets:
            number = props.get(t.property, "number" if t.rule == "sum" else None) == "number"
            if t.kind != "field" or t.rule not in ("sum", "add", "set") or not number:
                continue
            st = spread_select(t, props, self.values, bins)
            found = self.con.execute(st.sql, dict(st.params)).fetchall()
            if not found:
                continue
            start, step = float(found[0][3]), float(found[0][4])
            width = max(int(b) for _, b, _, _, _ in found) + 1
            counts = {"before": [0] * width, "after": [0] * width}
            for side, b, n, _, _ in found:
                counts[side][int(b)] = int(n)
            edges = tuple(start + i * step for i in range(width + 1))
            out.append(NumberSpread(t.property, t.rule, edges, *(tuple(counts[k]) for k in counts)))
        return out


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

    run(ORDERED_DISTINCT, IDENTITY_MACROS, leaver_read_statement(), *leaver_statements(spec))
    run(delta_statement(spec, full=full))
    todo = count(con, "imp_todo")
    if not matched:
        run(match_statement(spec, props, todo=todo))
    elif not todo:
        # Nothing past the delta (a re-run): joining every contact to the identifiers matched
        # while reading would cost 0.3 s a million for nothing.
        run(Statement("CREATE OR REPLACE TEMP TABLE imp_match AS FROM imp_match LIMIT 0"))
    run(*last_sums_statements(spec), classify_statement(spec))
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
    details = plan_details(con, spec)
    return ImportPlan(con, spec, counts, new_properties, values, tuple(done), details)


def delta_statement(spec: ImportSpec, *, full: bool) -> Statement:
    """imp_todo: the contacts past the delta (DESIGN §5.5), whose hash is not the one last applied
    (every contact with ``full``), with each rule's key.

    Contacts whose state predates version 3 of the ledger (no sums recorded) and whose hash is
    unchanged come too, marked ``hit``: they stay UNCHANGED, but their current ``sum`` values
    are recorded as summed, so the upgrade never sums them again.
    """
    keys = "".join(f", c.k_{r}" for r in range(len(spec.identifiers)))
    legacy = "OR (s.sums_recorded IS NULL AND s.hash = c.hash)" if spec.sum_targets else ""
    return Statement(
        f"""
        CREATE OR REPLACE TEMP TABLE imp_todo AS
        SELECT c.cid, c.id_rule, c.identifier{keys},
               NOT $full AND s.hash IS NOT DISTINCT FROM c.hash AS hit,
               s.sums_recorded IS NULL AND s.hash IS NOT DISTINCT FROM c.hash AS legacy_same
        FROM imp_in c
        LEFT JOIN import_state s
               ON s.connection = $connection AND s.list_id = c.list_id
              AND s.identifier = c.subscriber
        WHERE $full OR s.hash IS DISTINCT FROM c.hash {legacy}
        """,
        {"full": full, "connection": spec.state_key},
    )


def match_statement(
    spec: ImportSpec, props: Mapping[str, str], *, todo: int | None = None
) -> Statement:
    """imp_match(r, key, n, profile_id): how many profiles hold each rule's key of the ``todo``
    contacts still to apply (imp_todo), or (``todo=None``, before the contacts are known) every
    identifier. Both sides are normalised alike (:mod:`~cmtoolkit.sync.imports.identity`)."""
    keys = []
    for r, (field_, prop) in enumerate(spec.identifiers):
        if todo == 0 or prop not in props:
            continue  # nothing to match, or no profile holds a property not defined yet
        norm = f"{key_macro(field_)}(v)"
        wanted = f"WHERE {norm} IN (SELECT k_{r} FROM imp_todo WHERE k_{r} IS NOT NULL)"
        keys.append(
            f"""
            SELECT {r} AS r, {norm} AS key, profile_id
            FROM (SELECT profile_id, unnest({quote_ident(prop)}) AS v FROM profiles)
            {wanted if todo is not None else f"WHERE {norm} IS NOT NULL"}
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
    contacts past the delta, every target's incoming values.

    The search order (DESIGN §5.2): the applying rules in order; the first whose key some
    profile holds decides (one profile: matched; several: AMBIGUOUS); none: a new profile.
    A leaver outside ``states`` never creates one and brings only its state and list.
    """
    rules = range(len(spec.identifiers))
    props = [p for _, p in spec.identifiers]
    params: dict[str, object] = {"allow_create": spec.allow_create, "props": props}
    joins = "".join(
        f" LEFT JOIN imp_match m{r} ON m{r}.r = {r} AND m{r}.key = c.k_{r}" for r in rules
    )
    n = f"coalesce({', '.join(f'm{r}.n' for r in rules)})" if props else "NULL::BIGINT"
    found = " ".join(f"WHEN m{r}.n IS NOT NULL THEN {{}}" for r in rules)

    def by_rule(value: str) -> str:
        return f"CASE {found.format(*[value.format(r=r) for r in rules])} END" if props else "NULL"

    is_new = "NOT c.delta_hit AND c.n IS NULL AND c.identifier IS NOT NULL AND c.selected"
    incoming = []
    for t in spec.targets:
        live = "NOT c.delta_hit" if t.field == "State" else "NOT c.delta_hit AND c.selected"
        if t.rule == "sum" and t.kind == "field":
            continue  # sum_columns: only a value not summed before
        if t.kind in ("field", "consent"):  # not copied for contacts that stop at the delta
            incoming.append(f", CASE WHEN {live} THEN c.in_{t.alias} END AS in_{t.alias}")
        elif t.kind == "list_names":  # a leaver's list is taken away (DESIGN §5.6)
            incoming.append(
                f", CASE WHEN c.leaving THEN [] ELSE [c.list_name] END AS in_{t.alias}"
                f", CASE WHEN c.leaving THEN [c.list_name] ELSE [] END AS out_{t.alias}"
            )
        else:  # a created profile gets every applying rule's identifier property
            values = [f"c.v_{r}" for r, p in enumerate(props) if p == t.property]
            incoming.append(
                f", CASE WHEN {is_new} AND coalesce({', '.join(values)}) IS NOT NULL "
                f"THEN [coalesce({', '.join(values)})] ELSE [] END AS in_{t.alias}"
            )
    sums, sum_joins = sum_columns(spec, params)
    return Statement(
        f"""
        CREATE OR REPLACE TEMP TABLE imp_plan AS
        SELECT c.cid, c.list_index, c.list_id, c.email, c.subscriber, c.identifier, c.hash,
               c.delta_hit, c.leaving, c.left_at, c.legacy_same, {is_new} AS is_new,
               false AS skipped,
               CASE WHEN c.n = 1 THEN c.matched
                    WHEN {is_new}
                    THEN 'cm-' || substr(md5($props[c.id_rule + 1] || chr(31) || c.identifier),
                                         1, 24)
               END AS profile_id,
               CASE WHEN c.identifier IS NULL THEN 'NO_IDENTIFIER'
                    WHEN c.delta_hit THEN 'UNCHANGED'
                    WHEN c.n > 1 THEN 'AMBIGUOUS'
                    WHEN c.n IS NULL AND NOT c.selected THEN 'UNCHANGED'
                    WHEN c.n IS NULL AND NOT $allow_create THEN 'NOT_FOUND'
               END AS outcome,
               CASE WHEN c.identifier IS NULL THEN 'no value for any identifier field'
                    WHEN c.delta_hit THEN 'not changed since the last import'
                    WHEN c.n > 1
                    THEN c.n || ' profiles hold ' || $props[c.rule + 1] || ' = ' || c.key
                    WHEN c.n IS NULL AND NOT c.selected
                    THEN 'left the list (' || c.state || '); no profile to update'
                    WHEN c.n IS NULL AND NOT $allow_create
                    THEN 'no profile holds ' || $props[c.id_rule + 1] || ' = ' || c.identifier
               END AS reason
               {"".join(incoming)}{sums}
        FROM (
            SELECT c.*, {n} AS n, {by_rule("m{r}.profile_id")} AS matched,
                   {by_rule("{r}")} AS rule, {by_rule("m{r}.key")} AS key
            FROM (
                SELECT c.*, t.cid IS NULL OR t.hit AS delta_hit,
                       coalesce(t.legacy_same, false) AS legacy_same
                FROM imp_in c LEFT JOIN imp_todo t USING (cid)
            ) c{joins}
        ) c{sum_joins}
        """,
        params,
    )


def consent_existing_statements(spec: ImportSpec) -> list[Statement]:
    """An existing profile that consented to none of the objectives is skipped, unless the
    contact's ``consent_from`` field grants one now (DESIGN §5.3)."""
    if not spec.objectives:
        return []
    consented = consent_predicate("p", "$objectives")
    granted = {t.property: f"in_{t.alias}" for t in spec.targets if t.kind == "consent"}
    yes = granted.get("consented_objectives")
    no = granted.get("refused_objectives", "[]::VARCHAR[]")
    grants = (
        f" AND len(list_filter($objectives::VARCHAR[], lambda o: list_contains(coalesce({yes}, "
        f"[]), o) AND NOT list_contains(coalesce({no}, []), o))) = 0"
        if yes
        else ""
    )
    return [
        Statement(
            f"""
            UPDATE imp_plan SET outcome = 'CONSENT_MISMATCH',
                   reason = 'profile has not consented to any of: '
                            || array_to_string($objectives, ', ')
            WHERE outcome IS NULL AND NOT is_new{grants}
              AND profile_id NOT IN (SELECT profile_id FROM profiles AS p WHERE {consented})
            """,
            {"objectives": list(spec.objectives)},
        )
    ]


def type_check_statements(targets: Sequence[Target], props: Mapping[str, str]) -> list[Statement]:
    """A value that does not fit its (non-sum) target property skips that mapping only: its
    incoming values are dropped and the row says why; the contact's other mappings still apply.

    What fits a type is the store's rule (:data:`~cmtoolkit.profiles.properties.VALUE_CHECKS`).
    """
    sets, notes, bad = [], [], []
    params: dict[str, object] = {}
    for t in targets:
        type_ = props.get(t.property, "text")
        pred = VALUE_CHECKS.get(type_, "true")
        if t.kind != "field" or t.rule == "sum" or pred == "true":
            continue
        bad_values = f"list_filter(in_{t.alias}, lambda x: NOT ({pred}))"
        params[f"m_{t.alias}"] = (
            f"{t.field} skipped: not a valid {type_} for property {t.property}: "
        )
        sets.append(f"in_{t.alias} = CASE WHEN len({bad_values}) > 0 THEN [] ELSE in_{t.alias} END")
        notes.append(f"CASE WHEN len({bad_values}) > 0 THEN $m_{t.alias} || {bad_values}[1] END")
        bad.append(f"len({bad_values}) > 0")
    if not sets:
        return []
    return [
        Statement(
            f"""
            UPDATE imp_plan SET {", ".join(sets)}, skipped = true,
                   reason = concat_ws('; ', {", ".join(notes)})
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
        reason = coalesce(nullif(concat_ws('; ', imp_plan.reason, nullif(n.note, '')), ''),
                          CASE WHEN NOT n.changed THEN 'values already current' END),
        skipped = imp_plan.skipped OR coalesce(n.note, '') <> ''
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


def spread_select(t: Target, props: Mapping[str, str], values: bool, bins: int) -> Statement:
    """(side, bin, count, start, step) of ``t``'s numeric values before and after; the step is
    1, 2 or 5 times a power of ten giving at most about ``bins`` bins."""
    new = f"SELECT profile_id, new_{t.alias} AS v FROM imp_new WHERE changed"
    params: dict[str, object] = {"bins": bins}
    if not values:  # a preview's plan keeps no values: the merge again, of this target alone
        again = merge_select((t,), props, "outcome IN ('CREATED', 'MODIFIED')", (t,))
        new = f"SELECT profile_id, new_{t.alias} AS v FROM ({again.sql}) WHERE changed"
        params.update(again.params)
    x = "try_cast(trim(x) AS DOUBLE)"
    sql = f"""
        WITH changed AS ({new}),
        raw AS (
            SELECT 'before' AS side, {x} AS v FROM (SELECT unnest({stored(t, props)}) AS x
                                                   FROM profiles p)
            UNION ALL
            SELECT 'after', {x} FROM (SELECT unnest({stored(t, props)}) AS x
                                      FROM profiles p ANTI JOIN changed USING (profile_id))
            UNION ALL
            SELECT 'after', {x} FROM (SELECT unnest(v) AS x FROM changed)
        ),
        vals AS (SELECT side, v FROM raw WHERE isfinite(v)),
        r AS (SELECT CASE WHEN max(v) > min(v) THEN (max(v) - min(v)) / $bins END AS raw,
                     min(v) AS lo FROM vals),
        m AS (SELECT lo, coalesce(pow(10, floor(log10(raw))), 1) AS mag,
                     coalesce(raw / pow(10, floor(log10(raw))), 1) AS norm FROM r),
        s AS (SELECT lo, mag * CASE WHEN norm <= 1 THEN 1 WHEN norm <= 2 THEN 2
                                    WHEN norm <= 5 THEN 5 ELSE 10 END AS step FROM m),
        g AS (SELECT floor(lo / step) * step AS start, step FROM s)
        SELECT side, floor((v - start) / step)::BIGINT AS b, count(*), any_value(start),
               any_value(step)
        FROM vals, g GROUP BY side, b ORDER BY b
        """
    return Statement(sql, params)
