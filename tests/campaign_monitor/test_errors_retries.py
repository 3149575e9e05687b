"""Status → typed error mapping, and retries with backoff through the injected sleep."""

from __future__ import annotations

import pytest
import requests
from urllib3.exceptions import MaxRetryError, NewConnectionError

from cmtoolkit.campaign_monitor import RetryPolicy
from cmtoolkit.errors import (
    AuthenticationError,
    BadRequest,
    CampaignMonitorError,
    NotFound,
    PermissionDenied,
    RateLimited,
    RequestTimeout,
    ServerError,
    TransportError,
)

BASE = "https://api.createsend.com/api/v3.3"
URL = f"{BASE}/clients.json"
LIST = "a58ee1d3039b8bec838e6d1482a8a965"
CLIENT = "4a397ccaaa55eb4e6aa1221e1e2d7122"
HTML = "<html><body><h1>502 Bad Gateway</h1></body></html>"


def connect_refused() -> requests.ConnectionError:
    reason = NewConnectionError(None, "Failed to establish a new connection: refused")
    return requests.ConnectionError(MaxRetryError(None, URL, reason))


@pytest.mark.parametrize(
    ("status", "fixture", "error", "code"),
    [
        (400, "custom_api_error.json", BadRequest, 98798),
        (401, "custom_api_error.json", AuthenticationError, 98798),
        (418, "sample_client_error.json", CampaignMonitorError, 418),
        (500, "sample_server_error.json", ServerError, 500),
    ],
)
def test_error_bodies_map_to_typed_errors(rsps, cm, fx, clock, status, fixture, error, code):
    rsps.get(URL, body=fx.text(fixture), status=status)
    with pytest.raises(error) as info:
        cm.clients()
    assert type(info.value) is error
    assert (info.value.status, info.value.code) == (status, code)
    assert info.value.method == "GET" and info.value.path == "/api/v3.3/clients.json"
    assert fx.json(fixture)["Message"].strip() in str(info.value)


def test_code_60_is_permission_denied(rsps, cm):
    rsps.get(
        URL, json={"Code": 60, "Message": "You do not have the required permission"}, status=401
    )
    with pytest.raises(PermissionDenied, match="cmtoolkit auth login"):
        cm.clients()


@pytest.mark.parametrize(
    ("status", "error"),
    [
        (400, BadRequest),
        (401, AuthenticationError),
        (403, PermissionDenied),
        (404, NotFound),
        (429, RateLimited),
        (502, ServerError),
    ],
)
def test_non_json_error_bodies_still_map_by_status(rsps, make_client, status, error):
    cm = make_client(retry=RetryPolicy(max_attempts=1))
    rsps.get(URL, body=HTML, status=status, content_type="text/html")
    with pytest.raises(error) as info:
        cm.clients()
    assert info.value.status == status and info.value.code is None
    assert "<html>" not in str(info.value)


def test_404_is_not_retried(rsps, cm, clock):
    rsps.get(f"{BASE}/lists/{LIST}.json", body="", status=404)
    with pytest.raises(NotFound, match="Check the client, list or subscriber"):
        cm.list_details(LIST)
    assert len(rsps.calls) == 1 and clock.sleeps == []


def test_500_is_retried_with_full_jitter_backoff(rsps, cm, fx, clock):
    for _ in range(3):
        rsps.get(URL, body=fx.text("sample_server_error.json"), status=500)
    rsps.get(URL, body=fx.text("clients.json"))
    assert len(cm.clients()) == 2
    # random() is 0.5, base 1 s: half of 1, 2, 4
    assert clock.sleeps == [0.5, 1.0, 2.0]


def test_retries_stop_after_max_attempts(rsps, cm, fx, clock):
    rsps.get(URL, body=fx.text("sample_server_error.json"), status=503)
    with pytest.raises(ServerError, match="Try again later"):
        cm.clients()
    assert len(rsps.calls) == 6
    assert clock.sleeps == [0.5, 1.0, 2.0, 4.0, 8.0]


def test_backoff_is_capped_by_max_delay(rsps, make_client, fx, clock):
    cm = make_client(
        retry=RetryPolicy(max_attempts=5, base_delay=10, max_delay=15, random=lambda: 1)
    )
    rsps.get(URL, body=fx.text("sample_server_error.json"), status=500)
    with pytest.raises(ServerError):
        cm.clients()
    assert clock.sleeps == [10, 15, 15, 15]


def test_retries_stop_at_the_elapsed_budget(rsps, make_client, fx, clock):
    cm = make_client(retry=RetryPolicy(max_attempts=10, max_elapsed=3.0, random=lambda: 0.5))
    rsps.get(URL, body=fx.text("sample_server_error.json"), status=500)
    with pytest.raises(ServerError):
        cm.clients()
    assert clock.sleeps == [0.5, 1.0]  # the next 2.0 s wait would pass 3 s in total


def test_429_honours_x_ratelimit_reset(rsps, cm, fx, clock):
    rsps.get(
        URL,
        json={"Code": 429, "Message": "Rate limit exceeded"},
        status=429,
        headers={"X-RateLimit-Limit": "60", "X-RateLimit-Remaining": "0", "X-RateLimit-Reset": "7"},
    )
    rsps.get(URL, body=fx.text("clients.json"))
    assert len(cm.clients()) == 2
    assert clock.sleeps == [7.0]


def test_429_honours_retry_after(rsps, cm, fx, clock):
    rsps.get(URL, body="", status=429, headers={"Retry-After": "3"})
    rsps.get(URL, body=fx.text("clients.json"))
    cm.clients()
    assert clock.sleeps == [3.0]


def test_429_without_headers_backs_off_exponentially(rsps, cm, fx, clock):
    msg = {"Code": 429, "Message": "Subscriber was added too many times too quickly"}
    rsps.post(f"{BASE}/subscribers/{LIST}.json", json=msg, status=429)
    rsps.post(f"{BASE}/subscribers/{LIST}.json", json=msg, status=429)
    rsps.post(f"{BASE}/subscribers/{LIST}.json", body=fx.text("add_subscriber.json"))
    assert cm.add_subscriber(LIST, "subscriber@example.com") == "subscriber@example.com"
    assert clock.sleeps == [0.5, 1.0]


def test_429_gives_up_with_retry_after_when_the_wait_is_past_the_budget(rsps, make_client, clock):
    cm = make_client(retry=RetryPolicy(max_elapsed=60))
    rsps.get(
        URL,
        json={"Code": 429, "Message": "Rate limit exceeded"},
        status=429,
        headers={"X-RateLimit-Reset": "348"},
    )
    with pytest.raises(RateLimited) as info:
        cm.clients()
    assert info.value.retry_after == 348.0
    assert "wait 348 s" in str(info.value)
    assert clock.sleeps == []


@pytest.mark.parametrize(
    "exc",
    [
        requests.exceptions.ChunkedEncodingError("Connection broken: IncompleteRead"),
        requests.ConnectionError("Connection aborted: reset by peer"),
        connect_refused(),
    ],
)
def test_dropped_connections_are_transport_errors_and_retried(rsps, cm, fx, clock, exc):
    rsps.get(URL, body=exc)
    rsps.get(URL, body=fx.text("clients.json"))
    assert len(cm.clients()) == 2
    assert clock.sleeps == [0.5]


def test_truncated_2xx_body_is_a_transport_error_and_retried(rsps, cm, fx, clock):
    rsps.get(f"{BASE}/lists/{LIST}/active.json", body=fx.text("active_subscribers.json")[:300])
    rsps.get(f"{BASE}/lists/{LIST}/active.json", body=fx.text("active_subscribers.json"))
    assert len(list(cm.subscribers(LIST))) == 5
    rsps.get(f"{BASE}/lists/{LIST}/bounced.json", body=fx.text("bounced_subscribers.json")[:-40])
    rsps.get(f"{BASE}/lists/{LIST}/bounced.json", body=fx.text("bounced_subscribers.json"))
    assert next(cm.subscriber_frames(LIST, "Bounced")).height == 1
    assert clock.sleeps == [0.5, 0.5]


def test_persistent_transport_failure_raises_transport_error(rsps, cm, clock):
    rsps.get(URL, body=requests.ConnectionError("reset"))
    with pytest.raises(TransportError, match="CMTOOLKIT_API_URL") as info:
        cm.clients()
    assert type(info.value) is TransportError
    assert info.value.retriable
    assert len(clock.sleeps) == 5


@pytest.mark.parametrize("exc", [requests.ReadTimeout("read"), requests.ConnectTimeout("conn")])
def test_timeouts_are_request_timeouts_and_retried(rsps, cm, fx, clock, exc):
    rsps.get(URL, body=exc)
    rsps.get(URL, body=fx.text("clients.json"))
    assert len(cm.clients()) == 2
    rsps.get(f"{BASE}/lists/{LIST}.json", body=exc)
    with pytest.raises(RequestTimeout, match="in time"):
        cm.list_details(LIST)


def test_default_timeouts_are_passed_to_requests(rsps, make_client, fx):
    cm = make_client(timeout=(1.5, 9.0))
    seen = []
    rsps.add_callback(
        "GET",
        URL,
        callback=lambda req: (seen.append(req.req_kwargs["timeout"]), (200, {}, "[]"))[1],
    )
    cm.clients()
    assert seen == [(1.5, 9.0)]


def test_create_list_is_not_retried_once_sent(rsps, cm, fx, clock):
    rsps.post(f"{BASE}/lists/{CLIENT}.json", body=fx.text("sample_server_error.json"), status=500)
    with pytest.raises(ServerError):
        cm.create_list(CLIENT, "x")
    rsps.post(f"{BASE}/lists/{LIST}/customfields.json", body=requests.ReadTimeout("read"))
    with pytest.raises(RequestTimeout):
        cm.create_custom_field(LIST, "f", "Text")
    rsps.post(f"{BASE}/lists/{LIST}/customfields.json", body=requests.ConnectionError("reset"))
    with pytest.raises(TransportError):
        cm.create_custom_field(LIST, "f", "Text")
    assert len(rsps.calls) == 3 and clock.sleeps == []


def test_create_list_is_retried_when_the_connection_never_opened(rsps, cm, fx, clock):
    rsps.post(f"{BASE}/lists/{CLIENT}.json", body=connect_refused())
    rsps.post(f"{BASE}/lists/{CLIENT}.json", body=requests.ConnectTimeout("connect"))
    rsps.post(f"{BASE}/lists/{CLIENT}.json", body=fx.text("create_list.json"))
    assert cm.create_list(CLIENT, "x") == "e3c5f034d68744f7881fdccf13c2daee1234"
    assert clock.sleeps == [0.5, 1.0]


def test_import_is_retried_as_an_upsert(rsps, cm, fx, clock):
    rows = [{"EmailAddress": "a@example.com", "Name": "A"}]
    rsps.post(f"{BASE}/subscribers/{LIST}/import.json", body=requests.ConnectionError("reset"))
    rsps.post(f"{BASE}/subscribers/{LIST}/import.json", body=fx.text("import_subscribers.json"))
    assert cm.import_batch(LIST, rows).total_new_subscribers == 3
    assert clock.sleeps == [0.5]


def test_debug_log_has_method_path_status_and_duration(rsps, cm, fx, caplog):
    rsps.get(f"{BASE}/subscribers/{LIST}.json", body=fx.text("subscriber_details.json"))
    with caplog.at_level("DEBUG", logger="cmtoolkit.campaign_monitor"):
        cm.subscriber(LIST, "private@example.com")
    (record,) = [r for r in caplog.records if r.name == "cmtoolkit.campaign_monitor"]
    message = record.getMessage()
    assert message.startswith(f"GET /api/v3.3/subscribers/{LIST}.json -> 200 in ")
    assert "private" not in message  # no query values
