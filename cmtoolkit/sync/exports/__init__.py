"""The export and targeting goals, split by phase: spec, plan and its file, send, acks, goal.

The runner needs only :class:`ExportGoal` and :class:`TargetingGoal`; the phases are here for
benchmarks and tests (a plan's statements can be printed with :func:`plan_statements`).
See docs/export.md.
"""

from cmtoolkit.sync.exports.acknowledgements import AckJournal, StateWriter, write_state
from cmtoolkit.sync.exports.goal import ExportGoal, execute_plan, finish, preview_outcome
from cmtoolkit.sync.exports.plan import compute_plan, plan_goal, plan_statements
from cmtoolkit.sync.exports.plan_file import Plan, plan_folder
from cmtoolkit.sync.exports.send import SendResult, remove_leavers, send_imports
from cmtoolkit.sync.exports.spec import EXPORT_OUTCOMES, FieldType, GoalSpec, Value, field_types
from cmtoolkit.sync.exports.targeting import TargetingGoal, ensure_field, targeting_spec

__all__ = [
    "EXPORT_OUTCOMES",
    "AckJournal",
    "ExportGoal",
    "FieldType",
    "GoalSpec",
    "Plan",
    "SendResult",
    "StateWriter",
    "TargetingGoal",
    "Value",
    "compute_plan",
    "ensure_field",
    "execute_plan",
    "field_types",
    "finish",
    "plan_folder",
    "plan_goal",
    "plan_statements",
    "preview_outcome",
    "remove_leavers",
    "send_imports",
    "targeting_spec",
    "write_state",
]
