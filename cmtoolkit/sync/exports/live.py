"""Segment membership evaluated at the start of every export, targeting run and preview.

Membership comes from the segment definitions (``segments.yaml``: rules over the current
properties, or the current membership file), never from the last ``segments refresh``: nothing
needs a manual refresh, and an import earlier in the same ``--goal all`` run reaches the export
(DESIGN §6). The live membership is a temp ``segment_members`` on the plan's read connection that
shadows the stored one, so a preview writes nothing.
"""

from __future__ import annotations

from dataclasses import dataclass

import duckdb

from cmtoolkit.errors import ConfigurationError
from cmtoolkit.sync.exports.spec import GoalSpec
from cmtoolkit.sync.goal import GoalContext


@dataclass(frozen=True)
class LiveSegment:
    name: str
    sql: str  # selects profile_id; positional parameters
    params: tuple[object, ...]


def live_segments(ctx: GoalContext, spec: GoalSpec) -> list[LiveSegment]:
    """The membership queries the plan needs: its segments, and every defined segment when a
    value exports segment names. A segment that is neither defined nor stored is an error."""
    defined = ctx.segments.definitions() if ctx.segments.path.exists() else {}
    wanted = list(defined) if any(v.kind == "segments" for v in spec.values) else []
    wanted += [s for s in spec.segments if s not in wanted]
    undefined = [s for s in spec.segments if s not in defined]
    if undefined:
        with ctx.store.connect() as con:
            stored = {
                r[0]
                for r in con.execute(
                    "SELECT name FROM segments WHERE list_contains($n, name)", {"n": undefined}
                ).fetchall()
            }
        gone = [s for s in undefined if s not in stored]
        if gone:
            raise ConfigurationError(
                f"segment(s) {', '.join(gone)} are not defined; define them in "
                f"{ctx.segments.path.name} (rules or a membership file)"
            )
    out = []
    for name in wanted:
        if name in defined:
            sql, params = ctx.segments.sql(name)
            out.append(LiveSegment(name, sql, tuple(params)))
    return out


def install_segments(con: duckdb.DuckDBPyConnection, segments: list[LiveSegment]) -> None:
    """A temp segment_members: live membership of ``segments``, stored membership of others."""
    con.execute(
        "CREATE OR REPLACE TEMP TABLE segment_members AS SELECT segment, profile_id "
        "FROM main.segment_members WHERE NOT list_contains($names::VARCHAR[], segment)",
        {"names": [s.name for s in segments]},
    )
    for s in segments:
        con.execute(
            f"INSERT INTO temp.segment_members SELECT DISTINCT ?, m.profile_id FROM ({s.sql}) m",
            [s.name, *s.params],
        )
