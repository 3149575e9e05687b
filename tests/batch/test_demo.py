"""``cmtoolkit demo`` end to end (smaller than the default) and the CI report checker."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from cmtoolkit.batch import check_report


@pytest.mark.slow
def test_demo_runs_the_batch_job_and_its_reports_pass_the_checker(tmp_path):
    ws = tmp_path / "ws"
    env = {k: v for k, v in os.environ.items() if not k.startswith("CMTOOLKIT_")}
    done = subprocess.run(
        [sys.executable, "-m", "cmtoolkit.cli", "demo", "--workspace", str(ws),
         "--profiles", "4000", "--subscribers", "2500"],
        capture_output=True, text=True, env=env, timeout=600, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr
    out = done.stdout
    for goal in ("import", "export", "targeting"):
        assert f"[demo] {goal}: FINISHED" in out and f"[demo] {goal} report: {ws}" in out
    assert (
        "[demo] emulator stopped" in out and f"[demo] index: {ws / 'reports' / 'index.html'}" in out
    )
    assert check_report.main([str(ws)]) == 0

    # the checker does catch what must not be shared
    summary = json.loads(sorted((ws / "reports" / "demo").glob("*_import.json"))[-1].read_text())
    page = (ws / "reports" / summary["html"]).read_text()
    bad = page.replace("</main>", '<div class="celltag_injected-parameters"></div></main>')
    assert any("injected-parameters" in p for p in check_report.check_page(bad, summary))
    assert check_report.check_page(page, summary, secrets=("FINISHED",)) == ["holds a secret"]


def test_the_demo_keeps_a_connection_file_the_user_edited(tmp_path, capsys):
    from cmtoolkit.demo import write_connection
    from cmtoolkit.workspace import Workspace

    ws = Workspace(tmp_path / "ws")
    ws.connections_dir.mkdir(parents=True)
    client, lists = "a" * 32, ["b" * 32, "c" * 32, "d" * 32]
    path = write_connection(ws, client, lists)
    first = path.read_text()
    assert "credential: cmtoolkit-demo" in first and "env:" not in first
    assert write_connection(ws, client, lists) == path and path.read_text() == first  # same
    edited = first.replace("schedule: 0 3 * * *", "schedule: 30 6 * * 1")
    assert edited != first
    path.write_text(edited)
    capsys.readouterr()
    write_connection(ws, client, lists)
    assert path.read_text() == edited
    assert "kept as it is, not overwritten" in capsys.readouterr().out


def test_the_demo_stores_its_credential_and_never_replaces_another(tmp_path):
    from cmtoolkit.credentials import ApiKeyCredential, CredentialStore
    from cmtoolkit.demo import CREDENTIAL, store_credential
    from cmtoolkit.emulator import DEFAULT_API_KEY
    from cmtoolkit.errors import ConfigurationError
    from cmtoolkit.secret import Secret

    store = CredentialStore(tmp_path / "credentials.json")
    store_credential(store)
    found = store.get(CREDENTIAL)
    assert isinstance(found, ApiKeyCredential) and found.api_key.reveal() == DEFAULT_API_KEY
    store_credential(store)  # again: nothing changes
    store.put(CREDENTIAL, ApiKeyCredential(Secret("someone-elses-key")))
    with pytest.raises(ConfigurationError, match="will not replace it"):
        store_credential(store)
    assert store.get(CREDENTIAL).api_key.reveal() == "someone-elses-key"
