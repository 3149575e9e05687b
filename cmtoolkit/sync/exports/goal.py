"""The export goal: plan, send, then finish in one short store transaction (DESIGN §6).

The store's write lock is never held while Campaign Monitor is talking. See docs/export.md.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, ClassVar

import duckdb
import polars as pl

from cmtoolkit.sync.exports.acknowledgements import AckJournal, StateWriter
from cmtoolkit.sync.exports.plan import Plan, compute_plan, count_outcomes
from cmtoolkit.sync.exports.refusals import remember
from cmtoolkit.sync.exports.send import SendResult, remove_leavers, send_imports
from cmtoolkit.sync.exports.spec import GoalSpec, field_types
from cmtoolkit.sync.goal import GoalContext, GoalName, Outcome
from cmtoolkit.sync.ledger import finish_run, prune_rows

if TYPE_CHECKING:
    from cmtoolkit.connection.model import Connection

log = logging.getLogger("cmtoolkit.sync.export")


def finish(
    con: duckdb.DuckDBPyConnection, run_id: str, plan: Plan, result: SendResult
) -> tuple[dict[str, int], pl.DataFrame]:
    """Final outcomes of every row, written as run rows; returns counts and the rows."""
    rows = plan.predicted()
    if result.exceptions:
        ex = pl.DataFrame(
            [(k[0], k[1], v[0], v[1]) for k, v in result.exceptions.items()],
            schema={
                "list_id": pl.Utf8,
                "profile_id": pl.Utf8,
                "x_outcome": pl.Utf8,
                "x_reason": pl.Utf8,
            },
            orient="row",
        )
        rows = (
            rows.join(ex, on=["list_id", "profile_id"], how="left")
            .with_columns(
                outcome=pl.coalesce("x_outcome", "outcome"),
                reason=pl.when(pl.col("x_outcome") == "REJECTED")
                .then(pl.col("x_reason"))
                .when(pl.col("x_outcome") == "REMOVED")
                .then(pl.concat_str([pl.col("reason"), pl.col("x_reason")], separator="; "))
                .otherwise(pl.col("reason")),
            )
            .drop("x_outcome", "x_reason")
        )
    out = rows.select("list_id", "email", "profile_id", "outcome", "reason")
    # One ledger row per person whose outcome is not UNCHANGED; those are counted only (§7).
    arrow = out.filter(pl.col("outcome") != "UNCHANGED").to_arrow()
    con.register("exp_run_rows", arrow)
    con.execute(
        """
        INSERT INTO run_rows (run_id, seq, list_id, email, identifier, profile_id, outcome, reason)
        SELECT $run_id, row_number() OVER () - 1, list_id, email, email, profile_id, outcome,
               reason
        FROM exp_run_rows
        """,
        {"run_id": run_id},
    )
    con.unregister("exp_run_rows")
    remember(con, plan.spec.key, plan.spec.goal, out)
    return count_outcomes(out), out


def samples(plan: Plan, per_outcome: int = 5) -> pl.DataFrame:
    """A few rows per predicted outcome, with the payload exactly as it would be sent."""
    rows = plan.predicted()
    if not rows.height:
        return rows.select("list_id", "profile_id", "email", "outcome", "reason", "payload")
    return (
        rows.with_columns(n=pl.int_range(pl.len()).over("outcome"))
        .filter(pl.col("n") < per_outcome)
        .select("list_id", "profile_id", "email", "outcome", "reason", "payload")
    )


def execute_plan(ctx: GoalContext, run_id: str, plan: Plan) -> Outcome:
    """Send, remove leavers, then the ledger rows and FINISHED in one short transaction."""
    spec = plan.spec
    store = ctx.store
    result = SendResult()
    imports = plan.rows.filter(pl.col("action").is_in(["send", "clear"]))
    leavers = plan.rows.filter(pl.col("action").is_in(["leave", "forget"]))
    total = imports.height + leavers.height
    plan.rows = plan.rows.drop("payload")  # the ledger needs no payload: free it while sending
    journal = AckJournal(ctx.root, spec.key, spec.goal)
    writer = StateWriter(store, spec.key, spec.goal, journal)
    try:
        send_imports(
            ctx.client,
            imports,
            writer,
            result,
            resubscribe=spec.resubscribe,
            restart_autoresponders=spec.restart_autoresponders,
            progress=lambda n: ctx.report("send", n, total),
        )
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
        counts, _ = finish(con, run_id, plan, result)
        finish_run(con, run_id, counts)
        prune_rows(con, spec.connection, ctx.connection.keep_runs)
    log.info("%s of %s: %s in %d requests", spec.goal, spec.connection, counts, result.requests)
    return Outcome(counts=counts, details={"requests": result.requests})


def preview_outcome(plan: Plan) -> Outcome:
    """A preview's result: counts, sample payloads as they would be sent, the first rows."""
    return Outcome(
        counts=plan.counts,
        samples=samples(plan),
        rows=plan.predicted().drop("hash", "action").head(1000),
        details={"to_send": plan.pending.height},
    )


class ExportGoal:
    """Segment members out to Campaign Monitor lists (DESIGN §6)."""

    name: ClassVar[GoalName] = GoalName.EXPORT

    def configured(self, connection: Connection) -> bool:
        return connection.export is not None

    def preview(self, ctx: GoalContext) -> Outcome:
        """Dry run: counts per outcome and sample payloads exactly as they would be sent."""
        spec = GoalSpec.from_connection(ctx.connection)
        return preview_outcome(compute_plan(ctx, spec, field_types(ctx.client, spec), preview=True))

    def run(self, ctx: GoalContext, run_id: str) -> Outcome:
        spec = GoalSpec.from_connection(ctx.connection)
        plan = compute_plan(ctx, spec, field_types(ctx.client, spec, create=True))
        return execute_plan(ctx, run_id, plan)
