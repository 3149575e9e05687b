"""The live preview (a dry run of the current model), the Run button and the run history."""

from __future__ import annotations

import ipywidgets as W

from cmtoolkit.connection.model import Connection
from cmtoolkit.errors import CmToolkitError, NotFound
from cmtoolkit.sync import Run
from cmtoolkit.widgets.debounce import Debouncer, Scheduler
from cmtoolkit.widgets.editor import ConnectionEditor
from cmtoolkit.widgets.html import (
    GREY,
    RED,
    counts_html,
    esc,
    history_html,
    human_key,
    import_notes_html,
    number_spreads_html,
    result_html,
    samples_html,
)
from cmtoolkit.widgets.progress import NotebookProgress
from cmtoolkit.widgets.rows import run_rows_html
from cmtoolkit.widgets.view import View

DEFAULT_DELAY = 0.6


def sample_people(editor: ConnectionEditor, goal: str, result: Run) -> dict[str, tuple[str, str]]:
    """Who each sampled profile of an import preview is: stored ones from the store, new ones
    from the identifier value the sample gives them."""
    samples = result.samples
    if goal != "import" or samples is None or not len(samples):
        return {}
    rows = samples.to_dicts()
    people = editor.people(sorted({str(r["profile_id"]) for r in rows}))
    imp = editor.model.import_
    ident = imp.identifiers[0].property if imp and imp.identifiers else "email"
    new: dict[str, dict[str, str]] = {}
    for r in rows:
        pid, after = str(r["profile_id"]), r["after"]
        if pid in people or not after or r["property"] not in (ident, "full_name", "name"):
            continue
        value = after[0] if isinstance(after, list) else after
        new.setdefault(pid, {})[r["property"]] = str(value)
    for pid, values in new.items():
        people[pid] = (values.get(ident, ""), values.get("full_name") or values.get("name", ""))
    return people


class PreviewPane(View):
    """Counts per outcome and a before/after sample of one goal, refreshed after edits.

    An edit marks the preview stale and (re)starts a short delay; when edits pause, the dry run
    runs once. ``scheduler`` is the delay's clock (a :class:`ManualScheduler` in tests).
    """

    def __init__(
        self,
        editor: ConnectionEditor,
        goal: str = "import",
        *,
        delay: float = DEFAULT_DELAY,
        scheduler: Scheduler | None = None,
        refresh_now: bool = True,
    ) -> None:
        super().__init__(editor)
        self.goal = goal
        self.result: Run | None = None
        self.refreshes = 0
        self.debouncer = Debouncer(delay, self.refresh, scheduler)
        self.state = W.HTML()
        self.counts = W.HTML()
        self.samples = W.HTML()
        self.refresh_button = W.Button(description="Refresh preview", icon="refresh")
        self.refresh_button.on_click(lambda _: self.refresh())
        self.children = [
            W.HBox([self.refresh_button, self.state]),
            self.counts,
            self.samples,
            self.message,
        ]
        if refresh_now:
            self.refresh()

    def redraw(self, model: Connection) -> None:
        self.state.value = f'<i style="color:{GREY}">settings changed — updating preview…</i>'
        self.debouncer.trigger()

    def refresh(self) -> None:
        """Run the dry run now and show it."""
        self.debouncer.cancel()
        if self.goal not in self.editor.model.goals:
            self.result = None
            self.counts.value = self.samples.value = self.state.value = ""
            self.message.value = f"<i>No {esc(self.goal)} goal yet: fill in its settings above.</i>"
            return
        self.state.value = f'<i style="color:{GREY}">computing preview…</i>'
        try:
            result = self.editor.preview(self.goal)
        except Exception as exc:  # shown, not raised: the analyst fixes the settings and retries
            self.result = None
            self.counts.value = ""
            self.samples.value = ""
            self.state.value = ""
            self.message.value = (
                f'<span style="color:{RED}">The preview cannot run yet: '
                f"{esc(exc if str(exc) else type(exc).__name__)}{esc(self._lists_hint(exc))}"
                "</span>"
            )
            return
        self.result = result
        self.refreshes += 1
        self.message.value = ""
        self.counts.value = (
            counts_html(result.counts, title=f"{self.goal}: what a run would do")
            + import_notes_html(result.details)
            + number_spreads_html(result.details)
        )
        people = sample_people(self.editor, self.goal, result)
        self.samples.value = samples_html(self.goal, result.samples, people)
        self.state.value = (
            f'<span style="color:{GREY}">dry run in {result.duration_s or 0:.1f} s; nothing was '
            "written</span>"
        )

    def _lists_hint(self, exc: Exception) -> str:
        """For a list id the account does not have: the lists it does have."""
        if not (isinstance(exc, NotFound) and exc.code == 101):
            return ""
        try:
            names = self.editor.list_names()
        except CmToolkitError:
            return ""
        shown = ", ".join(f"{name} ({list_id})" for list_id, name in names.items())
        return f" The client's lists: {shown or 'none'}."


class RunPanel(View):
    """Run (or dry-run) one goal of the current model and show the result."""

    def __init__(self, editor: ConnectionEditor, goals: tuple[str, ...] | None = None) -> None:
        super().__init__(editor)
        self.results: list[Run] = []
        self.pending: str | None = None
        choices = list(goals or ("import", "export", "targeting"))
        self.goal = W.Dropdown(description="Goal", options=choices)
        self.dry_run = W.Checkbox(description="Dry run", value=False, indent=False)
        self.full = W.Checkbox(description="Full (ignore what was synced)", indent=False)
        self.run_button = W.Button(description="Run now", icon="play", button_style="success")
        self.run_button.on_click(lambda _: self.ask())
        self.question = W.HTML()
        self.confirm_button = W.Button(
            description="Yes, run it", icon="check", button_style="danger"
        )
        self.confirm_button.on_click(lambda _: self.confirm())
        self.cancel_button = W.Button(description="Cancel", icon="times")
        self.cancel_button.on_click(lambda _: self.cancel())
        self.confirm_box = W.HBox(
            [self.question, self.confirm_button, self.cancel_button],
            layout=W.Layout(display="none"),
        )
        self.output = W.HTML()
        self.progress: NotebookProgress | None = None
        self.progress_box = W.VBox()
        self.children = [
            W.HBox([self.goal, self.dry_run, self.full, self.run_button]),
            self.confirm_box,
            self.progress_box,
            self.output,
            self.message,
        ]
        self.start()

    def redraw(self, model: Connection) -> None:
        configured = [g for g in self.goal.options if g in model.goals]
        self.run_button.disabled = not configured
        if self.editor.dirty:
            self.message.value = "<i>Runs use the settings on screen; Save to keep them.</i>"
        else:
            self.message.value = ""

    def ask(self) -> None:
        """Run now: a dry run is done at once; a real run first says what it would do (the
        preview's counts) and waits for *Yes, run it*. A goal whose status has errors is refused."""
        goal = self.goal.value
        if self.dry_run.value:
            self.run()
            return
        errors = [p for p in self.editor.status().errors if _concerns(p.key, goal)]
        if errors:
            self.output.value = (
                f'<span style="color:{RED}">✖ {esc(goal)} cannot run: fix first — '
                + "; ".join(esc(f"{human_key(p.key)}: {p.message}") for p in errors)
                + "</span>"
            )
            return
        self.output.value = f"<i>checking what the {esc(goal)} run would do…</i>"
        try:
            preview = self.editor.preview(goal, full=self.full.value)
        except Exception as exc:
            self.output.value = f'<span style="color:{RED}">{esc(exc)}</span>'
            return
        counts = ", ".join(f"{k} {v:,}" for k, v in preview.counts.items() if v)
        self.question.value = (
            f"<b>Run {esc(goal)} for real?</b> The preview says: {esc(counts or 'nothing to do')}. "
        )
        self.pending = goal
        self.output.value = ""
        self.confirm_box.layout.display = "flex"

    def confirm(self) -> Run | None:
        """*Yes, run it*: the run asked about (the goal chosen then)."""
        goal, self.pending = self.pending, None
        self.confirm_box.layout.display = "none"
        if goal is None:
            return None
        return self.run(goal)

    def cancel(self) -> None:
        self.pending = None
        self.confirm_box.layout.display = "none"
        self.output.value = "<i>not run</i>"

    def run(self, goal: str | None = None) -> Run | None:
        """Run (or dry-run) ``goal`` (the chosen one) now, without asking."""
        goal = goal or self.goal.value
        self.output.value = f"<i>running {esc(goal)}…</i>"
        self.progress = NotebookProgress()  # bars per stage, with rate and ETA, while it runs
        self.progress_box.children = (self.progress.box,)
        try:
            if self.dry_run.value:
                result = self.editor.preview(goal, full=self.full.value, progress=self.progress)
            else:
                result = self.editor.sync(goal, full=self.full.value, progress=self.progress)
        except Exception as exc:
            self.output.value = f'<span style="color:{RED}">{esc(exc)}</span>'
            return None
        self.results.append(result)
        # the people a real run did not send: by reason, then row by row (none: nothing shown)
        rows = run_rows_html(self.editor.workspace.store, self.editor.model.name, result.run_id)
        self.output.value = result_html(result) + rows
        return result


def _concerns(key: str, goal: str) -> bool:
    """Whether a status problem's key is about ``goal`` (or the whole connection)."""
    head = key.split(".")[0].split("[")[0]
    if head in ("schedule", "alerts"):  # matter to the scheduler, not to a run by hand
        return False
    return head not in ("import", "export", "targeting") or head == goal


class HistoryView(View):
    """The connection's runs, newest first, with a bar per run."""

    def __init__(self, editor: ConnectionEditor, *, limit: int = 50) -> None:
        super().__init__(editor)
        self.limit = limit
        self.html = W.HTML()
        self.refresh_button = W.Button(description="Refresh history", icon="refresh")
        self.refresh_button.on_click(lambda _: self._follow(self.editor.model))
        self.children = [self.refresh_button, self.html, self.message]
        self.start()

    def redraw(self, model: Connection) -> None:
        self.html.value = history_html(self.editor.history(self.limit))
