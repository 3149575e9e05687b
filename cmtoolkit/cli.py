"""The ``cmtoolkit`` command.

Each concept package contributes its own sub-commands through a ``register(subparsers)`` function
in its ``commands`` module, so this file only wires them together and turns cmtoolkit errors into a
clear message and a non-zero exit code.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import os
import sys
from collections.abc import Sequence

from cmtoolkit.errors import CmToolkitError

# Modules that define ``register(subparsers)``; missing ones are skipped so the command works
# while packages are being built.
COMMAND_MODULES = (
    "cmtoolkit.emulator.commands",
    "cmtoolkit.profiles.commands",
    "cmtoolkit.connection.commands",
    "cmtoolkit.sync.commands",
    "cmtoolkit.batch.commands",
    "cmtoolkit.demo",
)


def default_workspace() -> str:
    return os.environ.get("CMTOOLKIT_WORKSPACE", "./workspace")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="cmtoolkit",
        description="Sync Campaign Monitor lists with a DuckDB customer-profile store.",
    )
    parser.add_argument(
        "-v", "--verbose", action="count", default=0, help="more logging (-vv: DEBUG)"
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True
    for name in COMMAND_MODULES:
        try:
            module = importlib.import_module(name)
        except ModuleNotFoundError as exc:
            if exc.name == name:
                continue
            raise
        module.register(sub)
    return parser


def add_workspace_argument(parser: argparse.ArgumentParser) -> None:
    """The ``--workspace DIR`` option every command takes."""
    parser.add_argument(
        "--workspace",
        default=default_workspace(),
        help="workspace folder (default: $CMTOOLKIT_WORKSPACE or ./workspace)",
    )


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


if __name__ == "__main__":
    sys.exit(main())
