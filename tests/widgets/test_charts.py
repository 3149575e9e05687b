"""The notebooks' charts (issue 16 item 5), each read back from its SVG and held against the data
it stands for: rejections by reason, Number properties before → after in the import preview
(the values the run then stores), outcomes per run over time, segment sizes."""

from __future__ import annotations

import itertools
from dataclasses import replace

import polars as pl
import pytest

from cmtoolkit.emulator import BOUNCED
from cmtoolkit.sync import preview
from cmtoolkit.widgets import (
    ExportEditor,
    HistoryView,
    PreviewPane,
    RunPanel,
    TargetingEditor,
)
from cmtoolkit.widgets import notebook as nb
from cmtoolkit.widgets.charts import bars_svg, hbars_svg
from cmtoolkit.widgets.html import history_html, number_spreads_html, sizes_html
from cmtoolkit.widgets.rows import run_rows, run_rows_html
from tests.widgets.svg import bars, chart, charts, lengths, texts


def test_empty_charts_are_not_drawn() -> None:
    assert bars_svg("t", [], {}, {}) == "" and bars_svg("t", ["a"], {"s": [0]}, {"s": "red"}) == ""
    assert hbars_svg("t", []) == ""
    assert sizes_html({"news": None}) == ""
    assert number_spreads_html({}) == "" and number_spreads_html({"number_spreads": {}}) == ""
    assert history_html([]) == "<p><i>No runs yet.</i></p>"


def test_bars_are_as_long_as_their_values() -> None:
    svg = chart(bars_svg("t", ["a", "b"], {"x": [4, 1], "y": [2, 0]},
                         {"x": "red", "y": "blue"}, cls="c"), "c")  # fmt: skip
    drawn = lengths(svg)
    assert drawn[("a", "x")] == pytest.approx(4 * drawn[("b", "x")], abs=0.2)
    assert drawn[("a", "y")] == pytest.approx(2 * drawn[("b", "x")], abs=0.2)
    stacked = chart(bars_svg("t", ["a", "b"], {"x": [4, 1], "y": [2, 0]},
                             {"x": "red", "y": "blue"}, stacked=True, cls="c"), "c")  # fmt: skip
    assert [(label, s, v) for label, s, v in bars(stacked)] == [
        ("a", "x", 4), ("a", "y", 2), ("b", "x", 1)
    ]  # fmt: skip  # a zero is not drawn
    assert [t for t in texts(stacked) if t in ("6", "1")] == ["6", "1"]  # totals above


# --- rejections by reason ----------------------------------------------------------------------


def test_rejections_by_reason_in_the_rows_the_reports_and_notebooks_show(editor, setup) -> None:
    """Two profiles without a valid email (INVALID) and one whose subscriber bounced in Campaign
    Monitor (code 207, not sent): the chart's bars are those counts, by reason."""
    emails = ["ann@example.com", "bob@example.com", "zed@example.com", "not-an-email", "x@"]
    ids = ["p1", "p2", "p3", "p4", "p5"]
    setup.ws.store.load(pl.DataFrame({"profile_id": ids, "contact": [[e] for e in emails]}))
    setup.set_members("news", ids)
    editor.edit_export(match_property="contact")  # a text property: it may hold anything
    with setup.emulator.lock:
        lst = next(x for x in setup.emulator.account.clients[0].lists
                   if x.list_id == setup.customers)  # fmt: skip
        lst.set_state(lst.row_of("bob@example.com"), BOUNCED, int(setup.emulator.now()))
    panel = RunPanel(editor, ("export",))  # the export notebook's Run now
    panel.run_button.click()
    panel.confirm_button.click()
    run = panel.results[-1]
    assert run.ok, run.error
    assert chart(panel.output.value, "cm-reasons") is not None  # under the run's result
    found = run_rows(setup.ws.store, "demo", run.run_id or "")
    bounced = {o for o, kind, _ in found.reasons if kind.startswith("code 207:")}
    assert bounced and bounced <= {"REJECTED", "SUPPRESSED"}
    html = run_rows_html(setup.ws.store, "demo", run.run_id)
    got = {label: value for label, _, value in bars(chart(html, "cm-reasons"))}
    (code,) = (label for label in got if "code 207:" in label)
    assert got == {"INVALID · not a valid email address": 2, code: 1}
    assert sum(got.values()) == found.total == 3
    # the same fragment is the static report's header and the notebooks' table: its rows too
    assert "not-an-email" in html and "bob@example.com" in html


def test_a_run_without_rejections_shows_no_reasons_chart(editor, setup) -> None:
    run = editor.sync("export")
    assert run.ok and run_rows_html(setup.ws.store, "demo", run.run_id) == ""


# --- Number properties before → after ----------------------------------------------------------


def binned(values: list[float], edges: list[float]) -> list[int]:
    return [sum(lo <= v < hi for v in values) for lo, hi in itertools.pairwise(edges)]


def test_import_preview_charts_a_number_property_before_and_after(editor, setup) -> None:
    """points (sum): stored 10 (p1) and 3 (p3); the list adds 5 to p1, 7 to p2 and creates Dan
    with 1. The chart's 'after' is what the store holds once the import ran."""
    pane = PreviewPane(editor, "import")
    svg = chart(pane.counts.value, "cm-number-spread")
    assert "points (Sum)" in "".join(texts(svg))
    drawn = bars(svg)
    labels = list(dict.fromkeys(label for label, _, _ in drawn))
    edges = [float(labels[0].split("–")[0])] + [float(x.split("–")[1]) for x in labels]
    before = [v for _, s, v in drawn if s == "before"]
    after = [v for _, s, v in drawn if s == "after the run"]
    assert before == binned([10, 3], edges) and sum(before) == 2
    assert after == binned([15, 7, 3, 1], edges) and sum(after) == 4
    assert edges[0] <= 1 and edges[-1] > 15 and len(labels) <= 9  # every value in a bin
    spreads_before_run = pane.counts.value
    run = editor.sync("import")
    assert run.ok, run.error
    with setup.ws.store.connect() as con:
        stored = [float(v) for (v,) in con.execute(
            "SELECT unnest(points) FROM profiles").fetchall()]  # fmt: skip
    assert sorted(stored) == [1, 3, 7, 15]
    assert after == binned(stored, edges)  # the preview drew what the run stored
    # the batch notebook's preview shows the same chart; nothing changes any more: none drawn
    assert "cm-number-spread" in spreads_before_run
    assert "cm-number-spread" not in editor_preview_html(editor)


def editor_preview_html(editor) -> str:
    from IPython.utils.capture import capture_output

    with capture_output() as shown:
        nb.preview_step(editor, ["import"], interactive=False)
    return "".join(o.data.get("text/html", "") for o in shown.outputs)


@pytest.mark.parametrize(
    ("rule", "stored"),
    [("set", [5, 7, 3, 1]), ("add", [10, 5, 7, 3, 1])],  # p1 10 (+5), p2 7, p3 3, Dan 1
)
def test_the_number_chart_follows_each_merge_rule(editor, setup, rule, stored) -> None:
    imp = editor.model.import_
    assert imp is not None
    editor.edit_import(mappings=tuple(
        replace(m, rule=rule) if m.property == "points" else m for m in imp.mappings))  # fmt: skip
    html = number_spreads_html(editor.preview("import").details)
    drawn = bars(chart(html, "cm-number-spread"))
    labels = list(dict.fromkeys(label for label, _, _ in drawn))
    edges = [float(labels[0].split("–")[0])] + [float(x.split("–")[1]) for x in labels]
    after = [v for _, s, v in drawn if s == "after the run"]
    assert after == binned(stored, edges)
    assert editor.sync("import").ok
    with setup.ws.store.connect() as con:
        got = [float(v) for (v,) in con.execute("SELECT unnest(points) FROM profiles").fetchall()]
    assert sorted(got) == sorted(stored)  # what the run stored is what the chart said


def test_text_properties_get_no_number_chart(editor) -> None:
    result = editor.preview("import")
    assert set(result.details["number_spreads"]) == {"points"}  # city, interests: text
    # Only the notebook draws them: a preview elsewhere (the CLI, a bench) does not pay for them.
    plain = preview(editor.workspace.context(editor.model, editor.client), "import")
    assert "number_spreads" not in plain.details and plain.counts == result.counts


# --- outcomes per run over time ----------------------------------------------------------------


def test_history_charts_outcome_counts_per_run_stacked(editor) -> None:
    first, second = editor.sync("import"), editor.sync("export")
    view = HistoryView(editor)
    svg = chart(view.html.value, "cm-history-chart")
    runs = sorted(editor.history(), key=lambda r: r.started_at)
    assert [r.run_id for r in runs] == [first.run_id, second.run_id]
    expected = [
        (f"{r.started_at:%m-%d %H:%M} {r.goal}", outcome, n)
        for r in runs
        for outcome, n in r.counts.items()
        if n
    ]
    assert sorted(bars(svg)) == sorted(expected)
    labels = [label for label, _, _ in bars(svg)]
    assert labels.index(expected[0][0]) < labels.index(expected[-1][0])  # oldest left
    totals = [t for t in texts(svg) if t.replace(",", "").isdigit()]
    assert totals[: len(runs)] == [f"{sum(r.counts.values()):,}" for r in runs]
    assert len(charts(view.html.value, "cm-history-chart")) == 1  # one chart across runs


# --- segment sizes -----------------------------------------------------------------------------


def test_segment_sizes_chart_beside_the_segment_choice(editor) -> None:
    export = ExportEditor(editor)
    svg = chart(export.sizes.value, "cm-sizes")
    assert [(label, v) for label, _, v in bars(svg)] == [("news", 3), ("vip", 1)]
    drawn = lengths(svg, "width")
    assert drawn[("news", "profiles")] == pytest.approx(3 * drawn[("vip", "profiles")], abs=0.5)
    fills = {r.get("data-label"): r.get("fill") for r in svg.iter() if r.get("data-label")}
    assert fills == {"news": "#1a7f37", "vip": "#8c959f"}  # the chosen segment highlighted
    targeting = TargetingEditor(editor)  # both chosen there
    svg = chart(targeting.sizes.value, "cm-sizes")
    fills = {r.get("data-label"): r.get("fill") for r in svg.iter() if r.get("data-label")}
    assert fills == {"news": "#1a7f37", "vip": "#1a7f37"}
