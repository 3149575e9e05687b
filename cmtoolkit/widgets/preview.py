"""The live preview (a dry run of the current model), the Run button and the run history."""

from __future__ import annotations

import ipywidgets as W

from cmtoolkit.connection.model import Connection
from cmtoolkit.sync import Run
from cmtoolkit.widgets.debounce import Debouncer, Scheduler
from cmtoolkit.widgets.editor import ConnectionEditor
from cmtoolkit.widgets.html import (
    GREY,
    RED,
    counts_html,
    esc,
    history_html,
    import_notes_html,
    result_html,
    samples_html,
)
from cmtoolkit.widgets.view import View

DEFAULT_DELAY = 0.6


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
                f"{esc(exc if str(exc) else type(exc).__name__)}</span>"
            )
            return
        self.result = result
        self.refreshes += 1
        self.message.value = ""
        self.counts.value = counts_html(
            result.counts, title=f"{self.goal}: what a run would do"
        ) + import_notes_html(result.details)
        self.samples.value = samples_html(self.goal, result.samples)
        self.state.value = (
            f'<span style="color:{GREY}">dry run in {result.duration_s or 0:.1f} s; nothing was '
            "written</span>"
        )


class RunPanel(View):
    """Run (or dry-run) one goal of the current model and show the result."""

    def __init__(self, editor: ConnectionEditor, goals: tuple[str, ...] | None = None) -> None:
        super().__init__(editor)
        self.results: list[Run] = []
        choices = list(goals or ("import", "export", "targeting"))
        self.goal = W.Dropdown(description="Goal", options=choices)
        self.dry_run = W.Checkbox(description="Dry run", value=False, indent=False)
        self.full = W.Checkbox(description="Full (ignore what was synced)", indent=False)
        self.run_button = W.Button(description="Run now", icon="play", button_style="success")
        self.run_button.on_click(lambda _: self.run())
        self.output = W.HTML()
        self.children = [
            W.HBox([self.goal, self.dry_run, self.full, self.run_button]),
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

    def run(self) -> Run | None:
        goal = self.goal.value
        self.output.value = f"<i>running {esc(goal)}…</i>"
        try:
            if self.dry_run.value:
                result = self.editor.preview(goal, full=self.full.value)
            else:
                result = self.editor.sync(goal, full=self.full.value)
        except Exception as exc:
            self.output.value = f'<span style="color:{RED}">{esc(exc)}</span>'
            return None
        self.results.append(result)
        self.output.value = result_html(result)
        return result


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
