"""The store's schema as an ordered list of migrations, and the code that applies them.

``schema_version`` has one row per applied migration; the store's version is the highest. On every
write-open, :func:`migrate` applies the migrations above it, each in its own transaction, so a
store created by an older toolkit catches up and one made by a newer toolkit is refused
(:class:`SchemaError`) instead of being damaged.

To change the schema, **append** a :class:`Migration` to :data:`MIGRATIONS` with the next version
number (never edit or reorder a released one)::

    MIGRATIONS.append(  # in this module, after the existing entries
        Migration(2, "run ledger", (
            "CREATE TABLE runs (run_id VARCHAR NOT NULL, connection VARCHAR, ...)",
        ))
    )

A step is either a SQL string or a callable ``step(con)`` for work SQL alone cannot express.
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
    Migration(
        2,
        "run ledger and sync state (cmtoolkit.sync)",
        (
            """CREATE TABLE runs (
                run_id VARCHAR PRIMARY KEY,
                connection VARCHAR NOT NULL,
                goal VARCHAR NOT NULL,
                full_run BOOLEAN NOT NULL DEFAULT false,
                started_at TIMESTAMP NOT NULL,
                ended_at TIMESTAMP,
                state VARCHAR NOT NULL,
                counts VARCHAR,
                error VARCHAR,
                pid INTEGER
            )""",
            """CREATE TABLE run_rows (
                run_id VARCHAR NOT NULL,
                seq BIGINT NOT NULL,
                list_id VARCHAR,
                email VARCHAR,
                identifier VARCHAR,
                profile_id VARCHAR,
                outcome VARCHAR NOT NULL,
                reason VARCHAR
            )""",
            """CREATE TABLE import_state (
                connection VARCHAR NOT NULL,
                list_id VARCHAR NOT NULL,
                identifier VARCHAR NOT NULL,
                hash VARCHAR NOT NULL,
                applied_at TIMESTAMP NOT NULL
            )""",
            """CREATE TABLE export_state (
                connection VARCHAR NOT NULL,
                goal VARCHAR NOT NULL,
                list_id VARCHAR NOT NULL,
                profile_id VARCHAR NOT NULL,
                email VARCHAR NOT NULL,
                hash VARCHAR NOT NULL,
                exported_at TIMESTAMP NOT NULL,
                PRIMARY KEY (connection, goal, list_id, profile_id)
            )""",
        ),
    ),
]


def latest_version() -> int:
    return MIGRATIONS[-1].version if MIGRATIONS else 0


def current_version(con: duckdb.DuckDBPyConnection) -> int:
    """The store's schema version; 0 for an empty database."""
    exists = con.execute(
        "SELECT count(*) FROM duckdb_tables() WHERE table_name = 'schema_version'"
        " AND database_name = current_database() AND schema_name = 'main'"
    ).fetchall()[0][0]
    if not exists:
        return 0
    return int(con.execute("SELECT coalesce(max(version), 0) FROM schema_version").fetchall()[0][0])


def check_version(version: int, where: str) -> None:
    if version > latest_version():
        raise SchemaError(
            f"{where} has schema version {version} but this cmtoolkit knows up to "
            f"{latest_version()}; upgrade cmtoolkit to use this workspace"
        )


def migrate(con: duckdb.DuckDBPyConnection, where: str = "the store") -> int:
    """Apply the pending migrations; return the resulting version."""
    version = current_version(con)
    check_version(version, where)
    if version == 0:
        con.execute(
            "CREATE TABLE IF NOT EXISTS schema_version (version INTEGER PRIMARY KEY,"
            " description VARCHAR NOT NULL, applied_at TIMESTAMP NOT NULL DEFAULT now())"
        )
    versions = [m.version for m in MIGRATIONS]
    if versions != sorted(set(versions)):
        raise SchemaError(f"migrations are not in increasing version order: {versions}")
    for migration in MIGRATIONS:
        if migration.version <= version:
            continue
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
        version = migration.version
    return version
