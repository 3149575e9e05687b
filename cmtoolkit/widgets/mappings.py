"""Rows editors: import identifiers (step 2) and field mappings with merge rules (step 3).

Each row is a few widgets plus a remove button; "Add" appends a row with sensible defaults.
Rows are rebuilt only when their number changes, so a value edited in the browser keeps its
widget (and its focus) while the rest of the screen follows.
"""

from __future__ import annotations

import re
from typing import Any

import ipywidgets as W

from cmtoolkit.connection.model import RULES, Connection, Identifier, ImportMapping
from cmtoolkit.widgets.editor import ConnectionEditor
from cmtoolkit.widgets.html import RED, RULE_LABELS, esc
from cmtoolkit.widgets.view import View, property_box, set_options


def default_property(field: str) -> str:
    """A property name for a Campaign Monitor field: ``loyalty points`` → ``loyalty_points``."""
    return re.sub(r"[^a-z0-9]+", "_", field.strip().lower()).strip("_") or "value"


def suggested_property(field: str) -> str:
    """The property a new row offers for ``field`` (``EmailAddress`` goes to ``email``)."""
    return "email" if field == "EmailAddress" else default_property(field)


class _Rows(View):
    """A list of rows bound to a tuple in the model."""

    add_label = "Add"
    #: The row's property follows its field while it is still the one suggested for the field.
    follow_field = False
    #: The status key of these rows (``import.mappings``): its problems show beside their row.
    status_key = ""
    #: Column headers over the rows, one per widget of a row.
    headers: tuple[tuple[str, str], ...] = ()

    def __init__(self, editor: ConnectionEditor) -> None:
        super().__init__(editor)
        self.rows: list[dict[str, Any]] = []
        self.rows_box = W.VBox()
        self.add_button = W.Button(description=self.add_label, icon="plus")
        self.add_button.on_click(lambda _: self.add())
        header = W.HBox(
            [W.HTML(f"<b>{text}</b>", layout=W.Layout(width=width)) for text, width in self.headers]
        )
        self.children = [header, self.rows_box, self.add_button, self.message]

    # subclasses: items(model), store(items), new_item(model), make_row(), fill(row, item, model),
    # read(row)

    def redraw(self, model: Connection) -> None:
        items = self.items(model)
        if len(items) != len(self.rows):
            self.rows = [self._row(i) for i in range(len(items))]
            self.rows_box.children = [r["box"] for r in self.rows]
        for row, item in zip(self.rows, items, strict=True):
            self.fill(row, item, model)
        self.show_row_problems()

    def show_row_problems(self) -> None:
        """Each status error about row i beside that row, numbered from 1 as on screen."""
        if not self.status_key or not self.rows:
            return
        try:
            errors = self.editor.status().errors
        except Exception:  # the status bar says why the status cannot be computed
            errors = []
        for i, row in enumerate(self.rows):
            prefix = f"{self.status_key}[{i}]"
            mine = [p for p in errors if p.key == prefix or p.key.startswith(prefix + ".")]
            row["error"].value = "".join(
                f'<div style="color:{RED}">✖ row {i + 1}: {esc(p.message)}</div>' for p in mine
            )

    def _row(self, index: int) -> dict[str, Any]:
        row = self.make_row()
        remove = W.Button(description="✕", tooltip="remove this row", layout=W.Layout(width="40px"))
        remove.on_click(lambda _: self.remove(index))
        row["remove"] = remove
        row["error"] = W.HTML(layout=W.Layout(max_width="640px"))
        row["box"] = W.HBox([*row["widgets"], remove, row["error"]])
        if self.follow_field:  # observed first: the property is renamed before the row is read
            row["field"].observe(lambda c: self._field_changed(row, c), "value")
        for widget in row["widgets"]:
            widget.observe(lambda _c: self._row_changed(), "value")
        return row

    def _field_changed(self, row: dict[str, Any], change: dict[str, Any]) -> None:
        """A new field gets its suggested property, unless the user chose another one."""
        if self.updating or not change["new"]:
            return
        old = change["old"] or ""
        current = row["property"].value.strip()
        if current in ("", suggested_property(old), default_property(old)):
            with self.quiet():
                row["property"].value = suggested_property(change["new"])

    def _row_changed(self) -> None:
        if self.updating:
            return
        items = tuple(self.read(r) for r in self.rows)
        problems = [p for p in map(self.incomplete, items) if p]
        if problems:
            self.show_error(problems[0])
            return
        self.message.value = ""
        self.store(items)

    def add(self) -> None:
        model = self.editor.model
        self.store((*self.items(model), self.new_item(model)))

    def remove(self, index: int) -> None:
        items = list(self.items(self.editor.model))
        if 0 <= index < len(items):
            del items[index]
            self.store(tuple(items))

    def field_names(self, model: Connection) -> list[str]:
        lists = model.import_.lists if model.import_ else ()
        return self.editor.field_names(lists)

    def incomplete(self, item: Any) -> str | None:
        """Why a row cannot go into the model yet (it stays on screen until fixed)."""
        if not item.property:
            return "name a profile property (pick one or type a new name)"
        return None

    def items(self, model: Connection) -> tuple[Any, ...]:
        raise NotImplementedError

    def store(self, items: tuple[Any, ...]) -> None:
        raise NotImplementedError

    def new_item(self, model: Connection) -> Any:
        raise NotImplementedError

    def make_row(self) -> dict[str, Any]:
        raise NotImplementedError

    def fill(self, row: dict[str, Any], item: Any, model: Connection) -> None:
        raise NotImplementedError

    def read(self, row: dict[str, Any]) -> Any:
        raise NotImplementedError


def _field_dropdown() -> W.Dropdown:
    return W.Dropdown(options=[], layout=W.Layout(width="220px"))


class IdentifierLinker(_Rows):
    """Import step 2: which Campaign Monitor field matches which profile property, in order."""

    add_label = "Add identifier"
    follow_field = True
    status_key = "import.identifiers"
    headers = (("Campaign Monitor field", "220px"), ("profile property", "240px"))

    def __init__(self, editor: ConnectionEditor) -> None:
        super().__init__(editor)
        self.start()

    def items(self, model: Connection) -> tuple[Identifier, ...]:
        return model.import_.identifiers if model.import_ else ()

    def store(self, items: tuple[Identifier, ...]) -> None:
        self.editor.edit_import(identifiers=items)

    def new_item(self, model: Connection) -> Identifier:
        used = {i.field for i in self.items(model)}
        field = "EmailAddress" if "EmailAddress" not in used else "MobileNumber"
        return Identifier(field, suggested_property(field))

    def make_row(self) -> dict[str, Any]:
        field, prop = _field_dropdown(), property_box()
        return {"field": field, "property": prop, "widgets": [field, prop]}

    def fill(self, row: dict[str, Any], item: Identifier, model: Connection) -> None:
        set_options(row["field"], self.field_names(model), item.field)
        row["property"].options = tuple(sorted(self.editor.properties()))
        row["property"].value = item.property

    def read(self, row: dict[str, Any]) -> Identifier:
        return Identifier(row["field"].value or "EmailAddress", row["property"].value.strip())


class MappingEditor(_Rows):
    """Import step 3: Campaign Monitor field → profile property, with a merge rule per row."""

    add_label = "Add variable"
    follow_field = True
    status_key = "import.mappings"
    headers = (
        ("Campaign Monitor field", "220px"),
        ("profile property", "240px"),
        ("merge rule", "130px"),
    )

    def __init__(self, editor: ConnectionEditor) -> None:
        super().__init__(editor)
        self.start()

    def items(self, model: Connection) -> tuple[ImportMapping, ...]:
        return model.import_.mappings if model.import_ else ()

    def store(self, items: tuple[ImportMapping, ...]) -> None:
        self.editor.edit_import(mappings=items)

    def new_item(self, model: Connection) -> ImportMapping:
        used = {m.field for m in self.items(model)}
        names = self.field_names(model)
        free = [f for f in names if f not in used and f not in ("EmailAddress", "State")]
        field = free[0] if free else "Name"
        return ImportMapping(field, default_property(field), "set")

    def make_row(self) -> dict[str, Any]:
        field, prop = _field_dropdown(), property_box()
        rule = W.Dropdown(
            options=[(RULE_LABELS[r], r) for r in RULES], layout=W.Layout(width="130px")
        )
        return {"field": field, "property": prop, "rule": rule, "widgets": [field, prop, rule]}

    def fill(self, row: dict[str, Any], item: ImportMapping, model: Connection) -> None:
        set_options(row["field"], self.field_names(model), item.field)
        row["property"].options = tuple(sorted(self.editor.properties()))
        row["property"].value = item.property
        row["rule"].value = item.rule

    def read(self, row: dict[str, Any]) -> ImportMapping:
        return ImportMapping(
            row["field"].value or "Name", row["property"].value.strip(), row["rule"].value
        )

    def set_rule(self, index: int, rule: str) -> None:
        """What picking a rule in row ``index`` does (for scripts and tests)."""
        self.rows[index]["rule"].value = rule
