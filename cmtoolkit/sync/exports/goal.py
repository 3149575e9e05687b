"""The export goal: plan, send, then finish in one short store transaction (DESIGN §6).

The store's write lock is never held while Campaign Monitor is talking. See docs/export.md.
"""

from __future__ import annotations

import contextlib
import logging
from typing import TYPE_CHECKING, ClassVar

import duckdb
import pyarrow as pa

from cmtoolkit.sync.exports.acknowledgements import AckJournal, StateWriter
from cmtoolkit.sync.exports.plan import compute_plan
from cmtoolkit.sync.exports.plan_file import Plan
from cmtoolkit.sync.exports.refusals import remember
from cmtoolkit.sync.exports.send import SendResult, remove_leavers, send_imports
from cmtoolkit.sync.exports.spec import EXPORT_OUTCOMES, GoalSpec, field_types
from cmtoolkit.sync.goal import GoalContext, GoalName, Outcome
from cmtoolkit.sync.ledger import finish_run, prune_rows

if TYPE_CHECKING:
    from cmtoolkit.connection.model import Connection

log = logging.getLogger("cmtoolkit.sync.export")

#: What did not go as planned, joined to the plan's rows by the finish.
EXCEPTIONS = pa.schema([(c, pa.string()) for c in ("list_id", "profile_id", "outcome", "reason")])


def finish(
    con: duckdb.DuckDBPyConnection, run_id: str, plan: Plan, result: SendResult
) -> dict[str, int]:
    """Write the run rows: the plan's, with what did not go as planned; returns the counts."""
    exceptions = pa.Table.from_pylist(
        [
            {"list_id": k[0], "profile_id": k[1], "outcome": v[0], "reason": v[1]}
            for k, v in result.exceptions.items()
        ],
        schema=EXCEPTIONS,
    )
    con.register("exp_exceptions", exceptions)
    with plan.attached(con) as attached:
        # One ledger row per person whose outcome is not UNCHANGED; those are counted (§7).
        con.execute(
            f"""
            INSERT INTO run_rows
                (run_id, seq, list_id, email, identifier, profile_id, outcome, reason)
            SELECT $run_id, p.seq, p.list_id, p.email,
                   p.email, p.profile_id, coalesce(x.outcome, p.outcome),
                   CASE x.outcome WHEN 'REJECTED' THEN x.reason
                        WHEN 'REMOVED' THEN concat_ws('; ', p.reason, x.reason)
                        ELSE p.reason END
            FROM {attached}.plan p
            LEFT JOIN exp_exceptions x ON p.action IS NOT NULL AND x.list_id = p.list_id
                 AND x.profile_id = p.profile_id
            WHERE coalesce(x.outcome, p.outcome) <> 'UNCHANGED'
            """,
            {"run_id": run_id},
        )
    con.unregister("exp_exceptions")
    counts = dict.fromkeys(EXPORT_OUTCOMES, 0)
    counts["UNCHANGED"] = plan.counts.get("UNCHANGED", 0)  # never sent, so never changed
    written = con.execute(
        "SELECT outcome, count(*) FROM run_rows WHERE run_id = $run_id GROUP BY ALL",
        {"run_id": run_id},
    )
    counts.update((outcome, int(n)) for outcome, n in written.fetchall())
    remember(con, plan.spec.key, plan.spec.goal, run_id)
    return counts


def execute_plan(ctx: GoalContext, run_id: str, plan: Plan) -> Outcome:
    """Send, remove leavers, then the ledger rows and FINISHED in one short transaction."""
    spec = plan.spec
    store = ctx.store
    result = SendResult()
    journal = AckJournal(ctx.root, spec.key, spec.goal)
    writer = StateWriter(store, spec.key, spec.goal, journal)
    try:
        with contextlib.closing(plan.sends()) as batches:
            send_imports(
                ctx.client,
                batches,
                writer,
                result,
                resubscribe=spec.resubscribe,
                restart_autoresponders=spec.restart_autoresponders,
                progress=lambda n: ctx.report("send", n, plan.pending),
            )
        with contextlib.closing(plan.leavers()) as leavers:
            remove_leavers(ctx.client, leavers, writer, result, spec.on_leave)
    except BaseException:
        # Record what was acknowledged before failing, so the next run resumes after it.
        try:
            writer.close()
        except Exception:
            log.exception(
                "%s of %s: could not record acknowledged rows", spec.goal, spec.connection
            )
        raise
    writer.close()
    with store.transaction() as con:
        counts = finish(con, run_id, plan, result)
        finish_run(con, run_id, counts)
        prune_rows(con, spec.connection, ctx.connection.keep_runs)
    log.info("%s of %s: %s in %d requests", spec.goal, spec.connection, counts, result.requests)
    return Outcome(counts=counts, details={"requests": result.requests})


def preview_outcome(plan: Plan) -> Outcome:
    """A preview's result: counts, sample payloads as they would be sent, the first rows."""
    return Outcome(
        counts=plan.counts,
        samples=plan.samples(),
        rows=plan.head(),
        details={"to_send": plan.pending},
    )


class ExportGoal:
    """Segment members out to Campaign Monitor lists (DESIGN §6)."""

    name: ClassVar[GoalName] = GoalName.EXPORT

    def configured(self, connection: Connection) -> bool:
        return connection.export is not None

    def preview(self, ctx: GoalContext) -> Outcome:
        """Dry run: counts per outcome and sample payloads exactly as they would be sent."""
        spec = GoalSpec.from_connection(ctx.connection)
        with compute_plan(ctx, spec, field_types(ctx.client, spec), preview=True) as plan:
            return preview_outcome(plan)

    def run(self, ctx: GoalContext, run_id: str) -> Outcome:
        spec = GoalSpec.from_connection(ctx.connection)
        with compute_plan(ctx, spec, field_types(ctx.client, spec, create=True)) as plan:
            return execute_plan(ctx, run_id, plan)
