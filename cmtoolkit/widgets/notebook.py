"""What the analyst notebooks call: one function per step, interactive or batch.

Each notebook's ``parameters`` cell holds names and paths only (``connection``, ``workspace``,
``interactive``, ``goal``, ``dry_run``, ``full``). Interactive, a step shows its widgets; in
batch (``interactive=False``, papermill) the same step renders a static table, and the run step
runs the goal and raises when a run fails, so papermill exits non-zero.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import ipywidgets as W
from IPython.display import HTML, display

from cmtoolkit.errors import ConfigurationError, RunError
from cmtoolkit.widgets.auth import AuthPanel
from cmtoolkit.widgets.editor import ConnectionEditor
from cmtoolkit.widgets.exporting import ExportEditor, TargetingEditor
from cmtoolkit.widgets.html import (
    counts_html,
    esc,
    export_settings_html,
    history_html,
    import_settings_html,
    result_html,
    samples_html,
    status_html,
    table,
)
from cmtoolkit.widgets.lists import ListPicker
from cmtoolkit.widgets.mappings import IdentifierLinker, MappingEditor
from cmtoolkit.widgets.preview import HistoryView, PreviewPane, RunPanel
from cmtoolkit.widgets.status import SaveBar, StatusBar

EXPORT_GOALS = ("export", "targeting")


def open_editor(workspace: str, connection: str, **kwargs: Any) -> ConnectionEditor:
    """The connection ``connection`` of the workspace folder ``workspace``."""
    return ConnectionEditor.open(workspace, connection, **kwargs)


def show(obj: Any) -> None:
    """Display a widget or an HTML string (steps return nothing, so nothing shows twice)."""
    display(HTML(obj) if isinstance(obj, str) else obj)


def goals_for(
    editor: ConnectionEditor, goal: str, allowed: Sequence[str], *, interactive: bool = False
) -> list[str]:
    """``goal`` (one goal, or ``all``: those of ``allowed`` the connection has) as a list.

    Interactive, a goal the connection does not have yet is kept: its editor creates it.
    """
    if interactive:
        if goal == "all":
            return list(allowed)
        if goal in allowed:
            return [goal]
    configured = [g for g in allowed if g in editor.model.goals]
    if goal == "all":
        if not configured:
            raise ConfigurationError(
                f"connection {editor.model.name!r} has none of the goals {', '.join(allowed)}; "
                "add one to its connection file"
            )
        return configured
    if goal not in allowed:
        raise ConfigurationError(
            f"goal {goal!r} does not belong in this notebook; use one of "
            f"{', '.join(allowed)} or all"
        )
    if goal not in configured:
        raise ConfigurationError(
            f"connection {editor.model.name!r} has no {goal} goal; add an '{goal}:' section "
            "to its connection file"
        )
    return [goal]


# --- steps -------------------------------------------------------------------------------------


def status_step(editor: ConnectionEditor, interactive: bool) -> None:
    if interactive:
        show(W.VBox([StatusBar(editor), SaveBar(editor)]))
        return
    show(status_html(editor.status(), editor.model))


def auth_step(editor: ConnectionEditor, interactive: bool, **kwargs: Any) -> None:
    if interactive:
        show(AuthPanel(editor, **kwargs))
        return
    m = editor.model
    names = {c.client_id: c.name for c in editor.clients()}
    client = m.campaign_monitor.client_id
    show(
        table(
            ["connection", "credential", "client", "enabled", "schedule (UTC)", "objectives"],
            [
                (
                    m.name,
                    m.campaign_monitor.credential,
                    f"{names.get(client or '', '?')} ({client})" if client else "none",
                    "yes" if m.enabled else "no",
                    m.schedule or "—",
                    ", ".join(m.objectives) or "— (all profiles)",
                )
            ],
        )
    )


def check_connection(editor: ConnectionEditor) -> None:
    """Batch: fail when the credential or the client does not work (nothing else can run)."""
    status = editor.status()
    broken = [p for p in status.errors if p.key.startswith("campaign_monitor")]
    if broken:
        raise ConfigurationError(
            f"connection {editor.model.name!r} cannot reach Campaign Monitor: "
            + "; ".join(str(p) for p in broken)
        )


def run_panel(editor: ConnectionEditor) -> None:
    """Interactive: run or dry-run any configured goal."""
    show(RunPanel(editor, editor.model.goals or ("import",)))


def lists_table(editor: ConnectionEditor) -> str:
    rows = [(x.name, x.list_id, editor.subscriber_count(x.list_id)) for x in editor.lists()]
    return table(["list", "id", "active subscribers"], [(n, i, f"{c or 0:,}") for n, i, c in rows])


def import_step(editor: ConnectionEditor, interactive: bool) -> None:
    """Lists, identifiers and mappings of the import goal."""
    if interactive:
        show(
            W.VBox(
                [
                    W.HTML("<h4>1. Lists</h4>"),
                    ListPicker(editor),
                    W.HTML("<h4>2. Identifiers</h4>"),
                    IdentifierLinker(editor),
                    W.HTML("<h4>3. Mappings</h4>"),
                    MappingEditor(editor),
                ]
            )
        )
        return
    show(import_settings_html(editor.model, editor.list_names()))


def export_step(
    editor: ConnectionEditor, interactive: bool, goals: Sequence[str] = EXPORT_GOALS
) -> None:
    """Export and/or targeting settings; interactive, filling in a missing goal creates it."""
    if interactive:
        children: list[Any] = []
        if "export" in goals:
            children += [W.HTML("<h4>Export</h4>"), ExportEditor(editor)]
        if "targeting" in goals:
            children += [W.HTML("<h4>Targeting</h4>"), TargetingEditor(editor)]
        show(W.VBox(children))
        return
    show(export_settings_html(editor.model, editor.list_names()))


def preview_step(editor: ConnectionEditor, goals: Sequence[str], interactive: bool) -> None:
    """A live preview pane per goal, or the dry runs' counts and samples as static HTML."""
    if interactive:
        show(W.VBox([PreviewPane(editor, g) for g in goals]))
        return
    parts = []
    for g in goals:
        result = editor.preview(g)
        parts.append(counts_html(result.counts, title=f"{g}: what a run would do"))
        parts.append(samples_html(g, result.samples))
    show("".join(parts))


def run_step(
    editor: ConnectionEditor,
    goals: Sequence[str],
    *,
    interactive: bool,
    dry_run: bool = False,
    full: bool = False,
) -> list[Any]:
    """Interactive: a Run panel. Batch: run the goals in order; raise when one fails."""
    if interactive:
        show(RunPanel(editor, tuple(goals)))
        return []
    status = editor.status()
    blocking = [p for p in status.errors if p.key.split(".")[0].split("[")[0] in (*goals, "")]
    blocking += [
        p
        for p in status.errors
        if p.key.split(".")[0] in ("campaign_monitor", "objectives") and p not in blocking
    ]
    if blocking:
        show(status_html(status, editor.model))
        raise ConfigurationError(
            f"connection {editor.model.name!r} is not ready to run "
            + ", ".join(goals)
            + ": "
            + "; ".join(str(p) for p in blocking)
        )
    results = []
    for g in goals:
        result = editor.preview(g, full=full) if dry_run else editor.sync(g, full=full)
        publish(result)
        results.append(result)
        if not result.ok:
            raise RunError(
                f"{g} run {result.run_id} of {editor.model.name!r} failed: {result.error}"
            )
    return results


def publish(result: Any) -> None:
    """The result as HTML, plus the machine-readable copy ``cmtoolkit run`` reads back."""
    import json

    from cmtoolkit.batch.runner import RESULT_MIME

    data = json.loads(json.dumps(result.to_dict(), default=str))
    display({"text/html": result_html(result), RESULT_MIME: data}, raw=True)


def history_step(editor: ConnectionEditor, interactive: bool, goal: str = "all") -> None:
    if interactive:
        show(HistoryView(editor))
        return
    runs = [r for r in editor.history() if goal == "all" or r.goal == goal]
    show(history_html(runs))


def summary(results: Sequence[Any]) -> str:
    """One line per run, for the report's last cell."""
    if not results:
        return "<p>Nothing was run.</p>"
    return "".join(
        f"<p>{esc(r.goal)}: <b>{esc(r.state)}</b> — "
        + esc(", ".join(f"{k} {v:,}" for k, v in r.counts.items() if v) or "nothing to do")
        + "</p>"
        for r in results
    )
