"""``cmtoolkit --version`` through the installed entry point, and the CLI's place on top."""

from __future__ import annotations

import importlib.metadata
import subprocess
import sys
from pathlib import Path

from cmtoolkit.cli import build_parser

SCRIPT = Path(sys.executable).with_name("cmtoolkit")


def test_version_through_the_installed_script():
    done = subprocess.run(
        [str(SCRIPT), "--version"], capture_output=True, text=True, timeout=120, check=False
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout == f"cmtoolkit {importlib.metadata.version('cmtoolkit')}\n"


def test_version_through_python_m_cmtoolkit():
    done = subprocess.run(
        [sys.executable, "-m", "cmtoolkit", "--version"],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout == f"cmtoolkit {importlib.metadata.version('cmtoolkit')}\n"


def test_every_command_is_registered():
    parser = build_parser()
    commands = next(a for a in parser._actions if a.dest == "command").choices
    assert list(commands) == [
        "emulator",
        "profiles",
        "interactions",
        "segments",
        "auth",
        "connections",
        "status",
        "preview",
        "sync",
        "history",
        "rows",
        "run",
        "schedule",
        "demo",
    ]


def test_no_package_imports_the_cli():
    code = (
        "import sys, cmtoolkit.workspace, cmtoolkit.batch.scheduler, cmtoolkit.demo;"
        "print(sorted(m for m in sys.modules if m.startswith('cmtoolkit.cli')))"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=True
    )
    assert done.stdout.strip() == "[]"
