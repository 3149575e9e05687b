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


class Clock:
    def __init__(self) -> None:
        self.t = 100.0

    def __call__(self) -> float:
        return self.t


def test_meter_gives_rate_and_eta_as_one_line():
    from cmtoolkit.widgets.progress import Meter

    clock = Clock()
    m = Meter("send", clock)
    m.update(0, 10_000)
    assert m.text() == "send: 0/10,000 (0%)"
    clock.t += 2
    m.update(2_500, 10_000)
    assert m.text() == "send: 2,500/10,000 (25%) · 1,250/s · ETA 6 s"
    clock.t += 100
    m.update(3_000, None)  # a total once given stays
    assert m.text().endswith("29/s · ETA 3 min 58 s") and m.total == 10_000
    m.update(10_000, 10_000)
    assert m.finished and "ETA" not in m.text()


def test_notebook_bars_and_terminal_lines_come_from_the_same_meter():
    import ipywidgets as W

    from cmtoolkit.widgets.progress import NotebookProgress, TerminalProgress

    clock, out = Clock(), io.StringIO()
    bars, line = NotebookProgress(clock), TerminalProgress(out, clock)
    for p in (bars, line):
        p("send", 0, 400)
    clock.t += 1
    for p in (bars, line):
        p("send", 100, 400)
        p("pages", 3)
    (send_bar, send_label), (pages_bar, pages_label) = bars._bars["send"], bars._bars["pages"]
    assert isinstance(send_bar, W.IntProgress) and (send_bar.value, send_bar.max) == (100, 400)
    assert send_label.value == "send: 100/400 (25%) · 100/s · ETA 3 s"
    assert pages_label.value.startswith("pages: 3") and pages_bar.bar_style == "info"
    assert "\rsend: 100/400 (25%) · 100/s · ETA 3 s" in out.getvalue()
    for p in (bars, line):
        p("send", 400, 400)
    assert send_bar.bar_style == "success" and out.getvalue().endswith("(100%) · 400/s\n")
    W.Widget.close_all()


def test_notebook_bars_show_any_stage_and_a_total_known_late():
    from cmtoolkit.widgets.progress import NotebookProgress

    clock = iter(range(100)).__next__
    bars = NotebookProgress(clock=lambda: float(clock()))
    bars("read", 1000, None)  # the first page: the total not known yet
    bars("send", 10, 40)
    (read_bar, read_label), (_, send_label) = (b.children for b in bars.box.children)
    assert read_bar.bar_style == "info" and read_bar.value == read_bar.max  # working
    assert read_label.value.startswith("read: 1,000 ·")
    assert send_label.value.startswith("send: 10/40")
    bars("read", 2000, 5000)
    assert (read_bar.value, read_bar.max, read_bar.bar_style) == (2000, 5000, "")
    assert read_label.value.startswith("read: 2,000/5,000 (40%)") and "ETA" in read_label.value
    bars("read", 5000, 5000)
    assert read_bar.bar_style == "success" and "ETA" not in read_label.value
