"""One API request as the resources see it (:class:`Ctx`), their answer (:class:`Result`), and
how request bodies are read: keys bind case-insensitively, booleans are ``true``/``false``."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import orjson

from cmtoolkit.emulator.api_error import ApiError
from cmtoolkit.emulator.auth import Identity


@dataclass
class Ctx:
    """A request to ``/api/v3.3``: path without the prefix, lower-cased query names, caller."""

    method: str
    path: str
    query: dict[str, str]
    raw_body: bytes
    identity: Identity
    now: int

    def json(self) -> Any:
        if not self.raw_body:
            raise ApiError(400, 400, "Failed to deserialize your request body")
        try:
            return orjson.loads(self.raw_body)
        except orjson.JSONDecodeError:
            raise ApiError(400, 400, "Failed to deserialize your request body") from None

    def obj(self) -> dict[str, Any]:
        """The JSON object body with lower-cased keys (the server binds keys case-insensitively)."""
        body = self.json()
        if not isinstance(body, dict):
            raise ApiError(400, 400, "Failed to deserialize your request body")
        return lower_keys(body)

    def q(self, name: str, default: str | None = None) -> str | None:
        return self.query.get(name, default)


@dataclass
class Result:
    """What a resource answers; the server serialises it (or sends ``raw`` as it is)."""

    status: int
    body: Any = None  # None → empty body
    raw: bytes | None = None  # an already-serialised body
    prefetch: Callable[[], None] | None = None  # work to do after the answer is sent


def lower_keys(d: dict[str, Any]) -> dict[str, Any]:
    return {str(k).lower(): v for k, v in d.items()}


def as_bool(value: Any) -> bool:
    if isinstance(value, bool):
        return value
    return isinstance(value, str) and value.strip().lower() == "true"


def parse_date(text: str) -> int:
    text = text.strip()
    for fmt in ("%Y-%m-%d %H:%M:%S", "%Y-%m-%d %H:%M", "%Y-%m-%d", "%Y/%m/%d"):
        try:
            d = datetime.strptime(text, fmt)
        except ValueError:
            continue
        return int((d - datetime(1970, 1, 1)).total_seconds())
    raise ApiError(400, 800, "Invalid date")
