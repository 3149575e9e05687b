"""Email behaviour (DESIGN §6a) end to end: the emulator's campaigns over HTTP into a real DuckDB
workspace through the import goal: matching, consent, cursors, re-runs, preview, rollback."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import polars as pl
import pytest
import requests

from cmtoolkit import people
from cmtoolkit.connection.activity import EmailActivity
from cmtoolkit.connection.model import (
    CampaignMonitorSettings,
    Connection,
    Identifier,
    ImportGoal,
)
from cmtoolkit.connection.parsing import parse_connection
from cmtoolkit.emulator import Emulator
from cmtoolkit.errors import ConfigurationError, ConnectionFileError
from cmtoolkit.sync import preview, sync
from cmtoolkit.workspace import Workspace

SEED = 3
PROPS = (
    ("last_open", "cm_last_open"),
    ("opens_90d", "cm_opens_90d"),
    ("clicked_campaigns", "cm_clicked_campaigns"),
)


@pytest.fixture
def emu(emulator_factory: Callable[..., Emulator]) -> Emulator:
    return emulator_factory(seed_size=400, seed=SEED)


@pytest.fixture
def cm(emu: Emulator, cm_factory: Callable[..., Any]) -> Any:
    return cm_factory(emu)


@pytest.fixture
def ws(tmp_path: Path) -> Workspace:
    return workspace(tmp_path / "ws")


def workspace(path: Path) -> Workspace:
    """Profiles for persons 0..299 of the seed (the account has 0..399); one address written
    with capitals, a space and a zero-width space; profile c0 consented."""
    frame = people.people(SEED, 0, 300)
    emails = frame.get_column("email").to_list()
    emails[0] = " " + emails[0].upper() + "\u200b"
    ws = Workspace.create(path)
    ws.store.load(
        pl.DataFrame(
            {
                "profile_id": [f"c{i}" if i % 2 == 0 else f"p{i}" for i in range(300)],
                "email": [[e] for e in emails],
                "consented_objectives": [["news"] if i % 2 == 0 else [] for i in range(300)],
            }
        ),
        types={"email": "email"},
    )
    return ws


def connection(emu: Emulator, objectives: tuple[str, ...] = (), **activity: Any) -> Connection:
    settings = EmailActivity(
        since=activity.get("since", "2025-01-01"),
        events=activity.get("events", ("open", "click", "bounce", "unsubscribe")),
        properties=activity.get("properties", PROPS),
    )
    return Connection(
        name="news",
        campaign_monitor=CampaignMonitorSettings("default", emu.client_id),
        objectives=objectives,
        import_=ImportGoal(
            lists=(emu.list_ids[0],),
            states=("Active",),
            identifiers=(Identifier("EmailAddress", "email"),),
            allow_create=False,
            email_activity=settings,
        ),
    )


def events(ws: Workspace) -> pl.DataFrame:
    with ws.store.connect() as con:
        return con.sql("SELECT * FROM email_events ORDER BY ALL").pl()


def truth(emu: Emulator, email: str, kind: str) -> list[tuple[str, str]]:
    """(campaign name, date) of ``email``'s events of ``kind`` as the API lists them."""
    s = requests.Session()
    s.auth = (emu.api_key, "x")
    out = []
    for c in emu.account.clients[0].campaigns:
        body = s.get(f"{emu.base_url}/campaigns/{c.campaign_id}/{kind}.json").json()
        out += [(c.name, e["Date"]) for e in body["Results"] if e["EmailAddress"] == email]
    return sorted(out)


def test_first_run_matches_events_and_derives_properties(
    emu: Emulator, ws: Workspace, cm: Any
) -> None:
    run = sync(ws.context(connection(emu), cm), "import")
    stats = run.details["email_activity"]
    assert isinstance(stats, dict)
    assert stats["campaigns"] == 20
    assert stats["read"] == stats["matched"] + stats["unmatched"] + stats["ambiguous"]
    assert stats["unmatched"] > 0 and stats["matched"] > 0  # persons 300..399 have no profile
    stored = events(ws)
    assert stats["new"] == stored.height == stats["matched"]
    assert set(stored.get_column("event")) == {"open", "click", "bounce", "unsubscribe"}
    # The profile whose address was stored " UPPER\u200b" gets exactly its events.
    email = people.people(SEED, 0, 1).get_column("email")[0]
    mine = stored.filter(pl.col("profile_id") == "c0")
    opens = truth(emu, email, "opens")
    assert opens, "person 0 should have opened something"
    got = mine.filter(pl.col("event") == "open").select(
        "campaign", pl.col("at").dt.strftime("%Y-%m-%d %H:%M:%S")
    )
    assert sorted(got.rows()) == opens
    profile = ws.store.get("c0")
    assert profile is not None
    assert profile["cm_last_open"] == [max(d for _, d in opens).replace(" ", "T")]
    assert profile["cm_opens_90d"] == ["0"]  # the seeded campaigns went out in 2025
    clicked = sorted({name for name, _ in truth(emu, email, "clicks")})
    assert (profile.get("cm_clicked_campaigns") or []) == clicked
    assert ws.store.properties()["cm_last_open"] == "datetime"


def test_rerun_adds_only_new_events(emu: Emulator, ws: Workspace, cm: Any) -> None:
    conn = connection(emu)
    sync(ws.context(conn, cm), "import")
    before = events(ws)
    again = sync(ws.context(conn, cm), "import").details["email_activity"]
    assert isinstance(again, dict)
    assert again["new"] == 0 and again["read"] < before.height / 10  # only the lag overlap
    assert events(ws).equals(before)
    sent = requests.post(f"{emu.origin}/_emulator/campaigns", json={"name": "Spring flash"})
    assert sent.status_code == 200
    third = sync(ws.context(conn, cm), "import").details["email_activity"]
    assert isinstance(third, dict) and third["new"] > 0
    added = events(ws).join(before, on=list(before.columns), how="anti")
    assert added.height == third["new"]
    assert set(added.get_column("campaign")) == {"Spring flash"}
    openers = added.filter(pl.col("event") == "open").get_column("profile_id").unique()
    for pid in openers.to_list()[:5]:
        got = ws.store.get(pid)
        assert got is not None and int(got["cm_opens_90d"][0]) >= 1


def test_events_staged_in_many_small_chunks_are_the_same_events(
    emu: Emulator, ws: Workspace, cm: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Addresses and details are numbered a chunk of events at a time: across chunks each event
    keeps its own address and detail, and the counts, events and cursors are those of one
    chunk."""
    conn = connection(emu)
    whole = sync(ws.context(conn, cm), "import").details["email_activity"]
    monkeypatch.setattr("cmtoolkit.sync.activity.read.BATCH_ROWS", 7)
    monkeypatch.setattr("cmtoolkit.sync.activity.read.COMPACT_ROWS", 40)
    chunked_ws = workspace(tmp_path / "chunked")
    chunked = sync(chunked_ws.context(conn, cm), "import").details["email_activity"]
    assert chunked == whole
    assert events(chunked_ws).equals(events(ws))
    cursors = (
        "SELECT * EXCLUDE (read_at) FROM email_activity_state WHERE campaign_id <> '' ORDER BY ALL"
    )
    with ws.store.connect() as a, chunked_ws.store.connect() as b:
        assert a.execute(cursors).fetchall() == b.execute(cursors).fetchall()


def test_later_activity_on_an_old_campaign_is_read_past_its_cursor(
    emu: Emulator, ws: Workspace, cm: Any
) -> None:
    conn = connection(emu)
    sync(ws.context(conn, cm), "import")
    newest = max(emu.account.clients[0].campaigns, key=lambda c: c.sent_at)
    wave = requests.post(
        f"{emu.origin}/_emulator/activity", json={"campaign_id": newest.campaign_id}
    )
    assert wave.status_code == 200
    stats = sync(ws.context(conn, cm), "import").details["email_activity"]
    assert isinstance(stats, dict) and stats["new"] > 0
    stored = events(ws)
    assert stored.height == stored.unique().height


def test_an_address_two_profiles_hold_is_ambiguous(emu: Emulator, ws: Workspace, cm: Any) -> None:
    email = people.people(SEED, 0, 2).get_column("email")[1]
    with ws.store.connect(write=True) as con:
        con.execute(
            "INSERT INTO profiles (profile_id, email, created_at, updated_at)"
            " VALUES ('twin', [upper($e)], now(), now())",
            {"e": email},
        )
    stats = sync(ws.context(connection(emu), cm), "import").details["email_activity"]
    assert isinstance(stats, dict)
    theirs = sum(
        len(truth(emu, email, kind)) for kind in ("opens", "clicks", "bounces", "unsubscribes")
    )
    assert theirs > 0 and stats["ambiguous"] == theirs
    assert stats["read"] == stats["matched"] + stats["unmatched"] + stats["ambiguous"]
    owners = set(events(ws).get_column("profile_id"))
    assert "twin" not in owners and "p1" not in owners and "c2" in owners


def test_consent_objectives_apply(emu: Emulator, ws: Workspace, cm: Any) -> None:
    stats = sync(ws.context(connection(emu, ("news",)), cm), "import").details["email_activity"]
    assert isinstance(stats, dict) and stats["consent_mismatch"] > 0
    owners = set(events(ws).get_column("profile_id"))
    assert owners and all(pid.startswith("c") for pid in owners)


def test_preview_shows_what_would_be_added_and_writes_nothing(
    emu: Emulator, ws: Workspace, cm: Any
) -> None:
    conn = connection(emu)
    shown = preview(ws.context(conn, cm), "import").details
    stats = shown["email_activity"]
    assert isinstance(stats, dict) and stats["new"] > 0
    by_campaign = shown["email_activity_new"]
    assert isinstance(by_campaign, dict) and sum(by_campaign.values()) == stats["new"]
    assert events(ws).height == 0
    assert "cm_last_open" not in ws.store.properties()
    done = sync(ws.context(conn, cm), "import").details["email_activity"]
    assert isinstance(done, dict) and done["new"] == stats["new"]


def test_a_failure_inside_the_transaction_leaves_no_events_and_no_cursor(
    emu: Emulator, ws: Workspace, cm: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    conn = connection(emu)

    def boom(*args: object) -> list[object]:
        raise RuntimeError("killed while deriving")

    with monkeypatch.context() as m:
        m.setattr("cmtoolkit.sync.activity.derive_statements", boom)
        with pytest.raises(RuntimeError, match="killed"):
            sync(ws.context(conn, cm), "import")
    assert events(ws).height == 0
    with ws.store.connect() as con:
        assert con.execute("SELECT count(*) FROM email_activity_state").fetchone() == (0,)
    stats = sync(ws.context(conn, cm), "import").details["email_activity"]
    assert isinstance(stats, dict) and stats["new"] == events(ws).height > 0
    stored = events(ws)
    assert stored.height == stored.unique().height  # no event twice
    with ws.store.connect() as con:  # the cursors moved with the events
        cursors = con.execute("SELECT count(*) FROM email_activity_state").fetchone()
    assert cursors is not None and cursors[0] > 0


def test_activity_needs_an_email_identifier(emu: Emulator, ws: Workspace, cm: Any) -> None:
    conn = connection(emu)
    assert conn.import_ is not None
    bad = Connection(
        name="news",
        campaign_monitor=conn.campaign_monitor,
        import_=ImportGoal(
            lists=conn.import_.lists,
            identifiers=(Identifier("Name", "email"),),
            email_activity=EmailActivity(),
        ),
    )
    with pytest.raises(ConfigurationError, match="EmailAddress"):
        preview(ws.context(bad, cm), "import")


def test_the_connection_file_section_parses_and_round_trips() -> None:
    text = """
name: n
campaign_monitor: {credential: default, client_id: 4a397ccaaa55eb4e6aa1221e1e2d7122}
import:
  lists: [a58ee1d3039b8bec838e6d1482a8a965]
  identifiers: [{field: EmailAddress, property: email}]
  email_activity:
    since: 90d
    events: [open, click]
    properties: {last_open: cm_last_open, opens_90d: cm_opens_90d}
"""
    conn = parse_connection(text)
    assert conn.import_ is not None
    got = conn.import_.email_activity
    assert got == EmailActivity("90d", ("open", "click"), PROPS[:2])
    assert parse_connection(conn.to_dict()).import_ == conn.import_
    with pytest.raises(ConnectionFileError, match=r"import\.email_activity\.since"):
        parse_connection(text.replace("since: 90d", "since: soon"))
    with pytest.raises(ConnectionFileError, match=r"email_activity\.events\[1\]"):
        parse_connection(text.replace("[open, click]", "[open, forward]"))
    with pytest.raises(ConnectionFileError, match="last_opened"):
        parse_connection(text.replace("last_open:", "last_opened:"))


def test_status_asks_for_an_email_identifier(emu: Emulator, ws: Workspace, cm: Any) -> None:
    from cmtoolkit.connection.status import connection_status

    conn = connection(emu)
    assert conn.import_ is not None
    bad = Connection(
        name="news",
        campaign_monitor=conn.campaign_monitor,
        import_=ImportGoal(
            lists=conn.import_.lists,
            identifiers=(Identifier("Name", "email"),),
            email_activity=EmailActivity(),
        ),
    )
    keys = {p.key for p in connection_status(bad).errors}
    assert "import.email_activity" in keys
    assert "import.email_activity" not in {p.key for p in connection_status(conn).errors}
