# ruff: noqa: F811  (the fixtures imported from test_import are parameters here)
"""Issue 14: the import's semantics over time (DESIGN §4, §5, §7), against the emulator over HTTP
and a real DuckDB workspace: the connection id, sum exactly once, identifier fallback and
normalisation, leavers, consent_from, and the one readiness gate."""

from __future__ import annotations

import json
import os
import shutil
import time
from typing import Any

import polars as pl
import pytest

from cmtoolkit.connection.file import connection_path, load_connection, save_connection
from cmtoolkit.connection.model import ConsentFrom, Identifier, ImportMapping
from tests.sync.test_import import (  # noqa: F401  (fixtures)
    Account,
    account,
    connection,
    profile,
    rows,
    run,
    ws,
)


def with_id(conn: Any, id_: str = "a1b2c3d4", **changes: Any) -> Any:
    from dataclasses import replace

    goal = replace(conn.import_, **changes) if changes else conn.import_
    return replace(conn, id=id_, import_=goal)


def cli(ws: Any, emulator: Any, monkeypatch: Any, *args: str) -> int:
    from cmtoolkit.cli import main

    monkeypatch.setenv("CMTOOLKIT_API_URL", emulator.base_url)
    monkeypatch.setenv("CM_API_KEY", emulator.api_key)
    monkeypatch.setenv("CMTOOLKIT_CREDENTIALS", str(ws.path / "no-credentials.json"))
    return main([*args, "--workspace", str(ws.path)])


def env_connection(conn: Any) -> Any:
    from dataclasses import replace

    from cmtoolkit.connection.model import CampaignMonitorSettings

    cm = CampaignMonitorSettings("env:CM_API_KEY", conn.campaign_monitor.client_id)
    return replace(conn, campaign_monitor=cm)


# --- sum exactly once (DESIGN §5.5) -----------------------------------------------------------


def test_settings_changes_full_runs_and_renames_never_sum_a_value_again(account, ws, cm):
    account.add(account.l1, "ann@example.com", "Ann", loyalty_points=7)
    conn = with_id(connection(account, lists=(account.l1,)))
    run(ws, conn, cm)
    assert profile(ws, "p1")["points"] == ["17"]  # 10 + 7
    edits = [
        with_id(conn, allow_create=False),
        with_id(conn, mappings=(*conn.import_.mappings, ImportMapping("note", "note", "set"))),
        with_id(conn, states=("Active", "Unconfirmed")),
        with_id(conn, lists=(account.l1, account.l2)),
    ]
    from dataclasses import replace

    edits.append(replace(conn, name="renamed"))  # same id: same state
    for edited in edits:
        result = run(ws, edited, cm)
        assert profile(ws, "p1")["points"] == ["17"], edited
        assert result.counts["CREATED"] == 0
    full = run(ws, conn, cm, full=True)
    assert profile(ws, "p1")["points"] == ["17"]
    assert full.details["already_summed"] == 1
    from cmtoolkit.widgets.html import result_html  # what the report and the preview show

    assert "sum: 1 value already summed, not added again" in result_html(full)
    cm.update_subscriber(account.l1, "ann@example.com", custom_fields={"loyalty points": "3"})
    run(ws, conn, cm)
    assert profile(ws, "p1")["points"] == ["20"]  # a new value is summed, once


def test_a_new_sum_mapping_sums_each_current_value_once(account, ws, cm):
    account.add(account.l1, "ann@example.com", "Ann", loyalty_points=4)
    base = with_id(connection(account, lists=(account.l1,), mappings=()))
    run(ws, base, cm)
    assert profile(ws, "p1")["points"] == ["10"]
    summing = with_id(base, mappings=(ImportMapping("loyalty points", "points", "sum"),))
    run(ws, summing, cm)
    run(ws, summing, cm, full=True)
    assert profile(ws, "p1")["points"] == ["14"]


def test_an_upgraded_workspace_keeps_its_state_and_never_sums_again(account, ws, cm):
    """State written before ledger version 3 is keyed by the connection's name and records no
    sums: the first run with an id moves it, and takes unchanged values as already summed."""
    account.add(account.l1, "ann@example.com", "Ann", loyalty_points=7)
    old = connection(account, lists=(account.l1,))  # no id: state kept under the name
    run(ws, old, cm)
    with ws.store.transaction() as con:  # what a pre-version-3 workspace holds
        con.execute("UPDATE import_state SET sums_recorded = NULL")
        con.execute("DELETE FROM import_sums")
    new = with_id(old)
    first = run(ws, new, cm)
    assert first.counts["UNCHANGED"] == 1 and profile(ws, "p1")["points"] == ["17"]
    with ws.store.connect() as con:
        keys = {r[0] for r in con.execute("SELECT connection FROM import_state").fetchall()}
    assert keys == {"a1b2c3d4"}
    edited = with_id(old, allow_create=False)  # a settings change re-applies the contact...
    run(ws, edited, cm)
    assert profile(ws, "p1")["points"] == ["17"]  # ...without summing it again


# --- identifiers (DESIGN §5.1–5.2) ------------------------------------------------------------


def test_a_second_identifier_rule_is_tried_when_the_first_matches_no_one(account, ws, cm):
    ws.store.define_property("customer_code", "text")
    import polars as pl

    from cmtoolkit.profiles.store import Store  # noqa: F401

    ws.store.set_values(pl.DataFrame({"profile_id": ["p3"], "customer_code": [["C-77"]]}))
    account.add(account.l1, "brand-new@example.com", "New", customer_id="C-77", city="Bergen")
    conn = connection(
        account,
        lists=(account.l1,),
        identifiers=(
            Identifier("EmailAddress", "email"),
            Identifier("customer id", "customer_code"),
        ),
    )
    result = run(ws, conn, cm)
    assert result.counts["CREATED"] == 0 and result.counts["MODIFIED"] == 1
    assert profile(ws, "p3")["city"] == ["Bergen"]


def test_a_new_profile_gets_every_applying_rule_s_identifier(account, ws, cm):
    account.add(account.l1, "fresh@example.com", "Fresh", customer_id="C-9")
    conn = connection(
        account,
        lists=(account.l1,),
        identifiers=(
            Identifier("EmailAddress", "email"),
            Identifier("customer id", "customer_code"),
        ),
    )
    run(ws, conn, cm)
    (pid,) = ws.store.find("customer_code", "C-9")
    assert profile(ws, pid)["email"] == ["fresh@example.com"]


@pytest.mark.parametrize(
    "stored",
    ["jo\u0308hn@example.com", "j\u00f6hn\u200b@example.com", "JÖHN@EXAMPLE.COM"],
    ids=["nfd", "zero-width", "case"],
)
def test_emails_match_whatever_their_unicode_form(account, ws, cm, stored):
    import polars as pl

    ws.store.set_values(pl.DataFrame({"profile_id": ["u1"], "email": [[stored]]}))
    account.add(account.l1, "jöhn@example.com", "John", city="Graz")  # NFC
    result = run(ws, connection(account, lists=(account.l1,), allow_create=False), cm)
    assert result.counts["MODIFIED"] == 1 and profile(ws, "u1")["city"] == ["Graz"]


# --- leavers (DESIGN §5.6) and consent_from (DESIGN §5.3) --------------------------------------


@pytest.mark.parametrize("how", ["unsubscribe", "delete", "bounce"])
def test_a_leaver_loses_the_list_name_and_a_state_mapping_gets_the_new_state(
    account, ws, cm, emulator, how
):
    account.add(account.l1, "ann@example.com", "Ann")
    account.add(account.l2, "ann@example.com", "Ann")
    conn = with_id(
        connection(
            account,
            save_list_names_to="cm_lists",
            mappings=(ImportMapping("State", "cm_state", "set"),),
        )
    )
    run(ws, conn, cm)
    assert profile(ws, "p1")["cm_lists"] == ["Newsletter", "Customers"]
    if how == "unsubscribe":
        cm.unsubscribe(account.l1, "ann@example.com")
    elif how == "delete":
        cm.delete_subscriber(account.l1, "ann@example.com")
    else:
        _, lst = emulator.account.find_list(account.l1)
        lst.set_state(lst.row_of("ann@example.com"), 3, int(emulator.now()))
    dry = run_preview(ws, conn, cm)
    result = run(ws, conn, cm)
    # (the emulator, like an account set to, may unsubscribe from every list of the client)
    lists = {account.l1: "Newsletter", account.l2: "Customers"}
    still = [
        n for lid, n in lists.items() if cm.subscriber(lid, "ann@example.com").state == "Active"
    ]
    assert result.counts["MODIFIED"] == len(lists) - len(still) >= 1
    assert dry.details["leavers"] == result.details["leavers"] == len(lists) - len(still)
    assert profile(ws, "p1").get("cm_lists", []) == still
    # Only the contact that changed is applied again (the delta): its new state arrives.
    state = {"unsubscribe": "Unsubscribed", "delete": "Deleted", "bounce": "Bounced"}[how]
    assert profile(ws, "p1")["cm_state"] == [state]
    assert run(ws, conn, cm).counts["MODIFIED"] == 0


def test_leavers_are_read_from_a_cursor_and_an_unsettled_one_until_it_is_applied(
    account, ws, cm, emulator
):
    """DESIGN §5.6: once a list's leavers are applied, a run reads only those whose status date
    is at most a day (the lag) before the latest one read; a leaver left unsettled (AMBIGUOUS)
    holds the cursor back, so it is read on every run until it applies; other settings and
    ``--full`` read every leaver again."""
    from cmtoolkit.sync.imports.state import LEAVER_LAG

    days = 2 * LEAVER_LAG.total_seconds()
    for email in ("ann@example.com", "bob@example.com", "eve@example.com"):
        account.add(account.l1, email)
    conn = with_id(
        connection(
            account,
            lists=(account.l1,),
            save_list_names_to="cm_lists",
            mappings=(ImportMapping("State", "cm_state", "set"),),
        )
    )

    def step() -> dict[str, int]:
        dry = run_preview(ws, conn, cm)
        result = run(ws, conn, cm)
        assert result.counts == dry.counts
        return {k: v for k, v in result.counts.items() if v}

    assert step() == {"MODIFIED": 3}
    cm.unsubscribe(account.l1, "bob@example.com")
    assert step() == {"MODIFIED": 1, "UNCHANGED": 2}
    emulator.advance(days)
    # eve leaves while two profiles hold her address: AMBIGUOUS, not applied
    ws.store.set_values(pl.DataFrame({"profile_id": ["p4"], "email": [["eve@example.com"]]}))
    cm.unsubscribe(account.l1, "eve@example.com")
    assert step() == {"AMBIGUOUS": 1, "UNCHANGED": 2}  # bob still within the lag
    emulator.advance(days)
    cm.unsubscribe(account.l1, "ann@example.com")
    # bob (settled, two days before eve) is not read; eve is, though she left before the lag
    assert step() == {"MODIFIED": 1, "AMBIGUOUS": 1}
    emulator.advance(days)
    ws.store.set_values(pl.DataFrame({"profile_id": ["p4"], "email": [["dup@example.com"]]}))
    assert step() == {"MODIFIED": 1, "UNCHANGED": 1}  # eve applies; ann within the lag
    assert profile(ws, "p5")["cm_state"] == ["Unsubscribed"]
    assert "cm_lists" not in profile(ws, "p5")
    emulator.advance(days)
    # The cursor is the latest status date read (Campaign Monitor's clock, not ours): only ann,
    # the latest leaver, is within the lag of it.
    assert step() == {"UNCHANGED": 1}
    assert sum(run(ws, conn, cm, full=True).counts.values()) == 3
    renamed = with_id(conn, mappings=(ImportMapping("State", "cm_state", "set_if_empty"),))
    assert sum(run(ws, renamed, cm).counts.values()) == 3  # other settings: every leaver


def run_preview(ws: Any, conn: Any, cm: Any) -> Any:
    from cmtoolkit.sync import preview

    return preview(ws.context(conn, cm), "import")


def test_consent_from_lets_consenting_subscribers_be_created_under_objectives(account, ws, cm):
    cm.add_subscriber(account.l1, "yes@example.com", name="Yes", consent_to_track="Yes")
    cm.add_subscriber(account.l1, "no@example.com", name="No", consent_to_track="No")
    plain = connection(account, lists=(account.l1,), objectives=("email_marketing",))
    assert run(ws, plain, cm).counts["CREATED"] == 0  # ConsentToTrack alone cannot consent
    conn = with_id(
        plain,
        consent_from=ConsentFrom("ConsentToTrack", ("email_marketing",), ("email_marketing",)),
    )
    result = run(ws, conn, cm)
    assert result.counts["CREATED"] == 1 and result.counts["CONSENT_MISMATCH"] == 1
    (pid,) = ws.store.find("email", "yes@example.com")
    assert profile(ws, pid)["consented_objectives"] == ["email_marketing"]


# --- the connection id (DESIGN §4) ------------------------------------------------------------


def test_first_use_writes_an_id_into_the_file_and_says_so(account, ws, cm, capsys):
    path = connection_path(ws.path, "news")
    save_connection(connection(account, lists=(account.l1,)), path)
    before = path.read_text()
    assert "\nid:" not in before
    runner = ws.connection("news", client=cm)
    written = runner.model.id
    assert written and f"id: {written}\n" in path.read_text()
    assert f"had no id; wrote id: {written}" in capsys.readouterr().err
    assert path.read_text().replace(f"id: {written}\n", "") == before  # nothing else touched
    assert ws.connection("news", client=cm).model.id == written  # stable


def test_a_copied_connection_file_is_a_status_error_naming_the_copy(account, ws, cm):
    path = connection_path(ws.path, "news")
    save_connection(with_id(connection(account, lists=(account.l1,))), path)
    copy = path.with_name("news-copy.yaml")
    shutil.copy(path, copy)
    later = time.time() + 5
    os.utime(copy, (later, later))
    text = copy.read_text().replace("name: news", "name: news copy")
    copy.write_text(text)
    os.utime(copy, (later, later))
    assert not any(p.key == "id" for p in ws.connection("news", client=cm).status().errors)
    status = ws.connection(str(copy), client=cm).status()
    (problem,) = [p for p in status.errors if p.key == "id"]
    assert "news-copy.yaml" in problem.message and "Delete the 'id:' line" in problem.message
    assert not status.import_ready


# --- the readiness gate (DESIGN §7) -----------------------------------------------------------


def test_status_calls_a_typo_d_identifier_property_an_error_naming_the_nearest(account, ws, cm):
    conn = connection(account, identifiers=(Identifier("EmailAddress", "emial"),))
    status = ws.connection(conn, client=cm).status()
    (problem,) = [p for p in status.errors if p.key == "import.identifiers[0].property"]
    assert "'emial' does not exist" in problem.message and "did you mean 'email'" in problem.message


def test_sync_and_preview_refuse_a_connection_with_status_errors(
    account, ws, emulator, monkeypatch, capsys
):
    account.add(account.l1, "ann@example.com", "Ann", city="Paris")
    bad = env_connection(
        connection(
            account,
            lists=(account.l1,),
            mappings=(ImportMapping("loyalty points", "city", "sum"), ImportMapping("nope", "x")),
        )
    )
    save_connection(bad, connection_path(ws.path, "news"))
    before = profile(ws, "p1")
    for command in ("sync", "preview"):
        assert cli(ws, emulator, monkeypatch, command, "news", "--goal", "import") == 2
        err = capsys.readouterr().err
        assert "is not ready" in err and "'sum' needs a number property" in err
        assert "field 'nope' does not exist on list" in err
    assert profile(ws, "p1") == before
    with ws.store.connect() as con:
        assert con.execute("SELECT count(*) FROM runs").fetchall()[0][0] == 0


def test_sync_refuses_a_disabled_connection_unless_forced(
    account, ws, emulator, monkeypatch, capsys
):
    from dataclasses import replace

    account.add(account.l1, "ann@example.com", "Ann", city="Paris", loyalty_points=5)
    conn = replace(env_connection(connection(account, lists=(account.l1,))), enabled=False)
    save_connection(conn, connection_path(ws.path, "news"))
    assert cli(ws, emulator, monkeypatch, "sync", "news", "--goal", "import") == 2
    assert "is disabled (enabled: false)" in capsys.readouterr().err
    assert profile(ws, "p1")["city"] == ["Oslo"]
    assert cli(ws, emulator, monkeypatch, "preview", "news", "--goal", "import") == 0
    capsys.readouterr()
    assert cli(ws, emulator, monkeypatch, "sync", "news", "--goal", "import", "--force") == 0
    assert profile(ws, "p1")["city"] == ["Paris"]
    assert load_connection(connection_path(ws.path, "news")).id  # written on first use
    capsys.readouterr()
    args = ("sync", "news", "--goal", "import", "--force", "--full")
    assert cli(ws, emulator, monkeypatch, *args) == 0
    assert "sum: 1 values already summed, not added again" in capsys.readouterr().out
    assert profile(ws, "p1")["points"] == ["15"]
    assert json.loads("[]") == []


def test_the_python_api_passes_the_same_gate(account, ws, cm):
    from dataclasses import replace

    from cmtoolkit.sync import NotReady

    conn = replace(connection(account, lists=(account.l1,)), enabled=False)
    runner = ws.connection(conn, client=cm)
    with pytest.raises(NotReady, match="disabled"):
        runner.sync("import")
    assert runner.sync("import", force=True).ok


def test_cmtoolkit_run_passes_the_same_gate_before_any_notebook_starts(
    account, ws, emulator, monkeypatch, capsys
):
    from dataclasses import replace

    conn = replace(env_connection(connection(account, lists=(account.l1,))), enabled=False)
    save_connection(conn, connection_path(ws.path, "news"))
    assert cli(ws, emulator, monkeypatch, "run", "news", "--goal", "import") == 2
    assert "is disabled (enabled: false)" in capsys.readouterr().err
    bad = env_connection(connection(account, identifiers=(Identifier("EmailAddress", "emial"),)))
    save_connection(bad, connection_path(ws.path, "news"))
    assert cli(ws, emulator, monkeypatch, "run", "news", "--goal", "import", "--force") == 2
    err = capsys.readouterr().err
    assert "is not ready" in err and "did you mean 'email'" in err
    assert not list(ws.reports_dir.glob("**/*.ipynb"))  # no notebook ran
