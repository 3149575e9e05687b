"""Alerts: schema validation, conditions, one message per change of state, a real webhook."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from datetime import datetime
from http.server import BaseHTTPRequestHandler, HTTPServer
from typing import Any

import pytest

from cmtoolkit.batch.alerts import AlertSettings, evaluate, process
from cmtoolkit.batch.runner import run_connection
from cmtoolkit.errors import ConnectionFileError
from cmtoolkit.sync import Run, RunState


class Receiver:
    """A webhook receiver on 127.0.0.1 that records every JSON body POSTed to it."""

    def __init__(self) -> None:
        received: list[dict[str, Any]] = []
        self.received = received

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers["Content-Length"]))
                received.append(json.loads(body))
                self.send_response(204)
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                pass

        self.server = HTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hook"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    r = Receiver()
    yield r
    r.close()


def test_the_alerts_schema_is_validated_with_key_paths():
    assert AlertSettings.parse(None) is None
    s = AlertSettings.parse(
        {"rejected_above": 10, "count_deviation": {"runs": 5, "percent": 50}, "webhook": "http://x"}
    )
    assert s == AlertSettings(True, 10, 5, 50, "http://x", None)
    for bad, key in [
        ({"on_falure": True}, "alerts.on_falure"),
        ({"on_failure": "yes"}, "alerts.on_failure"),
        ({"rejected_above": -1}, "alerts.rejected_above"),
        ({"count_deviation": {"runs": 0, "percent": 5}}, "alerts.count_deviation.runs"),
        ({"count_deviation": {"runs": 3}}, "alerts.count_deviation.percent"),
        ({"webhook": "ftp://x"}, "alerts.webhook"),
        ({"command": ""}, "alerts.command"),
    ]:
        with pytest.raises(ConnectionFileError) as info:
            AlertSettings.parse(bad, file="connections/x.yaml")
        assert info.value.key == key and "connections/x.yaml" in str(info.value)


def run_of(
    state: RunState,
    counts: dict[str, int] | None = None,
    *,
    goal: str = "import",
    error: str | None = None,
) -> Run:
    return Run("news", goal, state, counts or {}, datetime(2026, 12, 1, 3), error=error)


def test_conditions():
    s = AlertSettings(True, 10, 3, 50)
    ok = run_of(RunState.FINISHED, {"EXPORTED": 100, "REJECTED": 11})
    got = evaluate(s, ok, [100, 100, 100, 5000])
    assert got["failure"] is None and got["rejected"] is not None
    assert got["count_deviation"] is None  # 111 vs 100: 11%; the 4th (oldest) run is outside
    got = evaluate(s, ok, [40, 40, 40])
    assert "178% off" in got["count_deviation"].message
    assert "rejected" not in evaluate(s, run_of(RunState.FAILED, error="x"), [100])
    assert evaluate(s, run_of(RunState.FINISHED, {"A": 300}), [100])["count_deviation"]
    assert "count_deviation" not in evaluate(s, run_of(RunState.FINISHED, {"A": 1}), [])


def test_one_alert_per_change_of_state_and_a_recovery(tmp_path):
    sent: list[dict[str, Any]] = []
    s = AlertSettings(on_failure=True, webhook="http://unused")

    def run(state: RunState) -> dict[str, Any] | None:
        result = run_of(state, error="boom")
        return process(tmp_path, s, result, send=lambda _s, p: sent.append(p))

    assert run(RunState.FINISHED) is None
    assert run(RunState.FAILED)["event"] == "alert"
    assert run(RunState.FAILED) is None and run(RunState.FAILED) is None
    assert run(RunState.FINISHED)["event"] == "recovered"
    assert run(RunState.FINISHED) is None
    assert [p["event"] for p in sent] == ["alert", "recovered"]
    # goals are tracked apart: an export failing does not "recover" the import
    other = run_of(RunState.FAILED, goal="export", error="x")
    assert process(tmp_path, s, other, send=lambda _s, p: sent.append(p))["goal"] == "export"


def test_batch_runs_alert_a_webhook_once_per_state_change(
    make_workspace, notebooks, receiver, tmp_path
):
    out = tmp_path / "command-payloads.jsonl"
    ws = make_workspace(
        alerts={"on_failure": True, "webhook": receiver.url, "command": f"cat >> {out}"}
    )
    for name in ("fails", "fails", "sync_goal", "sync_goal"):
        run_connection(ws.path, "news", "import", notebooks=notebooks(name))
    events = [(p["event"], p["state"]) for p in receiver.received]
    assert events == [("alert", "FAILED"), ("recovered", "FINISHED")]
    first = receiver.received[0]
    assert first["connection"] == "news" and first["goal"] == "import"
    assert first["alerts"][0]["kind"] == "failure" and "always fails" in first["error"]
    assert first["report"].endswith("_import.html") and first["run_id"]
    assert receiver.url not in json.dumps(receiver.received)
    lines = out.read_text().splitlines()
    assert [json.loads(line)["event"] for line in lines] == ["alert", "recovered"]
