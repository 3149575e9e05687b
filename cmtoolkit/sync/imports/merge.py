"""The four merge rules (``set``, ``set_if_empty``, ``add``, ``sum``) as SQL over ``imp_plan``:
per affected profile its new value of every target, whether it changes, and its sum notes."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from cmtoolkit.profiles.quoting import quote_ident
from cmtoolkit.sync.imports.spec import Target
from cmtoolkit.sync.statement import Statement

_SUM = "try_cast(trim(x) AS DECIMAL(38, 9))"

#: Lists of 0 or 1 value (nearly all) skip the lambda.
ORDERED_DISTINCT = Statement(
    "CREATE OR REPLACE TEMP MACRO ordered_distinct(l) AS CASE WHEN len(l) <= 1 THEN l "
    "ELSE list_filter(l, lambda x, i: list_position(l, x) = i) END"
)


def stored(t: Target, props: Mapping[str, str]) -> str:
    """SQL of the values ``profiles AS p`` holds for ``t``'s property ([] before it exists)."""
    if t.property in props:
        return f"coalesce(p.{quote_ident(t.property)}, [])"
    return "[]::VARCHAR[]"


def merge_statements(
    targets: Sequence[Target], props: Mapping[str, str], keep: Sequence[Target]
) -> list[Statement]:
    """imp_new: per affected profile whether it changes, its sum notes and its new value of every
    target in ``keep``.

    A run keeps every target's values; a preview only those consent needs, as it counts
    changes and :meth:`ImportPlan.samples` recomputes the values of its few profiles.
    """
    if not targets:
        return [
            Statement(
                "CREATE OR REPLACE TEMP TABLE imp_new AS SELECT NULL AS profile_id, "
                "false AS is_new, false AS changed, NULL AS note WHERE false"
            )
        ]
    multi = Statement(
        """
        CREATE OR REPLACE TEMP TABLE imp_multi AS
        SELECT profile_id FROM imp_plan WHERE outcome IS NULL
        GROUP BY profile_id HAVING count(*) > 1
        """
    )
    merged = merge_select(targets, props, "outcome IS NULL", keep)
    return [
        multi,
        Statement(f"CREATE OR REPLACE TEMP TABLE imp_new AS {merged.sql}", merged.params),
    ]


def merge_select(
    targets: Sequence[Target], props: Mapping[str, str], contacts: str, keep: Sequence[Target]
) -> Statement:
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

    def outs(t: Target) -> str:
        """A list-names target also takes away the lists its contacts left."""
        if t.kind != "list_names":
            return ""
        col = f"out_{t.alias}"
        return f", flatten(list({col} ORDER BY list_index, cid)) AS {col}"

    ins = ", ".join(
        f"in_{t.alias}" + (f", out_{t.alias}" if t.kind == "list_names" else "") for t in targets
    )
    merged = f"""
        SELECT profile_id, is_new, {ins}
        FROM imp_plan ANTI JOIN imp_multi USING (profile_id) WHERE {contacts}
        UNION ALL
        SELECT profile_id, bool_or(is_new) AS is_new,
               {", ".join(f"{agg(t)} AS in_{t.alias}{outs(t)}" for t in targets)}
        FROM imp_plan SEMI JOIN imp_multi USING (profile_id) WHERE {contacts}
        GROUP BY profile_id
        """

    def old(t: Target, created: bool) -> str:
        return "[]::VARCHAR[]" if created else stored(t, props)

    def new(t: Target) -> str:
        a, o = f"a.in_{t.alias}", f"old_{t.alias}"
        if t.rule == "set":
            return f"CASE WHEN len({a}) > 0 THEN ordered_distinct({a}) ELSE {o} END"
        if t.rule == "set_if_empty":
            return (
                f"CASE WHEN len({o}) = 0 AND len({a}) > 0 THEN ordered_distinct({a}) ELSE {o} END"
            )
        if t.kind == "list_names":  # lists left are taken away, unless joined again elsewhere
            gone = f"list_filter(a.out_{t.alias}, lambda x: NOT list_contains({a}, x))"
            kept = f"list_filter({o}, lambda x: NOT list_contains({gone}, x))"
            new = f"list_filter(ordered_distinct({a}), lambda x: NOT list_contains({kept}, x))"
            return (
                f"CASE WHEN len({a}) > 0 OR len(a.out_{t.alias}) > 0 "
                f"THEN list_concat({kept}, {new}) ELSE {o} END"
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

    sums = [t for t in targets if t.rule == "sum"]
    sum_ok = "".join(
        f", len(old_{t.alias}) <= 1 AND list_bool_and(list_transform("
        f"list_concat(old_{t.alias}, a.in_{t.alias}), lambda x: {_SUM} IS NOT NULL)) "
        f"AS sum_ok_{t.alias}"
        for t in sums
    )
    notes = [
        f"CASE WHEN len(a.in_{t.alias}) > 0 AND NOT sum_ok_{t.alias} THEN $n_{t.alias} END"
        for t in sums
    ]
    params = {
        f"n_{t.alias}": f"sum into {t.property} skipped: a value is not a single number"
        for t in sums
    }
    changed = " OR ".join(f"new_{t.alias} IS DISTINCT FROM old_{t.alias}" for t in targets)
    kept = "".join(f", new_{t.alias}" for t in keep) + "".join(f", ok_{t.alias}" for t in sums)
    oks = "".join(f"coalesce(sum_ok_{t.alias}, false) AS ok_{t.alias}, " for t in sums)

    def select(created: bool) -> str:
        """The created profiles or the existing ones: a created one has no old values to read
        (joining it to the store cost as much as joining an existing one) and changes."""
        olds = ", ".join(f"{old(t, created)} AS old_{t.alias}" for t in targets)
        join = "" if created else "LEFT JOIN profiles p USING (profile_id)"
        # Old values are not kept: a preview's sample reads them back for its few profiles.
        return f"""
            SELECT profile_id, is_new{kept},
                   {"true" if created else f"is_new OR {changed}"} AS changed, note
            FROM (
                SELECT a.profile_id, a.is_new,
                       {", ".join(f"{new(t)} AS new_{t.alias}" for t in targets)},
                       {oks}
                       {", ".join(f"old_{t.alias}" for t in targets)},
                       {f"concat_ws('; ', {', '.join(notes)})" if notes else "NULL"} AS note
                FROM (SELECT a.*, {olds}{sum_ok} FROM ({merged}) a {join}
                      WHERE {"" if created else "NOT "}a.is_new) a
            )
            """

    return Statement(f"{select(False)} UNION ALL {select(True)}", params)
