"""The targeting goal: segment membership as a MultiSelectMany field for campaign targeting.

It is the export machinery (:mod:`cmtoolkit.sync.exporting`) with one value: the profile's
membership of the selected segments (in the order the connection lists them), written as repeated
keys after a ``Clear`` entry so a segment the profile left disappears from the field. Profiles
that were written before and are now in none of the selected segments (or lost consent) get the
field cleared (``{"Key": field, "Value": "", "Clear": true}``) and are reported ``REMOVED``.
Progress is kept in ``export_state`` with ``goal = 'targeting'``, so re-runs send only changes.

Decisions made here:

- **Which email**: the first value of the export goal's ``match_property`` when the connection
  has one, else of a property named ``email``; without either, a configuration error.
- Before planning, the field is ensured on every list: created as MultiSelectMany with the
  selected segment names as options, or given the missing options (``KeepExistingOptions``). A
  field of that name with another type is a configuration error (its values cannot hold
  membership). Preview does not create anything; it plans as if the field were ready.
- Like an export, a targeted profile that is not on the list yet is added by the import, never
  resubscribed (``Resubscribe`` false, ``ConsentToTrack`` ``Unchanged``): targeting must not
  change anyone's subscription.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, ClassVar

from cmtoolkit.errors import ConfigurationError
from cmtoolkit.sync.exporting import (
    EXPORT_OUTCOMES,
    FieldType,
    GoalSpec,
    Value,
    compute_plan,
    execute_plan,
    preview_outcome,
)
from cmtoolkit.sync.goal import GoalContext, GoalName, Outcome

if TYPE_CHECKING:
    from cmtoolkit.connection.model import Connection

TARGETING_OUTCOMES = EXPORT_OUTCOMES
FIELD_TYPE = "MultiSelectMany"


def targeting_spec(conn: Any) -> GoalSpec:
    goal = conn.targeting
    if goal is None:
        raise ConfigurationError(f"connection {conn.name!r} has no targeting goal")
    if not goal.segments:
        raise ConfigurationError("targeting.segments is empty; list the segments to expose")
    export = getattr(conn, "export", None)
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
    )


def ensure_field(client: Any, spec: GoalSpec, *, create: bool) -> dict[str, dict[str, FieldType]]:
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
            options = tuple(wanted)
        elif f.data_type != FIELD_TYPE:
            raise ConfigurationError(
                f"list {list_id}: custom field {field!r} is {f.data_type}, not {FIELD_TYPE}; "
                "rename targeting.field or change the field in Campaign Monitor"
            )
        else:
            missing = [s for s in wanted if s not in f.options]
            if missing and create:
                client.update_custom_field_options(list_id, f.key, missing, keep_existing=True)
            options = (*f.options, *missing)
        out[list_id] = {field: FieldType(field, FIELD_TYPE, options)}
    return out


class TargetingGoal:
    """Segment membership into a MultiSelectMany field of existing subscribers (DESIGN §6)."""

    name: ClassVar[GoalName] = GoalName.TARGETING

    def configured(self, connection: Connection) -> bool:
        return connection.targeting is not None

    def preview(self, ctx: GoalContext) -> Outcome:
        spec = targeting_spec(ctx.connection)
        types = ensure_field(ctx.client, spec, create=False)
        return preview_outcome(
            compute_plan(ctx, spec, types, leave_field=spec.values[0].field, preview=True)
        )

    def run(self, ctx: GoalContext, run_id: str) -> Outcome:
        spec = targeting_spec(ctx.connection)
        types = ensure_field(ctx.client, spec, create=True)
        plan = compute_plan(ctx, spec, types, leave_field=spec.values[0].field)
        return execute_plan(ctx, run_id, plan)
