"""Progress bars that read the same in a terminal, a live notebook and a batch report.

The engine reports progress through ``GoalContext.progress(stage, done, total)``;
:func:`progress_callback` turns that into ``tqdm`` bars when ``tqdm`` is installed and the output
is live (a terminal or an interactive notebook), and into a few plain lines otherwise, because a
bar redrawn a thousand times is noise in an executed report and in a scheduler's log.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from typing import Protocol, TextIO

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
            pass
        else:
            return TqdmProgress(tqdm)
    return PlainProgress()


def _in_kernel() -> bool:
    return "ipykernel" in sys.modules


__all__ = ["Bar", "BarFactory", "PlainProgress", "TqdmProgress", "progress_callback"]
