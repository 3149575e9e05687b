"""Subscriber writes, bulk import (chunking, partial failure) and list/field management."""

from __future__ import annotations

import json

import pytest
from responses import matchers

from cmtoolkit.campaign_monitor import ImportResult
from cmtoolkit.errors import BadRequest

BASE = "https://api.createsend.com/api/v3.3"
LIST = "a58ee1d3039b8bec838e6d1482a8a965"
CLIENT = "4a397ccaaa55eb4e6aa1221e1e2d7122"


def body_of(call) -> dict:
    return json.loads(call.request.body)


def test_add_subscriber_body_and_result(rsps, cm, fx):
    rsps.post(f"{BASE}/subscribers/{LIST}.json", body=fx.text("add_subscriber.json"), status=201)
    result = cm.add_subscriber(
        LIST,
        "subscriber@example.com",
        name="Subscriber",
        custom_fields={"website": "https://example.com", "interests": ["magic", "walks"]},
        consent_to_track="yes",
        resubscribe=True,
        mobile_number="+61491570006",
    )
    assert result == "subscriber@example.com"
    call = rsps.calls[0]
    assert call.request.headers["Content-Type"] == "application/json; charset=utf-8"
    assert body_of(call) == {
        "EmailAddress": "subscriber@example.com",
        "Name": "Subscriber",
        "MobileNumber": "+61491570006",
        "CustomFields": [
            {"Key": "website", "Value": "https://example.com"},
            {"Key": "interests", "Value": "magic"},
            {"Key": "interests", "Value": "walks"},
        ],
        "Resubscribe": True,
        "RestartSubscriptionBasedAutoresponders": False,
        "ConsentToTrack": "Yes",
    }


def test_add_subscriber_accepts_pairs_and_clear_items(rsps, cm, fx):
    rsps.post(f"{BASE}/subscribers/{LIST}.json", body=fx.text("add_subscriber.json"))
    cm.add_subscriber(
        LIST,
        "subscriber@example.com",
        custom_fields=[("age", "24"), {"Key": "website", "Value": "", "Clear": True}],
    )
    sent = body_of(rsps.calls[0])
    assert sent["CustomFields"] == [
        {"Key": "age", "Value": "24"},
        {"Key": "website", "Value": "", "Clear": True},
    ]
    assert sent["ConsentToTrack"] == "Unchanged"
    assert "MobileNumber" not in sent


def test_consent_value_is_checked_before_sending(rsps, cm):
    with pytest.raises(ValueError, match="consent_to_track"):
        cm.add_subscriber(LIST, "a@example.com", consent_to_track="maybe")
    assert len(rsps.calls) == 0


def test_update_subscriber_puts_with_email_query(rsps, cm):
    rsps.put(f"{BASE}/subscribers/{LIST}.json", body="")
    assert (
        cm.update_subscriber(
            LIST, "old@example.com", new_email="new@example.com", name="New", consent_to_track="No"
        )
        is None
    )
    call = rsps.calls[0]
    assert call.request.url == f"{BASE}/subscribers/{LIST}.json?email=old%40example.com"
    assert body_of(call) == {
        "EmailAddress": "new@example.com",
        "Name": "New",
        "CustomFields": [],
        "Resubscribe": False,
        "RestartSubscriptionBasedAutoresponders": False,
        "ConsentToTrack": "No",
    }


def test_unsubscribe_and_delete(rsps, cm):
    rsps.post(
        f"{BASE}/subscribers/{LIST}/unsubscribe.json",
        body="",
        match=[matchers.json_params_matcher({"EmailAddress": "a@example.com"})],
    )
    rsps.delete(f"{BASE}/subscribers/{LIST}.json", body="")
    cm.unsubscribe(LIST, "a@example.com")
    cm.delete_subscriber(LIST, "a@example.com")
    assert rsps.calls[1].request.method == "DELETE"
    assert rsps.calls[1].request.url == f"{BASE}/subscribers/{LIST}.json?email=a%40example.com"


def rows(n: int, start: int = 0) -> list[dict]:
    return [
        {
            "EmailAddress": f"p{i}@example.com",
            "Name": f"P {i}",
            "CustomFields": [{"Key": "segments", "Value": "vip"}],
            "ConsentToTrack": "Unchanged",
        }
        for i in range(start, start + n)
    ]


def test_import_batch_body_and_success_result(rsps, cm, fx):
    rsps.post(f"{BASE}/subscribers/{LIST}/import.json", body=fx.text("import_subscribers.json"))
    result = cm.import_batch(LIST, rows(3), resubscribe=True)
    assert result == ImportResult(3, 0, 3, (), (), batches=1)
    assert body_of(rsps.calls[0]) == {
        "Subscribers": rows(3),
        "Resubscribe": True,
        "QueueSubscriptionBasedAutoResponders": False,
        "RestartSubscriptionBasedAutoresponders": False,
    }


def test_partial_import_failure_is_a_result(rsps, cm, fx):
    rsps.post(
        f"{BASE}/subscribers/{LIST}/import.json",
        body=fx.text("import_subscribers_partial_success.json"),
        status=400,
    )
    result = cm.import_batch(LIST, rows(3))
    assert result.partial
    assert result.total_existing_subscribers == 2
    assert result.total_unique_emails_submitted == 3
    failure = result.failed_emails["example+1@example"]
    assert (failure.code, failure.message) == (1, "Invalid Email Address")
    assert len(rsps.calls) == 1  # a 400 is never retried


def test_whole_batch_400_raises_bad_request(rsps, cm, fx):
    rsps.post(
        f"{BASE}/subscribers/{LIST}/import.json", body=fx.text("custom_api_error.json"), status=400
    )
    with pytest.raises(BadRequest) as info:
        cm.import_batch(LIST, rows(3))
    assert info.value.code == 98798
    assert "A crazy API error" in str(info.value)


def test_import_batch_refuses_more_than_1000_rows(rsps, cm):
    with pytest.raises(ValueError, match="at most 1000"):
        cm.import_batch(LIST, rows(1001))
    assert cm.import_batch(LIST, []) == ImportResult()
    assert len(rsps.calls) == 0


def test_2500_rows_go_out_as_1000_1000_500_with_one_aggregated_result(rsps, cm):
    answers = [
        {
            "FailureDetails": [],
            "TotalUniqueEmailsSubmitted": 1000,
            "TotalExistingSubscribers": 400,
            "TotalNewSubscribers": 600,
            "DuplicateEmailsInSubmission": ["p1@example.com"],
        },
        {
            "ResultData": {
                "FailureDetails": [
                    {"EmailAddress": "p1500@example.com", "Code": 1, "Message": "Invalid"}
                ],
                "TotalUniqueEmailsSubmitted": 1000,
                "TotalExistingSubscribers": 0,
                "TotalNewSubscribers": 999,
                "DuplicateEmailsInSubmission": [],
            },
            "Code": 210,
            "Message": "Subscriber Import had some failures",
        },
        {
            "FailureDetails": [],
            "TotalUniqueEmailsSubmitted": 500,
            "TotalExistingSubscribers": 0,
            "TotalNewSubscribers": 500,
            "DuplicateEmailsInSubmission": [],
        },
    ]
    for answer, status in zip(answers, (200, 400, 200), strict=True):
        rsps.post(f"{BASE}/subscribers/{LIST}/import.json", json=answer, status=status)
    seen: list[tuple[int, int]] = []

    def on_batch(batch, result):
        seen.append((len(batch), result.total_unique_emails_submitted))

    result = cm.import_subscribers(LIST, iter(rows(2500)), on_batch=on_batch)
    sizes = [len(body_of(c)["Subscribers"]) for c in rsps.calls]
    assert sizes == [1000, 1000, 500]
    assert body_of(rsps.calls[2])["Subscribers"][0]["EmailAddress"] == "p2000@example.com"
    assert seen == [(1000, 1000), (1000, 1000), (500, 500)]
    assert result.batches == 3
    assert result.total_unique_emails_submitted == 2500
    assert result.total_new_subscribers == 2099
    assert result.total_existing_subscribers == 400
    assert result.duplicate_emails == ("p1@example.com",)
    assert [f.email for f in result.failures] == ["p1500@example.com"]


def test_import_chunk_size_is_bounded(cm):
    with pytest.raises(ValueError):
        cm.import_subscribers(LIST, rows(2), chunk_size=1001)


def test_create_list(rsps, cm, fx):
    rsps.post(f"{BASE}/lists/{CLIENT}.json", body=fx.text("create_list.json"), status=201)
    assert cm.create_list(CLIENT, "Newsletter") == "e3c5f034d68744f7881fdccf13c2daee1234"
    assert body_of(rsps.calls[0]) == {
        "Title": "Newsletter",
        "UnsubscribePage": "",
        "ConfirmedOptIn": False,
        "ConfirmationSuccessPage": "",
        "UnsubscribeSetting": "AllClientLists",
    }


def test_create_custom_field_returns_the_key(rsps, cm, fx):
    rsps.post(f"{BASE}/lists/{LIST}/customfields.json", body=fx.text("create_custom_field.json"))
    assert cm.create_custom_field(LIST, "new date field", "Date") == "[newdatefield]"
    assert body_of(rsps.calls[0]) == {
        "FieldName": "new date field",
        "DataType": "Date",
        "Options": [],
        "VisibleInPreferenceCenter": True,
    }


def test_update_custom_field_options_quotes_the_bracketed_key(rsps, cm):
    rsps.put(f"{BASE}/lists/{LIST}/customfields/%5Bsegments%5D/options.json", body="")
    cm.update_custom_field_options(LIST, "[segments]", ["vip", "churn_risk"], keep_existing=False)
    cm.update_custom_field_options(LIST, "segments", ["vip"])
    assert rsps.calls[0].request.url.endswith("/customfields/%5Bsegments%5D/options.json")
    assert body_of(rsps.calls[0]) == {
        "Options": ["vip", "churn_risk"],
        "KeepExistingOptions": False,
    }
    assert body_of(rsps.calls[1]) == {"Options": ["vip"], "KeepExistingOptions": True}
