"""The base of every widget here: a box that follows a :class:`ConnectionEditor`.

A view writes user changes into the editor (``editor.edit_*``) and redraws itself from the
editor's model when told of a change. While it redraws, ``updating`` is set, so the widget events
its own redraw causes (e.g. new dropdown options resetting the value) are not taken for edits.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterator, Sequence
from typing import Any

import ipywidgets as W

from cmtoolkit.connection.model import Connection
from cmtoolkit.errors import CmToolkitError
from cmtoolkit.widgets.editor import ConnectionEditor
from cmtoolkit.widgets.html import RED, esc

log = logging.getLogger(__name__)


class View(W.VBox):
    """A VBox bound to an editor; subclasses implement :meth:`redraw`."""

    def __init__(self, editor: ConnectionEditor, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.editor = editor
        self.updating = False
        self.message = W.HTML()
        editor.observe(self._follow)

    def _follow(self, model: Connection) -> None:
        with self.quiet():
            try:
                self.redraw(model)
            except CmToolkitError as exc:
                self.show_error(str(exc))

    @contextlib.contextmanager
    def quiet(self) -> Iterator[None]:
        before = self.updating
        self.updating = True
        try:
            yield
        finally:
            self.updating = before

    def redraw(self, model: Connection) -> None:
        raise NotImplementedError

    def start(self) -> None:
        """First draw (subclasses call it at the end of ``__init__``)."""
        self._follow(self.editor.model)

    def show_error(self, text: str) -> None:
        self.message.value = f'<span style="color:{RED}">{esc(text)}</span>'

    def show_info(self, text: str) -> None:
        self.message.value = f"<span>{esc(text)}</span>"

    def close(self) -> None:
        self.editor.unobserve(self._follow)
        super().close()


def set_options(
    widget: W.Dropdown | W.Combobox | W.Select,
    options: Sequence[object],
    value: object,
) -> None:
    """Options then value, adding a value the options lack (a broken choice stays visible).

    With no value, a "choose" placeholder is selected, so the screen never shows a choice the
    model does not hold.
    """
    # All as (label, value) pairs: ipywidgets takes a mix of plain values and pairs for plain
    # values, so an added ("⚠ …", value) pair would not offer ``value`` (a TraitError).
    pairs: list[tuple[str, object]] = [
        (str(o[0]), o[1]) if isinstance(o, tuple | list) else (str(o), o) for o in options
    ]
    values = [v for _, v in pairs]
    if value in (None, ""):
        value = None
        pairs = [("— choose —", None), *pairs]
    elif value not in values:
        pairs = [*pairs, (f"⚠ {value} (not found)", value)]
    current = [tuple(o) if isinstance(o, tuple | list) else (str(o), o) for o in widget.options]
    if current != pairs:
        widget.options = pairs
    widget.value = value


def property_box(
    description: str = "", placeholder: str = "search or create a property"
) -> W.Combobox:
    """A combobox over the store's properties that also takes a new name (on Enter or blur)."""
    return W.Combobox(
        description=description,
        placeholder=placeholder,
        options=[],
        ensure_option=False,
        continuous_update=False,
        layout=W.Layout(width="240px"),
    )
