"""Fixtures for batch runs: an emulated account, a workspace with profiles and a connection file.

The goal notebooks run in a real ``cmtoolkit`` kernel (a separate process) that reaches the
in-process emulator over HTTP through ``CMTOOLKIT_API_URL`` and reads the API key from the
environment variable named by the connection's ``env:`` credential.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import polars as pl
import pytest
import yaml

from cmtoolkit.workspace import Workspace

NOTEBOOKS = Path(__file__).resolve().parents[1] / "notebooks"
KEY_ENV = "CMTOOLKIT_BATCH_TEST_KEY"


@pytest.fixture
def notebooks() -> Callable[[str], dict[str, Path]]:
    """``notebooks(name)``: every goal mapped to ``tests/notebooks/<name>.ipynb``."""

    def pick(name: str = "sync_goal") -> dict[str, Path]:
        path = NOTEBOOKS / f"{name}.ipynb"
        return {"import": path, "export": path, "targeting": path}

    return pick


@pytest.fixture(autouse=True)
def _kernel() -> None:
    from cmtoolkit.batch.runner import check_kernel

    check_kernel("cmtoolkit")


@pytest.fixture
def batch_env(emulator: Any, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Any:
    monkeypatch.setenv("CMTOOLKIT_API_URL", emulator.base_url)
    monkeypatch.setenv(KEY_ENV, emulator.api_key)
    monkeypatch.setenv("CMTOOLKIT_CREDENTIALS", str(tmp_path / "credentials.json"))
    monkeypatch.delenv("CMTOOLKIT_RUN_LOCK", raising=False)
    return emulator


@pytest.fixture
def make_workspace(tmp_path: Path, batch_env: Any) -> Callable[..., Workspace]:
    """``make(**overrides)``: a workspace with 3 profiles and ``connections/news.yaml``."""

    def make(name: str = "ws", key_env: str = KEY_ENV, **overrides: Any) -> Workspace:
        ws = Workspace.create(tmp_path / name)
        ws.store.load(
            pl.DataFrame(
                {
                    "profile_id": ["p1", "p2", "p3"],
                    "email": [["nobody1@example.com"], ["nobody2@example.com"], []],
                }
            ),
            types={"email": "email"},
        )
        write_connection(ws, batch_env, key_env=key_env, **overrides)
        return ws

    return make


def write_connection(ws: Workspace, emu: Any, *, key_env: str = KEY_ENV, **overrides: Any) -> Path:
    data: dict[str, Any] = {
        "name": "news",
        "campaign_monitor": {"credential": f"env:{key_env}", "client_id": emu.client_id},
        "import": {
            "lists": [emu.list_ids[0]],
            "states": ["Active"],
            "allow_create": True,
            "identifiers": [{"field": "EmailAddress", "property": "email"}],
            "mappings": [{"field": "Name", "property": "full_name", "rule": "set"}],
        },
    }
    data.update(overrides)
    path = ws.connections_dir / "news.yaml"
    path.write_text(yaml.safe_dump(data, sort_keys=False), encoding="utf-8")
    return path
