"""How the import scales: time per contact and peak memory at each size.

For each ``--sizes`` entry (default 100,000 and 1,000,000) an emulator subprocess holds one list
of N subscribers (every state) and a workspace holds N profiles, half of them subscribers, as in
``bench/import.py``; a fresh process then runs the import twice (first run, re-run with nothing
changed) and reports its own peak RSS, so the figure is the import's, not the set-up's. Loopback,
no latency: this measures the toolkit's own work. Targets (issue 19): time per contact at the
largest size ≤ 1.3× that at the size below it; peak RSS ≤ 1 GB at 1M. The emulator seeds at most
1,000,000 subscribers, so 10M is not measured here yet.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import resource
import subprocess
import sys
import tempfile
import time
from itertools import pairwise
from pathlib import Path

from cmtoolkit.campaign_monitor import ApiKeyAuth, CampaignMonitor
from cmtoolkit.connection.model import (
    CampaignMonitorSettings,
    Connection,
    Identifier,
    ImportGoal,
)
from cmtoolkit.emulator import DEFAULT_API_KEY
from cmtoolkit.profiles.synthetic import emulator_person_offset, write_profiles
from cmtoolkit.secret import Secret
from cmtoolkit.sync import sync
from cmtoolkit.workspace import Workspace

# bench/import.py's list, mappings and emulator start (its name is a keyword: load it by path).
_spec = importlib.util.spec_from_file_location(
    "bench_import", Path(__file__).with_name("import.py")
)
assert _spec is not None and _spec.loader is not None
_import_bench = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(_import_bench)
MAPPINGS, STATES, start_emulator = (
    _import_bench.MAPPINGS,
    _import_bench.STATES,
    _import_bench.start_emulator,
)


def peak_rss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def run_import(workspace: str, base_url: str) -> None:
    """Child process: first run and re-run; prints one JSON line."""
    ws = Workspace(workspace)
    cm = CampaignMonitor(ApiKeyAuth(Secret(DEFAULT_API_KEY)), base_url=base_url)
    (client,) = cm.clients()
    (lst,) = cm.lists(client.client_id)
    conn = Connection(
        name="scale",
        campaign_monitor=CampaignMonitorSettings("default", client.client_id),
        import_=ImportGoal(
            lists=(lst.list_id,),
            states=STATES,
            identifiers=(Identifier("EmailAddress", "email"),),
            allow_create=True,
            save_list_names_to="cm_lists",
            mappings=MAPPINGS,
        ),
    )
    ctx = ws.context(conn, cm)
    t = time.perf_counter()
    first = sync(ctx, "import")
    t_first = time.perf_counter() - t
    t = time.perf_counter()
    again = sync(ctx, "import")
    t_again = time.perf_counter() - t
    contacts = sum(first.counts.values())
    assert again.counts["UNCHANGED"] == contacts - again.counts["NO_IDENTIFIER"]
    print(
        json.dumps(
            {"contacts": contacts, "first": t_first, "again": t_again, "rss": peak_rss_mib()}
        )
    )


def measure(size: int, seed: int) -> dict[str, float]:
    offset = emulator_person_offset(size, size, 0.5)
    emulator, base_url = start_emulator(size, seed, offset, max(64, size * 600 // 2**20))
    try:
        with tempfile.TemporaryDirectory(prefix="cmtoolkit-scale-") as tmp:
            parquet = write_profiles(Path(tmp) / "p.parquet", size, seed=seed, email_noise=0.05)
            Workspace.create(Path(tmp) / "ws").store.load(parquet)
            # Warm the emulator's page cache so its rendering does not compete with the import.
            cm = CampaignMonitor(ApiKeyAuth(Secret(DEFAULT_API_KEY)), base_url=base_url)
            (client,) = cm.clients()
            (lst,) = cm.lists(client.client_id)
            for _ in cm.subscriber_frames_many([(lst.list_id, s) for s in STATES]):
                pass
            cm.close()
            out = subprocess.run(
                [sys.executable, __file__, "--child", str(Path(tmp) / "ws"), base_url],
                check=True,
                capture_output=True,
                text=True,
            ).stdout
    finally:
        emulator.terminate()
        emulator.wait()
    result: dict[str, float] = json.loads(out.strip().splitlines()[-1])
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--sizes", default="100000,1000000", help="comma-separated sizes (at most 1,000,000)"
    )
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--child", nargs=2, metavar=("WORKSPACE", "URL"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        run_import(*args.child)
        return
    rows = []
    for size in (int(s) for s in args.sizes.split(",")):
        r = measure(size, args.seed)
        rows.append((size, r))
        print(
            f"{size:>10,}: first run {r['first']:6.1f} s ({r['first'] / r['contacts'] * 1e6:5.1f}"
            f" µs/contact), re-run {r['again']:6.1f} s ({r['again'] / r['contacts'] * 1e6:5.1f}"
            f" µs/contact), peak RSS {r['rss']:,.0f} MiB",
            flush=True,
        )
    for (small, a), (big, b) in pairwise(rows):
        for step in ("first", "again"):
            ratio = (b[step] / b["contacts"]) / (a[step] / a["contacts"])
            print(f"{step:>5}: per-contact time at {big:,} / at {small:,} = {ratio:.2f}×")


if __name__ == "__main__":
    main()
