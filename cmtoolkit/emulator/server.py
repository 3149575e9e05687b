"""The emulator: a Campaign Monitor API v3.3 server on a stdlib ``ThreadingHTTPServer``.

Paths: ``/api/v3.3/...`` the API (:mod:`cmtoolkit.emulator.api`), ``/oauth`` and ``/oauth/token``
the OAuth endpoints (:mod:`cmtoolkit.emulator.oauth`), ``/_emulator/...`` the control API for
tests (:mod:`cmtoolkit.emulator.control`). Keys and tokens are never logged.
"""

from __future__ import annotations

import gc
import logging
import random
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable, Sequence
from email.message import Message
from http.server import ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qsl, urlsplit

import orjson

from cmtoolkit.emulator.account import Account
from cmtoolkit.emulator.api import Api, Ctx, Result
from cmtoolkit.emulator.api_error import ApiError
from cmtoolkit.emulator.auth import AuthState, IssuedTokens, OAuthApp, OAuthAppLike, Revealable
from cmtoolkit.emulator.control import control
from cmtoolkit.emulator.faults import FaultRule, parse_faults
from cmtoolkit.emulator.handler import Answer, RequestHandler, error_answer
from cmtoolkit.emulator.oauth import authorize, token_endpoint
from cmtoolkit.emulator.ratelimit import RateLimit, rate_headers
from cmtoolkit.emulator.seeding import DEFAULT_LISTS, seed_account
from cmtoolkit.emulator.state import dump_account, load_account, load_state, save_state

log = logging.getLogger(__name__)

API_PREFIX = "/api/v3.3"
DEFAULT_API_KEY = "emulator-dev-api-key-0000000000000000"
FREEZE_THRESHOLD = 50_000
#: Rows written between two ``gc.freeze()`` calls when the emulator owns its process.
FREEZE_STEP = 10_000


class Server(ThreadingHTTPServer):
    """One thread per connection, and a listen backlog deep enough for a burst of clients.

    The stdlib's backlog of 5 reset connections when 50-100 clients connected at once.
    """

    request_queue_size = 1024
    daemon_threads = True


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

    ``latency`` (seconds, ± up to ``jitter``) delays every API and OAuth answer the way a
    wide-area network does: the connection's thread waits, holding no lock, so concurrent
    requests overlap their waits. The control API answers at once.

    ``freeze_growth`` takes what writes added to the account out of the cyclic GC every
    :data:`FREEZE_STEP` rows (see ``_attach``): without it, every full collection walks every
    column, so an import's cost grew with the list (3M rows: 17 → 33 ms per 1000-row import).
    Frozen objects are still freed by reference counting, but cyclic garbage frozen with them
    would never be, so only ``cmtoolkit emulator serve``, whose process is the emulator's own,
    turns it on.
    """

    def __init__(
        self,
        *,
        seed_size: int = 0,
        seed: int = 0,
        person_offset: int = 0,
        api_key: str | Revealable = DEFAULT_API_KEY,
        oauth_apps: Iterable[OAuthAppLike] = (),
        token_lifetime: int = 1209600,
        rotate_refresh_tokens: bool = False,
        faults: str | None = None,
        rate_limit: RateLimit | None = None,
        state_file: str | None = None,
        lists: Sequence[str] = DEFAULT_LISTS,
        clock: Callable[[], float] = time.time,
        prefetch_pages: bool = False,
        page_cache_bytes: int = 0,
        freeze_growth: bool = False,
        latency: float = 0.0,
        jitter: float = 0.0,
    ) -> None:
        if not isinstance(api_key, str):
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
        self.freeze_growth = freeze_growth
        self._frozen_rows = 0
        self.lock = threading.RLock()
        self.latency = 0.0
        self.jitter = 0.0
        # Answers being held back for their network delay right now, and the most at once: how
        # many requests a client really kept in flight, seen from the server's side.
        self.waiting = 0
        self.peak_waiting = 0
        self._random = random.Random(seed)
        self.set_latency(latency, jitter)
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
        saved = load_state(state_file) if state_file else None
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
        self._frozen_rows = rows = self._rows()
        if rows >= FREEZE_THRESHOLD:
            # Millions of long-lived column objects make every full cyclic-GC pass walk them
            # all: paging a 1M list became 4x slower. The account holds no reference cycles
            # (reference counting still frees a replaced account), so take it out of the GC.
            gc.collect()
            gc.freeze()

    def _rows(self) -> int:
        return sum(len(lst) for c in self.account.clients for lst in c.lists)

    def _freeze_growth(self) -> None:
        """After a write: freeze the account once it has grown by FREEZE_STEP rows."""
        rows = self._rows()
        if rows - self._frozen_rows >= FREEZE_STEP:
            self._frozen_rows = rows
            gc.freeze()  # O(1): moves every generation to the permanent one

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

    def issue_token(self, client_id: str | None = None) -> IssuedTokens:
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

    def set_latency(self, latency: float, jitter: float = 0.0) -> None:
        """Seconds added to every API and OAuth answer (``jitter``: a uniform ± spread)."""
        if not (0 <= latency <= 600 and 0 <= jitter <= 600):
            raise ValueError("latency and jitter must be between 0 and 600 seconds")
        with self.lock:
            self.latency, self.jitter = float(latency), float(jitter)

    def wait(self, seconds: float) -> None:
        """Hold one answer back for ``seconds`` in the calling connection's thread."""
        with self.lock:
            self.waiting += 1
            self.peak_waiting = max(self.peak_waiting, self.waiting)
        try:
            time.sleep(seconds)
        finally:
            with self.lock:
                self.waiting -= 1

    def network_delay(self) -> float:
        """One answer's delay: ``latency`` ± a uniform draw within ``jitter``."""
        if not self.jitter:
            return self.latency
        return max(0.0, self.latency + self._random.uniform(-self.jitter, self.jitter))

    # --- persistence ----------------------------------------------------------------------------

    def snapshot(self) -> dict[str, object]:
        with self.lock:
            return {
                "config": {
                    "seed": self.seed,
                    "seed_size": self.seed_size,
                    "person_offset": self.person_offset,
                    "lists": list(self.lists),
                },
                "clock_offset": self._offset,
                "account": dump_account(self.account),
                "auth": self.auth.snapshot(),
            }

    def _restore(self, data: dict[str, Any]) -> None:
        cfg = data.get("config", {})
        self.seed = cfg.get("seed", self.seed)
        self.seed_size = cfg.get("seed_size", self.seed_size)
        self.person_offset = cfg.get("person_offset", self.person_offset)
        self.lists = tuple(cfg.get("lists", self.lists))
        self._offset = data.get("clock_offset", 0.0)
        self.account = load_account(data["account"], self.api_key)
        self.auth.restore(data.get("auth", {}))
        self._attach()

    def save(self, path: str | None = None) -> str | None:
        target = path or self.state_file
        if target:
            save_state(target, self.snapshot())
        return target

    # --- server lifecycle -----------------------------------------------------------------------

    def start(self, host: str = "127.0.0.1", port: int = 0) -> str:
        handler = type("Handler", (RequestHandler,), {"emulator": self})
        self._server = Server((host, port), handler)
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

    def answer(self, method: str, target: str, headers: Message, body: bytes) -> Answer:
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
                out = authorize(self.auth, method, query, body, self.now())
            elif path == "/oauth/token":
                out = token_endpoint(self.auth, method, body, self.now())
            elif path.startswith("/_emulator/"):
                out = control(self, method, path[len("/_emulator/") :], body)
            else:
                out = Answer(404)
            if not path.startswith("/_emulator/"):
                out.delay += self.network_delay()
            self.requests.append((method, path, out.status))
            if self.freeze_growth and method != "GET":
                self._freeze_growth()
        log.debug("%s %s -> %s", method, path, out.status)
        return out

    def _api(
        self, method: str, path: str, query: dict[str, str], headers: Message, body: bytes
    ) -> Answer:
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
                hdrs = rate_headers(60, 0, rule.reset) if rule.kind == "429" else {}
                return error_answer(429, 429, "Rate limit exceeded", hdrs)
            if rule.kind == "500":
                return error_answer(500, 500, "Internal Server Error")
            if rule.kind == "503":
                return error_answer(503, 503, "Service Unavailable")
            if rule.kind == "drop":
                return Answer(0, action="drop")
            if rule.kind == "slow":
                delay = rule.delay
            elif rule.kind == "truncate":
                action = "truncate"
            elif rule.kind == "expire" and auth_header:  # a Bearer request (see above)
                token = self.auth.tokens.get(auth_header.split(None, 1)[1].strip())
                if token is not None:
                    token.expired = True
            break
        extra: dict[str, str] = {}
        if self.rate_limit is not None:
            extra, over = self.rate_limit.count_request(now)
            if over:
                return error_answer(429, 429, "Rate limit exceeded", extra)
        if method != "GET":
            self.api.pages.invalidate()  # any write invalidates pre-rendered pages
        try:
            identity = self.auth.authenticate(auth_header, now)
            result: Result = self.api.handle(Ctx(method, path, query, body, identity, int(now)))
        except ApiError as exc:
            out = error_answer(exc.status, exc.code, exc.message, {**extra, **exc.headers})
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

    def summary(self) -> dict[str, object]:
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
            "latency": {"seconds": self.latency, "jitter": self.jitter},
            "rate_limit": None
            if self.rate_limit is None
            else {
                "limit": self.rate_limit.limit,
                "window": self.rate_limit.window,
                "headers": self.rate_limit.headers,
            },
        }
