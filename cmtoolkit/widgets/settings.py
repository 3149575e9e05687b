"""The connection's own settings in ``01_connect``: switched on or off, its schedule, the consent
objectives it respects, and its alerts — what was YAML-only before.

Every control writes the current model through the editor (Save keeps it). The schedule is a
preset or a cron expression checked as it is typed (:func:`cmtoolkit.connection.cron.cron_problem`,
UTC), with its next three run times beside it; objectives are picked from those the store's
profiles hold, each with how many profiles consent to it.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import ipywidgets as W

from cmtoolkit.connection.cron import cron_problem, next_runs
from cmtoolkit.connection.model import Connection
from cmtoolkit.errors import CmToolkitError
from cmtoolkit.profiles.consent import CONSENTED
from cmtoolkit.profiles.quoting import quote_ident
from cmtoolkit.widgets.editor import ConnectionEditor
from cmtoolkit.widgets.html import GREY, RED, esc
from cmtoolkit.widgets.view import View

CUSTOM = "custom"
#: (label, cron expression in UTC); "" = run by hand only (None would show a blank choice).
PRESETS: tuple[tuple[str, str], ...] = (
    ("Not scheduled (run by hand)", ""),
    ("Every hour", "0 * * * *"),
    ("Every day at 03:00 UTC", "0 3 * * *"),
    ("Weekdays at 06:00 UTC", "0 6 * * 1-5"),
    ("Mondays at 06:00 UTC", "0 6 * * 1"),
    ("Custom (cron, UTC)…", CUSTOM),
)
LABEL = {"description_width": "150px"}
NEXT_RUNS = 3


def utc_now() -> datetime:
    return datetime.now(UTC).replace(tzinfo=None)


def wide() -> W.Layout:
    """A fresh layout per widget (a shared one would be closed with the first widget)."""
    return W.Layout(width="520px")


def objective_counts(editor: ConnectionEditor) -> dict[str, int]:
    """Each consent objective the store's profiles hold, with how many profiles consent to it."""
    ws = editor.workspace
    if not ws.database_path.exists() or CONSENTED not in editor.properties():
        return {}
    sql = (
        f"SELECT o, count(*) FROM (SELECT unnest({quote_ident(CONSENTED)}) AS o FROM profiles) "
        "WHERE o IS NOT NULL GROUP BY o ORDER BY o"
    )
    with ws.store.connect() as con:
        return {str(o): int(n) for o, n in con.execute(sql).fetchall()}


class NameBox(View):
    """The connection's name: editable while it is new (not saved), which also names its file."""

    def __init__(self, editor: ConnectionEditor) -> None:
        super().__init__(editor)
        self.name = W.Text(
            description="Name", continuous_update=False, style=LABEL, layout=W.Layout(width="420px")
        )
        self.name.observe(self._changed, "value")
        self.note = W.HTML()
        self.children = [W.HBox([self.name, self.note]), self.message]
        self.start()

    def redraw(self, model: Connection) -> None:
        self.name.value = model.name
        new = not self.editor.path.exists()
        self.name.disabled = not new
        self.note.value = (
            f"<i>new connection: Save writes connections/{esc(self.editor.path.name)}</i>"
            if new
            else f'<span style="color:{GREY}">{esc(self.editor.path)}</span>'
        )

    def _changed(self, change: dict[str, Any]) -> None:
        if self.updating:
            return
        try:
            self.editor.rename(change["new"].strip())
        except CmToolkitError as exc:
            with self.quiet():
                self.name.value = self.editor.model.name
            self.show_error(str(exc))
            return
        self.message.value = ""


class ConnectionSettings(View):
    """On/off, schedule, consent objectives and alerts of the connection.

    ``clock`` gives "now" (naive UTC) for the schedule's next run times (fixed in tests).
    """

    def __init__(
        self, editor: ConnectionEditor, *, clock: Callable[[], datetime] = utc_now
    ) -> None:
        super().__init__(editor)
        self.clock = clock
        self.enabled = W.ToggleButtons(
            description="Connection",
            options=[("Off", False), ("On: runs on its schedule", True)],
            style={**LABEL, "button_width": "200px"},
        )
        self.enabled.observe(self._enabled_changed, "value")
        self.preset = W.Dropdown(
            description="Schedule", options=list(PRESETS), style=LABEL, layout=wide()
        )
        self.preset.observe(self._preset_changed, "value")
        self.cron = W.Text(
            description="Cron (UTC)",
            placeholder="minute hour day month weekday, e.g. 30 5 * * 1-5",
            continuous_update=False,
            style=LABEL,
            layout=wide(),
        )
        self.cron.observe(self._cron_changed, "value")
        self.cron_note = W.HTML()
        self.objectives = W.SelectMultiple(
            description="Consent objectives", rows=4, style=LABEL, layout=wide()
        )
        self.objectives.observe(self._objectives_changed, "value")
        self.objectives_note = W.HTML()
        self.on_failure = W.Checkbox(description="Alert when a run fails", indent=False)
        self.rejected = W.Text(
            description="Alert above",
            placeholder="rejected rows (empty: no alert)",
            continuous_update=False,
            style=LABEL,
            layout=W.Layout(width="360px"),
        )
        self.webhook = W.Text(
            description="Webhook URL",
            placeholder="https://… (alerts are POSTed here as JSON)",
            continuous_update=False,
            style=LABEL,
            layout=wide(),
        )
        for box in (self.on_failure, self.rejected, self.webhook):
            box.observe(self._alerts_changed, "value")
        self.alerts_note = W.HTML()
        self.children = [
            self.enabled,
            self.preset,
            W.HBox([self.cron, self.cron_note]),
            self.objectives,
            self.objectives_note,
            W.HTML("<b>Alerts</b>"),
            self.on_failure,
            self.rejected,
            self.webhook,
            self.alerts_note,
            self.message,
        ]
        self.start()

    # --- view -----------------------------------------------------------------------------------

    def redraw(self, model: Connection) -> None:
        self.enabled.value = model.enabled
        presets = {cron: label for label, cron in PRESETS if cron != CUSTOM}
        if (model.schedule or "") in presets:
            self.preset.value = model.schedule or ""
        else:
            self.preset.value = CUSTOM
        self.cron.value = model.schedule or ""
        self.cron.disabled = self.preset.value != CUSTOM
        self.cron_note.value = self._describe(model.schedule)
        counts = objective_counts(self.editor)
        options = [(f"{o} — {n:,} profiles consent", o) for o, n in counts.items()]
        options += [
            (f"⚠ {o} (no profile consents)", o) for o in model.objectives if o not in counts
        ]
        if list(self.objectives.options) != options:
            self.objectives.options = options
        self.objectives.value = tuple(model.objectives)
        self.objectives_note.value = (
            f'<span style="color:{GREY}">none chosen: every profile is processed</span>'
            if not model.objectives
            else f'<span style="color:{GREY}">only profiles consenting to one of these</span>'
        )
        alerts = model.alerts or {}
        self.on_failure.value = bool(alerts.get("on_failure", bool(alerts)))
        rejected = alerts.get("rejected_above")
        self.rejected.value = "" if rejected is None else str(rejected)
        self.webhook.value = str(alerts.get("webhook") or "")

    def _describe(self, schedule: str | None) -> str:
        if not schedule:
            return f'<span style="color:{GREY}">runs only when started by hand</span>'
        problem = cron_problem(schedule)
        if problem:
            return f'<span style="color:{RED}">{esc(problem)}</span>'
        times = ", ".join(f"{t:%a %Y-%m-%d %H:%M}" for t in next_runs(schedule, self.clock()))
        return (
            f'<span class="cm-next-runs" style="color:{GREY}">next runs (UTC): '
            f"<b>{esc(times)}</b></span>"
        )

    # --- edits ----------------------------------------------------------------------------------

    def _enabled_changed(self, change: dict[str, Any]) -> None:
        if not self.updating:
            self.editor.edit(enabled=bool(change["new"]))

    def _preset_changed(self, change: dict[str, Any]) -> None:
        if self.updating:
            return
        if change["new"] == CUSTOM:
            self.cron.disabled = False
            self.cron_note.value = "<i>type a cron expression (UTC) and press Enter</i>"
            return
        self.editor.edit(schedule=change["new"] or None)

    def _cron_changed(self, change: dict[str, Any]) -> None:
        if self.updating:
            return
        text = change["new"].strip()
        problem = cron_problem(text) if text else None
        if problem:
            self.cron_note.value = f'<span style="color:{RED}">not saved: {esc(problem)}</span>'
            return
        self.editor.edit(schedule=text or None)

    def _objectives_changed(self, change: dict[str, Any]) -> None:
        if not self.updating:
            self.editor.edit(objectives=tuple(change["new"]))

    def _alerts_changed(self, change: dict[str, Any]) -> None:
        if self.updating:
            return
        alerts: dict[str, object] = {}
        if self.on_failure.value:
            alerts["on_failure"] = True
        text = self.rejected.value.strip()
        if text:
            if not text.isdigit():
                self.alerts_note.value = (
                    f'<span style="color:{RED}">rejected rows: a whole number, e.g. 10</span>'
                )
                return
            alerts["rejected_above"] = int(text)
        url = self.webhook.value.strip()
        if url:
            if not url.startswith(("http://", "https://")):
                self.alerts_note.value = (
                    f'<span style="color:{RED}">webhook: an http:// or https:// address</span>'
                )
                return
            alerts["webhook"] = url
        if alerts and "on_failure" not in alerts:
            alerts["on_failure"] = False
        self.alerts_note.value = ""
        self.editor.edit(alerts=alerts or None)
