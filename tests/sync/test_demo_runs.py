"""The demo's connection run three times by the engine (the notebooks add nothing to what is
sent): by the third run, nothing Campaign Monitor refuses is sent again, and each goal's preview
counts equal its run's (DESIGN §6, §7; issue 15's must-show)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from cmtoolkit import demo
from cmtoolkit.emulator import DEFAULT_API_KEY
from cmtoolkit.profiles.synthetic import emulator_person_offset
from cmtoolkit.sync import preview, sync
from tests.conftest import make_client

PROFILES, SUBSCRIBERS, SEED = 4000, 2500, 7


def test_third_demo_run_sends_nothing_refused_and_previews_equal_runs(
    emulator_factory: Any, tmp_path: Path, capsys: Any
) -> None:
    offset = emulator_person_offset(PROFILES, SUBSCRIBERS, SUBSCRIBERS // 2)
    emu = emulator_factory(
        seed_size=SUBSCRIBERS, seed=SEED, person_offset=offset, api_key=DEFAULT_API_KEY
    )
    cm = make_client(emu)
    ws = demo.build_workspace(tmp_path / "ws", PROFILES, SEED)
    conn = demo.demo_connection(emu.client_id, emu.list_ids)
    goals = ["import", "export", "targeting"]
    for _ in range(2):
        for goal in goals:
            assert sync(ws.context(conn, cm), goal).ok
    suppressed = 0
    for goal in goals:
        predicted = preview(ws.context(conn, cm), goal).counts
        mark = emu.request_count
        result = sync(ws.context(conn, cm), goal)
        tail = list(emu.requests)[-(emu.request_count - mark) :]
        refused = [r for r in tail if "/import.json" in r[1] and r[2] == 400]
        assert refused == [], (goal, refused)  # no import request carried a refused row
        assert result.counts == predicted, (goal, predicted, result.counts)
        assert result.counts.get("REJECTED", 0) == 0, (goal, result.counts)
        suppressed += result.counts.get("SUPPRESSED", 0)
        print(f"third run, {goal}: {result.counts}")
    assert suppressed > 0  # the seeded unsubscribed/bounced/deleted people were held back
    cm.close()
