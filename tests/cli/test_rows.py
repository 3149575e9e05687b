"""``cmtoolkit rows``: the people a real export run touched, read back from the ledger."""

from __future__ import annotations

import csv
import json
from pathlib import Path
from typing import Any

import nbformat
import pytest
import yaml

from cmtoolkit.cli import main
from cmtoolkit.emulator import BOUNCED
from cmtoolkit.sync import ledger
from cmtoolkit.workspace import Workspace
from tests.sync.test_export import Env, profiles


@pytest.fixture
def rows_ws(emulator: Any, cm: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Env:
    """An export of 4 profiles: person1 bounced in Campaign Monitor (REJECTED 207), p0003 with
    a bad email (INVALID), the others EXPORTED; the connection as a file for the CLI."""
    monkeypatch.setenv("CMTOOLKIT_API_URL", emulator.base_url)
    monkeypatch.setenv("CM_ROWS_KEY", emulator.api_key)
    monkeypatch.setenv("CMTOOLKIT_CREDENTIALS", str(tmp_path / "credentials.json"))
    env = Env(emulator, cm, tmp_path, profiles(4, p0003={"email": ["not-an-email"]}))
    cm.import_subscribers(env.list_id, [{"EmailAddress": "person1@example.com", "Name": "Old"}])
    with emulator.lock:
        lst = next(x for x in emulator.account.clients[0].lists if x.list_id == env.list_id)
        lst.set_state(lst.row_of("person1@example.com"), BOUNCED, int(emulator.now()))
    data = {
        "name": "news-export",
        "campaign_monitor": {"credential": "env:CM_ROWS_KEY", "client_id": env.client_id},
        "export": {
            "segment": "news",
            "lists": [env.list_id],
            "match_property": "email",
            "mappings": [{"value": "property", "property": "full_name", "field": "Name"}],
        },
    }
    (env.ws.connections_dir / "news-export.yaml").write_text(yaml.safe_dump(data))
    assert main(["sync", "news-export", "--goal", "export", "--workspace", str(env.ws.path)]) == 0
    return env


def test_rows_lists_rejected_and_invalid_with_code_and_reason(
    rows_ws: Env, capsys: pytest.CaptureFixture[str]
) -> None:
    ws = str(rows_ws.ws.path)
    capsys.readouterr()
    assert main(["rows", "news-export", "--json", "--workspace", ws]) == 0
    got = {r["profile_id"]: r for r in json.loads(capsys.readouterr().out)}
    assert got["p0001"]["outcome"] in ("REJECTED", "SUPPRESSED")
    assert got["p0001"]["code"] == 207 and got["p0001"]["email"] == "person1@example.com"
    assert got["p0003"]["outcome"] == "INVALID" and got["p0003"]["code"] is None
    assert "not a valid email" in got["p0003"]["reason"]
    assert got["p0000"]["outcome"] == "EXPORTED"

    assert main(["rows", "news-export", "--outcome", "invalid", "--workspace", ws]) == 0
    out = capsys.readouterr().out
    assert "not-an-email" in out and "person1@example.com" not in out


def test_rows_to_csv_and_by_run(
    rows_ws: Env, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    ws = Workspace.open(rows_ws.ws.path)
    with ws.store.connect() as con:
        (run,) = ledger.history(con, "news-export")
    target = tmp_path / "rows.csv"
    args = ["rows", "news-export", "--run", run.run_id, "--csv", str(target)]
    assert main([*args, "--workspace", str(ws.path)]) == 0
    with target.open() as f:
        read = list(csv.DictReader(f))
    assert {r["profile_id"] for r in read} == {"p0000", "p0001", "p0002", "p0003"}
    assert {r["run_id"] for r in read} == {run.run_id}


def test_unknown_run_is_a_clear_error(rows_ws: Env, capsys: pytest.CaptureFixture[str]) -> None:
    code = main(["rows", "news-export", "--run", "nope", "--workspace", str(rows_ws.ws.path)])
    assert code == 2 and "no run 'nope'" in capsys.readouterr().err


def test_rows_html_shows_the_people_not_sent_and_counts_the_rest(rows_ws: Env) -> None:
    from cmtoolkit.batch.reports import Report, add_header
    from cmtoolkit.widgets.rows import rows_html, run_rows, run_rows_html

    ws = Workspace.open(rows_ws.ws.path)
    with ws.store.connect() as con:
        (run,) = ledger.history(con, "news-export")
    text = run_rows_html(ws.store, "news-export", run.run_id)
    assert "Not sent: 2 people" in text and "not-an-email" in text
    assert (
        "person1@example.com" in text
        and "<td style='padding:2px 8px;vertical-align:top'>207" in text
    )
    assert "person0@example.com" not in text  # exported
    one = run_rows(ws.store, "news-export", run.run_id, limit=1)
    assert (one.total, one.rows.height, one.rest) == (2, 1, 1)
    assert "… and 1 more" in rows_html(one) and f"--run {run.run_id}" in rows_html(one)
    assert run_rows_html(ws.store, "news-export", None) == ""  # a preview has no rows

    nb = add_header(nbformat.v4.new_notebook(), Report(run), text)
    assert "Not sent: 2 people" in nb.cells[0].source and "Run FINISHED" in nb.cells[0].source
