"""The import goal (DESIGN §5) end to end: the emulator over HTTP, a real DuckDB workspace."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import polars as pl
import pytest

from cmtoolkit.connection.model import (
    CampaignMonitorSettings,
    Connection,
    Identifier,
    ImportGoal,
    ImportMapping,
)
from cmtoolkit.errors import TokenRevoked
from cmtoolkit.sync import preview, sync
from cmtoolkit.workspace import Workspace

FIELDS = [
    ("interests", "MultiSelectMany", ["golf", "tennis", "chess"]),
    ("loyalty points", "Number", []),
    ("city", "Text", []),
    ("customer id", "Text", []),
    ("note", "Text", []),
]


class Account:
    """A Campaign Monitor account built through the client: two lists with custom fields."""

    def __init__(self, emulator: Any, cm: Any) -> None:
        emulator.reseed(seed_size=0)
        self.emulator = emulator
        self.cm = cm
        self.client_id = emulator.client_id
        self.l1 = cm.create_list(self.client_id, "Newsletter")
        self.l2 = cm.create_list(self.client_id, "Customers")
        for list_id in (self.l1, self.l2):
            for name, kind, options in FIELDS:
                cm.create_custom_field(list_id, name, kind, options)

    def add(self, list_id: str, email: str, name: str = "", **fields: Any) -> None:
        custom = []
        for key, value in fields.items():
            for v in value if isinstance(value, list) else [value]:
                custom.append({"Key": key.replace("_", " "), "Value": str(v)})
        row = {"EmailAddress": email, "Name": name, "CustomFields": custom}
        self.cm.import_subscribers(list_id, [row], resubscribe=True)


def connection(account: Account, **goal: Any) -> Connection:
    mappings = goal.pop(
        "mappings",
        (
            ImportMapping("Name", "full_name", "set_if_empty"),
            ImportMapping("interests", "interests", "add"),
            ImportMapping("loyalty points", "points", "sum"),
            ImportMapping("city", "city", "set"),
        ),
    )
    objectives = goal.pop("objectives", ())
    defaults: dict[str, Any] = {
        "lists": (account.l1, account.l2),
        "identifiers": (Identifier("EmailAddress", "email"),),
        "allow_create": True,
        "mappings": tuple(mappings),
    }
    defaults.update(goal)
    return Connection(
        name="news",
        campaign_monitor=CampaignMonitorSettings("default", account.client_id),
        objectives=tuple(objectives),
        import_=ImportGoal(**defaults),
    )


@pytest.fixture
def account(emulator: Any, cm: Any) -> Account:
    return Account(emulator, cm)


@pytest.fixture
def ws(tmp_path: Path) -> Workspace:
    ws = Workspace.create(tmp_path / "ws")
    ws.store.load(
        pl.DataFrame(
            {
                "profile_id": ["p1", "p2", "p3", "p4", "p5"],
                "email": [
                    ["Ann@Example.COM "],
                    ["bob@example.com"],
                    ["dup@example.com"],
                    ["dup@example.com"],
                    ["eve@example.com"],
                ],
                "full_name": [[], ["Bob Original"], [], [], []],
                "points": [["10"], [], [], [], ["1"]],
                "interests": [["golf"], [], [], [], []],
                "city": [["Oslo"], ["Rome"], [], [], []],
                "consented_objectives": [["email_marketing"], [], [], [], ["email_marketing"]],
                "refused_objectives": [[], [], [], [], ["email_marketing"]],
            }
        ),
        types={"points": "number", "email": "email"},
    )
    return ws


def run(ws: Workspace, conn: Connection, cm: Any, *, full: bool = False) -> Any:
    return sync(ws.context(conn, cm, full=full), "import")


def dry_run(ws: Workspace, conn: Connection, cm: Any) -> Any:
    return preview(ws.context(conn, cm), "import")


def profile(ws: Workspace, pid: str) -> dict[str, list[str]]:
    got = ws.store.get(pid)
    assert got is not None, f"profile {pid} missing"
    return got


def rows(ws: Workspace, run_id: str) -> dict[str, tuple[str, str | None]]:
    with ws.store.connect() as con:
        found = con.execute(
            "SELECT email, outcome, reason FROM run_rows WHERE run_id = ? ORDER BY seq", [run_id]
        ).fetchall()
    return {email.strip().lower(): (outcome, reason) for email, outcome, reason in found}


def snapshot(ws: Workspace) -> list[tuple]:
    """Every profile's properties, without timestamps (which a re-run legitimately moves)."""
    with ws.store.connect() as con:
        return con.execute(
            "SELECT * EXCLUDE (created_at, updated_at) FROM profiles ORDER BY profile_id"
        ).fetchall()


# --- merge rules ----------------------------------------------------------------------------------


def test_merge_rules_across_two_lists_apply_in_list_order(account, ws, cm):
    account.add(
        account.l1,
        "ann@example.com",
        "Ann From L1",
        interests=["tennis", "golf"],
        loyalty_points=5,
        city="Paris",
    )
    account.add(
        account.l2,
        "ANN@example.com",
        "Ann From L2",
        interests=["chess"],
        loyalty_points="2.5",
        city="Lima",
    )
    account.add(account.l1, "bob@example.com", "Robert", city="   ")  # blank never clears
    result = run(ws, connection(account, save_list_names_to="cm_lists"), cm)

    assert result.state == "FINISHED"
    ann = profile(ws, "p1")
    assert ann["full_name"] == ["Ann From L1"]  # set_if_empty: first list, property was empty
    assert ann["interests"] == ["golf", "tennis", "chess"]  # add: existing, then new in order
    assert ann["points"] == ["17.5"]  # sum: 10 + 5 + 2.5
    assert ann["city"] == ["Lima"]  # set: the last list wins
    assert ann["cm_lists"] == ["Newsletter", "Customers"]
    bob = profile(ws, "p2")
    assert bob["full_name"] == ["Bob Original"]  # set_if_empty keeps a value
    assert bob["city"] == ["Rome"]  # no incoming value never clears
    assert result.counts["MODIFIED"] == 3


def test_multi_select_values_arrive_as_several_values(account, ws, cm):
    account.add(account.l1, "bob@example.com", interests=["chess", "golf"])
    conn = connection(
        account, lists=(account.l1,), mappings=(ImportMapping("interests", "interests", "set"),)
    )
    run(ws, conn, cm)
    assert profile(ws, "p2")["interests"] == ["golf", "chess"]  # emulator orders by options


def test_sum_with_a_non_number_leaves_the_property_and_says_why(account, ws, cm):
    account.add(account.l1, "ann@example.com", note="lots")
    conn = connection(
        account, lists=(account.l1,), mappings=(ImportMapping("note", "points", "sum"),)
    )
    result = run(ws, conn, cm)
    assert profile(ws, "p1")["points"] == ["10"]
    outcome, reason = rows(ws, result.run_id)["ann@example.com"]
    assert outcome == "UNCHANGED" and "sum into points skipped" in reason


def test_a_value_that_does_not_fit_its_property_skips_that_mapping_only(account, ws, cm):
    ws.store.define_property("birthday", "date")
    account.add(account.l1, "ann@example.com", note="not a date", city="Lima")
    account.add(account.l1, "bob@example.com", note="1990-05-04", city="Kyiv")
    conn = connection(
        account,
        lists=(account.l1,),
        mappings=(
            ImportMapping("note", "birthday", "set"),
            ImportMapping("city", "city", "set"),
        ),
    )
    result = run(ws, conn, cm)
    got = rows(ws, result.run_id)
    assert got["ann@example.com"] == (
        "MODIFIED",
        "note skipped: not a valid date for property birthday: not a date",
    )
    assert profile(ws, "p1").get("birthday") in (None, [])  # that mapping only is skipped
    assert profile(ws, "p1")["city"] == ["Lima"]  # the contact's other mappings still apply
    assert got["bob@example.com"][0] == "MODIFIED"
    assert profile(ws, "p2")["birthday"] == ["1990-05-04"]
    assert profile(ws, "p2")["city"] == ["Kyiv"]


# --- identifiers and matching -----------------------------------------------------------------


def test_identifier_outcomes(account, ws, cm):
    account.add(account.l1, "ann@example.com", "Ann")  # matches " Ann@Example.COM " (case, space)
    account.add(account.l1, "dup@example.com", "Dup")  # two profiles hold it
    account.add(account.l1, "new@example.com", "Newbie", city="Quito")
    account.add(account.l2, "NEW@example.com", "Newbie Again")  # same new person, second list
    dry = dry_run(ws, connection(account), cm)
    result = run(ws, connection(account), cm)
    got = rows(ws, result.run_id)
    # A preview matches identifiers while Campaign Monitor is read, a run in its transaction.
    emails = dry.rows["email"].str.to_lowercase()
    planned = zip(emails, dry.rows["outcome"], dry.rows["reason"], strict=True)
    assert {email: (outcome, reason) for email, outcome, reason in planned} == got
    assert got["ann@example.com"][0] == "MODIFIED"
    assert got["dup@example.com"] == ("AMBIGUOUS", "2 profiles hold email = dup@example.com")
    assert got["new@example.com"][0] == "CREATED"
    created = ws.store.find("email", "new@example.com")
    assert len(created) == 1  # one new profile per distinct identifier, across lists
    new = profile(ws, created[0])
    assert new["email"] == ["new@example.com"] and new["city"] == ["Quito"]
    assert new["full_name"] == ["Newbie"]


def test_not_found_without_allow_create(account, ws, cm):
    account.add(account.l1, "stranger@example.com", "S")
    before = snapshot(ws)
    result = run(ws, connection(account, allow_create=False), cm)
    assert result.counts["NOT_FOUND"] == 1 and result.counts["CREATED"] == 0
    assert snapshot(ws) == before


def test_identifier_rules_are_tried_in_order(account, ws, cm):
    ws.store.set_values(pl.DataFrame({"profile_id": ["p2"], "customer_id": [["C-42"]]}))
    account.add(account.l1, "someone.else@example.com", "By Id", customer_id="C-42")
    account.add(account.l1, "ann@example.com", "By Email")  # no customer id: next rule
    conn = connection(
        account,
        lists=(account.l1,),
        identifiers=(Identifier("customer id", "customer_id"), Identifier("EmailAddress", "email")),
        mappings=(ImportMapping("Name", "nickname", "set"),),
    )
    dry = dry_run(ws, conn, cm)
    assert run(ws, conn, cm).counts == dry.counts
    assert profile(ws, "p2")["nickname"] == ["By Id"]
    assert profile(ws, "p1")["nickname"] == ["By Email"]


def test_no_identifier(account, ws, cm):
    account.add(account.l1, "ann@example.com", "Ann")  # has no customer id
    conn = connection(
        account, lists=(account.l1,), identifiers=(Identifier("customer id", "customer_id"),)
    )
    result = run(ws, conn, cm)
    assert rows(ws, result.run_id)["ann@example.com"][0] == "NO_IDENTIFIER"


# --- consent ------------------------------------------------------------------------------------


def test_consent_for_existing_and_new_profiles(account, ws, cm):
    account.add(account.l1, "ann@example.com", "Ann", city="Bern")  # consented
    account.add(account.l1, "bob@example.com", "Bob", city="Bern")  # no consent
    account.add(account.l1, "eve@example.com", "Eve", city="Bern")  # consented but refused
    account.add(account.l1, "new@example.com", "New", city="Bern")  # new: would not consent
    conn = connection(account, lists=(account.l1,), objectives=("email_marketing",))
    dry = dry_run(ws, conn, cm)
    result = run(ws, conn, cm)
    assert dry.counts == result.counts
    got = rows(ws, result.run_id)
    assert got["ann@example.com"][0] == "MODIFIED"
    assert got["bob@example.com"][0] == "CONSENT_MISMATCH"
    assert got["eve@example.com"][0] == "CONSENT_MISMATCH"
    assert got["new@example.com"][0] == "CONSENT_MISMATCH"
    assert profile(ws, "p2")["city"] == ["Rome"]
    assert ws.store.find("email", "new@example.com") == []


def test_a_new_profile_consenting_through_a_mapping_is_created(account, ws, cm):
    account.add(account.l1, "new@example.com", "New", note="email_marketing")
    conn = connection(
        account,
        lists=(account.l1,),
        objectives=("email_marketing",),
        mappings=(ImportMapping("note", "consented_objectives", "add"),),
    )
    # A preview keeps a new profile's consent values (and no others) to decide the same way.
    dry = dry_run(ws, conn, cm)
    result = run(ws, conn, cm)
    assert result.counts["CREATED"] == 1 and dry.counts == result.counts
    (pid,) = ws.store.find("email", "new@example.com")
    assert profile(ws, pid)["consented_objectives"] == ["email_marketing"]


# --- delta, full, preview, ledger -------------------------------------------------------------


def test_second_run_is_unchanged_and_sums_apply_once(account, ws, cm):
    account.add(account.l1, "ann@example.com", "Ann", loyalty_points=5)
    account.add(account.l1, "bob@example.com", "Bob", loyalty_points=7)
    conn = connection(account, lists=(account.l1,))
    first = run(ws, conn, cm)
    assert first.counts["MODIFIED"] == 2
    dry = dry_run(ws, conn, cm)  # nothing past the delta to match
    second = run(ws, conn, cm)
    assert second.counts["UNCHANGED"] == 2 and second.counts["MODIFIED"] == 0
    assert dry.counts == second.counts
    assert profile(ws, "p1")["points"] == ["15"]

    cm.update_subscriber(account.l1, "bob@example.com", custom_fields={"loyalty points": "8"})
    dry = dry_run(ws, conn, cm)
    third = run(ws, conn, cm)
    assert dry.counts == third.counts
    assert third.counts["MODIFIED"] == 1 and third.counts["UNCHANGED"] == 1
    assert profile(ws, "p2")["points"] == ["15"]  # 7 + 8

    full = run(ws, conn, cm, full=True)
    # --full re-evaluates every contact but never sums a value again (DESIGN §5.5)
    assert full.counts["UNCHANGED"] == 2 and full.counts["MODIFIED"] == 0
    assert profile(ws, "p1")["points"] == ["15"]
    assert full.details["already_summed"] == 2


def test_a_previews_sample_shows_the_values_the_run_then_writes(account, ws, cm):
    """A preview keeps no profile's new values (it counts changes) and merges its sample's
    profiles again: that sample must be what the run writes, from two lists and for a new one."""
    account.add(account.l1, "ann@example.com", "Ann", interests=["tennis"], loyalty_points=5)
    account.add(account.l1, "new@example.com", "New", interests=["golf"], loyalty_points=3)
    account.add(account.l2, "ann@example.com", interests=["chess", "golf"], loyalty_points=2)
    account.add(account.l2, "new@example.com", city="Lima", loyalty_points=4)
    conn = connection(account, save_list_names_to="cm_lists")
    dry = dry_run(ws, conn, cm)
    after = {(r["profile_id"], r["property"]): r["after"] for r in dry.samples.to_dicts()}
    assert after[("p1", "interests")] == ["golf", "tennis", "chess"]  # add: union in list order
    assert after[("p1", "points")] == ["17"]  # sum: 10 + 5 + 2
    assert after[("p1", "cm_lists")] == ["Newsletter", "Customers"]
    (new,) = {pid for pid, _ in after} - {"p1"}
    assert after[(new, "points")] == ["7"] and after[(new, "city")] == ["Lima"]
    assert run(ws, conn, cm).counts == dry.counts
    for (pid, prop), values in after.items():
        assert profile(ws, pid)[prop] == values


def test_preview_computes_the_plan_and_writes_nothing(account, ws, cm):
    account.add(account.l1, "ann@example.com", "Ann", city="Paris")
    account.add(account.l1, "new@example.com", "New")
    conn = connection(account, lists=(account.l1,))
    before = snapshot(ws)
    dry = dry_run(ws, conn, cm)
    assert dry.counts["MODIFIED"] == 1 and dry.counts["CREATED"] == 1
    changed = {
        (r["profile_id"], r["property"]): (r["before"], r["after"]) for r in dry.samples.to_dicts()
    }
    assert changed[("p1", "city")] == (["Oslo"], ["Paris"])
    assert snapshot(ws) == before
    with ws.store.connect() as con:
        assert con.execute("SELECT count(*) FROM runs").fetchall()[0][0] == 0
        assert con.execute("SELECT count(*) FROM import_state").fetchall()[0][0] == 0
    real = run(ws, conn, cm)
    assert real.counts == dry.counts


def test_the_ledger_records_the_run_and_every_contact(account, ws, cm):
    account.add(account.l1, "ann@example.com", "Ann")
    account.add(account.l1, "dup@example.com", "Dup")
    conn = connection(account, lists=(account.l1,))
    result = run(ws, conn, cm)
    runner = ws.connection(conn, client=cm)
    (entry,) = runner.history()
    assert entry.run_id == result.run_id and entry.state == "FINISHED"
    assert entry.counts["MODIFIED"] == 1 and entry.counts["AMBIGUOUS"] == 1
    assert set(rows(ws, result.run_id)) == {"ann@example.com", "dup@example.com"}


# --- failures -----------------------------------------------------------------------------------


def test_faults_give_the_same_final_state_as_a_clean_run(emulator_factory, tmp_path):
    from cmtoolkit.campaign_monitor import ApiKeyAuth, CampaignMonitor, RetryPolicy
    from cmtoolkit.secret import Secret

    finals = []
    for faults in (None, "429:at=2;500:at=3;drop:at=4;truncate:at=5;503:p=0.1"):
        emu = emulator_factory(seed_size=3000, seed=5)
        if faults:
            emu.set_faults(faults)
        client = CampaignMonitor(
            ApiKeyAuth(Secret(emu.api_key)),
            base_url=emu.base_url,
            retry=RetryPolicy(max_attempts=12, base_delay=0.001, max_delay=0.002),
            sleep=lambda s: None,
        )
        ws = Workspace.create(tmp_path / f"ws{len(finals)}")
        conn = _seeded_connection(emu)
        result = sync(ws.context(conn, client), "import")
        assert result.counts["CREATED"] > 2000
        if faults:
            assert all(rule.fired for rule in emu.faults[:4]), emu.summary()["faults"]
        finals.append(snapshot(ws))
    assert finals[0] == finals[1]


def _seeded_connection(emu: Any) -> Connection:
    fields = {f.field_name for f in _fields(emu)}
    mappings = [ImportMapping("Name", "full_name", "set")]
    mappings += [ImportMapping(f, f.lower().replace(" ", "_"), "add") for f in sorted(fields)]
    return Connection(
        name="seeded",
        campaign_monitor=CampaignMonitorSettings("default", emu.client_id),
        import_=ImportGoal(
            lists=tuple(emu.list_ids),
            identifiers=(Identifier("EmailAddress", "email"),),
            allow_create=True,
            save_list_names_to="cm_lists",
            mappings=tuple(mappings),
        ),
    )


def _fields(emu: Any) -> list[Any]:
    from cmtoolkit.campaign_monitor import ApiKeyAuth, CampaignMonitor
    from cmtoolkit.secret import Secret

    with CampaignMonitor(ApiKeyAuth(Secret(emu.api_key)), base_url=emu.base_url) as c:
        return c.custom_fields(emu.list_ids[0])


def test_revoked_token_fails_the_run_cleanly(account, ws, emulator):
    from cmtoolkit.campaign_monitor import CampaignMonitor, OAuthAuth

    account.add(account.l1, "ann@example.com", "Ann", city="Paris")
    tokens = emulator.issue_token()
    emulator.revoke(tokens["access_token"])
    client = CampaignMonitor(
        OAuthAuth(tokens["access_token"], tokens["refresh_token"]), base_url=emulator.base_url
    )
    before = snapshot(ws)
    with pytest.raises(TokenRevoked, match="auth login"):
        run(ws, connection(account, lists=(account.l1,)), client)
    assert snapshot(ws) == before
    (entry,) = ws.connection(connection(account), client=client).history()
    assert entry.state == "FAILED" and "Revoked" in entry.error


def test_an_expiring_token_is_refreshed_mid_run(emulator_factory, tmp_path):
    from cmtoolkit.campaign_monitor import CampaignMonitor, OAuthAuth

    emu = emulator_factory(seed_size=3000, seed=2)
    tokens = emu.issue_token()
    emu.set_faults("expire:after=3")
    saved = []
    client = CampaignMonitor(
        OAuthAuth(tokens["access_token"], tokens["refresh_token"]),
        base_url=emu.base_url,
        on_tokens_refreshed=saved.append,
    )
    ws = Workspace.create(tmp_path / "ws")
    result = sync(ws.context(_seeded_connection(emu), client), "import")
    assert result.state == "FINISHED" and result.counts["CREATED"] > 2000
    assert saved, "the refreshed tokens were handed to the persist callback"


KILLER = textwrap.dedent(
    """
    import os, signal, sys
    from cmtoolkit.campaign_monitor import ApiKeyAuth, CampaignMonitor
    from cmtoolkit.connection.file import load_connection
    from cmtoolkit.secret import Secret
    from cmtoolkit.sync import GoalContext, sync
    from cmtoolkit.sync.imports import goal as import_goal
    from cmtoolkit.workspace import Workspace

    ws_path, conn_path, base_url, key = sys.argv[1:5]
    original = import_goal.apply_import

    def apply_then_die(plan, run_id, define_property):
        original(plan, run_id, define_property)  # every write done, the commit not yet
        os.kill(os.getpid(), signal.SIGKILL)

    import_goal.apply_import = apply_then_die
    client = CampaignMonitor(ApiKeyAuth(Secret(key)), base_url=base_url)
    sync(Workspace(ws_path).context(load_connection(conn_path), client), "import")
    """
)


def test_sigkill_mid_run_leaves_the_store_as_it_was(emulator_factory, tmp_path):
    from cmtoolkit.campaign_monitor import ApiKeyAuth, CampaignMonitor
    from cmtoolkit.connection.file import save_connection
    from cmtoolkit.secret import Secret

    emu = emulator_factory(seed_size=2000, seed=3)
    conn = _seeded_connection(emu)
    conn_path = save_connection(conn, tmp_path / "seeded.yaml")
    client = CampaignMonitor(ApiKeyAuth(Secret(emu.api_key)), base_url=emu.base_url)

    killed = Workspace.create(tmp_path / "killed")
    clean = Workspace.create(tmp_path / "clean")
    for ws in (killed, clean):
        ws.store.load(pl.DataFrame({"profile_id": ["keep"], "email": [["keep@example.com"]]}))
    before = snapshot(killed)
    script = tmp_path / "killer.py"
    script.write_text(KILLER)
    proc = subprocess.run(
        [sys.executable, str(script), str(killed.path), str(conn_path), emu.base_url, emu.api_key],
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ},
    )
    assert proc.returncode == -signal.SIGKILL, proc.stderr
    assert snapshot(killed) == before  # the uncommitted transaction is gone

    rerun = sync(killed.context(conn, client), "import")
    sync(clean.context(conn, client), "import")
    assert rerun.state == "FINISHED"
    assert snapshot(killed) == snapshot(clean)
    runs = {r.state: r for r in killed.connection(conn, client=client).history()}
    assert "interrupted" in runs["FAILED"].error


def test_one_run_of_a_connection_at_a_time(account, ws, cm):
    from cmtoolkit.errors import RunInProgress
    from cmtoolkit.sync.locking import RunLock

    conn = connection(account)
    with RunLock(ws.path, conn.name), pytest.raises(RunInProgress, match="already running"):
        run(ws, conn, cm)


def test_cli_sync_preview_and_history(account, ws, emulator, monkeypatch, capsys):
    from cmtoolkit.cli import main
    from cmtoolkit.connection.file import connection_path, save_connection

    account.add(account.l1, "ann@example.com", "Ann", city="Paris")
    save_connection(connection(account, lists=(account.l1,)), connection_path(ws.path, "news"))
    monkeypatch.setenv("CMTOOLKIT_API_URL", emulator.base_url)
    monkeypatch.setenv("CM_API_KEY", emulator.api_key)
    monkeypatch.setenv("CMTOOLKIT_CREDENTIALS", str(ws.path / "no-credentials.json"))
    common = ["--workspace", str(ws.path)]
    assert main(["preview", "news", "--goal", "import", "--json", *common]) == 0
    (dry,) = json.loads(capsys.readouterr().out)
    assert dry["counts"]["MODIFIED"] == 1 and dry["dry_run"]
    assert main(["sync", "news", "--goal", "import", "--json", *common]) == 0
    (done,) = json.loads(capsys.readouterr().out)
    assert done["state"] == "FINISHED" and done["counts"] == dry["counts"]
    assert main(["history", "news", "--json", *common]) == 0
    (entry,) = json.loads(capsys.readouterr().out)
    assert entry["run_id"] == done["run_id"]
    assert profile(ws, "p1")["city"] == ["Paris"]


def test_status_checks_the_workspace_store(account, ws, cm, tmp_path):
    ws.segments_path.write_text("vip:\n  any:\n    - {property: points, gte: 1000}\n")
    ws.store.define_property("nickname", "text")
    conn = connection(
        account,
        mappings=(ImportMapping("loyalty points", "nickname", "sum"),),  # sum into text
    )
    status = ws.connection(conn, client=cm).status()
    assert not status.import_ready
    assert any("nickname" in p.message and "number" in p.message for p in status.errors)
    assert ws.segment_names() == ["vip"]


CUSTOM_FIELDS = pl.List(pl.Struct({"key": pl.Utf8, "value": pl.Utf8}))


class PagesSource:
    """A subscriber source yielding the given page frames, as the client would."""

    def __init__(self, *frames: pl.DataFrame) -> None:
        self.frames = frames

    def lists(self, client_id: str) -> list[Any]:
        from types import SimpleNamespace

        return [SimpleNamespace(list_id="L1", name="Newsletter")]

    def subscriber_frames_many(self, selections: Any, *, totals: Any = None, **kw: Any) -> Any:
        for i, (_, state, *_since) in enumerate(selections):
            # The import reads the leaving states too (DESIGN §5.6): only Active has pages.
            if state == "Active":
                if totals is not None:
                    totals(i, sum(f.height for f in self.frames))
                yield from ((i, f) for f in self.frames)
            elif totals is not None:
                totals(i, 0)


def page(email: str, name: str, fields: list[tuple[str, str]]) -> pl.DataFrame:
    return pl.DataFrame(
        {
            "email": [email],
            "name": [name],
            "custom_fields": [[{"key": k, "value": v} for k, v in fields]],
        },
        schema={"email": pl.Utf8, "name": pl.Utf8, "custom_fields": CUSTOM_FIELDS},
    )


def import_spec(**kw: Any) -> Any:
    from cmtoolkit.sync.imports import ImportSpec

    defaults: dict[str, Any] = {
        "connection": "c", "client_id": "C", "lists": ("L1",), "states": ("Active",),
        "allow_create": False, "save_list_names_to": None,
        "identifiers": (("EmailAddress", "email"),), "objectives": (),
    }  # fmt: skip
    return ImportSpec(**{**defaults, **kw})


@pytest.mark.parametrize("goal", ["preview", "run"])
def test_reading_reports_progress_up_to_the_lists_subscriber_count(
    goal: str, emulator_factory: Any, ws: Workspace
) -> None:
    """The stage reports ``read`` progress (contacts read, total) through the goal context, for
    the bars of notebooks and terminals: the total is every selected list's subscribers (every
    state is selected), known from the first pages on, and the count reaches it."""
    from cmtoolkit.campaign_monitor import ApiKeyAuth, CampaignMonitor
    from cmtoolkit.emulator import DEFAULT_API_KEY
    from cmtoolkit.secret import Secret

    emu = emulator_factory(seed_size=2600)  # Newsletter: about 2,200 Active, three pages
    lists = emu.list_ids[:2]
    expected = sum(len(lst) for lst in emu.account.clients[0].lists[:2])
    conn = Connection(
        name="progress",
        campaign_monitor=CampaignMonitorSettings("default", emu.client_id),
        import_=ImportGoal(
            lists=tuple(lists),
            states=("Active", "Unconfirmed", "Unsubscribed", "Bounced", "Deleted"),
            identifiers=(Identifier("EmailAddress", "email"),),
            allow_create=True,
            mappings=(ImportMapping("Name", "full_name", "set_if_empty"),),
        ),
    )
    events: list[tuple[str, int, int | None]] = []
    with CampaignMonitor(ApiKeyAuth(Secret(DEFAULT_API_KEY)), base_url=emu.base_url) as cm:
        ctx = ws.context(conn, cm, progress=lambda *e: events.append(e))
        (preview if goal == "preview" else sync)(ctx, "import")
    read = [(done, total) for stage, done, total in events if stage == "read"]
    assert len(read) > 8  # one per page: several per list
    assert read[-1] == (expected, expected)
    assert {total for _, total in read if total is not None} == {expected}
    done = [d for d, _ in read]
    assert done == sorted(done)


def test_the_import_plans_within_a_memory_limit_that_keeps_a_million_under_a_gigabyte():
    """Bounded memory (issue 19): the import's DuckDB spills past 640 MB up to a million staged
    contacts (the process stays under 1 GB), and allows more only past a million."""
    from cmtoolkit.sync.imports import stage_contacts
    from cmtoolkit.sync.imports.stage import MEMORY_LIMIT_MB
    from cmtoolkit.sync.scratch import memory_limit

    def mib(setting: str) -> float:
        number, unit = setting.split()
        return float(number) * {"MiB": 1, "GiB": 1024}[unit]

    source = PagesSource(page("ann@example.com", "Ann", []))
    with stage_contacts(source, import_spec(mappings=())) as stage:
        (setting,) = stage.con.execute("SELECT current_setting('memory_limit')").fetchone()
    assert mib(setting) <= 640
    assert memory_limit(MEMORY_LIMIT_MB, 1_000_000) == memory_limit(MEMORY_LIMIT_MB, 1) == "640MB"
    assert 1000 < int(memory_limit(MEMORY_LIMIT_MB, 10_000_000).removesuffix("MB")) < 1800


def test_a_job_alongside_the_reading_fails_the_stage_with_its_own_error():
    """A preview reads the store in the staging worker while pages are read: if that fails (a
    store held past the lock timeout), reading stops with that error and the worker is gone."""
    import threading

    from cmtoolkit.errors import StoreLocked
    from cmtoolkit.sync.imports import stage_contacts

    def held(con: Any) -> None:
        raise StoreLocked("the profile store is locked by process 42", holder_pid=42)

    source = PagesSource(page("ann@example.com", "Ann", []), page("bob@example.com", "Bob", []))
    with pytest.raises(StoreLocked, match="process 42"):
        stage_contacts(source, import_spec(mappings=()), alongside=held)
    assert not [t for t in threading.enumerate() if t.name.startswith("cmtoolkit-stage")]


def test_blank_incoming_values_are_dropped_whatever_campaign_monitor_returns(ws):
    """The emulator stores no blank values; a real account may return them: they never clear."""
    from cmtoolkit.sync.imports import plan_import, stage_contacts

    # Blank and whitespace-only values (U+3000 is a space too), as a real account may send them.
    source = PagesSource(
        page("ann@example.com", "  ", [("city", "   "), ("city", ""), ("city", "\u3000")])
    )
    spec = import_spec(mappings=(("city", "city", "set"), ("Name", "full_name", "set")))
    with stage_contacts(source, spec) as stage, ws.store.attached(stage.con):
        plan = plan_import(stage.con, spec)
        assert plan.counts["UNCHANGED"] == 1
        assert plan.rows()["reason"].to_list() == ["values already current"]
        assert plan.samples().is_empty()  # Oslo and the empty name stay as they are


def test_the_delta_hash_of_a_contact_does_not_change_between_versions():
    """Stored hashes decide what is applied again: a new hash format would re-apply every
    contact once, and ``sum`` twice. This pins the format (md5 over the fields read)."""
    from cmtoolkit.sync.imports import stage_contacts

    source = PagesSource(
        page(
            " Ann@Example.com ",
            "Ann",
            [("interests", "golf"), ("website", ""), ("interests", "chess"), ("tier", "gold")],
        )
    )
    spec = import_spec(
        save_list_names_to="cm_lists",
        mappings=(("Name", "full_name", "set"), ("interests", "interests", "add")),
    )
    with stage_contacts(source, spec) as stage:
        got = stage.con.sql("SELECT identifier, hash, in_t0, in_t1 FROM imp_in").fetchall()
    hash_ = "ff32e7b9f5de85a62ccfb91cf163734a"  # computed by the first version of the import
    assert got == [("ann@example.com", hash_, ["Ann"], ["golf", "chess"])]


def test_a_value_fits_a_property_by_the_store_s_own_rule(ws):
    """One rule for what fits a type (profiles.properties.VALUE_CHECKS): an import accepts what
    the store would load, so ``yes`` is not a boolean and a date has the form YYYY-MM-DD."""
    from cmtoolkit.sync.imports import plan_import, stage_contacts

    ws.store.define_property("vip", "boolean")
    ws.store.define_property("since", "date")
    source = PagesSource(
        page("ann@example.com", "Ann", [("vip", "true"), ("since", "2024-01-05")]),
        page("bob@example.com", "Bob", [("vip", "yes")]),
        page("eve@example.com", "Eve", [("since", "2024/01/05")]),
    )
    spec = import_spec(mappings=(("vip", "vip", "set"), ("since", "since", "set")))
    with stage_contacts(source, spec) as stage, ws.store.attached(stage.con):
        plan = plan_import(stage.con, spec)
        got = {r["email"]: (r["outcome"], r["reason"]) for r in plan.rows().to_dicts()}
    assert got["ann@example.com"] == ("MODIFIED", None)
    # A value that does not fit skips that mapping only, and the row says so (DESIGN §5).
    assert got["bob@example.com"] == (
        "UNCHANGED",
        "vip skipped: not a valid boolean for property vip: yes",
    )
    assert got["eve@example.com"] == (
        "UNCHANGED",
        "since skipped: not a valid date for property since: 2024/01/05",
    )


def test_a_plan_keeps_its_statements_printable_with_values_as_parameters(ws):
    from cmtoolkit.sync.imports import plan_import, stage_contacts

    source = PagesSource(page("ann@example.com", "Ann", [("city", "Lima")]))
    spec = import_spec(connection="news", mappings=(("city", "city", "set"),))
    with stage_contacts(source, spec) as stage, ws.store.attached(stage.con):
        plan = plan_import(stage.con, spec)
    printed = "\n".join(map(str, plan.statements))
    assert "CREATE OR REPLACE TEMP TABLE imp_plan" in printed
    assert "$connection = 'news'" in printed  # the connection name reaches SQL as a parameter
    assert not any("'news'" in s.sql or "Lima" in s.sql for s in plan.statements)
