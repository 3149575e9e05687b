"""Choosing Campaign Monitor lists: the import goal's step 1, and the list choice of export and
targeting."""

from __future__ import annotations

from typing import Any

import ipywidgets as W

from cmtoolkit.campaign_monitor.fields import STATES
from cmtoolkit.connection.model import Connection, ExportGoal, ImportGoal, TargetingGoal
from cmtoolkit.widgets.editor import ConnectionEditor
from cmtoolkit.widgets.view import View, property_box


def goal_of(model: Connection, goal: str) -> ImportGoal | ExportGoal | TargetingGoal | None:
    goals = {"import": model.import_, "export": model.export, "targeting": model.targeting}
    return goals[goal]


def edit_goal(editor: ConnectionEditor, goal: str, **changes: Any) -> None:
    edits = {
        "import": editor.edit_import,
        "export": editor.edit_export,
        "targeting": editor.edit_targeting,
    }
    edits[goal](**changes)


def list_options(editor: ConnectionEditor, selected: tuple[str, ...]) -> list[tuple[str, str]]:
    """``(label, list_id)``: each list with its active subscriber count; unknown ids flagged."""
    options = []
    for x in editor.lists():
        count = editor.subscriber_count(x.list_id)
        label = f"{x.name} — {count:,} active" if count is not None else x.name
        options.append((label, x.list_id))
    known = {o[1] for o in options}
    options += [(f"⚠ unknown list {i}", i) for i in selected if i not in known]
    return options


class ListSelect(View):
    """The lists of one goal, with their subscriber counts."""

    def __init__(self, editor: ConnectionEditor, goal: str, *, description: str = "Lists") -> None:
        super().__init__(editor)
        self.goal = goal
        self.select = W.SelectMultiple(
            description=description, options=[], rows=4, layout=W.Layout(width="520px")
        )
        self.select.observe(self._changed, "value")
        self.children = [self.select, self.message]
        self.start()

    def redraw(self, model: Connection) -> None:
        goal = goal_of(model, self.goal)
        selected = tuple(goal.lists) if goal is not None else ()
        options = list_options(self.editor, selected)
        if list(self.select.options) != options:
            self.select.options = options
        self.select.value = selected
        self.message.value = "" if options else "<i>Select a client first: no lists to show.</i>"

    def _changed(self, change: dict[str, Any]) -> None:
        if not self.updating:
            edit_goal(self.editor, self.goal, lists=tuple(change["new"]))


class ListPicker(View):
    """Import step 1: lists, subscriber states, profile creation and the list-names property."""

    def __init__(self, editor: ConnectionEditor) -> None:
        super().__init__(editor)
        self.lists = ListSelect(editor, "import")
        self.states = {
            s: W.Checkbox(description=s, indent=False, layout=W.Layout(width="120px"))
            for s in STATES
        }
        for box in self.states.values():
            box.observe(self._states_changed, "value")
        self.allow_create = W.Checkbox(
            description="Allow to create new profiles", indent=False, layout=W.Layout(width="auto")
        )
        self.allow_create.observe(self._allow_changed, "value")
        self.save_names = W.Checkbox(
            description="Save the lists the profile was imported from in",
            indent=False,
            layout=W.Layout(width="auto"),
        )
        self.save_names.observe(self._save_names_changed, "value")
        self.names_property = property_box()
        self.names_property.observe(self._save_names_changed, "value")
        self.children = [
            self.lists,
            W.HBox([W.Label("Subscriber states:"), *self.states.values()]),
            self.allow_create,
            W.HBox([self.save_names, self.names_property]),
            self.message,
        ]
        self.start()

    def redraw(self, model: Connection) -> None:
        imp = model.import_
        states = imp.states if imp else ("Active",)
        for s, box in self.states.items():
            box.value = s in states
        self.allow_create.value = bool(imp and imp.allow_create)
        target = imp.save_list_names_to if imp else None
        self.names_property.options = tuple(sorted(self.editor.properties()))
        self.save_names.value = target is not None
        self.names_property.value = target or ""
        self.names_property.disabled = target is None

    def _states_changed(self, change: dict[str, Any]) -> None:
        if not self.updating:
            states = tuple(s for s, box in self.states.items() if box.value)
            self.editor.edit_import(states=states)

    def _allow_changed(self, change: dict[str, Any]) -> None:
        if not self.updating:
            self.editor.edit_import(allow_create=bool(change["new"]))

    def _save_names_changed(self, change: dict[str, Any]) -> None:
        if self.updating:
            return
        if not self.save_names.value:
            self.editor.edit_import(save_list_names_to=None)
            return
        name = self.names_property.value.strip() or "cm_lists"
        self.editor.edit_import(save_list_names_to=name)
