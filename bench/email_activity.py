"""Email behaviour at scale: ``--size`` subscribers × 20 sent campaigns into a ``--size``-profile
store (every subscriber is a profile), through the import goal with ``email_activity``.

An emulator subprocess (``cmtoolkit emulator serve``) holds one list; its 20 seeded campaigns all
went to it, and their events are generated lazily from the seed (a million subscribers give
tens of millions of possible events, a few million actual ones). The set-up (the profiles
written and loaded) happens here; what is measured runs in fresh child processes, so each
reports its own peak RSS (as ``bench/scale.py`` does), not the set-up's.

Measured, in this order:

1. floor (one child): every activity page (20 campaigns × opens, clicks, bounces, unsubscribes,
   since the first run's lower bound) read through the client (``campaign_event_frames``, the
   path the phase reads) and thrown away; and the list's Active pages (``subscriber_frames``);
2. import (another child): the first run (the list read, matching, the events written, three
   derived properties), the phase's own time (staging + apply) timed apart; then one new
   campaign is sent (``POST /_emulator/campaigns``) and the re-run. The child's peak RSS is
   taken per step (``/proc/self/status`` VmHWM, reset between steps through ``clear_refs``).

Targets (issue 17): the activity phase of the first run ≤ 2× its floor (the same pages read
through the client alone), the re-run's phase ≤ 0.1× the first's, the import's peak RSS ≤ 1.5 GB.

    .venv/bin/python bench/email_activity.py --size 100000
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import requests

from cmtoolkit.campaign_monitor import ApiKeyAuth, CampaignMonitor
from cmtoolkit.connection.activity import EmailActivity
from cmtoolkit.connection.model import CampaignMonitorSettings, Connection, Identifier, ImportGoal
from cmtoolkit.emulator import DEFAULT_API_KEY
from cmtoolkit.profiles.synthetic import write_profiles
from cmtoolkit.secret import Secret
from cmtoolkit.sync import sync
from cmtoolkit.sync.activity import EmailActivityPhase
from cmtoolkit.workspace import Workspace

SINCE = "2025-01-01"  # the seeded campaigns went out in 2025 (emulator/seeding.py)
EVENTS = ("open", "click", "bounce", "unsubscribe")
PROPERTIES = (
    ("last_open", "cm_last_open"),
    ("opens_90d", "cm_opens_90d"),
    ("clicked_campaigns", "cm_clicked_campaigns"),
)
RSS_TARGET_MIB = 1536


def _status_mib(field: str) -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1]) / 1024
    return 0.0


class Peaks:
    """This process's peak RSS per step: VmHWM read, then reset (``clear_refs`` 5)."""

    def __init__(self) -> None:
        self.steps: dict[str, float] = {}
        self.mark("start")

    def mark(self, step: str) -> None:
        """The peak since the previous mark is ``step``'s."""
        self.steps[step] = max(self.steps.get(step, 0.0), _status_mib("VmHWM"))
        Path("/proc/self/clear_refs").write_text("5")

    @property
    def peak(self) -> float:
        return max(self.steps.values())


class PhaseTimer:
    """Adds up the time spent in the activity phase's staging and apply (the import's list read
    and merge are timed apart), and marks the RSS peaks around them."""

    def __init__(self, peaks: Peaks) -> None:
        self.peaks = peaks
        self.parts = {"stage": 0.0, "apply": 0.0}
        self.run = "first"
        for name in self.parts:
            original = getattr(EmailActivityPhase, name)
            setattr(EmailActivityPhase, name, self._timed(name, original))

    def _timed(self, name: str, fn: Callable[..., Any]) -> Callable[..., Any]:
        before = {"stage": "list read", "apply": "list plan+apply"}[name]

        def wrapper(*args: Any, **kwargs: Any) -> Any:
            self.peaks.mark(f"{self.run}: {before}")
            t = time.perf_counter()
            try:
                return fn(*args, **kwargs)
            finally:
                self.parts[name] += time.perf_counter() - t
                self.peaks.mark(f"{self.run}: activity {name}")

        return wrapper

    def take(self) -> tuple[float, dict[str, float]]:
        """The phase's seconds since the last take, and how they split."""
        parts, self.parts = self.parts, dict.fromkeys(self.parts, 0.0)
        return sum(parts.values()), parts


def client(base_url: str) -> tuple[CampaignMonitor, str, str]:
    cm = CampaignMonitor(ApiKeyAuth(Secret(DEFAULT_API_KEY)), base_url=base_url)
    (c,) = cm.clients()
    (lst,) = cm.lists(c.client_id)
    return cm, c.client_id, lst.list_id


def settings() -> EmailActivity:
    return EmailActivity(SINCE, EVENTS, PROPERTIES)


def floor_child(base_url: str) -> dict[str, Any]:
    """The same pages read through the client alone."""
    peaks = Peaks()
    cm, client_id, list_id = client(base_url)
    start = settings().start(datetime.now(UTC).replace(tzinfo=None))
    t = time.perf_counter()
    events = pages = 0
    for c in cm.campaigns(client_id):
        for event in EVENTS:
            for frame in cm.campaign_event_frames(c.campaign_id, event, since=start):
                events += frame.height
                pages += 1
    floor = time.perf_counter() - t
    t = time.perf_counter()
    contacts = sum(f.height for f in cm.subscriber_frames(list_id, "Active"))
    list_floor = time.perf_counter() - t
    peaks.mark("reads")
    return {
        "events": events,
        "pages": pages,
        "floor": floor,
        "contacts": contacts,
        "list_floor": list_floor,
        "rss": peaks.peak,
    }


def import_child(base_url: str, workspace: str) -> dict[str, Any]:
    """First run, one campaign sent, re-run: times, the phase's split, peaks per step."""
    peaks = Peaks()
    timer = PhaseTimer(peaks)
    cm, client_id, list_id = client(base_url)
    conn = Connection(
        name="bench",
        campaign_monitor=CampaignMonitorSettings("default", client_id),
        import_=ImportGoal(
            lists=(list_id,),
            states=("Active",),
            identifiers=(Identifier("EmailAddress", "email"),),
            email_activity=settings(),
        ),
    )
    ctx = Workspace(workspace).context(conn, cm)
    t = time.perf_counter()
    first = sync(ctx, "import")
    t_first = time.perf_counter() - t
    peaks.mark("first: commit")
    phase_first, split_first = timer.take()
    origin = base_url.split("/api/")[0]
    requests.post(f"{origin}/_emulator/campaigns", json={"name": "Bench extra"}).raise_for_status()
    timer.run = "re-run"
    t = time.perf_counter()
    again = sync(ctx, "import")
    t_again = time.perf_counter() - t
    peaks.mark("re-run: commit")
    phase_again, split_again = timer.take()
    return {
        "first": first.details["email_activity"],
        "again": again.details["email_activity"],
        "t_first": t_first,
        "t_again": t_again,
        "phase_first": phase_first,
        "split_first": split_first,
        "phase_again": phase_again,
        "split_again": split_again,
        "rss_steps": peaks.steps,
        "rss": peaks.peak,
    }


def child(*args: str) -> dict[str, Any]:
    out = subprocess.run(
        [sys.executable, __file__, "--child", *args], check=True, stdout=subprocess.PIPE, text=True
    ).stdout
    result: dict[str, Any] = json.loads(out.strip().splitlines()[-1])
    return result


def start_emulator(size: int, seed: int) -> tuple[subprocess.Popen[str], str]:
    proc = subprocess.Popen(
        [
            sys.executable, "-m", "cmtoolkit.cli", "emulator", "serve", "--port", "0",
            "--seed-size", str(size), "--seed", str(seed), "--lists", "Newsletter",
        ],
        stdout=subprocess.PIPE,
        text=True,
    )  # fmt: skip
    assert proc.stdout is not None
    return proc, proc.stdout.readline().strip()


def split(parts: dict[str, float]) -> str:
    return ", ".join(f"{k} {v:.2f} s" for k, v in parts.items())


def report(size: int, f: dict[str, Any], r: dict[str, Any]) -> None:
    floor = f["floor"]
    print(f"activity: {f['events']:,} events in {f['pages']:,} pages (20 campaigns × 4 kinds)")
    print(f"first run: {r['first']}")
    print(f"re-run:    {r['again']}")
    print(
        f"floor (activity pages through the client) {floor:7.2f} s  {f['events'] / floor:,.0f} ev/s"
    )
    print(f"floor (list, {f['contacts']:,} Active)        {f['list_floor']:7.2f} s")
    ratio = r["phase_first"] / floor
    ok = "ok" if ratio <= 2 else "OVER TARGET"
    print(f"first run: phase {r['phase_first']:7.2f} s = {ratio:4.2f}× floor (≤ 2×) {ok}")
    print(f"           ({split(r['split_first'])})")
    both = r["t_first"] / (floor + f["list_floor"])
    print(f"           whole import {r['t_first']:7.2f} s = {both:4.2f}× both floors")
    ratio = r["phase_again"] / r["phase_first"]
    ok = "ok" if ratio <= 0.1 else "OVER TARGET"
    print(f"re-run:    phase {r['phase_again']:7.2f} s = {ratio:4.3f}× the first (≤ 0.1×) {ok}")
    print(f"           ({split(r['split_again'])})")
    print(f"           whole import {r['t_again']:7.2f} s (the list re-read included)")
    ok = "ok" if r["rss"] <= RSS_TARGET_MIB else "OVER TARGET"
    print(f"peak RSS, import process: {r['rss']:,.0f} MiB (≤ {RSS_TARGET_MIB}) {ok}")
    for step, mib in r["rss_steps"].items():
        print(f"           {step:<28} {mib:7,.0f} MiB")
    print(f"peak RSS, floor process:  {f['rss']:,.0f} MiB; load average {os.getloadavg()}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--size", type=int, default=1_000_000)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--child", nargs="+", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        kind, *rest = args.child
        out = floor_child(*rest) if kind == "floor" else import_child(*rest)
        print(json.dumps(out))
        return
    size, seed = args.size, args.seed
    t = time.perf_counter()
    emulator, base_url = start_emulator(size, seed)
    try:
        with tempfile.TemporaryDirectory(prefix="cmtoolkit-bench-") as tmp:
            ws = Workspace.create(Path(tmp) / "ws")
            ws.store.load(write_profiles(Path(tmp) / "profiles.parquet", size, seed=seed))
            setup = time.perf_counter() - t
            print(f"setup: {size:,} profiles, emulator at {base_url} ({setup:.1f} s)")
            print(f"load average {os.getloadavg()}", flush=True)
            f = child("floor", base_url)
            r = child("import", base_url, str(Path(tmp) / "ws"))
    finally:
        emulator.terminate()
        emulator.wait()
    report(size, f, r)


if __name__ == "__main__":
    main()
