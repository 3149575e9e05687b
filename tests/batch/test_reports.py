"""Report records (a Run plus its files), reports written before them, the index, the banner."""

from __future__ import annotations

import json
from datetime import datetime
from pathlib import Path

import nbformat

from cmtoolkit.batch.reports import (
    Report,
    header_markdown,
    index_rows,
    read_reports,
    scrub,
    write_index,
    write_report,
)
from cmtoolkit.sync import Run, RunState, ledger
from cmtoolkit.workspace import Workspace

# A report record as `cmtoolkit run` wrote it before Report (the ReportSummary fields).
OLD_RECORD = {
    "connection": "news",
    "goal": "import",
    "state": "PREVIEW",
    "started_at": "2026-11-30T03:00:00",
    "ended_at": "2026-11-30T03:00:09",
    "duration_s": 9.2,
    "counts": {"CREATED": 3},
    "error": None,
    "run_id": None,
    "dry_run": True,
    "full": False,
    "notebook": "02_import.ipynb",
    "ipynb": "news/20261130T030000Z_import.ipynb",
    "html": "news/20261130T030000Z_import.html",
}


def notebook() -> nbformat.NotebookNode:
    nb = nbformat.v4.new_notebook()
    params = nbformat.v4.new_code_cell("connection = 'news'")
    params.metadata["tags"] = ["injected-parameters"]
    nb.cells = [params, nbformat.v4.new_code_cell("print('key: s3cr3t-value')")]
    nb.metadata["papermill"] = {"parameters": {}}
    return nb


def test_a_report_round_trips_through_its_json_record() -> None:
    run = Run(
        "news",
        "export",
        RunState.FAILED,
        {"EXPORTED": 2, "REJECTED": 1},
        datetime(2026, 12, 1, 3, 0, 0),
        datetime(2026, 12, 1, 3, 0, 5),
        "20261201T030000Z-abcd1234",
        full=True,
        error="boom",
    )
    report = Report(run, notebook="03_export.ipynb", ipynb="news/x.ipynb", html="news/x.html")
    again = Report.from_dict(json.loads(json.dumps(report.to_dict())))
    assert again == report and again.run.state is RunState.FAILED


def test_records_written_before_report_are_read(tmp_path: Path) -> None:
    folder = tmp_path / "news"
    folder.mkdir()
    (folder / "20261130T030000Z_import.json").write_text(json.dumps(OLD_RECORD))
    (folder / "broken.json").write_text("{not json")
    (report,) = read_reports(tmp_path)
    assert report.run.state is RunState.PREVIEW
    assert report.run.counts == {"CREATED": 3} and report.run.dry_run
    assert report.run.started_at == datetime(2026, 11, 30, 3, 0, 0)
    assert report.run.duration_s == 9
    assert report.html == OLD_RECORD["html"] and report.notebook == "02_import.ipynb"


def test_the_index_joins_ledger_runs_with_their_reports(tmp_path: Path) -> None:
    ws = Workspace.create(tmp_path / "ws")
    with ws.store.transaction() as con:
        run_id = ledger.start_run(con, "news", "import", full=False)
        ledger.finish_run(con, run_id, {"CREATED": 4})
    with ws.store.connect() as con:
        ran = ledger.get_run(con, run_id)
    assert ran is not None
    written = write_report(ws.reports_dir, "news", notebook(), Report(ran, notebook="02.ipynb"))
    preview = Run("news", "export", RunState.PREVIEW, {"EXPORTED": 1}, ran.started_at, dry_run=True)
    write_report(ws.reports_dir, "news", notebook(), Report(preview, notebook="03.ipynb"))
    rows = index_rows(ws)
    by_goal = {row["goal"]: row for row in rows}
    assert set(by_goal) == {"import", "export (dry run)"}
    assert by_goal["import"]["run_id"] == run_id and by_goal["import"]["html"] == written.html
    assert by_goal["import"]["state"] is RunState.FINISHED
    assert by_goal["export (dry run)"]["state"] is RunState.PREVIEW
    page = write_index(ws).read_text()
    assert f'href="{written.html}"' in page and "FINISHED" in page and "PREVIEW" in page


def test_scrub_drops_injected_parameters_and_papermill_metadata_and_redacts() -> None:
    nb = scrub(notebook(), ["s3cr3t-value"])
    assert "papermill" not in nb.metadata
    assert [c.source for c in nb.cells] == ["print('key: [redacted]')"]


def test_a_failed_run_leads_with_a_banner_holding_its_error() -> None:
    run = Run("news", "import", RunState.FAILED, {}, datetime(2026, 12, 1), error="<no list>")
    banner = header_markdown(run)
    assert "Run FAILED" in banner and "&lt;no list&gt;" in banner and "cmtoolkit-failed" in banner


def _html(html: str) -> dict[str, object]:
    data = {"text/html": html, "text/plain": "<IPython.core.display.HTML object>"}
    return {"output_type": "display_data", "metadata": {}, "data": data}


def test_a_section_with_nothing_to_show_is_left_out_of_the_report() -> None:
    md, code = nbformat.v4.new_markdown_cell, nbformat.v4.new_code_cell

    def shown(source: str, *outputs: dict[str, object]) -> nbformat.NotebookNode:
        cell = code(source)
        cell.outputs = [nbformat.from_dict(o) for o in outputs]
        return cell

    record = {"output_type": "display_data", "metadata": {},
              "data": {"application/vnd.cmtoolkit.result+json": {"state": "FINISHED"}}}  # fmt: skip
    nb = nbformat.v4.new_notebook()
    nb.cells = [
        md("# 2. Import\nThe title stays."),
        code("connection = 'news'"),  # the parameters: nothing shown, under the title
        md("## Open the connection"),
        code("editor = open_editor(...)"),  # nothing shown: the section goes
        md("## Settings\nText alone stays."),
        md("## Engagement\nCharts of email events."),
        shown("engagement_step(editor)", _html("")),  # an empty fragment: goes
        md("## Run"),
        shown("run_step(...)", record),  # the machine-readable record alone: not seen
        md("## Preview"),
        shown("preview_step(...)", _html("<div><svg><rect/></svg></div>")),  # a chart: stays
        md("### Samples"),
        code("pass"),
        md("## History"),
        shown("history_step(...)", {"output_type": "stream", "name": "stdout", "text": "3 runs"}),
    ]
    kept = [c.source.splitlines()[0] for c in scrub(nb).cells]
    assert kept == [
        "# 2. Import", "connection = 'news'", "## Settings", "## Preview", "preview_step(...)",
        "## History", "history_step(...)",
    ]  # fmt: skip  # '### Samples' showed nothing either: gone, its parent stays
