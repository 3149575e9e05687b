"""The ``cmtoolkit`` command.

One module per concept registers its sub-commands (``register(subparsers)``); this face wires
them together, in the order ``--help`` lists them, and turns cmtoolkit errors into a clear
message and exit code 2. Nothing below the CLI imports it.
"""

from __future__ import annotations

import argparse
import importlib.metadata
import logging
import os
import sys
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING

import duckdb

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
        return _fail(str(exc))
    except BrokenPipeError:
        return _reader_gone()
    except duckdb.Error as exc:  # a store damaged past what opening it shows
        first = str(exc).splitlines()[0][:300]
        return _fail(
            f"the profile store could not be read ({first}); the file is damaged or was cut "
            "short: restore profiles.duckdb from a backup, or move it aside and load the "
            "profiles again"
        )
    except OSError as exc:  # a read-only or full disk, a folder where a file should be, ...
        where = f" {exc.filename}" if exc.filename else ""
        return _fail(
            f"cannot use{where}: {exc.strerror or exc}; check that the workspace is writable "
            "by this user and that the disk has room"
        )
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130


def _fail(message: str) -> int:
    print(f"error: {message}", file=sys.stderr)
    return 2


def _reader_gone() -> int:
    """``cmtoolkit ... | head``: the reader left; end quietly with 141, as a Unix tool killed by
    SIGPIPE does (the store work is done or rolled back by then)."""
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())  # so the interpreter's final flush cannot fail
    except (OSError, ValueError):  # stdout is not a file (captured): nothing to flush
        pass
    return 141
