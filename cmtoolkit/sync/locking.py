"""One run of a connection at a time (DESIGN §7).

The run lock is an advisory ``flock`` on ``<workspace>/.locks/<connection>.lock``: the kernel drops
it when the holding process ends however it ends (even SIGKILL), so a crashed run never leaves a
stale lock behind. The file records the holder's PID and start time for the error message.

A batch run (``cmtoolkit run``) takes the lock in the parent process and runs the goal notebooks in
a kernel; it hands the lock down through ``CMTOOLKIT_RUN_LOCK`` (and its own pid) so the kernel's
engine call does not refuse to run against its own parent. The kernel then takes the connection's
*kernel lock* (``<connection>.kernel.lock``) and holds it until the kernel process ends, and every
new run needs both: a ``cmtoolkit run`` killed mid-run cannot let a second run start while its
kernel is still writing. A kernel whose parent has already died takes the run lock itself.
"""

from __future__ import annotations

import fcntl
import json
import os
import re
import time
from pathlib import Path
from types import TracebackType

from cmtoolkit.errors import ConfigurationError, RunInProgress

_KERNEL = "is still running in the notebook kernel of a run whose `cmtoolkit run` has ended"

INHERITED_ENV = "CMTOOLKIT_RUN_LOCK"
HOLDER_ENV = "CMTOOLKIT_RUN_LOCK_PID"

#: Kernel locks this process holds, by path: held until the process ends (see the docstring).
_KERNEL_FDS: dict[Path, int] = {}


def lock_path(workspace: Path, connection: str) -> Path:
    """The lock file, absolute: a kernel handed the lock may see the workspace by another path."""
    slug = re.sub(r"[^A-Za-z0-9_.-]+", "_", connection) or "_"
    return Path(workspace).resolve() / ".locks" / f"{slug}.lock"


def kernel_lock_path(workspace: Path, connection: str) -> Path:
    path = lock_path(workspace, connection)
    return path.with_name(path.stem + ".kernel.lock")


class RunLock:
    """Exclusive, non-blocking lock on one connection's runs."""

    def __init__(self, workspace: Path, connection: str) -> None:
        self.path = lock_path(workspace, connection)
        self.connection = connection
        self._fd: int | None = None
        self._inherited = False

    def acquire(self) -> RunLock:
        if os.environ.get(INHERITED_ENV) == str(self.path):
            return self._acquire_inherited()
        self._fd = self._take(self.path, "is already running")
        try:  # a kernel of a run whose parent was killed may still be writing
            kernel = self._take(self.path.with_name(self.path.stem + ".kernel.lock"), _KERNEL)
        except BaseException:
            self.release()
            raise
        fcntl.flock(kernel, fcntl.LOCK_UN)
        os.close(kernel)
        return self

    def _acquire_inherited(self) -> RunLock:
        """In a batch run's kernel: hold the kernel lock until this process ends; take the run
        lock too when the parent that held it has died."""
        kernel_path = self.path.with_name(self.path.stem + ".kernel.lock")
        if kernel_path not in _KERNEL_FDS:
            _KERNEL_FDS[kernel_path] = self._take(kernel_path, _KERNEL)
        self._inherited = True
        holder = os.environ.get(HOLDER_ENV)
        if holder is not None and int(holder) not in (os.getppid(), os.getpid()):
            self._fd = self._take(self.path, "is already running")  # the parent has died
        return self

    def _take(self, path: Path, busy: str) -> int:
        """An exclusive lock on ``path`` with our pid in it; :class:`RunInProgress` when held."""
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
        except OSError as exc:
            raise ConfigurationError(
                f"cannot take the run lock {path} ({exc.strerror or exc}); the workspace must be "
                "writable by this user (check its permissions, or copy it somewhere writable)"
            ) from exc
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = _read_holder(fd)
            os.close(fd)
            raise RunInProgress(
                f"connection {self.connection!r} {busy} ({holder}); wait for that run "
                "to finish (see `cmtoolkit history`) and try again"
            ) from None
        os.ftruncate(fd, 0)
        os.write(fd, json.dumps({"pid": os.getpid(), "started": time.time()}).encode())
        return fd

    def release(self) -> None:
        if self._fd is not None:
            fcntl.flock(self._fd, fcntl.LOCK_UN)
            os.close(self._fd)
            self._fd = None

    def child_env(self) -> dict[str, str]:
        """Environment entries that let a child process run under this lock."""
        return {INHERITED_ENV: str(self.path), HOLDER_ENV: str(os.getpid())}

    def __enter__(self) -> RunLock:
        return self.acquire()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.release()


def _read_holder(fd: int) -> str:
    try:
        info = json.loads(os.pread(fd, 4096, 0) or b"{}")
        started = time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime(info["started"]))
        return f"process {info['pid']}, started {started}"
    except (ValueError, KeyError, OSError):
        return "another process"
