"""Segment conditions on email behaviour over a real store's ``email_events``: the event, a
time window, a campaign name, a count; the derived properties as ordinary properties; and a
clear error in a store that has no email activity."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import polars as pl
import pytest

from cmtoolkit.errors import ConfigurationError
from cmtoolkit.profiles.segments import Segments
from cmtoolkit.profiles.store import Store
from cmtoolkit.workspace import Workspace

NOW = dt.datetime.now(dt.UTC).replace(tzinfo=None, microsecond=0)


def ago(days: float) -> dt.datetime:
    return NOW - dt.timedelta(days=days)


@pytest.fixture
def ws(tmp_path: Path) -> Workspace:
    ws = Workspace.create(tmp_path / "ws")
    ws.store.load(
        pl.DataFrame(
            {
                "profile_id": ["a", "b", "c", "d"],
                "cm_opens_90d": [["5"], ["1"], ["0"], []],
            }
        ),
        types={"cm_opens_90d": "number"},
    )
    events = [
        ("a", "c1", "Spring sale #1", "open", ago(2)),
        ("a", "c1", "Spring sale #1", "open", ago(1)),
        ("a", "c1", "Spring sale #1", "click", ago(1)),
        ("a", "c2", "Monthly newsletter", "open", ago(3)),
        ("b", "c2", "Monthly newsletter", "open", ago(45)),
        ("b", "c2", "Monthly newsletter", "click", ago(45)),
        ("c", "c3", "SPRING preview", "click", ago(200)),
        ("c", "c3", "SPRING preview", "bounce", ago(200)),
    ]
    with ws.store.connect(write=True) as con:
        con.executemany(
            "INSERT INTO email_events VALUES (?, ?, ?, ?, ?, '')",
            [list(e) for e in events],
        )
    return ws


def members(ws: Workspace, yaml_text: str, name: str = "s") -> list[str]:
    ws.segments_path.write_text(yaml_text)
    ws.segments.refresh(name)
    return sorted(ws.segments.members(name))


def test_opened_within_a_window(ws: Workspace) -> None:
    assert members(ws, "s: {event: open, within: 30d}") == ["a"]
    assert members(ws, "s: {event: open, within: 60d}") == ["a", "b"]
    assert members(ws, "s: {event: open, within: 2w}") == ["a"]


def test_clicked_a_campaign_by_name(ws: Workspace) -> None:
    assert members(ws, 's: {event: click, campaign_contains: "spring"}') == ["a", "c"]
    text = "s: {all: [{event: click, campaign_contains: spring}, {event: open, within: 30d}]}"
    assert members(ws, text) == ["a"]


def test_since_count_any_and_not(ws: Workspace) -> None:
    since = ago(60).date().isoformat()
    assert members(ws, f"s: {{event: open, since: {since}, at_least: 2}}") == ["a"]
    assert members(ws, "s: {event: any, at_least: 3}") == ["a"]
    assert members(ws, "s: {not: {event: open}}") == ["c", "d"]
    assert members(ws, "s: {event: bounce}") == ["c"]


def test_derived_properties_are_ordinary_properties(ws: Workspace) -> None:
    assert members(ws, "s: {property: cm_opens_90d, gte: 1}") == ["a", "b"]


@pytest.mark.parametrize(
    ("rule", "message"),
    [
        ("{event: forward}", "'event' must be one of"),
        ("{event: open, within: soon}", "'within' takes a duration"),
        ("{event: open, since: yesterday}", "'since' needs an ISO date"),
        ("{event: open, at_least: 0}", "'at_least' needs a whole number"),
        ("{event: open, campaign: x}", "unknown key"),
    ],
)
def test_bad_event_conditions_say_what_to_write(ws: Workspace, rule: str, message: str) -> None:
    ws.segments_path.write_text(f"s: {rule}")
    with pytest.raises(ConfigurationError, match=message):
        ws.segments.refresh("s")


def test_a_store_without_email_activity_says_so(tmp_path: Path) -> None:
    store = Store(tmp_path / "plain.duckdb")  # the profile store alone: no sync tables
    store.load(pl.DataFrame({"profile_id": ["a"]}))
    path = tmp_path / "segments.yaml"
    path.write_text("s: {event: open, within: 30d}\n")
    with pytest.raises(ConfigurationError, match=r"no email activity yet.*email_activity"):
        Segments(store, path).refresh("s")
