"""The import goal (DESIGN §5), split by phase: the spec and its targets (resolved once), the
stage (Campaign Monitor read into DuckDB), the plan (every decision as SQL), the apply, and the
goal that runs them. The design record is ``docs/import.md``.
"""

from cmtoolkit.sync.imports.apply import apply_import, apply_statements
from cmtoolkit.sync.imports.goal import ImportGoal
from cmtoolkit.sync.imports.plan import IMPORT_OUTCOMES, ImportPlan, plan_import
from cmtoolkit.sync.imports.spec import ImportSpec, Target
from cmtoolkit.sync.imports.stage import ContactStage, SubscriberSource, stage_contacts

__all__ = [
    "IMPORT_OUTCOMES",
    "ContactStage",
    "ImportGoal",
    "ImportPlan",
    "ImportSpec",
    "SubscriberSource",
    "Target",
    "apply_import",
    "apply_statements",
    "plan_import",
    "stage_contacts",
]
