"""Running a connection's goals: the goal registry, the run lock, the ledger record, failures.

Goals implement :class:`~cmtoolkit.sync.goal.Goal`; this module wraps them with what every goal
shares: one run per connection at a time, the run recorded before any work, a failure recorded
with its error, and the result as one :class:`~cmtoolkit.sync.run.Run`.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from cmtoolkit.connection.client import client_for
from cmtoolkit.connection.file import duplicate_id_problem
from cmtoolkit.connection.status import Problem, Status, connection_status
from cmtoolkit.errors import CmToolkitError, ConfigurationError
from cmtoolkit.sync import ledger
from cmtoolkit.sync.exports import ExportGoal, TargetingGoal
from cmtoolkit.sync.goal import Goal, GoalContext, GoalName, Progress
from cmtoolkit.sync.imports import ImportGoal
from cmtoolkit.sync.locking import RunLock
from cmtoolkit.sync.run import Run, RunState, utc_now

if TYPE_CHECKING:
    from cmtoolkit.campaign_monitor import CampaignMonitor
    from cmtoolkit.connection.model import Connection
    from cmtoolkit.profiles.segments import Segments
    from cmtoolkit.profiles.store import Store

log = logging.getLogger("cmtoolkit.sync")

#: Every goal, in the order ``--goal all`` runs them.
GOALS: dict[GoalName, Goal] = {g.name: g for g in (ImportGoal(), ExportGoal(), TargetingGoal())}


def configured_goals(connection: Connection) -> list[GoalName]:
    return [name for name, goal in GOALS.items() if goal.configured(connection)]


def resolve_goals(connection: Connection, goal: str) -> list[GoalName]:
    """``goal`` as a list of goals to run; ``all`` is every configured goal, in order."""
    configured = configured_goals(connection)
    if goal == "all":
        if not configured:
            raise ConfigurationError(
                f"connection {connection.name!r} has no goal; add import, export or targeting"
            )
        return configured
    if goal not in GOALS:
        raise ConfigurationError(f"unknown goal {goal!r}; use one of {', '.join(GOALS)} or all")
    if goal not in configured:
        raise ConfigurationError(
            f"connection {connection.name!r} has no {goal} goal; add an '{goal}:' section to "
            "its connection file"
        )
    return [GoalName(goal)]


class NotReady(ConfigurationError):
    """The readiness gate refused a connection (DESIGN §7): its status has errors, or it is
    disabled and the run was not forced. The CLI exits 2 with this message."""


def check_ready(
    connection: Connection, status: Status, *, force: bool = False, dry_run: bool = False
) -> None:
    """The one readiness gate of ``sync``, ``run``, previews, the widgets and the Python API.

    A connection whose status has errors is refused, the errors listed: a run on it would do
    harm (a typo'd identifier creates a profile per contact, a ``sum`` into text corrupts). A
    disabled one (``enabled: false``) is refused unless ``force``: its owner switched it off. A
    dry run writes nothing, so a disabled connection may be previewed.
    """
    name = connection.name
    if not connection.enabled and not force and not dry_run:
        raise NotReady(
            f"connection {name!r} is disabled (enabled: false): set 'enabled: true' in its file, "
            "or pass --force (force=True) to run it this once"
        )
    if status.errors:
        listed = "\n".join(f"  - {p}" for p in status.errors)
        raise NotReady(
            f"connection {name!r} is not ready: its status has "
            f"{len(status.errors)} error{'s' if len(status.errors) != 1 else ''}; fix "
            f"{'them' if len(status.errors) != 1 else 'it'} in the connection file "
            f"(see 'cmtoolkit status {name}'):\n{listed}"
        )


def preview(ctx: GoalContext, goal: str) -> Run:
    """The dry run: the real run's plan; nothing written to the store or Campaign Monitor."""
    started = utc_now()
    out = GOALS[GoalName(goal)].preview(ctx)
    return Run(
        connection=ctx.connection.name,
        goal=str(goal),
        state=RunState.PREVIEW,
        counts=out.counts,
        started_at=started,
        ended_at=utc_now(),
        full=ctx.full,
        dry_run=True,
        details=out.details,
        samples=out.samples,
        rows=out.rows,
    )


def sync(
    ctx: GoalContext, goal: str, *, raise_on_failure: bool = True, run_id: str | None = None
) -> Run:
    """A real run of one goal: run lock, ledger, and the goal's work.

    ``run_id`` continues a run already recorded STARTING by ``cmtoolkit run`` (which passes it
    to the goal notebook); without it a new run is recorded.
    """
    name = ctx.connection.name
    with RunLock(ctx.root, name):
        with ctx.store.transaction() as con:
            if run_id is None:
                run_id = ledger.start_run(con, name, str(goal), full=ctx.full)
            else:
                ledger.claim_run(con, run_id, name, str(goal), full=ctx.full)
        started = utc_now()
        t0 = time.monotonic()
        log.info("run %s: %s of %s started", run_id, goal, name)
        try:
            with ctx.store.transaction() as con:
                ledger.set_state(con, run_id, RunState.RUNNING)
            out = GOALS[GoalName(goal)].run(ctx, run_id)
        except BaseException as exc:
            message = _error_message(exc)
            try:
                with ctx.store.transaction() as con:
                    ledger.fail_run(con, run_id, message)
            except CmToolkitError:  # the store itself is the problem: keep the first error
                log.exception("run %s: could not record the failure", run_id)
            log.error("run %s: %s of %s failed: %s", run_id, goal, name, message)
            if raise_on_failure or not isinstance(exc, Exception):
                raise
            return Run(
                name,
                str(goal),
                RunState.FAILED,
                {},
                started,
                utc_now(),
                run_id,
                full=ctx.full,
                error=message,
            )
        log.info("run %s finished in %.1fs: %s", run_id, time.monotonic() - t0, out.counts)
        return Run(
            name,
            str(goal),
            RunState.FINISHED,
            out.counts,
            started,
            utc_now(),
            run_id,
            full=ctx.full,
            details=out.details,
        )


def _error_message(exc: BaseException) -> str:
    if isinstance(exc, CmToolkitError):
        return str(exc)
    if isinstance(exc, KeyboardInterrupt):
        return "interrupted"
    # Unexpected errors keep their type so the report says what broke.
    return f"{type(exc).__name__}: {exc}"


@dataclass(frozen=True)
class _ProfileSide:
    """The two questions a connection's status asks of the profile side."""

    runner: ConnectionRunner

    def properties(self) -> dict[str, str]:
        return self.runner.store.properties()

    def segment_names(self) -> list[str]:
        return self.runner.segments.names()

    def sample_values(self, prop: str, n: int) -> list[str]:
        return self.runner.store.sample_values(prop, n)


class ConnectionRunner:
    """One connection of a workspace: ``Workspace(path).connection(name)``.

    The Campaign Monitor client is built on first use from the connection's credential reference
    (or given, e.g. by a test or a notebook that already holds one).
    """

    def __init__(
        self,
        store: Store,
        segments: Segments,
        root: Path,
        connection: Connection,
        *,
        client: CampaignMonitor | None = None,
        path: Path | None = None,
    ) -> None:
        self.store = store
        self.segments = segments
        self.root = root
        self.model = connection
        self.path = path  # the connection file, when it came from one
        self._client = client

    def __repr__(self) -> str:
        return f"ConnectionRunner({self.model.name!r}, workspace={str(self.root)!r})"

    @property
    def name(self) -> str:
        return self.model.name

    @property
    def client(self) -> CampaignMonitor:
        if self._client is None:
            self._client = client_for(self.model)
        return self._client

    def context(self, *, full: bool = False, progress: Progress | None = None) -> GoalContext:
        return GoalContext(
            self.store,
            self.segments,
            self.root,
            self.model,
            self.client,
            full=full,
            progress=progress,
        )

    def status(self, *, live: bool = True) -> Status:
        status = connection_status(
            self.model, client=self.client if live else None, store=_ProfileSide(self)
        )
        if self.path is not None and self.path.exists():
            copy = duplicate_id_problem(self.root, self.path, self.model)
            if copy:  # a copy sharing the original's run state: no goal of it may run
                status.errors.insert(0, Problem("id", copy))
                status.import_ready = status.export_ready = status.targeting_ready = False
        return status

    def check_ready(self, *, force: bool = False, dry_run: bool = False) -> None:
        """The readiness gate (:func:`check_ready`) on this connection's live status."""
        if not self.model.enabled and not force and not dry_run:
            check_ready(self.model, self.status(live=False), force=force, dry_run=dry_run)
        check_ready(self.model, self.status(), force=force, dry_run=dry_run)

    def preview(self, goal: str = "all", *, full: bool = False) -> list[Run] | Run:
        goals = resolve_goals(self.model, goal)
        self.check_ready(dry_run=True)
        results = [preview(self.context(full=full), g) for g in goals]
        return results[0] if goal != "all" else results

    def sync(
        self, goal: str = "all", *, full: bool = False, force: bool = False
    ) -> list[Run] | Run:
        """Run ``goal`` (every configured goal for ``all``) through the readiness gate:
        refused (:class:`NotReady`) when the status has errors, or when the connection is
        disabled and not ``force``."""
        goals = resolve_goals(self.model, goal)
        self.check_ready(force=force)
        results = [sync(self.context(full=full), g) for g in goals]
        return results[0] if goal != "all" else results

    def history(self, limit: int = 100) -> list[Run]:
        if not self.store.path.exists():
            return []
        with self.store.connect() as con:
            return ledger.history(con, self.model.name, limit)
