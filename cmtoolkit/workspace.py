"""A workspace: the folder that holds one team's profile store, segments, connections and reports.

::

    workspace/
      profiles.duckdb    profiles, properties, interactions, segments (+ later: runs, sync state)
      segments.yaml      segment definitions (rules or static membership files)
      connections/       one YAML file per Campaign Monitor connection
      reports/           executed notebooks and their HTML

Nothing is created until the first write (or :meth:`Workspace.create`), so pointing at a wrong
folder by mistake leaves no litter. The store is only ever opened briefly (see
:mod:`cmtoolkit.profiles.store`), so a notebook and a scheduled batch job can share a workspace.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING

from cmtoolkit.connection.file import ensure_id, find_connection, iter_connections
from cmtoolkit.errors import ConfigurationError
from cmtoolkit.profiles.segments import Segments
from cmtoolkit.profiles.store import Store
from cmtoolkit.sync import ConnectionRunner, GoalContext, Progress
from cmtoolkit.sync.ledger_schema import LEDGER_MIGRATIONS

if TYPE_CHECKING:
    from cmtoolkit.campaign_monitor import CampaignMonitor
    from cmtoolkit.connection.model import Connection

SEGMENTS_TEMPLATE = """\
# Segment definitions: see DESIGN §3. Each key is a segment name, e.g.
# newsletter_optin:
#   all:
#     - {property: newsletter, equals: "yes"}
#     - {consented: email_marketing}
"""


class Workspace:
    """A workspace folder. ``lock_timeout`` (seconds) overrides ``$CMTOOLKIT_LOCK_TIMEOUT``."""

    def __init__(self, path: str | os.PathLike[str], *, lock_timeout: float | None = None) -> None:
        self.path = Path(path).expanduser()
        if self.path.exists() and not self.path.is_dir():
            raise ConfigurationError(
                f"workspace {self.path} is a file, not a folder; give --workspace the folder "
                "that holds profiles.duckdb, or a new folder name for Workspace.create() or "
                "`cmtoolkit profiles load` to start one"
            )
        self.lock_timeout = lock_timeout
        self._store: Store | None = None

    def __repr__(self) -> str:
        return f"Workspace({str(self.path)!r})"

    @classmethod
    def create(
        cls, path: str | os.PathLike[str], *, lock_timeout: float | None = None
    ) -> Workspace:
        """Create (or complete) the folder layout and the store; return the workspace."""
        ws = cls(path, lock_timeout=lock_timeout)
        ws.ensure()
        return ws

    @classmethod
    def open(cls, path: str | os.PathLike[str], *, lock_timeout: float | None = None) -> Workspace:
        """An existing workspace; :class:`ConfigurationError` when the folder is not one."""
        ws = cls(path, lock_timeout=lock_timeout)
        if not ws.path.is_dir():
            raise ConfigurationError(
                f"workspace {ws.path} does not exist; create it with Workspace.create() or "
                "load profiles into it (cmtoolkit profiles load FILE --workspace DIR)"
            )
        return ws

    def ensure(self) -> None:
        self.path.mkdir(parents=True, exist_ok=True)
        self.connections_dir.mkdir(exist_ok=True)
        self.reports_dir.mkdir(exist_ok=True)
        if not self.segments_path.exists():
            self.segments_path.write_text(SEGMENTS_TEMPLATE, encoding="utf-8")
        with self.store.connect(write=True):
            pass

    @property
    def database_path(self) -> Path:
        return self.path / "profiles.duckdb"

    @property
    def segments_path(self) -> Path:
        return self.path / "segments.yaml"

    @property
    def connections_dir(self) -> Path:
        return self.path / "connections"

    @property
    def reports_dir(self) -> Path:
        return self.path / "reports"

    @property
    def store(self) -> Store:
        """The profile store (``profiles.duckdb``); connections are opened per use."""
        if self._store is None:
            self._store = Store(
                self.database_path, migrations=LEDGER_MIGRATIONS, lock_timeout=self.lock_timeout
            )
        return self._store

    @property
    def segments(self) -> Segments:
        """Segment definitions from ``segments.yaml`` and their materialised membership."""
        return Segments(self.store, self.segments_path)

    def connection(
        self, name: str | Connection, *, client: CampaignMonitor | None = None
    ) -> ConnectionRunner:
        """A connection of this workspace by name, slug or file (or a model already loaded):
        status, preview, sync, history.

        ``client`` is a ready :class:`~cmtoolkit.campaign_monitor.CampaignMonitor`; by default
        one is built from the connection's credential reference on first use.
        """
        if not isinstance(name, str):
            return ConnectionRunner(self.store, self.segments, self.path, name, client=client)
        path = find_connection(self.path, name)
        model = ensure_id(path)  # first use writes the connection's id (DESIGN §4)
        return ConnectionRunner(
            self.store, self.segments, self.path, model, client=client, path=path
        )

    def context(
        self,
        connection: Connection,
        client: CampaignMonitor,
        *,
        full: bool = False,
        progress: Progress | None = None,
        charts: bool = False,
    ) -> GoalContext:
        """What a goal of ``connection`` runs on in this workspace (``charts``: see
        :class:`GoalContext`)."""
        return GoalContext(
            self.store,
            self.segments,
            self.path,
            connection,
            client,
            full=full,
            progress=progress,
            charts=charts,
        )

    def connection_names(self) -> list[str]:
        return [c.name for c in iter_connections(self.path)]

    # The two questions a connection's status asks of the profile side (cmtoolkit.connection).

    def properties(self) -> dict[str, str]:
        """Defined properties, name → type."""
        return self.store.properties()

    def segment_names(self) -> list[str]:
        """Segments defined in ``segments.yaml``."""
        return self.segments.names()

    def sample_values(self, prop: str, n: int) -> list[str]:
        """Sampled first values of ``prop`` (status checks a matching property's emails)."""
        return self.store.sample_values(prop, n)
