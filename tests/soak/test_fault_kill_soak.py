"""Fault-and-kill soak: import and export of a few thousand contacts through an emulator that
fails ≥ 10 % of the API calls in mixed ways, with ``cmtoolkit sync`` SIGKILLed at random points
and run again until it finishes, must end exactly where one clean run ends: the same store, the
same Campaign Monitor lists, every ``sum`` applied once, and nothing left behind.

``make test`` runs one round of 3 kills; ``CMTOOLKIT_SOAK=N`` runs N rounds (other seeds).
"""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import duckdb
import pytest
import yaml

from cmtoolkit.emulator import Emulator

ROUNDS = int(os.environ.get("CMTOOLKIT_SOAK", "1") or 1)
KILLS = 3
SEED_SIZE = 3000
FAULTS = "429-bare:p=0.03;429:p=0.02,reset=1;500:p=0.03;503:p=0.02;drop:p=0.03;truncate:p=0.03"
KEY_ENV = "CMTOOLKIT_SOAK_KEY"

#: The CLI with the client's retry waits shortened (same retries, waits of 10-50 ms), so a
#: fault costs milliseconds and the soak stays within make test's budget.
RUNNER = """
import sys
from functools import partial
import cmtoolkit.campaign_monitor.client as client
import cmtoolkit.campaign_monitor.transport as transport
from cmtoolkit.campaign_monitor.retry import RetryPolicy
from cmtoolkit.cli import main

quick = partial(RetryPolicy, base_delay=0.05, max_delay=0.05)
client.RetryPolicy = transport.RetryPolicy = quick
sys.exit(main(sys.argv[1:]))
"""


def workspace(root: Path, emu: Emulator) -> Path:
    ws = root / "ws"
    ws.mkdir(parents=True)
    (ws / "connections").mkdir()
    seed = root / "seed.csv"  # defines the properties; its one profile has no email
    seed.write_text("profile_id,email,full_name,points,interests\nseed0,,Seed,0,\n")
    load = ["profiles", "load", str(seed), "--type", "points=number", "--type", "email=email"]
    assert run_cli([*load, "--workspace", str(ws)], {}).returncode == 0
    (ws / "segments.yaml").write_text("reachable: {property: email, exists: true}\n")
    lists = emu.list_ids
    connection = {
        "name": "soak",
        "id": "5a0c0001",
        "campaign_monitor": {"credential": f"env:{KEY_ENV}", "client_id": emu.client_id},
        "import": {
            "lists": lists[:2],
            "states": ["Active", "Unsubscribed"],
            "allow_create": True,
            "identifiers": [{"field": "EmailAddress", "property": "email"}],
            "mappings": [
                {"field": "Name", "property": "full_name", "rule": "set"},
                {"field": "loyalty points", "property": "points", "rule": "sum"},
                {"field": "interests", "property": "interests", "rule": "add"},
            ],
        },
        "export": {
            "segment": "reachable",
            "lists": [lists[2]],
            "match_property": "email",
            "mappings": [
                {"value": "property", "property": "full_name", "field": "Name"},
                {"value": "property", "property": "points", "field": "loyalty points"},
                {"value": "profile_id", "field": "website"},
            ],
        },
    }
    (ws / "connections" / "soak.yaml").write_text(yaml.safe_dump(connection, sort_keys=False))
    return ws


def run_cli(args: list[str], env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", RUNNER, *args],
        capture_output=True, text=True, timeout=300, env={**os.environ, **env},
    )  # fmt: skip


def sync_args(ws: Path) -> list[str]:
    return ["sync", "soak", "--goal", "all", "--workspace", str(ws)]


def env_for(emu: Emulator) -> dict[str, str]:
    return {"CMTOOLKIT_API_URL": emu.base_url or "", KEY_ENV: emu.api_key}


def store_view(ws: Path) -> dict[str, list[tuple[Any, ...]]]:
    """What the runs leave in the store, without the times they did it at."""
    with duckdb.connect(str(ws / "profiles.duckdb"), read_only=True) as con:
        out = {}
        for table in ("profiles", "import_state", "export_state"):
            columns = [
                f'"{name}"'
                for name, kind, *_ in con.execute(f"DESCRIBE {table}").fetchall()
                if not str(kind).startswith("TIMESTAMP")
            ]
            out[table] = con.execute(
                f"SELECT {', '.join(columns)} FROM {table} ORDER BY ALL"
            ).fetchall()
        return out


def lists_view(emu: Emulator) -> dict[str, list[tuple[Any, ...]]]:
    """Every list's subscribers as Campaign Monitor holds them, without dates."""
    out = {}
    for lst in emu.account.clients[0].lists:
        rows = lst.records(list(range(len(lst.emails))), tracking=True)
        out[lst.title] = sorted(
            (
                r["EmailAddress"],
                r["Name"],
                r["State"],
                tuple(sorted((c["Key"], c["Value"]) for c in r["CustomFields"])),  # type: ignore[union-attr]
            )
            for r in rows
        )
    return out


def scratch_leftovers() -> set[str]:
    return {
        p.name
        for prefix in ("cmtoolkit-import-", "cmtoolkit-export-", "cmtoolkit-run-")
        for p in Path("/tmp").glob(prefix + "*")
    }


@pytest.mark.parametrize("round_", range(ROUNDS))
def test_faults_and_kills_end_where_a_clean_run_ends(round_: int, tmp_path: Path) -> None:
    rng = random.Random(1000 + round_)
    tmp_before = scratch_leftovers()
    clean_emu = Emulator(seed_size=SEED_SIZE, seed=7 + round_)
    faulty_emu = Emulator(seed_size=SEED_SIZE, seed=7 + round_, faults=FAULTS)
    clean_emu.start("127.0.0.1", 0)
    faulty_emu.start("127.0.0.1", 0)
    try:
        clean_ws = workspace(tmp_path / "clean", clean_emu)
        faulty_ws = workspace(tmp_path / "faulty", faulty_emu)

        started = time.monotonic()
        clean = run_cli(sync_args(clean_ws), env_for(clean_emu))
        clean_seconds = time.monotonic() - started
        assert clean.returncode == 0, clean.stderr[-3000:]

        kills = attempts = 0
        while kills < KILLS and attempts < KILLS * 4:
            attempts += 1
            proc = subprocess.Popen(
                [sys.executable, "-c", RUNNER, *sync_args(faulty_ws)],
                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                env={**os.environ, **env_for(faulty_emu)},
            )  # fmt: skip
            try:
                proc.wait(timeout=rng.uniform(0.5, max(1.0, clean_seconds)))
            except subprocess.TimeoutExpired:
                proc.send_signal(signal.SIGKILL)
                proc.wait(timeout=60)
                kills += 1
        finals = 0
        while True:  # run to the end; a run failed by faults past its retries is run again
            finals += 1
            last = run_cli(sync_args(faulty_ws), env_for(faulty_emu))
            if last.returncode == 0:
                break
            assert finals < 10, last.stderr[-3000:]
            assert "Traceback" not in last.stderr, last.stderr[-3000:]

        faults = {f"{r.kind}": r.fired for r in faulty_emu.faults}
        fired, requests = sum(faults.values()), faulty_emu.request_count
        clean_store, faulty_store = store_view(clean_ws), store_view(faulty_ws)
        clean_lists, faulty_lists = lists_view(clean_emu), lists_view(faulty_emu)
        compared = sum(len(v) for v in clean_store.values()) + sum(
            len(v) for v in clean_lists.values()
        )
        print(
            f"\nsoak round {round_}: {kills} kills (of {attempts} runs) + {finals} final run(s); "
            f"{fired} faults injected in {requests} requests ({fired / requests:.0%}) {faults}; "
            f"{compared} rows compared"
        )
        assert kills == KILLS, "each kill must land inside a run"
        assert fired / requests >= 0.10
        assert faulty_store["profiles"] == clean_store["profiles"]
        assert faulty_store["import_state"] == clean_store["import_state"]
        assert faulty_store["export_state"] == clean_store["export_state"]
        assert faulty_lists == clean_lists
        assert len(clean_store["profiles"]) > 2000 and len(clean_lists["Events"]) > 2000

        with duckdb.connect(str(faulty_ws / "profiles.duckdb"), read_only=True) as con:
            points = con.execute(
                "SELECT sum(TRY_CAST(points[1] AS DOUBLE)) FROM profiles"
            ).fetchone()
        with duckdb.connect(str(clean_ws / "profiles.duckdb"), read_only=True) as con:
            expected = con.execute(
                "SELECT sum(TRY_CAST(points[1] AS DOUBLE)) FROM profiles"
            ).fetchone()
        assert points == expected and expected[0] > 0  # every sum applied once

        for ws in (clean_ws, faulty_ws):
            assert list((ws / ".runs").iterdir()) == []
            journal = ws / ".journal"
            assert not journal.exists() or list(journal.iterdir()) == []
        assert scratch_leftovers() <= tmp_before
    finally:
        clean_emu.stop()
        faulty_emu.stop()
