"""The campaign reads: records parsed from the real API's samples (``responses``), and paged
iterators and frames against the emulator over HTTP."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import Any

import polars as pl
import pytest
import responses

from cmtoolkit.campaign_monitor import CampaignMonitor
from cmtoolkit.campaign_monitor.campaigns import EVENT_FRAME_SCHEMA
from cmtoolkit.emulator import Emulator

BASE = "https://api.createsend.com/api/v3.3"
CAMPAIGN = "fc0ce7105baeaf97f47c99be31d02a91"


def test_records_parse_the_real_samples(
    cm_samples: Any, cm: CampaignMonitor, rsps: responses.RequestsMock
) -> None:
    rsps.get(f"{BASE}/clients/c1/campaigns.json", json=_one_page(cm_samples, "campaigns.json"))
    for name in ("opens", "clicks", "bounces", "unsubscribes"):
        rsps.get(
            f"{BASE}/campaigns/{CAMPAIGN}/{name}.json",
            body=cm_samples.text(f"campaign_{name}.json"),
        )
    rsps.get(
        f"{BASE}/campaigns/{CAMPAIGN}/summary.json", body=cm_samples.text("campaign_summary.json")
    )
    rsps.get(f"{BASE}/subscribers/l1/history.json", body=cm_samples.text("subscriber_history.json"))
    campaigns = list(cm.campaigns("c1"))
    assert [c.name for c in campaigns] == ["Campaign One", "Campaign Two"]
    assert campaigns[0].sent_at == datetime(2010, 10, 12, 12, 58)
    assert campaigns[0].tags == ("Tag1", "Tag2") and campaigns[1].tags == ()
    assert campaigns[1].total_recipients == 11222
    summary = cm.campaign_summary(CAMPAIGN)
    assert (summary.recipients, summary.total_opened, summary.unique_opened) == (5, 10, 5)
    clicks = list(cm.campaign_events(CAMPAIGN, "click"))
    assert clicks[0].detail == "https://video.google.com.au/?hl=en&tab=wv"
    assert clicks[0].at == datetime(2010, 10, 11, 8, 29)
    bounces = list(cm.campaign_events(CAMPAIGN, "bounce"))
    assert bounces[0].detail == "Soft: Bounce - But No Email Address Returned"
    [unsub] = cm.campaign_events(CAMPAIGN, "unsubscribe", since="2010-01-01")
    assert unsub.email == "subs+6576576576@example.com" and unsub.detail == ""
    assert "date=2010-01-01" in rsps.calls[-1].request.url
    frame = next(cm.campaign_event_frames(CAMPAIGN, "open"))
    assert frame.schema == pl.Schema(EVENT_FRAME_SCHEMA)
    assert frame.height == len(cm_samples.json("campaign_opens.json")["Results"])
    [entry] = cm.subscriber_history("l1", "a@example.com")
    assert entry.name == "Campaign One" and entry.actions[1].detail.startswith("https://")
    with pytest.raises(ValueError, match="event must be one of"):
        next(cm.campaign_events(CAMPAIGN, "forward"))


def test_paged_reads_against_the_emulator(
    emulator_factory: Callable[..., Emulator], cm_factory: Callable[..., Any]
) -> None:
    emu = emulator_factory(seed_size=800, seed=2)
    cm = cm_factory(emu)
    campaigns = list(cm.campaigns(emu.client_id, page_size=3))
    assert len(campaigns) == 20
    assert [c.sent_at for c in campaigns] == sorted((c.sent_at for c in campaigns), reverse=True)
    newest = campaigns[0]
    summary = cm.campaign_summary(newest.campaign_id)
    opens = list(cm.campaign_events(newest.campaign_id, "open", page_size=10))
    assert len(opens) == summary.total_opened > 10
    frames = list(cm.campaign_event_frames(newest.campaign_id, "open", page_size=10))
    assert len(frames) > 1
    both = pl.concat(frames)
    assert both.get_column("email").to_list() == [o.email for o in opens]
    assert both.get_column("at").to_list() == [o.at for o in opens]
    cut = opens[len(opens) // 2].at
    later = list(cm.campaign_events(newest.campaign_id, "open", since=cut))
    assert later == [o for o in opens if o.at is not None and o.at >= cut]
    history = cm.subscriber_history(emu.list_ids[1], opens[0].email)
    assert newest.campaign_id in {h.id for h in history}


def _one_page(cm_samples: Any, name: str) -> dict[str, Any]:
    """The campaigns sample claims 25 pages of 2; serve it as the only page."""
    body = cm_samples.json(name)
    return {**body, "NumberOfPages": 1, "TotalNumberOfRecords": len(body["Results"])}
