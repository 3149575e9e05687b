"""The store's lock waits: a fake clock for the backoff, real processes for the contention."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import duckdb
import pytest

from cmtoolkit.errors import ConfigurationError, StoreLocked
from cmtoolkit.profiles.store import Store, lock_timeout_from_env
from cmtoolkit.workspace import Workspace

LOCK_MESSAGE = (
    'IO Error: Could not set lock on file "x.duckdb": Conflicting lock is held in '
    "/usr/bin/python3.11 (PID 4242). See also https://duckdb.org/docs/current/connect/concurrency"
)


class FakeClock:
    def __init__(self) -> None:
        self.now = 0.0
        self.sleeps: list[float] = []

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds


def test_backoff_then_success(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    clock = FakeClock()
    store = Store(tmp_path / "s.duckdb", lock_timeout=10, clock=clock, sleep=clock.sleep)
    real_connect = duckdb.connect
    attempts = []

    def flaky(path: str, read_only: bool = False) -> duckdb.DuckDBPyConnection:
        attempts.append(path)
        if len(attempts) <= 4:
            raise duckdb.IOException(LOCK_MESSAGE)
        return real_connect(path, read_only=read_only)

    monkeypatch.setattr(duckdb, "connect", flaky)
    with store.connect(write=True) as con:
        assert con.execute("SELECT 1").fetchall() == [(1,)]
    assert clock.sleeps == [0.05, 0.1, 0.2, 0.4]


def test_backoff_gives_up_with_holder_pid(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    clock = FakeClock()
    store = Store(tmp_path / "s.duckdb", lock_timeout=10, clock=clock, sleep=clock.sleep)

    def locked(path: str, read_only: bool = False) -> duckdb.DuckDBPyConnection:
        raise duckdb.IOException(LOCK_MESSAGE)

    monkeypatch.setattr(duckdb, "connect", locked)
    with pytest.raises(StoreLocked) as info, store.connect(write=True):
        pass
    assert info.value.holder_pid == 4242
    assert "process 4242" in str(info.value) and "CMTOOLKIT_LOCK_TIMEOUT" in str(info.value)
    assert sum(clock.sleeps) == pytest.approx(10)
    assert max(clock.sleeps) == 2.0  # capped
    assert info.value.retriable


def test_lock_timeout_from_environment(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("CMTOOLKIT_LOCK_TIMEOUT", "7.5")
    assert lock_timeout_from_env() == 7.5
    assert Workspace(tmp_path).store.lock_timeout == 7.5
    assert Workspace(tmp_path, lock_timeout=1).store.lock_timeout == 1
    monkeypatch.setenv("CMTOOLKIT_LOCK_TIMEOUT", "soon")
    with pytest.raises(ConfigurationError, match="CMTOOLKIT_LOCK_TIMEOUT"):
        lock_timeout_from_env()
    monkeypatch.delenv("CMTOOLKIT_LOCK_TIMEOUT")
    assert lock_timeout_from_env() == 60


HOLDER = """
import sys
from cmtoolkit.profiles.store import Store
store = Store(sys.argv[1])
with store.connect(write=True) as con:
    con.execute(
        "INSERT INTO profiles (profile_id, created_at, updated_at)"
        " VALUES ('held', now(), now())"
    )
    print("holding", flush=True)
    sys.stdin.readline()
print("released", flush=True)
"""


def start_holder(path: Path) -> subprocess.Popen[str]:
    """A process holding the store's write lock until a line arrives on its stdin."""
    proc = subprocess.Popen(
        [sys.executable, "-c", HOLDER, str(path)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    assert proc.stdout is not None
    assert proc.stdout.readline().strip() == "holding"
    return proc


def release(proc: subprocess.Popen[str]) -> None:
    """Let the holder go and wait until it has ended (its lock is then certainly free)."""
    assert proc.stdin is not None
    if proc.poll() is None:
        proc.stdin.write("\n")
        proc.stdin.flush()
    proc.wait(timeout=30)


def test_second_process_waits_until_the_first_releases(tmp_path: Path) -> None:
    path = tmp_path / "profiles.duckdb"
    proc = start_holder(path)
    waits: list[float] = []

    def wait(seconds: float) -> None:
        # instead of sleeping for the backoff: the first wait releases the holder and returns
        # once it has ended, so the retry finds the lock free
        waits.append(seconds)
        release(proc)

    try:
        store = Store(path, lock_timeout=30, sleep=wait)
        with store.transaction() as con:
            con.execute(
                "INSERT INTO profiles (profile_id, created_at, updated_at)"
                " VALUES ('second', now(), now())"
            )
    finally:
        release(proc)
    assert waits == [0.05]  # it met the lock once, backed off, then got in
    assert proc.stdout is not None and proc.stdout.read().strip() == "released"
    assert Store(path).count() == 2


def test_second_process_times_out_naming_the_holder(tmp_path: Path) -> None:
    path = tmp_path / "profiles.duckdb"
    proc = start_holder(path)
    try:
        for write in (True, False):  # a reader meets the writer's lock too
            store = Store(path, lock_timeout=0.5)
            with pytest.raises(StoreLocked) as info, store.connect(write=write):
                pass
            assert info.value.holder_pid == proc.pid
            assert f"process {proc.pid}" in str(info.value)
    finally:
        release(proc)
    assert Store(path).count() == 1
