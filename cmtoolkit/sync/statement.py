"""SQL statements as values: generated apart from where they run, so a plan can be printed and
tested, and executed in one place."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

import duckdb

Params = Mapping[str, object]


@dataclass(frozen=True)
class Statement:
    """One SQL statement and its named parameters (``$name``); values are never in ``sql``."""

    sql: str
    params: Params = field(default_factory=dict)

    def __str__(self) -> str:
        text = "\n".join(line.strip() for line in self.sql.strip().splitlines() if line.strip())
        return f"{text};" + "".join(f"\n  -- ${k} = {v!r}" for k, v in self.params.items())


def execute(con: duckdb.DuckDBPyConnection, statements: Iterable[Statement]) -> None:
    """Run ``statements`` in order on ``con``."""
    for statement in statements:
        if statement.params:
            con.execute(statement.sql, dict(statement.params))
        else:
            con.execute(statement.sql)


def count(con: duckdb.DuckDBPyConnection, table: str) -> int:
    """Rows of a temp table (``table`` is one of the plan's own names, never user text)."""
    (n,) = con.execute(f"SELECT count(*) FROM {table}").fetchone() or (0,)
    return int(n)
