"""The import goal at scale: a million subscribers into a million-profile store, 50 % overlap.

An emulator subprocess (``cmtoolkit emulator serve``) holds one list of ``--size`` subscribers
(every state; 7 custom fields: Text, Number, Date, MultiSelectOne, MultiSelectMany, Country,
USState) and a workspace holds ``--size`` synthetic profiles, half of them subscribers (matched by
email; 5 % of the store's emails differ in case or surrounding spaces).

The emulator keeps every rendered page (``--page-cache-mb``) and one read renders them all before
anything is measured, so every measured read, the floor's included, costs the emulator only the
sending: a remote Campaign Monitor's work costs the reading machine nothing, while an emulator
rendering on the same two cores would take processor time from the import. ``--cold-emulator``
measures with the emulator rendering every page on every read instead.

Measured in one run, in this order:

1. floor: every page of the list read through the client (``subscriber_frames_many``, as the
   import reads them) and thrown away;
2. preview: the full dry run (nothing written);
3. first run: the real import (half the contacts create profiles, half enrich them);
4. re-run: nothing changed in Campaign Monitor, so every contact is ``UNCHANGED``.

Each is measured ``--repeat`` times (default 2) and the best time counts, the floor's included:
the machine's noise (±5 % between reads on a shared VM) then moves the ratios less. Before each
repetition of the first run the store file is put back as it was before the first one.

Targets (issue 19): first run ≤ 2.0× the floor, re-run ≤ 1.2×, preview ≤ 1.5×, peak RSS ≤ 1 GB
(this process: the workspace is built in a child, ``common.make_workspace``). Each step's
processor time (this process and the emulator) is printed too, with the lowest ratio it could
reach with every core busy: a ratio under that needs less work, not more overlap.

    .venv/bin/python bench/import.py --size 100000
"""

from __future__ import annotations

import argparse
import os
import shutil
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from common import (
    MAPPINGS,
    STATES,
    cache_mb,
    client,
    cpu_seconds,
    import_connection,
    make_workspace,
    peak_rss_mib,
    person_offset,
    start_emulator,
    the_list,
)

from cmtoolkit.sync import preview, sync

__all__ = ["MAPPINGS", "STATES", "start_emulator"]  # what peers.py and wan.py load from here


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--size", type=int, default=1_000_000)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument(
        "--cold-emulator",
        action="store_true",
        help="the emulator renders every page on every read (it competes for the same cores)",
    )
    parser.add_argument(
        "--repeat", type=int, default=2, help="measure each step this many times, keep the best"
    )
    args = parser.parse_args()
    size, seed = args.size, args.seed

    t = time.perf_counter()
    # Every page rendered once and kept (~430 bytes a subscriber), so the emulator's work does
    # not compete with the reader's: a remote Campaign Monitor's costs the reader nothing.
    cache = 16 if args.cold_emulator else cache_mb(size)
    emulator, base_url = start_emulator(size, seed, person_offset(size), cache)
    try:
        with tempfile.TemporaryDirectory(prefix="cmtoolkit-bench-") as tmp:
            ws = make_workspace(Path(tmp), size, seed)
            print(
                f"setup: {size:,} profiles loaded, emulator at {base_url} "
                f"({time.perf_counter() - t:.1f} s)"
            )
            cm = client(base_url)
            client_id, list_id = the_list(cm)
            conn = import_connection("bench", client_id, list_id)

            def read_all() -> tuple[int, int]:
                """The floor: every page as the import reads them (one concurrent read)."""
                contacts = pages = 0
                for _, frame in cm.subscriber_frames_many([(list_id, s) for s in STATES]):
                    contacts += frame.height
                    pages += 1
                return contacts, pages

            if not args.cold_emulator:
                read_all()  # renders every page into the emulator's cache, for all reads below

            #: per step, its best run: (wall, processor of this process, of the emulator)
            steps: dict[str, tuple[float, float, float]] = {}

            def best(
                name: str, step: Callable[[], Any], before: Callable[[], object] | None = None
            ) -> tuple[float, Any]:
                """The quickest of ``--repeat`` runs of ``step``, recorded in ``steps``."""
                runs = []
                for _ in range(args.repeat):
                    if before:
                        before()
                    mine, theirs = cpu_seconds(), cpu_seconds(emulator.pid)
                    t = time.perf_counter()
                    result = step()
                    secs = time.perf_counter() - t
                    used = (secs, cpu_seconds() - mine, cpu_seconds(emulator.pid) - theirs)
                    runs.append((used, result))
                steps[name], result = min(runs, key=lambda r: r[0][0])
                return steps[name][0], result

            floor, (contacts, pages) = best("floor", read_all)
            rss_floor = peak_rss_mib()

            ctx = ws.context(conn, cm)
            t_preview, dry = best("preview", lambda: preview(ctx, "import"))
            pristine = Path(tmp) / "store-before-first-run.duckdb"
            shutil.copyfile(ws.store.path, pristine)
            t_first, first = best(
                "first run",
                lambda: sync(ctx, "import"),
                lambda: shutil.copyfile(pristine, ws.store.path),
            )
            t_again, again = best("re-run", lambda: sync(ctx, "import"))
            assert first.counts == dry.counts, (first.counts, dry.counts)
            assert again.counts["UNCHANGED"] == contacts - again.counts["NO_IDENTIFIER"]
    finally:
        emulator.terminate()
        emulator.wait()

    def line(name: str, secs: float, target: float | None) -> str:
        ratio = secs / floor
        verdict = "" if target is None else ("  ok" if ratio <= target else "  OVER TARGET")
        goal = "" if target is None else f" (target ≤ {target}×)"
        return (
            f"{name:<10} {secs:7.2f} s  {contacts / secs:>10,.0f} contacts/s  "
            f"{ratio:5.2f}× floor{goal}{verdict}"
        )

    print(
        f"contacts: {contacts:,} in {pages:,} pages; first run: "
        + ", ".join(f"{k} {v:,}" for k, v in first.counts.items() if v)
    )
    print(line("floor", floor, None))
    print(line("preview", t_preview, 1.5))
    print(line("first run", t_first, 2.0))
    print(line("re-run", t_again, 1.2))
    # What the cores allow: a step cannot take less than its processor time spread over every
    # core, so that over the floor's wall time is the lowest ratio this machine can give it.
    cores = os.cpu_count() or 1
    print(f"processor time (this process + the emulator), {cores} cores:")
    for name, (secs, mine, theirs) in steps.items():
        print(
            f"  {name:<10} {mine:6.2f} + {theirs:5.2f} s, {(mine + theirs) / secs:4.2f} cores "
            f"busy; on {cores} cores fully busy ≥ {(mine + theirs) / cores / floor:4.2f}× floor"
        )
    print(
        f"peak RSS: {peak_rss_mib():,.0f} MiB (after the floor read: {rss_floor:,.0f} MiB; "
        "target ≤ 1024)"
    )


if __name__ == "__main__":
    main()
