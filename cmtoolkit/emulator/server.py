"""The emulator's HTTP server (stdlib ``ThreadingHTTPServer``) and its in-process handle.

Paths: ``/api/v3.3/...`` the API (see :mod:`cmtoolkit.emulator.api`), ``/oauth`` and
``/oauth/token`` the OAuth endpoints, ``/_emulator/...`` the control API for tests (no auth;
loopback only):

=====================  ==========================================================================
GET  /_emulator/state  summary: clients, lists with counts per state, faults, clock, requests
POST /_emulator/reset  back to a freshly seeded account (body may set seed_size/seed/person_offset)
POST /_emulator/seed   same as reset, with the body's settings
GET|POST|DELETE /_emulator/faults   read / set (``{"spec": "..."}``) / clear the fault rules
POST /_emulator/revoke  ``{"token": "..."}`` revokes one access or refresh token; ``{}`` all
POST /_emulator/expire  ``{"token": "..."}`` expires one access token; ``{}`` all
POST /_emulator/clock   ``{"advance": SECONDS}`` moves the emulator clock forward
POST|DELETE /_emulator/ratelimit  ``{"limit": N, "window": SECONDS, "headers": true}`` / off
POST /_emulator/token   ``{"client_id": "..."}`` issues tokens without the browser step
POST /_emulator/save    writes the state file now
=====================  ==========================================================================

Keys and tokens are never logged.
"""

from __future__ import annotations

import contextlib
import gc
import html
import logging
import socket
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit

import orjson

from cmtoolkit.emulator import state as state_file
from cmtoolkit.emulator.account import STATES, Account
from cmtoolkit.emulator.api import Api, Ctx, Result
from cmtoolkit.emulator.auth import ApiError, AuthState, OAuthApp, OAuthProblem
from cmtoolkit.emulator.faults import FaultRule, FaultSpecError, parse_faults
from cmtoolkit.emulator.seeding import DEFAULT_LISTS, seed_account

log = logging.getLogger(__name__)

API_PREFIX = "/api/v3.3"
DEFAULT_API_KEY = "emulator-dev-api-key-0000000000000000"
JSON = "application/json; charset=utf-8"
FREEZE_THRESHOLD = 50_000


@dataclass
class RateLimit:
    """At most ``limit`` API requests per ``window`` seconds of the emulator clock."""

    limit: int
    window: float = 60.0
    headers: bool = True
    started: float = 0.0
    count: int = 0


@dataclass
class Answer:
    status: int
    body: bytes = b""
    headers: dict[str, str] | None = None
    action: str | None = None  # "drop" | "truncate"
    delay: float = 0.0
    content_type: str = JSON
    after: Callable[[], None] | None = None  # runs (under the lock) once the answer is sent


class Emulator:
    """A local Campaign Monitor API v3.3 server with a seeded account and fault injection.

    ``emu.start()`` returns the base URL (``http://HOST:PORT/api/v3.3``); ``emu.account`` is the
    live account for assertions (hold ``emu.lock`` while touching it from another thread).
    ``clock`` (seconds since the epoch) defaults to ``time.time``; ``advance()`` moves it forward
    so token expiry and rate-limit windows are testable without sleeping.

    ``prefetch_pages`` renders the next page of a paged read right after answering one, so a
    sequential reader finds it ready. That only pays when the reader runs in another process
    (``cmtoolkit emulator serve`` turns it on); in-process it would just compete for the GIL.
    ``page_cache_bytes`` keeps rendered pages until the next write (oldest dropped first), so
    re-reading a list that fits costs no rendering.
    """

    def __init__(
        self,
        *,
        seed_size: int = 0,
        seed: int = 0,
        person_offset: int = 0,
        api_key: str = DEFAULT_API_KEY,
        oauth_apps: Iterable[Any] = (),
        token_lifetime: int = 1209600,
        rotate_refresh_tokens: bool = False,
        faults: str | None = None,
        rate_limit: RateLimit | None = None,
        state_file: str | None = None,
        lists: Sequence[str] = DEFAULT_LISTS,
        clock: Callable[[], float] = time.time,
        prefetch_pages: bool = False,
        page_cache_bytes: int = 0,
    ) -> None:
        if hasattr(api_key, "reveal"):
            api_key = api_key.reveal()
        self.seed_size = seed_size
        self.seed = seed
        self.person_offset = person_offset
        self.lists = tuple(lists)
        self.api_key = api_key
        self.state_file = state_file
        self.rate_limit = rate_limit
        self.prefetch_pages = prefetch_pages
        self.page_cache_bytes = page_cache_bytes
        self.lock = threading.RLock()
        self._clock = clock
        self._offset = 0.0
        self.requests: deque[tuple[str, str, int]] = deque(maxlen=10_000)
        self.request_count = 0
        apps = {a.client_id: a for a in (OAuthApp.coerce(x) for x in oauth_apps)}
        self.auth = AuthState(
            api_key=api_key,
            apps=apps,
            token_lifetime=token_lifetime,
            rotate_refresh_tokens=rotate_refresh_tokens,
        )
        self.faults: list[FaultRule] = parse_faults(faults, seed)
        self.account: Account
        saved = state_file_load(state_file)
        if saved is not None:
            self._restore(saved)
        else:
            self._seed()
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None
        self.base_url: str | None = None

    # --- clock ----------------------------------------------------------------------------------

    def now(self) -> float:
        return self._clock() + self._offset

    def advance(self, seconds: float) -> None:
        """Move the emulator clock forward (token expiry, rate-limit windows, status dates)."""
        with self.lock:
            self._offset += seconds

    # --- account --------------------------------------------------------------------------------

    def _seed(self) -> None:
        self.account = seed_account(
            seed=self.seed,
            seed_size=self.seed_size,
            person_offset=self.person_offset,
            api_key=self.api_key,
            lists=self.lists,
        )
        self._attach()

    def _attach(self) -> None:
        self.api = Api(self.account, self.seed, self.page_cache_bytes)
        self.auth.client_keys = {c.api_key: c.client_id for c in self.account.clients}
        rows = sum(len(lst) for c in self.account.clients for lst in c.lists)
        if rows >= FREEZE_THRESHOLD:
            # Millions of long-lived column objects make every full cyclic-GC pass walk them
            # all: paging a 1M list became 4x slower. The account holds no reference cycles
            # (reference counting still frees a replaced account), so take it out of the GC.
            gc.collect()
            gc.freeze()

    def reseed(
        self,
        seed_size: int | None = None,
        seed: int | None = None,
        person_offset: int | None = None,
        lists: Sequence[str] | None = None,
    ) -> None:
        """Replace the account with a freshly seeded one (tokens and faults are kept)."""
        with self.lock:
            if seed_size is not None:
                self.seed_size = seed_size
            if seed is not None:
                self.seed = seed
            if person_offset is not None:
                self.person_offset = person_offset
            if lists is not None:
                self.lists = tuple(lists)
            self._seed()

    reset = reseed

    @property
    def client_id(self) -> str:
        return self.account.clients[0].client_id

    @property
    def list_ids(self) -> list[str]:
        return [lst.list_id for lst in self.account.clients[0].lists]

    # --- faults, tokens, rate limit -------------------------------------------------------------

    def set_faults(self, spec: str | None) -> None:
        with self.lock:
            self.faults = parse_faults(spec, self.seed)

    def revoke(self, token: str | None = None) -> int:
        with self.lock:
            return self.auth.revoke(token)

    def expire(self, token: str | None = None) -> int:
        with self.lock:
            return self.auth.expire(token)

    def issue_token(self, client_id: str | None = None) -> dict[str, Any]:
        """OAuth tokens for an app without the browser step (tests)."""
        with self.lock:
            cid = client_id or next(iter(self.auth.apps), "emulator")
            t = self.auth.issue_token(cid, self.now())
            return {
                "access_token": t.access_token,
                "expires_in": t.lifetime,
                "refresh_token": t.refresh_token,
            }

    def set_rate_limit(self, limit: int | None, window: float = 60.0, headers: bool = True) -> None:
        with self.lock:
            self.rate_limit = (
                None
                if limit is None
                else RateLimit(limit, window, headers, started=self.now(), count=0)
            )

    # --- persistence ----------------------------------------------------------------------------

    def snapshot(self) -> dict[str, Any]:
        with self.lock:
            return {
                "config": {
                    "seed": self.seed,
                    "seed_size": self.seed_size,
                    "person_offset": self.person_offset,
                    "lists": list(self.lists),
                },
                "clock_offset": self._offset,
                "account": state_file.dump_account(self.account),
                "auth": self.auth.snapshot(),
            }

    def _restore(self, data: dict[str, Any]) -> None:
        cfg = data.get("config", {})
        self.seed = cfg.get("seed", self.seed)
        self.seed_size = cfg.get("seed_size", self.seed_size)
        self.person_offset = cfg.get("person_offset", self.person_offset)
        self.lists = tuple(cfg.get("lists", self.lists))
        self._offset = data.get("clock_offset", 0.0)
        self.account = state_file.load_account(data["account"], self.api_key)
        self.auth.restore(data.get("auth", {}))
        self._attach()

    def save(self, path: str | None = None) -> str | None:
        target = path or self.state_file
        if target:
            state_file.save(target, self.snapshot())
        return target

    # --- server lifecycle -----------------------------------------------------------------------

    def start(self, host: str = "127.0.0.1", port: int = 0) -> str:
        handler = type("Handler", (_Handler,), {"emulator": self})
        self._server = ThreadingHTTPServer((host, port), handler)
        self._server.daemon_threads = True
        real_port = self._server.server_address[1]
        shown = f"[{host}]" if ":" in host else host
        self.origin = f"http://{shown}:{real_port}"
        self.port = real_port
        self.base_url = self.origin + API_PREFIX
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.1}, daemon=True
        )
        self._thread.start()
        return self.base_url

    def stop(self) -> None:
        """Stop serving and write the state file (when one is set)."""
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None
        self.save()

    def __enter__(self) -> Emulator:
        if self._server is None:
            self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # --- request handling (called by the handler threads) ---------------------------------------

    def answer(self, method: str, target: str, headers: Any, body: bytes) -> Answer:
        split = urlsplit(target)
        path = split.path
        query: dict[str, str] = {}
        for k, v in parse_qsl(split.query, keep_blank_values=True):
            query.setdefault(k.lower(), v)
        with self.lock:
            self.request_count += 1
            if path.startswith(API_PREFIX + "/"):
                out = self._api(method, path[len(API_PREFIX) :], query, headers, body)
            elif path in ("/oauth", "/oauth/"):
                out = self._authorize(method, query, body)
            elif path == "/oauth/token":
                out = self._token(method, body)
            elif path.startswith("/_emulator/"):
                out = self._control(method, path[len("/_emulator/") :], body)
            else:
                out = Answer(404)
            self.requests.append((method, path, out.status))
        log.debug("%s %s -> %s", method, path, out.status)
        return out

    def _api(self, method: str, path: str, query: dict[str, str], headers: Any, body: bytes):
        now = self.now()
        auth_header = headers.get("Authorization")
        bearer = (auth_header or "").lower().startswith("bearer ")
        delay = 0.0
        action = None
        for rule in self.faults:
            if rule.kind == "expire" and not bearer:
                continue
            if not rule.matches(method, path) or not rule.decide():
                continue
            if rule.kind in ("429", "429-bare"):
                hdrs = _rate_headers(60, 0, rule.reset) if rule.kind == "429" else {}
                return _error(429, 429, "Rate limit exceeded", hdrs)
            if rule.kind == "500":
                return _error(500, 500, "Internal Server Error")
            if rule.kind == "503":
                return _error(503, 503, "Service Unavailable")
            if rule.kind == "drop":
                return Answer(0, action="drop")
            if rule.kind == "slow":
                delay = rule.delay
            elif rule.kind == "truncate":
                action = "truncate"
            elif rule.kind == "expire":
                token = self.auth.tokens.get(auth_header.split(None, 1)[1].strip())
                if token is not None:
                    token.expired = True
            break
        extra: dict[str, str] = {}
        rl = self.rate_limit
        if rl is not None:
            if now >= rl.started + rl.window:
                rl.started, rl.count = now, 0
            rl.count += 1
            reset = max(0, int(rl.started + rl.window - now + 0.999))
            if rl.headers:
                extra = _rate_headers(rl.limit, max(0, rl.limit - rl.count), reset)
            if rl.count > rl.limit:
                return _error(429, 429, "Rate limit exceeded", extra)
        if method != "GET":
            self.api.generation += 1  # any write invalidates pre-rendered pages
        try:
            identity = self.auth.authenticate(auth_header, now)
            result: Result = self.api.handle(Ctx(method, path, query, body, identity, int(now)))
        except ApiError as exc:
            out = _error(exc.status, exc.code, exc.message, {**extra, **exc.headers})
            out.body = orjson.dumps(exc.body())
        else:
            if result.raw is not None:
                payload = result.raw
            elif result.body is None or result.status == 404:
                payload = b""
            else:
                payload = orjson.dumps(result.body)
            after = result.prefetch if self.prefetch_pages else None
            out = Answer(result.status, payload, extra, after=after)
        out.delay = delay
        out.action = action
        return out

    def after_answer(self, work: Callable[[], None]) -> None:
        with self.lock:
            try:
                work()
            except Exception:  # pre-rendering is an optimisation; never fail a connection
                log.exception("pre-rendering failed")

    def _authorize(self, method: str, query: dict[str, str], body: bytes) -> Answer:
        params = query
        if method == "POST":
            params = {k.lower(): v for k, v in parse_qsl(body.decode("utf-8", "replace"))}
        elif method != "GET":
            return Answer(405)
        client_id = params.get("client_id", "")
        redirect_uri = params.get("redirect_uri", "")
        scope = params.get("scope", "")
        st = params.get("state", "")
        try:
            app = self.auth.check_authorize(client_id, redirect_uri)
        except OAuthProblem as exc:
            page = f"<!doctype html><title>Error</title><h1>{exc.error}</h1><p>{exc.description}"
            return Answer(400, page.encode(), content_type="text/html; charset=utf-8")
        if method == "GET":
            hidden = "".join(
                f'<input type="hidden" name="{k}" value="{html.escape(v)}">'
                for k, v in (
                    ("client_id", client_id),
                    ("redirect_uri", redirect_uri),
                    ("scope", scope),
                    ("state", st),
                )
            )
            page = (
                "<!doctype html><html><head><meta charset='utf-8'>"
                "<title>Authorize application</title></head><body>"
                f"<h1>Allow app {html.escape(app.client_id)} to access your account?</h1>"
                f"<p>Permissions: {html.escape(scope)}</p>"
                f'<form method="post" action="/oauth">{hidden}'
                '<button type="submit" name="decision" value="allow">Allow access</button> '
                '<button type="submit" name="decision" value="deny">Deny</button>'
                "</form></body></html>"
            )
            return Answer(200, page.encode(), content_type="text/html; charset=utf-8")
        if params.get("decision", "allow") == "allow":
            answer = {"code": self.auth.grant(client_id, redirect_uri, scope, self.now())}
        else:
            answer = {"error": "access_denied", "error_description": "The user denied access"}
        if st:
            answer["state"] = st
        sep = "&" if "?" in redirect_uri else "?"
        location = redirect_uri + sep + urlencode(answer)
        return Answer(302, b"", {"Location": location}, content_type="text/plain")

    def _token(self, method: str, body: bytes) -> Answer:
        if method != "POST":
            return Answer(405)
        form = dict(parse_qsl(body.decode("utf-8", "replace"), keep_blank_values=True))
        try:
            tokens = self.auth.token_request(form, self.now())
        except OAuthProblem as exc:
            data = {"error": exc.error, "error_description": exc.description}
            return Answer(exc.status, orjson.dumps(data))
        return Answer(200, orjson.dumps(tokens))

    def summary(self) -> dict[str, Any]:
        return {
            "base_url": self.base_url,
            "seed": self.seed,
            "seed_size": self.seed_size,
            "person_offset": self.person_offset,
            "now": self.now(),
            "request_count": self.request_count,
            "clients": [
                {
                    "ClientID": c.client_id,
                    "Name": c.name,
                    "Suppressed": len(c.suppression),
                    "Lists": [
                        {
                            "ListID": lst.list_id,
                            "Title": lst.title,
                            "Subscribers": len(lst),
                            "States": lst.state_counts(),
                            "CustomFields": [f.name for f in lst.fields],
                        }
                        for lst in c.lists
                    ],
                }
                for c in self.account.clients
            ],
            "faults": [r.describe() for r in self.faults],
            "tokens": len(self.auth.tokens),
            "rate_limit": None
            if self.rate_limit is None
            else {
                "limit": self.rate_limit.limit,
                "window": self.rate_limit.window,
                "headers": self.rate_limit.headers,
            },
        }

    def _control(self, method: str, name: str, body: bytes) -> Answer:
        try:
            data = orjson.loads(body) if body.strip() else {}
        except orjson.JSONDecodeError:
            return Answer(400, orjson.dumps({"error": "body must be JSON"}))
        if not isinstance(data, dict):
            data = {}
        ok = Answer(200, orjson.dumps({"ok": True}))
        try:
            if name == "state" and method == "GET":
                return Answer(200, orjson.dumps(self.summary()))
            if name in ("reset", "seed") and method == "POST":
                self.reseed(
                    data.get("seed_size"),
                    data.get("seed"),
                    data.get("person_offset"),
                    data.get("lists"),
                )
                return Answer(200, orjson.dumps(self.summary()))
            if name == "faults":
                if method == "GET":
                    return Answer(200, orjson.dumps([r.describe() for r in self.faults]))
                if method == "POST":
                    self.set_faults(data.get("spec"))
                    return ok
                if method == "DELETE":
                    self.set_faults(None)
                    return ok
            if name == "revoke" and method == "POST":
                return Answer(200, orjson.dumps({"revoked": self.revoke(data.get("token"))}))
            if name == "expire" and method == "POST":
                return Answer(200, orjson.dumps({"expired": self.expire(data.get("token"))}))
            if name == "clock" and method == "POST":
                self.advance(float(data.get("advance", 0)))
                return Answer(200, orjson.dumps({"now": self.now()}))
            if name == "ratelimit":
                if method == "POST":
                    self.set_rate_limit(
                        int(data["limit"]),
                        float(data.get("window", 60)),
                        bool(data.get("headers", True)),
                    )
                    return ok
                if method == "DELETE":
                    self.set_rate_limit(None)
                    return ok
            if name == "token" and method == "POST":
                return Answer(200, orjson.dumps(self.issue_token(data.get("client_id"))))
            if name == "save" and method == "POST":
                return Answer(200, orjson.dumps({"saved": self.save(data.get("path"))}))
        except (FaultSpecError, KeyError, TypeError, ValueError) as exc:
            return Answer(400, orjson.dumps({"error": str(exc)}))
        return Answer(404)


def state_file_load(path: str | None) -> dict[str, Any] | None:
    return state_file.load(path) if path else None


def _rate_headers(limit: int, remaining: int, reset: int) -> dict[str, str]:
    return {
        "X-RateLimit-Limit": str(limit),
        "X-RateLimit-Remaining": str(remaining),
        "X-RateLimit-Reset": str(reset),
    }


def _error(status: int, code: int, message: str, headers: dict[str, str] | None = None) -> Answer:
    return Answer(status, orjson.dumps({"Code": code, "Message": message}), headers or {})


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "cmtoolkit-emulator"
    sys_version = ""
    emulator: Emulator

    def setup(self) -> None:
        super().setup()
        with contextlib.suppress(OSError):
            self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def log_message(self, format: str, *args: Any) -> None:
        pass  # request lines may carry emails; the emulator logs method and path itself

    def _handle(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        out = self.emulator.answer(self.command, self.path, self.headers, body)
        if out.action == "drop":
            self._close()
            return
        if out.delay:
            time.sleep(out.delay)
        self.send_response(out.status)
        self.send_header("Content-Type", out.content_type)
        for k, v in (out.headers or {}).items():
            self.send_header(k, v)
        if out.action == "truncate":
            self.send_header("Content-Length", str(len(out.body) + 64))
            self.end_headers()
            self.wfile.write(out.body[: len(out.body) // 2])
            self.wfile.flush()
            self._close()
            return
        self.send_header("Content-Length", str(len(out.body)))
        if self.command != "HEAD":
            # One write for head and body: two small writes meet Nagle + delayed ACK (40 ms).
            self._headers_buffer.append(b"\r\n" + out.body)
            self.flush_headers()
        else:
            self.end_headers()
        if out.after is not None:
            self.wfile.flush()
            self.emulator.after_answer(out.after)

    def _close(self) -> None:
        self.close_connection = True
        try:
            self.wfile.flush()
            self.connection.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass

    do_GET = do_POST = do_PUT = do_DELETE = do_HEAD = _handle


STATE_NAMES = STATES
