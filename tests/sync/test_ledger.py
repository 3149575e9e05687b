"""cmtoolkit.sync.ledger: the runs table of a real workspace store, read back as Run records."""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path

import pytest

from cmtoolkit.sync import Run, RunState, ledger, utc_now
from cmtoolkit.workspace import Workspace


@pytest.fixture
def ws(tmp_path: Path) -> Workspace:
    return Workspace.create(tmp_path / "ws")


class Ledger:
    """Each call in its own transaction, as the runner makes them."""

    def __init__(self, ws: Workspace) -> None:
        self.ws = ws

    def start(self, connection: str, goal: str = "import", *, full: bool = False) -> str:
        with self.ws.store.transaction() as con:
            return ledger.start_run(con, connection, goal, full=full)

    def set_state(self, run_id: str, state: RunState) -> None:
        with self.ws.store.transaction() as con:
            ledger.set_state(con, run_id, state)

    def finish(self, run_id: str, counts: dict[str, int]) -> None:
        with self.ws.store.transaction() as con:
            ledger.finish_run(con, run_id, counts)

    def fail(self, run_id: str, error: str) -> None:
        with self.ws.store.transaction() as con:
            ledger.fail_run(con, run_id, error)

    def get(self, run_id: str) -> Run | None:
        with self.ws.store.connect() as con:
            return ledger.get_run(con, run_id)

    def history(self, connection: str | None = None, limit: int = 100) -> list[Run]:
        with self.ws.store.connect() as con:
            return ledger.history(con, connection, limit)


@pytest.fixture
def book(ws: Workspace) -> Ledger:
    return Ledger(ws)


def test_a_run_round_trips_as_one_run_record(book: Ledger) -> None:
    before = utc_now()
    run_id = book.start("news", "export", full=True)
    started = book.get(run_id)
    assert started is not None
    assert (started.run_id, started.connection, started.goal, started.full) == (
        run_id,
        "news",
        "export",
        True,
    )
    assert type(started.state) is RunState and started.state is RunState.STARTING
    assert not started.state.ended and started.ended_at is None and started.duration_s is None
    assert started.counts == {} and started.error is None and not started.dry_run
    assert isinstance(started.started_at, datetime)
    assert before <= started.started_at <= utc_now()

    book.set_state(run_id, RunState.RUNNING)
    running = book.get(run_id)
    assert running is not None and running.state is RunState.RUNNING

    book.finish(run_id, {"SENT": 3, "UNCHANGED": 0})
    finished = book.get(run_id)
    assert finished is not None and finished.state is RunState.FINISHED and finished.ok
    assert finished.counts == {"SENT": 3, "UNCHANGED": 0}
    assert finished.ended_at is not None and finished.duration_s is not None
    assert finished.duration_s >= 0
    assert finished.to_dict()["state"] == "FINISHED"


def test_a_failed_run_keeps_its_error(book: Ledger) -> None:
    run_id = book.start("news")
    book.fail(run_id, "Campaign Monitor refused the credential (code 122)")
    failed = book.get(run_id)
    assert failed is not None and failed.state is RunState.FAILED and not failed.ok
    assert failed.error == "Campaign Monitor refused the credential (code 122)"
    assert failed.ended_at is not None


def test_an_unknown_run_is_none(book: Ledger) -> None:
    assert book.get("20260101T000000Z-00000000") is None


def test_start_run_fails_the_unfinished_runs_of_its_own_connection_only(book: Ledger) -> None:
    done = book.start("news")
    book.finish(done, {"CREATED": 1})
    broken = book.start("news")
    book.fail(broken, "its own error")
    running = book.start("news")
    book.set_state(running, RunState.RUNNING)
    elsewhere = book.start("other")
    still = book.get(running)
    assert still is not None and still.state is RunState.RUNNING  # other connections leave it

    new = book.start("news")

    by_id = {run.run_id: run for run in book.history()}
    assert by_id[running].state is RunState.FAILED and by_id[running].ended_at is not None
    assert by_id[running].error == "interrupted: the process running it ended before it finished"
    assert by_id[done].state is RunState.FINISHED and by_id[done].error is None
    assert by_id[broken].state is RunState.FAILED and by_id[broken].error == "its own error"
    assert by_id[elsewhere].state is RunState.STARTING
    assert by_id[new].state is RunState.STARTING
    assert len(by_id) == 5  # every run kept, each with its own id


def test_history_is_newest_first_per_connection_and_limited(book: Ledger) -> None:
    news = [book.start("news") for _ in range(4)]
    other = book.start("other")
    for run_id in news[:-1]:
        book.finish(run_id, {})
    assert [r.run_id for r in book.history("news")] == news[::-1]
    assert [r.run_id for r in book.history("news", limit=2)] == news[:1:-1]
    assert [r.run_id for r in book.history()] == [other, *news[::-1]]
    assert [r.run_id for r in book.history(limit=1)] == [other]
    assert book.history("nobody") == []
    assert all(isinstance(r, Run) and type(r.state) is RunState for r in book.history())


@pytest.fixture
def new_york() -> Iterator[None]:
    """The process's local time zone set to UTC-5 (DuckDB's now() follows it)."""
    before = os.environ.get("TZ")
    os.environ["TZ"] = "America/New_York"
    time.tzset()
    yield
    if before is None:
        del os.environ["TZ"]
    else:
        os.environ["TZ"] = before
    time.tzset()


def test_run_times_are_utc_whatever_the_local_time_zone(book: Ledger, new_york: None) -> None:
    before = utc_now()
    run_id = book.start("news")
    book.finish(run_id, {})
    run = book.get(run_id)
    assert run is not None and run.ended_at is not None
    assert before <= run.started_at <= run.ended_at <= utc_now()
