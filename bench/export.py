"""Benchmark: exporting a segment of N profiles (default 1,000,000) to one Campaign Monitor list.

The emulator runs in a subprocess (``cmtoolkit emulator serve``) so the figures are the export's
own: wall time, rows/s, requests and the peak RSS of this process during the run (sampled from
/proc). The floor, measured in the same run, is POSTing the same payloads, pre-built as wire dicts
before the clock starts, through ``CampaignMonitor.import_batch`` one at a time to a second,
empty list. The export keeps ``--max-in-flight`` requests in flight (default 4, the connection
file's default); on loopback the emulator's own processing of each import is what both wait on.

Targets: first run ≤ 1.5× the floor, an unchanged re-run ≤ 0.2× the floor, peak RSS ≤ 2 GB.

    .venv/bin/python bench/export.py [--size N] [--seed S] [--max-in-flight K]
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import orjson
import requests

from cmtoolkit.campaign_monitor import ApiKeyAuth, CampaignMonitor
from cmtoolkit.connection.model import (
    CampaignMonitorSettings,
    Connection,
    ExportGoal,
    ExportMapping,
)
from cmtoolkit.emulator import DEFAULT_API_KEY
from cmtoolkit.profiles import synthetic
from cmtoolkit.secret import Secret
from cmtoolkit.sync import sync
from cmtoolkit.sync.exports import GoalSpec, compute_plan, field_types
from cmtoolkit.workspace import Workspace

FIELDS = [
    ("city", "Text", []),
    ("points", "Number", []),
    ("tier", "MultiSelectOne", list(synthetic.TIERS)),
    ("interests", "MultiSelectMany", list(synthetic.INTERESTS)),
    ("profile id", "Text", []),
]
MAPPINGS = (
    ExportMapping("property", "Name", "full_name"),
    ExportMapping("property", "city", "city"),
    ExportMapping("property", "points", "points"),
    ExportMapping("property", "tier", "tier"),
    ExportMapping("property", "interests", "interests"),
    ExportMapping("profile_id", "profile id"),
)


class PeakRss:
    """Samples this process's resident set size every 20 ms while active."""

    def __init__(self) -> None:
        self.peak = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    @staticmethod
    def now() -> int:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
        return 0

    def _run(self) -> None:
        while not self._stop.wait(0.02):
            self.peak = max(self.peak, self.now())

    def __enter__(self) -> PeakRss:
        self.peak = self.now()
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()
        self.peak = max(self.peak, self.now())


def start_server() -> tuple[subprocess.Popen[str], str]:
    """An empty emulator in a subprocess; returns it and its API base URL."""
    server = subprocess.Popen(
        [sys.executable, "-m", "cmtoolkit.cli", "emulator", "serve", "--port", "0",
         "--seed-size", "0"],
        stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True,
    )  # fmt: skip
    assert server.stdout is not None
    return server, server.stdout.readline().strip()


def prepare(
    cm: CampaignMonitor, root: Path, size: int, seed: int
) -> tuple[Workspace, Connection, list[str]]:
    """Two lists with the fields (``Export`` and ``Floor``), a workspace of ``size`` profiles
    all in segment ``everyone``, and a connection exporting it to the first list."""
    client_id = cm.clients()[0].client_id
    lists = []
    for title in ("Export", "Floor"):
        list_id = cm.create_list(client_id, title)
        for name, kind, options in FIELDS:
            cm.create_custom_field(list_id, name, kind, options)
        lists.append(list_id)
    ws = Workspace.create(root / "ws")
    frame = synthetic.profiles_frame(seed, 0, size)
    ws.store.load(frame, types=synthetic.PROPERTY_TYPES)
    (ws.path / "all.csv").write_text("\n".join(frame.get_column("profile_id").to_list()) + "\n")
    del frame
    (ws.path / "segments.yaml").write_text("everyone:\n  file: all.csv\n")
    ws.segments.refresh("everyone")
    return ws, export_connection(client_id, lists[0], cm.max_in_flight), lists


def export_connection(client_id: str, list_id: str, max_in_flight: int = 4) -> Connection:
    """Segment ``everyone`` to the list by email, with :data:`MAPPINGS`."""
    return Connection(
        name="bench",
        campaign_monitor=CampaignMonitorSettings("default", client_id, max_in_flight=max_in_flight),
        export=ExportGoal(
            lists=(list_id,), segment="everyone", match_property="email", mappings=MAPPINGS
        ),
    )


def planned_payloads(ws: Workspace, conn: Connection, cm: CampaignMonitor) -> list[str]:
    """Every row a full export sends, as the JSON its plan holds."""
    spec = GoalSpec.from_connection(conn)
    with compute_plan(ws.context(conn, cm, full=True), spec, field_types(cm, spec)) as plan:
        return [p for _, batch in plan.sends() for p in batch.get_column("payload").to_list()]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--size", type=int, default=1_000_000)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--max-in-flight", type=int, default=4)
    args = parser.parse_args()
    print(f"load average at start: {' '.join(f'{x:.1f}' for x in os.getloadavg())}")

    server, base_url = start_server()
    try:
        origin = base_url.rsplit("/api/", 1)[0]

        def request_count() -> int:
            return requests.get(origin + "/_emulator/state", timeout=30).json()["request_count"]

        cm = CampaignMonitor(
            ApiKeyAuth(Secret(DEFAULT_API_KEY)), base_url=base_url, max_in_flight=args.max_in_flight
        )
        with tempfile.TemporaryDirectory() as tmp:
            t0 = time.perf_counter()
            ws, conn, lists = prepare(cm, Path(tmp), args.size, args.seed)
            print(f"setup: {args.size:,} profiles in {time.perf_counter() - t0:.1f}s")
            ctx = ws.context(conn, cm)
            figures = {}
            for label in ("first run", "re-run"):
                before = request_count()
                with PeakRss() as rss:
                    t = time.perf_counter()
                    result = sync(ctx, "export")
                    wall = time.perf_counter() - t
                figures[label] = (wall, request_count() - before - 1, rss.peak, result.counts)

            # The floor: the same payloads, pre-built, POSTed one at a time to an empty list.
            payloads = planned_payloads(ws, conn, cm)
            batches = [
                orjson.loads(("[" + ",".join(payloads[i : i + 1000]) + "]").encode())
                for i in range(0, len(payloads), 1000)
            ]
            del payloads
            floor_cm = CampaignMonitor(
                ApiKeyAuth(Secret(DEFAULT_API_KEY)), base_url=base_url, max_in_flight=1
            )
            before = request_count()
            t = time.perf_counter()
            for batch in batches:
                floor_cm.import_batch(lists[1], batch)
            floor = time.perf_counter() - t
            floor_requests = request_count() - before - 1  # minus the state query itself
    finally:
        server.terminate()
        server.wait(timeout=30)

    rows = args.size
    print(f"load average at end: {' '.join(f'{x:.1f}' for x in os.getloadavg())}")
    print(f"floor (import_batch of pre-built payloads): {floor:.1f}s, {rows / floor:,.0f} rows/s, "
          f"{floor_requests} requests")  # fmt: skip
    for label, (wall, reqs, peak, counts) in figures.items():
        nonzero = {k: v for k, v in counts.items() if v}
        print(
            f"{label}: {wall:.1f}s, {rows / wall:,.0f} rows/s, {reqs} requests, "
            f"peak RSS {peak / 2**20:,.0f} MiB, {wall / floor:.2f}x floor, {nonzero}"
        )
    first, rerun = figures["first run"][0], figures["re-run"][0]
    peak = max(f[2] for f in figures.values())
    print(
        "targets: first run <= 1.5x floor: "
        f"{'OK' if first <= 1.5 * floor else 'MISSED'}; re-run <= 0.2x floor: "
        f"{'OK' if rerun <= 0.2 * floor else 'MISSED'}; peak RSS <= 2 GB: "
        f"{'OK' if peak <= 2 * 2**30 else 'MISSED'}"
    )


if __name__ == "__main__":
    main()
