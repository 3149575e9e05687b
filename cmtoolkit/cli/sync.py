"""``cmtoolkit preview``, ``cmtoolkit sync`` and ``cmtoolkit history``."""

from __future__ import annotations

import argparse
from collections.abc import Mapping
from typing import TYPE_CHECKING

from cmtoolkit.cli.arguments import (
    GOAL_CHOICES,
    add_workspace_argument,
    describe_counts,
    print_json,
)
from cmtoolkit.sync import ConnectionRunner, Run, preview, resolve_goals, sync
from cmtoolkit.workspace import Workspace

if TYPE_CHECKING:
    from cmtoolkit.cli.arguments import Subcommands


def register(sub: Subcommands) -> None:
    pv = sub.add_parser("preview", help="dry run: what a sync would change, nothing written")
    pv.add_argument("connection", metavar="CONNECTION", help="connection name or file")
    pv.add_argument("--goal", choices=GOAL_CHOICES, default="all")
    pv.add_argument("--full", action="store_true", help="ignore what earlier runs recorded")
    pv.add_argument("--json", action="store_true", help="machine-readable output")
    pv.add_argument("--sample", type=int, default=10, help="sample rows to show (default 10)")
    pv.set_defaults(func=cmd_preview)

    sy = sub.add_parser("sync", help="run a connection's goals now (the engine, no report)")
    sy.add_argument("connection", metavar="CONNECTION", help="connection name or file")
    sy.add_argument("--goal", choices=GOAL_CHOICES, default="all")
    sy.add_argument("--full", action="store_true", help="re-apply everything, ignoring deltas")
    sy.add_argument("--json", action="store_true", help="machine-readable output")
    sy.add_argument("--force", action="store_true", help="run a disabled connection this once")
    sy.set_defaults(func=cmd_sync)

    hi = sub.add_parser("history", help="the run ledger of a connection, newest first")
    hi.add_argument("connection", metavar="CONNECTION", help="connection name or file")
    hi.add_argument("--limit", type=int, default=20)
    hi.add_argument("--json", action="store_true", help="machine-readable output")
    hi.set_defaults(func=cmd_history)

    for p in (pv, sy, hi):
        add_workspace_argument(p)


def _runner(args: argparse.Namespace) -> ConnectionRunner:
    return Workspace.open(args.workspace).connection(args.connection)


def cmd_preview(args: argparse.Namespace) -> int:
    runner = _runner(args)
    resolve_goals(runner.model, args.goal)
    runner.check_ready(dry_run=True)  # the readiness gate (DESIGN §7): exit 2, errors listed
    results = [
        preview(runner.context(full=args.full), g) for g in resolve_goals(runner.model, args.goal)
    ]
    if args.json:
        print_json([_with_sample(r, args.sample) for r in results])
        return 0
    for r in results:
        print(f"{r.goal} preview of {r.connection}: {describe_counts(r.counts, grouped=True)}")
        for note in import_notes(r.details):
            print(f"  {note}")
        if r.samples is not None and r.samples.height:
            print(text_table(r.samples.head(args.sample).to_dicts()))
    return 0


def import_notes(details: Mapping[str, object]) -> list[str]:
    """What an import's counts do not say (DESIGN §5), one line each."""
    notes = []
    summed, leavers = details.get("already_summed"), details.get("leavers")
    if isinstance(summed, int) and summed:
        notes.append(f"sum: {summed:,} values already summed, not added again")
    if isinstance(leavers, int) and leavers:
        notes.append(f"leavers: {leavers:,} subscribers left a list (its name taken away)")
    return notes


def text_table(rows: list[dict[str, object]]) -> str:
    """Rows as aligned text: every value in full (ids, payloads), numbers with thousands
    separators, lists joined by ', ' — not a frame's truncated repr."""
    if not rows:
        return ""
    headers = list(rows[0])
    cells = [[_cell(r.get(h)) for h in headers] for r in rows]
    widths = [max(len(h), *(len(c[i]) for c in cells)) for i, h in enumerate(headers)]
    numeric = [all(isinstance(r.get(h), int | float) for r in rows) for h in headers]

    def line(values: list[str]) -> str:
        parts = [
            v.rjust(w) if num else v.ljust(w)
            for v, w, num in zip(values, widths, numeric, strict=True)
        ]
        return "  ".join(parts).rstrip()

    rule = "  ".join("-" * w for w in widths)
    return "\n".join([line(headers), rule, *(line(c) for c in cells)])


def _cell(value: object) -> str:
    if value is None:
        return "—"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, int):
        return f"{value:,}"
    if isinstance(value, float):
        return f"{value:,.2f}".rstrip("0").rstrip(".")
    if isinstance(value, list | tuple):
        return ", ".join(_cell(v) for v in value) or "[]"
    return str(value).replace("\n", " ")


def _with_sample(result: Run, n: int) -> dict[str, object]:
    d = result.to_dict()
    if result.samples is not None:
        d["sample"] = result.samples.head(n).to_dicts()
    return d


def cmd_sync(args: argparse.Namespace) -> int:
    runner = _runner(args)
    goals = resolve_goals(runner.model, args.goal)
    runner.check_ready(force=args.force)  # the readiness gate (DESIGN §7): exit 2, errors listed
    results: list[Run] = []
    for goal in goals:
        result = sync(runner.context(full=args.full), goal, raise_on_failure=False)
        results.append(result)
        if not args.json:
            line = (
                f"{goal} of {result.connection}: {result.state} ({describe_counts(result.counts)})"
            )
            print(line if result.ok else f"{line}: {result.error}")
            for note in import_notes(result.details):
                print(f"  {note}")
        if not result.ok:
            break
    if args.json:
        print_json([r.to_dict() for r in results])
    return 0 if all(r.ok for r in results) else 1


def cmd_history(args: argparse.Namespace) -> int:
    runs = _runner(args).history(limit=args.limit)
    if args.json:
        print_json([r.to_dict() for r in runs])
        return 0
    if not runs:
        print("no runs yet")
    for r in runs:
        took = f"{r.duration_s:.1f}s" if r.duration_s is not None else "-"
        tail = f": {r.error}" if r.error else ""
        print(
            f"{r.started_at:%Y-%m-%d %H:%M:%S}  {r.goal:<9} {r.state:<8} {took:>7}  "
            f"{describe_counts(r.counts)}{tail}"
        )
    return 0
