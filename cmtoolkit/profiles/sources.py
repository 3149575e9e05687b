"""Sources of a load (CSV, Parquet, pandas/polars/Arrow frames) staged as one temporary view.

Every source becomes the view ``_cm_src`` with a ``_cm_row`` column (the CSV line number, or the
1-based row of a Parquet file or frame), so one set-based pipeline
(:mod:`cmtoolkit.profiles.loaders`, :mod:`cmtoolkit.profiles.interactions`) serves them all.
"""

from __future__ import annotations

import contextlib
import csv
import os
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, TypeAlias

import duckdb
import numpy as np
import pyarrow as pa

from cmtoolkit.errors import LoadError

if TYPE_CHECKING:
    import pandas as pd  # type: ignore[import-untyped]  # no stubs installed
    import polars as pl

#: What a load takes besides a file path: a pandas or polars DataFrame, a LazyFrame, an Arrow table.
Frame: TypeAlias = "pd.DataFrame | pl.DataFrame | pl.LazyFrame | pa.Table"
#: A CSV or Parquet path (by suffix) or a frame.
Source: TypeAlias = "str | os.PathLike[str] | Frame"

MAX_REPORTED = 20
#: A load's column limit (every column becomes a property: a column of the profiles table).
MAX_COLUMNS = 2_000
MAX_HEADER_BYTES = 8 << 20
#: The longest CSV line (DuckDB's default, 2 MB, is short of a long free-text cell).
MAX_LINE_BYTES = 64 << 20
SRC, FILE_VIEW, RAW, NORM, FRAME, CSV_TABLE, REJECTS, REJECT_SCANS = (
    "_cm_src",
    "_cm_src_file",
    "_cm_raw",
    "_cm_norm",
    "_cm_frame",
    "_cm_csv",
    "_cm_rejects",
    "_cm_reject_scans",
)
ROW = "_cm_row"


def load_error(where: str, unit: str, problems: list[tuple[int | None, str]]) -> LoadError:
    shown = "; ".join(
        f"{unit} {line}: {msg}" if line is not None else msg for line, msg in problems[:5]
    )
    more = f" (and {len(problems) - 5} more)" if len(problems) > 5 else ""
    return LoadError(
        f"{where}: {len(problems)} problem(s), nothing was loaded: {shown}{more}",
        problems=problems,
    )


def drop_staged(con: duckdb.DuckDBPyConnection) -> None:
    """Drop the temp objects of a load (a no-op in an aborted transaction: rollback drops them)."""
    statements = [f"DROP VIEW IF EXISTS {v}" for v in (NORM, RAW, SRC, FILE_VIEW)]
    statements += [f"DROP TABLE IF EXISTS {t}" for t in (CSV_TABLE, REJECTS, REJECT_SCANS)]
    for statement in statements:
        try:
            con.execute(statement)
        except duckdb.TransactionException:
            return
    with contextlib.suppress(duckdb.Error):
        con.unregister(FRAME)


@dataclass(frozen=True)
class Staged:
    """A source staged as the temp view ``_cm_src``: its name for messages and its line unit."""

    where: str
    unit: str  # "line" (CSV) or "row" (Parquet, frames)
    split_pipes: bool


def stage(con: duckdb.DuckDBPyConnection, source: Source) -> Staged:
    """Expose a CSV/Parquet path (by suffix) or a frame as ``_cm_src`` with ``_cm_row``."""
    drop_staged(con)
    if isinstance(source, str | os.PathLike):
        path = Path(source)
        suffix = path.suffix.lower()
        if suffix in (".parquet", ".pq"):
            return _stage_parquet(con, path)
        if suffix in (".csv", ".txt"):
            return _stage_csv(con, path)
        raise LoadError(
            f"{path}: unknown file type {suffix!r}; load a .csv or .parquet file",
            problems=[(None, f"unknown file type {suffix!r}")],
        )
    return _stage_frame(con, source)


def _check_file(path: Path) -> None:
    if not path.is_file():
        raise LoadError(f"{path}: no such file", problems=[(None, "no such file")])


def _stage_parquet(con: duckdb.DuckDBPyConnection, path: Path) -> Staged:
    _check_file(path)
    try:
        rel = con.read_parquet(str(path), file_row_number=True)
        rel.create_view(FILE_VIEW, replace=True)
        con.execute(
            f"CREATE OR REPLACE TEMP VIEW {SRC} AS SELECT * EXCLUDE (file_row_number),"
            f" file_row_number + 1 AS {ROW} FROM {FILE_VIEW}"
        )
    except duckdb.Error as exc:
        raise LoadError(
            f"{path}: not a readable Parquet file: {exc}", problems=[(None, str(exc))]
        ) from exc
    return Staged(str(path), "row", split_pipes=False)


def check_header(path: Path, max_columns: int = MAX_COLUMNS) -> list[str]:
    """The CSV's column names, read cheaply before DuckDB sees the file (which would rename an
    empty name ``column1`` and a repeat ``city_1`` without a word, and spend minutes on a
    header of 200,000 columns): :class:`LoadError` naming the column positions."""
    with path.open("rb") as f:
        raw = f.readline(MAX_HEADER_BYTES + 1)
    if len(raw) > MAX_HEADER_BYTES:
        raise load_error(
            str(path), "line", [(1, f"the header line is longer than {MAX_HEADER_BYTES:,} bytes")]
        )
    text = raw.decode("utf-8-sig", errors="replace").rstrip("\r\n")
    names = next(csv.reader([text]), []) if text else []
    problems: list[tuple[int | None, str]] = []
    if len(names) > max_columns:
        problems.append(
            (1, f"{len(names):,} columns, more than the limit of {max_columns:,}; split the file")
        )
        raise load_error(str(path), "line", problems)
    if not names:
        problems.append((1, "the header line is empty; the first line must name the columns"))
    first: dict[str, int] = {}
    for position, name in enumerate(names, start=1):
        if not name.strip():
            problems.append((1, f"column {position} has no name; name every column"))
        elif name == ROW:
            problems.append((1, f"column {position}: the name {ROW!r} is reserved; rename it"))
        elif name in first:
            problems.append(
                (1, f"columns {first[name]} and {position} are both named {name!r}; rename one")
            )
        else:
            first[name] = position
    if problems:
        raise load_error(str(path), "line", problems)
    return names


def _short(text: str) -> str:
    """A DuckDB CSV error without the echoed line (which may be megabytes)."""
    lines = [ln for ln in str(text).splitlines() if not ln.startswith("Original Line")]
    first = " ".join(lines[:2])
    return first if len(first) <= 300 else first[:300] + "..."


def _stage_csv(con: duckdb.DuckDBPyConnection, path: Path) -> Staged:
    _check_file(path)
    check_header(path)
    try:
        con.execute(
            f"CREATE TEMP TABLE {CSV_TABLE} AS SELECT * FROM read_csv(?, header = true,"
            " all_varchar = true, delim = ',', quote = '\"', escape = '\"',"
            f" max_line_size = {MAX_LINE_BYTES},"
            f" store_rejects = true, rejects_table = '{REJECTS}',"
            f" rejects_scan = '{REJECT_SCANS}')",
            [str(path)],
        )
        rejects = con.execute(
            f"SELECT line, error_message FROM {REJECTS} ORDER BY line LIMIT {MAX_REPORTED}"
        ).fetchall()
    except duckdb.Error as exc:
        problem = _short(str(exc))
        if "maximum line size" in problem.lower():
            problem = f"a line is longer than {MAX_LINE_BYTES >> 20} MB; split that cell or line"
        raise LoadError(
            f"{path}: not a readable CSV file: {problem}", problems=[(None, problem)]
        ) from exc
    if rejects:
        raise load_error(
            str(path),
            "line",
            [(int(line), f"malformed row: {_short(msg)}") for line, msg in rejects],
        )
    # rowid follows file order (temp tables number from a large base); +2 skips the header
    # line. Multi-line quoted cells would shift the numbers after them.
    con.execute(
        f"CREATE TEMP VIEW {SRC} AS SELECT *, rowid - (SELECT min(rowid) FROM {CSV_TABLE}) + 2"
        f" AS {ROW} FROM {CSV_TABLE}"
    )
    return Staged(str(path), "line", split_pipes=True)


def _to_arrow(frame: Frame) -> pa.Table:
    if isinstance(frame, pa.Table):
        return frame
    module = type(frame).__module__.split(".")[0]
    try:
        if module == "polars":
            if hasattr(frame, "collect"):
                frame = frame.collect()
            return frame.to_arrow()
        if module == "pandas":
            return pa.Table.from_pandas(frame, preserve_index=False)
    except (pa.ArrowException, ValueError, TypeError) as exc:
        raise LoadError(
            f"frame: a column mixes types (e.g. lists and scalars): {exc}",
            problems=[(None, str(exc))],
        ) from exc
    raise LoadError(
        f"cannot load a {type(frame).__name__}; give a pandas/polars DataFrame or Arrow table",
        problems=[(None, f"unsupported source {type(frame).__name__}")],
    )


def _stage_frame(con: duckdb.DuckDBPyConnection, frame: Frame) -> Staged:
    table = _to_arrow(frame)
    if ROW in table.column_names:
        raise LoadError(f"frame: column {ROW!r} is reserved", problems=[(None, "reserved column")])
    table = table.append_column(ROW, pa.array(np.arange(1, table.num_rows + 1, dtype=np.int64)))
    con.register(FRAME, table)
    con.execute(f"CREATE TEMP VIEW {SRC} AS SELECT * FROM {FRAME}")
    return Staged("frame", "row", split_pipes=False)
