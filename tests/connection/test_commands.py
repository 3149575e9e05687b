"""The ``auth`` and ``status`` commands, against the emulator."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from cmtoolkit.cli import main
from cmtoolkit.connection import parse_connection, save_connection
from cmtoolkit.credentials import ApiKeyCredential, CredentialStore
from cmtoolkit.secret import Secret


@pytest.fixture
def emu() -> Iterator[object]:
    emulator_module = pytest.importorskip("cmtoolkit.emulator")
    emulator = emulator_module.Emulator(seed_size=5)
    emulator.start()
    try:
        yield emulator
    finally:
        emulator.stop()


@pytest.fixture
def env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, emu) -> CredentialStore:  # type: ignore[no-untyped-def]
    monkeypatch.setenv("CMTOOLKIT_CREDENTIALS", str(tmp_path / "creds" / "credentials.json"))
    monkeypatch.setenv("CMTOOLKIT_API_URL", emu.base_url)
    monkeypatch.delenv("CM_API_KEY", raising=False)
    return CredentialStore()


def connection_text(emu, **over: str) -> str:  # type: ignore[no-untyped-def]
    list_id = emu.list_ids[0]
    return f"""\
name: News
campaign_monitor: {{credential: {over.get("credential", "default")}, client_id: {emu.client_id}}}
import:
  lists: [{over.get("list", list_id)}]
  identifiers: [{{field: EmailAddress, property: email}}]
  mappings: [{{field: Name, property: full_name}}]
"""


def test_login_with_env_key_then_status_then_logout(env, emu, monkeypatch, capsys) -> None:  # type: ignore[no-untyped-def]
    monkeypatch.setenv("MY_CM_KEY", emu.api_key)
    assert main(["auth", "login", "--api-key-env", "MY_CM_KEY"]) == 0
    out = capsys.readouterr().out
    assert "✔ saved API key as credential 'default'" in out
    assert emu.client_id in out
    assert env.get("default") == ApiKeyCredential(Secret(emu.api_key))

    assert main(["auth", "status"]) == 0
    out = capsys.readouterr().out
    assert "default: API key, ✔ works" in out

    assert main(["auth", "status", "--json", "--no-check"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["credentials"] == [{"name": "default", "kind": "api_key", "source": str(env.path)}]

    assert main(["auth", "logout"]) == 0
    assert "removed credential 'default'" in capsys.readouterr().out
    assert env.names() == []
    assert main(["auth", "logout"]) == 1


def test_login_refuses_a_wrong_key(env, monkeypatch, capsys) -> None:  # type: ignore[no-untyped-def]
    monkeypatch.setenv("MY_CM_KEY", "wrong-key")
    assert main(["auth", "login", "--api-key-env", "MY_CM_KEY", "--credential", "x"]) == 2
    assert env.names() == []
    assert "wrong-key" not in capsys.readouterr().err


def test_auth_status_reports_refused_and_env_fallback(env, emu, monkeypatch, capsys) -> None:  # type: ignore[no-untyped-def]
    env.put("old", ApiKeyCredential(Secret("revoked-key")))
    monkeypatch.setenv("CM_API_KEY", emu.api_key)
    assert main(["auth", "status"]) == 1
    out = capsys.readouterr().out
    assert (
        "old: API key, ✖ refused by Campaign Monitor: run 'cmtoolkit auth login --credential old'"
        in out
    )
    assert "default: API key, from $CM_API_KEY, ✔ works" in out


def test_status_command_human_and_json(env, emu, tmp_path: Path, capsys) -> None:  # type: ignore[no-untyped-def]
    env.put("default", ApiKeyCredential(Secret(emu.api_key)))
    ws = tmp_path / "ws"
    save_connection(parse_connection(connection_text(emu)), ws / "connections" / "news.yaml")
    assert main(["status", "News", "--workspace", str(ws)]) == 0
    out = capsys.readouterr().out
    assert "✔ import" in out and "– export (not configured)" in out
    assert "Checked: campaign_monitor" in out

    assert main(["status", "news", "--workspace", str(ws), "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["import_ready"] is True and data["errors"] == []
    assert data["checked"][0] == "campaign_monitor"


def test_status_command_reports_errors_and_exits_1(env, emu, tmp_path: Path, capsys) -> None:  # type: ignore[no-untyped-def]
    ws = tmp_path / "ws"
    text = connection_text(emu, list="e" * 32, credential="team")
    save_connection(parse_connection(text), ws / "connections" / "news.yaml")
    assert main(["status", "News", "--workspace", str(ws)]) == 1
    out = capsys.readouterr().out
    assert "✖ import" in out
    assert "✖ campaign_monitor.credential: no credential named 'team'" in out
    assert "cmtoolkit auth login --credential team" in out

    env.put("team", ApiKeyCredential(Secret(emu.api_key)))
    assert main(["status", "News", "--workspace", str(ws), "--json"]) == 1
    data = json.loads(capsys.readouterr().out)
    assert [e["key"] for e in data["errors"]] == ["import.lists[0]"]


def test_status_of_a_broken_file(env, tmp_path: Path, capsys) -> None:  # type: ignore[no-untyped-def]
    path = tmp_path / "ws" / "connections" / "news.yaml"
    path.parent.mkdir(parents=True)
    path.write_text("name: News\ncampaign_monitor: {credentail: default}\n")
    assert main(["status", "news", "--workspace", str(tmp_path / "ws")]) == 2
    err = capsys.readouterr().err
    assert "connections/news.yaml, key 'campaign_monitor.credentail'" in err
    assert "did you mean 'credential'?" in err
