"""Credentials for Campaign Monitor: an API key or OAuth 2 tokens, and the OAuth endpoints.

Every key, token and client secret is a :class:`~cmtoolkit.secret.Secret`; ``reveal()`` is called
only where the value is put on the wire (the Authorization header or the token form body). The
OAuth endpoints live at the base URL's *origin* (``https://api.createsend.com/oauth``), so pointing
``CMTOOLKIT_API_URL`` at the emulator moves them too.
"""

from __future__ import annotations

import base64
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from urllib.parse import urlencode

import requests

from cmtoolkit.errors import OAuthError
from cmtoolkit.secret import Secret

from .retry import RetryPolicy
from .transport import RECONNECT, Transport, origin_of, resolve_base_url

__all__ = [
    "ApiKeyAuth",
    "OAuthApp",
    "OAuthAuth",
    "OAuthTokens",
    "authorize_url",
    "exchange_code",
    "refresh_tokens",
]


def _as_secret(value: Secret | str) -> Secret:
    return value if isinstance(value, Secret) else Secret(value)


@dataclass(frozen=True, slots=True)
class OAuthTokens:
    """What the token endpoint granted; ``expires_at`` is computed (UTC) when received."""

    access_token: Secret
    refresh_token: Secret
    expires_in: int
    expires_at: datetime

    @classmethod
    def from_wire(cls, body: object, now: datetime | None = None) -> OAuthTokens:
        if not isinstance(body, dict) or not body.get("access_token"):
            raise OAuthError(
                f"The OAuth token endpoint gave no access token; {RECONNECT}.", status=None
            )
        expires_in = int(body.get("expires_in") or 0)
        now = now or datetime.now(UTC)
        return cls(
            access_token=Secret(str(body["access_token"])),
            refresh_token=Secret(str(body.get("refresh_token") or "")),
            expires_in=expires_in,
            expires_at=now + timedelta(seconds=expires_in),
        )


@dataclass(frozen=True, slots=True)
class ApiKeyAuth:
    """HTTP Basic with the API key as user name and ``x`` as password (as the wrappers do)."""

    api_key: Secret

    def __post_init__(self) -> None:
        object.__setattr__(self, "api_key", _as_secret(self.api_key))

    def authorization(self) -> str:
        raw = f"{self.api_key.reveal()}:x".encode()
        return "Basic " + base64.b64encode(raw).decode("ascii")


@dataclass(frozen=True, slots=True)
class OAuthAuth:
    """A Bearer access token, with the refresh token that renews it on code 121."""

    access_token: Secret
    refresh_token: Secret | None = None
    expires_at: datetime | None = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "access_token", _as_secret(self.access_token))
        if self.refresh_token is not None:
            object.__setattr__(self, "refresh_token", _as_secret(self.refresh_token))

    def authorization(self) -> str:
        return f"Bearer {self.access_token.reveal()}"

    @classmethod
    def from_tokens(cls, tokens: OAuthTokens) -> OAuthAuth:
        return cls(tokens.access_token, tokens.refresh_token or None, tokens.expires_at)


@dataclass(frozen=True, slots=True)
class OAuthApp:
    """A registered OAuth app (Campaign Monitor → Manage connected apps)."""

    client_id: str
    client_secret: Secret
    redirect_uri: str

    def __post_init__(self) -> None:
        object.__setattr__(self, "client_secret", _as_secret(self.client_secret))


def token_url(base_url: str | None = None) -> str:
    return origin_of(resolve_base_url(base_url)) + "/oauth/token"


def authorize_url(
    app: OAuthApp,
    scope: str | Sequence[str],
    state: str | None = None,
    *,
    base_url: str | None = None,
) -> str:
    """Where to send the user's browser to grant access (``type=web_server`` is sent: safe)."""
    scopes = scope if isinstance(scope, str) else ",".join(scope)
    query: list[tuple[str, str]] = [
        ("type", "web_server"),
        ("client_id", str(app.client_id)),
        ("redirect_uri", app.redirect_uri),
        ("scope", scopes),
    ]
    if state is not None:
        query.append(("state", state))
    return origin_of(resolve_base_url(base_url)) + "/oauth?" + urlencode(query)


def _oauth_check(status: int, body: object) -> None:
    """Token endpoint errors come as ``{"error": ...}`` with any status (even 200)."""
    if isinstance(body, dict) and body.get("error"):
        error = str(body.get("error"))
        description = str(body.get("error_description") or "").strip()
        raise OAuthError(
            f"Campaign Monitor refused the OAuth grant ({error}"
            + (f": {description}" if description else "")
            + f"); {RECONNECT}.",
            status=status,
        )


def request_tokens(transport: Transport, form: Sequence[tuple[str, str]]) -> OAuthTokens:
    """POST a grant to ``/oauth/token``. Not idempotent (a code is single-use), so only a
    request that never left is retried."""
    body = transport.request(
        "POST",
        origin_of(transport.base_url) + "/oauth/token",
        form=form,
        idempotent=False,
        authenticated=False,
        check=_oauth_check,
    )
    return OAuthTokens.from_wire(body)


def _standalone(
    base_url: str | None,
    session: requests.Session | None,
    timeout: float | tuple[float, float],
    retry: RetryPolicy | None,
    sleep: Callable[[float], None],
    clock: Callable[[], float],
) -> Transport:
    return Transport(
        base_url, timeout=timeout, retry=retry, session=session, sleep=sleep, clock=clock
    )


def exchange_code(
    app: OAuthApp,
    code: str | Secret,
    *,
    base_url: str | None = None,
    session: requests.Session | None = None,
    timeout: float | tuple[float, float] = (5.0, 60.0),
    retry: RetryPolicy | None = None,
    sleep: Callable[[float], None] = time.sleep,
    clock: Callable[[], float] = time.monotonic,
) -> OAuthTokens:
    """Trade the authorization code from the redirect for tokens."""
    transport = _standalone(base_url, session, timeout, retry, sleep, clock)
    try:
        return request_tokens(
            transport,
            [
                ("grant_type", "authorization_code"),
                ("client_id", str(app.client_id)),
                ("client_secret", app.client_secret.reveal()),
                ("redirect_uri", app.redirect_uri),
                ("code", _as_secret(code).reveal()),
            ],
        )
    finally:
        transport.close()


def refresh_tokens(
    refresh_token: Secret | str,
    *,
    base_url: str | None = None,
    session: requests.Session | None = None,
    timeout: float | tuple[float, float] = (5.0, 60.0),
    retry: RetryPolicy | None = None,
    sleep: Callable[[float], None] = time.sleep,
    clock: Callable[[], float] = time.monotonic,
) -> OAuthTokens:
    """Renew an access token. No client id or secret is sent, as in every official wrapper."""
    transport = _standalone(base_url, session, timeout, retry, sleep, clock)
    try:
        return request_tokens(transport, refresh_form(_as_secret(refresh_token)))
    finally:
        transport.close()


def refresh_form(refresh_token: Secret) -> list[tuple[str, str]]:
    return [("grant_type", "refresh_token"), ("refresh_token", refresh_token.reveal())]
