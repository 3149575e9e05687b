"""``cmtoolkit run`` and ``cmtoolkit schedule list|install|run`` (``history`` is in sync)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from cmtoolkit.batch.scheduler import (
    Broken,
    Scheduler,
    crontab_block,
    merge_crontab,
    read_crontab,
    scan,
    write_crontab,
)
from cmtoolkit.cli.arguments import (
    GOAL_CHOICES,
    add_workspace_argument,
    describe_counts,
    print_json,
)
from cmtoolkit.errors import CmToolkitError
from cmtoolkit.workspace import Workspace

if TYPE_CHECKING:
    from cmtoolkit.cli.arguments import Subcommands


def register(sub: Subcommands) -> None:
    run = sub.add_parser(
        "run",
        help="run a connection's goal notebooks with papermill: reports, index, alerts",
    )
    run.add_argument("connection", metavar="CONNECTION", help="connection name or file")
    run.add_argument("--goal", choices=GOAL_CHOICES, default="all")
    run.add_argument("--dry-run", action="store_true", help="preview only: nothing written")
    run.add_argument("--full", action="store_true", help="re-apply everything, ignoring deltas")
    run.add_argument("--json", action="store_true", help="machine-readable output")
    run.add_argument("--force", action="store_true", help="run a disabled connection this once")
    run.add_argument(
        "--notebooks", metavar="DIR", help="folder of the goal notebooks (default: notebooks/)"
    )
    run.add_argument("--kernel", default="cmtoolkit", help="Jupyter kernel (default cmtoolkit)")
    run.add_argument(
        "--execution-timeout", type=float, metavar="S", help="per-cell timeout in seconds"
    )
    add_workspace_argument(run)
    run.set_defaults(func=cmd_run)

    sch = sub.add_parser("schedule", help="scheduled runs: list, install (crontab), run")
    ssub = sch.add_subparsers(dest="schedule_command", metavar="ACTION")
    ssub.required = True
    ls = ssub.add_parser("list", help="next run time (UTC) of each enabled scheduled connection")
    ls.add_argument("--json", action="store_true")
    ls.set_defaults(func=cmd_schedule_list)
    ins = ssub.add_parser("install", help="add (or replace) this workspace's crontab entry")
    ins.add_argument("--print", action="store_true", help="show the entry, change nothing")
    ins.add_argument("--remove", action="store_true", help="remove this workspace's entry")
    ins.add_argument("--crontab-file", type=Path, metavar="F", help="edit F instead of crontab")
    ins.set_defaults(func=cmd_schedule_install)
    srun = ssub.add_parser("run", help="foreground scheduler: run due connections one at a time")
    srun.add_argument("--once", action="store_true", help="one tick, then exit (for cron)")
    srun.add_argument("--interval", type=float, default=30.0, help="seconds between ticks")
    srun.set_defaults(func=cmd_schedule_run)
    for p in (ls, ins, srun):
        add_workspace_argument(p)


def cmd_run(args: argparse.Namespace) -> int:
    # Imported here: the runner brings in nbformat, seconds of start-up every other command
    # (``emulator serve`` above all) would pay.
    from cmtoolkit.batch.runner import run_connection

    result = run_connection(
        args.workspace,
        args.connection,
        args.goal,
        dry_run=args.dry_run,
        full=args.full,
        force=args.force,
        notebooks=args.notebooks,
        kernel_name=args.kernel,
        execution_timeout=args.execution_timeout,
        progress_bar=not args.json and sys.stderr.isatty(),
    )
    reports = Workspace(args.workspace).reports_dir
    if args.json:
        print_json(result.to_dict(reports))
    else:
        for report in result.reports:
            g = report.run
            counts = describe_counts(g.counts, grouped=True)
            line = f"{g.goal} of {g.connection}: {g.state} in {g.duration_s or 0:.1f} s ({counts})"
            print(line if not g.error else f"{line}\n  error: {g.error}")
            if report.html:
                print(f"  report: {reports / report.html}")
        print(f"index: {result.index}")
    return 0 if result.ok else 1


def _skipped(broken: list[Broken]) -> None:
    for item in broken:
        print(f"warning: skipped (fix the file to schedule it): {item.problem}", file=sys.stderr)


def cmd_schedule_list(args: argparse.Namespace) -> int:
    items, broken = scan(Path(args.workspace))
    _skipped(broken)
    if args.json:
        print_json(
            [
                {
                    "connection": s.connection,
                    "schedule": s.cron.expression,
                    "next_run": s.next_run.isoformat() + "Z",
                }
                for s in items
            ]
        )
        return 0
    if not items:
        print("no enabled connection has a schedule")
    for s in items:
        print(f"{s.next_run:%Y-%m-%d %H:%M} UTC  {s.connection}  ({s.cron.expression})")
    return 0


def cmd_schedule_install(args: argparse.Namespace) -> int:
    ws = Path(args.workspace)
    _skipped(scan(ws)[1])  # a broken file is reported, and skipped by every tick
    block = None if args.remove else crontab_block(ws)
    if args.print:
        print(block or "")
        return 0
    current = read_crontab(args.crontab_file)
    new = merge_crontab(current, ws, block)
    if new == current:
        print("crontab already up to date")
        return 0
    write_crontab(new, args.crontab_file)
    print("crontab entry removed" if block is None else "crontab entry installed:\n" + block)
    return 0


def cmd_schedule_run(args: argparse.Namespace) -> int:
    from cmtoolkit.batch.runner import run_connection  # nbformat: see cmd_run

    def run(name: str) -> None:
        try:
            result = run_connection(args.workspace, name, "all")
        except CmToolkitError as exc:
            print(f"{name}: {exc}", flush=True)
            return
        for g in result.runs:
            print(f"{name} {g.goal}: {g.state}" + (f": {g.error}" if g.error else ""), flush=True)

    scheduler = Scheduler(Path(args.workspace), run)
    if args.once:
        scheduler.tick()
        _skipped(scheduler.broken)
        return 0
    print(f"scheduler for {args.workspace}: checking every {args.interval:g} s (Ctrl-C stops)")
    scheduler.loop(interval=args.interval)
    return 0
