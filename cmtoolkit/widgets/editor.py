"""The connection being edited: one current model that every widget reads and changes.

:class:`ConnectionEditor` is plain Python (no widget in it): it holds the current
:class:`~cmtoolkit.connection.model.Connection`, applies edits with :func:`dataclasses.replace`,
tells its observers about each change, saves the YAML, and answers what the views need — the
Campaign Monitor catalog (clients, lists, subscriber counts, custom fields, read once and cached),
the workspace's properties and segments, the status, and previews and runs of the *current*
(possibly unsaved) model. The widgets in this package are thin views over it, so everything here
is testable without a frontend.

No secret is ever held here: the client is built from the connection's credential reference
inside the kernel; DuckDB is only opened for the length of one question (DESIGN §2).
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

from cmtoolkit.campaign_monitor import (
    CampaignMonitor,
    ClientSummary,
    CustomField,
    ListStats,
    ListSummary,
)
from cmtoolkit.campaign_monitor.fields import STANDARD_FIELDS
from cmtoolkit.connection.client import client_for
from cmtoolkit.connection.file import (
    connection_path,
    find_connection,
    load_connection,
    new_connection_id,
    save_connection,
)
from cmtoolkit.connection.model import (
    Connection,
    ExportGoal,
    ImportGoal,
    TargetingGoal,
)
from cmtoolkit.connection.status import Problem, Status, connection_status
from cmtoolkit.credentials import CredentialStore
from cmtoolkit.errors import CmToolkitError, ConfigurationError, PermissionDenied
from cmtoolkit.profiles.quoting import quote_ident
from cmtoolkit.sync import ConnectionRunner, Progress, Run, preview, sync
from cmtoolkit.workspace import Workspace

log = logging.getLogger(__name__)

Observer = Callable[[Connection], None]


class Catalog:
    """What the Campaign Monitor account holds, read on demand and cached until :meth:`clear`.

    It also answers the status checks' client protocol (``clients``, ``lists``,
    ``custom_fields``), so a status after each edit costs no request once the lists are known.
    """

    def __init__(self, client: CampaignMonitor) -> None:
        self.client = client
        self._clients: list[ClientSummary] | None = None
        self._lists: dict[str, list[ListSummary]] = {}
        self._stats: dict[str, ListStats] = {}
        self._fields: dict[str, list[CustomField]] = {}

    def clear(self) -> None:
        self._clients = None
        self._lists.clear()
        self._stats.clear()
        self._fields.clear()

    def clients(self) -> list[ClientSummary]:
        if self._clients is None:
            self._clients = list(self.client.clients())
        return self._clients

    def lists(self, client_id: str) -> list[ListSummary]:
        if client_id not in self._lists:
            self._lists[client_id] = list(self.client.lists(client_id))
        return self._lists[client_id]

    def list_stats(self, list_id: str) -> ListStats:
        if list_id not in self._stats:
            self._stats[list_id] = self.client.list_stats(list_id)
        return self._stats[list_id]

    def custom_fields(self, list_id: str) -> list[CustomField]:
        if list_id not in self._fields:
            self._fields[list_id] = list(self.client.custom_fields(list_id))
        return self._fields[list_id]


class ConnectionEditor:
    """The current model of one connection file, with observers, status, preview and save."""

    def __init__(
        self,
        workspace: Workspace | str | os.PathLike[str],
        connection: Connection,
        *,
        path: str | os.PathLike[str] | None = None,
        client: CampaignMonitor | None = None,
        credentials: CredentialStore | None = None,
    ) -> None:
        self.workspace = workspace if isinstance(workspace, Workspace) else Workspace(workspace)
        self.path = Path(path) if path else connection_path(self.workspace.path, connection.name)
        self.credentials = credentials  # a CredentialStore, or None for the user's default
        self._model = connection
        self._saved: Connection | None = connection if self.path.exists() else None
        self._given_client = client
        self._client = client
        self._catalog: Catalog | None = None
        self._observers: list[Observer] = []
        # The status of one model, shared by the views that show it (status bar, rows, save).
        self._status: tuple[Connection, Status] | None = None

    @classmethod
    def open(
        cls,
        workspace: Workspace | str | os.PathLike[str],
        name: str,
        *,
        client: CampaignMonitor | None = None,
        credentials: CredentialStore | None = None,
    ) -> ConnectionEditor:
        """The connection ``name`` of ``workspace`` (a name, slug or file)."""
        ws = workspace if isinstance(workspace, Workspace) else Workspace.open(workspace)
        path = find_connection(ws.path, name)
        return cls(ws, load_connection(path), path=path, client=client, credentials=credentials)

    def __repr__(self) -> str:
        return f"ConnectionEditor({self._model.name!r}, path={str(self.path)!r})"

    # --- the model ------------------------------------------------------------------------------

    @property
    def model(self) -> Connection:
        return self._model

    @property
    def dirty(self) -> bool:
        """True when the model differs from the file as last loaded or saved."""
        return self._model != self._saved

    def observe(self, callback: Observer) -> None:
        self._observers.append(callback)

    def unobserve(self, callback: Observer) -> None:
        if callback in self._observers:
            self._observers.remove(callback)

    def set(self, model: Connection) -> None:
        """Replace the model; observers hear about it only when something changed."""
        if model == self._model:
            return
        old = self._model
        self._model = model
        if model.campaign_monitor.credential != old.campaign_monitor.credential:
            self.reset_client()
        self._notify()

    def _notify(self) -> None:
        for callback in list(self._observers):
            try:
                callback(self._model)
            except Exception:  # one broken view must not stop the others
                log.exception("a view failed to follow the connection change")

    def edit(self, **changes: Any) -> None:
        """Top-level fields, e.g. ``edit(enabled=False)``."""
        self.set(replace(self._model, **changes))

    def edit_campaign_monitor(self, **changes: Any) -> None:
        self.set(
            replace(self._model, campaign_monitor=replace(self._model.campaign_monitor, **changes))
        )

    def edit_import(self, **changes: Any) -> None:
        """Change the import goal (created empty when the connection has none)."""
        goal = self._model.import_ or ImportGoal(lists=(), identifiers=())
        self.set(replace(self._model, import_=replace(goal, **changes)))

    def edit_export(self, **changes: Any) -> None:
        goal = self._model.export or ExportGoal(lists=())
        self.set(replace(self._model, export=replace(goal, **changes)))

    def edit_targeting(self, **changes: Any) -> None:
        goal = self._model.targeting or TargetingGoal(lists=())
        self.set(replace(self._model, targeting=replace(goal, **changes)))

    @classmethod
    def new(
        cls,
        workspace: Workspace | str | os.PathLike[str],
        name: str,
        *,
        client: CampaignMonitor | None = None,
        credentials: CredentialStore | None = None,
    ) -> ConnectionEditor:
        """A connection not saved yet: a fresh id, switched off, the ``default`` credential."""
        ws = workspace if isinstance(workspace, Workspace) else Workspace.open(workspace)
        model = Connection(name=name, id=new_connection_id(), enabled=False)
        return cls(ws, model, client=client, credentials=credentials)

    def rename(self, name: str) -> None:
        """Name a new connection (and so its file); a saved one keeps its file's name."""
        if self.path.exists():
            raise ConfigurationError(
                f"{self.path.name} is saved: rename its file (and its name: line) to rename it"
            )
        if not name:
            raise ConfigurationError("a connection needs a name")
        path = connection_path(self.workspace.path, name)
        if path.exists():
            raise ConfigurationError(
                f"{path.name} exists already: open it (connection = {name!r}) or choose "
                "another name"
            )
        self.path = path
        self.edit(name=name)

    def save(self) -> Path:
        """Write the YAML (no secret can be in it: the model holds references only)."""
        save_connection(self._model, self.path)
        self._saved = self._model
        log.info("saved connection %r to %s", self._model.name, self.path)
        return self.path

    def reload(self) -> None:
        """Back to the file: drop unsaved edits."""
        model = load_connection(self.path)
        self._saved = model
        self.set(model)

    # --- Campaign Monitor -----------------------------------------------------------------------

    @property
    def client(self) -> CampaignMonitor:
        """The client for the credential reference; :class:`CredentialError` when unusable."""
        if self._client is None:
            self._client = client_for(self._model, store=self.credentials)
        return self._client

    @property
    def catalog(self) -> Catalog:
        if self._catalog is None:
            self._catalog = Catalog(self.client)
        return self._catalog

    def reset_client(self) -> None:
        """Forget the client and the catalog (after a login, a logout or a credential change)."""
        if self._client is not None and self._client is not self._given_client:
            close = getattr(self._client, "close", None)
            if close is not None:
                close()
        self._client = self._given_client if self._given_client is not None else None
        self._catalog = None
        self._status = None

    def recheck(self) -> None:
        """Forget what was read from Campaign Monitor (lists, fields) and the status."""
        if self._catalog is not None:
            self._catalog.clear()
        self._status = None

    def credentials_changed(self) -> None:
        """A login or logout happened: rebuild the client and tell the views."""
        self._given_client = None
        self.reset_client()
        self._notify()

    def clients(self) -> list[ClientSummary]:
        """The clients the credential can see (a client-level key sees only its own)."""
        try:
            return self.catalog.clients()
        except PermissionDenied:
            return []

    def lists(self) -> list[ListSummary]:
        client_id = self._model.campaign_monitor.client_id
        return self.catalog.lists(client_id) if client_id else []

    def list_names(self) -> dict[str, str]:
        return {x.list_id: x.name for x in self.lists()}

    def subscriber_count(self, list_id: str) -> int | None:
        try:
            return self.catalog.list_stats(list_id).total_active
        except CmToolkitError:
            return None

    def field_names(self, list_ids: tuple[str, ...]) -> list[str]:
        """Standard fields, then the custom fields of the given lists (first seen order)."""
        names = list(STANDARD_FIELDS)
        known = set(self.list_names())
        for list_id in list_ids:
            if list_id not in known:
                continue
            for f in self.catalog.custom_fields(list_id):
                if f.field_name not in names:
                    names.append(f.field_name)
        return names

    def field_types(self, list_ids: tuple[str, ...]) -> dict[str, str]:
        out: dict[str, str] = {}
        known = set(self.list_names())
        for list_id in list_ids:
            if list_id in known:
                for f in self.catalog.custom_fields(list_id):
                    out.setdefault(f.field_name, f.data_type)
        return out

    # --- the profile side -----------------------------------------------------------------------

    def properties(self) -> dict[str, str]:
        return self.workspace.properties() if self.workspace.database_path.exists() else {}

    def people(self, profile_ids: list[str]) -> dict[str, tuple[str, str]]:
        """Each stored profile's (identifier, name): the first import identifier's property
        (else ``email``) and ``full_name`` or ``name``, so a sample row names someone."""
        props = self.properties()
        imp = self._model.import_
        ident = imp.identifiers[0].property if imp and imp.identifiers else "email"
        name = next((p for p in ("full_name", "name") if p in props), None)
        if not profile_ids or ident not in props:
            return {}
        name_sql = f"{quote_ident(name)}[1]" if name else "NULL"
        sql = (
            f"SELECT profile_id, {quote_ident(ident)}[1], {name_sql} FROM profiles "
            "WHERE profile_id IN (SELECT unnest(?::VARCHAR[]))"
        )
        with self.workspace.store.connect() as con:
            rows = con.execute(sql, [profile_ids]).fetchall()
        return {str(pid): (str(who or ""), str(n or "")) for pid, who, n in rows}

    def segment_sizes(self) -> dict[str, int | None]:
        """Each defined segment's size at its last refresh (None: never refreshed)."""
        if not self.workspace.database_path.exists():
            return dict.fromkeys(self.segment_names())
        return {info.name: info.size for info in self.workspace.segments.list()}

    def segment_names(self) -> list[str]:
        return self.workspace.segment_names()

    # --- status, preview, run -------------------------------------------------------------------

    def status(self) -> Status:
        """The connection status of the current model, live against the catalog and the store
        (computed once per model; :meth:`recheck` forgets it)."""
        if self._status is not None and self._status[0] is self._model:
            return self._status[1]
        status = self._compute_status()
        self._status = (self._model, status)
        return status

    def _compute_status(self) -> Status:
        try:
            catalog = self.catalog
        except CmToolkitError as exc:
            status = connection_status(self._model, store=self.workspace)
            status.errors.insert(0, Problem("campaign_monitor.credential", str(exc)))
            for goal in ("import", "export", "targeting"):
                setattr(status, f"{goal}_ready", False)
            return status
        return connection_status(self._model, client=catalog, store=self.workspace)

    def runner(self) -> ConnectionRunner:
        """A :class:`~cmtoolkit.sync.ConnectionRunner` over the current model."""
        return self.workspace.connection(self._model, client=self.client)

    def preview(self, goal: str, *, full: bool = False, progress: Progress | None = None) -> Run:
        """A dry run, with what the notebook's charts draw."""
        ctx = self.workspace.context(
            self._model, self.client, full=full, progress=progress, charts=True
        )
        return preview(ctx, goal)

    def sync(
        self,
        goal: str,
        *,
        full: bool = False,
        run_id: str | None = None,
        progress: Progress | None = None,
    ) -> Run:
        """A real run of one goal; a failure comes back as a FAILED result (and is recorded).

        ``run_id`` continues the run ``cmtoolkit run`` recorded for this notebook.
        """
        ctx = self.workspace.context(self._model, self.client, full=full, progress=progress)
        return sync(ctx, goal, raise_on_failure=False, run_id=run_id)

    def history(self, limit: int = 100) -> list[Run]:
        """The connection's runs, newest first (no client needed)."""
        return self.workspace.connection(self._model).history(limit)
