"""Running a connection's goals: the run lock, the ledger and the preview/sync entry points.

Each goal module (``importing``, ``exporting``, ``targeting``) provides two functions over a
:class:`GoalContext`: ``preview(ctx) -> Outcome`` computes the full plan and writes nothing
anywhere; ``run(ctx, run_id) -> Outcome`` does the work and marks the run ``FINISHED`` in its
final store transaction. This module wraps them with what every goal shares: one run per
connection at a time, the run recorded before any work, a failure recorded with its error, and
the result as a :class:`GoalResult`.
"""

from __future__ import annotations

import importlib
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import polars as pl

from cmtoolkit.errors import CmToolkitError, ConfigurationError, RunError
from cmtoolkit.sync import ledger
from cmtoolkit.sync.locking import RunLock

log = logging.getLogger("cmtoolkit.sync")

GOALS = ("import", "export", "targeting")
GOAL_MODULES = {
    "import": "cmtoolkit.sync.importing",
    "export": "cmtoolkit.sync.exporting",
    "targeting": "cmtoolkit.sync.targeting",
}


@dataclass
class GoalContext:
    """What a goal needs: the workspace (store), the connection model and a client."""

    workspace: Any  # cmtoolkit.Workspace
    connection: Any  # cmtoolkit.connection.Connection
    client: Any  # cmtoolkit.campaign_monitor.CampaignMonitor
    full: bool = False
    progress: Callable[[str, int, int | None], None] | None = None

    def report(self, stage: str, done: int, total: int | None = None) -> None:
        if self.progress is not None:
            self.progress(stage, done, total)


@dataclass
class Outcome:
    """What a goal returns: counts per outcome, plus for previews a sample and per-row detail."""

    counts: dict[str, int]
    samples: pl.DataFrame | None = None
    rows: pl.DataFrame | None = None
    details: dict[str, Any] = field(default_factory=dict)


@dataclass
class GoalResult:
    connection: str
    goal: str
    dry_run: bool
    state: str  # FINISHED | FAILED (PREVIEW for a dry run)
    counts: dict[str, int]
    started_at: datetime
    ended_at: datetime
    run_id: str | None = None
    error: str | None = None
    samples: pl.DataFrame | None = None
    rows: pl.DataFrame | None = None
    details: dict[str, Any] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return self.state in ("FINISHED", "PREVIEW")

    @property
    def duration_s(self) -> float:
        return (self.ended_at - self.started_at).total_seconds()

    def to_dict(self) -> dict[str, Any]:
        return {
            "connection": self.connection,
            "goal": self.goal,
            "dry_run": self.dry_run,
            "run_id": self.run_id,
            "state": self.state,
            "counts": self.counts,
            "started_at": self.started_at.isoformat(),
            "ended_at": self.ended_at.isoformat(),
            "duration_s": round(self.duration_s, 3),
            "error": self.error,
            **({"details": self.details} if self.details else {}),
        }


def configured_goals(connection: Any) -> list[str]:
    return [g for g in GOALS if getattr(connection, "import_" if g == "import" else g, None)]


def resolve_goals(connection: Any, goal: str) -> list[str]:
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
    return [goal]


def _goal_module(goal: str) -> Any:
    return importlib.import_module(GOAL_MODULES[goal])


def preview(ctx: GoalContext, goal: str) -> GoalResult:
    """The dry run: the real run's plan; nothing written to the store or Campaign Monitor."""
    started = ledger.utc_now()
    out = _goal_module(goal).preview(ctx)
    return GoalResult(
        connection=ctx.connection.name,
        goal=goal,
        dry_run=True,
        state="PREVIEW",
        counts=out.counts,
        started_at=started,
        ended_at=ledger.utc_now(),
        samples=out.samples,
        rows=out.rows,
        details=out.details,
    )


def sync(ctx: GoalContext, goal: str, *, raise_on_failure: bool = True) -> GoalResult:
    """A real run of one goal: run lock, ledger, and the goal's work."""
    store = ctx.workspace.store
    name = ctx.connection.name
    with RunLock(ctx.workspace.path, name):
        with store.transaction() as con:
            run_id = ledger.start_run(con, name, goal, full=ctx.full)
        started = ledger.utc_now()
        t0 = time.monotonic()
        log.info("run %s: %s of %s started", run_id, goal, name)
        try:
            with store.transaction() as con:
                ledger.set_state(con, run_id, "RUNNING")
            out = _goal_module(goal).run(ctx, run_id)
        except BaseException as exc:
            message = _error_message(exc)
            try:
                with store.transaction() as con:
                    ledger.fail_run(con, run_id, message)
            except CmToolkitError:  # the store itself is the problem: keep the first error
                log.exception("run %s: could not record the failure", run_id)
            log.error("run %s: %s of %s failed: %s", run_id, goal, name, message)
            if raise_on_failure or not isinstance(exc, Exception):
                raise
            return GoalResult(
                name, goal, False, "FAILED", {}, started, ledger.utc_now(), run_id, message
            )
        log.info("run %s finished in %.1fs: %s", run_id, time.monotonic() - t0, out.counts)
        return GoalResult(
            name,
            goal,
            False,
            "FINISHED",
            out.counts,
            started,
            ledger.utc_now(),
            run_id,
            details=out.details,
        )


def _error_message(exc: BaseException) -> str:
    if isinstance(exc, CmToolkitError):
        return str(exc)
    if isinstance(exc, KeyboardInterrupt):
        return "interrupted"
    # Unexpected errors keep their type so the report says what broke.
    return f"{type(exc).__name__}: {exc}"


__all__ = [
    "GOALS",
    "ConnectionRunner",
    "GoalContext",
    "GoalResult",
    "Outcome",
    "RunError",
    "configured_goals",
    "preview",
    "resolve_goals",
    "sync",
]


class ConnectionRunner:
    """One connection of a workspace: ``Workspace(path).connection(name)``.

    The Campaign Monitor client is built on first use from the connection's credential reference
    (or given, e.g. by a test or a notebook that already holds one).
    """

    def __init__(self, workspace: Any, connection: Any, *, client: Any = None) -> None:
        self.workspace = workspace
        self.model = connection
        self._client = client

    def __repr__(self) -> str:
        return f"ConnectionRunner({self.model.name!r}, workspace={str(self.workspace.path)!r})"

    @property
    def name(self) -> str:
        return self.model.name

    @property
    def client(self) -> Any:
        if self._client is None:
            from cmtoolkit.connection.client import client_for

            self._client = client_for(self.model)
        return self._client

    def context(self, *, full: bool = False, progress: Any = None) -> GoalContext:
        return GoalContext(self.workspace, self.model, self.client, full=full, progress=progress)

    def status(self, *, live: bool = True) -> Any:
        from cmtoolkit.connection.status import connection_status

        return connection_status(
            self.model,
            client=self.client if live else None,
            store=self.workspace,
        )

    def preview(self, goal: str = "all", *, full: bool = False) -> list[GoalResult] | GoalResult:
        results = [preview(self.context(full=full), g) for g in resolve_goals(self.model, goal)]
        return results[0] if goal != "all" else results

    def sync(self, goal: str = "all", *, full: bool = False) -> list[GoalResult] | GoalResult:
        results = [sync(self.context(full=full), g) for g in resolve_goals(self.model, goal)]
        return results[0] if goal != "all" else results

    def history(self, limit: int = 100) -> list[ledger.Run]:
        with self.workspace.store.connect() as con:
            return ledger.history(con, self.model.name, limit)
