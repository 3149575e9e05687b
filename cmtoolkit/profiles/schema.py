"""The store's schema as an ordered list of migrations, and the code that applies them.

``schema_version`` has one row per applied migration. On every write-open :func:`migrate` applies
the known migrations not yet recorded, each in its own transaction; a store holding a version this
code does not know (made by a newer toolkit) is refused with :class:`SchemaError` instead of being
damaged. Tables of higher packages kept in the same file (the sync ledger) come as migrations the
:class:`~cmtoolkit.profiles.store.Store` is given, in the one version sequence. How to add a
migration: docs/profiles.md.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import duckdb

from cmtoolkit.errors import SchemaError

Step = str | Callable[[duckdb.DuckDBPyConnection], None]


@dataclass(frozen=True)
class Migration:
    version: int
    description: str
    steps: Sequence[Step]


MIGRATIONS: list[Migration] = [
    Migration(
        1,
        "profiles, property definitions, interactions, segments",
        (
            """CREATE TABLE property_definitions (
                name VARCHAR PRIMARY KEY,
                type VARCHAR NOT NULL
                    CHECK (type IN ('text', 'number', 'date', 'datetime', 'email', 'boolean')),
                created_at TIMESTAMP NOT NULL DEFAULT now()
            )""",
            # No PRIMARY KEY on profile_id: measured on 1M rows, an ART index made the bulk insert
            # 1.5x slower and MERGE/UPDATE of existing rows ~90x slower (134 s vs 1.5 s). The
            # loaders enforce uniqueness instead (duplicate ids in a load are a LoadError, and
            # every write is an anti-join or MERGE on profile_id).
            """CREATE TABLE profiles (
                profile_id VARCHAR NOT NULL,
                created_at TIMESTAMP NOT NULL,
                updated_at TIMESTAMP NOT NULL,
                consented_objectives VARCHAR[],
                refused_objectives VARCHAR[]
            )""",
            """INSERT INTO property_definitions (name, type) VALUES
                ('consented_objectives', 'text'), ('refused_objectives', 'text')""",
            """CREATE TABLE interactions (
                profile_id VARCHAR NOT NULL,
                interaction VARCHAR NOT NULL,
                viewed_at TIMESTAMP
            )""",
            """CREATE TABLE segments (
                name VARCHAR PRIMARY KEY,
                definition_hash VARCHAR NOT NULL,
                size BIGINT NOT NULL,
                refreshed_at TIMESTAMP NOT NULL
            )""",
            "CREATE TABLE segment_members (segment VARCHAR NOT NULL, profile_id VARCHAR NOT NULL)",
        ),
    ),
]


def latest_version(migrations: Sequence[Migration] | None = None) -> int:
    """The highest version of ``migrations`` (the profile store's own by default)."""
    known = MIGRATIONS if migrations is None else migrations
    return max((m.version for m in known), default=0)


def current_version(con: duckdb.DuckDBPyConnection) -> int:
    """The store's schema version; 0 for an empty database."""
    return max(applied_versions(con), default=0)


def table_exists(con: duckdb.DuckDBPyConnection, name: str) -> bool:
    """Whether the connection's default database has table ``name`` (an older store may not:
    its migrations run on the next write-open)."""
    found = con.execute(
        "SELECT count(*) FROM duckdb_tables() WHERE table_name = $name"
        " AND database_name = current_database() AND schema_name = 'main'",
        {"name": name},
    ).fetchall()
    return bool(found[0][0])


def applied_versions(con: duckdb.DuckDBPyConnection) -> set[int]:
    """The versions recorded in ``schema_version`` (none for an empty database)."""
    if not table_exists(con, "schema_version"):
        return set()
    return {int(v) for (v,) in con.execute("SELECT version FROM schema_version").fetchall()}


def check_version(version: int, where: str, migrations: Sequence[Migration] | None = None) -> None:
    latest = latest_version(migrations)
    if version > latest:
        raise SchemaError(
            f"{where} has schema version {version} but this cmtoolkit knows up to "
            f"{latest}; upgrade cmtoolkit to use this workspace"
        )


def pending(applied: set[int], migrations: Sequence[Migration] | None = None) -> list[Migration]:
    """The known migrations not in ``applied`` (see :func:`applied_versions`), in version order."""
    known = MIGRATIONS if migrations is None else migrations
    return sorted((m for m in known if m.version not in applied), key=lambda m: m.version)


def migrate(
    con: duckdb.DuckDBPyConnection,
    where: str = "the store",
    migrations: Sequence[Migration] | None = None,
) -> int:
    """Apply the pending migrations; return the resulting version."""
    known = MIGRATIONS if migrations is None else migrations
    applied = applied_versions(con)
    check_version(max(applied, default=0), where, known)
    versions = [m.version for m in known]
    if versions != sorted(set(versions)):
        raise SchemaError(f"migrations are not in increasing version order: {versions}")
    if not applied:
        con.execute(
            "CREATE TABLE IF NOT EXISTS schema_version (version INTEGER PRIMARY KEY,"
            " description VARCHAR NOT NULL, applied_at TIMESTAMP NOT NULL DEFAULT now())"
        )
    for migration in pending(applied, known):
        con.begin()
        try:
            for step in migration.steps:
                if isinstance(step, str):
                    con.execute(step)
                else:
                    step(con)
            con.execute(
                "INSERT INTO schema_version (version, description) VALUES (?, ?)",
                [migration.version, migration.description],
            )
            con.commit()
        except BaseException:
            con.rollback()
            raise
        applied.add(migration.version)
    return max(applied, default=0)
