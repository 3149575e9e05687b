"""One HTTP exchange with Campaign Monitor: send, map the answer to a typed error, retry.

Everything that touches ``requests`` lives here, so the rest of the package sees only decoded
payloads and :mod:`cmtoolkit.errors` classes. Errors are built *outside* ``except`` blocks so no
``requests`` exception (whose ``.request`` carries the Authorization header) is ever chained to
what we raise.

Mapping (status → error): 400 BadRequest, 401 AuthenticationError (121 TokenExpired, 120
TokenInvalid, 122 TokenRevoked, 60 PermissionDenied), 403 PermissionDenied, 404 NotFound,
429 RateLimited, 5xx ServerError, no/partial answer TransportError, timeout RequestTimeout.
"""

from __future__ import annotations

import logging
import os
import re
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any, Protocol
from urllib.parse import urlsplit

import orjson
import requests
from requests.adapters import HTTPAdapter
from urllib3.exceptions import NewConnectionError, ReadTimeoutError

from cmtoolkit.errors import (
    AuthenticationError,
    BadRequest,
    CampaignMonitorError,
    NotFound,
    PermissionDenied,
    RateLimited,
    RequestTimeout,
    ServerError,
    TokenExpired,
    TokenInvalid,
    TokenRevoked,
    TransportError,
)

from .concurrency import DEFAULT_MAX_IN_FLIGHT, Flow
from .retry import RetryPolicy, server_wait

__all__ = ["DEFAULT_BASE_URL", "Transport", "decode_json", "origin_of", "resolve_base_url"]

log = logging.getLogger("cmtoolkit.campaign_monitor")

DEFAULT_BASE_URL = "https://api.createsend.com/api/v3.3"
RECONNECT = "run `cmtoolkit auth login` to reconnect"
#: 401 codes that mean "no such id in this account", not a refused credential.
UNKNOWN_ID_CODES = {101: "list", 102: "client"}
IDEMPOTENT_METHODS = frozenset({"GET", "PUT", "DELETE", "HEAD", "OPTIONS"})

Params = Sequence[tuple[str, str]] | Mapping[str, str] | None
Decoder = Callable[[bytes], Any]


class Authorizer(Protocol):
    def authorization(self) -> str: ...


def resolve_base_url(base_url: str | None = None) -> str:
    """The explicit base URL, else ``CMTOOLKIT_API_URL``, else the real API."""
    return (base_url or os.environ.get("CMTOOLKIT_API_URL") or DEFAULT_BASE_URL).rstrip("/")


def origin_of(base_url: str) -> str:
    """``scheme://host[:port]`` of a base URL: where ``/oauth`` and ``/oauth/token`` live."""
    parts = urlsplit(base_url)
    return f"{parts.scheme}://{parts.netloc}"


def decode_json(content: bytes) -> Any:
    """orjson-decode a body; an empty body (update, delete, unsubscribe) is None."""
    return orjson.loads(content) if content.strip() else None


def new_session(pool_size: int = 16) -> requests.Session:
    """A pooled session; retries are ours (urllib3's are off so they are counted once)."""
    session = requests.Session()
    adapter = HTTPAdapter(pool_connections=4, pool_maxsize=pool_size, max_retries=0)
    session.mount("https://", adapter)
    session.mount("http://", adapter)
    return session


def _exception_chain(exc: BaseException) -> list[BaseException]:
    """``exc`` and what it wraps (args, ``reason``, causes), bounded: urllib3 nests deeply."""
    out: list[BaseException] = []
    stack = [exc]
    while stack and len(out) < 20:
        e = stack.pop()
        out.append(e)
        stack.extend(a for a in e.args if isinstance(a, BaseException))
        for nested in (getattr(e, "reason", None), e.__cause__, e.__context__):
            if isinstance(nested, BaseException):
                stack.append(nested)
    return out


def _transport_error(exc: requests.RequestException, method: str, path: str) -> TransportError:
    """Classify a requests failure; never copies its text (it may hold URLs and headers)."""
    chain = _exception_chain(exc)
    where = f"{method} {path}"
    if isinstance(exc, requests.Timeout) or any(isinstance(e, ReadTimeoutError) for e in chain):
        connect = isinstance(exc, requests.ConnectTimeout)
        err: TransportError = RequestTimeout(
            f"Campaign Monitor did not answer {where} in time "
            f"({'connect' if connect else 'read'} timeout). Check the network, or raise the "
            "timeout if the API is slow; the call can be retried.",
            method=method,
            path=path,
        )
        err.request_sent = not connect
        return err
    not_sent = any(isinstance(e, NewConnectionError | ConnectionRefusedError) for e in chain)
    err = TransportError(
        f"No complete answer from Campaign Monitor for {where} ({type(exc).__name__}: the "
        "connection failed, was reset or the body was cut). Check the network or the "
        "CMTOOLKIT_API_URL setting; the call can be retried.",
        method=method,
        path=path,
    )
    err.request_sent = not not_sent
    return err


def error_for_response(
    status: int, headers: Mapping[str, str], content: bytes, method: str, path: str
) -> CampaignMonitorError:
    """The typed error for a non-2xx answer; a non-JSON body (a proxy's page) maps by status."""
    code: int | None = None
    message = ""
    result_data: object = None
    try:
        body = orjson.loads(content) if content else None
    except orjson.JSONDecodeError:
        body = None
    if isinstance(body, dict):
        raw_code = body.get("Code")
        code = raw_code if isinstance(raw_code, int) else None
        message = str(body.get("Message") or "").strip()
        result_data = body.get("ResultData")
    said = (
        f" (code {code}: {message})" if code is not None else (f" ({message})" if message else "")
    )
    where = f"{method} {path}"
    kw: dict[str, Any] = {
        "status": status,
        "code": code,
        "result_data": result_data,
        "method": method,
        "path": path,
    }
    if status == 400:
        return BadRequest(
            f"Campaign Monitor refused {where} as invalid{said}. Fix the request data.", **kw
        )
    if status == 401:
        if code == 121:
            return TokenExpired(
                f"The OAuth access token expired{said} and could not be refreshed; {RECONNECT}.",
                **kw,
            )
        if code == 120:
            return TokenInvalid(f"The OAuth access token is invalid{said}; {RECONNECT}.", **kw)
        if code == 122:
            return TokenRevoked(f"The OAuth access token was revoked{said}; {RECONNECT}.", **kw)
        if code in UNKNOWN_ID_CODES:
            # HTTP 401 is how Campaign Monitor answers an id that is not in this account: the
            # credential works, the id does not (a deleted list, a client of another account).
            kind = UNKNOWN_ID_CODES[code]
            found = re.search(rf"/{kind}s/([^/.?]+)", path)
            ident = f" {found.group(1)}" if found else ""
            return NotFound(
                f"Campaign Monitor has no {kind}{ident} in this account{said} for {where}: it "
                f"was deleted or belongs to another account. Pick an existing {kind} "
                "(cmtoolkit status CONNECTION lists them).",
                **kw,
            )
        if code == 60:
            return PermissionDenied(
                f"The credential lacks a permission needed for {where}{said}; {RECONNECT} "
                "granting the required scopes, or use an API key with access.",
                **kw,
            )
        return AuthenticationError(
            f"Campaign Monitor refused the credential for {where}{said}. Check the API key and "
            f"client ID, or {RECONNECT}.",
            **kw,
        )
    if status == 403:
        return PermissionDenied(
            f"Campaign Monitor forbids {where}{said}; this account or credential cannot use it.",
            **kw,
        )
    if status == 404:
        return NotFound(
            f"Campaign Monitor found nothing at {where}{said}. Check the client, list or "
            "subscriber it names.",
            **kw,
        )
    if status == 429:
        wait = server_wait(headers)
        hint = f"wait {wait:.0f} s" if wait is not None else "wait"
        return RateLimited(
            f"Campaign Monitor rate-limited {where}{said}; {hint} and try again.",
            retry_after=wait,
            **kw,
        )
    if status >= 500:
        err = ServerError(
            f"Campaign Monitor failed on {where} with HTTP {status}{said}. Try again later.", **kw
        )
        err.retry_after = server_wait(headers)
        return err
    return CampaignMonitorError(
        f"Campaign Monitor answered {where} with HTTP {status}{said}.", **kw
    )


class Transport:
    """Sends requests over one pooled session with timeouts, typed errors and bounded retries.

    ``sleep`` and ``clock`` are injectable so tests never wait for real. ``auth`` supplies the
    Authorization header; ``on_token_expired`` (set by the client when it can refresh) is called
    once per call on code 121 before the request is repeated, and once for all the calls in
    flight that met the same expired token. Safe to call from several threads: every attempt
    passes ``flow`` (:class:`~.concurrency.Flow`), which bounds and paces them.
    """

    def __init__(
        self,
        base_url: str | None = None,
        *,
        timeout: float | tuple[float, float] = (5.0, 60.0),
        retry: RetryPolicy | None = None,
        session: requests.Session | None = None,
        sleep: Callable[[float], None] = time.sleep,
        clock: Callable[[], float] = time.monotonic,
        auth: Authorizer | None = None,
        max_in_flight: int = DEFAULT_MAX_IN_FLIGHT,
    ) -> None:
        self.flow = Flow(max_in_flight, clock=clock, sleep=sleep)
        self.base_url = resolve_base_url(base_url)
        self.origin = origin_of(self.base_url)
        self.timeout = timeout
        self.retry = retry or RetryPolicy()
        self._own_session = session is None
        self.session = session or new_session(max(16, 2 * max_in_flight))
        self.sleep = sleep
        self.clock = clock
        self.auth = auth
        self.on_token_expired: Callable[[], None] | None = None
        self._refreshing = threading.Lock()

    def close(self) -> None:
        if self._own_session:
            self.session.close()

    def url(self, path: str) -> str:
        return path if "://" in path else f"{self.base_url}{path}"

    def request(
        self,
        method: str,
        path: str,
        *,
        params: Params = None,
        json: Any = None,
        form: Sequence[tuple[str, str]] | None = None,
        idempotent: bool | None = None,
        decode: Decoder = decode_json,
        check: Callable[[int, Any], None] | None = None,
        authenticated: bool = True,
    ) -> Any:
        """Send and decode, retrying what is safe to retry.

        ``idempotent`` defaults from the method; an upsert POST passes True. A non-idempotent
        request is retried only when it provably never left (connect failure). ``check`` sees
        the decoded JSON body of every answer, whatever the status (the OAuth token endpoint
        reports errors in the body).
        """
        if idempotent is None:
            idempotent = method in IDEMPOTENT_METHODS
        policy = self.retry
        start = self.clock()
        attempt = 0
        refreshed = False
        while True:
            attempt += 1
            sent_with = self.auth
            try:
                return self._once(method, path, params, json, form, decode, check, authenticated)
            except (TokenExpired, TokenInvalid) as exc:
                if refreshed or self.on_token_expired is None or not authenticated:
                    raise
                # Another call in flight may be renewing the token, or have renewed it (which
                # can invalidate the one this request carried): wait for it, then send again.
                with self._refreshing:
                    if self.auth is sent_with:
                        if isinstance(exc, TokenInvalid):
                            raise
                        self.on_token_expired()
                refreshed = True
                attempt -= 1  # a refresh is not a failed attempt
                continue
            except CampaignMonitorError as exc:
                if not self._retriable(exc, idempotent) or attempt >= policy.max_attempts:
                    raise
                hint = getattr(exc, "retry_after", None)
                wait = hint if hint is not None else policy.backoff(attempt)
                if self.clock() - start + wait > policy.max_elapsed:
                    raise
                log.debug(
                    "%s %s: %s; retry %d of %d in %.2f s",
                    method,
                    urlsplit(self.url(path)).path,
                    type(exc).__name__,
                    attempt,
                    policy.max_attempts - 1,
                    wait,
                )
                self.sleep(wait)

    @staticmethod
    def _retriable(exc: CampaignMonitorError, idempotent: bool) -> bool:
        if not exc.retriable:
            return False
        if idempotent:
            return True
        return isinstance(exc, TransportError) and not getattr(exc, "request_sent", True)

    def _once(
        self,
        method: str,
        path: str,
        params: Params,
        json: Any,
        form: Sequence[tuple[str, str]] | None,
        decode: Decoder,
        check: Callable[[int, Any], None] | None,
        authenticated: bool,
    ) -> Any:
        url = self.url(path)
        log_path = urlsplit(url).path  # never the query: it may carry values we must not log
        headers = {"Accept": "application/json", "User-Agent": "cmtoolkit"}
        if authenticated and self.auth is not None:
            headers["Authorization"] = self.auth.authorization()
        data: bytes | list[tuple[str, str]] | None = None
        if json is not None:
            data = orjson.dumps(json)
            headers["Content-Type"] = "application/json; charset=utf-8"
        elif form is not None:
            data = list(form)
        failure: CampaignMonitorError | None = None
        response: requests.Response | None = None
        ticket = self.flow.acquire()
        started = time.perf_counter()
        try:
            response = self.session.request(
                method, url, params=params, data=data, headers=headers, timeout=self.timeout
            )
            content = response.content
        except requests.RequestException as exc:
            failure = _transport_error(exc, method, log_path)
        finally:
            if response is None:
                self.flow.release(ticket, None)
            else:
                self.flow.release(ticket, response.status_code, response.headers)
        elapsed_ms = (time.perf_counter() - started) * 1000
        if failure is not None or response is None:
            log.debug(
                "%s %s -> %s after %.0f ms", method, log_path, type(failure).__name__, elapsed_ms
            )
            raise failure or TransportError("no response", method=method, path=log_path)
        status = response.status_code
        log.debug("%s %s -> %d in %.0f ms", method, log_path, status, elapsed_ms)
        if check is not None:
            try:
                body = orjson.loads(content) if content else None
            except orjson.JSONDecodeError:
                body = None
            check(status, body)
        if not 200 <= status < 300:
            raise error_for_response(status, response.headers, content, method, log_path)
        try:
            return decode(content)
        except Exception:  # a decoder failure on a 2xx answer: cut, or not the API at all
            failure = self._undecodable(response, content, method, log_path)
        raise failure

    def _undecodable(
        self, response: requests.Response, content: bytes, method: str, path: str
    ) -> CampaignMonitorError:
        """What came back instead of the JSON expected: a cut body is retriable; an HTML page
        or JSON of another shape means the base URL is not Campaign Monitor's API."""
        kind = response.headers.get("Content-Type") or "no content type"
        start = content[:60].decode("utf-8", "replace")
        seen = f"HTTP {response.status_code}, {kind}, {len(content)} bytes starting {start!r}"
        try:
            orjson.loads(content)
            is_json = True
        except orjson.JSONDecodeError:
            is_json = False
        if not is_json and content.lstrip()[:1] in (b"{", b"["):  # JSON that stops short
            return TransportError(
                f"Campaign Monitor's answer to {method} {path} was cut short ({seen}); the call "
                "can be retried.",
                status=response.status_code,
                method=method,
                path=path,
            )
        what = "JSON of an unexpected shape" if is_json else "not JSON"
        return CampaignMonitorError(
            f"the answer to {method} {path} was {what} ({seen}): not Campaign Monitor's API? "
            f"check CMTOOLKIT_API_URL (now {self.base_url})",
            status=response.status_code,
            method=method,
            path=path,
        )
