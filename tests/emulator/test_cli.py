"""``cmtoolkit emulator serve`` as a real subprocess: URL first, answers, SIGTERM saves state."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import requests

from cmtoolkit.emulator import DEFAULT_API_KEY


def serve(*args: str) -> tuple[subprocess.Popen[str], str]:
    proc = subprocess.Popen(
        [sys.executable, "-m", "cmtoolkit.cli", "emulator", "serve", "--port", "0", *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    assert proc.stdout is not None
    first = proc.stdout.readline().strip()
    return proc, first


def stop(proc: subprocess.Popen[str]) -> int:
    proc.send_signal(signal.SIGTERM)
    return proc.wait(timeout=20)


def test_serve_prints_url_answers_and_persists_state(tmp_path: Path) -> None:
    state = tmp_path / "emulator.json"
    proc, url = serve("--seed-size", "50", "--seed", "4", "--state", str(state))
    try:
        assert url.startswith("http://127.0.0.1:") and url.endswith("/api/v3.3")
        assert not url.endswith(":0/api/v3.3")
        s = requests.Session()
        s.auth = (DEFAULT_API_KEY, "x")
        client_id = s.get(url + "/clients.json", timeout=5).json()[0]["ClientID"]
        list_id = s.get(f"{url}/clients/{client_id}/lists.json", timeout=5).json()[0]["ListID"]
        added = s.post(
            f"{url}/subscribers/{list_id}.json",
            json={"EmailAddress": "persist@example.com", "Name": "Kept", "ConsentToTrack": "Yes"},
            timeout=5,
        )
        assert added.status_code == 201
    finally:
        assert stop(proc) == 0
    assert state.exists()
    logged = proc.stderr.read()
    assert "persist@example.com" not in logged and DEFAULT_API_KEY not in logged

    proc, url2 = serve("--state", str(state))
    try:
        s = requests.Session()
        s.auth = (DEFAULT_API_KEY, "x")
        got = s.get(
            f"{url2}/subscribers/{list_id}.json", params={"email": "persist@example.com"}, timeout=5
        )
        assert got.status_code == 200 and got.json()["Name"] == "Kept"
        assert len(s.get(f"{url2}/lists/{list_id}/active.json", timeout=5).json()["Results"]) > 10
    finally:
        assert stop(proc) == 0


def test_serve_rejects_a_bad_fault_spec() -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "cmtoolkit.cli", "emulator", "serve", "--faults", "teapot:p=1"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 2
    assert "unknown fault kind" in proc.stderr


def test_serve_help_documents_the_fault_spec() -> None:
    out = subprocess.run(
        [sys.executable, "-m", "cmtoolkit.cli", "emulator", "serve", "--help"],
        capture_output=True,
        text=True,
        timeout=60,
    ).stdout
    for word in ("--faults", "429-bare", "truncate", "every=N", "--state", "--token-lifetime"):
        assert word in out
