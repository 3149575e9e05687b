"""``cmtoolkit rows CONNECTION``: the people a connection's runs touched, with their outcomes.

The ledger keeps one row per contact or profile whose outcome was not ``UNCHANGED`` (DESIGN §7);
this lists them (newest run first), filters them by run and outcome, and writes them as CSV.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import TYPE_CHECKING

from cmtoolkit.cli.arguments import add_workspace_argument, print_json
from cmtoolkit.errors import ConfigurationError
from cmtoolkit.sync import ledger
from cmtoolkit.workspace import Workspace

if TYPE_CHECKING:
    from cmtoolkit.cli.arguments import Subcommands

#: Rows printed to the terminal when neither --csv nor --json is given (--limit changes it).
SHOWN = 50


def register(sub: Subcommands) -> None:
    p = sub.add_parser("rows", help="the people a connection's runs touched, with outcomes")
    p.add_argument("connection", metavar="CONNECTION", help="connection name or file")
    p.add_argument("--run", metavar="ID", help="one run (default: every run still holding rows)")
    p.add_argument(
        "--outcome",
        metavar="O",
        action="append",
        help="only this outcome (REJECTED, INVALID, SUPPRESSED, …); repeat for several",
    )
    p.add_argument("--csv", metavar="FILE", type=Path, help="write every matching row as CSV")
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p.add_argument("--limit", type=int, default=None, help=f"rows shown (default {SHOWN})")
    add_workspace_argument(p)
    p.set_defaults(func=cmd_rows)


def cmd_rows(args: argparse.Namespace) -> int:
    runner = Workspace.open(args.workspace).connection(args.connection)
    if not runner.store.path.exists():
        print("no runs yet")
        return 0
    limit = args.limit if args.limit is not None else (None if args.csv or args.json else SHOWN)
    with runner.store.connect() as con:
        if args.run is not None and ledger.get_run(con, args.run) is None:
            raise ConfigurationError(
                f"no run {args.run!r}; `cmtoolkit history {args.connection}` lists the runs"
            )
        frame = ledger.rows(
            con, runner.model.name, run_id=args.run, outcomes=args.outcome, limit=limit
        )
    if args.csv is not None:
        frame.write_csv(args.csv)
        print(f"{frame.height} rows written to {args.csv}")
        return 0
    if args.json:
        print_json(frame.to_dicts())
        return 0
    if not frame.height:
        print("no rows (unchanged rows are counted only, not listed)")
        return 0
    for r in frame.iter_rows(named=True):
        code = f"code {r['code']}" if r["code"] is not None else ""
        print(
            f"{r['run_id']}  {r['goal']:<9} {r['outcome']:<16} {r['email'] or '-':<32} "
            f"{code:<9} {r['reason'] or ''}"
        )
    if limit is not None and frame.height == limit:
        print(f"(first {limit} rows; --limit N for more, --csv FILE for all)")
    return 0
