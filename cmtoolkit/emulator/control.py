"""The control API for tests, under ``/_emulator/`` (no auth; loopback only).

=====================  ==========================================================================
GET  /_emulator/state  summary: clients, lists with counts per state, faults, clock, requests
POST /_emulator/reset  back to a freshly seeded account (body may set seed_size/seed/person_offset)
POST /_emulator/seed   same as reset, with the body's settings
GET|POST|DELETE /_emulator/faults   read / set (``{"spec": "..."}``) / clear the fault rules
POST /_emulator/revoke  ``{"token": "..."}`` revokes one access or refresh token; ``{}`` all
POST /_emulator/expire  ``{"token": "..."}`` expires one access token; ``{}`` all
POST /_emulator/clock   ``{"advance": SECONDS}`` moves the emulator clock forward
POST|DELETE /_emulator/ratelimit  ``{"limit": N, "window": SECONDS, "headers": true}`` / off
POST /_emulator/latency ``{"latency": SECONDS, "jitter": SECONDS}`` per API answer (0: none)
POST /_emulator/token   ``{"client_id": "..."}`` issues tokens without the browser step
POST /_emulator/save    writes the state file now
=====================  ==========================================================================
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

import orjson

from cmtoolkit.emulator.auth import IssuedTokens
from cmtoolkit.emulator.faults import FaultRule, FaultSpecError
from cmtoolkit.emulator.handler import Answer


class Controlled(Protocol):
    """The emulator as the control API drives it."""

    faults: list[FaultRule]

    def summary(self) -> dict[str, object]: ...

    def reseed(
        self,
        seed_size: int | None = None,
        seed: int | None = None,
        person_offset: int | None = None,
        lists: Sequence[str] | None = None,
    ) -> None: ...

    def set_faults(self, spec: str | None) -> None: ...

    def revoke(self, token: str | None = None) -> int: ...

    def expire(self, token: str | None = None) -> int: ...

    def now(self) -> float: ...

    def advance(self, seconds: float) -> None: ...

    def set_rate_limit(
        self, limit: int | None, window: float = 60.0, headers: bool = True
    ) -> None: ...

    def issue_token(self, client_id: str | None = None) -> IssuedTokens: ...

    def save(self, path: str | None = None) -> str | None: ...


def control(emu: Controlled, method: str, name: str, body: bytes) -> Answer:
    """Answer ``METHOD /_emulator/NAME`` (see the table above); bad bodies get a 400."""
    try:
        data = orjson.loads(body) if body.strip() else {}
    def set_latency(self, latency: float, jitter: float = 0.0) -> None: ...

    except orjson.JSONDecodeError:
        return Answer(400, orjson.dumps({"error": "body must be JSON"}))
    if not isinstance(data, dict):
        data = {}
    ok = Answer(200, orjson.dumps({"ok": True}))
    try:
        if name == "state" and method == "GET":
            return Answer(200, orjson.dumps(emu.summary()))
        if name in ("reset", "seed") and method == "POST":
            emu.reseed(
                data.get("seed_size"),
                data.get("seed"),
                data.get("person_offset"),
                data.get("lists"),
            )
            return Answer(200, orjson.dumps(emu.summary()))
        if name == "faults":
            if method == "GET":
                return Answer(200, orjson.dumps([r.describe() for r in emu.faults]))
            if method == "POST":
                emu.set_faults(data.get("spec"))
                return ok
            if method == "DELETE":
                emu.set_faults(None)
                return ok
        if name == "revoke" and method == "POST":
            return Answer(200, orjson.dumps({"revoked": emu.revoke(data.get("token"))}))
        if name == "expire" and method == "POST":
            return Answer(200, orjson.dumps({"expired": emu.expire(data.get("token"))}))
        if name == "clock" and method == "POST":
            emu.advance(float(data.get("advance", 0)))
            return Answer(200, orjson.dumps({"now": emu.now()}))
        if name == "ratelimit":
            if method == "POST":
                emu.set_rate_limit(
                    int(data["limit"]),
                    float(data.get("window", 60)),
                    bool(data.get("headers", True)),
                )
                return ok
            if method == "DELETE":
                emu.set_rate_limit(None)
                return ok
        if name == "token" and method == "POST":
            return Answer(200, orjson.dumps(emu.issue_token(data.get("client_id"))))
        if name == "save" and method == "POST":
            return Answer(200, orjson.dumps({"saved": emu.save(data.get("path"))}))
    except (FaultSpecError, KeyError, TypeError, ValueError) as exc:
        return Answer(400, orjson.dumps({"error": str(exc)}))
    return Answer(404)
        if name == "latency" and method == "POST":
            emu.set_latency(float(data.get("latency", 0)), float(data.get("jitter", 0)))
            return ok
