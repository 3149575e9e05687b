"""The cmtoolkit client against a running emulator: paging, imports, OAuth, rate limits, faults."""

from __future__ import annotations

import html.parser
from collections.abc import Callable
from typing import Any
from urllib.parse import parse_qs, urljoin, urlsplit

import pytest
import requests

from cmtoolkit import people as synthetic_people
from cmtoolkit.emulator import Emulator

cmp = pytest.importorskip("cmtoolkit.campaign_monitor")
errors = pytest.importorskip("cmtoolkit.errors")

ORDERS = [(f, d) for f in ("email", "name", "date") for d in ("asc", "desc")]


@pytest.fixture(scope="module")
def big() -> Any:
    emu = Emulator(seed_size=25_000, seed=11, lists=("Newsletter",))
    emu.start()
    yield emu
    emu.stop()


def expected_order(emu: Emulator, field: str, direction: str) -> list[str]:
    lst = emu.account.clients[0].lists[0]
    rows = [r for r in range(len(lst)) if lst.states[r] == 0]
    key: Callable[[int], Any]
    if field == "email":
        key = lambda r: lst.emails[r].lower()  # noqa: E731
    elif field == "name":
        key = lambda r: (lst.names[r].lower(), lst.emails[r].lower())  # noqa: E731
    else:
        key = lambda r: (lst.dates[r], lst.emails[r].lower())  # noqa: E731
    ordered = [lst.emails[r] for r in sorted(rows, key=key)]
    return ordered[::-1] if direction == "desc" else ordered


@pytest.mark.parametrize(("field", "direction"), ORDERS)
def test_paging_25000_returns_the_seeded_set_in_order(
    cm_factory: Callable[..., Any], big: Emulator, field: str, direction: str
):
    with cm_factory(big) as cm:
        got = [
            s.email
            for s in cm.subscribers(
                big.list_ids[0], "Active", order_field=field, order_direction=direction
            )
        ]
    assert got == expected_order(big, field, direction)
    assert len(got) == len(set(got)) > 20_000


def test_all_states_together_are_exactly_the_synthetic_people(
    cm_factory: Callable[..., Any], big: Emulator
) -> None:
    with cm_factory(big) as cm:
        seen: list[str] = []
        for state in ("Active", "Unconfirmed", "Unsubscribed", "Bounced", "Deleted"):
            for frame in cm.subscriber_frames(big.list_ids[0], state):
                seen += frame.get_column("email").to_list()
    people = synthetic_people.people(11, 0, 25_000).get_column("email").to_list()
    assert sorted(seen) == sorted(people)


def test_partial_import_failure(emulator: Emulator, cm: Any) -> None:
    lid = emulator.list_ids[0]
    existing = emulator.account.clients[0].lists[0].emails[0]
    rows = [
        {"EmailAddress": "example+1@example", "Name": "Bad"},
        {"EmailAddress": existing, "Name": "Renamed"},
        {"EmailAddress": "new.person@example.com", "Name": "New"},
        {"EmailAddress": "NEW.person@example.com", "Name": "New again"},
    ]
    result = cm.import_batch(lid, rows)
    assert [(f.email, f.code) for f in result.failures if f.code == 1] == [("example+1@example", 1)]
    assert result.total_unique_emails_submitted == 3
    assert result.total_new_subscribers == 1
    assert result.duplicate_emails == ("NEW.person@example.com",)
    assert cm.subscriber(lid, "new.person@example.com").name == "New again"


def test_import_resubscribe_semantics_through_the_client(emulator: Emulator, cm: Any) -> None:
    lid = emulator.list_ids[0]
    cm.add_subscriber(lid, "gone@example.com", name="Gone", consent_to_track="Yes")
    cm.unsubscribe(lid, "gone@example.com")
    result = cm.import_batch(lid, [{"EmailAddress": "gone@example.com", "Name": "Back"}])
    assert [(f.email, f.code) for f in result.failures] == [("gone@example.com", 206)]
    record = cm.subscriber(lid, "gone@example.com")
    assert (record.state, record.name) == ("Unsubscribed", "Back")
    result = cm.import_batch(lid, [{"EmailAddress": "gone@example.com"}], resubscribe=True)
    assert result.failures == ()
    assert cm.subscriber(lid, "gone@example.com").state == "Active"
    cm.delete_subscriber(lid, "gone@example.com")
    assert cm.subscriber(lid, "gone@example.com").state == "Deleted"


class _Form(html.parser.HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.action = ""
        self.fields: dict[str, str] = {}
        self.buttons: list[tuple[str, str, str]] = []
        self._button: dict[str, str | None] | None = None

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = dict(attrs)
        if tag == "form":
            self.action = a.get("action") or ""
        elif tag == "input" and a.get("type") == "hidden":
            self.fields[a["name"] or ""] = a.get("value") or ""
        elif tag == "button":
            self._button = a

    def handle_data(self, data: str) -> None:
        if self._button is not None:
            b = self._button
            self.buttons.append((data.strip(), b.get("name") or "", b.get("value") or ""))
            self._button = None


def _browser_allow(url: str) -> dict[str, list[str]]:
    """What a user's browser does: load the authorize page, press Allow access, follow."""
    page = requests.get(url)
    assert page.status_code == 200 and "text/html" in page.headers["Content-Type"]
    form = _Form()
    form.feed(page.text)
    _label, name, value = next(b for b in form.buttons if b[0] == "Allow access")
    answer = requests.post(
        urljoin(url, form.action), data={**form.fields, name: value}, allow_redirects=False
    )
    assert answer.status_code == 302
    return parse_qs(urlsplit(answer.headers["Location"]).query)


def test_whole_oauth_flow_with_expiry_and_refresh(
    cm_factory: Callable[..., Any], emulator_factory: Callable[..., Emulator]
):
    emu = emulator_factory(token_lifetime=3600)
    app = cmp.OAuthApp(
        emu.oauth_app.client_id, emu.oauth_app.client_secret, emu.oauth_app.redirect_uri
    )
    url = cmp.authorize_url(app, "ManageLists,ImportSubscribers", "xyz", base_url=emu.base_url)
    redirect = _browser_allow(url)
    assert redirect["state"] == ["xyz"]
    tokens = cmp.exchange_code(app, redirect["code"][0], base_url=emu.base_url)
    assert tokens.expires_in == 3600
    with pytest.raises(errors.OAuthError):  # a code works once
        cmp.exchange_code(app, redirect["code"][0], base_url=emu.base_url)

    refreshed: list[Any] = []
    with cm_factory(
        emu, cmp.OAuthAuth.from_tokens(tokens), on_tokens_refreshed=refreshed.append
    ) as cm:
        assert cm.clients()[0].client_id == emu.client_id
        emu.advance(3601)  # the emulator clock: no sleeping
        assert cm.clients()[0].client_id == emu.client_id  # 121 → refresh → retry
        assert len(refreshed) == 1
        assert refreshed[0].access_token != tokens.access_token
        statuses = [s for m, p, s in emu.requests if p.endswith("/clients.json")]
        assert statuses == [200, 401, 200]
        emu.revoke()
        with pytest.raises(errors.TokenRevoked):
            cm.clients()
    with (
        cm_factory(emu, cmp.OAuthAuth(tokens.access_token)) as cm,
        pytest.raises(errors.TokenInvalid),
    ):
        cm.clients()  # the refresh retired the first access token


def test_standalone_refresh(emulator: Emulator) -> None:
    raw = emulator.issue_token(emulator.oauth_app.client_id)
    tokens = cmp.refresh_tokens(raw["refresh_token"], base_url=emulator.base_url)
    assert tokens.access_token.reveal() != raw["access_token"]
    assert tokens.refresh_token.reveal() == raw["refresh_token"]  # no rotation by default


@pytest.mark.parametrize("headers", [True, False])
def test_rate_limiting_is_survived(
    cm_factory: Callable[..., Any], emulator: Emulator, headers: bool
) -> None:
    emulator.set_rate_limit(3, window=30, headers=headers)
    lid = emulator.list_ids[0]
    policy = cmp.RetryPolicy(base_delay=10, max_delay=40, random=lambda: 1.0)
    with cm_factory(emulator, retry=policy) as cm:
        for _ in range(5):
            assert cm.list_details(lid).list_id == lid
    limited = [s for _, p, s in emulator.requests if p.endswith(f"{lid}.json")].count(429)
    if headers:  # the client saw the budget run out and waited for X-RateLimit-Reset: no 429
        assert limited == 0
        assert cm.sleeps and all(s <= 30 for s in cm.sleeps)
    else:  # no header: a 429, then exponential backoff
        assert limited >= 1
        assert cm.sleeps[:2] == [10, 20]


def test_rate_limit_answer_is_typed(cm_factory: Callable[..., Any], emulator: Emulator) -> None:
    # Without headers: with them the client waits for the reset instead of meeting the 429.
    emulator.set_rate_limit(1, window=60, headers=False)
    with cm_factory(emulator, retry=cmp.RetryPolicy(max_attempts=1)) as cm:
        cm.clients()
        with pytest.raises(errors.RateLimited) as info:
            cm.clients()
    assert info.value.status == 429 and info.value.code == 429


@pytest.mark.parametrize(
    ("spec", "status"),
    [
        ("429:first=2", 429),
        ("429-bare:first=2", 429),
        ("500:first=2", 500),
        ("503:first=2", 503),
        ("drop:first=2", 0),
        ("truncate:first=2", 200),
    ],
)
def test_retriable_faults_are_observed_and_recovered(
    emulator: Emulator, cm: Any, spec: str, status: int
) -> None:
    emulator.set_faults(spec)
    lid = emulator.list_ids[0]
    got = [s.email for s in cm.subscribers(lid, page_size=50)]
    assert got == expected_order(emulator, "email", "asc")
    seen = [s for _, p, s in emulator.requests if p.endswith("/active.json")]
    assert seen[:2] == [status, status] and len(seen) == len(set(got)) // 50 + 1 + 2
    assert len(cm.sleeps) == 2


def test_each_fault_surfaces_as_its_typed_error(
    cm_factory: Callable[..., Any], emulator: Emulator
) -> None:
    kinds = {
        "429": errors.RateLimited,
        "429-bare": errors.RateLimited,
        "500": errors.ServerError,
        "503": errors.ServerError,
        "drop": errors.TransportError,
        "truncate": errors.TransportError,
    }
    with cm_factory(emulator, retry=cmp.RetryPolicy(max_attempts=1)) as cm:
        for kind, error in kinds.items():
            emulator.set_faults(f"{kind}:first=1")
            with pytest.raises(error):
                cm.clients()
            assert cm.clients()  # the next call is fine


def test_slow_response_times_out_then_recovers(
    cm_factory: Callable[..., Any], emulator: Emulator
) -> None:
    emulator.set_faults("slow:first=1,delay=0.5")
    with cm_factory(emulator, timeout=(2.0, 0.2)) as cm:
        assert cm.clients()[0].client_id == emulator.client_id
        assert len(cm.sleeps) == 1


def test_expire_fault_is_refreshed_transparently(
    cm_factory: Callable[..., Any], emulator: Emulator
) -> None:
    emulator.set_faults("expire:after=2")
    raw = emulator.issue_token(emulator.oauth_app.client_id)
    refreshed: list[Any] = []
    auth = cmp.OAuthAuth(raw["access_token"], raw["refresh_token"])
    with cm_factory(emulator, auth, on_tokens_refreshed=refreshed.append) as cm:
        for _ in range(5):
            assert cm.clients()
    assert len(refreshed) == 1
    assert [s for _, p, s in emulator.requests if p.endswith("clients.json")].count(401) == 1
