"""Run scratch under <workspace>/.runs: private while its run lives, swept once the run is gone."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from cmtoolkit.errors import ConfigurationError
from cmtoolkit.sync.scratch import scratch_dir, sweep

HOLD = """
import sys
from cmtoolkit.sync.scratch import scratch_dir
with scratch_dir(sys.argv[1], "import") as folder:
    print(folder, flush=True)
    sys.stdin.read()
"""


def test_scratch_is_in_the_workspace_and_removed_on_exit(tmp_path: Path) -> None:
    with scratch_dir(tmp_path, "export") as folder:
        assert folder.parent == tmp_path / ".runs" and folder.name.startswith("export-")
        (folder / "spill.bin").write_bytes(b"subscriber data")
    assert list((tmp_path / ".runs").iterdir()) == []


def test_a_killed_owners_folder_is_swept_by_the_next_run_a_live_ones_is_not(
    tmp_path: Path,
) -> None:
    live = subprocess.Popen(
        [sys.executable, "-c", HOLD, str(tmp_path)], stdin=subprocess.PIPE, stdout=subprocess.PIPE
    )
    killed = subprocess.Popen(
        [sys.executable, "-c", HOLD, str(tmp_path)], stdin=subprocess.PIPE, stdout=subprocess.PIPE
    )
    assert live.stdout is not None and killed.stdout is not None
    live_folder = Path(live.stdout.readline().decode().strip())
    killed_folder = Path(killed.stdout.readline().decode().strip())
    killed.kill()
    killed.wait(timeout=30)
    (killed_folder / "executed.ipynb").write_text("emails")
    try:
        with scratch_dir(tmp_path, "run") as mine:
            assert not killed_folder.exists()  # the crashed run's leftovers are gone
            assert live_folder.exists()  # a run still going keeps its scratch
            assert sweep(tmp_path) == [] and mine.exists()
    finally:
        assert live.stdin is not None
        live.stdin.close()
        live.wait(timeout=30)
    assert list((tmp_path / ".runs").iterdir()) == []


def test_a_folder_being_claimed_is_left_alone_for_a_minute(tmp_path: Path) -> None:
    young = tmp_path / ".runs" / "import-young"
    young.mkdir(parents=True)  # made, not yet claimed
    old = tmp_path / ".runs" / "import-old"
    old.mkdir()
    then = time.time() - 120
    os.utime(old, (then, then))
    assert sweep(tmp_path) == [old] and young.exists()


def test_a_workspace_that_cannot_hold_scratch_is_a_clear_error(tmp_path: Path) -> None:
    (tmp_path / ".runs").write_text("a file where the folder goes")
    with pytest.raises(ConfigurationError, match="writable"), scratch_dir(tmp_path, "import"):
        pass
