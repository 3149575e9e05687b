"""Sentinel secrets never show up in a repr/str, an exception (or its chain) or a log line."""

from __future__ import annotations

import base64
import logging
from collections.abc import Callable, Iterator

import pytest
import requests

from cmtoolkit.campaign_monitor import (
    ApiKeyAuth,
    CampaignMonitor,
    OAuthApp,
    OAuthAuth,
    OAuthTokens,
    RetryPolicy,
    exchange_code,
    refresh_tokens,
)
from cmtoolkit.errors import CmToolkitError
from cmtoolkit.secret import Secret

BASE = "https://api.createsend.com/api/v3.3"
TOKEN_URL = "https://api.createsend.com/oauth/token"
CLIENT = "4a397ccaaa55eb4e6aa1221e1e2d7122"

API_KEY = "SENTINEL-apikey-4f1e9c"
ACCESS = "SENTINEL-access-8b27d0"
REFRESH = "SENTINEL-refresh-c3a915"
CLIENT_SECRET = "SENTINEL-clientsecret-77e0"
NEW_ACCESS = "SENTINEL-newaccess-1d6f"
NEW_REFRESH = "SENTINEL-newrefresh-a0b8"
CODE = "SENTINEL-code-5e5e"
CLIENT_API_KEY = "SENTINEL-clientkey-9911"
SENTINELS = [API_KEY, ACCESS, REFRESH, CLIENT_SECRET, NEW_ACCESS, NEW_REFRESH, CODE, CLIENT_API_KEY]
SENTINELS += [base64.b64encode(f"{API_KEY}:x".encode()).decode()]
SENTINELS += [s.replace("-", "%2D") for s in SENTINELS]


def assert_clean(text: str) -> None:
    for secret in SENTINELS:
        assert secret not in text, f"secret leaked: {text!r}"
    assert "SENTINEL" not in text, f"secret leaked: {text!r}"


def exception_chain(exc: BaseException) -> Iterator[BaseException]:
    seen: set[int] = set()
    stack = [exc]
    while stack:
        e = stack.pop()
        if id(e) in seen:
            continue
        seen.add(id(e))
        yield e
        stack.extend(a for a in e.args if isinstance(a, BaseException))
        stack.extend(x for x in (e.__cause__, e.__context__) if x is not None)


def assert_exception_clean(exc: BaseException) -> None:
    for e in exception_chain(exc):
        assert_clean(str(e))
        assert_clean(repr(e))
        assert_clean(repr(e.args))
        assert_clean(repr(vars(e)) if hasattr(e, "__dict__") else "")


@pytest.fixture
def debug_log(caplog: pytest.LogCaptureFixture) -> Iterator[pytest.LogCaptureFixture]:
    caplog.set_level(logging.DEBUG)  # root: requests/urllib3 included
    yield caplog
    for record in caplog.records:
        assert_clean(record.getMessage())
        assert_clean(repr(record.args))


def oauth_client(make_client: Callable[..., CampaignMonitor], saved: list) -> CampaignMonitor:
    return make_client(
        OAuthAuth(Secret(ACCESS), Secret(REFRESH)),
        on_tokens_refreshed=saved.append,
        retry=RetryPolicy(max_attempts=2, random=lambda: 0.5),
    )


def test_reprs_and_strs_are_clean(rsps, make_client, debug_log):
    tokens = OAuthTokens.from_wire(
        {"access_token": NEW_ACCESS, "refresh_token": NEW_REFRESH, "expires_in": 60}
    )
    app = OAuthApp("123", Secret(CLIENT_SECRET), "http://127.0.0.1:9/callback")
    objects = [
        ApiKeyAuth(Secret(API_KEY)),
        ApiKeyAuth(API_KEY),  # a plain str is wrapped at once
        OAuthAuth(Secret(ACCESS), Secret(REFRESH)),
        OAuthAuth.from_tokens(tokens),
        tokens,
        app,
        make_client(ApiKeyAuth(Secret(API_KEY))),
        make_client(OAuthAuth(Secret(ACCESS), Secret(REFRESH))),
    ]
    rsps.get(
        f"{BASE}/clients/{CLIENT}.json",
        json={"ApiKey": CLIENT_API_KEY, "BasicDetails": {"ClientID": CLIENT, "CompanyName": "C"}},
    )
    objects.append(objects[-2].client_details(CLIENT))
    for obj in objects:
        assert_clean(repr(obj))
        assert_clean(str(obj))
        assert_clean(f"{obj}")
    assert isinstance(objects[1].api_key, Secret)


def test_refresh_keeps_every_token_out_of_logs_and_reprs(rsps, make_client, fx, debug_log):
    saved: list[OAuthTokens] = []
    cm = oauth_client(make_client, saved)
    rsps.get(f"{BASE}/clients.json", body=fx.text("expired_oauth_token_api_error.json"), status=401)
    rsps.post(
        TOKEN_URL,
        json={"access_token": NEW_ACCESS, "refresh_token": NEW_REFRESH, "expires_in": 1209600},
    )
    rsps.get(f"{BASE}/clients.json", body=fx.text("clients.json"))
    cm.clients()
    assert saved[0].access_token.reveal() == NEW_ACCESS
    assert_clean(repr(saved))
    assert_clean(repr(cm.auth))
    assert any("refreshed" in r.getMessage() for r in debug_log.records)


def failing_calls(rsps, make_client, fx) -> list[Callable[[], object]]:
    saved: list = []
    api = make_client(ApiKeyAuth(Secret(API_KEY)), retry=RetryPolicy(max_attempts=2))
    oauth = oauth_client(make_client, saved)
    app = OAuthApp("123", Secret(CLIENT_SECRET), "http://127.0.0.1:9/callback")
    expired = fx.text("expired_oauth_token_api_error.json")
    u = f"{BASE}/clients.json"

    def refresh_fails() -> object:
        rsps.get(u, body=expired, status=401)
        rsps.post(TOKEN_URL, json={"error": "invalid_grant", "error_description": "bad"})
        return oauth.clients()

    def still_expired() -> object:
        rsps.get(u, body=expired, status=401)
        rsps.post(TOKEN_URL, json={"access_token": NEW_ACCESS, "refresh_token": NEW_REFRESH})
        return oauth.clients()

    def status(code: int, fixture: str) -> Callable[[], object]:
        def call() -> object:
            rsps.get(u, body=fx.text(fixture), status=code)
            return api.clients()

        return call

    def raising(exc: Exception, client: CampaignMonitor) -> Callable[[], object]:
        def call() -> object:
            rsps.get(u, body=exc)
            return client.clients()

        return call

    def cut() -> object:
        rsps.get(u, body='{"Results": [')
        return oauth.clients()

    def rate_limited() -> object:
        rsps.get(u, status=429, json={"Code": 429, "Message": "x"}, headers={"Retry-After": "1"})
        return oauth.clients()

    def exchange_fails() -> object:
        rsps.post(TOKEN_URL, body=fx.text("oauth_exchange_token_error.json"), status=400)
        return exchange_code(app, CODE, base_url=BASE)

    def refresh_call_fails() -> object:
        rsps.post(TOKEN_URL, body=requests.ConnectionError(f"reset {REFRESH}"))
        return refresh_tokens(Secret(REFRESH), base_url=BASE, retry=RetryPolicy(max_attempts=1))

    def invalid(name: str) -> Callable[[], object]:
        def call() -> object:
            rsps.get(u, body=fx.text(f"from_createsend_ruby/{name}"), status=401)
            return oauth.clients()

        return call

    return [
        refresh_fails,
        still_expired,
        status(401, "custom_api_error.json"),
        status(400, "custom_api_error.json"),
        status(500, "sample_server_error.json"),
        raising(requests.ConnectionError(f"boom {API_KEY}"), api),
        raising(requests.ReadTimeout(f"slow {ACCESS}"), oauth),
        raising(requests.exceptions.ChunkedEncodingError(f"cut {ACCESS}"), oauth),
        cut,
        rate_limited,
        exchange_fails,
        refresh_call_fails,
        invalid("invalid_oauth_token_api_error.json"),
        invalid("revoked_oauth_token_api_error.json"),
    ]


def test_no_secret_in_any_exception_or_its_chain(rsps, make_client, fx, debug_log):
    calls = failing_calls(rsps, make_client, fx)
    for call in calls:
        rsps.reset()
        with pytest.raises(CmToolkitError) as info:
            call()
        assert_exception_clean(info.value)
