from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from cmtoolkit.workspace import Workspace


@pytest.fixture
def ws(tmp_path: Path) -> Workspace:
    return Workspace(tmp_path / "ws", lock_timeout=2.0)


def snapshot(ws: Workspace) -> tuple[Any, ...]:
    """Everything a load could change: definitions, columns and every row."""
    with ws.store.connect() as con:
        return (
            con.execute("SELECT name, type FROM property_definitions ORDER BY name").fetchall(),
            con.execute(
                "SELECT column_name FROM duckdb_columns() WHERE table_name = 'profiles'"
                " ORDER BY column_index"
            ).fetchall(),
            con.execute("SELECT * FROM profiles ORDER BY profile_id").fetchall(),
            con.execute("SELECT * FROM interactions ORDER BY ALL").fetchall(),
        )
