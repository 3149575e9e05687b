"""The status indicator (readiness arrows, what to fix) and the Save button."""

from __future__ import annotations

from typing import Any

import ipywidgets as W

from cmtoolkit.connection.model import Connection
from cmtoolkit.connection.status import Status
from cmtoolkit.errors import CmToolkitError
from cmtoolkit.widgets.editor import ConnectionEditor
from cmtoolkit.widgets.html import AMBER, GREEN, esc, status_html
from cmtoolkit.widgets.view import View


class StatusBar(View):
    """BlueConic's status: import/export arrows, then every error with what to change."""

    def __init__(self, editor: ConnectionEditor) -> None:
        super().__init__(editor)
        self.status: Status | None = None
        self.html = W.HTML()
        self.refresh_button = W.Button(
            description="Check again",
            icon="refresh",
            tooltip="re-read Campaign Monitor",
            layout=W.Layout(width="140px", min_width="140px"),
        )
        self.refresh_button.on_click(lambda _: self.recheck())
        self.children = [W.HBox([self.html, self.refresh_button]), self.message]
        self.start()

    def redraw(self, model: Connection) -> None:
        self.status = self.editor.status()
        self.html.value = status_html(self.status, model)

    def recheck(self) -> None:
        """Forget what was read from Campaign Monitor (lists, fields) and check again."""
        self.editor.recheck()
        self._follow(self.editor.model)

    @property
    def errors(self) -> list[str]:
        return [str(p) for p in self.status.errors] if self.status else []


class SaveBar(View):
    """Save writes ``connections/<name>.yaml``; Revert goes back to the file."""

    def __init__(self, editor: ConnectionEditor, *, before_save: Any = None) -> None:
        super().__init__(editor)
        self.before_save = before_save
        self.save_button = W.Button(description="Save", icon="save", button_style="primary")
        self.save_button.on_click(lambda _: self.save())
        self.revert_button = W.Button(description="Revert", icon="undo")
        self.revert_button.on_click(lambda _: self.revert())
        self.state = W.HTML()
        self.children = [W.HBox([self.save_button, self.revert_button, self.state]), self.message]
        self.start()

    def redraw(self, model: Connection) -> None:
        self.state.value = (
            "<i>unsaved changes</i>"
            if self.editor.dirty
            else f'<span style="color:{GREEN}">saved in {esc(self.editor.path.name)}</span>'
        )
        self.revert_button.disabled = not self.editor.path.exists()

    def save(self) -> None:
        """Save; while the status has errors, save switched off and say so (a scheduled run of
        a broken connection would only fail)."""
        try:
            errors = self.editor.status().errors
            if errors and self.editor.model.enabled:
                self.editor.edit(enabled=False)
            path = self.editor.save()
        except (CmToolkitError, OSError) as exc:
            self.show_error(f"not saved: {exc}")
            return
        if errors:
            self.message.value = ""
            self.state.value = (
                f'<span style="color:{AMBER}">⚠ saved to {esc(path)} <b>switched off</b>: '
                f"{len(errors)} problem(s) to fix first (listed above); switch it on once the "
                "status is green</span>"
            )
            return
        self.message.value = ""
        self.state.value = f'<span style="color:{GREEN}">✔ saved to {esc(path)}</span>'

    def revert(self) -> None:
        self.editor.reload()
        self._follow(self.editor.model)
