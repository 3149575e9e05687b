"""The goal engines (import, export, targeting), their dry runs, the run lock and the ledger.

The face: a :class:`ConnectionRunner` per connection (``Workspace(path).connection(name)``),
:func:`preview` and :func:`sync` over a :class:`GoalContext`, and one :class:`Run` record with
its :class:`RunState`. Goals implement the :class:`Goal` protocol.
"""

from cmtoolkit.sync.goal import Goal, GoalContext, GoalName, Outcome, Progress
from cmtoolkit.sync.run import Run, RunState, utc_now
from cmtoolkit.sync.runner import (
    GOALS,
    ConnectionRunner,
    NotReady,
    check_ready,
    configured_goals,
    preview,
    resolve_goals,
    sync,
)

__all__ = [
    "GOALS",
    "ConnectionRunner",
    "Goal",
    "GoalContext",
    "GoalName",
    "NotReady",
    "Outcome",
    "Progress",
    "Run",
    "RunState",
    "check_ready",
    "configured_goals",
    "preview",
    "resolve_goals",
    "sync",
    "utc_now",
]
