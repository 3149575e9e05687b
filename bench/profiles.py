"""Benchmark: generate profiles to Parquet, load them into a workspace, refresh five segments.

The floor is DuckDB's own ``CREATE TABLE t AS SELECT * FROM read_parquet(file)`` into a fresh
database file, measured in the same run on the same file; the target is load ≤ 3× floor.

    .venv/bin/python bench/profiles.py               # 1,000,000 profiles
    .venv/bin/python bench/profiles.py --size 100000 # a quick run
"""

from __future__ import annotations

import argparse
import resource
import shutil
import sys
import time
from pathlib import Path

import duckdb

from cmtoolkit.profiles.synthetic import write_profiles, write_sample_segments
from cmtoolkit.workspace import Workspace

TARGET_RATIO = 3.0


def peak_rss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def timed(label: str, results: dict[str, float], fn, *args, **kwargs):  # type: ignore[no-untyped-def]
    started = time.perf_counter()
    value = fn(*args, **kwargs)
    results[label] = time.perf_counter() - started
    print(f"{label:<40} {results[label]:8.2f} s   peak RSS {peak_rss_mib():7.0f} MiB", flush=True)
    return value


def floor(parquet: Path, db: Path) -> None:
    for f in (db, db.with_suffix(".duckdb.wal")):
        f.unlink(missing_ok=True)
    con = duckdb.connect(str(db))
    con.execute("SET enable_progress_bar = false")
    con.execute("CREATE TABLE t AS SELECT * FROM read_parquet(?)", [str(parquet)])
    con.close()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=1_000_000)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--email-noise", type=float, default=0.05)
    parser.add_argument("--out", default="bench/out/profiles", help="scratch folder (emptied)")
    args = parser.parse_args(argv)

    out = Path(args.out)
    shutil.rmtree(out, ignore_errors=True)
    out.mkdir(parents=True)
    parquet = out / "profiles.parquet"
    results: dict[str, float] = {}
    print(f"profiles: {args.size:,}  seed {args.seed}  duckdb {duckdb.__version__}")

    timed("generate to Parquet", results, write_profiles, parquet, args.size, seed=args.seed,
          email_noise=args.email_noise)  # fmt: skip
    print(f"{'':<40} {parquet.stat().st_size / 2**20:8.1f} MiB file")
    # Floor and load alternate, twice each, and the best of each counts: the machine may be
    # shared, and the first run warms the page cache for both.
    for i in (1, 2):
        timed(f"floor: CTAS read_parquet ({i})", results, floor, parquet, out / "floor.duckdb")
        shutil.rmtree(out / "workspace", ignore_errors=True)
        ws = Workspace(out / "workspace")
        load = timed(f"load into empty store ({i})", results, ws.store.load, parquet)
        assert load.rows == args.size
    best_floor = min(v for k, v in results.items() if k.startswith("floor"))
    best_load = min(v for k, v in results.items() if k.startswith("load"))
    timed("reload (upsert: every profile exists)", results, ws.store.load, parquet)
    write_sample_segments(ws.segments_path)
    infos = timed("refresh 5 segments", results, ws.segments.refresh)
    for info in infos:
        print(f"    {info.name:<20} {info.size:>10,} members")

    ratio = best_load / best_floor
    upsert_ratio = results["reload (upsert: every profile exists)"] / best_floor
    print(f"load / floor   = {ratio:.2f}x (target ≤ {TARGET_RATIO:g}x)")
    print(f"reload / floor = {upsert_ratio:.2f}x")
    print(f"peak RSS       = {peak_rss_mib():.0f} MiB")
    shutil.rmtree(out, ignore_errors=True)
    return 0 if ratio <= TARGET_RATIO else 1


if __name__ == "__main__":
    sys.exit(main())
