"""Apply: a plan's new profiles, changed property columns, delta hashes and ledger rows written
into the store, inside the caller's transaction (the one that marks the run FINISHED)."""

from __future__ import annotations

from collections.abc import Callable, Sequence

import duckdb

from cmtoolkit.profiles.quoting import quote_ident
from cmtoolkit.sync.imports.plan import ImportPlan
from cmtoolkit.sync.imports.spec import ImportSpec, Target
from cmtoolkit.sync.imports.state import (
    leaver_cursor_statements,
    state_statements,
    sums_statements,
)
from cmtoolkit.sync.statement import Statement, execute

#: ``define_property(con, name, type)``: the store's way to add a property column.
DefineProperty = Callable[[duckdb.DuckDBPyConnection, str, str], object]


def apply_import(plan: ImportPlan, run_id: str, define_property: DefineProperty) -> None:
    """Write the plan into the store; the caller holds the transaction.

    ``define_property(con, name, type)`` creates a missing property (the store's function).
    """
    if not plan.values:
        raise ValueError("a preview's plan (values=False) cannot be applied")
    for name, type_ in plan.new_properties.items():
        define_property(plan.con, name, type_)
    execute(plan.con, apply_statements(plan.spec, run_id))


def apply_statements(spec: ImportSpec, run_id: str) -> list[Statement]:
    """The writes of a plan whose temp tables (imp_plan, imp_new) are on the connection."""
    return [
        *profile_statements(spec.targets),
        *sums_statements(spec),
        *state_statements(spec),
        *leaver_cursor_statements(spec),
        ledger_statement(run_id),
    ]


def profile_statements(targets: Sequence[Target]) -> list[Statement]:
    """Changed profiles rewritten, created ones inserted.

    A changed profile is written as a new row and its old row deleted, rather than UPDATEd:
    DuckDB updates a list column by deleting and re-inserting the row anyway, and logged the
    re-inserted rows at commit (1 s for 500k profiles), while an INSERT this large goes straight
    to the file.
    """
    if not targets:
        return []
    # No value is stored as NULL, never [], as the loaders do.
    news = ", ".join(f"nullif(n.new_{t.alias}, []) AS {quote_ident(t.property)}" for t in targets)
    return [
        Statement(
            """
            CREATE OR REPLACE TEMP TABLE imp_old AS
            SELECT p.rowid AS old_rowid FROM profiles p
            SEMI JOIN (SELECT profile_id FROM imp_new WHERE changed AND NOT is_new)
                 USING (profile_id)
            """
        ),
        Statement(
            f"""
            INSERT INTO profiles BY NAME
            SELECT p.* REPLACE ({news}, now() AS updated_at)
            FROM profiles p JOIN imp_new n USING (profile_id)
            WHERE n.changed AND NOT n.is_new
            """
        ),
        Statement("DELETE FROM profiles WHERE rowid IN (SELECT old_rowid FROM imp_old)"),
        Statement(
            f"""
            INSERT INTO profiles BY NAME
            SELECT n.profile_id, {news}, now() AS created_at, now() AS updated_at
            FROM imp_new n WHERE n.is_new
            """
        ),
    ]


def ledger_statement(run_id: str) -> Statement:
    """One ledger row per contact whose outcome is not UNCHANGED (DESIGN §7: those are counted
    only), and per contact whose row notes a skipped mapping (DESIGN §5: "the row notes it")."""
    return Statement(
        """
        INSERT INTO run_rows (run_id, seq, list_id, email, identifier, profile_id, outcome, reason)
        SELECT $run_id, cid, list_id, email, identifier,
               CASE WHEN NOT is_new OR outcome = 'CREATED' THEN profile_id END, outcome, reason
        FROM imp_plan WHERE outcome <> 'UNCHANGED' OR skipped
        """,
        {"run_id": run_id},
    )
