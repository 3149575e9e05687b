"""The progress adapter: plain lines for reports and logs, tqdm bars when live."""

from __future__ import annotations

import io
from typing import Any

from cmtoolkit.batch.progress import PlainProgress, TqdmProgress, progress_callback


def test_plain_progress_prints_a_few_lines_not_a_line_per_update():
    out = io.StringIO()
    p = PlainProgress(out)
    for done in range(0, 10_001, 100):
        p("send", done, 10_000)
    assert out.getvalue().splitlines() == [
        "send: 0/10,000",
        "send: 2,500/10,000",
        "send: 5,000/10,000",
        "send: 7,500/10,000",
        "send: 10,000/10,000",
    ]
    p("read", 5)
    p("read", 7)
    p("read", 12)
    assert out.getvalue().splitlines()[-2:] == ["read: 5", "read: 12"]


class FakeBar:
    def __init__(self, total: int | None, desc: str, unit: str) -> None:
        self.total, self.desc, self.n, self.closed = total, desc, 0, False

    def update(self, k: int) -> None:
        self.n += k

    def close(self) -> None:
        self.closed = True


def test_tqdm_progress_keeps_one_bar_per_stage():
    p = TqdmProgress(FakeBar)
    p("send", 10, 100)
    p("send", 60, 100)
    p("read", 3, None)
    bars: dict[str, Any] = p._bars
    assert bars["send"].n == 60 and not bars["send"].closed and bars["read"].n == 3
    p("send", 100, 100)
    assert bars["send"].closed


def test_batch_runs_get_plain_lines():
    assert isinstance(progress_callback(interactive=False), PlainProgress)
