"""The seam between the runner and the goals: a typed context in, a typed outcome out.

A goal (import, export, targeting) implements :class:`Goal`. ``preview`` computes the full plan
and writes nothing anywhere; ``run`` does the work and marks the run ``FINISHED`` in its final
store transaction (so the ledger never claims work the store does not hold). The runner
(:mod:`cmtoolkit.sync.runner`) adds what every goal shares: the run lock, the ledger record and
failure handling.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING, ClassVar, Protocol

import polars as pl

if TYPE_CHECKING:
    from cmtoolkit.campaign_monitor import CampaignMonitor
    from cmtoolkit.connection.model import Connection
    from cmtoolkit.profiles.segments import Segments
    from cmtoolkit.profiles.store import Store


class GoalName(StrEnum):
    """The goals, in the order ``--goal all`` runs them (import first, so its changes reach
    export and targeting in the same run)."""

    IMPORT = "import"
    EXPORT = "export"
    TARGETING = "targeting"


Progress = Callable[[str, int, int | None], None]
"""``progress(stage, done, total)``: a goal's progress, for bars in a terminal or notebook."""

DetailValue = str | int | float | bool | None | list[str] | dict[str, int] | dict[str, str]


@dataclass
class GoalContext:
    """What a goal needs: the store and workspace folder, the connection model and a client.

    ``root`` is the workspace folder: run scratch (``.runs/``), journals and locks live under
    it, never in ``/tmp`` (DESIGN §2).
    """

    store: Store
    segments: Segments
    root: Path
    connection: Connection
    client: CampaignMonitor
    full: bool = False
    progress: Progress | None = None
    #: A preview also computes what only the notebook's charts draw (the number spreads).
    charts: bool = False

    def report(self, stage: str, done: int, total: int | None = None) -> None:
        if self.progress is not None:
            self.progress(stage, done, total)


@dataclass
class Outcome:
    """What a goal returns: counts per outcome, plus for previews a sample and per-row detail."""

    counts: dict[str, int]
    samples: pl.DataFrame | None = None
    rows: pl.DataFrame | None = None
    details: dict[str, DetailValue] = field(default_factory=dict)


class Goal(Protocol):
    """One goal of a connection. Implementations are registered in :mod:`cmtoolkit.sync.runner`."""

    name: ClassVar[GoalName]

    def configured(self, connection: Connection) -> bool:
        """Whether the connection file has this goal's section."""
        ...

    def preview(self, ctx: GoalContext) -> Outcome:
        """The dry run: the same plan as :meth:`run`, nothing written anywhere."""
        ...

    def run(self, ctx: GoalContext, run_id: str) -> Outcome:
        """The real run; ends by marking ``run_id`` FINISHED in its last store transaction."""
        ...
