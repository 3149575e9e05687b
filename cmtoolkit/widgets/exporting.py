"""The export goal (segment → lists, matching property, value mappings) and the targeting goal."""

from __future__ import annotations

from typing import Any

import ipywidgets as W

from cmtoolkit.campaign_monitor.fields import STANDARD_FIELDS, WRITABLE_STANDARD_FIELDS
from cmtoolkit.connection.model import (
    CONSENT_TO_TRACK,
    ON_LEAVE,
    VALUE_TYPES,
    Connection,
    ExportMapping,
)
from cmtoolkit.widgets.editor import ConnectionEditor
from cmtoolkit.widgets.html import VALUE_TYPE_LABELS, sizes_html
from cmtoolkit.widgets.lists import ListSelect
from cmtoolkit.widgets.mappings import _Rows, default_property
from cmtoolkit.widgets.view import View, property_box, set_options


def export_field_names(editor: ConnectionEditor, lists: tuple[str, ...]) -> list[str]:
    """Fields an export can write: Name, MobileNumber and the lists' custom fields."""
    names = editor.field_names(lists)
    return [n for n in names if n not in STANDARD_FIELDS or n in WRITABLE_STANDARD_FIELDS]


class ExportMappingRows(_Rows):
    """Value type, profile property (for the *Profile property* type) and Campaign Monitor field."""

    add_label = "Add mapping"
    status_key = "export.mappings"
    headers = (
        ("value sent", "190px"),
        ("profile property", "240px"),
        ("Campaign Monitor field", "220px"),
    )

    def __init__(self, editor: ConnectionEditor) -> None:
        super().__init__(editor)
        self.start()

    def items(self, model: Connection) -> tuple[ExportMapping, ...]:
        return model.export.mappings if model.export else ()

    def store(self, items: tuple[ExportMapping, ...]) -> None:
        self.editor.edit_export(mappings=items)

    def field_names(self, model: Connection) -> list[str]:
        lists = model.export.lists if model.export else ()
        return export_field_names(self.editor, lists)

    def new_item(self, model: Connection) -> ExportMapping:
        used = {m.field for m in self.items(model)}
        free = [f for f in self.field_names(model) if f not in used]
        field = free[0] if free else "Name"
        return ExportMapping("property", field, default_property(field))

    def make_row(self) -> dict[str, Any]:
        value = W.Dropdown(
            options=[(VALUE_TYPE_LABELS[v], v) for v in VALUE_TYPES],
            layout=W.Layout(width="190px"),
        )
        prop = property_box()
        field = W.Dropdown(options=[], layout=W.Layout(width="220px"))
        return {"value": value, "property": prop, "field": field, "widgets": [value, prop, field]}

    def fill(self, row: dict[str, Any], item: ExportMapping, model: Connection) -> None:
        row["value"].value = item.value
        row["property"].options = tuple(sorted(self.editor.properties()))
        row["property"].value = item.property or ""
        row["property"].disabled = item.value != "property"
        set_options(row["field"], self.field_names(model), item.field)

    def read(self, row: dict[str, Any]) -> ExportMapping:
        value = row["value"].value
        prop = row["property"].value.strip() if value == "property" else None
        return ExportMapping(value, row["field"].value or "Name", prop)

    def incomplete(self, item: ExportMapping) -> str | None:
        if item.value == "property" and not item.property:
            return "name the profile property whose values are exported"
        return None


#: Room for the longest label ("Consent to track", "Matching property"): none is cut.
LABEL = {"description_width": "150px"}


def segment_options(editor: ConnectionEditor) -> list[tuple[str, str]]:
    """``(label, name)``: each segment with its size at its last refresh."""
    out = []
    for name, size in editor.segment_sizes().items():
        label = f"{name} — {size:,} profiles" if size is not None else f"{name} (not refreshed)"
        out.append((label, name))
    return out


class ExportEditor(View):
    """Export: which segment goes to which lists, matched on which property, with which values."""

    def __init__(self, editor: ConnectionEditor) -> None:
        super().__init__(editor)
        self.segment = W.Dropdown(
            description="Segment", options=[], style=LABEL, layout=W.Layout(width="520px")
        )
        self.segment.observe(self._segment_changed, "value")
        self.sizes = W.HTML()  # the segments' sizes as a chart, beside the choice
        self.lists = ListSelect(editor, "export")
        self.match_property = property_box("Matching property", "property holding the email")
        self.match_property.layout = W.Layout(width="420px")
        self.match_property.style = LABEL
        self.match_property.observe(
            lambda c: self._edit(match_property=c["new"].strip() or None), "value"
        )
        self.consent = W.Dropdown(
            description="Consent to track", options=list(CONSENT_TO_TRACK), style=LABEL
        )
        self.consent.observe(lambda c: self._edit(consent_to_track=c["new"]), "value")
        self.resubscribe = W.Checkbox(
            description="Resubscribe unsubscribed contacts",
            indent=False,
            layout=W.Layout(width="auto"),
        )
        self.resubscribe.observe(lambda c: self._edit(resubscribe=bool(c["new"])), "value")
        self.on_leave = W.Dropdown(description="On leaving", options=list(ON_LEAVE), style=LABEL)
        self.on_leave.observe(lambda c: self._edit(on_leave=c["new"]), "value")
        self.mappings = ExportMappingRows(editor)
        self.children = [
            W.HBox([self.segment, self.sizes]),
            self.lists,
            self.match_property,
            W.HBox([self.consent, self.on_leave]),
            self.resubscribe,
            W.HTML("<b>Profile values → Campaign Monitor fields</b>"),
            self.mappings,
            self.message,
        ]
        self.start()

    def _segment_changed(self, change: dict[str, Any]) -> None:
        if change["new"]:
            self._edit(segment=change["new"])

    def _edit(self, **changes: Any) -> None:
        if not self.updating:
            self.editor.edit_export(**changes)

    def redraw(self, model: Connection) -> None:
        exp = model.export
        set_options(self.segment, segment_options(self.editor), exp.segment if exp else None)
        chosen = (exp.segment,) if exp and exp.segment else ()
        self.sizes.value = sizes_html(self.editor.segment_sizes(), chosen, width=420)
        self.match_property.options = tuple(sorted(self.editor.properties()))
        self.match_property.value = (exp.match_property if exp else None) or ""
        self.consent.value = exp.consent_to_track if exp else "Unchanged"
        self.resubscribe.value = bool(exp and exp.resubscribe)
        self.on_leave.value = exp.on_leave if exp else "keep"


class TargetingEditor(View):
    """Targeting: segments exposed as a MultiSelectMany field on the chosen lists."""

    def __init__(self, editor: ConnectionEditor) -> None:
        super().__init__(editor)
        self.lists = ListSelect(editor, "targeting")
        self.field = W.Text(description="Field", continuous_update=False)
        self.field.observe(self._field_changed, "value")
        self.segments = W.SelectMultiple(
            description="Segments", options=[], rows=5, layout=W.Layout(width="520px")
        )
        self.segments.observe(self._segments_changed, "value")
        self.sizes = W.HTML()
        self.children = [self.lists, self.field, self.segments, self.sizes, self.message]
        self.start()

    def redraw(self, model: Connection) -> None:
        tgt = model.targeting
        chosen = tuple(tgt.segments) if tgt else ()
        options = segment_options(self.editor)
        known = {name for _, name in options}
        options += [(f"⚠ {s} (not defined)", s) for s in chosen if s not in known]
        if list(self.segments.options) != options:
            self.segments.options = options
        self.segments.value = chosen
        self.sizes.value = sizes_html(self.editor.segment_sizes(), chosen)
        self.field.value = tgt.field if tgt else "Segments"

    def _field_changed(self, change: dict[str, Any]) -> None:
        if not self.updating:
            name = change["new"].strip()
            if not name:
                self.show_error("name the custom field that holds the segments (e.g. Segments)")
                return
            self.message.value = ""
            self.editor.edit_targeting(field=name)

    def _segments_changed(self, change: dict[str, Any]) -> None:
        if not self.updating:
            self.editor.edit_targeting(segments=tuple(change["new"]))
