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
POST /_emulator/campaigns  ``{"name", "list_id"?, "hours"?, "tags"?}`` sends a campaign (its
                        activity spans the last ``hours``, default 72)
POST /_emulator/activity   ``{"campaign_id", "hours"?}`` adds later opens and clicks up to now
=====================  ==========================================================================
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

import orjson

from cmtoolkit.emulator import activity
from cmtoolkit.emulator.account import Account
from cmtoolkit.emulator.api.routes import Api
from cmtoolkit.emulator.auth import IssuedTokens
from cmtoolkit.emulator.faults import FaultRule, FaultSpecError
from cmtoolkit.emulator.handler import Answer


class Controlled(Protocol):
    """The emulator as the control API drives it."""

    faults: list[FaultRule]
    account: Account
    api: Api
    seed: int

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

    def set_latency(self, latency: float, jitter: float = 0.0) -> None: ...

    def issue_token(self, client_id: str | None = None) -> IssuedTokens: ...

    def save(self, path: str | None = None) -> str | None: ...


def control(emu: Controlled, method: str, name: str, body: bytes) -> Answer:
    """Answer ``METHOD /_emulator/NAME`` (see the table above); bad bodies get a 400."""
    try:
        data = orjson.loads(body) if body.strip() else {}
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
        if name == "latency" and method == "POST":
            emu.set_latency(float(data.get("latency", 0)), float(data.get("jitter", 0)))
            return ok
        if name == "token" and method == "POST":
            return Answer(200, orjson.dumps(emu.issue_token(data.get("client_id"))))
        if name in ("campaigns", "activity") and method == "POST":
            return Answer(200, orjson.dumps(_campaigns(emu, name, data)))
        if name == "save" and method == "POST":
            return Answer(200, orjson.dumps({"saved": emu.save(data.get("path"))}))
    except (FaultSpecError, KeyError, TypeError, ValueError) as exc:
        return Answer(400, orjson.dumps({"error": str(exc)}))
    return Answer(404)


def _campaigns(emu: Controlled, name: str, data: dict[str, object]) -> dict[str, object]:
    """Send a campaign, or add activity to one (``activity.py``); pages rendered before are
    stale (the send changes subscriber states)."""
    client = emu.account.clients[0]
    now = int(emu.now())
    hours = data.get("hours")
    if hours is not None and not isinstance(hours, (int, float)):
        raise ValueError("hours must be a number")
    emu.api.pages.invalidate()
    if name == "activity":
        wanted = data.get("campaign_id")
        found = next((c for c in client.campaigns if c.campaign_id == wanted), None)
        if found is None:
            raise KeyError(f"no campaign {wanted!r}")
        return activity.add_activity(found, now, hours)
    list_id = data.get("list_id") or client.lists[0].list_id
    lst = next((x for x in client.lists if x.list_id == list_id), None)
    if lst is None:
        raise KeyError(f"no list {list_id!r}")
    tags = data.get("tags") or []
    if not isinstance(tags, list):
        raise ValueError("tags must be a list")
    return activity.send_campaign(
        emu.seed,
        client.campaigns,
        lst,
        emu.api.new_id("campaign"),
        str(data.get("name") or f"Campaign {len(client.campaigns) + 1}"),
        now,
        72.0 if hours is None else float(hours),
        [str(t) for t in tags],
    )
