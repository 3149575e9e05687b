"""cmtoolkit.sync.runner: the goal registry, a run's record in the ledger, failures, the run lock.

Real runs: the emulator over HTTP and a real DuckDB workspace; nothing of ours is replaced.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from cmtoolkit.connection.model import (
    CampaignMonitorSettings,
    Connection,
    ExportGoal,
    Identifier,
    ImportGoal,
    TargetingGoal,
)
from cmtoolkit.emulator import Emulator
from cmtoolkit.errors import ConfigurationError, NotFound, RunInProgress
from cmtoolkit.sync import GOALS, GoalName, Run, RunState, configured_goals, resolve_goals, sync
from cmtoolkit.sync.locking import RunLock
from cmtoolkit.workspace import Workspace

MISSING_LIST = "0" * 32


def connection(
    emulator: Emulator, *, lists: tuple[str, ...] | None = None, **goals: Any
) -> Connection:
    lists = lists or (emulator.list_ids[0],)
    if not goals:
        goals = {
            "import_": ImportGoal(
                lists=lists, identifiers=(Identifier("EmailAddress", "email"),), allow_create=True
            )
        }
    return Connection(
        name="news",
        campaign_monitor=CampaignMonitorSettings("default", emulator.client_id),
        **goals,
    )


LIST = "a58ee1d3039b8bec838e6d1482a8a965"
IMPORT = ImportGoal(lists=(LIST,), identifiers=(Identifier("EmailAddress", "email"),))
EXPORT = ExportGoal(lists=(LIST,), segment="vip", match_property="email")
TARGETING = TargetingGoal(lists=(LIST,), segments=("vip",))


def model(**goals: Any) -> Connection:
    return Connection(name="news", **goals)


@pytest.fixture
def ws(tmp_path: Path) -> Workspace:
    return Workspace.create(tmp_path / "ws")


# --- the registry -------------------------------------------------------------------------------


def test_the_registry_holds_every_goal_under_its_own_name_in_run_order() -> None:
    assert list(GOALS) == [GoalName.IMPORT, GoalName.EXPORT, GoalName.TARGETING]
    assert all(goal.name == name for name, goal in GOALS.items())


def test_all_resolves_to_the_configured_goals_in_run_order() -> None:
    everything = model(targeting=TARGETING, export=EXPORT, import_=IMPORT)
    assert resolve_goals(everything, "all") == ["import", "export", "targeting"]
    assert configured_goals(everything) == ["import", "export", "targeting"]
    assert resolve_goals(model(targeting=TARGETING, export=EXPORT), "all") == [
        "export",
        "targeting",
    ]
    assert resolve_goals(everything, "export") == [GoalName.EXPORT]


def test_all_without_any_goal_says_what_to_add() -> None:
    with pytest.raises(ConfigurationError, match="'news' has no goal; add import, export or"):
        resolve_goals(model(), "all")


def test_an_unknown_goal_lists_the_known_ones() -> None:
    with pytest.raises(
        ConfigurationError,
        match="unknown goal 'imprt'; use one of import, export, targeting or all",
    ):
        resolve_goals(model(import_=IMPORT), "imprt")


def test_a_goal_the_connection_lacks_names_the_section_to_add() -> None:
    with pytest.raises(ConfigurationError, match="'news' has no export goal; add an 'export:'"):
        resolve_goals(model(import_=IMPORT), "export")


# --- a run and its record -----------------------------------------------------------------------


def test_a_run_is_recorded_as_it_is_returned(ws: Workspace, emulator: Emulator, cm: Any) -> None:
    conn = connection(emulator)
    result = sync(ws.context(conn, cm), "import")
    assert isinstance(result, Run) and result.state is RunState.FINISHED and result.ok
    assert result.counts["CREATED"] > 0 and result.run_id
    (entry,) = ws.connection(conn, client=cm).history()
    assert entry.run_id == result.run_id
    assert entry.state is RunState.FINISHED and entry.counts == result.counts
    assert entry.error is None and entry.ended_at is not None


def test_a_failing_goal_is_recorded_failed_with_its_error_and_raised(
    ws: Workspace, emulator: Emulator, cm: Any
) -> None:
    conn = connection(emulator, lists=(MISSING_LIST,))
    with pytest.raises(NotFound, match="Invalid ListID") as info:
        sync(ws.context(conn, cm), "import")
    (entry,) = ws.connection(conn, client=cm).history()
    assert entry.state is RunState.FAILED and not entry.ok
    assert entry.error == str(info.value)
    assert entry.ended_at is not None and entry.counts == {}
    assert ws.store.count() == 0


def test_a_failing_goal_can_be_returned_as_failed_instead(
    ws: Workspace, emulator: Emulator, cm: Any
) -> None:
    conn = connection(emulator, lists=(MISSING_LIST,))
    result = sync(ws.context(conn, cm), "import", raise_on_failure=False)
    assert result.state is RunState.FAILED and result.error and "Invalid ListID" in result.error
    (entry,) = ws.connection(conn, client=cm).history()
    assert (entry.run_id, entry.state, entry.error) == (result.run_id, result.state, result.error)


def test_after_a_failure_the_next_run_proceeds(ws: Workspace, emulator: Emulator, cm: Any) -> None:
    """A failed run releases the run lock and leaves nothing that stops the next one."""
    sync(
        ws.context(connection(emulator, lists=(MISSING_LIST,)), cm),
        "import",
        raise_on_failure=False,
    )
    result = sync(ws.context(connection(emulator), cm), "import")
    assert result.state is RunState.FINISHED
    states = [r.state for r in ws.connection(connection(emulator), client=cm).history()]
    assert states == [RunState.FINISHED, RunState.FAILED]  # newest first


def test_a_runner_answers_one_run_for_one_goal_and_a_list_for_all(
    ws: Workspace, emulator: Emulator, cm: Any
) -> None:
    runner = ws.connection(connection(emulator), client=cm)
    one = runner.sync("import")
    assert isinstance(one, Run) and one.goal == "import"
    every = runner.sync("all")
    assert isinstance(every, list) and [r.goal for r in every] == ["import"]
    assert every[0].counts["UNCHANGED"] == one.counts["CREATED"]


def test_a_preview_leaves_no_record(ws: Workspace, emulator: Emulator, cm: Any) -> None:
    runner = ws.connection(connection(emulator), client=cm)
    dry = runner.preview("import")
    assert isinstance(dry, Run) and dry.state is RunState.PREVIEW and dry.run_id is None
    assert runner.history() == [] and ws.store.count() == 0


# --- one run of a connection at a time ----------------------------------------------------------


def test_the_run_lock_refuses_a_second_run_and_leaves_the_ledger_alone(
    ws: Workspace, emulator: Emulator, cm: Any
) -> None:
    conn = connection(emulator)
    first = sync(ws.context(conn, cm), "import")
    with RunLock(ws.path, conn.name):  # a run of this connection in progress
        with pytest.raises(RunInProgress, match="'news' is already running"):
            sync(ws.context(conn, cm), "import")
        with pytest.raises(RunInProgress):
            sync(ws.context(conn, cm), "import", raise_on_failure=False)
    (entry,) = ws.connection(conn, client=cm).history()
    assert entry.run_id == first.run_id and entry.state is RunState.FINISHED
    other = Connection(name="other", import_=conn.import_, campaign_monitor=conn.campaign_monitor)
    with RunLock(ws.path, conn.name):  # the lock is per connection
        assert sync(ws.context(other, cm), "import").state is RunState.FINISHED
