"""Each exported value as SQL: checked against its Campaign Monitor field type and formatted
as the import endpoint takes it (DESIGN §6; the formatting rules are in docs/export.md).

Value ``i`` is column ``v{i}`` (``VARCHAR[]``) of the plan's candidates table.
"""

from __future__ import annotations

from dataclasses import dataclass

from cmtoolkit.sync.exports.spec import FieldType
from cmtoolkit.sync.statement import Params

MAX_TEXT = 250
MOBILE_RE = r"\+[1-9][0-9]{6,14}"
SINGLE_VALUE_TYPES = ("Number", "Date", "MultiSelectOne", "Country", "USState")


@dataclass(frozen=True)
class ValueSql:
    """SQL for one value written to one field: its error (NULL when valid), its CustomFields
    entries (JSON[]), the scalar for a standard field, and the parameters they name."""

    error: str
    entries: str
    scalar: str
    params: Params


def value_sql(i: int, ft: FieldType, *, skip: bool = False) -> ValueSql:
    """The SQL for value ``i`` (column ``v{i}`` of exp_cand) written to field ``ft``.

    ``skip`` (``invalid_values: skip_field``): a value that fails is dropped from its field (a
    MultiSelectMany field keeps the valid options; any other field is left out of the row)
    and the error becomes a warning; otherwise the error makes the row INVALID.
    """
    sql = _value_sql(i, ft)
    if not skip:
        return sql
    entries = sql.entries
    if ft.data_type == "MultiSelectMany":
        v, fp, op = f"v{i}", f"f{i}", f"o{i}"
        canon = f"list_filter(${op}::VARCHAR[], lambda o: lower(o) = lower(trim(x)))[1]"
        return ValueSql(
            sql.error,
            f"list_concat([json_object('Key', ${fp}, 'Value', '', 'Clear', true)], "
            f"list_transform(list_filter({v}, lambda x: {canon} IS NOT NULL), lambda x: "
            f"json_object('Key', ${fp}, 'Value', {canon})))",
            sql.scalar,
            sql.params,
        )
    return ValueSql(
        sql.error,
        f"CASE WHEN ({sql.error}) IS NULL THEN {entries} ELSE []::JSON[] END",
        f"CASE WHEN ({sql.error}) IS NULL THEN {sql.scalar} END",
        sql.params,
    )


def _value_sql(i: int, ft: FieldType) -> ValueSql:
    v = f"v{i}"
    fp = f"f{i}"
    params: dict[str, object] = {fp: ft.name}
    label = f"'field ' || ${fp} || ': '"
    many = (
        f"CASE WHEN len({v}) > 1 THEN {label} || len({v}) || ' values for a single-value "
        f"{ft.data_type} field' END"
    )
    clear = f"[json_object('Key', ${fp}, 'Value', '', 'Clear', true)]"
    no_entries = "[]::JSON[]"

    def too_long(text: str) -> str:
        return (
            f"CASE WHEN length({text}) > {MAX_TEXT} THEN {label} || 'longer than {MAX_TEXT} "
            f"characters' END"
        )

    if ft.data_type == "Name":
        joined = f"array_to_string({v}, '|')"
        return ValueSql(too_long(joined), no_entries, f"nullif({joined}, '')", params)
    if ft.data_type == "MobileNumber":
        err = (
            f"coalesce({many}, CASE WHEN len({v}) = 1 AND NOT regexp_full_match(trim({v}[1]), "
            f"'{MOBILE_RE}') THEN {label} || 'not an E.164 mobile number: ' || {v}[1] END)"
        )
        return ValueSql(err, no_entries, f"trim({v}[1])", params)
    if ft.data_type == "Text" or ft.data_type not in (*SINGLE_VALUE_TYPES, "MultiSelectMany"):
        joined = f"array_to_string({v}, '|')"
        entries = (
            f"CASE WHEN len({v}) = 0 THEN {clear} "
            f"ELSE [json_object('Key', ${fp}, 'Value', {joined})] END"
        )
        return ValueSql(too_long(joined), entries, "NULL", params)
    op = f"o{i}"
    if ft.data_type in ("MultiSelectOne", "MultiSelectMany"):
        params[op] = list(ft.options)
    canon = f"list_filter(${op}::VARCHAR[], lambda o: lower(o) = lower(trim(x)))[1]"
    if ft.data_type == "MultiSelectMany":
        bad = f"list_filter({v}, lambda x: {canon} IS NULL)"
        err = f"CASE WHEN len({bad}) > 0 THEN {label} || 'not an option: ' || {bad}[1] END"
        entries = (
            f"list_concat({clear}, list_transform({v}, lambda x: "
            f"json_object('Key', ${fp}, 'Value', {canon})))"
        )
        return ValueSql(err, entries, "NULL", params)
    x = f"{v}[1]"
    if ft.data_type == "Number":
        check = (
            f"CASE WHEN NOT isfinite(coalesce(try_cast(trim({x}) AS DOUBLE), 'nan'::DOUBLE))"
            f" THEN {label} || 'not a number: ' || {x} END"
        )
        value = f"trim({x})"
    elif ft.data_type == "Date":
        parsed = f"try_strptime(replace(left(trim({x}), 10), '/', '-'), '%Y-%m-%d')::DATE"
        shape = f"regexp_full_match(trim({x}), '[0-9]{{4}}[-/][0-9]{{2}}[-/][0-9]{{2}}([ T].*)?')"
        check = (
            f"CASE WHEN NOT {shape} OR {parsed} IS NULL THEN {label} || "
            f"'not a date (YYYY-MM-DD or YYYY/MM/DD): ' || {x} "
            f"WHEN {parsed} NOT BETWEEN DATE '1900-01-01' AND DATE '2076-06-06' THEN {label} || "
            f"'date ' || {x} || ' outside 1900/01/01-2076/06/06' END"
        )
        value = f"strftime({parsed}, '%Y/%m/%d')"
    elif ft.data_type == "MultiSelectOne":
        canon_x = canon.replace("trim(x)", f"trim({x})")
        check = f"CASE WHEN {canon_x} IS NULL THEN {label} || 'not an option: ' || {x} END"
        value = canon_x
    else:  # Country, USState: free text, one value
        check = too_long(x)
        value = f"trim({x})"
    err = f"coalesce({many}, CASE WHEN len({v}) = 1 THEN {check} END)"
    entries = (
        f"CASE WHEN len({v}) = 0 THEN {clear} "
        f"ELSE [json_object('Key', ${fp}, 'Value', {value})] END"
    )
    return ValueSql(err, entries, "NULL", params)
