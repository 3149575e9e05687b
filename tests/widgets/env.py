"""A small but complete set-up the widget, notebook and browser tests share.

An emulated Campaign Monitor account with two lists (custom fields of each kind the mappings
use, a few subscribers), a real workspace (profiles, two file segments) and a connection file
with all three goals whose credential is ``env:CMTK_TEST_API_KEY``.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import polars as pl

from cmtoolkit.connection.file import connection_path, parse_connection, save_connection
from cmtoolkit.workspace import Workspace

CREDENTIAL_ENV = "CMTK_TEST_API_KEY"
#: A unique API key: the sentinel that must never show up in a notebook, a widget or metadata.
SENTINEL_KEY = "sentinel0api0key0f4c3b9e1d7a26c5"
FIELDS = [
    ("interests", "MultiSelectMany", ["golf", "tennis", "chess"]),
    ("loyalty points", "Number", []),
    ("city", "Text", []),
    ("note", "Text", []),
]
SUBSCRIBERS = [
    ("ann@example.com", "Ann Able", {"interests": ["golf"], "loyalty_points": 5, "city": "Oslo"}),
    ("bob@example.com", "Bob Baker", {"loyalty_points": 7, "city": "Paris"}),
    ("cat@example.com", "Cat Cole", {"interests": ["chess", "tennis"], "city": "Rome"}),
    ("dan@example.com", "Dan Dorf", {"loyalty_points": 1}),
]


class Setup:
    """Everything a test needs: ``emulator``, ``ws``, ``client_id``, ``news``, ``customers``."""

    def __init__(self, emulator: Any, cm: Any, root: Path) -> None:
        emulator.reseed(seed_size=0)
        self.emulator, self.cm = emulator, cm
        self.client_id = emulator.client_id
        self.news = cm.create_list(self.client_id, "Newsletter")
        self.customers = cm.create_list(self.client_id, "Customers")
        for list_id in (self.news, self.customers):
            for name, kind, options in FIELDS:
                cm.create_custom_field(list_id, name, kind, options)
        rows = []
        for email, name, fields in SUBSCRIBERS:
            custom = []
            for key, value in fields.items():
                for v in value if isinstance(value, list) else [value]:
                    custom.append({"Key": key.replace("_", " "), "Value": str(v)})
            rows.append({"EmailAddress": email, "Name": name, "CustomFields": custom})
        cm.import_subscribers(self.news, rows, resubscribe=True)
        cm.import_subscribers(self.customers, rows[:2], resubscribe=True)
        self.ws = Workspace.create(root / "workspace")
        self.ws.store.load(
            pl.DataFrame(
                {
                    "profile_id": ["p1", "p2", "p3"],
                    "email": [["ann@example.com"], ["bob@example.com"], ["zed@example.com"]],
                    "full_name": [[], ["Robert Baker"], ["Zed Zero"]],
                    "points": [["10"], [], ["3"]],
                    "city": [["Bergen"], [], ["Lima"]],
                    "nickname": [["annie"], [], []],
                }
            ),
            types={"points": "number", "email": "email"},
        )
        self.set_members("news", ["p1", "p2", "p3"])
        self.set_members("vip", ["p1"])
        self.path = self.write_connection()

    def set_members(self, segment: str, ids: list[str]) -> None:
        (self.ws.path / f"{segment}.csv").write_text("\n".join(ids) + "\n")
        path = self.ws.segments_path
        text = path.read_text() if path.exists() else ""
        if f"\n{segment}:" not in f"\n{text}":
            path.write_text(text + f"{segment}:\n  file: {segment}.csv\n")
        self.ws.segments.refresh(segment)

    def write_connection(self, name: str = "demo") -> Path:
        conn = parse_connection(
            {
                "name": name,
                "campaign_monitor": {
                    "credential": f"env:{CREDENTIAL_ENV}",
                    "client_id": self.client_id,
                },
                "import": {
                    "lists": [self.news],
                    "states": ["Active"],
                    "allow_create": True,
                    "identifiers": [{"field": "EmailAddress", "property": "email"}],
                    "mappings": [
                        {"field": "Name", "property": "full_name", "rule": "set_if_empty"},
                        {"field": "interests", "property": "interests", "rule": "add"},
                        {"field": "loyalty points", "property": "points", "rule": "sum"},
                        {"field": "city", "property": "city", "rule": "set"},
                    ],
                },
                "export": {
                    "segment": "news",
                    "lists": [self.customers],
                    "match_property": "email",
                    "mappings": [
                        {"value": "property", "property": "full_name", "field": "Name"},
                        {"value": "property", "property": "city", "field": "city"},
                    ],
                },
                "targeting": {
                    "lists": [self.news],
                    "field": "Segments",
                    "segments": ["vip", "news"],
                },
            },
            default_name=name,
        )
        return save_connection(conn, connection_path(self.ws.path, name))


def prepare(
    emulator_factory: Callable[..., Any],
    cm_factory: Callable[..., Any],
    tmp_path: Path,
    monkeypatch: Any,
) -> Setup:
    """An emulator whose API key is the sentinel, reachable through ``env:`` as a kernel sees it."""
    emu = emulator_factory(api_key=SENTINEL_KEY)
    monkeypatch.setenv("CMTOOLKIT_API_URL", emu.base_url)
    monkeypatch.setenv(CREDENTIAL_ENV, SENTINEL_KEY)
    monkeypatch.setenv("CMTOOLKIT_CREDENTIALS", str(tmp_path / "credentials.json"))
    monkeypatch.delenv("CM_API_KEY", raising=False)
    return Setup(emu, cm_factory(emu), tmp_path)
