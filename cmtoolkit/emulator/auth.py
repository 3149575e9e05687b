"""Authentication of the emulated API: API keys (HTTP Basic) and OAuth 2 apps and tokens.

The OAuth choices where the real API is unconfirmed (code lifetime, refresh rotation, error
statuses) are listed in ``docs/emulator.md``.
"""

from __future__ import annotations

import base64
import secrets
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol, TypedDict

from cmtoolkit.emulator.api_error import ApiError

CODE_LIFETIME = 600


class Revealable(Protocol):
    """A secret wrapper (such as :class:`cmtoolkit.secret.Secret`) that hands out its value."""

    def reveal(self) -> str: ...


class OAuthAppAttributes(Protocol):
    """Any object that describes an OAuth app (e.g. the client package's ``OAuthApp``)."""

    @property
    def client_id(self) -> str: ...

    @property
    def client_secret(self) -> str | Revealable: ...

    @property
    def redirect_uri(self) -> str: ...


class IssuedTokens(TypedDict):
    """The token endpoint's answer."""

    access_token: str
    expires_in: int
    refresh_token: str


@dataclass(frozen=True)
class OAuthApp:
    """A registered OAuth app: numeric-looking client id, secret and redirect URI."""

    client_id: str
    client_secret: str
    redirect_uri: str

    @classmethod
    def coerce(cls, value: OAuthAppLike) -> OAuthApp:
        if isinstance(value, OAuthApp):
            return value
        sec: str | Revealable | None
        if isinstance(value, Mapping):
            get = value.get
            cid, sec, uri = get("client_id"), get("client_secret"), get("redirect_uri")
        elif isinstance(value, tuple | list):
            cid, sec, uri = value
        else:  # any object with those attributes (e.g. the client package's OAuthApp)
            cid, sec, uri = value.client_id, value.client_secret, value.redirect_uri
        if sec is not None and not isinstance(sec, str) and hasattr(sec, "reveal"):
            sec = sec.reveal()
        return cls(str(cid), str(sec), str(uri))

    def __repr__(self) -> str:
        return f"OAuthApp(client_id={self.client_id!r}, client_secret='***', redirect_uri=...)"


OAuthAppLike = OAuthApp | OAuthAppAttributes | Mapping[str, str] | tuple[str, str, str] | list[str]
"""An app as :class:`cmtoolkit.emulator.Emulator` takes it: an object, a dict or a triple."""


@dataclass
class Token:
    access_token: str
    refresh_token: str
    client_id: str
    scope: str
    issued: float
    lifetime: int
    revoked: bool = False
    expired: bool = False  # forced (fault injection / control API)
    retired: bool = False  # replaced by a refresh
    calls: int = 0

    def as_json(self) -> dict[str, Any]:
        return dict(self.__dict__)


@dataclass
class Grant:
    code: str
    client_id: str
    redirect_uri: str
    scope: str
    issued: float
    used: bool = False


class OAuthProblem(Exception):
    def __init__(self, error: str, description: str, status: int = 400) -> None:
        super().__init__(description)
        self.error = error
        self.description = description
        self.status = status


@dataclass
class Identity:
    """Who made a request: the key's client scope (None: account key) and token if any."""

    client_id: str | None = None
    token: Token | None = None


@dataclass
class AuthState:
    api_key: str
    apps: dict[str, OAuthApp] = field(default_factory=dict)
    token_lifetime: int = 1209600
    rotate_refresh_tokens: bool = False
    tokens: dict[str, Token] = field(default_factory=dict)  # by access token
    refresh: dict[str, Token] = field(default_factory=dict)  # by refresh token
    grants: dict[str, Grant] = field(default_factory=dict)
    client_keys: dict[str, str] = field(default_factory=dict)  # client api key -> client id

    # --- API requests ----------------------------------------------------------------------------

    def authenticate(self, header: str | None, now: float) -> Identity:
        if not header:
            raise ApiError(401, 50, "Must supply a valid HTTP Basic Authorization header")
        scheme, _, value = header.strip().partition(" ")
        scheme = scheme.lower()
        value = value.strip()
        if scheme == "basic":
            try:
                decoded = base64.b64decode(value, validate=True).decode("utf-8")
            except Exception:
                raise ApiError(
                    401, 50, "Must supply a valid HTTP Basic Authorization header"
                ) from None
            key, sep, _ = decoded.partition(":")
            if not sep or not key:
                raise ApiError(401, 50, "Must supply a valid HTTP Basic Authorization header")
            if secrets.compare_digest(key.encode(), self.api_key.encode()):
                return Identity()
            client_id = self.client_keys.get(key)
            if client_id is not None:
                return Identity(client_id=client_id)
            raise ApiError(401, 100, "Invalid API Key")
        if scheme == "bearer" and value:
            token = self.tokens.get(value)
            if token is None or token.retired:
                raise ApiError(401, 120, "Invalid OAuth Token")
            if token.revoked:
                raise ApiError(401, 122, "Revoked OAuth Token")
            if token.expired or now >= token.issued + token.lifetime:
                raise ApiError(401, 121, "Expired OAuth Token")
            token.calls += 1
            return Identity(token=token)
        raise ApiError(401, 50, "Must supply a valid HTTP Basic Authorization header")

    # --- authorize step ---------------------------------------------------------------------------

    def check_authorize(self, client_id: str, redirect_uri: str) -> OAuthApp:
        if not client_id or not redirect_uri:
            raise OAuthProblem("invalid_request", "client_id and redirect_uri are required")
        app = self.apps.get(client_id)
        if app is None:
            raise OAuthProblem("unknown_client", "Unknown client_id")
        if not redirect_uri.startswith(app.redirect_uri):
            raise OAuthProblem("invalid_redirect_uri", "redirect_uri does not match the app's")
        return app

    def grant(self, client_id: str, redirect_uri: str, scope: str, now: float) -> str:
        code = secrets.token_urlsafe(18)
        self.grants[code] = Grant(code, client_id, redirect_uri, scope, now)
        return code

    # --- token endpoint ---------------------------------------------------------------------------

    def token_request(self, form: dict[str, str], now: float) -> IssuedTokens:
        grant_type = form.get("grant_type", "")
        if grant_type == "authorization_code":
            app = self.apps.get(form.get("client_id", ""))
            if app is None or not secrets.compare_digest(
                form.get("client_secret", "").encode(), app.client_secret.encode()
            ):
                raise OAuthProblem("invalid_client", "Invalid client_id or client_secret")
            grant = self.grants.get(form.get("code", ""))
            if (
                grant is None
                or grant.used
                or grant.client_id != app.client_id
                or now >= grant.issued + CODE_LIFETIME
            ):
                raise OAuthProblem("invalid_grant", "Specified code was invalid or expired")
            if form.get("redirect_uri", "") != grant.redirect_uri:
                raise OAuthProblem("invalid_grant", "redirect_uri differs from the authorize step")
            grant.used = True
            token = self._issue(app.client_id, grant.scope, now, None)
        elif grant_type == "refresh_token":
            old = self.refresh.get(form.get("refresh_token", ""))
            if old is None or old.revoked:
                raise OAuthProblem(
                    "invalid_grant", "Specified refresh_token was invalid or expired"
                )
            old.retired = True
            keep = None if self.rotate_refresh_tokens else old.refresh_token
            if self.rotate_refresh_tokens:
                self.refresh.pop(old.refresh_token, None)
            token = self._issue(old.client_id, old.scope, now, keep)
        else:
            raise OAuthProblem("unsupported_grant_type", f"Unsupported grant_type {grant_type!r}")
        return {
            "access_token": token.access_token,
            "expires_in": token.lifetime,
            "refresh_token": token.refresh_token,
        }

    def _issue(self, client_id: str, scope: str, now: float, refresh: str | None) -> Token:
        token = Token(
            access_token=secrets.token_urlsafe(24),
            refresh_token=refresh or secrets.token_urlsafe(24),
            client_id=client_id,
            scope=scope,
            issued=now,
            lifetime=self.token_lifetime,
        )
        self.tokens[token.access_token] = token
        self.refresh[token.refresh_token] = token
        return token

    def issue_token(self, client_id: str, now: float, scope: str = "") -> Token:
        """A token without the browser step (for tests)."""
        return self._issue(client_id, scope, now, None)

    # --- control ----------------------------------------------------------------------------------

    def revoke(self, token: str | None = None) -> int:
        """Revoke one token (access or refresh value) or, with None, every token."""
        n = 0
        for t in list(self.tokens.values()):
            if (token is None or token in (t.access_token, t.refresh_token)) and not t.revoked:
                t.revoked = True
                n += 1
        return n

    def expire(self, token: str | None = None) -> int:
        n = 0
        for t in self.tokens.values():
            if token is None or token == t.access_token:
                t.expired = True
                n += 1
        return n

    def snapshot(self) -> dict[str, Any]:
        return {
            "tokens": [t.as_json() for t in self.tokens.values()],
            "grants": [g.__dict__ for g in self.grants.values()],
        }

    def restore(self, data: dict[str, Any]) -> None:
        self.tokens.clear()
        self.refresh.clear()
        for item in data.get("tokens", []):
            t = Token(**item)
            self.tokens[t.access_token] = t
            if not t.retired or not self.rotate_refresh_tokens:
                self.refresh[t.refresh_token] = t
        self.grants = {g["code"]: Grant(**g) for g in data.get("grants", [])}
