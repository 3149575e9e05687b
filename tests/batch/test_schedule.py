"""Schedules: cron in UTC, the crontab entry (idempotent, on a file), the queueing scheduler."""

from __future__ import annotations

from datetime import datetime, timedelta
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
import yaml

from cmtoolkit.batch.scheduler import Cron, Scheduler, crontab_block, merge_crontab
from cmtoolkit.cli import main
from cmtoolkit.errors import ConfigurationError


def test_cron_next_run_times():
    at = datetime(2026, 11, 26, 17, 0)  # a Thursday
    assert Cron.parse("0 3 * * *").next_after(at) == datetime(2026, 11, 27, 3, 0)
    assert Cron.parse("*/15 9-17 * * mon-fri").next_after(datetime(2026, 11, 28, 12)) == (
        datetime(2026, 11, 30, 9, 0)
    )
    assert Cron.parse("@hourly").next_after(at) == datetime(2026, 11, 26, 18, 0)
    assert Cron.parse("0 0 1 * 1").next_after(at) == datetime(2026, 11, 30)  # day OR weekday
    assert Cron.parse("0 0 29 2 *").next_after(at) == datetime(2028, 2, 29)
    assert Cron.parse("0 0 * * 7").next_after(at) == datetime(2026, 11, 29)  # 7 = Sunday
    assert len(Cron.parse("*/10 * * * *").fires_between(at, at + timedelta(hours=1))) == 6
    with pytest.raises(ConfigurationError, match="hour field"):
        Cron.parse("0 25 * * *")


def write(ws: Path, name: str, schedule: str | None, enabled: bool = True) -> None:
    (ws / "connections").mkdir(parents=True, exist_ok=True)
    data: dict[str, Any] = {
        "name": name,
        "enabled": enabled,
        "campaign_monitor": {"credential": "env:X"},
        "import": {
            "lists": ["a" * 32],
            "identifiers": [{"field": "EmailAddress", "property": "e"}],
        },
    }
    if schedule:
        data["schedule"] = schedule
    (ws / "connections" / f"{name}.yaml").write_text(yaml.safe_dump(data))


def test_schedule_list_shows_next_runs_of_enabled_connections(tmp_path, capsys):
    write(tmp_path, "nightly", "0 3 * * *")
    write(tmp_path, "hourly", "@hourly")
    write(tmp_path, "off", "0 3 * * *", enabled=False)
    write(tmp_path, "manual", None)
    assert main(["schedule", "list", "--workspace", str(tmp_path), "--json"]) == 0
    import json

    got = json.loads(capsys.readouterr().out)
    assert [g["connection"] for g in got] == ["hourly", "nightly"]
    assert got[1]["schedule"] == "0 3 * * *" and got[1]["next_run"].endswith("03:00:00Z")


def test_schedule_install_is_idempotent_and_removable(tmp_path, capsys):
    ws = tmp_path / "ws"
    write(ws, "nightly", "0 3 * * *")
    crontab = tmp_path / "crontab"
    crontab.write_text("MAILTO=ops@example.com\n15 4 * * * /usr/bin/backup\n")
    args = ["schedule", "install", "--workspace", str(ws), "--crontab-file", str(crontab)]
    assert main(args) == 0
    once = crontab.read_text()
    assert once.startswith("MAILTO=ops@example.com\n15 4 * * * /usr/bin/backup\n")
    assert once.count("schedule run --once") == 1 and f"# >>> cmtoolkit schedule {ws}" in once
    assert main(args) == 0
    assert crontab.read_text() == once
    assert "already up to date" in capsys.readouterr().out
    other = tmp_path / "other"
    write(other, "x", "@daily")
    assert main([*args[:2], "--workspace", str(other), "--crontab-file", str(crontab)]) == 0
    assert crontab.read_text().count("schedule run --once") == 2
    assert main([*args, "--remove"]) == 0
    after = crontab.read_text()
    assert str(ws) + " " not in after and f"--workspace {other}" in after
    assert "/usr/bin/backup" in after
    assert main(["schedule", "install", "--workspace", str(ws), "--print"]) == 0
    assert "* * * * *" in capsys.readouterr().out


def test_merge_crontab_replaces_only_its_block(tmp_path):
    block = crontab_block(tmp_path, executable="/bin/cmtoolkit")
    text = merge_crontab("", tmp_path, block)
    assert merge_crontab(text, tmp_path, block) == text
    assert merge_crontab(text, tmp_path, None) == ""


class FakeClock:
    def __init__(self, now: datetime) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now


def test_scheduler_runs_due_connections_one_at_a_time_and_queues_overlaps(tmp_path):
    write(tmp_path, "a", "0 3 * * *")
    write(tmp_path, "b", "0 3 * * *")
    write(tmp_path, "c", "*/5 * * * *")
    clock = FakeClock(datetime(2026, 11, 26, 2, 58))
    running: list[str] = []
    log: list[tuple[str, datetime]] = []

    def run(name: str) -> None:
        assert not running, "one run at a time"
        running.append(name)
        log.append((name, clock.now))
        clock.now += timedelta(minutes=4 if name in "ab" else 1)
        running.pop()

    s = Scheduler(tmp_path, run, clock=clock, sleep=lambda _s: None)
    assert s.tick() == []  # 02:58: nothing due
    clock.now = datetime(2026, 11, 26, 3, 0, 20)
    # 03:00: a, b and c are due and queued; c falls due again at 03:05 while a and b run (4 min
    # each): it is already queued, so that fire coalesces into the one queued run
    assert s.tick() == ["a", "b", "c"]
    assert [t.strftime("%H:%M") for _, t in log] == ["03:00", "03:04", "03:08"]
    assert s.tick() == []  # 03:09: nothing new is due
    clock.now = datetime(2026, 11, 26, 3, 10, 30)
    assert s.tick() == ["c"]


def test_a_second_scheduler_does_not_rerun_a_handled_fire(tmp_path):
    write(tmp_path, "a", "0 3 * * *")
    at = FakeClock(datetime(2026, 11, 26, 3, 0, 30))
    ran: list[str] = []
    Scheduler(tmp_path, ran.append, clock=at).tick()
    Scheduler(tmp_path, ran.append, clock=at).tick()  # cron's next --once in the same minute
    assert ran == ["a"]


def test_schedule_run_once_uses_the_batch_runner(tmp_path, monkeypatch, capsys):
    write(tmp_path, "a", "* * * * *")
    calls: list[str] = []

    def fake(workspace: Any, name: str, goal: str, **kw: Any) -> Any:
        calls.append(name)

        return SimpleNamespace(runs=[], reports=[])

    monkeypatch.setattr("cmtoolkit.batch.runner.run_connection", fake)
    assert main(["schedule", "run", "--once", "--workspace", str(tmp_path)]) == 0
    assert calls == ["a"]


def test_a_broken_connection_file_is_skipped_reported_and_alerted_once(
    tmp_path, capsys, monkeypatch
):
    write(tmp_path, "a", "0 3 * * *")
    write(tmp_path, "z", "0 3 * * *")
    broken = tmp_path / "connections" / "m.yaml"
    broken.write_text(
        "name: m\nschedule: '0 3 * * *'\ncampaign_monitor: {credential: env:X}\n"
        "bogus_key: 1\nalerts: {webhook: 'http://127.0.0.1:9/hook'}\n"
    )
    assert main(["schedule", "list", "--workspace", str(tmp_path), "--json"]) == 0
    out = capsys.readouterr()
    import json

    assert [g["connection"] for g in json.loads(out.out)] == ["a", "z"]
    assert "skipped" in out.err and "m.yaml" in out.err and "bogus_key" in out.err
    assert "Traceback" not in out.err

    sent: list[dict[str, Any]] = []
    ran: list[str] = []
    at = FakeClock(datetime(2026, 11, 26, 3, 0, 30))
    s = Scheduler(tmp_path, ran.append, clock=at, send=lambda _settings, p: sent.append(p))
    assert s.tick() == ["a", "z"]  # the others run
    assert [b.file.name for b in s.broken] == ["m.yaml"]
    (payload,) = sent
    assert payload["state"] == "BROKEN" and "bogus_key" in payload["error"]
    at.now += timedelta(days=1)
    assert s.tick() == ["a", "z"] and len(sent) == 1  # alerted once, not every tick

    broken.write_text(broken.read_text().replace("bogus_key: 1\n", ""))
    at.now += timedelta(days=1)
    s.tick()
    assert s.broken == [] and "m" in ran  # fixed: scheduled again, its alert cleared
    broken.write_text("name: [unclosed\n")
    at.now += timedelta(days=1)
    s.tick()
    assert len(sent) == 1  # broken again but the alerts section is unreadable: logged only
    fake = lambda _ws, name, _goal, **_kw: SimpleNamespace(runs=[], reports=[])  # noqa: E731
    monkeypatch.setattr("cmtoolkit.batch.runner.run_connection", fake)
    assert main(["schedule", "run", "--once", "--workspace", str(tmp_path)]) == 0
    assert "m.yaml" in capsys.readouterr().err
