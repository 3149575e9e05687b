"""``cmtoolkit connections new NAME`` (flags, prompts, never over a file) and ``connections list``
through the real CLI, against the emulator."""

from __future__ import annotations

from pathlib import Path

import pytest

from cmtoolkit.cli import main
from cmtoolkit.cli.connection_files import create_connection
from cmtoolkit.connection.file import load_connection
from cmtoolkit.emulator import DEFAULT_API_KEY
from cmtoolkit.errors import ConfigurationError, CredentialError


@pytest.fixture
def env(emulator, monkeypatch, tmp_path):
    monkeypatch.setenv("CMTOOLKIT_API_URL", emulator.base_url)
    monkeypatch.setenv("CMTK_NEW_KEY", emulator.api_key)
    monkeypatch.setenv("CMTOOLKIT_CREDENTIALS", str(tmp_path / "credentials.json"))
    return emulator


def test_new_with_flags_writes_a_valid_disabled_file_with_an_id(env, tmp_path, capsys):
    ws = tmp_path / "ws"
    argv = ["connections", "new", "Newsletter", "--workspace", str(ws), "--no-input",
            "--credential", "env:CMTK_NEW_KEY", "--client", env.client_id,
            "--list", env.list_ids[0], "--list", env.list_ids[1]]  # fmt: skip
    assert main(argv) == 0
    path = ws / "connections" / "newsletter.yaml"
    assert f"✔ created {path}" in capsys.readouterr().out
    conn = load_connection(path)
    assert conn.id and len(conn.id) == 8 and conn.name == "Newsletter" and not conn.enabled
    assert conn.campaign_monitor.credential == "env:CMTK_NEW_KEY"
    assert conn.campaign_monitor.client_id == env.client_id
    assert conn.import_.lists == tuple(env.list_ids[:2])
    text = path.read_text()
    # never over an existing file: the same command fails and changes nothing
    assert main(argv) == 2
    assert "exists: a new connection never replaces one" in capsys.readouterr().err
    assert path.read_text() == text


def test_new_refuses_an_api_key_given_as_the_credential(tmp_path):
    with pytest.raises(CredentialError, match="looks like a secret") as info:
        create_connection(tmp_path, "x", credential=DEFAULT_API_KEY)
    assert DEFAULT_API_KEY not in str(info.value)
    assert not (tmp_path / "connections").exists()


def test_new_asks_for_credential_client_and_lists(env, tmp_path, capsys):
    answers = iter(["env:CMTK_NEW_KEY", "1", "2, 3"])
    asked: list[str] = []

    def ask(prompt: str) -> str:
        asked.append(prompt)
        return next(answers)

    path = create_connection(tmp_path, "prompted", ask=ask)
    shown = capsys.readouterr().out
    assert "1. " in shown and f"({env.client_id})" in shown and f"({env.list_ids[2]})" in shown
    assert [p.split(" ")[0] for p in asked] == ["Credential", "Client", "Lists"]
    conn = load_connection(path)
    assert conn.campaign_monitor.client_id == env.client_id
    assert conn.import_.lists == (env.list_ids[1], env.list_ids[2])


def test_list_shows_every_connection_enabled_goals_and_status(env, tmp_path, capsys):
    ws = tmp_path / "ws"
    create_connection(ws, "ready", credential="env:CMTK_NEW_KEY", client_id=env.client_id,
                      lists=[env.list_ids[0]])  # fmt: skip
    create_connection(ws, "empty", credential="env:CMTK_NEW_KEY")
    (ws / "connections" / "broken.yaml").write_text("name: [oops\n")
    capsys.readouterr()
    assert main(["connections", "list", "--workspace", str(ws), "--check"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].split() == ["connection", "id", "enabled", "goals", "schedule", "(UTC)",
                                "status"]  # fmt: skip
    rows = {line.split()[0]: line for line in lines[1:]}
    assert "✔ ready" in rows["ready"] and " no " in rows["ready"] and "import" in rows["ready"]
    assert "✖" in rows["empty"] and "no goal" in rows["empty"]
    assert "invalid file" in rows["broken"]


def test_new_and_list_are_refused_cleanly_for_a_bad_name(tmp_path):
    with pytest.raises(ConfigurationError):
        create_connection(tmp_path, "", credential="default")
    assert not list(Path(tmp_path).glob("connections/*.yaml"))
