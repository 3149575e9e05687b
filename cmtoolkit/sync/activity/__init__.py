"""Email behaviour into the profile store (DESIGN §6a): an import's ``email_activity`` phase.

``read`` stages the client's campaign activity since the per-campaign cursors, ``match`` ties
each event to a profile through the import's email identifier (consent applies), ``write`` adds
the new events to ``email_events`` and moves the cursors, ``derive`` recomputes the derived
properties. :class:`EmailActivityPhase` runs them for the import goal: reading before the store
is locked, writing inside the import's one store transaction. Design record:
``docs/email_activity.md``.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime

import duckdb

from cmtoolkit.connection.activity import EmailActivity
from cmtoolkit.errors import ConfigurationError
from cmtoolkit.profiles.properties import defined_properties, resolve
from cmtoolkit.sync.activity.derive import derive_statements, fingerprint, property_types
from cmtoolkit.sync.activity.match import COUNTS_SQL, NEW_KEYS_TABLE, NEW_TABLE, match_statements
from cmtoolkit.sync.activity.read import ActivityRead, ActivitySource, load_cursors, read_activity
from cmtoolkit.sync.activity.write import write_statements
from cmtoolkit.sync.goal import DetailValue, GoalContext
from cmtoolkit.sync.statement import execute

__all__ = ["EmailActivityPhase", "activity_phase"]

#: DuckDB memory while the phase stages and writes (see EmailActivityPhase._capped)
MEMORY_LIMIT = "1GB"
DefineProperty = Callable[[duckdb.DuckDBPyConnection, str, str], bool]


class EmailActivityPhase:
    """One import run's email-activity phase."""

    def __init__(
        self, ctx: GoalContext, settings: EmailActivity, email_property: str, restore_limit: str
    ) -> None:
        self.ctx = ctx
        self.settings = settings
        self.email_property = email_property
        self.restore_limit = restore_limit
        self.connection_key = getattr(ctx.connection, "state_key", None) or ctx.connection.name
        self.now = datetime.now(UTC).replace(tzinfo=None, microsecond=0)
        self.read: ActivityRead | None = None

    @contextmanager
    def _capped(self, con: duckdb.DuckDBPyConnection) -> Iterator[None]:
        """DuckDB's memory capped at :data:`MEMORY_LIMIT` while the phase works (the import's
        own limit is higher): the staged contacts and events spill to its temp folder instead
        of growing the process; the import's limit (``restore_limit``, as the import set it:
        DuckDB's own text of the setting is rounded) comes back afterwards."""
        con.execute("SET memory_limit = $limit", {"limit": MEMORY_LIMIT})
        try:
            yield
        finally:
            con.execute("SET memory_limit = $limit", {"limit": self.restore_limit})

    def stage(self, con: duckdb.DuckDBPyConnection, attached: bool = False) -> ActivityRead:
        """Read Campaign Monitor into ``con``: before the store is attached for writing (run),
        or with it attached read-only as the default database (``attached``: preview)."""
        if attached:
            cursors = load_cursors(con, self.connection_key)
        else:
            with self.ctx.store.connect() as store:
                cursors = load_cursors(store, self.connection_key)
        source: ActivitySource = self.ctx.client  # type: ignore[assignment]
        client_id = self.ctx.connection.campaign_monitor.client_id
        if not client_id:
            raise ConfigurationError(
                "import.email_activity reads the client's campaigns: set campaign_monitor.client_id"
            )
        with self._capped(con):
            self.read = read_activity(
                source, client_id, self.settings, cursors, con, self.now, self.ctx.progress
            )
        return self.read

    def _match(self, con: duckdb.DuckDBPyConnection) -> dict[str, int]:
        objectives = tuple(self.ctx.connection.objectives or ())
        prop = resolve(defined_properties(con), self.email_property)
        execute(con, match_statements(prop, objectives))
        row = con.execute(COUNTS_SQL).fetchone() or (0, 0, 0, 0, 0)
        names = ("read", "matched", "unmatched", "ambiguous", "consent_mismatch")
        counts = {k: int(v or 0) for k, v in zip(names, row, strict=True)}
        (new,) = con.execute(f"SELECT count(*) FROM {NEW_KEYS_TABLE}").fetchone() or (0,)
        counts["new"] = int(new)
        counts["campaigns"] = len(self.read.campaigns) if self.read else 0
        return counts

    def preview_staged(self, con: duckdb.DuckDBPyConnection) -> dict[str, DetailValue]:
        """Read, then what a run would add (the store attached read-only); nothing written."""
        self.stage(con, attached=True)
        counts = self._match(con)
        by_campaign = con.execute(
            f"SELECT campaign, count(*) FROM {NEW_TABLE} GROUP BY campaign ORDER BY 2 DESC, 1"
        ).fetchall()
        return {
            "email_activity": counts,
            "email_activity_new": {str(c): int(n) for c, n in by_campaign},
        }

    def apply(
        self, con: duckdb.DuckDBPyConnection, define: DefineProperty
    ) -> dict[str, DetailValue]:
        """Inside the import's transaction: add the new events, move the cursors, derive."""
        with self._capped(con):
            return self._apply(con, define)

    def _apply(
        self, con: duckdb.DuckDBPyConnection, define: DefineProperty
    ) -> dict[str, DetailValue]:
        counts = self._match(con)
        key = fingerprint(self.settings.properties)
        row = con.execute(
            "SELECT max(read_at) FROM email_activity_state WHERE connection = $c"
            " AND campaign_id = '' AND event = $k",
            {"c": self.connection_key, "k": key},
        ).fetchone()
        last_run = None if self.ctx.full or row is None else row[0]
        execute(con, write_statements(self.connection_key))
        for prop, type_ in property_types(self.settings.properties):
            if define(con, prop, type_):
                last_run = None  # a new property: every profile with events gets a value
        updated = 0
        con.execute(
            "INSERT OR REPLACE INTO email_activity_state VALUES ($c, '', $k, $now, $now)",
            {"c": self.connection_key, "k": key, "now": self.now},
        )
        for statement in derive_statements(self.settings.properties, self.now, last_run):
            result = con.execute(statement.sql, dict(statement.params)).fetchone()
            if statement.sql.lstrip().startswith("UPDATE") and result:
                updated += int(result[0])
        counts["profiles_updated"] = updated  # profiles whose derived values changed
        return {"email_activity": counts}


def activity_phase(ctx: GoalContext, restore_limit: str) -> EmailActivityPhase | None:
    """The phase for ``ctx``'s import, or None when it reads no email activity;
    ``restore_limit`` is the import's DuckDB memory limit, set again after each step."""
    goal = ctx.connection.import_
    settings = getattr(goal, "email_activity", None) if goal is not None else None
    if goal is None or settings is None:
        return None
    email = next((i.property for i in goal.identifiers if i.field == "EmailAddress"), None)
    if email is None:
        raise ConfigurationError(
            "import.email_activity matches events by email address: add an identifier "
            "{field: EmailAddress, property: ...} to import.identifiers"
        )
    known = resolve(ctx.store.properties(), email)
    return EmailActivityPhase(ctx, settings, known or email, restore_limit)
