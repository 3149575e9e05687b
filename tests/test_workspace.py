"""cmtoolkit.workspace: the folder, its layout, and what it composes (connections, contexts)."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import polars as pl
import pytest

from cmtoolkit.campaign_monitor import ApiKeyAuth, CampaignMonitor
from cmtoolkit.connection.file import connection_path, save_connection
from cmtoolkit.connection.model import CampaignMonitorSettings, Connection, Identifier, ImportGoal
from cmtoolkit.errors import ConfigurationError, ConnectionFileError
from cmtoolkit.secret import Secret
from cmtoolkit.sync import ConnectionRunner, GoalContext
from cmtoolkit.workspace import SEGMENTS_TEMPLATE, Workspace

LIST = "a58ee1d3039b8bec838e6d1482a8a965"
NEWS = Connection(
    name="Newsletter sync",
    campaign_monitor=CampaignMonitorSettings("default", "4a397ccaaa55eb4e6aa1221e1e2d7122"),
    import_=ImportGoal(lists=(LIST,), identifiers=(Identifier("EmailAddress", "email"),)),
)


@pytest.fixture
def client() -> Iterator[CampaignMonitor]:
    """A real client that is never called (building one sends nothing)."""
    with CampaignMonitor(ApiKeyAuth(Secret("k")), base_url="http://127.0.0.1:9/api/v3.3") as cm:
        yield cm


def test_naming_a_folder_creates_nothing(tmp_path: Path) -> None:
    ws = Workspace(tmp_path / "ws")
    assert ws.path == tmp_path / "ws" and ws.database_path == tmp_path / "ws" / "profiles.duckdb"
    assert ws.connection_names() == []
    assert not (tmp_path / "ws").exists()


def test_create_lays_out_the_folder_and_the_store(tmp_path: Path) -> None:
    ws = Workspace.create(tmp_path / "a" / "ws")
    assert ws.connections_dir.is_dir() and ws.reports_dir.is_dir()
    assert ws.segments_path.read_text(encoding="utf-8") == SEGMENTS_TEMPLATE
    assert ws.database_path.is_file() and ws.store.count() == 0
    assert ws.segments.names() == []


def test_create_completes_an_existing_workspace_and_keeps_its_contents(tmp_path: Path) -> None:
    ws = Workspace.create(tmp_path / "ws")
    ws.store.load(pl.DataFrame({"profile_id": ["p1"], "city": [["Oslo"]]}))
    ws.segments_path.write_text("oslo:\n  property: city\n  equals: Oslo\n", encoding="utf-8")
    ws.reports_dir.rmdir()

    again = Workspace.create(tmp_path / "ws")
    assert again.reports_dir.is_dir()  # completed
    assert again.store.count() == 1 and again.segments.names() == ["oslo"]  # kept
    again.ensure()  # and idempotent
    assert again.store.count() == 1


def test_open_returns_an_existing_workspace(tmp_path: Path) -> None:
    Workspace.create(tmp_path / "ws")
    ws = Workspace.open(tmp_path / "ws", lock_timeout=2.5)
    assert ws.path == tmp_path / "ws" and ws.store.count() == 0
    assert ws.store.lock_timeout == 2.5


@pytest.mark.parametrize("kind", ["missing", "a file"])
def test_open_of_a_folder_that_is_not_there_names_it(tmp_path: Path, kind: str) -> None:
    path = tmp_path / "nowhere"
    if kind == "a file":
        path.write_text("not a workspace", encoding="utf-8")
    with pytest.raises(ConfigurationError) as info:
        Workspace.open(path)
    message = str(info.value)
    assert f"workspace {path} " in message  # names it
    assert "Workspace.create()" in message  # says what to do
    assert not (tmp_path / "nowhere" / "profiles.duckdb").exists()


def test_a_path_with_a_tilde_is_the_home_folder(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HOME", str(tmp_path))
    ws = Workspace.create("~/ws")
    assert ws.path == tmp_path / "ws" and ws.database_path.is_file()


def test_connection_by_name_slug_or_file(tmp_path: Path, client: CampaignMonitor) -> None:
    ws = Workspace.create(tmp_path / "ws")
    path = save_connection(NEWS, connection_path(ws.path, NEWS.name))
    assert ws.connection_names() == ["Newsletter sync"]
    ids = set()
    for name in ("Newsletter sync", "newsletter-sync", str(path)):
        runner = ws.connection(name, client=client)
        assert isinstance(runner, ConnectionRunner)
        # First use writes the file's stable id (DESIGN §4); everything else is as saved.
        assert runner.model.id and replace(runner.model, id=None) == NEWS
        assert runner.name == "Newsletter sync"
        ids.add(runner.model.id)
        assert runner.client is client and runner.root == ws.path
        assert runner.store.path == ws.database_path
    assert len(ids) == 1 and f"id: {ids.pop()}" in path.read_text(encoding="utf-8")
    assert ws.connection(NEWS, client=client).model is NEWS  # a model already loaded
    assert ws.connection("newsletter-sync", client=client).history() == []


def test_an_unknown_connection_lists_the_known_ones(tmp_path: Path) -> None:
    ws = Workspace.create(tmp_path / "ws")
    save_connection(NEWS, connection_path(ws.path, NEWS.name))
    with pytest.raises(ConnectionFileError, match=r"no connection 'nope'.*newsletter-sync"):
        ws.connection("nope")


def test_context_is_what_a_goal_runs_on(tmp_path: Path, client: CampaignMonitor) -> None:
    ws = Workspace.create(tmp_path / "ws", lock_timeout=3)
    seen: list[tuple[str, int, int | None]] = []

    def progress(stage: str, done: int, total: int | None) -> None:
        seen.append((stage, done, total))

    ctx = ws.context(NEWS, client, full=True, progress=progress)
    assert isinstance(ctx, GoalContext)
    assert (ctx.connection, ctx.client, ctx.root, ctx.full) == (NEWS, client, ws.path, True)
    assert ctx.store.path == ws.database_path and ctx.store.lock_timeout == 3
    assert ctx.segments.path == ws.segments_path
    ctx.report("read", 1, 2)
    assert seen == [("read", 1, 2)]
    plain = ws.context(NEWS, client)
    assert not plain.full and plain.progress is None
    plain.report("read", 1, None)  # no progress callback: nothing to call
    assert seen == [("read", 1, 2)]


def test_sample_values_are_first_values_of_profiles_that_have_one(tmp_path: Path) -> None:
    # Status samples the export's matching property through the workspace (the notebooks' path)
    # as through a ConnectionRunner: both reach the store's one sampler.
    ws = Workspace.create(tmp_path / "ws")
    assert ws.sample_values("email", 5) == []
    ws.store.load(
        pl.DataFrame(
            {
                "profile_id": [f"p{i}" for i in range(40)],
                "email": [f"u{i}@example.com" if i % 2 else None for i in range(40)],
            }
        )
    )
    sample = ws.sample_values("email", 5)
    assert len(sample) == 5 and all(
        v.startswith("u") and v.endswith("@example.com") for v in sample
    )
    assert sample == ws.sample_values("email", 5)  # repeatable
    assert len(ws.sample_values("email", 100)) == 20
