"""The ``cmtoolkit`` command.

One module per concept registers its sub-commands (``register(subparsers)``); this face wires
them together, in the order ``--help`` lists them, and turns cmtoolkit errors into a clear
message and exit code 2. Nothing below the CLI imports it.
"""

from __future__ import annotations

import argparse
import importlib.metadata
import logging
import sys
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING

import cmtoolkit
from cmtoolkit.cli import batch, connections, demo, emulator, profiles, rows, sync
from cmtoolkit.errors import CmToolkitError

if TYPE_CHECKING:
    from cmtoolkit.cli.arguments import Subcommands

__all__ = ["build_parser", "main", "version"]

#: Each concept's sub-commands, in the order ``cmtoolkit --help`` lists them.
REGISTER: tuple[Callable[[Subcommands], None], ...] = (
    emulator.register,
    profiles.register,
    connections.register,
    sync.register,
    rows.register,
    batch.register,
    demo.register,
)


def version() -> str:
    """The installed distribution's version (the source tree's when it is not installed)."""
    try:
        return importlib.metadata.version("cmtoolkit")
    except importlib.metadata.PackageNotFoundError:
        return cmtoolkit.__version__


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="cmtoolkit",
        description="Sync Campaign Monitor lists with a DuckDB customer-profile store.",
    )
    parser.add_argument(
        "-v", "--verbose", action="count", default=0, help="more logging (-vv: DEBUG)"
    )
    parser.add_argument("--version", action="version", version=f"cmtoolkit {version()}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True
    for register in REGISTER:
        register(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    level = {0: logging.WARNING, 1: logging.INFO}.get(args.verbose, logging.DEBUG)
    logging.basicConfig(level=level, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    try:
        return int(args.func(args) or 0)
    except CmToolkitError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
