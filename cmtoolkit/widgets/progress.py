"""Progress bars that read the same in a terminal, a live notebook and a batch report.

The engine reports progress through ``GoalContext.progress(stage, done, total)``;
:func:`progress_callback` turns that into ``tqdm`` bars when ``tqdm`` is installed and the output
is live (a terminal or an interactive notebook), and into a few plain lines otherwise, because a
bar redrawn a thousand times is noise in an executed report and in a scheduler's log.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Protocol, TextIO

import ipywidgets as W

from cmtoolkit.sync import Progress


class Bar(Protocol):
    """What :class:`TqdmProgress` uses of a ``tqdm`` bar."""

    total: int | None
    n: int

    def update(self, n: int) -> object: ...

    def close(self) -> None: ...


BarFactory = Callable[..., Bar]


class PlainProgress:
    """One line per stage start, per ``step`` percent (or per power of ten without a total), end."""

    def __init__(self, stream: TextIO | None = None, step: int = 25) -> None:
        self.stream = stream
        self.step = step
        self._last: dict[str, int] = {}

    def __call__(self, stage: str, done: int, total: int | None = None) -> None:
        mark = self._mark(done, total)
        if self._last.get(stage) == mark:
            return
        self._last[stage] = mark
        tail = f"{done:,}/{total:,}" if total else f"{done:,}"
        print(f"{stage}: {tail}", file=self.stream or sys.stdout, flush=True)

    def _mark(self, done: int, total: int | None) -> int:
        if total:
            return min(100, done * 100 // total) // self.step
        return len(str(max(done, 0)))


@dataclass
class Meter:
    """One stage's progress with its rate and ETA, as one line of text: what the notebook's bar
    and the terminal's line both show. ``clock`` is injectable (tests)."""

    stage: str
    clock: Callable[[], float] = time.monotonic
    started: float = field(default=0.0)
    done: int = 0
    total: int | None = None

    def __post_init__(self) -> None:
        self.started = self.clock()

    def update(self, done: int, total: int | None) -> None:
        self.done = done
        if total is not None:
            self.total = total

    @property
    def rate(self) -> float | None:
        elapsed = self.clock() - self.started
        return self.done / elapsed if elapsed > 0 and self.done else None

    @property
    def eta(self) -> float | None:
        rate = self.rate
        if rate is None or not self.total:
            return None
        return max(0.0, (self.total - self.done) / rate)

    @property
    def finished(self) -> bool:
        return self.total is not None and self.done >= self.total

    def text(self) -> str:
        count = f"{self.done:,}/{self.total:,}" if self.total else f"{self.done:,}"
        parts = [f"{self.stage}: {count}"]
        if self.total:
            parts[0] += f" ({min(100, self.done * 100 // self.total)}%)"
        rate = self.rate
        if rate is not None:
            parts.append(f"{rate:,.0f}/s")
        eta = self.eta
        if eta is not None and not self.finished:
            parts.append(f"ETA {_seconds(eta)}")
        return " · ".join(parts)


def _seconds(s: float) -> str:
    s = round(s)
    return f"{s // 60} min {s % 60:02d} s" if s >= 60 else f"{s} s"


class NotebookProgress:
    """One ipywidgets bar per stage (pages read, batches sent), with its rate and ETA; ``box``
    is what a notebook shows. Updates reach the page while the run goes on."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self.clock = clock
        self.box = W.VBox()
        self.meters: dict[str, Meter] = {}
        self._bars: dict[str, tuple[W.IntProgress, W.HTML]] = {}

    def __call__(self, stage: str, done: int, total: int | None = None) -> None:
        meter = self.meters.get(stage)
        if meter is None:
            meter = self.meters[stage] = Meter(stage, self.clock)
            bar = W.IntProgress(min=0, max=max(total or 1, 1), layout=W.Layout(width="320px"))
            label = W.HTML()
            self._bars[stage] = (bar, label)
            self.box.children = (*self.box.children, W.HBox([bar, label]))
        meter.update(done, total)
        bar, label = self._bars[stage]
        if meter.total:
            bar.max = max(meter.total, 1)
            bar.value = min(done, bar.max)
            # a total known late (the read learns each selection's size from its first page)
            bar.bar_style = "success" if meter.finished else ""
        else:
            bar.bar_style = "info"
            bar.value = bar.max  # no total: a full, striped bar says "working"
        label.value = meter.text()


class TerminalProgress:
    """The same line in a terminal, redrawn in place (``\\r``), a newline when a stage ends."""

    def __init__(
        self, stream: TextIO | None = None, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.stream = stream
        self.clock = clock
        self.meters: dict[str, Meter] = {}

    def __call__(self, stage: str, done: int, total: int | None = None) -> None:
        meter = self.meters.get(stage)
        if meter is None:
            meter = self.meters[stage] = Meter(stage, self.clock)
        meter.update(done, total)
        end = "\n" if meter.finished else ""
        print(f"\r{meter.text()}", end=end, file=self.stream or sys.stderr, flush=True)


class TqdmProgress:
    """One ``tqdm`` bar per stage; ``tqdm`` is ``tqdm.auto`` (widgets in a live notebook)."""

    def __init__(self, tqdm: BarFactory) -> None:
        self._tqdm = tqdm
        self._bars: dict[str, Bar] = {}

    def __call__(self, stage: str, done: int, total: int | None = None) -> None:
        bar = self._bars.get(stage)
        if bar is None:
            bar = self._bars[stage] = self._tqdm(total=total, desc=stage, unit="row")
        if total is not None and bar.total != total:
            bar.total = total
        bar.update(max(0, done - bar.n))
        if total is not None and done >= total:
            bar.close()

    def close(self) -> None:
        for bar in self._bars.values():
            bar.close()


def progress_callback(*, interactive: bool | None = None) -> Progress:
    """The callback to hand to ``GoalContext(progress=...)`` / ``runner.context(progress=...)``.

    ``interactive`` None guesses: a terminal on stderr, or a live kernel. A notebook executed by
    papermill should pass its ``interactive`` parameter (False) to get plain lines.
    """
    if interactive is None:
        interactive = sys.stderr.isatty() or _in_kernel()
    if interactive:
        try:  # optional: tqdm is not a dependency
            from tqdm.auto import tqdm
        except ImportError:
            if not _in_kernel():
                return TerminalProgress()
            from IPython.display import display

            bars = NotebookProgress()
            display(bars.box)
            return bars
        else:
            return TqdmProgress(tqdm)
    return PlainProgress()


def _in_kernel() -> bool:
    return "ipykernel" in sys.modules


__all__ = [
    "Bar",
    "BarFactory",
    "Meter",
    "NotebookProgress",
    "PlainProgress",
    "TerminalProgress",
    "TqdmProgress",
    "progress_callback",
]
