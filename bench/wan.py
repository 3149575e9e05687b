"""The import as users will feel it: over a wide-area network, against the sequential floor.

An emulator subprocess (``cmtoolkit emulator serve``) holds one list of ``--size`` subscribers
(every state) and answers every request after ``--latency`` ms (waited, not computed); the
workspace holds ``--size`` profiles, half of them subscribers (as ``bench/import.py``). Measured
in one run:

* **floor**: the same page requests one at a time with no processing, as the official wrapper
  or a createsend page loop issue them (``requests`` GET, page after page, each state in turn;
  only page 1's envelope is decoded, for the page count);
* **client read**: the same pages through ``CampaignMonitor.subscriber_frames_many`` (decoded
  to frames, ``max_in_flight`` at once, default 4), nothing else: the transport's own figure;
* **first run** and **re-run** of the import through ``cmtoolkit``;
* **leavers**: with ``states: [Active]`` (the default), a re-run that reads the leavers from
  their cursor (DESIGN §5.6) against the same re-run reading them in full (cursors deleted);
* **rate-limited read**: every page read through the client while the emulator allows
  ``--rate-limit`` requests per ``--rate-window`` s (default half of what the concurrency could
  use): throughput against the limit, requests answered 429, contacts read against the list.

``wan.py export [--size N] [--latency 300] [--max-in-flight K]`` measures the export instead:
the floor is the export's own import requests (pre-built bodies, 1000 rows each) POSTed one at a
time to an empty list, against the export's first run and re-run to another (target: first run
≤ 0.35× the floor).

Targets (issue 19): first run ≤ 0.35× and re-run ≤ 0.3× the floor; under the rate limit,
throughput ≥ 90 % of the limit, ≤ 1 % of requests answered 429, nothing lost. Every page is
rendered into the emulator's cache before anything is measured (with no latency), so the
emulator's own processor time does not compete with the reader on a shared machine.
"""

from __future__ import annotations

import argparse
import dataclasses
import importlib.util
import logging
import os
import resource
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import orjson
import requests
from common import cpu_seconds

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


def sequential_floor(base_url: str, list_id: str) -> tuple[float, int]:
    """Every page, one request at a time, bodies read and not processed."""
    session = requests.Session()
    session.auth = (DEFAULT_API_KEY, "x")
    requests_made = 0
    started = time.perf_counter()
    for state in STATES:
        page, pages = 1, 1
        while page <= pages:
            r = session.get(
                f"{base_url}/lists/{list_id}/{state.lower()}.json",
                params={"page": str(page), "pagesize": "1000", "orderfield": "email"},
                timeout=60,
            )
            r.raise_for_status()
            requests_made += 1
            if page == 1:
                pages = int(orjson.loads(r.content)["NumberOfPages"])
            page += 1
    return time.perf_counter() - started, requests_made


def control(origin: str, name: str, body: dict[str, object] | None = None) -> None:
    requests.post(f"{origin}/_emulator/{name}", json=body or {}, timeout=10).raise_for_status()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--size", type=int, default=1_000_000)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--latency", type=float, default=100, help="ms per request")
    parser.add_argument("--max-in-flight", type=int, default=4)
    parser.add_argument(
        "--rate-limit", type=int, help="requests per window (default: half the capacity)"
    )
    parser.add_argument("--rate-window", type=float, default=5.0, help="seconds")
    args = parser.parse_args()
    size, latency = args.size, args.latency / 1000
    # The import logs where its staging spent the time (reading, waiting for the staging
    # worker, after the last page): printed under each run.
    logging.basicConfig(format="  %(message)s")
    logging.getLogger("cmtoolkit.sync.imports").setLevel(logging.INFO)
    rate_limit = args.rate_limit or max(
        1, int(0.5 * args.max_in_flight / latency * args.rate_window)
    )

    t = time.perf_counter()
    offset = emulator_person_offset(size, size, 0.5)
    emulator, base_url = start_emulator(size, args.seed, offset, max(64, size * 600 // 2**20))
    origin = base_url.rsplit("/api/", 1)[0]
    try:
        with tempfile.TemporaryDirectory(prefix="cmtoolkit-bench-") as tmp:
            parquet = write_profiles(
                Path(tmp) / "profiles.parquet", size, seed=args.seed, email_noise=0.05
            )
            ws = Workspace.create(Path(tmp) / "ws")
            ws.store.load(parquet)
            auth = ApiKeyAuth(Secret(DEFAULT_API_KEY))
            cm = CampaignMonitor(auth, base_url=base_url, max_in_flight=args.max_in_flight)
            (client,) = cm.clients()
            (lst,) = cm.lists(client.client_id)
            selections = [(lst.list_id, s) for s in STATES]
            warm = sum(f.height for _, f in cm.subscriber_frames_many(selections))
            print(
                f"setup: {size:,} profiles, {warm:,} subscribers rendered, emulator at "
                f"{base_url} ({time.perf_counter() - t:.1f} s)",
                flush=True,
            )
            control(origin, "latency", {"latency": latency})

            floor, floor_requests = sequential_floor(base_url, lst.list_id)
            print(f"floor: {floor_requests} requests one at a time: {floor:.1f} s", flush=True)
            rss_floor = peak_rss_mib()
            t0 = time.perf_counter()
            read_all = sum(f.height for _, f in cm.subscriber_frames_many(selections))
            t_read = time.perf_counter() - t0
            assert read_all == warm
            print(f"client read, no processing: {t_read:.1f} s", flush=True)

            conn = Connection(
                name="bench",
                campaign_monitor=CampaignMonitorSettings(
                    "default", client.client_id, max_in_flight=args.max_in_flight
                ),
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
            pristine = Path(tmp) / "store-before-first-run.duckdb"
            shutil.copyfile(ws.store.path, pristine)
            t0 = time.perf_counter()
            first = sync(ctx, "import")
            t_first = time.perf_counter() - t0
            print(f"first run: {t_first:.1f} s", flush=True)
            t0 = time.perf_counter()
            again = sync(ctx, "import")
            t_again = time.perf_counter() - t0
            print(f"re-run: {t_again:.1f} s", flush=True)
            assert again.counts["UNCHANGED"] == warm - again.counts["NO_IDENTIFIER"]
            leavers = leaver_reruns(ws, conn, cm)

            control(origin, "ratelimit", {"limit": rate_limit, "window": args.rate_window})
            limited = CampaignMonitor(auth, base_url=base_url, max_in_flight=args.max_in_flight)
            t0 = time.perf_counter()
            read = sum(f.height for _, f in limited.subscriber_frames_many(selections))
            t_limited = time.perf_counter() - t0
            flow = limited.flow
            requests_limited = flow.answers
            ok = requests_limited - flow.rate_limited
    finally:
        emulator.terminate()
        emulator.wait()

    per_second = rate_limit / args.rate_window
    throughput = ok / t_limited
    print()
    print(
        f"{size:,} subscribers, {floor_requests} page requests, latency {args.latency:.0f} ms, "
        f"max_in_flight {args.max_in_flight}"
    )
    for name, secs, target in (
        ("floor (sequential)", floor, None),
        ("client read only", t_read, None),
        ("first run", t_first, 0.35),
        ("re-run", t_again, 0.30),
    ):
        ratio = secs / floor
        verdict = "" if target is None else (" ok" if ratio <= target else " OVER TARGET")
        goal = "" if target is None else f" (target ≤ {target}×)"
        print(f"{name:<20} {secs:7.1f} s  {ratio:5.2f}× floor{goal}{verdict}")
    print("first run: " + ", ".join(f"{k} {v:,}" for k, v in first.counts.items() if v))
    share = throughput / per_second
    limited_share = flow.rate_limited / max(1, requests_limited)
    print(
        f"rate limit {rate_limit} per {args.rate_window:g} s ({per_second:.1f}/s): read "
        f"{read:,} of {warm:,} contacts in {t_limited:.1f} s, {ok} requests answered "
        f"({throughput:.1f}/s = {share:.0%} of the limit, target ≥ 90 %), "
        f"{flow.rate_limited} answered 429 ({limited_share:.1%}, target ≤ 1 %)"
        + ("" if read == warm else "  LOST CONTACTS")
    )
    (t_cursor, n_cursor), (t_full, n_full) = leavers
    print(
        f"states [Active], re-run: leavers from their cursor {t_cursor:.1f} s ({n_cursor} "
        f"requests), in full {t_full:.1f} s ({n_full} requests): {t_cursor / t_full:.2f}×"
    )
    print(f"peak RSS: {peak_rss_mib():,.0f} MiB (after the floor: {rss_floor:,.0f} MiB)")


def leaver_reruns(
    ws: Workspace, conn: Connection, cm: CampaignMonitor
) -> tuple[tuple[float, int], tuple[float, int]]:
    """(seconds, requests) of a re-run with ``states: [Active]`` reading the leavers outside it
    from their cursor, then of the same re-run reading them in full (the cursors deleted)."""
    assert conn.import_ is not None
    active = dataclasses.replace(
        conn, name="bench-active", import_=dataclasses.replace(conn.import_, states=("Active",))
    )
    ctx = ws.context(active, cm)
    sync(ctx, "import")  # its own delta state and leaver cursor

    def rerun() -> tuple[float, int]:
        before = cm.flow.answers
        t0 = time.perf_counter()
        result = sync(ctx, "import")
        assert not result.counts["CREATED"] and not result.counts["MODIFIED"], result.counts
        return time.perf_counter() - t0, cm.flow.answers - before

    from_cursor = rerun()
    with ws.store.connect(write=True) as con:
        con.execute("DELETE FROM import_leaver_cursors WHERE connection = 'bench-active'")
    return from_cursor, rerun()


# --- the export over a wide-area network ---------------------------------------------------------


def _load_bench(name: str) -> Any:
    """A sibling bench script as a module (``import`` is a keyword: load them by path)."""
    spec = importlib.util.spec_from_file_location(f"bench_{name}", Path(__file__).with_name(name))
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def import_bodies(payloads: list[str], batch: int = 1000) -> list[bytes]:
    """The export's import requests as the wire carries them, built before any clock starts."""
    head = b'{"Subscribers":['
    tail = (
        b'],"Resubscribe":false,"QueueSubscriptionBasedAutoResponders":false,'
        b'"RestartSubscriptionBasedAutoresponders":false}'
    )
    return [
        head + ",".join(payloads[i : i + batch]).encode() + tail
        for i in range(0, len(payloads), batch)
    ]


def sequential_import_floor(base_url: str, list_id: str, bodies: list[bytes]) -> float:
    """The same import requests one at a time, answers read and not processed."""
    session = requests.Session()
    session.auth = (DEFAULT_API_KEY, "x")
    url = f"{base_url}/subscribers/{list_id}/import.json"
    headers = {"Content-Type": "application/json; charset=utf-8"}
    started = time.perf_counter()
    for body in bodies:
        session.post(url, data=body, headers=headers, timeout=120).raise_for_status()
    return time.perf_counter() - started


def export_main(argv: list[str]) -> None:
    """``wan.py export``: the export of ``--size`` profiles to one list over ``--latency`` ms
    (default 300, an import batch's) against the same import requests one at a time."""
    parser = argparse.ArgumentParser(prog="wan.py export", description=export_main.__doc__)
    parser.add_argument("--size", type=int, default=1_000_000)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--latency", type=float, default=300, help="ms per request")
    parser.add_argument("--max-in-flight", type=int, default=4)
    args = parser.parse_args(argv)
    bench_export = _load_bench("export.py")
    load = [os.getloadavg()]
    server, base_url = bench_export.start_server()
    origin = base_url.rsplit("/api/", 1)[0]
    try:
        with tempfile.TemporaryDirectory(prefix="cmtoolkit-bench-") as tmp:
            t = time.perf_counter()
            auth = ApiKeyAuth(Secret(DEFAULT_API_KEY))
            cm = CampaignMonitor(auth, base_url=base_url, max_in_flight=args.max_in_flight)
            ws, conn, lists = bench_export.prepare(cm, Path(tmp), args.size, args.seed)
            bodies = import_bodies(bench_export.planned_payloads(ws, conn, cm))
            print(
                f"setup: {args.size:,} profiles, {len(bodies)} import requests built "
                f"({time.perf_counter() - t:.1f} s)",
                flush=True,
            )
            control(origin, "latency", {"latency": args.latency / 1000})
            cpu = cpu_seconds(server.pid)
            floor = sequential_import_floor(base_url, lists[1], bodies)
            cpu_floor = cpu_seconds(server.pid) - cpu
            del bodies
            print(f"floor: {floor:.1f} s", flush=True)
            load.append(os.getloadavg())
            ctx = ws.context(conn, cm)
            cpu = cpu_seconds(server.pid)
            t0 = time.perf_counter()
            first = sync(ctx, "export")
            t_first = time.perf_counter() - t0
            cpu_first = cpu_seconds(server.pid) - cpu
            print(f"first run: {t_first:.1f} s", flush=True)
            t0 = time.perf_counter()
            again = sync(ctx, "export")
            t_again = time.perf_counter() - t0
            load.append(os.getloadavg())
            assert first.counts["EXPORTED"] == args.size, first.counts
            assert again.counts["UNCHANGED"] == args.size, again.counts
            flow = cm.flow
    finally:
        server.terminate()
        server.wait(timeout=30)

    print()
    print(
        f"export of {args.size:,} profiles, {len(range(0, args.size, 1000))} import requests, "
        f"latency {args.latency:.0f} ms, max_in_flight {args.max_in_flight} (peak in flight "
        f"{flow.peak}, 429s {flow.rate_limited})"
    )
    for name, secs, target in (
        ("floor (sequential)", floor, None),
        ("first run", t_first, 0.35),
        ("re-run", t_again, None),
    ):
        ratio = secs / floor
        verdict = "" if target is None else (" ok" if ratio <= target else " OVER TARGET")
        goal = "" if target is None else f" (target ≤ {target}×)"
        print(f"{name:<20} {secs:7.1f} s  {ratio:5.2f}× floor{goal}{verdict}")
    print(
        f"emulator processor time (its own work, not the latency): {cpu_floor:.1f} s during the "
        f"floor ({cpu_floor / floor:.2f}× the floor), {cpu_first:.1f} s during the first run: "
        "a lower bound on the first run wherever the client sends from"
    )
    print(
        "load average (1/5/15 min) at start, after the floor, at the end: "
        + "; ".join(" ".join(f"{x:.1f}" for x in avg) for avg in load)
    )


if __name__ == "__main__":
    if sys.argv[1:2] == ["export"]:
        export_main(sys.argv[2:])
    else:
        main()
