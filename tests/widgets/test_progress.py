"""The progress adapter: plain lines for reports and logs, tqdm bars when live."""

from __future__ import annotations

import io

import pytest

from cmtoolkit.widgets.progress import PlainProgress, TqdmProgress, progress_callback


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
        self.total, self.desc, self.unit, self.n, self.closed = total, desc, unit, 0, False

    def update(self, k: int) -> None:
        self.n += k

    def close(self) -> None:
        self.closed = True


class FakeTqdm:
    """Stands in for ``tqdm.auto.tqdm``: records every bar it makes."""

    def __init__(self) -> None:
        self.bars: list[FakeBar] = []

    def __call__(self, *, total: int | None, desc: str, unit: str) -> FakeBar:
        self.bars.append(FakeBar(total, desc, unit))
        return self.bars[-1]


def test_tqdm_progress_keeps_one_bar_per_stage_and_closes_it_when_done():
    tqdm = FakeTqdm()
    p = TqdmProgress(tqdm)
    p("send", 10, 100)
    p("send", 60, 100)
    p("read", 3, None)
    send, read = tqdm.bars
    assert (send.desc, send.total, send.n, send.unit) == ("send", 100, 60, "row")
    assert (read.desc, read.total, read.n) == ("read", None, 3)
    assert not send.closed
    p("send", 100, 100)
    assert send.closed and not read.closed and len(tqdm.bars) == 2
    p.close()
    assert read.closed


def test_batch_runs_get_plain_lines_on_stdout(capsys: pytest.CaptureFixture[str]):
    progress = progress_callback(interactive=False)
    for done in (0, 40, 60, 100):
        progress("import", done, 100)
    assert capsys.readouterr().out.splitlines() == [
        "import: 0/100",
        "import: 40/100",
        "import: 60/100",
        "import: 100/100",
    ]
