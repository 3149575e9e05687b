"""``cmtoolkit demo``: registers the command; the demo itself is :mod:`cmtoolkit.demo`."""

from __future__ import annotations

import argparse
from typing import TYPE_CHECKING

from cmtoolkit.cli.arguments import add_workspace_argument
from cmtoolkit.errors import ConfigurationError

if TYPE_CHECKING:
    from cmtoolkit.cli.arguments import Subcommands


def register(sub: Subcommands) -> None:
    p = sub.add_parser("demo", help="the embedded default end to end: emulator + profiles + sync")
    add_workspace_argument(p)
    p.add_argument("--profiles", type=int, default=50_000, help="synthetic profiles (50,000)")
    p.add_argument("--subscribers", type=int, default=30_000, help="emulated subscribers")
    p.add_argument("--seed", type=int, default=7)
    p.add_argument(
        "--serve",
        action="store_true",
        help="do not run the demo: start its emulator and JupyterLab on the notebooks against "
        "the workspace a demo built, until Ctrl-C",
    )
    p.add_argument("--port", type=int, default=0, help="the emulator's port with --serve (free)")
    p.add_argument(
        "lab_args",
        nargs="*",
        metavar="JUPYTERLAB_ARGS",
        help="with --serve, after '--': arguments for JupyterLab (e.g. -- --no-browser)",
    )
    p.set_defaults(func=cmd_demo)


def cmd_demo(args: argparse.Namespace) -> int:
    # Imported here: the demo runs the batch job, whose nbformat costs every other command
    # seconds of start-up.
    from cmtoolkit.demo import run_demo, serve

    if args.serve:
        return serve(args.workspace, port=args.port, lab_args=args.lab_args)
    if args.lab_args:
        raise ConfigurationError("JupyterLab arguments go with --serve")
    result = run_demo(
        args.workspace, profiles=args.profiles, subscribers=args.subscribers, seed=args.seed
    )
    return 0 if result.ok else 1
