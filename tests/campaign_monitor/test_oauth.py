"""OAuth 2: authorize URL, code exchange, refresh, and the 121 refresh-and-retry; 120/122."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from urllib.parse import parse_qsl, urlsplit

import pytest
import responses
from responses import matchers

from cmtoolkit.campaign_monitor import (
    OAuthApp,
    OAuthAuth,
    OAuthTokens,
    authorize_url,
    exchange_code,
    refresh_tokens,
)
from cmtoolkit.errors import OAuthError, TokenExpired, TokenInvalid, TokenRevoked
from cmtoolkit.secret import Secret

BASE = "https://api.createsend.com/api/v3.3"
TOKEN_URL = "https://api.createsend.com/oauth/token"
APP = OAuthApp("8998879", Secret("iou0q9wud0q9wd0q9wid0q9iwd0q9wid0q9wdqwd"), "http://example.com/")


def test_authorize_url(monkeypatch):
    url = authorize_url(APP, ["ViewReports", "CreateCampaigns"], state="89879287")
    parts = urlsplit(url)
    assert f"{parts.scheme}://{parts.netloc}{parts.path}" == "https://api.createsend.com/oauth"
    assert "scope=ViewReports%2CCreateCampaigns" in url
    assert parse_qsl(parts.query) == [
        ("type", "web_server"),
        ("client_id", "8998879"),
        ("redirect_uri", "http://example.com/"),
        ("scope", "ViewReports,CreateCampaigns"),
        ("state", "89879287"),
    ]
    monkeypatch.setenv("CMTOOLKIT_API_URL", "http://127.0.0.1:8765/api/v3.3")
    assert authorize_url(APP, "ManageLists").startswith("http://127.0.0.1:8765/oauth?")


def test_exchange_code_sends_the_exact_form_body(rsps, fx):
    rsps.post(TOKEN_URL, body=fx.text("oauth_exchange_token.json"))
    before = datetime.now(UTC)
    tokens = exchange_code(APP, "98uqw9d8qu9wdu", base_url=BASE)
    request = rsps.calls[0].request
    assert request.headers["Content-Type"] == "application/x-www-form-urlencoded"
    assert "Authorization" not in request.headers
    assert request.body == (
        "grant_type=authorization_code&client_id=8998879"
        "&client_secret=iou0q9wud0q9wd0q9wid0q9iwd0q9wid0q9wdqwd"
        "&redirect_uri=http%3A%2F%2Fexample.com%2F&code=98uqw9d8qu9wdu"
    )
    assert tokens.access_token == Secret("SlAV32hkKG")
    assert tokens.refresh_token == Secret("tGzv3JOkF0XG5Qx2TlKWIA")
    assert tokens.expires_in == 1209600
    assert before + timedelta(days=14) <= tokens.expires_at <= datetime.now(UTC) + timedelta(14)


@pytest.mark.parametrize("status", [200, 400])
def test_token_endpoint_error_key_wins_whatever_the_status(rsps, fx, status):
    rsps.post(TOKEN_URL, body=fx.text("oauth_exchange_token_error.json"), status=status)
    with pytest.raises(OAuthError) as info:
        exchange_code(APP, "bad", base_url=BASE)
    assert "invalid_grant" in str(info.value)
    assert "cmtoolkit auth login" in str(info.value)


def test_refresh_tokens_form_body(rsps, fx):
    rsps.post(TOKEN_URL, body=fx.text("refresh_oauth_token.json"))
    tokens = refresh_tokens(Secret("5S4aASP9R+9KsgfHB0dapTYxNA=="), base_url=BASE)
    assert rsps.calls[0].request.body == (
        "grant_type=refresh_token&refresh_token=5S4aASP9R%2B9KsgfHB0dapTYxNA%3D%3D"
    )
    assert tokens.access_token.reveal() == "SlAV32hkKG2e12e"


def test_refresh_error_raises_oauth_error(rsps, fx):
    rsps.post(TOKEN_URL, body=fx.text("from_createsend_ruby/oauth_refresh_token_error.json"))
    with pytest.raises(OAuthError, match="refresh_token was invalid"):
        refresh_tokens(Secret("old"), base_url=BASE)


def test_oauth_endpoints_follow_the_base_url_origin(fx):
    with responses.RequestsMock() as mock:
        mock.post("http://127.0.0.1:8765/oauth/token", body=fx.text("refresh_oauth_token.json"))
        tokens = refresh_tokens(Secret("r"), base_url="http://127.0.0.1:8765/api/v3.3")
        assert [call.request.url for call in mock.calls] == ["http://127.0.0.1:8765/oauth/token"]
    assert tokens.access_token.reveal() == "SlAV32hkKG2e12e"


def test_bearer_header(rsps, make_client, fx):
    rsps.get(f"{BASE}/clients.json", body=fx.text("clients.json"))
    make_client(OAuthAuth(Secret("access-1"), Secret("refresh-1"))).clients()
    assert rsps.calls[0].request.headers["Authorization"] == "Bearer access-1"


def test_expired_token_is_refreshed_once_and_the_request_retried(rsps, make_client, fx):
    saved: list[OAuthTokens] = []
    cm = make_client(
        OAuthAuth(Secret("old-access"), Secret("5S4aASP9R+9KsgfHB0dapTYxNA==")),
        on_tokens_refreshed=saved.append,
    )
    expired = fx.text("expired_oauth_token_api_error.json")
    rsps.get(
        f"{BASE}/clients.json",
        body=expired,
        status=401,
        match=[matchers.header_matcher({"Authorization": "Bearer old-access"})],
    )
    rsps.post(TOKEN_URL, body=fx.text("refresh_oauth_token.json"))
    rsps.get(
        f"{BASE}/clients.json",
        body=fx.text("clients.json"),
        match=[matchers.header_matcher({"Authorization": "Bearer SlAV32hkKG2e12e"})],
    )
    assert len(cm.clients()) == 2
    assert [c.request.method for c in rsps.calls] == ["GET", "POST", "GET"]
    assert rsps.calls[1].request.body == (
        "grant_type=refresh_token&refresh_token=5S4aASP9R%2B9KsgfHB0dapTYxNA%3D%3D"
    )
    assert "Authorization" not in rsps.calls[1].request.headers
    assert len(saved) == 1
    assert saved[0].access_token.reveal() == "SlAV32hkKG2e12e"
    assert saved[0].refresh_token.reveal() == "tGzv3JOkF0XG5Qx2TlKWIA"
    assert cm.auth.access_token.reveal() == "SlAV32hkKG2e12e"


def test_still_expired_after_refresh_raises_token_expired(rsps, make_client, fx):
    saved: list[OAuthTokens] = []
    cm = make_client(OAuthAuth(Secret("a"), Secret("r")), on_tokens_refreshed=saved.append)
    rsps.get(f"{BASE}/clients.json", body=fx.text("expired_oauth_token_api_error.json"), status=401)
    rsps.post(TOKEN_URL, body=fx.text("refresh_oauth_token.json"))
    with pytest.raises(TokenExpired, match="cmtoolkit auth login"):
        cm.clients()
    assert [c.request.method for c in rsps.calls] == ["GET", "POST", "GET"]
    assert len(saved) == 1


def test_expired_without_refresh_token_raises(rsps, make_client, fx):
    cm = make_client(OAuthAuth(Secret("a")))
    rsps.get(f"{BASE}/clients.json", body=fx.text("expired_oauth_token_api_error.json"), status=401)
    with pytest.raises(TokenExpired) as info:
        cm.clients()
    assert info.value.code == 121 and info.value.status == 401
    assert len(rsps.calls) == 1


def test_failed_refresh_raises_oauth_error(rsps, make_client, fx):
    cm = make_client(OAuthAuth(Secret("a"), Secret("r")))
    rsps.get(f"{BASE}/clients.json", body=fx.text("expired_oauth_token_api_error.json"), status=401)
    rsps.post(TOKEN_URL, body=fx.text("from_createsend_ruby/oauth_refresh_token_error.json"))
    with pytest.raises(OAuthError, match="cmtoolkit auth login"):
        cm.clients()


@pytest.mark.parametrize(
    ("name", "error", "word"),
    [
        ("from_createsend_ruby/invalid_oauth_token_api_error.json", TokenInvalid, "invalid"),
        ("from_createsend_ruby/revoked_oauth_token_api_error.json", TokenRevoked, "revoked"),
    ],
)
def test_invalid_and_revoked_tokens_tell_the_user_to_reconnect(
    rsps, make_client, fx, name, error, word
):
    cm = make_client(OAuthAuth(Secret("a"), Secret("r")))
    rsps.get(f"{BASE}/clients.json", body=fx.text(name), status=401)
    with pytest.raises(error) as info:
        cm.clients()
    assert word in str(info.value)
    assert "cmtoolkit auth login" in str(info.value)
    assert len(rsps.calls) == 1  # no refresh attempted, no retry
