"""What an import remembers between runs (DESIGN §5.5–5.6), under the connection's id.

``import_state``: per list and subscriber (the normalised email), the delta hash last applied.
``import_sums``: per list, subscriber, field and property, the value last **summed**: a ``sum``
mapping adds an incoming value only when it differs from that one, so a value is summed exactly
once however the settings change (allow_create, mappings, states, lists, a rename) and with
``--full``. A new ``sum`` mapping has no record yet, so it sums each current value once.

Rows written before version 3 of the ledger are kept under the connection's *name* and recorded
no sums: the first run with an id moves them to the id (:func:`adopt_statements`), and a contact
whose hash is unchanged since then has its current values taken as already summed (no re-sum on
upgrade).

``import_leaver_cursors``: per list, the status date from which the next run reads the leavers
outside ``states`` (the API's ``date`` filter, DESIGN §5.6), less :data:`LEAVER_LAG`. It stops at
the earliest leaver not yet settled (read but neither applied nor unchanged, e.g. AMBIGUOUS), so
every leaver that could still change the store is read again; leavers older than it are settled:
re-reading them could only give UNCHANGED. Valid only for the settings it was taken under
(``spec.leaver_settings``); ``--full`` reads every leaver.
"""

from __future__ import annotations

from datetime import datetime, timedelta

import duckdb

from cmtoolkit.profiles.schema import table_exists
from cmtoolkit.sync.imports.spec import LEAVING_STATES, ImportSpec
from cmtoolkit.sync.statement import Statement

__all__ = [
    "adopt_statements",
    "last_sums_statements",
    "leaver_cursor_statements",
    "leaver_cursors",
    "leaver_statements",
    "plan_details",
    "state_statements",
    "sum_columns",
    "sums_statements",
]

#: Outcomes after which a contact's state is recorded (it was applied, or had nothing to apply).
APPLIED = "('CREATED', 'MODIFIED', 'UNCHANGED')"


#: How far before its cursor a list's leavers are read again: a leave can be recorded with a
#: status date earlier than the latest one already read (the overlap comes back UNCHANGED).
LEAVER_LAG = timedelta(days=1)


def leaver_cursors(con: duckdb.DuckDBPyConnection, spec: ImportSpec) -> dict[str, datetime]:
    """Per list of ``spec``, the status date its leavers are read from (none: read them all)."""
    if not table_exists(con, "import_leaver_cursors"):  # not yet migrated: read every leaver
        return {}
    rows = con.execute(
        """
        SELECT list_id, cursor FROM import_leaver_cursors
        WHERE connection = $connection AND settings = $settings AND list_id IN $lists
        """,
        {"connection": spec.state_key, "settings": spec.leaver_settings, "lists": spec.lists},
    ).fetchall()
    return {list_id: cursor - LEAVER_LAG for list_id, cursor in rows}


def leaver_read_statement() -> Statement:
    """imp_leavers_read: per list, the latest status date of the leavers read outside
    ``states`` (before those this connection never applied are dropped)."""
    return Statement(
        """
        CREATE OR REPLACE TEMP TABLE imp_leavers_read AS
        SELECT list_id, max(left_at) AS latest FROM imp_in
        WHERE left_at IS NOT NULL GROUP BY list_id
        """
    )


def leaver_cursor_statements(spec: ImportSpec) -> list[Statement]:
    """Each list whose leavers were read moves its cursor to their latest status date, or to
    the earliest leaver left unsettled (its state not recorded now: it must be read again).
    A list with no leaver read keeps its cursor."""
    if not spec.leaver_states:
        return []
    return [
        Statement(
            f"""
            CREATE OR REPLACE TEMP TABLE imp_cursors AS
            SELECT r.list_id, least(any_value(r.latest), min(p.left_at)) AS cursor
            FROM imp_leavers_read r
            LEFT JOIN imp_plan p
                   ON p.list_id = r.list_id AND p.left_at IS NOT NULL
                  AND NOT p.delta_hit AND p.outcome NOT IN {APPLIED}
            GROUP BY r.list_id
            """
        ),
        Statement(
            """
            DELETE FROM import_leaver_cursors WHERE connection = $connection
              AND list_id IN (SELECT list_id FROM imp_cursors)
            """,
            {"connection": spec.state_key},
        ),
        Statement(
            """
            INSERT INTO import_leaver_cursors (connection, list_id, settings, cursor, read_at)
            SELECT $connection, list_id, $settings, cursor, now() FROM imp_cursors
            """,
            {"connection": spec.state_key, "settings": spec.leaver_settings},
        ),
    ]


def _text(values: str) -> str:
    """The text a sum value is remembered as (several values joined; none: NULL)."""
    return f"nullif(array_to_string({values}, chr(31)), '')"


def adopt_statements(spec: ImportSpec) -> list[Statement]:
    """A real run first moves state kept under the connection's name to its id (an upgrade, or a
    connection used through the Python API before its file had an id)."""
    if spec.state_key == spec.connection:
        return []
    params = {"key": spec.state_key, "name": spec.connection}
    return [
        Statement(
            f"UPDATE {table} SET connection = $key WHERE connection = $name AND NOT EXISTS "
            f"(SELECT 1 FROM {table} WHERE connection = $key)",
            params,
        )
        for table in ("import_state", "import_sums")
    ]


def leaver_statements(spec: ImportSpec) -> list[Statement]:
    """Leavers read outside ``states`` matter only when this connection applied them from that
    list before (DESIGN §5.6: a subscriber who *left*); the others are dropped unseen."""
    if all(state in spec.states for state in LEAVING_STATES):
        return []  # every leaver is selected: nothing to drop
    return [
        Statement(
            """
            DELETE FROM imp_in WHERE leaving AND NOT selected AND cid NOT IN (
                SELECT c.cid FROM imp_in c JOIN import_state s
                  ON s.connection = $connection AND s.list_id = c.list_id
                 AND s.identifier = c.subscriber
                WHERE c.leaving AND NOT c.selected)
            """,
            {"connection": spec.state_key},
        )
    ]


def last_sums_statements(spec: ImportSpec) -> list[Statement]:
    """imp_last: per list and subscriber past the delta, the value each sum target last summed."""
    sums = spec.sum_targets
    if not sums:
        return []
    params: dict[str, object] = {"connection": spec.state_key}
    columns = []
    for t in sums:
        params[f"sf_{t.alias}"], params[f"sp_{t.alias}"] = t.field, t.property
        columns.append(
            f"max(value) FILTER (WHERE field = $sf_{t.alias} AND property = $sp_{t.alias}) "
            f"AS last_{t.alias}"
        )
    return [
        Statement(
            f"""
            CREATE OR REPLACE TEMP TABLE imp_last AS
            SELECT list_id, subscriber, {", ".join(columns)}
            FROM import_sums
            WHERE connection = $connection
              AND (list_id, subscriber) IN (
                  SELECT (c.list_id, c.subscriber) FROM imp_in c SEMI JOIN imp_todo USING (cid))
            GROUP BY list_id, subscriber
            """,
            params,
        )
    ]


def sum_columns(spec: ImportSpec, params: dict[str, object]) -> tuple[str, str]:
    """imp_plan's columns for each sum target, and the join they need.

    ``in_<a>``: the incoming value when it was not summed before (else none); ``dup_<a>``: it
    was; ``rec_<a>``: the value to remember as summed once the contact is applied (for a
    contact whose state predates version 3 and is unchanged: its current value).
    """
    sums = spec.sum_targets
    if not sums:
        return "", ""
    columns = []
    for t in sums:
        x, last = f"c.in_{t.alias}", f"l.last_{t.alias}"
        known = f"coalesce({last}, CASE WHEN c.legacy_same THEN {_text(x)} END)"
        live = "NOT c.delta_hit AND c.selected"
        same = f"len({x}) > 0 AND {_text(x)} IS NOT DISTINCT FROM {known}"
        columns.append(
            # not live (a leaver outside `states`, a delta hit): nothing to add, not NULL, which
            # the sum would read as a total of 0
            f", CASE WHEN {live} AND NOT ({same}) THEN {x} ELSE []::VARCHAR[] END AS in_{t.alias}"
            f", coalesce({live} AND {same}, false) AS dup_{t.alias}"
            f", CASE WHEN {live} AND len({x}) > 0 AND NOT ({same}) THEN {_text(x)}"
            f" WHEN c.legacy_same AND {last} IS NULL THEN {_text(x)} END AS rec_{t.alias}"
        )
    join = " LEFT JOIN imp_last l ON l.list_id = c.list_id AND l.subscriber = c.subscriber"
    return "".join(columns), join


def plan_details(con: duckdb.DuckDBPyConnection, spec: ImportSpec) -> dict[str, int]:
    """What a plan's counts do not say, for the preview, the status line and the report."""
    dups = " + ".join(f"dup_{t.alias}::INTEGER" for t in spec.sum_targets) or "0"
    row = con.execute(
        f"""
        SELECT coalesce(sum(CASE WHEN outcome IN {APPLIED} THEN {dups} END), 0),
               count_if(leaving AND NOT delta_hit AND outcome IN ('MODIFIED', 'UNCHANGED')
                        AND profile_id IS NOT NULL),
               count_if(skipped)
        FROM imp_plan
        """
    ).fetchall()[0]
    already, leavers, skipped = (int(v or 0) for v in row)  # no contacts: NULLs
    return {"already_summed": already, "leavers": leavers, "mapping_skipped": skipped}


def state_statements(spec: ImportSpec) -> list[Statement]:
    """The delta hashes of the contacts applied now replace theirs (and a pre-version-3 row of
    an unchanged contact is rewritten, its sums now recorded).

    import_state has no key index: an index makes a million-row upsert many times slower.
    """
    connection = {"connection": spec.state_key}
    return [
        Statement(
            f"""
            CREATE OR REPLACE TEMP TABLE imp_state AS
            SELECT list_id, subscriber, any_value(hash) AS hash
            FROM imp_plan
            WHERE subscriber IS NOT NULL
              AND ((outcome IN {APPLIED} AND NOT delta_hit) OR (delta_hit AND legacy_same))
            GROUP BY list_id, subscriber
            """
        ),
        Statement(
            """
            DELETE FROM import_state WHERE connection = $connection
              AND (list_id, identifier) IN (SELECT (list_id, subscriber) FROM imp_state)
            """,
            connection,
        ),
        Statement(
            """
            INSERT INTO import_state (connection, list_id, identifier, hash, applied_at,
                                      sums_recorded)
            SELECT $connection, list_id, subscriber, hash, now(), true FROM imp_state
            """,
            connection,
        ),
    ]


def sums_statements(spec: ImportSpec) -> list[Statement]:
    """The values summed now (or, for a pre-version-3 unchanged contact, before) are
    remembered. A sum the profile's value refused (not a number) is not: it was not summed."""
    sums = spec.sum_targets
    if not sums:
        return []
    params: dict[str, object] = {}
    parts = []
    for t in sums:
        params[f"sf_{t.alias}"], params[f"sp_{t.alias}"] = t.field, t.property
        parts.append(
            f"""
            SELECT p.list_id, p.subscriber, $sf_{t.alias} AS field, $sp_{t.alias} AS property,
                   p.rec_{t.alias} AS value
            FROM imp_plan p LEFT JOIN imp_new n USING (profile_id)
            WHERE p.rec_{t.alias} IS NOT NULL AND p.subscriber IS NOT NULL
              AND ((p.delta_hit AND p.legacy_same)
                   OR (NOT p.delta_hit AND p.outcome IN {APPLIED}
                       AND (p.legacy_same OR n.ok_{t.alias})))
            """
        )
    return [
        Statement(
            # One row per contact and sum target: a subscriber is read once per list.
            f"CREATE OR REPLACE TEMP TABLE imp_summed AS {' UNION ALL '.join(parts)}",
            params,
        ),
        Statement(
            """
            DELETE FROM import_sums WHERE connection = $connection
              AND (list_id, subscriber, field, property) IN
                  (SELECT (list_id, subscriber, field, property) FROM imp_summed)
            """,
            {"connection": spec.state_key},
        ),
        Statement(
            """
            INSERT INTO import_sums (connection, list_id, subscriber, field, property, value,
                                     summed_at)
            SELECT $connection, list_id, subscriber, field, property, value, now()
            FROM imp_summed
            """,
            {"connection": spec.state_key},
        ),
    ]
