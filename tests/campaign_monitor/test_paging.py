"""Transparent paging over the five subscriber states and the suppression list, as records,
pages and polars frames."""

from __future__ import annotations

import json
from datetime import date, datetime
from urllib.parse import parse_qsl, urlsplit

import polars as pl
import pytest
from responses import matchers

from cmtoolkit.campaign_monitor import FRAME_SCHEMA, SUBSCRIBER_STATES

BASE = "https://api.createsend.com/api/v3.3"
LIST = "a58ee1d3039b8bec838e6d1482a8a965"
CLIENT = "4a397ccaaa55eb4e6aa1221e1e2d7122"

STATE_FIXTURES = {
    "Active": "active_subscribers_with_tracking_preference.json",
    "Unconfirmed": "unconfirmed_subscribers.json",
    "Unsubscribed": "unsubscribed_subscribers.json",
    "Bounced": "bounced_subscribers.json",
    "Deleted": "deleted_subscribers.json",
}


def envelope(results: list[dict], page: int, pages: int, total: int, size: int = 10) -> str:
    return json.dumps(
        {
            "Results": results,
            "ResultsOrderedBy": "email",
            "OrderDirection": "asc",
            "PageNumber": page,
            "PageSize": size,
            "RecordsOnThisPage": len(results),
            "TotalNumberOfRecords": total,
            "NumberOfPages": pages,
        }
    )


def person(i: int) -> dict:
    return {
        "EmailAddress": f"p{i:03d}@example.com",
        "Name": f"Person {i}",
        "Date": "2024-01-02 03:04:05",
        "ListJoinedDate": "2023-01-02 03:04:05",
        "State": "Active",
        "CustomFields": [{"Key": "interests", "Value": "a"}, {"Key": "interests", "Value": "b"}],
        "ReadsEmailWith": "Gmail",
        "ConsentToTrack": "Yes",
    }


def add_pages(rsps, total: int, size: int = 10) -> None:
    pages = -(-total // size)
    for page in range(1, pages + 1):
        results = [person(i) for i in range((page - 1) * size, min(page * size, total))]
        rsps.get(
            f"{BASE}/lists/{LIST}/active.json",
            body=envelope(results, page, pages, total, size),
            match=[matchers.query_param_matcher({"page": str(page)}, strict_match=False)],
        )


def test_exact_query_string_of_the_official_wrappers(rsps, cm, fx):
    rsps.get(f"{BASE}/lists/{LIST}/active.json", body=fx.text(STATE_FIXTURES["Active"]))
    list(cm.subscribers(LIST))
    assert rsps.calls[0].request.url == (
        f"{BASE}/lists/{LIST}/active.json?date=&page=1&pagesize=1000&orderfield=email"
        "&orderdirection=asc&includetrackingpreference=True"
    )


def test_options_go_into_the_query(rsps, cm, fx):
    rsps.get(f"{BASE}/lists/{LIST}/bounced.json", body=fx.text("bounced_subscribers.json"))
    list(
        cm.subscribers(
            LIST,
            "bounced",
            since=datetime(2024, 5, 6, 7, 8, 9),
            order_field="date",
            order_direction="desc",
            page_size=50,
            include_tracking_preference=False,
        )
    )
    query = dict(parse_qsl(urlsplit(rsps.calls[0].request.url).query, keep_blank_values=True))
    assert query == {
        "date": "2024-05-06 07:08:09",
        "page": "1",
        "pagesize": "50",
        "orderfield": "date",
        "orderdirection": "desc",
        "includetrackingpreference": "False",
    }
    list(cm.subscribers(LIST, "Bounced", since=date(2024, 5, 6)))
    assert "date=2024-05-06&" in rsps.calls[1].request.url


@pytest.mark.parametrize("state", SUBSCRIBER_STATES)
def test_each_state_endpoint_parses_its_fixture(rsps, cm, fx, state):
    name = STATE_FIXTURES[state]
    rsps.get(f"{BASE}/lists/{LIST}/{state.lower()}.json", body=fx.text(name))
    subs = list(cm.subscribers(LIST, state))
    wire = fx.json(name)["Results"]
    assert [s.email for s in subs] == [r["EmailAddress"] for r in wire]
    assert {s.state for s in subs} == {state}
    frames = list(cm.subscriber_frames(LIST, state))
    assert len(frames) == 1
    assert frames[0].schema == FRAME_SCHEMA
    assert frames[0]["email"].to_list() == [r["EmailAddress"] for r in wire]


def test_repeated_custom_field_keys_are_kept_in_order(rsps, cm, fx):
    rsps.get(f"{BASE}/lists/{LIST}/active.json", body=fx.text("active_subscribers.json"))
    first = next(cm.subscribers(LIST))
    assert first.custom_fields["multi select field"] == ("option one", "option two")
    assert first.custom_fields["age"] == ("24",)
    assert first.consent_to_track is None  # not requested in this fixture
    assert first.date == datetime(2010, 10, 25, 10, 28)
    assert first.list_joined_date == datetime(2010, 10, 24, 10, 28)


def test_paging_across_several_pages_is_lazy(rsps, cm):
    add_pages(rsps, total=25)
    pages = cm.subscriber_pages(LIST, page_size=10)
    first = next(pages)
    assert len(rsps.calls) == 1  # nothing fetched ahead
    assert (first.number, first.page_count, first.total, len(first.records)) == (1, 3, 25, 10)
    rest = list(pages)
    assert [p.number for p in rest] == [2, 3]
    assert [len(p.records) for p in rest] == [10, 5]
    assert len(rsps.calls) == 3
    # Page 1 first (it gives the count), then the rest, concurrently (in any order).
    asked = [dict(parse_qsl(urlsplit(c.request.url).query))["page"] for c in rsps.calls]
    assert asked[0] == "1" and sorted(asked) == ["1", "2", "3"]


def test_records_stream_across_pages(rsps, cm):
    add_pages(rsps, total=25)
    emails = [s.email for s in cm.subscribers(LIST, page_size=10)]
    assert emails == [f"p{i:03d}@example.com" for i in range(25)]


def test_frames_one_per_page_with_the_documented_columns(rsps, cm):
    add_pages(rsps, total=25)
    frames = list(cm.subscriber_frames(LIST, page_size=10))
    assert [f.height for f in frames] == [10, 10, 5]
    frame = frames[0]
    assert frame.schema == FRAME_SCHEMA
    assert frame.columns == [
        "email",
        "name",
        "date",
        "list_joined_date",
        "state",
        "consent_to_track",
        "mobile_number",
        "reads_email_with",
        "custom_fields",
    ]
    row = frame.row(0, named=True)
    assert row["date"] == datetime(2024, 1, 2, 3, 4, 5)
    assert row["list_joined_date"] == datetime(2023, 1, 2, 3, 4, 5)
    assert row["mobile_number"] is None
    assert row["custom_fields"] == [
        {"key": "interests", "value": "a"},
        {"key": "interests", "value": "b"},
    ]


def test_frame_nulls_absent_fields_and_keeps_fixture_values(rsps, cm, fx):
    body = fx.json("segment_subscribers.json")  # items have no ReadsEmailWith
    rsps.get(f"{BASE}/lists/{LIST}/active.json", json=body)
    frame = next(cm.subscriber_frames(LIST))
    assert frame["reads_email_with"].null_count() == frame.height
    rsps.get(f"{BASE}/lists/{LIST}/unsubscribed.json", body=fx.text("active_subscribers.json"))
    frame = next(cm.subscriber_frames(LIST, "Unsubscribed"))
    assert frame["custom_fields"][0].to_list()[1:3] == [
        {"key": "multi select field", "value": "option one"},
        {"key": "multi select field", "value": "option two"},
    ]
    assert frame["custom_fields"][3].to_list() == []
    assert frame["reads_email_with"].to_list()[2] == ""


def test_empty_list_yields_one_empty_page(rsps, cm):
    rsps.get(f"{BASE}/lists/{LIST}/active.json", body=envelope([], 1, 0, 0))
    assert list(cm.subscribers(LIST)) == []
    rsps.get(f"{BASE}/lists/{LIST}/active.json", body=envelope([], 1, 0, 0))
    frames = list(cm.subscriber_frames(LIST))
    assert len(frames) == 1 and frames[0].height == 0
    assert frames[0].schema == FRAME_SCHEMA


def test_frame_falls_back_when_values_have_odd_types(rsps, cm):
    record = person(1) | {"CustomFields": [{"Key": "age", "Value": 24}]}
    rsps.get(f"{BASE}/lists/{LIST}/active.json", body=envelope([record], 1, 1, 1))
    frame = next(cm.subscriber_frames(LIST))
    assert frame["custom_fields"][0].to_list() == [{"key": "age", "value": "24"}]
    assert isinstance(frame, pl.DataFrame)


def test_suppression_list_pages(rsps, cm, fx):
    page1 = fx.json("suppressionlist.json") | {"NumberOfPages": 2, "TotalNumberOfRecords": 6}
    page2 = {
        "Results": [page1["Results"][0] | {"EmailAddress": "last@example.com"}],
        "PageNumber": 2,
        "NumberOfPages": 2,
        "TotalNumberOfRecords": 6,
    }
    url = f"{BASE}/clients/{CLIENT}/suppressionlist.json"
    rsps.get(
        url, json=page1, match=[matchers.query_param_matcher({"page": "1"}, strict_match=False)]
    )
    rsps.get(
        url, json=page2, match=[matchers.query_param_matcher({"page": "2"}, strict_match=False)]
    )
    entries = list(cm.suppression_list(CLIENT))
    assert len(entries) == 6
    assert entries[0].reason == "Unsubscribed" and entries[0].state == "Suppressed"
    assert entries[0].date == datetime(2010, 10, 26, 10, 55, 31)
    assert entries[-1].email == "last@example.com"
    assert rsps.calls[0].request.url == (
        f"{url}?page=1&pagesize=1000&orderfield=email&orderdirection=asc"
    )


@pytest.mark.parametrize(
    "kwargs",
    [{"order_field": "Email"}, {"order_direction": "up"}, {"page_size": 5}, {"page_size": 1001}],
)
def test_invalid_paging_options_are_refused_before_any_request(rsps, cm, kwargs):
    with pytest.raises(ValueError):
        list(cm.subscribers(LIST, **kwargs))
    assert len(rsps.calls) == 0


def test_unknown_state_is_refused(cm):
    with pytest.raises(ValueError, match="state must be one of"):
        list(cm.subscribers(LIST, "Suppressed"))
