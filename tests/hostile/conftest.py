"""The hostile-input corpus's world: a sample workspace (the committed data/ folder loaded into a
real DuckDB file, segments, a connection to an emulator), copied fresh for every case, and the
checks every case shares: exact exit code, a message naming the culprit and what to do, no
traceback, the store byte for byte unchanged."""

from __future__ import annotations

import hashlib
import shutil
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml

from cmtoolkit.cli import main
from cmtoolkit.emulator import Emulator

DATA = Path(__file__).resolve().parents[2] / "data"
KEY_ENV = "CMTOOLKIT_HOSTILE_KEY"


@dataclass
class Answer:
    code: int
    out: str
    err: str


def checksum(ws: Path) -> str:
    """The store's bytes and every file a command might change (journals, segments, connections)."""
    digest = hashlib.sha256()
    for path in sorted(ws.rglob("*")):
        if path.is_file() and ".locks" not in path.parts:
            digest.update(str(path.relative_to(ws)).encode())
            digest.update(path.read_bytes())
    return digest.hexdigest()


def connection_data(emu: Emulator) -> dict[str, Any]:
    return {
        "name": "c1",
        "id": "0c1d2e3f",
        "campaign_monitor": {"credential": f"env:{KEY_ENV}", "client_id": emu.client_id},
        "import": {
            "lists": [emu.list_ids[0]],
            "states": ["Active"],
            "allow_create": True,
            "identifiers": [{"field": "EmailAddress", "property": "email"}],
            "mappings": [{"field": "Name", "property": "full_name", "rule": "set"}],
        },
    }


@pytest.fixture(scope="session")
def template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The sample workspace, loaded once: data/profiles.csv, interactions, segments."""
    ws = tmp_path_factory.mktemp("hostile") / "ws"
    assert main(["profiles", "load", str(DATA / "profiles.csv"), "--workspace", str(ws)]) == 0
    assert (
        main(["interactions", "load", str(DATA / "interactions.csv"), "--workspace", str(ws)]) == 0
    )
    shutil.copy(DATA / "segments.yaml", ws / "segments.yaml")
    shutil.copy(DATA / "vip_ids.csv", ws / "vip_ids.csv")
    assert main(["segments", "refresh", "--workspace", str(ws)]) == 0
    return ws


@pytest.fixture(scope="session")
def emu() -> Iterator[Emulator]:
    emulator = Emulator(seed_size=40, seed=3)
    emulator.start("127.0.0.1", 0)
    yield emulator
    emulator.stop()


@pytest.fixture
def ws(template: Path, emu: Emulator, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A fresh copy of the sample workspace with ``connections/c1.yaml`` on the emulator."""
    path = tmp_path / "ws"
    shutil.copytree(template, path)
    (path / "connections").mkdir(exist_ok=True)
    (path / "connections" / "c1.yaml").write_text(yaml.safe_dump(connection_data(emu)))
    monkeypatch.setenv("CMTOOLKIT_API_URL", emu.base_url or "")
    monkeypatch.setenv(KEY_ENV, emu.api_key)
    monkeypatch.setenv("CMTOOLKIT_CREDENTIALS", str(tmp_path / "credentials.json"))
    monkeypatch.setenv("CMTOOLKIT_LOCK_TIMEOUT", "2")
    monkeypatch.delenv("CMTOOLKIT_RUN_LOCK", raising=False)
    return path


@pytest.fixture
def cli(capsys: pytest.CaptureFixture[str]) -> Callable[..., Answer]:
    """``cli(*args)``: the CLI in-process; SystemExit (argparse) becomes its code."""

    def run(*args: str) -> Answer:
        try:
            code = main(list(args))
        except SystemExit as exc:
            code = exc.code if isinstance(exc.code, int) else 2
        captured = capsys.readouterr()
        return Answer(code, captured.out, captured.err)

    return run
