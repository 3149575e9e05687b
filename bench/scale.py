"""How the import and the export scale: time per contact and peak memory at each size.

For each ``--sizes`` entry (default 100,000 and 1,000,000) an emulator subprocess holds one list
of N subscribers (every state) and a workspace holds N profiles, half of them subscribers, as in
``bench/import.py`` (``bench/common.py``); a fresh process then runs the import twice (first
run, re-run with nothing changed) and reports its own peak RSS, so the figure is the import's,
not the set-up's. Loopback, no latency: this measures the toolkit's own work. Every page is
rendered into the emulator's cache first, unless ``--cold-emulator`` (the emulator then renders
every page on every read, on the same cores: use it when the cache would not fit in memory, about
600 bytes a subscriber on top of the emulator's own ~600). ``--export`` measures the export
instead, as ``bench/export.py`` sets it up: N profiles in one segment sent to an empty list (first
run, then the unchanged re-run). Targets (issue 19): time per contact
at 10M ≤ 1.3× that at 1M; peak RSS ≤ 1 GB at 1M, ≤ 2.5 GB at 10M.

    .venv/bin/python bench/scale.py --sizes 1000000,10000000 --cold-emulator
    .venv/bin/python bench/scale.py --sizes 1000000,10000000 --export
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from itertools import pairwise
from pathlib import Path
from typing import Any

from common import (
    cache_mb,
    client,
    import_connection,
    peak_rss_mib,
    person_offset,
    read_all,
    start_emulator,
    the_list,
    workspace_process,
)
from export import export_connection, prepare, start_server

from cmtoolkit.sync import sync
from cmtoolkit.workspace import Workspace


def run_import(workspace: str, base_url: str) -> None:
    """Child process: first run and re-run; prints one JSON line."""
    ws = Workspace(workspace)
    cm = client(base_url)
    conn = import_connection("scale", *the_list(cm))
    ctx = ws.context(conn, cm)
    t = time.perf_counter()
    first = sync(ctx, "import")
    t_first = time.perf_counter() - t
    # Beside the workspace at once: a long run stopped during the re-run keeps this figure.
    (Path(workspace).parent / "first-run.json").write_text(
        json.dumps({"first": t_first, "rss": peak_rss_mib()})
    )
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


def run_export(workspace: str, base_url: str) -> None:
    """Child process: the export's first run and its unchanged re-run; one JSON line."""
    ws = Workspace(workspace)
    cm = client(base_url)
    (account,) = cm.clients()
    (lst,) = [x for x in cm.lists(account.client_id) if x.name == "Export"]
    ctx = ws.context(export_connection(account.client_id, lst.list_id), cm)
    t = time.perf_counter()
    first = sync(ctx, "export")
    t_first = time.perf_counter() - t
    t = time.perf_counter()
    again = sync(ctx, "export")
    t_again = time.perf_counter() - t
    print(
        json.dumps(
            {
                "contacts": sum(first.counts.values()),
                "first": t_first,
                "again": t_again,
                "rss": peak_rss_mib(),
                "counts": {k: v for k, v in first.counts.items() if v},
                "again_counts": {k: v for k, v in again.counts.items() if v},
            }
        )
    )


def child(tmp: str, base_url: str, goal: str) -> dict[str, Any]:
    done = subprocess.run(
        [sys.executable, __file__, "--child", str(Path(tmp) / "ws"), base_url, goal],
        capture_output=True,
        text=True,
    )
    if done.returncode:
        raise RuntimeError(f"the {goal} child failed:\n{done.stderr[-4000:]}")
    out = done.stdout
    result: dict[str, Any] = json.loads(out.strip().splitlines()[-1])
    return result


def measure_export(size: int, seed: int) -> dict[str, Any]:
    t = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="cmtoolkit-scale-") as tmp:
        emulator, base_url = start_server()
        try:
            cm = client(base_url)
            prepare(cm, Path(tmp), size, seed)
            cm.close()
            setup = time.perf_counter() - t
            result = child(tmp, base_url, "export")
        finally:
            emulator.terminate()
            emulator.wait()
    result["setup"] = setup
    return result


def measure(size: int, seed: int, cold: bool) -> dict[str, Any]:
    t = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="cmtoolkit-scale-") as tmp:
        building = workspace_process(Path(tmp), size, seed)  # while the emulator seeds
        emulator, base_url = start_emulator(
            size, seed, person_offset(size), 16 if cold else cache_mb(size)
        )
        try:
            if building.wait():
                raise RuntimeError("building the workspace failed")
            if not cold:  # every page rendered once, so rendering does not compete with the import
                cm = client(base_url)
                read_all(cm, the_list(cm)[1])
                cm.close()
            setup = time.perf_counter() - t
            result = child(tmp, base_url, "import")
        finally:
            emulator.terminate()
            emulator.wait()
    result["setup"] = setup
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--sizes", default="100000,1000000", help="comma-separated sizes (at most 10,000,000)"
    )
    parser.add_argument(
        "--cold-emulator", action="store_true", help="no page cache: the emulator renders pages"
    )
    parser.add_argument("--export", action="store_true", help="the export instead of the import")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--child", nargs=3, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        workspace, url, goal = args.child
        (run_export if goal == "export" else run_import)(workspace, url)
        return
    print(f"{'export' if args.export else 'import'}; load average {os.getloadavg()[0]:.1f}")
    rows = []
    for size in (int(s) for s in args.sizes.split(",")):
        if args.export:
            r = measure_export(size, args.seed)
        else:
            r = measure(size, args.seed, args.cold_emulator)
        rows.append((size, r))
        print(
            f"{size:>10,}: first run {r['first']:6.1f} s ({r['first'] / r['contacts'] * 1e6:5.1f}"
            f" µs/contact), re-run {r['again']:6.1f} s ({r['again'] / r['contacts'] * 1e6:5.1f}"
            f" µs/contact), peak RSS {r['rss']:,.0f} MiB (set-up {r['setup']:.0f} s, load"
            f" {os.getloadavg()[0]:.1f})",
            flush=True,
        )
        if "counts" in r:
            print(f"{'':>10}  first run {r['counts']}, re-run {r['again_counts']}", flush=True)
    for (small, a), (big, b) in pairwise(rows):
        for step in ("first", "again"):
            ratio = (b[step] / b["contacts"]) / (a[step] / a["contacts"])
            print(f"{step:>5}: per-contact time at {big:,} / at {small:,} = {ratio:.2f}×")


if __name__ == "__main__":
    main()
