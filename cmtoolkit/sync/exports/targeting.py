"""The targeting goal: segment membership as a MultiSelectMany field for campaign targeting.

An export with one value (the selected segments the profile is in); leavers get the field
cleared. See docs/export.md.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, ClassVar

from cmtoolkit.errors import ConfigurationError
from cmtoolkit.sync.exports.goal import execute_plan, preview_outcome
from cmtoolkit.sync.exports.plan import compute_plan
from cmtoolkit.sync.exports.spec import FieldType, GoalSpec, Value
from cmtoolkit.sync.goal import GoalContext, GoalName, Outcome

if TYPE_CHECKING:
    from cmtoolkit.campaign_monitor import CampaignMonitor
    from cmtoolkit.connection.model import Connection

FIELD_TYPE = "MultiSelectMany"


def targeting_spec(conn: Connection) -> GoalSpec:
    """The connection's targeting goal as an export spec; the email is the export's
    ``match_property`` when there is one, else the ``email`` property."""
    goal = conn.targeting
    if goal is None:
        raise ConfigurationError(f"connection {conn.name!r} has no targeting goal")
    if not goal.segments:
        raise ConfigurationError("targeting.segments is empty; list the segments to expose")
    export = conn.export
    match = (export.match_property if export is not None else None) or "email"
    field = goal.field or "Segments"
    return GoalSpec(
        connection=conn.name,
        goal="targeting",
        lists=tuple(goal.lists),
        segments=tuple(goal.segments),
        match_property=match,
        objectives=tuple(conn.objectives or ()),
        values=(Value("target_segments", field),),
        consent_to_track="Unchanged",
        resubscribe=False,
        on_leave="clear",
        only_subscribed=True,
        client_id=conn.campaign_monitor.client_id,
        state_key=conn.state_key,
    )


def ensure_field(
    client: CampaignMonitor, spec: GoalSpec, *, create: bool
) -> dict[str, dict[str, FieldType]]:
    """Make the targeting field exist with every selected segment as an option, on every list.

    Returns the field types the plan uses. With ``create=False`` (preview) nothing is changed.
    """
    field = spec.values[0].field
    wanted = list(spec.segments)
    out: dict[str, dict[str, FieldType]] = {}
    for list_id in spec.lists:
        # Field names are unique regardless of case in Campaign Monitor.
        existing = {f.field_name.casefold(): f for f in client.custom_fields(list_id)}
        f = existing.get(field.casefold())
        if f is None:
            if create:
                client.create_custom_field(list_id, field, FIELD_TYPE, wanted)
            ft = FieldType(field, FIELD_TYPE, tuple(wanted), created=True)
        elif f.data_type != FIELD_TYPE:
            raise ConfigurationError(
                f"list {list_id}: custom field {field!r} is {f.data_type}, not {FIELD_TYPE}; "
                "rename targeting.field or change the field in Campaign Monitor"
            )
        else:
            missing = [s for s in wanted if s not in f.options]
            if missing and create:
                client.update_custom_field_options(list_id, f.key, missing, keep_existing=True)
            ft = FieldType(field, FIELD_TYPE, (*f.options, *missing), added_options=tuple(missing))
        out[list_id] = {field: ft}
    return out


class TargetingGoal:
    """Segment membership into a MultiSelectMany field of existing subscribers (DESIGN §6)."""

    name: ClassVar[GoalName] = GoalName.TARGETING

    def configured(self, connection: Connection) -> bool:
        return connection.targeting is not None

    def preview(self, ctx: GoalContext) -> Outcome:
        spec = targeting_spec(ctx.connection)
        types = ensure_field(ctx.client, spec, create=False)
        with compute_plan(ctx, spec, types, leave_field=spec.values[0].field, preview=True) as plan:
            return preview_outcome(plan)

    def run(self, ctx: GoalContext, run_id: str) -> Outcome:
        spec = targeting_spec(ctx.connection)
        types = ensure_field(ctx.client, spec, create=True)
        with compute_plan(ctx, spec, types, leave_field=spec.values[0].field) as plan:
            return execute_plan(ctx, run_id, plan)
