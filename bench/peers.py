"""Peers: cmtoolkit's import, dlt's merge into DuckDB and a createsend page loop, one emulator.

An emulator subprocess (``cmtoolkit emulator serve``) holds one list of ``--size`` subscribers
(every state) and a workspace holds ``--size`` profiles, half of them subscribers: the set-up of
``bench/import.py``, from ``bench/common.py`` (emulator, workspace, connection). Every page is
rendered into the emulator's cache before anything is measured, so the emulator only sends, for
every reader alike. Each reader then runs in a child process of its own (its peak RSS is its
own), one after the other, against the same emulator:

* **cmtoolkit**: the import of ``bench/import.py`` (same connection and mappings: half the
  contacts create profiles, half enrich them), first run and re-run (nothing changed);
* **dlt**: a ``dlt.resource`` reading every page of every state from the emulator's REST API,
  merged (``write_disposition="merge"``, primary key ``EmailAddress``) into a DuckDB file, first
  run and re-run. Configurations (``--dlt``, comma-separated):

  - ``arrow`` (default; the fastest measured): a plain generator of pages (``requests``,
    ``orjson``), each page yielded as one Arrow table (``CustomFields`` kept as a nested column);
  - ``flat``: the same generator yielding each page as a list of dicts, ``max_table_nesting=0``
    (``CustomFields`` as one JSON column), parquet load files;
  - ``rest_api``: dlt's declarative ``rest_api`` source (page-number paginator on
    ``NumberOfPages``), one resource per state into one table, parquet load files
    (``CustomFields`` normalised into a child table, dlt's default);

* **createsend**: the official wrapper's page loop over every state
  (``createsend.List(auth, list_id).active(page=..., page_size=1000)`` and so on), as a user of
  the wrapper would write it: read only, each page counted and dropped. (Keeping every subscriber
  as the wrapper returns them costs about 18 KB each, one class per object: 1.8 GB at 100,000.)

Printed: seconds, contacts per second, peak RSS and the load average next to each figure, then
the ratios dlt ÷ cmtoolkit for the first run and the re-run against dlt's best configuration
measured (target, issue 19: ≥ 10×) and createsend ÷ cmtoolkit's first run.

    .venv/bin/pip install -e '.[bench]' && .venv/bin/python bench/peers.py --size 100000
"""

from __future__ import annotations

import argparse
import http.client
import importlib.util
import json
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import orjson
import requests
from common import (
    STATES,
    cache_mb,
    client,
    import_connection,
    make_workspace,
    peak_rss_mib,
    person_offset,
    read_all,
    start_emulator,
    the_list,
)

from cmtoolkit.emulator import DEFAULT_API_KEY
from cmtoolkit.sync import sync
from cmtoolkit.workspace import Workspace

DLT_CONFIGS = ("arrow", "flat", "rest_api")
PAGE_SIZE = 1000


def load() -> str:
    return "/".join(f"{x:.1f}" for x in os.getloadavg())


def report(**figures: Any) -> None:
    """A child's last stdout line: its figures and its own peak RSS."""
    print(json.dumps({**figures, "rss": peak_rss_mib()}), flush=True)


# --- children: one reader each -------------------------------------------------------------


def run_cmtoolkit(workspace: str, base_url: str) -> None:
    """bench/import.py's import: first run, then the re-run with nothing changed."""
    cm = client(base_url)
    ctx = Workspace(workspace).context(import_connection("bench", *the_list(cm)), cm)
    t = time.perf_counter()
    first = sync(ctx, "import")
    t_first = time.perf_counter() - t
    t = time.perf_counter()
    again = sync(ctx, "import")
    t_again = time.perf_counter() - t
    contacts = sum(first.counts.values())
    assert again.counts["UNCHANGED"] == contacts - again.counts["NO_IDENTIFIER"]
    report(contacts=contacts, first=t_first, again=t_again)


def _pages(base_url: str, list_id: str) -> Iterator[list[dict[str, Any]]]:
    """Every page of every state, one request at a time, as the REST API gives them."""
    session = requests.Session()
    session.auth = (DEFAULT_API_KEY, "x")
    for state in STATES:
        page, pages = 1, 1
        while page <= pages:
            r = session.get(
                f"{base_url}/lists/{list_id}/{state.lower()}.json",
                params={"page": page, "pagesize": PAGE_SIZE, "orderfield": "email"},
                timeout=60,
            )
            r.raise_for_status()
            body = orjson.loads(r.content)
            pages = int(body["NumberOfPages"])
            page += 1
            yield body["Results"]


def run_dlt(config: str, base_url: str, list_id: str, workdir: str) -> None:
    """One dlt configuration: merge every subscriber into DuckDB, first run and re-run."""
    os.environ.update(
        RUNTIME__DLTHUB_TELEMETRY="false",
        RUNTIME__LOG_LEVEL="ERROR",  # the arrow path warns on every page about column hints
        DLT_DATA_DIR=str(Path(workdir) / "dlt-home"),  # leave the user's ~/.dlt alone
    )
    import dlt  # the bench extra: only this child needs it

    def source() -> Any:
        if config == "rest_api":
            from dlt.sources.rest_api import rest_api_source

            return rest_api_source(
                {
                    "client": {
                        "base_url": base_url + "/",
                        "auth": {
                            "type": "http_basic",
                            "username": DEFAULT_API_KEY,
                            "password": "x",
                        },
                        "paginator": {
                            "type": "page_number",
                            "base_page": 1,
                            "page_param": "page",
                            "total_path": "NumberOfPages",
                        },
                    },
                    "resource_defaults": {
                        "primary_key": "EmailAddress",
                        "write_disposition": "merge",
                        "table_name": "subscribers",
                        "endpoint": {
                            "data_selector": "Results",
                            "params": {"pagesize": PAGE_SIZE, "orderfield": "email"},
                        },
                    },
                    "resources": [
                        {
                            "name": f"subscribers_{state.lower()}",
                            "endpoint": {"path": f"lists/{list_id}/{state.lower()}.json"},
                        }
                        for state in STATES
                    ],
                }
            )
        if config == "arrow":
            import pyarrow as pa

            pages: Iterator[Any] = (pa.Table.from_pylist(p) for p in _pages(base_url, list_id))
            return dlt.resource(
                pages, name="subscribers", primary_key="EmailAddress", write_disposition="merge"
            )
        assert config == "flat", config
        return dlt.resource(
            _pages(base_url, list_id),
            name="subscribers",
            primary_key="EmailAddress",
            write_disposition="merge",
            max_table_nesting=0,
        )

    pipeline = dlt.pipeline(
        pipeline_name=f"peers_{config}",
        destination=dlt.destinations.duckdb(str(Path(workdir) / f"dlt_{config}.duckdb")),
        dataset_name="campaign_monitor",
        pipelines_dir=str(Path(workdir) / "dlt-pipelines"),
    )
    times, rows = [], []
    for _ in ("first", "again"):
        t = time.perf_counter()
        pipeline.run(source(), loader_file_format="parquet")
        times.append(time.perf_counter() - t)
        with pipeline.sql_client() as client:
            rows.append(client.execute_sql("SELECT count(*) FROM subscribers")[0][0])
    report(contacts=rows[-1], rows=rows, first=times[0], again=times[1])


def run_createsend(base_url: str, list_id: str) -> None:
    """The official wrapper's page loop over every state: read only, pages dropped."""
    import createsend
    from createsend import createsend as base

    # The wrapper speaks HTTPS to its base_uri; the emulator is plain HTTP on loopback.
    base.CreateSend.base_uri = base_url
    base.VerifiedHTTPSConnection = http.client.HTTPConnection
    lst = createsend.List({"api_key": DEFAULT_API_KEY}, list_id)
    readers = (lst.active, lst.unconfirmed, lst.unsubscribed, lst.bounced, lst.deleted)
    assert [r.__name__ for r in readers] == [s.lower() for s in STATES]
    contacts = 0
    t = time.perf_counter()
    for read in readers:
        page, pages = 1, 1
        while page <= pages:
            result = read(page=page, page_size=PAGE_SIZE)
            contacts += len(result.Results)
            pages = result.NumberOfPages
            page += 1
    report(contacts=contacts, first=time.perf_counter() - t)


# --- the parent: set-up, one child per reader, figures ---------------------------------------


def child(*args: str) -> dict[str, Any]:
    done = subprocess.run(
        [sys.executable, __file__, "--child", *args], capture_output=True, text=True
    )
    if done.returncode:
        sys.exit(f"{args[0]} failed:\n{done.stderr}")
    result: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--size", type=int, default=1_000_000)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument(
        "--dlt",
        default="arrow",
        help=f"dlt configurations, comma-separated, of {', '.join(DLT_CONFIGS)} (default arrow)",
    )
    parser.add_argument("--child", nargs="+", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        kind, *rest = args.child
        {"cmtoolkit": run_cmtoolkit, "dlt": run_dlt, "createsend": run_createsend}[kind](*rest)
        return
    configs = [c for c in args.dlt.split(",") if c]
    if unknown := set(configs) - set(DLT_CONFIGS):
        parser.error(f"unknown dlt configuration {', '.join(sorted(unknown))}")
    if importlib.util.find_spec("dlt") is None:
        sys.exit("dlt is not installed: .venv/bin/pip install -e '.[bench]'")
    size, seed = args.size, args.seed

    t = time.perf_counter()
    emulator, base_url = start_emulator(size, seed, person_offset(size), cache_mb(size))
    rows: list[tuple[str, dict[str, Any], str]] = []
    try:
        with tempfile.TemporaryDirectory(prefix="cmtoolkit-peers-") as tmp:
            ws = make_workspace(Path(tmp), size, seed)
            cm = client(base_url)
            list_id = the_list(cm)[1]
            # Every page rendered once and kept: the emulator only sends, for every reader.
            warm = read_all(cm, list_id)
            cm.close()
            print(
                f"setup: {size:,} profiles, {warm:,} subscribers rendered, emulator at "
                f"{base_url} ({time.perf_counter() - t:.1f} s; load {load()})",
                flush=True,
            )

            def measure(name: str, *child_args: str) -> dict[str, Any]:
                before = load()
                result = child(*child_args)
                assert result["contacts"] == warm, (name, result["contacts"], warm)
                rows.append((name, result, f"{before} → {load()}"))
                print(line(name, result, rows[-1][2]), flush=True)
                return result

            ours = measure("cmtoolkit", "cmtoolkit", str(ws.path), base_url)
            dlts = {
                config: measure(f"dlt ({config})", "dlt", config, base_url, list_id, tmp)
                for config in configs
            }
            wrapper = measure("createsend", "createsend", base_url, list_id)
    finally:
        emulator.terminate()
        emulator.wait()

    for step, label in (("first", "first run"), ("again", "re-run")):
        best = min(dlts, key=lambda c: dlts[c][step])
        ratio = dlts[best][step] / ours[step]
        verdict = "ok" if ratio >= 10 else "UNDER TARGET"
        print(f"dlt ({best}) ÷ cmtoolkit, {label}: {ratio:5.1f}× (target ≥ 10×)  {verdict}")
    print(f"createsend ÷ cmtoolkit's first run: {wrapper['first'] / ours['first']:5.1f}×")


def line(name: str, r: dict[str, Any], loads: str) -> str:
    def one(secs: float) -> str:
        return f"{secs:7.1f} s ({r['contacts'] / secs:>9,.0f}/s)"

    # createsend only reads: one figure, no re-run
    steps = (
        f"first {one(r['first'])}, re-run {one(r['again'])}"
        if "again" in r
        else (f"read  {one(r['first'])}")
    )
    return f"{name:<16} {steps}, peak RSS {r['rss']:,.0f} MiB (load {loads})"


if __name__ == "__main__":
    main()
