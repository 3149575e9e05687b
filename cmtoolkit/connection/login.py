"""Connecting with Campaign Monitor: the OAuth authorization-code flow and API-key login.

:func:`run_oauth_flow` is BlueConic's "Connect with Campaign Monitor" button: it listens on the
app's loopback redirect URI, sends the user's browser to the authorize page, waits for the
redirect carrying ``?code=&state=``, checks the state and trades the code for tokens. The
``open_browser`` callable is the seam: the CLI passes :func:`webbrowser.open` (or prints the URL),
a notebook widget shows a link, and the tests pass a fake browser that performs the HTTP requests.
"""

from __future__ import annotations

import html
import logging
import secrets
import socket
import threading
from collections.abc import Callable, Sequence
from http.server import BaseHTTPRequestHandler, HTTPServer
from typing import Protocol
from urllib.parse import parse_qs, urlsplit

from cmtoolkit.campaign_monitor.auth import OAuthApp, OAuthTokens, authorize_url, exchange_code
from cmtoolkit.credentials import (
    ApiKeyCredential,
    CredentialStore,
    OAuthCredential,
    oauth_credential_from_tokens,
)
from cmtoolkit.errors import CredentialError
from cmtoolkit.secret import Secret

log = logging.getLogger(__name__)

#: Enough to read clients, lists, custom fields and subscribers, and to import subscribers.
DEFAULT_SCOPES: tuple[str, ...] = ("ManageLists", "ImportSubscribers", "ViewReports")
LOOPBACK_HOSTS = ("127.0.0.1", "localhost", "::1", "[::1]")


class Authorize(Protocol):
    """Builds the authorize-page URL (:func:`~cmtoolkit.campaign_monitor.authorize_url`)."""

    def __call__(
        self, app: OAuthApp, scope: Sequence[str], state: str, *, base_url: str | None = None
    ) -> str: ...


class Exchange(Protocol):
    """Trades a code for tokens (:func:`~cmtoolkit.campaign_monitor.exchange_code`)."""

    def __call__(
        self, app: OAuthApp, code: Secret, *, base_url: str | None = None
    ) -> OAuthTokens: ...


class _HTTPServerV6(HTTPServer):
    address_family = socket.AF_INET6


class RedirectCatcher:
    """A one-shot HTTP server on the redirect URI's loopback port that keeps the query."""

    def __init__(self, redirect_uri: str) -> None:
        parts = urlsplit(redirect_uri)
        host = parts.hostname or ""
        if parts.scheme != "http" or host not in LOOPBACK_HOSTS or not parts.port:
            raise CredentialError(
                "the redirect URI must be a loopback address with a port, e.g. "
                "http://127.0.0.1:8976/callback, and registered as such for the OAuth app "
                "in Campaign Monitor"
            )
        self.redirect_uri = redirect_uri
        self.path = parts.path or "/"
        self._done = threading.Event()
        self._params: dict[str, str] = {}
        catcher = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                url = urlsplit(self.path)
                if url.path != catcher.path or catcher._done.is_set():
                    self.send_error(404)
                    return
                query = {k: v[0] for k, v in parse_qs(url.query).items()}
                ok = "code" in query and "error" not in query
                body = (
                    "Campaign Monitor is connected. You can close this window."
                    if ok
                    else "Campaign Monitor did not grant access: "
                    + html.escape(query.get("error", "no code"))
                )
                page = f"<!doctype html><title>cmtoolkit</title><p>{body}</p>".encode()
                self.send_response(200 if ok else 400)
                self.send_header("Content-Type", "text/html; charset=utf-8")
                self.send_header("Content-Length", str(len(page)))
                self.end_headers()
                self.wfile.write(page)
                catcher._params = query
                catcher._done.set()

            def log_message(self, format: str, *args: object) -> None:
                # The request line holds the authorization code: never log it.
                log.debug("redirect catcher answered a request")

        bind_host = "::1" if host in ("::1", "[::1]") else "127.0.0.1"
        server_class = _HTTPServerV6 if ":" in bind_host else HTTPServer
        try:
            self._server = server_class((bind_host, parts.port), Handler)
        except OSError as exc:
            raise CredentialError(
                f"cannot listen on {host}:{parts.port} for the OAuth redirect ({exc.strerror}); "
                "stop what uses that port or register another redirect URI"
            ) from None
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )

    def __enter__(self) -> RedirectCatcher:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        if self._thread.is_alive():
            self._server.shutdown()
        self._server.server_close()

    def wait(self, timeout: float) -> dict[str, str]:
        """The redirect's query parameters; CredentialError when none came within ``timeout``."""
        if not self._done.wait(timeout):
            raise CredentialError(
                f"no answer from the browser within {timeout:g} s: run the login again and "
                "choose 'Allow access' on the Campaign Monitor page"
            )
        return dict(self._params)


def run_oauth_flow(
    app: OAuthApp,
    *,
    open_browser: Callable[[str], object],
    timeout: float = 300.0,
    scopes: Sequence[str] = DEFAULT_SCOPES,
    base_url: str | None = None,
    authorize: Authorize = authorize_url,
    exchange: Exchange = exchange_code,
) -> OAuthTokens:
    """Run the authorization-code flow for ``app`` and return the granted tokens.

    ``authorize``/``exchange`` are seams for tests; by default the client's own.
    """
    state = secrets.token_urlsafe(24)
    with RedirectCatcher(app.redirect_uri) as catcher:
        url = authorize(app, list(scopes), state, base_url=base_url)
        log.info("waiting up to %g s for the OAuth redirect on %s", timeout, app.redirect_uri)
        open_browser(url)
        params = catcher.wait(timeout)
    if params.get("error"):
        raise CredentialError(
            f"Campaign Monitor did not grant access ({params['error']}): run the login again "
            "and choose 'Allow access'"
        )
    if params.get("state") != state:
        raise CredentialError(
            "the OAuth redirect carried a state that this login did not send (a stale or forged "
            "request): run the login again"
        )
    code = params.get("code")
    if not code:
        raise CredentialError("the OAuth redirect carried no code: run the login again")
    return exchange(app, Secret(code), base_url=base_url)


def login_oauth(
    app: OAuthApp,
    *,
    name: str = "default",
    store: CredentialStore | None = None,
    open_browser: Callable[[str], object],
    timeout: float = 300.0,
    scopes: Sequence[str] = DEFAULT_SCOPES,
    base_url: str | None = None,
    authorize: Authorize = authorize_url,
    exchange: Exchange = exchange_code,
) -> OAuthCredential:
    """Run the OAuth flow and save the tokens (with the app settings) as credential ``name``."""
    tokens = run_oauth_flow(
        app,
        open_browser=open_browser,
        timeout=timeout,
        scopes=scopes,
        base_url=base_url,
        authorize=authorize,
        exchange=exchange,
    )
    credential = oauth_credential_from_tokens(
        tokens,
        client_id=str(app.client_id),
        client_secret=app.client_secret,
        redirect_uri=app.redirect_uri,
    )
    (store or CredentialStore()).put(name, credential)
    return credential


def login_api_key(
    api_key: Secret | str,
    *,
    name: str = "default",
    store: CredentialStore | None = None,
    verify: Callable[[ApiKeyCredential], object] | None = None,
) -> ApiKeyCredential:
    """Check an API key (``verify`` makes one call, e.g. ``clients()``) and save it as ``name``."""
    key = api_key if isinstance(api_key, Secret) else Secret(api_key.strip())
    if not key.reveal():
        raise CredentialError("the API key is empty: paste it from Campaign Monitor's settings")
    credential = ApiKeyCredential(key)
    if verify is not None:
        verify(credential)
    (store or CredentialStore()).put(name, credential)
    return credential
