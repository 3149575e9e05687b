"""Email behaviour at scale: ``--size`` subscribers × 20 sent campaigns into a ``--size``-profile
store (every subscriber is a profile), through the import goal with ``email_activity``.

An emulator subprocess (``cmtoolkit emulator serve``) holds one list; its 20 seeded campaigns all
went to it, and their events are generated lazily from the seed (a million subscribers give
tens of millions of possible events, a few million actual ones).

Measured, in this order:

1. floor: every activity page (20 campaigns × opens, clicks, bounces, unsubscribes, since the
   first run's lower bound) read through the client (``campaign_event_frames``, the path the
   phase reads) and thrown away; and the list's Active pages (``subscriber_frames``);
2. first run: the import with ``email_activity`` (the list read, matching, the events written,
   three derived properties). The phase's own time (staging + apply) is timed apart;
3. one new campaign is sent (``POST /_emulator/campaigns``), then the re-run.

Targets (issue 17): the activity phase of the first run ≤ 2× its floor (the same pages read
through the client alone), the re-run's phase ≤ 0.1× the first's, peak RSS ≤ 1.5 GB.

    .venv/bin/python bench/email_activity.py --size 100000
"""

from __future__ import annotations

import argparse
import resource
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


def peak_rss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


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


class PhaseTimer:
    """Adds up the time spent in the activity phase's staging and apply (the import's list read
    and merge are timed apart)."""

    def __init__(self) -> None:
        self.parts = {"stage": 0.0, "apply": 0.0}
        for name in self.parts:
            original = getattr(EmailActivityPhase, name)
            setattr(EmailActivityPhase, name, self._timed(name, original))

    def _timed(self, name: str, fn: Callable[..., Any]) -> Callable[..., Any]:
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            t = time.perf_counter()
            try:
                return fn(*args, **kwargs)
            finally:
                self.parts[name] += time.perf_counter() - t

        return wrapper

    def take(self) -> tuple[float, str]:
        """The phase's seconds since the last take, and how they split."""
        split = ", ".join(f"{k} {v:.2f} s" for k, v in self.parts.items())
        seconds = sum(self.parts.values())
        self.parts = dict.fromkeys(self.parts, 0.0)
        return seconds, split


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--size", type=int, default=1_000_000)
    parser.add_argument("--seed", type=int, default=7)
    args = parser.parse_args()
    size, seed = args.size, args.seed
    timer = PhaseTimer()

    t = time.perf_counter()
    emulator, base_url = start_emulator(size, seed)
    origin = base_url.split("/api/")[0]
    try:
        with tempfile.TemporaryDirectory(prefix="cmtoolkit-bench-") as tmp:
            ws = Workspace.create(Path(tmp) / "ws")
            ws.store.load(write_profiles(Path(tmp) / "profiles.parquet", size, seed=seed))
            print(
                f"setup: {size:,} profiles, emulator at {base_url} "
                f"({time.perf_counter() - t:.1f} s)"
            )
            cm = CampaignMonitor(ApiKeyAuth(Secret(DEFAULT_API_KEY)), base_url=base_url)
            (client,) = cm.clients()
            (lst,) = cm.lists(client.client_id)
            settings = EmailActivity(SINCE, EVENTS, PROPERTIES)
            conn = Connection(
                name="bench",
                campaign_monitor=CampaignMonitorSettings("default", client.client_id),
                import_=ImportGoal(
                    lists=(lst.list_id,),
                    states=("Active",),
                    identifiers=(Identifier("EmailAddress", "email"),),
                    email_activity=settings,
                ),
            )
            start = settings.start(datetime.now(UTC).replace(tzinfo=None))

            def read_activity() -> tuple[int, int]:
                events = pages = 0
                for c in cm.campaigns(client.client_id):
                    for event in EVENTS:
                        for frame in cm.campaign_event_frames(c.campaign_id, event, since=start):
                            events += frame.height
                            pages += 1
                return events, pages

            def read_list() -> int:
                return sum(f.height for f in cm.subscriber_frames(lst.list_id, "Active"))

            t = time.perf_counter()
            events, pages = read_activity()
            floor = time.perf_counter() - t
            t = time.perf_counter()
            contacts = read_list()
            list_floor = time.perf_counter() - t
            rss_floor = peak_rss_mib()

            ctx = ws.context(conn, cm)
            t = time.perf_counter()
            first = sync(ctx, "import")
            t_first = time.perf_counter() - t
            phase_first, split_first = timer.take()
            sent = requests.post(f"{origin}/_emulator/campaigns", json={"name": "Bench extra"})
            sent.raise_for_status()
            t = time.perf_counter()
            again = sync(ctx, "import")
            t_again = time.perf_counter() - t
            phase_again, split_again = timer.take()
    finally:
        emulator.terminate()
        emulator.wait()

    stats, stats_again = first.details["email_activity"], again.details["email_activity"]
    assert isinstance(stats, dict) and isinstance(stats_again, dict)
    print(f"activity: {events:,} events in {pages:,} pages (20 campaigns × {len(EVENTS)} kinds)")
    print(f"first run: {stats}")
    print(f"re-run:    {stats_again}")
    print(f"floor (activity pages through the client) {floor:7.2f} s  {events / floor:,.0f} ev/s")
    print(f"floor (list, {contacts:,} Active)        {list_floor:7.2f} s")
    ok = "ok" if phase_first <= 2 * floor else "OVER TARGET"
    print(f"first run: phase {phase_first:7.2f} s = {phase_first / floor:4.2f}× floor (≤ 2×) {ok}")
    print(f"           ({split_first})")
    print(
        f"           whole import {t_first:7.2f} s = "
        f"{t_first / (floor + list_floor):4.2f}× both floors"
    )
    ratio = phase_again / phase_first
    ok = "ok" if ratio <= 0.1 else "OVER TARGET"
    print(f"re-run:    phase {phase_again:7.2f} s = {ratio:4.3f}× the first (≤ 0.1×) {ok}")
    print(f"           ({split_again})")
    print(f"           whole import {t_again:7.2f} s (the list re-read included)")
    rss = peak_rss_mib()
    ok = "ok" if rss <= 1536 else "OVER TARGET"
    print(f"peak RSS: {rss:,.0f} MiB (after the floor reads: {rss_floor:,.0f}; ≤ 1536) {ok}")


if __name__ == "__main__":
    main()
