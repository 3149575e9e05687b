"""``create_missing``: the MultiSelect options the candidates' values need, added before sending
(a run) or only assumed (a preview), and the rows to send again because a field or option they
need is created again (deleted in Campaign Monitor). See docs/export.md."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import replace
from typing import TYPE_CHECKING

import duckdb

from cmtoolkit.sync.exports.spec import FieldType, GoalSpec

if TYPE_CHECKING:
    from cmtoolkit.campaign_monitor import CampaignMonitor

#: ``add_options(list_id, field, options)``: make the options exist (a run) or not (a preview).
AddOptions = Callable[[str, FieldType, list[str]], None]


def with_missing_options(
    con: duckdb.DuckDBPyConnection,
    spec: GoalSpec,
    types: Mapping[str, Mapping[str, FieldType]],
    add_options: AddOptions | None,
) -> dict[str, dict[str, FieldType]]:
    """``types`` with every value a candidate has for a MultiSelect field among its options."""
    out: dict[str, dict[str, FieldType]] = {k: dict(v) for k, v in types.items()}
    for i, v in enumerate(spec.values):
        wanted: list[str] | None = None
        for list_id, fields in out.items():
            ft = fields[v.field]
            if ft.data_type not in ("MultiSelectOne", "MultiSelectMany"):
                continue
            if wanted is None:
                wanted = [
                    r[0]
                    for r in con.execute(
                        f"SELECT min(x) FROM (SELECT trim(unnest(v{i})) AS x FROM exp_cand) "
                        "WHERE x <> '' GROUP BY lower(x) ORDER BY lower(x)"
                    ).fetchall()
                ]
            have = {o.lower() for o in ft.options}
            new = [o for o in wanted if o.lower() not in have]
            if new:
                if add_options is not None:
                    add_options(list_id, ft, new)
                fields[v.field] = replace(
                    ft, options=(*ft.options, *new), added_options=(*ft.added_options, *new)
                )
    return out


class OptionCreator:
    """Adds missing MultiSelect options in Campaign Monitor (``create_missing``, a run only)."""

    def __init__(self, client: CampaignMonitor) -> None:
        self.client = client

    def __call__(self, list_id: str, ft: FieldType, options: list[str]) -> None:
        keys = {f.field_name.casefold(): f.key for f in self.client.custom_fields(list_id)}
        key = keys.get(ft.name.casefold())
        if key is None:
            self.client.create_custom_field(list_id, ft.name, ft.data_type, options)
        else:
            self.client.update_custom_field_options(list_id, key, options, keep_existing=True)


def stale_sql(spec: GoalSpec, types: Mapping[str, FieldType], params: dict[str, object]) -> str:
    """SQL true for a candidate whose values need a field or option this run creates.

    With ``create_missing`` a row went out only once its fields and options existed, so one
    missing now was deleted in Campaign Monitor, and its values with it: such a row is sent
    again though its hash is unchanged. A value new since the last run changes the hash anyway,
    so this costs nothing when a field or option is simply new.
    """
    terms = []
    for i, v in enumerate(spec.values):
        ft = types[v.field]
        if ft.created:
            terms.append(f"len(v{i}) > 0")
        elif ft.added_options:
            params[f"a{i}"] = sorted({o.lower() for o in ft.added_options})
            terms.append(f"list_has_any(list_transform(v{i}, lambda x: lower(trim(x))), $a{i})")
    return f"coalesce({' OR '.join(terms)}, false)" if terms else "false"
