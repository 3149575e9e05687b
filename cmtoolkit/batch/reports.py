"""Executed notebooks turned into shareable reports, and the workspace's report index.

A report is three files in ``<workspace>/reports/<connection>/``, named
``<UTC time>_<goal>``: the scrubbed ``.ipynb``, its ``.html`` and a ``.json`` summary (connection,
goal, state, counts, duration, error, run id) that the index reads.

Scrubbing (see the papermill leak matrix in the shared reference, §1.2, §4): the
``injected-parameters`` cell, ``metadata.papermill`` (notebook and cells), widget state and
papermill's own error markers go; any value in ``secrets`` is replaced by ``[redacted]`` in
every cell and output, as a last line of defence against a notebook that prints one. A header
cell states the run's outcome; for a failed run it is a red banner with the error message.
The HTML holds no code input and no prompts.
"""

from __future__ import annotations

import html
import json
import os
import re
from collections.abc import Iterable
from dataclasses import asdict, dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import nbformat

HEADER_TAG = "cmtoolkit-report-header"
REMOVED_TAGS = {"injected-parameters", "papermill-error-cell-tag"}
REDACTED = "[redacted]"


@dataclass
class ReportSummary:
    connection: str
    goal: str
    state: str  # FINISHED | FAILED | PREVIEW
    started_at: str  # ISO, UTC
    ended_at: str
    duration_s: float
    counts: dict[str, int] = field(default_factory=dict)
    error: str | None = None
    run_id: str | None = None
    dry_run: bool = False
    full: bool = False
    notebook: str | None = None  # the executed notebook's file name (no path)
    ipynb: str | None = None  # report files, relative to the reports folder
    html: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


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


def scrub(nb: Any, secrets: Iterable[str] = ()) -> Any:
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
    nb.cells = cells
    nb.metadata.pop("papermill", None)
    nb.metadata.pop("widgets", None)
    if secrets:
        nb = nbformat.from_dict(_redact_tree(nb, secrets))
    return nb


def _is_papermill_anchor(cell: Any) -> bool:
    return cell.cell_type == "markdown" and '<span id="papermill-error-cell"' in cell.source


def add_header(nb: Any, summary: ReportSummary) -> Any:
    """Put the run's outcome first: a banner for a failure, a status line otherwise."""
    nb.cells.insert(0, nbformat.v4.new_markdown_cell(header_markdown(summary)))
    nb.cells[0].metadata["tags"] = [HEADER_TAG]
    return nb


def header_markdown(s: ReportSummary) -> str:
    what = f"{html.escape(s.goal)} of <b>{html.escape(s.connection)}</b>"
    when = f"{s.started_at} UTC, {s.duration_s:.1f} s"
    counts = _counts_text(s.counts)
    run = f" · run <code>{html.escape(s.run_id)}</code>" if s.run_id else ""
    kind = " (dry run: nothing written)" if s.dry_run else ""
    if s.state == "FAILED":
        return (
            '<div class="cmtoolkit-banner cmtoolkit-failed" style="border:2px solid #b00020;'
            'background:#fde7ea;color:#5f0010;padding:12px 16px;border-radius:6px">\n'
            f"<h2 style='margin-top:0'>Run FAILED: {what}{kind}</h2>\n"
            f"<p><b>Error:</b> <code>{html.escape(s.error or 'unknown error')}</code></p>\n"
            f"<p>{when}{run}</p>\n</div>"
        )
    return (
        '<div class="cmtoolkit-banner cmtoolkit-ok" style="border:1px solid #2e7d32;'
        'background:#edf7ee;padding:12px 16px;border-radius:6px">\n'
        f"<h2 style='margin-top:0'>Run {html.escape(s.state)}: {what}{kind}</h2>\n"
        f"<p>{html.escape(counts)}</p>\n<p>{when}{run}</p>\n</div>"
    )


def _counts_text(counts: dict[str, int]) -> str:
    return ", ".join(f"{k} {v:,}" for k, v in counts.items() if v) or "nothing to do"


# --- HTML ---------------------------------------------------------------------------------------


def render_html(nb: Any, title: str) -> str:
    from nbconvert import HTMLExporter
    from traitlets.config import Config

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
    reports_dir: Path, connection_slug: str, nb: Any, summary: ReportSummary
) -> ReportSummary:
    """Write ``.ipynb``, ``.html`` and ``.json`` (each atomically); returns the summary."""
    folder = Path(reports_dir) / connection_slug
    folder.mkdir(parents=True, exist_ok=True)
    stem = report_stem(datetime.fromisoformat(summary.started_at), summary.goal)
    n = 1
    while (folder / f"{stem}.json").exists():  # two runs in the same second
        n += 1
        stem = f"{report_stem(datetime.fromisoformat(summary.started_at), summary.goal)}-{n}"
    summary.ipynb = f"{connection_slug}/{stem}.ipynb"
    summary.html = f"{connection_slug}/{stem}.html"
    _atomic_write(folder / f"{stem}.ipynb", nbformat.writes(nb))
    title = f"{summary.connection} {summary.goal} {summary.started_at}"
    _atomic_write(folder / f"{stem}.html", render_html(nb, title))
    _atomic_write(folder / f"{stem}.json", json.dumps(summary.to_dict(), indent=2))
    return summary


def _atomic_write(path: Path, text: str) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(text, encoding="utf-8")
    os.replace(tmp, path)


def read_summaries(reports_dir: Path) -> list[ReportSummary]:
    out = []
    for path in Path(reports_dir).glob("*/*.json"):
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
            out.append(ReportSummary(**data))
        except (ValueError, TypeError):
            continue
    return out


# --- the index -----------------------------------------------------------------------------------

_STATE_COLOURS = {"FINISHED": "#2e7d32", "FAILED": "#b00020", "PREVIEW": "#1565c0"}


def index_rows(workspace: Any, limit: int = 1000) -> list[dict[str, Any]]:
    """Every run, newest first: ledger runs joined with report summaries by run id.

    Ledger runs without a report (``cmtoolkit sync``) and reports without a ledger run (dry runs,
    runs that failed before the engine started) are both listed.
    """
    from cmtoolkit.sync import ledger

    summaries = read_summaries(workspace.reports_dir)
    by_run = {s.run_id: s for s in summaries if s.run_id}
    rows: list[dict[str, Any]] = []
    with workspace.store.connect() as con:
        runs = ledger.history(con, None, limit)
    for r in runs:
        s = by_run.pop(r.run_id, None)
        rows.append(
            {
                "started_at": r.started_at.isoformat(timespec="seconds"),
                "connection": r.connection,
                "goal": r.goal + (" (full)" if r.full else ""),
                "state": r.state,
                "counts": r.counts,
                "duration_s": s.duration_s if s else r.duration_s,
                "error": r.error,
                "run_id": r.run_id,
                "html": s.html if s else None,
                "ipynb": s.ipynb if s else None,
            }
        )
    for s in summaries:
        if s.run_id and s.run_id not in by_run:
            continue  # already joined to its ledger run
        rows.append(
            {
                "started_at": datetime.fromisoformat(s.started_at).isoformat(timespec="seconds"),
                "connection": s.connection,
                "goal": s.goal + (" (dry run)" if s.dry_run else ""),
                "state": s.state,
                "counts": s.counts,
                "duration_s": s.duration_s,
                "error": s.error,
                "run_id": s.run_id,
                "html": s.html,
                "ipynb": s.ipynb,
            }
        )
    rows.sort(key=lambda row: (row["started_at"], row["run_id"] or ""), reverse=True)
    return rows[:limit]


def write_index(workspace: Any, secrets: Iterable[str] = ()) -> Path:
    """(Re)write ``reports/index.html`` from the ledger and the report summaries."""
    rows = index_rows(workspace)
    body = []
    for row in rows:
        colour = _STATE_COLOURS.get(row["state"], "#666")
        counts = "<br>".join(
            f"{html.escape(k)}&nbsp;{v:,}" for k, v in (row["counts"] or {}).items() if v
        )
        took = f"{row['duration_s']:.1f} s" if row["duration_s"] is not None else "–"
        links = " ".join(
            f'<a href="{html.escape(row[k])}">{label}</a>'
            for k, label in (("html", "report"), ("ipynb", "notebook"))
            if row[k]
        )
        error = (
            f'<div class="error">{html.escape(redact(row["error"], secrets))}</div>'
            if row["error"]
            else ""
        )
        body.append(
            "<tr>"
            f"<td>{html.escape(row['started_at'])}</td>"
            f"<td>{html.escape(row['connection'])}</td>"
            f"<td>{html.escape(row['goal'])}</td>"
            f'<td><span class="state" style="color:{colour}">{html.escape(row["state"])}</span>'
            f"{error}</td>"
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
    "ReportSummary",
    "add_header",
    "index_rows",
    "read_summaries",
    "redact",
    "render_html",
    "scrub",
    "write_index",
    "write_report",
]
