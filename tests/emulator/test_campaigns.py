"""The emulator's sent campaigns and their activity, over HTTP: the official ``createsend``
wrapper reads them with its own classes; engagement is realistic and deterministic; bounces and
unsubscribes agree with subscriber states; paging, the ``date`` filter and ordering behave; the
control API sends a campaign and adds activity."""

from __future__ import annotations

import http.client
from collections.abc import Callable
from typing import Any

import pytest
import requests

from cmtoolkit.emulator import Emulator


class Api:
    def __init__(self, emu: Emulator) -> None:
        self.emu = emu
        self.s = requests.Session()
        self.s.auth = (emu.api_key, "x")

    def get(self, path: str, **params: Any) -> Any:
        r = self.s.get(self.emu.base_url + path, params=params)
        assert r.status_code == 200, r.text
        return r.json()

    def campaigns(self) -> list[dict[str, Any]]:
        return self.get(f"/clients/{self.emu.client_id}/campaigns.json")["Results"]

    def all_events(self, campaign_id: str, kind: str, **params: Any) -> list[dict[str, Any]]:
        out: list[dict[str, Any]] = []
        page = 1
        while True:
            body = self.get(f"/campaigns/{campaign_id}/{kind}.json", page=page, **params)
            out += body["Results"]
            if page >= body["NumberOfPages"]:
                return out
            page += 1

    def newsletter(self) -> list[str]:
        """Ids of the campaigns sent to the first list (which holds everybody), newest first."""
        lid = self.emu.list_ids[0]
        mine = {c.campaign_id for c in self.emu.account.clients[0].campaigns if c.list_id == lid}
        return [c["CampaignID"] for c in self.campaigns() if c["CampaignID"] in mine]

    def control(self, endpoint: str, **body: Any) -> Any:
        r = requests.post(f"{self.emu.origin}/_emulator/{endpoint}", json=body)
        assert r.status_code == 200, r.text
        return r.json()


@pytest.fixture
def api(emulator_factory: Callable[..., Emulator]) -> Api:
    return Api(emulator_factory(seed_size=1500, seed=3))


def test_the_official_wrapper_reads_campaigns_opens_and_clicks(
    api: Api, monkeypatch: pytest.MonkeyPatch
) -> None:
    createsend = pytest.importorskip("createsend")
    from createsend import createsend as base

    # The wrapper speaks HTTPS to its base_uri; the emulator is plain HTTP on loopback.
    monkeypatch.setattr(base.CreateSend, "base_uri", api.emu.base_url)
    monkeypatch.setattr(base, "VerifiedHTTPSConnection", http.client.HTTPConnection)
    auth = {"api_key": api.emu.api_key}
    listed = createsend.Client(auth, api.emu.client_id).campaigns()
    assert listed.TotalNumberOfRecords == 20
    assert [c.CampaignID for c in listed.Results] == [c["CampaignID"] for c in api.campaigns()]
    newest = listed.Results[0]
    assert newest.SentDate == "2025-06-24 09:00:00"
    campaign = createsend.Campaign(auth, newest.CampaignID)
    summary = campaign.summary()
    opens = campaign.opens(date="2010-01-01 00:00")
    clicks = campaign.clicks(date="2010-01-01 00:00")
    assert opens.TotalNumberOfRecords == summary.TotalOpened > 0
    assert clicks.TotalNumberOfRecords == summary.Clicks > 0
    assert len({o.EmailAddress for o in opens.Results}) == summary.UniqueOpened
    assert {c.EmailAddress for c in clicks.Results} <= {o.EmailAddress for o in opens.Results}
    assert all(o.Date >= newest.SentDate for o in opens.Results)


def test_engagement_is_realistic(api: Api) -> None:
    newsletter = api.newsletter()[:6]
    openers: dict[str, int] = {}
    recipients = 0
    for c in newsletter:
        s = api.get(f"/campaigns/{c}/summary.json")
        recipients = max(recipients, s["Recipients"])
        assert 0.05 < s["UniqueOpened"] / s["Recipients"] < 0.35
        assert s["TotalOpened"] > s["UniqueOpened"]  # some open more than once
        opened = {o["EmailAddress"] for o in api.all_events(c, "opens")}
        clicked = {o["EmailAddress"] for o in api.all_events(c, "clicks")}
        assert clicked and clicked <= opened  # clicks are a subset of opens
        for e in opened:
            openers[e] = openers.get(e, 0) + 1
    assert len(openers) < 0.6 * recipients  # most people never open
    assert sum(n >= 5 for n in openers.values()) > 10  # a few open (nearly) every time


def test_unsubscribes_and_hard_bounces_agree_with_subscriber_states(api: Api) -> None:
    subs = {
        (lst.list_id, e.lower()): (lst.states[row], lst.dates[row])
        for lst in api.emu.account.clients[0].lists
        for row, e in enumerate(lst.emails)
    }
    seen = {"unsubscribes": 0, "bounces": 0}
    for c in api.campaigns():
        for kind, state in (("unsubscribes", 2), ("bounces", 3)):
            for ev in api.all_events(c["CampaignID"], kind):
                if kind == "bounces" and ev["BounceType"] == "Soft":
                    continue
                seen[kind] += 1
                got_state, date = subs[(ev["ListID"], ev["EmailAddress"].lower())]
                assert got_state == state
                assert ev["Date"] == _ts(date)
    assert seen["unsubscribes"] > 0 and seen["bounces"] > 0


def test_paging_date_filter_and_order(api: Api) -> None:
    cid = api.campaigns()[2]["CampaignID"]
    everything = api.all_events(cid, "opens", pagesize=1000)
    paged = api.all_events(cid, "opens", pagesize=10)
    assert paged == everything and len(everything) > 20
    dates = [e["Date"] for e in everything]
    assert dates == sorted(dates)
    cut = dates[len(dates) // 2]
    later = api.all_events(cid, "opens", date=cut)
    assert later == [e for e in everything if e["Date"] >= cut]
    desc = api.all_events(cid, "opens", orderdirection="desc")
    assert [e["Date"] for e in desc] == sorted(dates, reverse=True)
    by_email = api.all_events(cid, "opens", orderfield="email")
    assert [e["EmailAddress"] for e in by_email] == sorted(
        (e["EmailAddress"] for e in everything), key=str.lower
    )
    bad = api.s.get(f"{api.emu.base_url}/campaigns/{cid}/opens.json", params={"orderfield": "x"})
    assert bad.status_code == 400 and bad.json()["Code"] == 802
    missing = api.s.get(f"{api.emu.base_url}/campaigns/{'0' * 32}/opens.json")
    assert missing.status_code == 400 and missing.json()["Code"] == 301


def test_activity_is_deterministic(emulator_factory: Callable[..., Emulator]) -> None:
    a, b = (Api(emulator_factory(seed_size=300, seed=9)) for _ in range(2))
    cid = a.campaigns()[0]["CampaignID"]
    assert a.all_events(cid, "clicks") == b.all_events(cid, "clicks")
    c = Api(emulator_factory(seed_size=300, seed=10))
    assert c.campaigns()[0]["CampaignID"] != cid


def test_history_lists_a_subscribers_campaign_actions(api: Api) -> None:
    lid = api.emu.list_ids[0]
    cid = api.newsletter()[0]
    clicked = api.all_events(cid, "clicks")[0]
    history = api.get(f"/subscribers/{lid}/history.json", email=clicked["EmailAddress"])
    entry = next(h for h in history if h["ID"] == cid)
    events = {a["Event"] for a in entry["Actions"]}
    assert {"Open", "Click"} <= events
    assert clicked["URL"] in {a["Detail"] for a in entry["Actions"]}
    assert [a["Date"] for a in entry["Actions"]] == sorted(
        (a["Date"] for a in entry["Actions"]), reverse=True
    )


def test_control_sends_a_campaign_and_adds_activity(api: Api) -> None:
    sent = api.control("campaigns", name="Spring flash sale", hours=48, tags=["spring"])
    assert sent["Unsubscribed"] > 0 and sent["Bounced"] > 0
    listed = api.campaigns()
    assert listed[0]["CampaignID"] == sent["CampaignID"] and listed[0]["Tags"] == ["spring"]
    cid = sent["CampaignID"]
    opens = api.all_events(cid, "opens")
    assert opens and all(sent["SentDate"] <= o["Date"] for o in opens)
    lst = api.emu.account.clients[0].lists[0]
    for ev in api.all_events(cid, "unsubscribes"):
        assert lst.states[lst.row_of(ev["EmailAddress"])] == 2
    state = api.get(f"/lists/{lst.list_id}/unsubscribed.json", date=sent["SentDate"])
    assert state["TotalNumberOfRecords"] == sent["Unsubscribed"]
    # Later activity: a wave of re-opens dated after the send's window, seen on a re-read.
    api.emu.advance(3600)
    wave = api.control("activity", campaign_id=cid)
    later = api.all_events(cid, "opens", date=wave["From"])
    assert later and len(api.all_events(cid, "opens")) > len(opens)
    bad = requests.post(f"{api.emu.origin}/_emulator/activity", json={"campaign_id": "nope"})
    assert bad.status_code == 400 and "nope" in bad.json()["error"]


def test_campaigns_survive_a_saved_state(
    emulator_factory: Callable[..., Emulator], tmp_path: Any
) -> None:
    state = str(tmp_path / "state.json")
    first = Api(emulator_factory(seed_size=200, seed=4, state_file=state))
    first.control("campaigns", name="Kept")
    first.emu.save()
    again = Api(emulator_factory(state_file=state))
    assert [c["Name"] for c in again.campaigns()] == [c["Name"] for c in first.campaigns()]
    cid = first.campaigns()[0]["CampaignID"]
    assert again.all_events(cid, "opens") == first.all_events(cid, "opens")


def _ts(seconds: int) -> str:
    import time

    return time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(seconds))
