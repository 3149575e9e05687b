"""Reads against the official wrapper fixtures: parsing and the exact request shapes."""

from __future__ import annotations

import base64
from datetime import datetime

import pytest
import responses

from cmtoolkit.campaign_monitor import (
    ApiKeyAuth,
    CampaignMonitor,
    ClientSummary,
    CustomField,
    ListSummary,
    Segment,
)
from cmtoolkit.secret import Secret

BASE = "https://api.createsend.com/api/v3.3"
CLIENT = "4a397ccaaa55eb4e6aa1221e1e2d7122"
LIST = "a58ee1d3039b8bec838e6d1482a8a965"


def test_api_key_is_sent_as_basic_auth_with_x_password(rsps, cm, fx):
    rsps.get(f"{BASE}/clients.json", body=fx.text("clients.json"))
    assert cm.clients() == [
        ClientSummary("4a397ccaaa55eb4e6aa1221e1e2d7122", "Client One"),
        ClientSummary("a206def0582eec7dae47d937a4109cb2", "Client Two"),
    ]
    request = rsps.calls[0].request
    expected = base64.b64encode(f"{fx.api_key}:x".encode()).decode()
    assert request.headers["Authorization"] == f"Basic {expected}"
    assert request.method == "GET"


def test_client_details_holds_api_key_as_secret(rsps, cm, fx):
    rsps.get(f"{BASE}/clients/{CLIENT}.json", body=fx.text("client_details.json"))
    details = cm.client_details(CLIENT)
    assert isinstance(details.api_key, Secret)
    assert details.api_key.reveal() == "639d8cc27198202f5fe6037a8b17a29a59984b86d3289bc9"
    assert details.api_key.reveal() not in repr(details)
    assert details.client_id == CLIENT
    assert details.company_name == "Client One"
    assert details.timezone == "(GMT+10:00) Canberra, Melbourne, Sydney"


def test_lists_list_details_and_stats(rsps, cm, fx):
    rsps.get(f"{BASE}/clients/{CLIENT}/lists.json", body=fx.text("lists.json"))
    rsps.get(f"{BASE}/lists/{LIST}.json", body=fx.text("list_details.json"))
    rsps.get(f"{BASE}/lists/{LIST}/stats.json", body=fx.text("list_stats.json"))
    assert cm.lists(CLIENT)[0] == ListSummary(LIST, "List One")
    details = cm.list_details(LIST)
    assert details.title == "a non-basic list :)"
    assert details.confirmed_opt_in is False
    assert details.unsubscribe_setting == "AllClientLists"
    stats = cm.list_stats(LIST)
    assert (stats.total_active, stats.total_unsubscribes, stats.total_deleted) == (6, 2, 0)
    assert stats.counters["NewActiveSubscribersYesterday"] == 8


@pytest.mark.parametrize("name", ["custom_fields.json", "custom_fields_utf8.json"])
def test_custom_fields(rsps, cm, fx, name):
    rsps.get(f"{BASE}/lists/{LIST}/customfields.json", body=fx.text(name))
    fields = cm.custom_fields(LIST)
    assert [f.field_name for f in fields] == [d["FieldName"] for d in fx.json(name)]
    if name == "custom_fields.json":
        assert fields[2] == CustomField(
            "subscription date", "[subscriptiondate]", "Date", (), False
        )
    else:
        assert fields[0].data_type == "MultiSelectOne"
        assert fields[0].options == ("£0-20k", "£20-30k", "£30k+")


def test_client_and_list_segments(rsps, cm, fx):
    rsps.get(f"{BASE}/clients/{CLIENT}/segments.json", body=fx.text("segments.json"))
    rsps.get(f"{BASE}/lists/{LIST}/segments.json", body=fx.text("segments.json"))
    expected = Segment(LIST, "46aa5e01fd43381863d4e42cf277d3a9", "Segment One")
    assert cm.segments(CLIENT)[0] == expected
    assert cm.list_segments(LIST)[0] == expected
    assert len(cm.list_segments(LIST)) == 2


@pytest.mark.parametrize(
    "name",
    [
        "subscriber_details.json",
        "subscriber_details_with_tracking_preference.json",
        "from_createsend_ruby/subscriber_details_with_track_and_sms_pref.json",
    ],
)
def test_one_subscriber(rsps, cm, fx, name):
    rsps.get(f"{BASE}/subscribers/{LIST}.json", body=fx.text(name))
    sub = cm.subscriber(LIST, "subscriber@example.com")
    url = rsps.calls[0].request.url
    assert url == (
        f"{BASE}/subscribers/{LIST}.json?email=subscriber%40example.com"
        "&includetrackingpreference=True"
    )
    wire = fx.json(name)
    assert sub.email == wire["EmailAddress"]
    assert sub.date == datetime(2010, 10, 25, 10, 28)
    assert sub.custom_fields["subscription date"] == ("2010-03-09",)
    assert sub.consent_to_track == wire.get("ConsentToTrack")
    assert sub.mobile_number == wire.get("MobileNumber")
    assert sub.reads_email_with == "Gmail"


def test_lists_for_email(rsps, cm, fx):
    rsps.get(f"{BASE}/clients/{CLIENT}/listsforemail.json", body=fx.text("listsforemail.json"))
    memberships = cm.lists_for_email(CLIENT, "a+b@example.com")
    assert rsps.calls[0].request.url.endswith("listsforemail.json?email=a%2Bb%40example.com")
    assert [m.state for m in memberships] == ["Active", "Unsubscribed"]
    assert memberships[1].date_added == datetime(2012, 8, 21, 1, 35)
    assert memberships[0].list_name == "List Number One"


def test_base_url_from_environment(monkeypatch, fx):
    monkeypatch.setenv("CMTOOLKIT_API_URL", "http://127.0.0.1:8765/api/v3.3/")
    with responses.RequestsMock() as mock, CampaignMonitor(ApiKeyAuth(Secret("k"))) as cm:
        mock.get("http://127.0.0.1:8765/api/v3.3/clients.json", body=fx.text("clients.json"))
        assert len(cm.clients()) == 2
        assert cm.base_url == "http://127.0.0.1:8765/api/v3.3"


def test_default_base_url_is_the_real_api():
    with CampaignMonitor(ApiKeyAuth(Secret("k"))) as cm:
        assert cm.base_url == "https://api.createsend.com/api/v3.3"
