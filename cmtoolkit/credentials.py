"""The credential store and the resolution of credential references (DESIGN §8).

Connection files, notebook parameters and reports carry only a *reference*: a name in this store
(``default``) or ``env:VARNAME`` (the variable holds an API key). The store is one JSON file
outside the workspace and the repository::

    $CMTOOLKIT_CREDENTIALS  or  $XDG_CONFIG_HOME/cmtoolkit/credentials.json
                            (default ~/.config/cmtoolkit/credentials.json)

    {"credentials": {
        "default": {"kind": "api_key", "api_key": "..."},
        "team":    {"kind": "oauth", "access_token": "...", "refresh_token": "...",
                    "expires_at": "2026-05-01T10:00:00+00:00", "client_id": "123456",
                    "client_secret": "...", "redirect_uri": "http://127.0.0.1:8976/callback"}}}

It is written atomically (temporary file + rename) with mode 0600, and a copy that other users
can read is refused. Values are wrapped in :class:`~cmtoolkit.secret.Secret` as soon as they are
read; no message of this module ever contains one.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import re
import stat
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, ClassVar

from cmtoolkit.campaign_monitor import ApiKeyAuth, OAuthAuth, OAuthTokens
from cmtoolkit.errors import CredentialError
from cmtoolkit.secret import Secret

__all__ = [
    "ApiKeyCredential",
    "Credential",
    "CredentialStore",
    "OAuthCredential",
    "credential_reference_problem",
    "credentials_path",
    "load_credential",
    "resolve",
    "token_saver",
]

log = logging.getLogger(__name__)

ENV_FALLBACK = "CM_API_KEY"
DEFAULT_NAME = "default"

CREDENTIAL_NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")
ENV_REF_RE = re.compile(r"^env:[A-Za-z_][A-Za-z0-9_]*$")


def credential_reference_problem(ref: object) -> str | None:
    """Why ``ref`` is not a credential reference, or None when it is one.

    The message never repeats the value: a user who pasted an API key here must not see it echoed
    into a log or a traceback.
    """
    if not isinstance(ref, str):
        return f"expected a credential name, got {type(ref).__name__}"
    if ENV_REF_RE.match(ref):
        return None
    if ref.startswith("env:"):
        return (
            "an 'env:' reference needs an environment variable name "
            "(letters, digits, underscore), e.g. 'env:CM_API_KEY'"
        )
    if not CREDENTIAL_NAME_RE.match(ref) or looks_like_secret(ref):
        return (
            "this looks like a secret, not a credential reference: never put an API key or "
            "token in a connection file. Store it with 'cmtoolkit auth login --credential NAME' "
            "and write that NAME here (or 'env:VARNAME')"
        )
    return None


def looks_like_secret(value: str) -> bool:
    """Heuristic: a long run of mixed letters and digits is a key or token, not a chosen name."""
    if len(value) < 20:
        return False
    has_digit = any(c.isdigit() for c in value)
    has_alpha = any(c.isalpha() for c in value)
    longest_word = max((len(w) for w in re.split(r"[_.-]", value)), default=0)
    # A run of 16+ hex digits with a digit in it is a key's body, whatever words surround it
    # (the emulator's "emulator-dev-api-key-0000000000000000").
    hex_run = any(any(c.isdigit() for c in run) for run in re.findall(r"[0-9a-fA-F]{16,}", value))
    return (has_digit and has_alpha and longest_word >= 20) or hex_run


@dataclass(frozen=True)
class ApiKeyCredential:
    api_key: Secret
    kind: ClassVar[str] = "api_key"

    def to_auth(self) -> ApiKeyAuth:
        return ApiKeyAuth(self.api_key)


@dataclass(frozen=True)
class OAuthCredential:
    """OAuth tokens plus the app that obtained them (``client_id`` is the app id)."""

    access_token: Secret
    refresh_token: Secret | None = None
    expires_at: datetime | None = None
    client_id: str | None = None
    client_secret: Secret | None = field(default=None)
    redirect_uri: str | None = None
    kind: ClassVar[str] = "oauth"

    def expired(self, now: datetime | None = None) -> bool:
        if self.expires_at is None:
            return False
        return self.expires_at <= (now or datetime.now(UTC))

    def to_auth(self) -> OAuthAuth:
        return OAuthAuth(
            access_token=self.access_token,
            refresh_token=self.refresh_token,
            expires_at=self.expires_at,
        )


Credential = ApiKeyCredential | OAuthCredential


def credentials_path(environ: Mapping[str, str] | None = None) -> Path:
    """Where the credential store lives (see the module docstring)."""
    env = os.environ if environ is None else environ
    if env.get("CMTOOLKIT_CREDENTIALS"):
        return Path(env["CMTOOLKIT_CREDENTIALS"]).expanduser()
    config = env.get("XDG_CONFIG_HOME") or str(Path.home() / ".config")
    return Path(config).expanduser() / "cmtoolkit" / "credentials.json"


class CredentialStore:
    """Named credentials in one 0600 JSON file."""

    def __init__(self, path: Path | str | None = None) -> None:
        self.path = Path(path) if path is not None else credentials_path()

    def __repr__(self) -> str:
        return f"CredentialStore({str(self.path)!r})"

    # reading

    def names(self) -> list[str]:
        return sorted(self._read())

    def find(self, name: str) -> Credential | None:
        entry = self._read().get(name)
        return None if entry is None else _from_entry(name, entry, self.path)

    def get(self, name: str) -> Credential:
        credential = self.find(name)
        if credential is None:
            raise CredentialError(
                f"no credential named {name!r} in {self.path}: run "
                f"'cmtoolkit auth login --credential {name}'"
            )
        return credential

    # writing

    def put(self, name: str, credential: Credential) -> None:
        _check_name(name)
        with self._locked():
            data = self._read()
            data[name] = _to_entry(credential)
            self._write(data)
        log.info("saved %s credential %r to %s", credential.kind, name, self.path)

    def remove(self, name: str) -> bool:
        """Forget ``name`` (BlueConic's "Reset Authentication"); False when it was not there."""
        with self._locked():
            data = self._read()
            if name not in data:
                return False
            del data[name]
            self._write(data)
        log.info("removed credential %r from %s", name, self.path)
        return True

    def save_tokens(self, name: str, tokens: OAuthTokens) -> None:
        """Store refreshed OAuth tokens in entry ``name``, keeping its app settings."""
        with self._locked():
            data = self._read()
            old = data.get(name)
            previous = _from_entry(name, old, self.path) if old else None
            app = previous if isinstance(previous, OAuthCredential) else None
            new = oauth_credential_from_tokens(
                tokens,
                client_id=app.client_id if app else None,
                client_secret=app.client_secret if app else None,
                redirect_uri=app.redirect_uri if app else None,
                previous_refresh_token=app.refresh_token if app else None,
            )
            data[name] = _to_entry(new)
            self._write(data)
        log.info("saved refreshed OAuth tokens of credential %r", name)

    # file handling

    def _read(self) -> dict[str, dict[str, Any]]:
        try:
            st = self.path.stat()
        except FileNotFoundError:
            return {}
        if os.name == "posix" and st.st_mode & (stat.S_IRWXG | stat.S_IRWXO):
            raise CredentialError(
                f"{self.path} can be read by other users (mode {stat.S_IMODE(st.st_mode):o}); "
                f"restrict it with 'chmod 600 {self.path}' and rotate the keys it holds"
            )
        try:
            raw = json.loads(self.path.read_text(encoding="utf-8") or "{}")
        except (OSError, ValueError) as exc:
            raise CredentialError(
                f"cannot read the credential store {self.path} ({type(exc).__name__}); fix or "
                "delete it and log in again with 'cmtoolkit auth login'"
            ) from None
        creds = raw.get("credentials", {}) if isinstance(raw, dict) else None
        if not isinstance(creds, dict):
            raise CredentialError(
                f"{self.path} is not a cmtoolkit credential store; move it away and log in "
                "again with 'cmtoolkit auth login'"
            )
        return creds

    def _write(self, creds: dict[str, dict[str, Any]]) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        tmp = self.path.with_name(f".{self.path.name}.{os.getpid()}.tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        try:
            os.fchmod(fd, 0o600)  # O_CREAT's mode is filtered by the umask and ignores old files
            with os.fdopen(fd, "w", encoding="utf-8") as fh:
                json.dump({"credentials": creds}, fh, indent=2, sort_keys=True)
                fh.flush()
                os.fsync(fh.fileno())
            os.replace(tmp, self.path)
        except BaseException:
            tmp.unlink(missing_ok=True)
            raise

    @contextlib.contextmanager
    def _locked(self) -> Iterator[None]:
        """Serialise read-modify-write between processes (two batch runs refreshing a token)."""
        try:
            import fcntl
        except ImportError:  # pragma: no cover - not POSIX
            yield
            return
        self.path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        lock = self.path.with_name(f".{self.path.name}.lock")
        fd = os.open(lock, os.O_WRONLY | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            yield
        finally:
            fcntl.flock(fd, fcntl.LOCK_UN)
            os.close(fd)


# --- references --------------------------------------------------------------------------------


def load_credential(
    ref: str,
    *,
    store: CredentialStore | None = None,
    environ: Mapping[str, str] | None = None,
) -> Credential:
    """The credential a reference points to (``NAME`` or ``env:VARNAME``).

    When ``default`` is not in the store but ``CM_API_KEY`` is set, that API key is used.
    """
    env = os.environ if environ is None else environ
    problem = credential_reference_problem(ref)
    if problem:
        raise CredentialError(f"invalid credential reference: {problem}")
    if ref.startswith("env:"):
        var = ref[4:]
        value = env.get(var, "").strip()
        if not value:
            raise CredentialError(
                f"credential {ref!r}: environment variable {var} is not set; export it with "
                "the Campaign Monitor API key, or store a credential with "
                "'cmtoolkit auth login --credential NAME' and reference NAME instead"
            )
        return ApiKeyCredential(Secret(value))
    store = store or CredentialStore()
    credential = store.find(ref)
    if credential is not None:
        return credential
    if ref == DEFAULT_NAME and env.get(ENV_FALLBACK, "").strip():
        log.debug("credential 'default' not stored; using $%s", ENV_FALLBACK)
        return ApiKeyCredential(Secret(env[ENV_FALLBACK].strip()))
    hint = f" or set {ENV_FALLBACK}" if ref == DEFAULT_NAME else ""
    raise CredentialError(
        f"no credential named {ref!r} in {store.path}: run "
        f"'cmtoolkit auth login --credential {ref}'{hint}"
    )


def resolve(
    ref: str,
    *,
    store: CredentialStore | None = None,
    environ: Mapping[str, str] | None = None,
) -> ApiKeyAuth | OAuthAuth:
    """The client's auth object (``ApiKeyAuth`` or ``OAuthAuth``) for a reference."""
    return load_credential(ref, store=store, environ=environ).to_auth()


def token_saver(
    ref: str,
    *,
    store: CredentialStore | None = None,
    environ: Mapping[str, str] | None = None,
) -> Callable[[OAuthTokens], None] | None:
    """The ``on_tokens_refreshed`` callback that saves new tokens under ``ref`` (None for keys)."""
    if ref.startswith("env:"):
        return None
    store = store or CredentialStore()
    if not isinstance(store.find(ref), OAuthCredential):
        return None

    def save(tokens: OAuthTokens) -> None:
        store.save_tokens(ref, tokens)

    return save


def oauth_credential_from_tokens(
    tokens: OAuthTokens | Mapping[str, object],
    *,
    client_id: str | None = None,
    client_secret: Secret | str | None = None,
    redirect_uri: str | None = None,
    previous_refresh_token: Secret | None = None,
    now: datetime | None = None,
) -> OAuthCredential:
    """An :class:`OAuthCredential` from the client's ``OAuthTokens`` (or a token response dict)."""

    def get(name: str) -> Any:
        return tokens.get(name) if isinstance(tokens, Mapping) else getattr(tokens, name, None)

    access = get("access_token")
    if not access:
        raise CredentialError("the token answer has no access token: log in again")
    refresh = get("refresh_token")
    expires_at = get("expires_at")
    if isinstance(expires_at, str):
        expires_at = datetime.fromisoformat(expires_at)
    if expires_at is None and get("expires_in") is not None:
        expires_at = (now or datetime.now(UTC)) + timedelta(seconds=int(get("expires_in")))
    if isinstance(expires_at, datetime) and expires_at.tzinfo is None:
        expires_at = expires_at.replace(tzinfo=UTC)
    app_secret = Secret(client_secret) if isinstance(client_secret, str) else client_secret
    return OAuthCredential(
        access_token=Secret(access),
        refresh_token=Secret(refresh) if refresh else previous_refresh_token,
        expires_at=expires_at,
        client_id=client_id,
        client_secret=app_secret or None,
        redirect_uri=redirect_uri,
    )


# --- file entries ------------------------------------------------------------------------------


def _check_name(name: str) -> None:
    if not CREDENTIAL_NAME_RE.match(name):
        raise CredentialError(
            "a credential name is 1-64 letters, digits, '.', '_' or '-' (e.g. default); "
            "choose another --credential"
        )


def _to_entry(credential: Credential) -> dict[str, Any]:
    if isinstance(credential, ApiKeyCredential):
        return {"kind": "api_key", "api_key": credential.api_key.reveal()}
    entry: dict[str, Any] = {"kind": "oauth", "access_token": credential.access_token.reveal()}
    if credential.refresh_token is not None:
        entry["refresh_token"] = credential.refresh_token.reveal()
    if credential.expires_at is not None:
        entry["expires_at"] = credential.expires_at.isoformat()
    if credential.client_id is not None:
        entry["client_id"] = credential.client_id
    if credential.client_secret is not None:
        entry["client_secret"] = credential.client_secret.reveal()
    if credential.redirect_uri is not None:
        entry["redirect_uri"] = credential.redirect_uri
    return entry


def _from_entry(name: str, entry: Any, path: Path) -> Credential:
    def broken(what: str) -> CredentialError:
        return CredentialError(
            f"credential {name!r} in {path} is broken ({what}): run "
            f"'cmtoolkit auth logout --credential {name}' and log in again"
        )

    if not isinstance(entry, dict):
        raise broken("not an object")
    kind = entry.get("kind")
    if kind == "api_key":
        if not isinstance(entry.get("api_key"), str) or not entry["api_key"]:
            raise broken("no api_key")
        return ApiKeyCredential(Secret(entry["api_key"]))
    if kind == "oauth":
        if not isinstance(entry.get("access_token"), str) or not entry["access_token"]:
            raise broken("no access_token")
        expires_at = entry.get("expires_at")
        try:
            expires = datetime.fromisoformat(expires_at) if expires_at else None
        except (TypeError, ValueError):
            raise broken("expires_at is not an ISO date-time") from None
        if expires is not None and expires.tzinfo is None:
            expires = expires.replace(tzinfo=UTC)
        refresh = entry.get("refresh_token")
        secret = entry.get("client_secret")
        return OAuthCredential(
            access_token=Secret(entry["access_token"]),
            refresh_token=Secret(refresh) if refresh else None,
            expires_at=expires,
            client_id=str(entry["client_id"]) if entry.get("client_id") is not None else None,
            client_secret=Secret(secret) if secret else None,
            redirect_uri=entry.get("redirect_uri"),
        )
    raise broken("unknown kind; expected api_key or oauth")
