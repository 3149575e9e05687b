"""One run of a connection at a time (DESIGN §7).

The run lock is an advisory ``flock`` on ``<workspace>/.locks/<connection>.lock``: the kernel drops
it when the holding process ends however it ends (even SIGKILL), so a crashed run never leaves a
stale lock behind. The file records the holder's PID and start time for the error message.

A batch run (``cmtoolkit run``) takes the lock in the parent process and runs the goal notebooks in
a kernel; it hands the lock down through ``CMTOOLKIT_RUN_LOCK`` so the kernel's engine call does not
refuse to run against its own parent.
"""

from __future__ import annotations

import fcntl
import json
import os
import re
import time
from pathlib import Path
from types import TracebackType

from cmtoolkit.errors import RunInProgress

INHERITED_ENV = "CMTOOLKIT_RUN_LOCK"


def lock_path(workspace: Path, connection: str) -> Path:
    """The lock file, absolute: a kernel handed the lock may see the workspace by another path."""
    slug = re.sub(r"[^A-Za-z0-9_.-]+", "_", connection) or "_"
    return Path(workspace).resolve() / ".locks" / f"{slug}.lock"


class RunLock:
    """Exclusive, non-blocking lock on one connection's runs."""

    def __init__(self, workspace: Path, connection: str) -> None:
        self.path = lock_path(workspace, connection)
        self.connection = connection
        self._fd: int | None = None
        self._inherited = False

    def acquire(self) -> RunLock:
        if os.environ.get(INHERITED_ENV) == str(self.path):
            self._inherited = True  # our parent process holds it for us
            return self
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = _read_holder(fd)
            os.close(fd)
            raise RunInProgress(
                f"connection {self.connection!r} is already running ({holder}); wait for that run "
                "to finish (see `cmtoolkit history`) and try again"
            ) from None
        os.ftruncate(fd, 0)
        os.write(fd, json.dumps({"pid": os.getpid(), "started": time.time()}).encode())
        self._fd = fd
        return self

    def release(self) -> None:
        if self._fd is not None:
            fcntl.flock(self._fd, fcntl.LOCK_UN)
            os.close(self._fd)
            self._fd = None

    def child_env(self) -> dict[str, str]:
        """Environment entries that let a child process run under this lock."""
        return {INHERITED_ENV: str(self.path)}

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
