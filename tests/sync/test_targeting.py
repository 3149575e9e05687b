"""The targeting goal (DESIGN §6): segment membership as a MultiSelectMany field, over HTTP."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import polars as pl
import pytest

from cmtoolkit.connection.model import (
    CampaignMonitorSettings,
    Connection,
    ExportGoal,
    TargetingGoal,
)
from cmtoolkit.errors import BadRequest
from cmtoolkit.sync import preview, sync
from tests.sync.test_export import Env, profiles


def targeting(env: Env, *, match: str | None = None, **goal: Any) -> Connection:
    settings: dict[str, Any] = {
        "lists": (env.list_id,),
        "segments": ("vip", "news"),
        "field": "Targets",
    }
    settings.update(goal)
    export = (
        ExportGoal(lists=(env.list_id,), segment="news", match_property=match) if match else None
    )
    return Connection(
        name="targets",
        campaign_monitor=CampaignMonitorSettings("default", env.client_id),
        export=export,
        targeting=TargetingGoal(**settings),
    )


def run(env: Env, conn: Connection, **kw: Any) -> Any:
    return sync(env.ws.context(conn, env.cm), "targeting", **kw)


def subscribe(env: Env, *people: int) -> None:
    """Subscribe personN to the list (targeting only ever updates existing subscribers)."""
    env.cm.import_subscribers(
        env.list_id, [{"EmailAddress": f"person{i}@example.com", "Name": ""} for i in people]
    )


@pytest.fixture
def export_targets(emulator: Any, cm: Any, tmp_path: Path) -> Env:
    env = Env(emulator, cm, tmp_path, profiles(4))
    env.set_members("vip", ["p0000", "p0001"])
    env.set_members("news", ["p0000", "p0002"])  # p0003 is in neither
    subscribe(env, 0, 1, 2, 3)
    return env


def fields(env: Env, email: str) -> tuple[str, ...]:
    return env.subscriber(email).custom_fields.get("Targets", ())


def test_creates_field_and_writes_membership(export_targets: Env) -> None:
    env = export_targets
    out = preview(env.ws.context(targeting(env), env.cm), "targeting")
    assert out.counts["EXPORTED"] == 3
    assert "Targets" not in {f.field_name for f in env.cm.custom_fields(env.list_id)}
    result = run(env, targeting(env))
    assert result.counts["EXPORTED"] == 3
    field = next(f for f in env.cm.custom_fields(env.list_id) if f.field_name == "Targets")
    assert field.data_type == "MultiSelectMany" and set(field.options) == {"vip", "news"}
    assert set(fields(env, "person0@example.com")) == {"vip", "news"}
    assert fields(env, "person1@example.com") == ("vip",)
    assert fields(env, "person2@example.com") == ("news",)
    assert env.imports() == 2  # the fixture's subscribing import and the targeting one
    again = run(env, targeting(env))
    assert again.counts["UNCHANGED"] == 3 and env.imports() == 2


def test_a_deleted_field_or_option_is_written_again(export_targets: Env) -> None:
    """The targeting field or one of its options deleted in Campaign Monitor (their values go
    with them): the next run creates it again and writes again the members who hold it."""
    env = export_targets
    conn = targeting(env)
    assert run(env, conn).counts["EXPORTED"] == 3
    key = next(f.key for f in env.cm.custom_fields(env.list_id) if f.field_name == "Targets")
    env.cm.delete_custom_field(env.list_id, key)
    assert preview(env.ws.context(conn, env.cm), "targeting").counts["EXPORTED"] == 3
    assert run(env, conn).counts["EXPORTED"] == 3
    assert set(fields(env, "person0@example.com")) == {"vip", "news"}
    key = next(f.key for f in env.cm.custom_fields(env.list_id) if f.field_name == "Targets")
    env.cm.update_custom_field_options(env.list_id, key, ["vip"], keep_existing=False)
    assert fields(env, "person2@example.com") == ()
    again = run(env, conn)  # news again: its two members, not person1 (vip only)
    assert (again.counts["EXPORTED"], again.counts["UNCHANGED"]) == (2, 1)
    assert fields(env, "person2@example.com") == ("news",)
    assert set(fields(env, "person0@example.com")) == {"vip", "news"}


def test_never_subscribes_anyone(emulator: Any, cm: Any, tmp_path: Path) -> None:
    """A member who is not an active subscriber is NOT_SUBSCRIBED: not added, not resubscribed;
    the preview says so too, and nothing is sent for them on the next run."""
    env = Env(emulator, cm, tmp_path, profiles(4))
    env.set_members("vip", ["p0000", "p0001", "p0002"])
    env.set_members("news", [])
    subscribe(env, 0, 2)
    env.cm.unsubscribe(env.list_id, "person2@example.com")
    conn = targeting(env)
    before = preview(env.ws.context(conn, env.cm), "targeting")
    result = run(env, conn)
    assert before.counts == result.counts
    assert (result.counts["EXPORTED"], result.counts["NOT_SUBSCRIBED"]) == (1, 2)
    rows = env.run_rows(result.run_id)
    assert rows["p0001"][0] == "NOT_SUBSCRIBED" and rows["p0002"][0] == "NOT_SUBSCRIBED"
    with pytest.raises(BadRequest):
        env.subscriber("person1@example.com")  # never added
    assert env.subscriber("person2@example.com").state == "Unsubscribed"
    assert fields(env, "person0@example.com") == ("vip",)
    posts = env.imports()
    assert run(env, conn).counts["NOT_SUBSCRIBED"] == 2 and env.imports() == posts
    # person0 unsubscribes and leaves vip: the field is left as it is, nothing sent.
    env.cm.unsubscribe(env.list_id, "person0@example.com")
    env.set_members("vip", ["p0001", "p0002"])
    left = run(env, conn)
    assert left.counts["REMOVED"] == 1 and env.imports() == posts
    assert "no longer subscribed" in (env.run_rows(left.run_id)["p0000"][1] or "")


def test_adds_missing_options_and_clears_leavers(export_targets: Env) -> None:
    env = export_targets
    env.cm.create_custom_field(env.list_id, "Targets", "MultiSelectMany", ["vip", "legacy"])
    run(env, targeting(env))
    field = next(f for f in env.cm.custom_fields(env.list_id) if f.field_name == "Targets")
    assert set(field.options) == {"vip", "legacy", "news"}  # existing options kept
    env.set_members("vip", ["p0002"])  # p0000 leaves vip, p0001 every targeted segment
    env.set_members("news", ["p0000", "p0002", "p0003"])  # p0003 joins
    result = run(env, targeting(env))
    rows = env.run_rows(result.run_id)
    assert rows["p0001"] == ("REMOVED", "left every targeted segment; field Targets cleared")
    assert (result.counts["REMOVED"], result.counts["EXPORTED"]) == (1, 3)
    assert fields(env, "person1@example.com") == ()
    assert env.subscriber("person1@example.com").state == "Active"  # only the field is cleared
    assert fields(env, "person0@example.com") == ("news",)  # left vip: the option is gone
    assert set(fields(env, "person2@example.com")) == {"vip", "news"}
    assert fields(env, "person3@example.com") == ("news",)
    with env.ws.store.connect() as con:
        ids = {
            r[0]
            for r in con.execute(
                "SELECT profile_id FROM export_state WHERE goal = 'targeting'"
            ).fetchall()
        }
    assert ids == {"p0000", "p0002", "p0003"}


def test_email_comes_from_export_match_property(export_targets: Env) -> None:
    env = export_targets
    env.ws.store.set_values(
        pl.DataFrame({"profile_id": ["p0000"], "work_email": [["work0@example.com"]]})
    )
    env.cm.import_subscribers(env.list_id, [{"EmailAddress": "work0@example.com", "Name": ""}])
    result = run(env, targeting(env, match="work_email", segments=("vip",)))
    assert result.counts["EXPORTED"] == 1 and result.counts["INVALID"] == 1  # p0001 has none
    assert fields(env, "work0@example.com") == ("vip",)


def test_wrong_field_type_is_a_configuration_error(export_targets: Env) -> None:
    env = export_targets
    result = run(env, targeting(env, field="website"), raise_on_failure=False)
    assert result.state == "FAILED" and "not MultiSelectMany" in (result.error or "")


def test_a_leavers_address_now_held_by_a_member_keeps_the_members_value(
    export_targets: Env,
) -> None:
    """p0002 leaves every targeted segment while p0001 (sorted before it) takes its address:
    p0001's segments are written to person2 and p0002's clear is not sent at all (sent
    concurrently, it could have landed after the member's value and erased it)."""
    env = export_targets
    run(env, targeting(env))
    assert fields(env, "person2@example.com") == ("news",)
    env.set_members("news", ["p0000"])  # p0002 leaves
    env.ws.store.set_values(
        pl.DataFrame({"profile_id": ["p0001"], "email": [["Person2@example.com"]]})
    )
    posts = env.imports()
    result = run(env, targeting(env))
    rows = env.run_rows(result.run_id)
    assert rows["p0002"][0] == "REMOVED" and rows["p0001"][0] == "EXPORTED"
    assert "profile p0001" in (rows["p0002"][1] or "")
    assert fields(env, "person2@example.com") == ("vip",)
    assert env.imports() == posts + 1  # the member's row only
