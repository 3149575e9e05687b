"""What every command shares: the ``--workspace`` option and the printing of results."""

from __future__ import annotations

import argparse
import json
import os
from collections.abc import Mapping
from typing import TYPE_CHECKING, TypeAlias

if TYPE_CHECKING:
    #: What ``register`` receives: the sub-command table of the ``cmtoolkit`` parser.
    Subcommands: TypeAlias = argparse._SubParsersAction[argparse.ArgumentParser]

#: The goals ``--goal`` accepts (``all`` is every configured goal, in order).
GOAL_CHOICES = ("import", "export", "targeting", "all")


def default_workspace() -> str:
    return os.environ.get("CMTOOLKIT_WORKSPACE", "./workspace")


def add_workspace_argument(parser: argparse.ArgumentParser) -> None:
    """The ``--workspace DIR`` option every command takes."""
    parser.add_argument(
        "--workspace",
        default=default_workspace(),
        help="workspace folder (default: $CMTOOLKIT_WORKSPACE or ./workspace)",
    )


def print_json(data: object, *, ensure_ascii: bool = True) -> None:
    """``--json`` output: indented, and values JSON has no type for (dates) written as text."""
    print(json.dumps(data, indent=2, ensure_ascii=ensure_ascii, default=str))


def describe_counts(counts: Mapping[str, int], *, grouped: bool = False) -> str:
    """``"created 3, updated 1"``: the non-zero counts (``grouped`` writes 1,000 for 1000)."""
    shown = [f"{k} {v:,}" if grouped else f"{k} {v}" for k, v in counts.items() if v]
    return ", ".join(shown) or "nothing to do"
