"""Viewed interactions: ``interactions(profile_id, interaction, viewed_at)``.

Loads take a CSV, Parquet file or frame with exactly those columns (extra columns are an error, so
a wrong file is not half-understood). Loading is idempotent: a row already stored (same profile,
interaction and time) is not added again. Interactions of unknown profiles are kept: profiles may
be loaded after their interactions.
"""

from __future__ import annotations

import duckdb

from cmtoolkit.errors import CmToolkitError, LoadError
from cmtoolkit.profiles.sources import (
    MAX_REPORTED,
    ROW,
    SRC,
    Source,
    drop_staged,
    load_error,
    stage,
)

COLUMNS = ("profile_id", "interaction", "viewed_at")

#: Every profile's distinct interaction names, sorted (what an export sends as ``interactions``).
INTERACTION_NAMES_SQL = (
    "SELECT profile_id, list(DISTINCT interaction ORDER BY interaction) AS interactions"
    " FROM interactions GROUP BY profile_id"
)


def load_interactions(con: duckdb.DuckDBPyConnection, source: Source) -> int:
    """Append the source's interactions; returns rows added. Run inside a transaction."""
    try:
        staged = stage(con, source)
        columns = [c for c in con.sql(f"SELECT * FROM {SRC}").columns if c != ROW]
        if sorted(columns) != sorted(COLUMNS):
            raise load_error(
                staged.where,
                staged.unit,
                [(None, f"columns must be {', '.join(COLUMNS)}; found {', '.join(columns)}")],
            )
        bad = con.execute(
            f"SELECT {ROW}, CASE"
            " WHEN profile_id IS NULL OR trim(profile_id::VARCHAR) = '' THEN 'empty profile_id'"
            " WHEN interaction IS NULL OR trim(interaction::VARCHAR) = '' THEN 'empty interaction'"
            " ELSE 'viewed_at ' || coalesce('''' || viewed_at::VARCHAR || '''', 'is empty')"
            "   || ' is not a date/time' END"
            f" FROM {SRC} WHERE profile_id IS NULL OR trim(profile_id::VARCHAR) = ''"
            " OR interaction IS NULL OR trim(interaction::VARCHAR) = ''"
            " OR TRY_CAST(viewed_at AS TIMESTAMP) IS NULL"
            f" ORDER BY {ROW} LIMIT {MAX_REPORTED}"
        ).fetchall()
        if bad:
            raise load_error(staged.where, staged.unit, [(int(r), m) for r, m in bad])
        before = con.execute("SELECT count(*) FROM interactions").fetchall()[0][0]
        con.execute(
            "INSERT INTO interactions (profile_id, interaction, viewed_at)"
            " SELECT DISTINCT profile_id::VARCHAR, interaction::VARCHAR,"
            f" CAST(viewed_at AS TIMESTAMP) FROM {SRC}"
            " EXCEPT SELECT profile_id, interaction, viewed_at FROM interactions"
        )
        after = con.execute("SELECT count(*) FROM interactions").fetchall()[0][0]
        return int(after - before)
    except CmToolkitError:
        raise
    except duckdb.Error as exc:
        raise LoadError(f"interactions: {exc}", problems=[(None, str(exc))]) from exc
    finally:
        drop_staged(con)


def interaction_names(con: duckdb.DuckDBPyConnection, profile_id: str) -> list[str]:
    """The distinct interaction names a profile viewed, sorted."""
    rows = con.execute(
        "SELECT DISTINCT interaction FROM interactions WHERE profile_id = ? ORDER BY 1",
        [profile_id],
    ).fetchall()
    return [r[0] for r in rows]
