"""What an export-like goal writes: the goal's settings and, per list, the type of each field.

Shared by export and targeting (targeting is an export with one value). See docs/export.md.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from cmtoolkit.campaign_monitor.fields import WRITABLE_STANDARD_FIELDS
from cmtoolkit.errors import ConfigurationError

if TYPE_CHECKING:
    from cmtoolkit.campaign_monitor import CampaignMonitor
    from cmtoolkit.connection.model import Connection

#: Every outcome an export or a targeting run reports, in the order counts list them.
EXPORT_OUTCOMES = ("EXPORTED", "UNCHANGED", "INVALID", "REJECTED", "CONSENT_MISMATCH", "REMOVED")


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
        )


def field_types(client: CampaignMonitor, spec: GoalSpec) -> dict[str, dict[str, FieldType]]:
    """Per list, the type of every field a value writes; a missing field is a ConfigurationError."""
    out: dict[str, dict[str, FieldType]] = {}
    for list_id in spec.lists:
        custom = {f.field_name: f for f in client.custom_fields(list_id)}
        types: dict[str, FieldType] = {}
        for v in spec.values:
            if v.field in WRITABLE_STANDARD_FIELDS:
                types[v.field] = FieldType(v.field, v.field)
            elif v.field == "EmailAddress":
                raise ConfigurationError(
                    "export mapping to EmailAddress: the address comes from match_property; "
                    "remove this mapping"
                )
            elif v.field in custom:
                f = custom[v.field]
                types[v.field] = FieldType(f.field_name, f.data_type, tuple(f.options))
            else:
                raise ConfigurationError(
                    f"list {list_id} has no custom field {v.field!r}; create it in Campaign "
                    "Monitor or fix the export mapping (standard fields: "
                    f"{', '.join(WRITABLE_STANDARD_FIELDS)})"
                )
        out[list_id] = types
    return out
