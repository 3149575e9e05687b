"""Reading every subscriber of a big list through the cmtoolkit client, against the emulator.

Seeds one list of ``--size`` subscribers (default 1,000,000) in a ``cmtoolkit emulator serve``
subprocess, reads all of them (every state, 1000 per page) with
``CampaignMonitor.subscriber_frames`` (the bulk-sync path) and, with ``--records``, with
``CampaignMonitor.subscriber_pages`` (typed records).

The floor, measured in the same run: the very same page bodies, pre-rendered and served from
memory by a minimal HTTP server (also a subprocess), read with plain ``requests`` + ``json``.
Prints wall times, pages/s, peak RSS (of this process while reading = the client, plus the
emulator in ``--in-process`` mode; the emulator subprocess's own peak is reported apart) and the
ratio to the floor (target: ≤ 2×). ``--in-process`` runs the emulator in this process instead
(client and server then share one GIL, and the emulator's rendering cannot overlap the client's
parsing).

    .venv/bin/python bench/emulator_read.py --size 100000
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import signal
import struct
import subprocess
import sys
import tempfile
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import requests

from cmtoolkit.campaign_monitor import ApiKeyAuth, CampaignMonitor
from cmtoolkit.emulator import DEFAULT_API_KEY, Emulator
from cmtoolkit.secret import Secret

STATES = ("Active", "Unconfirmed", "Unsubscribed", "Bounced", "Deleted")


def peak_rss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def child_peak_rss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024


def read_with_client(base_url: str, list_id: str, records: bool) -> tuple[float, int, int]:
    started = time.perf_counter()
    rows = pages = 0
    with CampaignMonitor(ApiKeyAuth(Secret(DEFAULT_API_KEY)), base_url=base_url) as cm:
        for state in STATES:
            if records:
                for page in cm.subscriber_pages(list_id, state):
                    rows += len(page.records)
                    pages += 1
            else:
                for frame in cm.subscriber_frames(list_id, state):
                    rows += frame.height
                    pages += 1
    return time.perf_counter() - started, rows, pages


def fetch_bodies(base_url: str, list_id: str) -> list[bytes]:
    """The emulator's page bodies for the same requests, fetched once (untimed)."""
    bodies = []
    with requests.Session() as s:
        s.auth = (DEFAULT_API_KEY, "x")
        for state in STATES:
            page = 1
            while True:
                r = s.get(
                    f"{base_url}/lists/{list_id}/{state.lower()}.json",
                    params={"page": page, "pagesize": 1000, "includetrackingpreference": "True"},
                )
                n = json.loads(r.content)["NumberOfPages"]
                if page <= n:
                    bodies.append(r.content)
                if page >= n:
                    break
                page += 1
    return bodies


def serve_bodies(path: str) -> None:
    """The floor server: serves ``/p/N`` = body N of the file, from memory."""
    data = Path(path).read_bytes()
    bodies, at = [], 0
    while at < len(data):
        (n,) = struct.unpack_from("<I", data, at)
        bodies.append(data[at + 4 : at + 4 + n])
        at += 4 + n

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def do_GET(self) -> None:
            body = bodies[int(self.path.rsplit("/", 1)[1])]
            self.send_response(200)
            self.send_header("Content-Type", "application/json; charset=utf-8")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    print(f"http://127.0.0.1:{server.server_address[1]}/p/", flush=True)
    signal.signal(signal.SIGTERM, lambda *a: sys.exit(0))
    server.serve_forever()


def spawn(args: list[str]) -> tuple[subprocess.Popen[str], str]:
    proc = subprocess.Popen(
        [sys.executable, *args], stdout=subprocess.PIPE, text=True, env=os.environ.copy()
    )
    assert proc.stdout is not None
    return proc, proc.stdout.readline().strip()


def stop(proc: subprocess.Popen[str]) -> None:
    proc.send_signal(signal.SIGTERM)
    proc.wait(timeout=60)


def floor(bodies: list[bytes]) -> tuple[float, int]:
    with tempfile.NamedTemporaryFile(suffix=".bodies", delete=False) as f:
        for b in bodies:
            f.write(struct.pack("<I", len(b)) + b)
    proc, url = spawn([__file__, "--floor-server", f.name])
    try:
        rows = 0
        started = time.perf_counter()
        with requests.Session() as s:
            for i in range(len(bodies)):
                rows += len(json.loads(s.get(url + str(i)).content)["Results"])
        return time.perf_counter() - started, rows
    finally:
        stop(proc)
        os.unlink(f.name)


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--size", type=int, default=1_000_000, help="subscribers to seed")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--records", action="store_true", help="also read as typed records")
    parser.add_argument("--in-process", action="store_true", help="emulator in this process")
    parser.add_argument("--floor-server", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.floor_server:
        serve_bodies(args.floor_server)
        return

    started = time.perf_counter()
    emu: Any = None
    proc = None
    if args.in_process:
        emu = Emulator(seed_size=args.size, seed=args.seed, lists=("Newsletter",))
        base_url = emu.start()
    else:
        proc, base_url = spawn(
            ["-m", "cmtoolkit.cli", "emulator", "serve", "--port", "0", "--lists", "Newsletter",
             "--seed-size", str(args.size), "--seed", str(args.seed)]
        )  # fmt: skip
    print(f"emulator with {args.size:,} subscribers up in {time.perf_counter() - started:.1f} s")
    try:
        s = requests.Session()
        s.auth = (DEFAULT_API_KEY, "x")
        client_id = s.get(base_url + "/clients.json").json()[0]["ClientID"]
        list_id = s.get(f"{base_url}/clients/{client_id}/lists.json").json()[0]["ListID"]
        warm = time.perf_counter()  # the first read of an order builds its sorted index
        for state in STATES:
            s.get(f"{base_url}/lists/{list_id}/{state.lower()}.json", params={"pagesize": 10})
        print(f"sorted indexes built in {time.perf_counter() - warm:.2f} s")

        elapsed, rows, pages = read_with_client(base_url, list_id, records=False)
        assert rows == args.size, (rows, args.size)
        if args.records:
            r_elapsed, r_rows, _ = read_with_client(base_url, list_id, records=True)
            assert r_rows == rows
        client_rss = peak_rss_mib()  # before the floor's bodies are held in memory
        bodies = fetch_bodies(base_url, list_id)
    finally:
        if emu is not None:
            emu.stop()
        if proc is not None:
            stop(proc)
    emulator_rss = child_peak_rss_mib()
    floor_elapsed, floor_rows = floor(bodies)
    assert floor_rows == rows
    mib = sum(map(len, bodies)) / 2**20
    print(f"pages: {pages:,} of 1000 ({mib:.0f} MiB of JSON)")

    def line(label: str, seconds: float) -> str:
        return (
            f"{label:15s}: {seconds:7.2f} s  {pages / seconds:7.1f} pages/s  "
            f"{rows / seconds:9,.0f} rows/s  {seconds / floor_elapsed:.2f}x floor"
        )

    print(line("client frames", elapsed))
    if args.records:
        print(line("client records", r_elapsed))
    print(line("floor", floor_elapsed) + "  (pre-rendered, requests + json)")
    print(f"peak RSS: client process {client_rss:.0f} MiB", end="")
    print("" if args.in_process else f", emulator process {emulator_rss:.0f} MiB")


if __name__ == "__main__":
    main()
