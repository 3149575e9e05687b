"""The import goal (DESIGN §5): stage, then plan, then apply in one store transaction."""

from __future__ import annotations

from datetime import datetime
from typing import ClassVar

import duckdb

from cmtoolkit.connection.model import Connection
from cmtoolkit.profiles.properties import define_property, defined_properties
from cmtoolkit.sync import ledger
from cmtoolkit.sync.activity import activity_phase
from cmtoolkit.sync.goal import GoalContext, GoalName, Outcome
from cmtoolkit.sync.imports.apply import apply_import
from cmtoolkit.sync.imports.plan import match_statement, plan_import
from cmtoolkit.sync.imports.spec import ImportSpec
from cmtoolkit.sync.imports.stage import ReadProgress, stage_contacts
from cmtoolkit.sync.imports.state import adopt_statements, leaver_cursors
from cmtoolkit.sync.statement import execute


class ImportGoal:
    """Campaign Monitor subscribers into the profile store (DESIGN §5)."""

    name: ClassVar[GoalName] = GoalName.IMPORT

    def configured(self, connection: Connection) -> bool:
        return connection.import_ is not None

    def preview(self, ctx: GoalContext) -> Outcome:
        """Dry run: the full plan, counts and a before/after sample; the store read-only."""
        spec = import_spec(ctx)
        store = ctx.store

        def match_profiles(con: duckdb.DuckDBPyConnection) -> None:
            # While Campaign Monitor is read: the store as it is then, which a dry run may show.
            # A run matches inside its write transaction instead.
            with store.attached(con):
                execute(con, [match_statement(spec, defined_properties(con))])

        with (
            stage_contacts(
                ctx.client,
                spec,
                alongside=match_profiles,
                root=ctx.root,
                progress=read(ctx),
                leavers_since=leavers_since(ctx, spec),
            ) as stage,
            store.attached(stage.con),
        ):
            plan = plan_import(stage.con, spec, full=ctx.full, values=False, matched=True)
            activity = activity_phase(ctx, stage.memory_limit)  # DESIGN §6a: what the run would add
            extra = activity.preview_staged(stage.con) if activity is not None else {}
            if ctx.charts:  # Number properties before -> after, for the notebook's chart
                extra["number_spreads"] = {n.property: n.to_detail() for n in plan.number_spreads()}
            return Outcome(
                counts=plan.counts,
                samples=plan.samples(),
                rows=plan.rows(limit=1000),
                details={
                    "new_properties": plan.new_properties,
                    **plan.details,
                    **extra,
                },
            )

    def run(self, ctx: GoalContext, run_id: str) -> Outcome:
        """Read, then plan and apply in one store transaction with the ledger rows and FINISHED."""
        spec = import_spec(ctx)
        since = leavers_since(ctx, spec)
        with stage_contacts(
            ctx.client, spec, root=ctx.root, progress=read(ctx), leavers_since=since
        ) as stage:
            con = stage.con
            activity = activity_phase(ctx, stage.memory_limit)
            if activity is not None:  # read before the store is locked (DESIGN §6a)
                activity.stage(con)
            extra = {}
            with ctx.store.attached(con, write=True):
                con.begin()
                try:
                    execute(con, adopt_statements(spec))
                    plan = plan_import(con, spec, full=ctx.full)
                    apply_import(plan, run_id, define_property)
                    if activity is not None:
                        extra = activity.apply(con, define_property)
                    ledger.finish_run(con, run_id, plan.counts)
                except BaseException:
                    con.rollback()
                    raise
                con.commit()
        return Outcome(
            counts=plan.counts,
            details={"new_properties": plan.new_properties, **plan.details, **extra},
        )


def read(ctx: GoalContext) -> ReadProgress:
    """The stage's reading as the goal's ``read`` progress (contacts read of the total)."""
    return lambda done, total: ctx.report("read", done, total)


def leavers_since(ctx: GoalContext, spec: ImportSpec) -> dict[str, datetime]:
    """Per list, the status date its leavers are read from (DESIGN §5.6); ``--full``: none."""
    if ctx.full or not spec.leaver_states:
        return {}
    with ctx.store.connect() as con:
        return leaver_cursors(con, spec)


def import_spec(ctx: GoalContext) -> ImportSpec:
    """The connection's import spec, resolved once against the store's property names."""
    return ImportSpec.from_connection(ctx.connection, ctx.store.properties())
