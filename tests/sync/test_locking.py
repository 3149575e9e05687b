"""The run lock: one run of a connection at a time, handed down to a batch run's kernel."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from cmtoolkit.errors import RunInProgress
from cmtoolkit.sync.locking import RunLock


def test_a_second_holder_is_refused_with_the_first_ones_pid(tmp_path: Path) -> None:
    with RunLock(tmp_path, "news"):
        probe = (
            "import sys; from cmtoolkit.sync.locking import RunLock; "
            "RunLock(sys.argv[1], 'news').acquire()"
        )
        proc = subprocess.run(
            [sys.executable, "-c", probe, str(tmp_path)], capture_output=True, text=True
        )
        assert proc.returncode != 0
        assert f"process {os.getpid()}" in proc.stderr and "already running" in proc.stderr
    RunLock(tmp_path, "news").acquire().release()  # free again once released


def test_the_lock_is_handed_to_a_child_whatever_path_it_sees(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "ws").mkdir()
    parent = RunLock(Path("ws"), "news").acquire()  # relative, as `--workspace ws` gives it
    try:
        for key, value in parent.child_env().items():
            monkeypatch.setenv(key, value)
        child = RunLock(tmp_path / "ws", "news").acquire()  # the kernel gets an absolute path
        child.release()
        monkeypatch.delenv("CMTOOLKIT_RUN_LOCK")
        with pytest.raises(RunInProgress):
            RunLock(tmp_path / "ws", "news").acquire()
    finally:
        parent.release()
