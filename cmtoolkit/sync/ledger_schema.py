"""The run ledger's tables (runs, run_rows, import_state, export_state, ...), kept in the profile
store's file and handed to :class:`~cmtoolkit.profiles.store.Store` as its migration 2.

The statements are the ones every existing workspace recorded as version 2: never edit them;
append a migration with the next free version number instead (see docs/profiles.md).
"""

from __future__ import annotations

from cmtoolkit.profiles.schema import Migration

__all__ = ["LEDGER_MIGRATIONS"]

LEDGER_MIGRATIONS: tuple[Migration, ...] = (
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
    Migration(
        3,
        "import state keyed by connection id, the values each connection summed",
        (
            # NULL in rows written before version 3: they recorded no sums, so the first run
            # after the upgrade takes a contact's unchanged values as already summed (no re-sum
            # on upgrade). Their connection column still holds the name until that run moves
            # them to the connection's id (cmtoolkit.sync.imports.state).
            "ALTER TABLE import_state ADD COLUMN sums_recorded BOOLEAN",
            """CREATE TABLE import_sums (
                connection VARCHAR NOT NULL,
                list_id VARCHAR NOT NULL,
                subscriber VARCHAR NOT NULL,
                field VARCHAR NOT NULL,
                property VARCHAR NOT NULL,
                value VARCHAR NOT NULL,
                summed_at TIMESTAMP NOT NULL
            )""",
        ),
    ),
    Migration(
        4,
        "refusals an export or targeting run saw, remembered (cmtoolkit.sync.exports)",
        (
            """CREATE TABLE export_suppressions (
                connection VARCHAR NOT NULL,
                goal VARCHAR NOT NULL,
                list_id VARCHAR NOT NULL,
                email VARCHAR NOT NULL,
                code INTEGER NOT NULL,
                reason VARCHAR,
                seen_at TIMESTAMP NOT NULL,
                PRIMARY KEY (connection, goal, list_id, email)
            )""",
        ),
    ),
    Migration(
        5,
        "email behaviour: campaign events per profile and per-campaign read cursors (DESIGN §6a)",
        (
            # No PRIMARY KEY: measured on 750,000 events, an ART key over the event made the
            # insert 10x slower (8.8 s vs 0.85 s). A run adds only events not already stored (an
            # anti-join over the whole event, cmtoolkit.sync.activity.match) in the same
            # transaction that moves its cursors, so neither the lag window's overlap nor a
            # re-run after a kill can store an event twice.
            """CREATE TABLE email_events (
                profile_id VARCHAR NOT NULL,
                campaign_id VARCHAR NOT NULL,
                campaign VARCHAR NOT NULL,
                event VARCHAR NOT NULL,
                "at" TIMESTAMP NOT NULL,
                detail VARCHAR NOT NULL DEFAULT ''
            )""",
            """CREATE TABLE email_activity_state (
                connection VARCHAR NOT NULL,
                campaign_id VARCHAR NOT NULL,
                event VARCHAR NOT NULL,
                cursor TIMESTAMP NOT NULL,
                read_at TIMESTAMP NOT NULL,
                PRIMARY KEY (connection, campaign_id, event)
            )""",
        ),
    ),
    Migration(
        6,
        "per connection and list, the status date from which an import reads leavers (DESIGN §5.6)",
        (
            # settings: what the cursor is valid for (spec.leaver_settings); another value means
            # the leavers are read in full again.
            """CREATE TABLE import_leaver_cursors (
                connection VARCHAR NOT NULL,
                list_id VARCHAR NOT NULL,
                settings VARCHAR NOT NULL,
                cursor TIMESTAMP NOT NULL,
                read_at TIMESTAMP NOT NULL,
                PRIMARY KEY (connection, list_id)
            )""",
        ),
    ),
)
