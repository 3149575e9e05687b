"""Custom-field resources: a list's fields, creating, renaming and deleting one, its options."""

from __future__ import annotations

from collections.abc import Iterable
from urllib.parse import unquote

from cmtoolkit.emulator.api.request import Ctx, Result, as_bool
from cmtoolkit.emulator.api.resource import Resources
from cmtoolkit.emulator.api_error import ApiError
from cmtoolkit.emulator.custom_field import DATA_TYPES, MULTI, CustomField, field_key
from cmtoolkit.emulator.mailing_list import MailingList


class FieldResources(Resources):
    """A list's custom fields and their options."""

    def custom_fields(self, ctx: Ctx, list_id: str) -> Result:
        return Result(200, [f.as_json() for f in self._list(ctx, list_id)[1].fields])

    def create_custom_field(self, ctx: Ctx, list_id: str) -> Result:
        _, lst = self._list(ctx, list_id)
        body = ctx.obj()
        name = str(body.get("fieldname") or "").strip()
        if not name or len(name) > 100 or field_key(name) == "[]":
            raise ApiError(400, 254, "Invalid Field Name")
        data_type = body.get("datatype")
        if data_type not in DATA_TYPES:
            raise ApiError(400, 259, "Invalid Field Type")
        options = body.get("options") or []
        if not isinstance(options, list):
            raise ApiError(400, 257, "Field Options must be a list")
        if data_type in MULTI and not options:
            raise ApiError(400, 257, "A multi-option field must have options")
        if data_type not in MULTI and options:
            raise ApiError(400, 256, "Only multi-option fields can have options")
        key = field_key(name)
        if any(f.name.casefold() == name.casefold() or f.key == key for f in lst.fields):
            raise ApiError(400, 255, "Field Name already exists")
        visible = body.get("visibleinpreferencecenter", True)
        lst.add_field(
            CustomField(name, data_type, _distinct(str(o) for o in options), as_bool(visible))
        )
        return Result(201, key)

    def _field(self, lst: MailingList, raw_key: str) -> CustomField:
        key = unquote(raw_key)
        if not (key.startswith("[") and key.endswith("]")):
            raise ApiError(400, 253, "Invalid Key. Keys must be surrounded with [ ]")
        f = lst.field_by_key(key)
        if f is None:
            raise ApiError(400, 253, "Invalid Key. No custom field has this key")
        return f

    def update_custom_field(self, ctx: Ctx, list_id: str, raw_key: str) -> Result:
        _, lst = self._list(ctx, list_id)
        f = self._field(lst, raw_key)
        body = ctx.obj()
        name = str(body.get("fieldname") or "").strip()
        if not name or field_key(name) == "[]":
            raise ApiError(400, 254, "Invalid Field Name")
        key = field_key(name)
        if any(
            o is not f and (o.name.casefold() == name.casefold() or o.key == key)
            for o in lst.fields
        ):
            raise ApiError(400, 255, "Field Name already exists")
        lst.rename_field(f, name)
        if "visibleinpreferencecenter" in body:
            f.visible = as_bool(body["visibleinpreferencecenter"])
        return Result(200, f.key)

    def update_field_options(self, ctx: Ctx, list_id: str, raw_key: str) -> Result:
        _, lst = self._list(ctx, list_id)
        f = self._field(lst, raw_key)
        if f.data_type not in MULTI:
            raise ApiError(400, 256, "Only multi-option fields can have options")
        body = ctx.obj()
        options = [str(o) for o in body.get("options") or []]
        keep = as_bool(body.get("keepexistingoptions", False))
        new = _distinct([*f.options, *options] if keep else options)
        if not new:
            raise ApiError(400, 257, "A multi-option field must have options")
        f.options = new
        allowed = set(new)
        column = lst.values[f.name]
        for row, v in enumerate(column):
            if v is None:
                continue
            if isinstance(v, tuple):
                kept = tuple(o for o in v if o in allowed)
                if kept != v:
                    column[row] = kept or None
            elif v not in allowed:
                column[row] = None
        return Result(200)

    def delete_custom_field(self, ctx: Ctx, list_id: str, raw_key: str) -> Result:
        _, lst = self._list(ctx, list_id)
        lst.remove_field(self._field(lst, raw_key))
        return Result(200)


def _distinct(values: Iterable[str]) -> list[str]:
    out: list[str] = []
    for v in values:
        if v not in out:
            out.append(v)
    return out
