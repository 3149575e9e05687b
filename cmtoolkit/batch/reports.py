"""Executed notebooks turned into shareable reports, and the workspace's report index.

A report is three files in ``<workspace>/reports/<connection>/``, named
``<UTC time>_<goal>``: the scrubbed ``.ipynb``, its ``.html`` and a ``.json`` record that the index
reads: the run (:meth:`Run.to_dict`) plus the report's own fields (:class:`Report`).

Scrubbing (see the papermill leak matrix in the shared reference, §1.2, §4): the
``injected-parameters`` cell, ``metadata.papermill`` (notebook and cells), widget state and
papermill's own error markers go; any value in ``secrets`` is replaced by ``[redacted]`` in
every cell and output, as a last line of defence against a notebook that prints one. A header
cell states the run's outcome; for a failed run it is a red banner with the error message.
The HTML holds no code input and no prompts, and no empty section: a heading whose code cells
showed nothing (a step that is interactive only, a chart without data) goes with its section.
"""

from __future__ import annotations

import html
import json
import os
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any, TypedDict

import nbformat
from nbconvert import HTMLExporter
from nbformat import NotebookNode
from traitlets.config import Config

from cmtoolkit.sync import Run, RunState, ledger
from cmtoolkit.widgets import run_from_dict
from cmtoolkit.workspace import Workspace

HEADER_TAG = "cmtoolkit-report-header"
# "interactive": how-to text and widgets for the analyst at the screen, not for a report
REMOVED_TAGS = {"injected-parameters", "papermill-error-cell-tag", "interactive"}
REDACTED = "[redacted]"


@dataclass
class Report:
    """One run's report: the run, the notebook executed and the report files (relative to the
    reports folder, set once written)."""

    run: Run
    notebook: str | None = None  # the executed notebook's file name (no path)
    ipynb: str | None = None
    html: str | None = None

    def to_dict(self) -> dict[str, object]:
        return {
            **self.run.to_dict(),
            "notebook": self.notebook,
            "ipynb": self.ipynb,
            "html": self.html,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, object]) -> Report:
        """Read a ``.json`` record (those written before :class:`Report` have the same keys)."""
        return cls(
            run_from_dict(data),
            notebook=_text(data.get("notebook")),
            ipynb=_text(data.get("ipynb")),
            html=_text(data.get("html")),
        )


def _text(value: object) -> str | None:
    return None if value is None else str(value)


# --- scrubbing ---------------------------------------------------------------------------------


def redact(text: str, secrets: Iterable[str]) -> str:
    for secret in secrets:
        if secret:
            text = text.replace(secret, REDACTED)
    return text


def _redact_tree(value: Any, secrets: list[str]) -> Any:
    if isinstance(value, str):
        return redact(value, secrets)
    if isinstance(value, list):
        return [_redact_tree(v, secrets) for v in value]
    if isinstance(value, dict):
        return {k: _redact_tree(v, secrets) for k, v in value.items()}
    return value


def scrub(nb: NotebookNode, secrets: Iterable[str] = ()) -> NotebookNode:
    """The notebook without injected parameters, papermill metadata, widget state or secrets."""
    secrets = [s for s in secrets if s]
    cells = []
    for cell in nb.cells:
        tags = set(cell.get("metadata", {}).get("tags", []))
        if tags & REMOVED_TAGS or _is_papermill_anchor(cell):
            continue
        cell.metadata.pop("papermill", None)
        cell.metadata.pop("execution", None)  # timestamps only
        cells.append(cell)
    nb.cells = drop_empty_sections(cells)
    nb.metadata.pop("papermill", None)
    nb.metadata.pop("widgets", None)
    if secrets:
        nb = nbformat.from_dict(_redact_tree(nb, secrets))
    return nb


_HEADING = re.compile(r"^\s*(#{2,6})\s")
_TAG = re.compile(r"<[^>]*>")


def drop_empty_sections(cells: list[NotebookNode]) -> list[NotebookNode]:
    """The cells without the sections that show nothing in a report.

    A section is a markdown cell opening with a heading of level 2 or more and the cells up to
    the next heading of its level or above. It goes when it holds code cells and none of them
    has an output to see. The title (level 1) and sections of text alone stay.
    """
    levels = [_heading_level(c) for c in cells]
    keep = [True] * len(cells)
    for i, level in enumerate(levels):
        if not level:
            continue
        end = next((j for j in range(i + 1, len(cells)) if 0 < levels[j] <= level), len(cells))
        code = [c for c in cells[i + 1 : end] if c.cell_type == "code"]
        if code and not any(_shows_something(c) for c in code):
            keep[i:end] = [False] * (end - i)
    return [c for c, kept in zip(cells, keep, strict=True) if kept]


def _heading_level(cell: NotebookNode) -> int:
    m = _HEADING.match(cell.source) if cell.cell_type == "markdown" else None
    return len(m.group(1)) if m else 0


def _shows_something(cell: NotebookNode) -> bool:
    """Whether a code cell has an output a reader sees (not an empty HTML, not only the
    machine-readable run record)."""
    for out in cell.get("outputs", []):
        if out.get("output_type") == "error":
            return True
        if out.get("output_type") == "stream":
            if str(out.get("text", "")).strip():
                return True
            continue
        data = out.get("data", {})
        if "text/html" in data:  # its text/plain is only a repr ("<...HTML object>")
            page = "".join(data["text/html"])
            seen = "<svg" in page or "<img" in page or bool(_TAG.sub("", page).strip())
        else:
            texts = (str(data.get(k, "")).strip() for k in ("text/plain", "text/markdown"))
            seen = any(texts) or any(k.startswith("image/") for k in data)
        if seen:
            return True
    return False


def _is_papermill_anchor(cell: NotebookNode) -> bool:
    return cell.cell_type == "markdown" and '<span id="papermill-error-cell"' in cell.source


def add_header(nb: NotebookNode, report: Report, rows: str = "") -> NotebookNode:
    """Put the run's outcome first: a banner for a failure, a status line otherwise; then
    ``rows``, the people the run did not send (:func:`cmtoolkit.widgets.rows.run_rows_html`)."""
    text = header_markdown(report.run) + (f"\n\n{rows}" if rows else "")
    nb.cells.insert(0, nbformat.v4.new_markdown_cell(text))
    nb.cells[0].metadata["tags"] = [HEADER_TAG]
    return nb


def header_markdown(run: Run) -> str:
    what = f"{html.escape(run.goal)} of <b>{html.escape(run.connection)}</b>"
    when = f"{run.started_at.isoformat(timespec='seconds')} UTC, {run.duration_s or 0:.1f} s"
    counts = _counts_text(run.counts)
    ran = f" · run <code>{html.escape(run.run_id)}</code>" if run.run_id else ""
    kind = " (dry run: nothing written)" if run.dry_run else ""
    if run.state is RunState.FAILED:
        return (
            '<div class="cmtoolkit-banner cmtoolkit-failed" style="border:2px solid #b00020;'
            'background:#fde7ea;color:#5f0010;padding:12px 16px;border-radius:6px">\n'
            f"<h2 style='margin-top:0'>Run {RunState.FAILED}: {what}{kind}</h2>\n"
            f"<p><b>Error:</b> <code>{html.escape(run.error or 'unknown error')}</code></p>\n"
            f"<p>{when}{ran}</p>\n</div>"
        )
    return (
        '<div class="cmtoolkit-banner cmtoolkit-ok" style="border:1px solid #2e7d32;'
        'background:#edf7ee;padding:12px 16px;border-radius:6px">\n'
        f"<h2 style='margin-top:0'>Run {html.escape(run.state)}: {what}{kind}</h2>\n"
        f"<p>{html.escape(counts)}</p>\n<p>{when}{ran}</p>\n</div>"
    )


def _counts_text(counts: dict[str, int]) -> str:
    return ", ".join(f"{k} {v:,}" for k, v in counts.items() if v) or "nothing to do"


# --- HTML ---------------------------------------------------------------------------------------


def render_html(nb: NotebookNode, title: str) -> str:
    config = Config()
    config.TemplateExporter.exclude_input = True
    config.TemplateExporter.exclude_input_prompt = True
    config.TemplateExporter.exclude_output_prompt = True
    config.TagRemovePreprocessor.enabled = True
    config.TagRemovePreprocessor.remove_cell_tags = set(REMOVED_TAGS)
    config.ClearMetadataPreprocessor.enabled = True
    exporter = HTMLExporter(config=config)
    body, _ = exporter.from_notebook_node(nb, resources={"metadata": {"name": title}})
    return body


# --- writing -----------------------------------------------------------------------------------


def report_stem(started: datetime, goal: str) -> str:
    return f"{started:%Y%m%dT%H%M%SZ}_{goal}"


def write_report(
    reports_dir: Path, connection_slug: str, nb: NotebookNode, report: Report
) -> Report:
    """Write ``.ipynb``, ``.html`` and ``.json`` (each atomically); returns the report."""
    folder = Path(reports_dir) / connection_slug
    folder.mkdir(parents=True, exist_ok=True)
    base = report_stem(report.run.started_at, report.run.goal)
    stem, n = base, 1
    while (folder / f"{stem}.json").exists():  # two runs in the same second
        n += 1
        stem = f"{base}-{n}"
    report.ipynb = f"{connection_slug}/{stem}.ipynb"
    report.html = f"{connection_slug}/{stem}.html"
    _atomic_write(folder / f"{stem}.ipynb", nbformat.writes(nb))
    started = report.run.started_at.isoformat(timespec="seconds")
    title = f"{report.run.connection} {report.run.goal} {started}"
    _atomic_write(folder / f"{stem}.html", render_html(nb, title))
    _atomic_write(folder / f"{stem}.json", json.dumps(report.to_dict(), indent=2, default=str))
    return report


def _atomic_write(path: Path, text: str) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(text, encoding="utf-8")
    os.replace(tmp, path)


def read_reports(reports_dir: Path) -> list[Report]:
    out = []
    for path in Path(reports_dir).glob("*/*.json"):
        try:
            out.append(Report.from_dict(json.loads(path.read_text(encoding="utf-8"))))
        except (KeyError, TypeError, ValueError):
            continue
    return out


# --- the index -----------------------------------------------------------------------------------

_STATE_COLOURS = {
    RunState.FINISHED: "#2e7d32",
    RunState.FAILED: "#b00020",
    RunState.PREVIEW: "#1565c0",
}


class IndexRow(TypedDict):
    started_at: str
    connection: str
    goal: str
    state: RunState
    counts: dict[str, int]
    duration_s: float | None
    error: str | None
    run_id: str | None
    html: str | None
    ipynb: str | None


def index_rows(workspace: Workspace, limit: int = 1000) -> list[IndexRow]:
    """Every run, newest first: ledger runs joined with their reports by run id.

    Ledger runs without a report (``cmtoolkit sync``) and reports without a ledger run (dry runs,
    reports written before the ledger knew the run) are both listed.
    """
    reports = read_reports(workspace.reports_dir)
    by_run = {rep.run.run_id: rep for rep in reports if rep.run.run_id}
    rows: list[IndexRow] = []
    with workspace.store.connect() as con:
        runs = ledger.history(con, None, limit)
    for r in runs:
        rep = by_run.pop(r.run_id, None) if r.run_id else None
        rows.append(_row(r, rep, r.goal + (" (full)" if r.full else "")))
    for rep in reports:
        if rep.run.run_id and rep.run.run_id not in by_run:
            continue  # already joined to its ledger run
        rows.append(_row(rep.run, rep, rep.run.goal + (" (dry run)" if rep.run.dry_run else "")))
    rows.sort(key=lambda row: (row["started_at"], row["run_id"] or ""), reverse=True)
    return rows[:limit]


def _row(run: Run, report: Report | None, goal: str) -> IndexRow:
    return {
        "started_at": run.started_at.isoformat(timespec="seconds"),
        "connection": run.connection,
        "goal": goal,
        "state": run.state,
        "counts": run.counts,
        "duration_s": run.duration_s,
        "error": run.error,
        "run_id": run.run_id,
        "html": report.html if report else None,
        "ipynb": report.ipynb if report else None,
    }


def write_index(workspace: Workspace, secrets: Iterable[str] = ()) -> Path:
    """(Re)write ``reports/index.html`` from the ledger and the reports."""
    rows = index_rows(workspace)
    body = []
    for row in rows:
        colour = _STATE_COLOURS.get(row["state"], "#666")
        counts = "<br>".join(
            f"{html.escape(k)}&nbsp;{v:,}" for k, v in (row["counts"] or {}).items() if v
        )
        took = f"{row['duration_s']:.1f} s" if row["duration_s"] is not None else "–"
        links = " ".join(
            f'<a href="{html.escape(path)}">{label}</a>'
            for path, label in ((row["html"], "report"), (row["ipynb"], "notebook"))
            if path
        )
        error = row["error"]
        error_html = (
            f'<div class="error">{html.escape(redact(error, secrets))}</div>' if error else ""
        )
        body.append(
            "<tr>"
            f"<td>{html.escape(row['started_at'])}</td>"
            f"<td>{html.escape(row['connection'])}</td>"
            f"<td>{html.escape(row['goal'])}</td>"
            f'<td><span class="state" style="color:{colour}">{html.escape(row["state"])}</span>'
            f"{error_html}</td>"
            f"<td>{counts or '–'}</td>"
            f"<td>{took}</td>"
            f"<td>{links or '–'}</td>"
            "</tr>"
        )
    page = INDEX_TEMPLATE.format(
        rows="\n".join(body) or '<tr><td colspan="7">no runs yet</td></tr>',
        count=len(rows),
    )
    path = workspace.reports_dir / "index.html"
    workspace.reports_dir.mkdir(parents=True, exist_ok=True)
    _atomic_write(path, page)
    return path


INDEX_TEMPLATE = """<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8">
<title>cmtoolkit runs</title>
<style>
body {{ font-family: system-ui, sans-serif; margin: 2em; color: #222; }}
table {{ border-collapse: collapse; width: 100%; }}
th, td {{ border-bottom: 1px solid #ddd; padding: 6px 10px; text-align: left;
          vertical-align: top; }}
th {{ background: #f5f5f5; }}
.state {{ font-weight: bold; }}
.error {{ color: #b00020; font-size: 0.9em; max-width: 40em; }}
</style></head>
<body>
<h1>cmtoolkit runs</h1>
<p>{count} runs, newest first (times in UTC).</p>
<table id="runs">
<thead><tr><th>Started</th><th>Connection</th><th>Goal</th><th>State</th>
<th>Counts</th><th>Duration</th><th>Links</th></tr></thead>
<tbody>
{rows}
</tbody></table>
</body></html>
"""


def slug(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", name).strip("._") or "_"


__all__ = [
    "IndexRow",
    "Report",
    "add_header",
    "drop_empty_sections",
    "header_markdown",
    "index_rows",
    "read_reports",
    "redact",
    "render_html",
    "report_stem",
    "scrub",
    "slug",
    "write_index",
    "write_report",
]
