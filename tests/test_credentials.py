"""The credential store: file mode, references, the CM_API_KEY fallback, refresh persistence."""

from __future__ import annotations

import json
import os
import stat
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from cmtoolkit.campaign_monitor import ApiKeyAuth, OAuthAuth, OAuthTokens
from cmtoolkit.credentials import (
    ApiKeyCredential,
    CredentialStore,
    OAuthCredential,
    credentials_path,
    load_credential,
    resolve,
    token_saver,
)
from cmtoolkit.errors import CredentialError
from cmtoolkit.secret import Secret

KEY = "apikey-0123456789abcdef"
EXPIRES = datetime(2030, 1, 2, 3, 4, 5, tzinfo=UTC)


@pytest.fixture
def store(tmp_path: Path) -> CredentialStore:
    return CredentialStore(tmp_path / "cfg" / "cmtoolkit" / "credentials.json")


def oauth(access: str = "at-1", refresh: str | None = "rt-1") -> OAuthCredential:
    return OAuthCredential(
        access_token=Secret(access),
        refresh_token=Secret(refresh) if refresh else None,
        expires_at=EXPIRES,
        client_id="123456",
        client_secret=Secret("cs-1"),
        redirect_uri="http://127.0.0.1:8976/callback",
    )


def test_path_from_environment(tmp_path: Path) -> None:
    assert (
        credentials_path({"CMTOOLKIT_CREDENTIALS": str(tmp_path / "c.json")}) == tmp_path / "c.json"
    )
    assert credentials_path({"XDG_CONFIG_HOME": str(tmp_path)}) == (
        tmp_path / "cmtoolkit" / "credentials.json"
    )
    assert credentials_path({}).parts[-3:] == (".config", "cmtoolkit", "credentials.json")


def test_file_is_written_with_mode_0600(store: CredentialStore) -> None:
    old_umask = os.umask(0o000)  # even a permissive umask must not widen the file
    try:
        store.put("default", ApiKeyCredential(Secret(KEY)))
    finally:
        os.umask(old_umask)
    assert stat.S_IMODE(store.path.stat().st_mode) == 0o600
    assert stat.S_IMODE(store.path.parent.stat().st_mode) & 0o077 == 0
    assert json.loads(store.path.read_text()) == {
        "credentials": {"default": {"kind": "api_key", "api_key": KEY}}
    }
    assert not list(store.path.parent.glob("*.tmp"))
    store.put("team", oauth())
    assert stat.S_IMODE(store.path.stat().st_mode) == 0o600
    assert store.names() == ["default", "team"]


def test_readable_file_is_refused(store: CredentialStore) -> None:
    store.put("default", ApiKeyCredential(Secret(KEY)))
    store.path.chmod(0o644)
    with pytest.raises(CredentialError, match="chmod 600") as info:
        store.names()
    assert KEY not in str(info.value)


def test_round_trip_of_both_kinds(store: CredentialStore) -> None:
    store.put("key", ApiKeyCredential(Secret(KEY)))
    store.put("team", oauth())
    assert store.get("key") == ApiKeyCredential(Secret(KEY))
    assert store.get("team") == oauth()
    assert isinstance(store.get("team").access_token, Secret)


def test_unknown_name_says_what_to_do(store: CredentialStore) -> None:
    with pytest.raises(CredentialError, match=r"cmtoolkit auth login --credential nope"):
        store.get("nope")
    with pytest.raises(CredentialError, match=r"cmtoolkit auth login --credential nope"):
        load_credential("nope", store=store, environ={})


def test_bad_names_are_refused(store: CredentialStore) -> None:
    with pytest.raises(CredentialError, match="credential name"):
        store.put("has space", ApiKeyCredential(Secret(KEY)))


def test_env_reference(store: CredentialStore) -> None:
    cred = load_credential("env:MY_KEY", store=store, environ={"MY_KEY": f" {KEY}\n"})
    assert cred == ApiKeyCredential(Secret(KEY))
    with pytest.raises(CredentialError, match="MY_KEY is not set"):
        load_credential("env:MY_KEY", store=store, environ={})
    auth = resolve("env:MY_KEY", store=store, environ={"MY_KEY": KEY})
    assert isinstance(auth, ApiKeyAuth) and auth.api_key == Secret(KEY)
    assert token_saver("env:MY_KEY", store=store) is None


def test_cm_api_key_fallback_only_for_default(store: CredentialStore) -> None:
    env = {"CM_API_KEY": KEY}
    assert load_credential("default", store=store, environ=env) == ApiKeyCredential(Secret(KEY))
    with pytest.raises(CredentialError):
        load_credential("other", store=store, environ=env)
    with pytest.raises(CredentialError, match="or set CM_API_KEY"):
        load_credential("default", store=store, environ={})
    # a stored 'default' wins over the environment
    store.put("default", ApiKeyCredential(Secret("stored-key")))
    assert load_credential("default", store=store, environ=env).api_key == Secret("stored-key")


def test_a_secret_as_reference_is_refused_without_echo(store: CredentialStore) -> None:
    with pytest.raises(CredentialError) as info:
        load_credential("0123456789abcdef0123456789abcdef", store=store, environ={})
    assert "0123456789abcdef0123456789abcdef" not in str(info.value)


def test_logout_removes_the_entry(store: CredentialStore) -> None:
    store.put("default", ApiKeyCredential(Secret(KEY)))
    store.put("team", oauth())
    assert store.remove("team") is True
    assert store.names() == ["default"]
    assert store.remove("team") is False
    assert stat.S_IMODE(store.path.stat().st_mode) == 0o600


def test_resolve_oauth_and_persist_refreshed_tokens(store: CredentialStore) -> None:
    store.put("team", oauth())
    auth = resolve("team", store=store)
    assert isinstance(auth, OAuthAuth)
    assert auth.access_token == Secret("at-1") and auth.refresh_token == Secret("rt-1")
    assert auth.expires_at == EXPIRES
    save = token_saver("team", store=store)
    assert save is not None
    new_expiry = datetime(2031, 5, 6, tzinfo=UTC)
    save(OAuthTokens(Secret("at-2"), Secret("rt-2"), 1209600, new_expiry))
    saved = store.get("team")
    assert saved == OAuthCredential(
        access_token=Secret("at-2"),
        refresh_token=Secret("rt-2"),
        expires_at=new_expiry,
        client_id="123456",
        client_secret=Secret("cs-1"),
        redirect_uri="http://127.0.0.1:8976/callback",
    )
    # a refresh answer without a refresh token keeps the old one
    save(OAuthTokens(Secret("at-3"), Secret(""), 60, new_expiry))
    assert store.get("team").refresh_token == Secret("rt-2")
    assert store.get("team").access_token == Secret("at-3")
    assert token_saver("missing", store=store) is None


def test_expired() -> None:
    now = datetime.now(UTC)
    assert oauth().expired(now=EXPIRES + timedelta(seconds=1))
    assert not oauth().expired(now=now)


def test_broken_entries_say_what_to_do(store: CredentialStore) -> None:
    store.put("default", ApiKeyCredential(Secret(KEY)))
    data = json.loads(store.path.read_text())
    data["credentials"]["bad"] = {"kind": "password", "value": "x"}
    store.path.write_text(json.dumps(data))
    with pytest.raises(CredentialError, match="auth logout --credential bad"):
        store.get("bad")
    store.path.write_text("{not json")
    with pytest.raises(CredentialError, match="cannot read the credential store"):
        store.names()
