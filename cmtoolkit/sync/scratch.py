"""Run scratch: private folders under ``<workspace>/.runs/``, never in ``/tmp`` (DESIGN §2).

A run's spill files and papermill's executed notebook hold subscriber data, so they stay with the
workspace. Each folder is claimed by an ``flock`` on its ``.owner`` file, which the kernel drops
when the process ends however it ends (even SIGKILL): creating a folder first removes every folder
whose claim has lapsed, so the next run cleans up after a crashed one.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import shutil
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

from cmtoolkit.errors import ConfigurationError

SCRATCH = ".runs"
OWNER = ".owner"

#: Past a million rows a run's DuckDB is allowed this many bytes more a row: its hash tables over
#: ten million rows need room (10M: 0.86 GB more).
MEMORY_PER_ROW_PAST_1M = 100


def scratch_root(workspace: str | os.PathLike[str]) -> Path:
    return Path(workspace) / SCRATCH


@contextlib.contextmanager
def scratch_dir(workspace: str | os.PathLike[str] | None, prefix: str) -> Iterator[Path]:
    """A private folder for one run's scratch, removed on exit (and by the next run after a crash).

    ``workspace`` None (a stage or plan used outside any workspace: benchmarks, unit tests) falls
    back to the system temp folder.
    """
    if workspace is None:
        with tempfile.TemporaryDirectory(prefix=f"cmtoolkit-{prefix}-") as tmp:
            yield Path(tmp)
        return
    root = scratch_root(workspace)
    try:
        root.mkdir(mode=0o700, exist_ok=True)
        sweep(workspace)
        folder = Path(tempfile.mkdtemp(prefix=f"{prefix}-", dir=root))
        fd = os.open(folder / OWNER, os.O_RDWR | os.O_CREAT, 0o600)
    except OSError as exc:
        raise ConfigurationError(
            f"cannot write run scratch under {root} ({exc.strerror or exc}); the workspace "
            f"{workspace} must be writable by this user"
        ) from exc
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield folder
    finally:
        shutil.rmtree(folder, ignore_errors=True)
        os.close(fd)


def memory_limit(base_mb: int, rows: int) -> str:
    """A run's DuckDB memory limit for ``rows`` rows: ``base_mb`` up to a million, then
    :data:`MEMORY_PER_ROW_PAST_1M` more a row. Past it DuckDB spills into the run's scratch."""
    extra = max(0, rows - 1_000_000) * MEMORY_PER_ROW_PAST_1M // 2**20
    return f"{base_mb + extra}MB"


def sweep(workspace: str | os.PathLike[str]) -> list[Path]:
    """Remove the scratch folders whose owner has ended; the ones removed."""
    root = scratch_root(workspace)
    removed: list[Path] = []
    if not root.is_dir():
        return removed
    for folder in root.iterdir():
        if folder.is_dir() and not _claimed(folder):
            shutil.rmtree(folder, ignore_errors=True)
            removed.append(folder)
    return removed


def _claimed(folder: Path) -> bool:
    """Whether a live process holds the folder (a folder just made, not yet claimed, counts)."""
    try:
        fd = os.open(folder / OWNER, os.O_RDWR)
    except FileNotFoundError:
        # mkdtemp then open is not atomic: a folder younger than a minute is being claimed.
        with contextlib.suppress(OSError):
            return time.time() - folder.stat().st_mtime < 60
        return False
    except OSError:
        return True
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return True
    finally:
        os.close(fd)
    return False


__all__ = ["SCRATCH", "scratch_dir", "scratch_root", "sweep"]
