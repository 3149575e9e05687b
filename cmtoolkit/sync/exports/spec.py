"""What an export-like goal writes: the goal's settings and, per list, the type of each field.

Shared by export and targeting (targeting is an export with one value). See docs/export.md.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING

import orjson

from cmtoolkit.campaign_monitor.fields import WRITABLE_STANDARD_FIELDS
from cmtoolkit.errors import ConfigurationError

if TYPE_CHECKING:
    from cmtoolkit.campaign_monitor import CampaignMonitor
    from cmtoolkit.connection.model import Connection

#: Every outcome an export or a targeting run reports, in the order counts list them.
EXPORT_OUTCOMES = (
    "EXPORTED",
    "UNCHANGED",
    "INVALID",
    "REJECTED",
    "SUPPRESSED",
    "CONSENT_MISMATCH",
    "REMOVED",
    "NOT_SUBSCRIBED",
)
#: The field type ``create_missing`` gives a missing custom field, by value kind (Text otherwise).
CREATED_TYPE = {"segments": "MultiSelectMany", "interactions": "MultiSelectMany"}


@dataclass(frozen=True)
class Value:
    """One exported value: ``kind`` is profile_id | segments | interactions | property |
    target_segments (the targeting goal's membership of its selected segments)."""

    kind: str
    field: str
    property: str | None = None


@dataclass(frozen=True)
class FieldType:
    """A list's field as the plan needs it (standard fields have data_type ``Name``/…)."""

    name: str
    data_type: str
    options: tuple[str, ...] = ()
    # What this run creates (a preview: would create). A field or option Campaign Monitor lacks
    # now but a row was sent with was deleted there, with its values: the rows carrying those
    # values are sent again even though their hash is unchanged (``options.stale_sql``).
    created: bool = False
    added_options: tuple[str, ...] = ()


@dataclass(frozen=True)
class GoalSpec:
    """The parts of a connection an export-like goal needs; shared by export and targeting."""

    connection: str
    goal: str  # export | targeting (the export_state goal)
    lists: tuple[str, ...]
    segments: tuple[str, ...]  # candidates are members of any of these
    match_property: str
    objectives: tuple[str, ...] = ()
    values: tuple[Value, ...] = ()
    consent_to_track: str = "Unchanged"
    resubscribe: bool = False
    on_leave: str = "keep"  # keep | unsubscribe | delete | clear (targeting: clear its field)
    create_missing: bool = False  # create missing custom fields and MultiSelect options
    invalid_values: str = "skip_field"  # skip_field | skip_row
    restart_autoresponders: bool = False
    only_subscribed: bool = False  # targeting: update existing subscribers only
    client_id: str | None = None  # whose suppression list Campaign Monitor checks
    #: What export state is kept under: the connection's id (DESIGN §4), its name before it has
    #: one. The ledger's runs stay under the name.
    state_key: str | None = None

    @property
    def key(self) -> str:
        return self.state_key or self.connection

    @classmethod
    def from_connection(cls, conn: Connection) -> GoalSpec:
        goal = conn.export
        if goal is None:
            raise ConfigurationError(f"connection {conn.name!r} has no export goal")
        if not goal.segment:
            raise ConfigurationError("export.segment is not set; name the segment to export")
        if not goal.match_property:
            raise ConfigurationError(
                "export.match_property is not set; name the property that holds the email"
            )
        return cls(
            connection=conn.name,
            goal="export",
            lists=tuple(goal.lists),
            segments=(goal.segment,),
            match_property=goal.match_property,
            objectives=tuple(conn.objectives or ()),
            values=tuple(Value(m.value, m.field, m.property) for m in goal.mappings),
            consent_to_track=goal.consent_to_track or "Unchanged",
            resubscribe=bool(goal.resubscribe),
            on_leave=goal.on_leave or "keep",
            create_missing=goal.create_missing,
            invalid_values=goal.invalid_values,
            restart_autoresponders=goal.restart_autoresponders,
            client_id=conn.campaign_monitor.client_id,
            state_key=conn.state_key,
        )


def field_types(
    client: CampaignMonitor, spec: GoalSpec, *, create: bool = False
) -> dict[str, dict[str, FieldType]]:
    """Per list, the type of every field a value writes. A missing field is a
    ConfigurationError, unless ``create_missing``: then it is created (``create``, a run) or
    taken as if created (a preview), Text or MultiSelectMany (segments, interactions)."""
    out: dict[str, dict[str, FieldType]] = {}
    for list_id in spec.lists:
        # Field names are unique regardless of case in Campaign Monitor.
        custom = {f.field_name.casefold(): f for f in client.custom_fields(list_id)}
        types: dict[str, FieldType] = {}
        for v in spec.values:
            if v.field in WRITABLE_STANDARD_FIELDS:
                types[v.field] = FieldType(v.field, v.field)
            elif v.field == "EmailAddress":
                raise ConfigurationError(
                    "export mapping to EmailAddress: the address comes from match_property; "
                    "remove this mapping"
                )
            elif v.field.casefold() in custom:
                f = custom[v.field.casefold()]
                types[v.field] = FieldType(f.field_name, f.data_type, tuple(f.options))
            elif spec.create_missing:
                # A MultiSelect field needs options: it is created with the first ones the
                # values need (plan.with_missing_options), or not at all while none are.
                data_type = CREATED_TYPE.get(v.kind, "Text")
                if create and data_type == "Text":
                    client.create_custom_field(list_id, v.field, data_type, [])
                types[v.field] = FieldType(v.field, data_type, created=True)
            else:
                raise ConfigurationError(
                    f"list {list_id} has no custom field {v.field!r}; create it in Campaign "
                    "Monitor, set export.create_missing: true, or fix the export mapping "
                    "(standard fields: "
                    f"{', '.join(WRITABLE_STANDARD_FIELDS)})"
                )
        out[list_id] = types
    return out


def fingerprint(spec: GoalSpec, types: Mapping[str, FieldType]) -> str:
    """What a list's payloads are made of besides the row's values: part of every row's hash."""
    return hashlib.md5(
        orjson.dumps(
            [
                sorted((k, t.data_type, t.options) for k, t in types.items()),
                [(v.kind, v.field, v.property) for v in spec.values],
            ]
        )
    ).hexdigest()
