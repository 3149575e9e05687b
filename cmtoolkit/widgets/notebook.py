"""What the analyst notebooks call: one function per step, interactive or batch.

Each notebook's ``parameters`` cell holds names and paths only (``connection``, ``workspace``,
``interactive``, ``goal``, ``dry_run``, ``full``, and where a goal runs ``run_id``). Interactive,
a step shows its widgets; in batch (``interactive=False``, papermill) the same step renders a
static table, and :func:`run_step` runs the goal and raises when a run fails, so papermill exits
non-zero. :func:`run_step` is the one way a notebook runs a goal; ``cmtoolkit run`` allocates the
run and passes its ``run_id``.
"""

from __future__ import annotations

import os
from collections.abc import Sequence

import ipywidgets as W
from IPython.display import HTML, display

from cmtoolkit.campaign_monitor import CampaignMonitor, OAuthApp
from cmtoolkit.connection.file import connection_path, find_connection
from cmtoolkit.connection.status import Status
from cmtoolkit.credentials import CredentialStore
from cmtoolkit.errors import ConfigurationError, RunError
from cmtoolkit.sync import GoalName, Run, check_ready
from cmtoolkit.widgets.auth import AuthPanel
from cmtoolkit.widgets.editor import ConnectionEditor
from cmtoolkit.widgets.exporting import ExportEditor, TargetingEditor
from cmtoolkit.widgets.html import (
    counts_html,
    esc,
    export_settings_html,
    history_html,
    import_settings_html,
    number_spreads_html,
    samples_html,
    status_html,
    table,
)
from cmtoolkit.widgets.lists import ListPicker
from cmtoolkit.widgets.locate import resolve_workspace
from cmtoolkit.widgets.mappings import IdentifierLinker, MappingEditor
from cmtoolkit.widgets.preview import HistoryView, PreviewPane, RunPanel, sample_people
from cmtoolkit.widgets.progress import progress_callback
from cmtoolkit.widgets.published import publish
from cmtoolkit.widgets.settings import ConnectionSettings, NameBox
from cmtoolkit.widgets.status import SaveBar, StatusBar
from cmtoolkit.workspace import Workspace

EXPORT_GOALS = ("export", "targeting")


def open_editor(
    workspace: str | os.PathLike[str] | Workspace,
    connection: str,
    *,
    client: CampaignMonitor | None = None,
    credentials: CredentialStore | None = None,
    create: bool = False,
) -> ConnectionEditor:
    """The connection ``connection`` of the workspace folder ``workspace``; with ``create``, a
    new one (not saved until *Save*) when the workspace has none of that name.

    A relative folder name is found from the notebook's folder up to the repository root (and
    the default ``workspace`` is ``$CMTOOLKIT_WORKSPACE`` when set): see :mod:`.locate`.
    """
    if not isinstance(workspace, Workspace):
        workspace = Workspace.open(resolve_workspace(workspace))
    if create and not connection_path(workspace.path, connection).exists():
        try:
            find_connection(workspace.path, connection)
        except ConfigurationError:
            return ConnectionEditor.new(
                workspace, connection, client=client, credentials=credentials
            )
    return ConnectionEditor.open(workspace, connection, client=client, credentials=credentials)


def show(obj: W.Widget | str) -> None:
    """Display a widget or an HTML string (steps return nothing, so nothing shows twice); an
    empty string shows nothing (a report leaves out a section with nothing in it)."""
    if isinstance(obj, str):
        if obj:
            display(HTML(obj))
        return
    display(obj)


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


def auth_step(
    editor: ConnectionEditor, interactive: bool, *, oauth_app: OAuthApp | None = None
) -> None:
    if interactive:
        show(AuthPanel(editor, oauth_app=oauth_app))
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


def settings_step(editor: ConnectionEditor, interactive: bool) -> None:
    """The connection's name (while new), on/off, schedule, objectives and alerts."""
    if interactive:
        show(W.VBox([NameBox(editor), ConnectionSettings(editor)]))


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
        children: list[W.Widget] = []
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
        parts.append(number_spreads_html(result.details))
        parts.append(samples_html(g, result.samples, sample_people(editor, g, result)))
    show("".join(parts))


def ready(status: Status, goal: str) -> bool:
    """Whether ``status`` lets ``goal`` run (configured, and no error concerns it)."""
    return {
        GoalName.IMPORT: status.import_ready,
        GoalName.EXPORT: status.export_ready,
        GoalName.TARGETING: status.targeting_ready,
    }.get(GoalName(goal), False)


def run_step(
    editor: ConnectionEditor,
    goals: Sequence[str],
    *,
    interactive: bool,
    dry_run: bool = False,
    full: bool = False,
    run_id: str | None = None,
) -> list[Run]:
    """Interactive: a Run panel. Batch: run the goals in order; raise when one fails.

    ``run_id`` is the run ``cmtoolkit run`` recorded for the one goal of this notebook run.
    """
    if interactive:
        show(RunPanel(editor, tuple(goals)))
        return []
    if run_id is not None and (dry_run or len(goals) != 1):
        raise ConfigurationError(
            f"run id {run_id} belongs to one real run of one goal, not to "
            + ("a dry run" if dry_run else ", ".join(goals))
        )
    status = editor.status()
    try:
        # The one readiness gate (DESIGN §7). A run id comes from 'cmtoolkit run', which already
        # passed it (with its --force) before starting this notebook.
        check_ready(editor.model, status, force=run_id is not None, dry_run=dry_run)
    except ConfigurationError:
        show(status_html(status, editor.model))
        raise
    if not all(ready(status, g) for g in goals):
        show(status_html(status, editor.model))
        raise ConfigurationError(
            f"connection {editor.model.name!r} has no {', '.join(goals)} goal to run"
        )
    progress = progress_callback(interactive=False)
    results = []
    for g in goals:
        if dry_run:
            result = editor.preview(g, full=full, progress=progress)
        else:
            result = editor.sync(g, full=full, run_id=run_id, progress=progress)
        publish(result)
        results.append(result)
        if not result.ok:
            raise RunError(
                f"{g} run {result.run_id} of {editor.model.name!r} failed: {result.error}"
            )
    return results


def history_step(editor: ConnectionEditor, interactive: bool, goal: str = "all") -> None:
    if interactive:
        show(HistoryView(editor))
        return
    runs = [r for r in editor.history() if goal == "all" or r.goal == goal]
    show(history_html(runs))


def summary(results: Sequence[Run]) -> str:
    """One line per run, for the report's last cell."""
    if not results:
        return "<p>Nothing was run.</p>"
    return "".join(
        f"<p>{esc(r.goal)}: <b>{esc(r.state)}</b> — "
        + esc(", ".join(f"{k} {v:,}" for k, v in r.counts.items() if v) or "nothing to do")
        + "</p>"
        for r in results
    )
