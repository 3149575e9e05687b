"""Every response fixture of the real API has a twin from the emulator with the same shape.

For each sample in ``tests/fixtures/campaign_monitor`` (the ``cm_samples`` fixture) the emulator
answers the request the sample documents (see its README.md); the answer must have the same keys,
value types and envelope (and the same HTTP status family). Plain ``requests``, no client.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any
from urllib.parse import parse_qs, quote, urlsplit

import pytest
import requests

from cmtoolkit.emulator import Emulator

# Samples the emulator does not serve (none at the moment).
NOT_SERVED_YET: set[str] = set()


def same_shape(expected: Any, actual: Any, path: str = "$") -> list[str]:
    """Differences in keys, value types and nesting between two JSON values.

    Lists compare every actual element with the first expected element (fixtures are homogeneous);
    an empty list on either side matches any list. bool and int are different types.
    """
    if isinstance(expected, dict):
        if not isinstance(actual, dict):
            return [f"{path}: expected an object, got {type(actual).__name__}"]
        problems = []
        if set(expected) != set(actual):
            missing = sorted(set(expected) - set(actual))
            extra = sorted(set(actual) - set(expected))
            problems.append(f"{path}: missing keys {missing}, extra keys {extra}")
        for key in set(expected) & set(actual):
            problems += same_shape(expected[key], actual[key], f"{path}.{key}")
        return problems
    if isinstance(expected, list):
        if not isinstance(actual, list):
            return [f"{path}: expected an array, got {type(actual).__name__}"]
        if not expected:
            return []
        problems = []
        for i, item in enumerate(actual):
            problems += same_shape(expected[0], item, f"{path}[{i}]")
        return problems
    kind = float if isinstance(expected, float) else type(expected)
    if type(actual) is not kind and not (kind is float and type(actual) is int):
        return [f"{path}: expected {kind.__name__}, got {type(actual).__name__} ({actual!r})"]
    return []


def test_same_shape_catches_differences() -> None:
    assert same_shape({"a": [{"b": 1}]}, {"a": [{"b": 2}, {"b": 3}]}) == []
    assert same_shape({"a": 1}, {"a": True})
    assert same_shape({"a": 1}, {"a": 1, "b": 2})
    assert same_shape([{"a": "x"}], [{"a": 1}])
    assert same_shape("x", ["x"])


# --- the account the fixtures are replayed against ----------------------------------------------


class Replay:
    def __init__(self, emu: Emulator) -> None:
        self.emu = emu
        self.s = requests.Session()
        self.s.auth = (emu.api_key, "x")
        self.url = emu.base_url
        self.origin = emu.origin
        self.cid = emu.client_id
        self.lid = emu.list_ids[0]
        lst = emu.account.clients[0].lists[0]
        self.plain_email = next(
            e for row, e in enumerate(lst.emails) if row not in lst.mobile and lst.states[row] == 0
        )
        self.mobile_email = lst.emails[min(lst.mobile)]
        self.segment_id = emu.account.clients[0].segments[0].segment_id

    def get(self, path: str, **params: Any) -> requests.Response:
        return self.s.get(self.url + path, params=params)

    def page(self, state: str, tracking: bool) -> requests.Response:
        return self.get(
            f"/lists/{self.lid}/{state}.json",
            date="2010-01-01",
            page=1,
            pagesize=1000,
            orderfield="email",
            orderdirection="asc",
            includetrackingpreference=str(tracking),
        )

    def oauth_code(self) -> str:
        app = self.emu.oauth_app
        form = {"client_id": app.client_id, "redirect_uri": app.redirect_uri, "scope": "x"}
        r = requests.post(self.origin + "/oauth", data=form, allow_redirects=False)
        return parse_qs(urlsplit(r.headers["Location"]).query)["code"][0]

    def token(self, **form: str) -> requests.Response:
        return requests.post(self.origin + "/oauth/token", data=form)

    def exchange(self, code: str | None = None) -> requests.Response:
        app = self.emu.oauth_app
        return self.token(
            grant_type="authorization_code",
            client_id=app.client_id,
            client_secret=app.client_secret,
            redirect_uri=app.redirect_uri,
            code=code or self.oauth_code(),
        )

    def bearer(self, token: str) -> requests.Response:
        headers = {"Authorization": f"Bearer {token}"}
        return requests.get(self.url + "/clients.json", headers=headers)


def _new_field(r: Replay) -> requests.Response:
    return r.s.post(
        f"{r.url}/lists/{r.lid}/customfields.json",
        json={"FieldName": "new date field", "DataType": "Date", "Options": []},
    )


def _rename_field(r: Replay) -> requests.Response:
    r.s.post(
        f"{r.url}/lists/{r.lid}/customfields.json",
        json={"FieldName": "to rename", "DataType": "Text", "Options": []},
    )
    key = quote("[torename]", safe="")
    return r.s.put(
        f"{r.url}/lists/{r.lid}/customfields/{key}.json",
        json={"FieldName": "my renamed custom field", "VisibleInPreferenceCenter": True},
    )


def _webhook(r: Replay) -> requests.Response:
    return r.s.post(
        f"{r.url}/lists/{r.lid}/webhooks.json",
        json={"Events": ["Subscribe"], "Url": "https://example.com/hook", "PayloadFormat": "json"},
    )


def _webhooks(r: Replay) -> requests.Response:
    _webhook(r)
    return r.get(f"/lists/{r.lid}/webhooks.json")


def _import(r: Replay, emails: list[str]) -> requests.Response:
    return r.s.post(
        f"{r.url}/subscribers/{r.lid}/import.json",
        json={
            "Subscribers": [{"EmailAddress": e, "Name": "Imported"} for e in emails],
            "Resubscribe": True,
        },
    )


def _expired(r: Replay) -> requests.Response:
    token = r.exchange().json()["access_token"]
    r.emu.advance(r.emu.auth.token_lifetime + 1)
    return r.bearer(token)


def _revoked(r: Replay) -> requests.Response:
    token = r.exchange().json()["access_token"]
    r.emu.revoke(token)
    return r.bearer(token)


def _server_error(r: Replay) -> requests.Response:
    r.emu.set_faults("500:first=1")
    try:
        return r.get("/clients.json")
    finally:
        r.emu.set_faults(None)


def _campaign_with(r: Replay, total: str) -> str:
    """The id of a sent campaign whose summary has ``total`` > 0 (so its page is not empty)."""
    for campaign in reversed(r.emu.account.clients[0].campaigns):
        summary = r.get(f"/campaigns/{campaign.campaign_id}/summary.json").json()
        if summary[total] > 0:
            return campaign.campaign_id
    raise AssertionError(f"no seeded campaign has {total}")


def _activity(r: Replay, kind: str, total: str) -> requests.Response:
    return r.get(
        f"/campaigns/{_campaign_with(r, total)}/{kind}.json",
        date="2010-01-01 00:00",
        orderfield="date",
        page=1,
        pagesize=1000,
        orderdirection="asc",
    )


def _history(r: Replay) -> requests.Response:
    """The history of a subscriber who opened a campaign (so it has actions)."""
    campaign = next(c for c in reversed(r.emu.account.clients[0].campaigns) if c.list_id == r.lid)
    opened = r.get(f"/campaigns/{campaign.campaign_id}/opens.json").json()["Results"]
    return r.get(f"/subscribers/{r.lid}/history.json", email=opened[0]["EmailAddress"])


def _refresh(r: Replay) -> requests.Response:
    refresh = r.exchange().json()["refresh_token"]
    return r.token(grant_type="refresh_token", refresh_token=refresh)


CASES: dict[str, tuple[int, Callable[[Replay], requests.Response]]] = {
    "clients.json": (200, lambda r: r.get("/clients.json")),
    "client_details.json": (200, lambda r: r.get(f"/clients/{r.cid}.json")),
    "lists.json": (200, lambda r: r.get(f"/clients/{r.cid}/lists.json")),
    "listsforemail.json": (
        200,
        lambda r: r.get(f"/clients/{r.cid}/listsforemail.json", email=r.plain_email),
    ),
    "segments.json": (200, lambda r: r.get(f"/clients/{r.cid}/segments.json")),
    "suppressionlist.json": (
        200,
        lambda r: r.get(
            f"/clients/{r.cid}/suppressionlist.json",
            page=1,
            pagesize=1000,
            orderfield="email",
            orderdirection="asc",
        ),
    ),
    "create_list.json": (
        201,
        lambda r: r.s.post(
            f"{r.url}/lists/{r.cid}.json",
            json={
                "Title": "Created list",
                "UnsubscribePage": "",
                "ConfirmedOptIn": False,
                "ConfirmationSuccessPage": "",
                "UnsubscribeSetting": "AllClientLists",
            },
        ),
    ),
    "list_details.json": (200, lambda r: r.get(f"/lists/{r.lid}.json")),
    "list_stats.json": (200, lambda r: r.get(f"/lists/{r.lid}/stats.json")),
    "custom_fields.json": (200, lambda r: r.get(f"/lists/{r.lid}/customfields.json")),
    "custom_fields_utf8.json": (200, lambda r: r.get(f"/lists/{r.lid}/customfields.json")),
    "create_custom_field.json": (201, _new_field),
    "update_custom_field.json": (200, _rename_field),
    "list_webhooks.json": (200, _webhooks),
    "create_list_webhook.json": (201, _webhook),
    "active_subscribers.json": (200, lambda r: r.page("active", False)),
    "active_subscribers_with_tracking_preference.json": (200, lambda r: r.page("active", True)),
    "unconfirmed_subscribers.json": (200, lambda r: r.page("unconfirmed", False)),
    "unsubscribed_subscribers.json": (200, lambda r: r.page("unsubscribed", False)),
    "bounced_subscribers.json": (200, lambda r: r.page("bounced", False)),
    "deleted_subscribers.json": (200, lambda r: r.page("deleted", False)),
    "create_segment.json": (
        201,
        lambda r: r.s.post(
            f"{r.url}/segments/{r.lid}.json",
            json={
                "Title": "Hello",
                "RuleGroups": [{"Rules": [{"RuleType": "EmailAddress", "Clause": "CONTAINS @"}]}],
            },
        ),
    ),
    "segment_details.json": (200, lambda r: r.get(f"/segments/{r.segment_id}.json")),
    "segment_subscribers.json": (
        200,
        lambda r: r.get(
            f"/segments/{r.segment_id}/active.json",
            page=1,
            pagesize=1000,
            orderfield="email",
            orderdirection="asc",
            includetrackinginformation="False",
        ),
    ),
    "segment_subscribers_with_tracking_preference.json": (
        200,
        lambda r: r.get(f"/segments/{r.segment_id}/active.json", includetrackingpreference="true"),
    ),
    "subscriber_details.json": (
        200,
        lambda r: r.get(
            f"/subscribers/{r.lid}.json", email=r.plain_email, includetrackingpreference="False"
        ),
    ),
    "subscriber_details_with_tracking_preference.json": (
        200,
        lambda r: r.get(
            f"/subscribers/{r.lid}.json", email=r.plain_email, includetrackingpreference="True"
        ),
    ),
    "from_createsend_ruby/subscriber_details_with_track_and_sms_pref.json": (
        200,
        lambda r: r.get(
            f"/subscribers/{r.lid}.json", email=r.mobile_email, includetrackingpreference="true"
        ),
    ),
    "subscriber_history.json": (200, _history),
    "campaigns.json": (
        200,
        lambda r: r.get(
            f"/clients/{r.cid}/campaigns.json",
            sentfromdate="",
            senttodate="",
            page=1,
            tags="",
            pagesize=2,
            orderdirection="desc",
        ),
    ),
    "campaign_summary.json": (
        200,
        lambda r: r.get(
            f"/campaigns/{r.emu.account.clients[0].campaigns[0].campaign_id}/summary.json"
        ),
    ),
    "campaign_recipients.json": (
        200,
        lambda r: r.get(
            f"/campaigns/{r.emu.account.clients[0].campaigns[0].campaign_id}/recipients.json",
            orderfield="email",
            page=1,
            pagesize=20,
            orderdirection="asc",
        ),
    ),
    "campaign_opens.json": (200, lambda r: _activity(r, "opens", "TotalOpened")),
    "campaign_clicks.json": (200, lambda r: _activity(r, "clicks", "Clicks")),
    "campaign_bounces.json": (200, lambda r: _activity(r, "bounces", "Bounced")),
    "campaign_unsubscribes.json": (200, lambda r: _activity(r, "unsubscribes", "Unsubscribed")),
    "add_subscriber.json": (
        201,
        lambda r: r.s.post(
            f"{r.url}/subscribers/{r.lid}.json",
            json={
                "EmailAddress": "subscriber@example.com",
                "Name": "Subscriber",
                "CustomFields": [{"Key": "website", "Value": "https://example.com"}],
                "Resubscribe": True,
                "ConsentToTrack": "Yes",
            },
        ),
    ),
    "import_subscribers.json": (
        201,
        lambda r: _import(r, ["i1@example.com", "i2@example.com", "i3@example.com"]),
    ),
    "import_subscribers_partial_success.json": (
        400,
        lambda r: _import(r, ["example+1@example", r.plain_email, "i4@example.com"]),
    ),
    "custom_api_error.json": (400, lambda r: r.get(f"/lists/{r.lid}/active.json", pagesize=5)),
    "sample_client_error.json": (
        400,
        lambda r: r.get(f"/lists/{r.lid}/active.json", orderfield="x"),
    ),
    "sample_server_error.json": (500, _server_error),
    "expired_oauth_token_api_error.json": (401, _expired),
    "from_createsend_ruby/invalid_oauth_token_api_error.json": (
        401,
        lambda r: r.bearer("not-a-token"),
    ),
    "from_createsend_ruby/revoked_oauth_token_api_error.json": (401, _revoked),
    "oauth_exchange_token.json": (200, lambda r: r.exchange()),
    "oauth_exchange_token_error.json": (400, lambda r: r.exchange(code="wrong")),
    "refresh_oauth_token.json": (200, _refresh),
    "from_createsend_ruby/oauth_refresh_token_error.json": (
        400,
        lambda r: r.token(grant_type="refresh_token", refresh_token="wrong"),
    ),
}


def test_every_fixture_has_a_case(cm_samples: Any) -> None:
    on_disk = {p.relative_to(cm_samples.dir).as_posix() for p in cm_samples.dir.rglob("*.json")}
    assert on_disk == set(CASES) | NOT_SERVED_YET


@pytest.mark.parametrize("name", sorted(CASES))
def test_fixture_shape(
    name: str, emulator_factory: Callable[..., Emulator], cm_samples: Any
) -> None:
    emu = emulator_factory(seed_size=300, seed=5)
    status, request = CASES[name]
    response = request(Replay(emu))
    assert response.status_code == status, response.text
    expected = cm_samples.json(name)
    actual = response.json()
    assert same_shape(expected, actual) == []
    if isinstance(expected, dict) and "Results" in expected:
        assert actual["Results"], "the emulator page should not be empty"


def test_created_keys_follow_the_real_derivation(emulator: Emulator, cm_samples: Any) -> None:
    r = Replay(emulator)
    assert _new_field(r).json() == cm_samples.json("create_custom_field.json")
    assert _rename_field(r).json() == cm_samples.json("update_custom_field.json")
