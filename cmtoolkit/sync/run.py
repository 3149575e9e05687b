"""One record of one run: what the ledger stores, the runner returns and a report shows."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime
from enum import StrEnum

import polars as pl

from cmtoolkit.sync.goal import DetailValue


class RunState(StrEnum):
    """A run's state. ``PREVIEW`` marks a dry run, which the ledger never records."""

    STARTING = "STARTING"
    RUNNING = "RUNNING"
    FINISHED = "FINISHED"
    FAILED = "FAILED"
    PREVIEW = "PREVIEW"

    @property
    def ok(self) -> bool:
        return self in (RunState.FINISHED, RunState.PREVIEW)

    @property
    def ended(self) -> bool:
        return self is not RunState.STARTING and self is not RunState.RUNNING


def utc_now() -> datetime:
    """Now in UTC, naive, as the ledger's TIMESTAMP columns hold it."""
    return datetime.now(UTC).replace(tzinfo=None)


@dataclass
class Run:
    """A run of one goal of one connection (a dry run has no ``run_id``)."""

    connection: str
    goal: str
    state: RunState
    counts: dict[str, int]
    started_at: datetime
    ended_at: datetime | None = None
    run_id: str | None = None
    full: bool = False
    dry_run: bool = False
    error: str | None = None
    details: dict[str, DetailValue] = field(default_factory=dict)
    samples: pl.DataFrame | None = field(default=None, repr=False)
    rows: pl.DataFrame | None = field(default=None, repr=False)

    @property
    def ok(self) -> bool:
        return self.state.ok

    @property
    def duration_s(self) -> float | None:
        if self.ended_at is None:
            return None
        return (self.ended_at - self.started_at).total_seconds()

    def to_dict(self) -> dict[str, object]:
        duration = self.duration_s
        return {
            "run_id": self.run_id,
            "connection": self.connection,
            "goal": self.goal,
            "full": self.full,
            "dry_run": self.dry_run,
            "state": str(self.state),
            "counts": self.counts,
            "started_at": self.started_at.isoformat(),
            "ended_at": self.ended_at.isoformat() if self.ended_at else None,
            "duration_s": round(duration, 3) if duration is not None else None,
            "error": self.error,
            **({"details": self.details} if self.details else {}),
        }
