"""Campaign reads: a client's sent campaigns, a campaign's summary, its activity (opens, clicks,
bounces, unsubscribes) as typed records, pages or polars frames, and a subscriber's history.

A mixin of :class:`~cmtoolkit.campaign_monitor.CampaignMonitor` over ``self._transport``. The
activity endpoints are paged like the subscriber reads; ``since`` is the API's ``date`` filter
(events on or after it), which the email-activity import uses as its per-campaign cursor.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any, Literal

import polars as pl

from .paging import PageInfo, format_since, iterate_pages
from .records import parse_timestamp
from .transport import Params, Transport

__all__ = [
    "ACTIVITY_KINDS",
    "EVENT_FRAME_SCHEMA",
    "Campaign",
    "CampaignActivity",
    "CampaignSummary",
    "EmailEvent",
    "HistoryAction",
    "HistoryEntry",
]

EventKind = Literal["open", "click", "bounce", "unsubscribe"]
#: event name → the campaign endpoint that lists it
ACTIVITY_KINDS: dict[str, str] = {
    "open": "opens",
    "click": "clicks",
    "bounce": "bounces",
    "unsubscribe": "unsubscribes",
}
#: one row per event: who (email, list), when (``at``, naive UTC as the API sends it), what
#: (``detail``: the URL of a click, ``Hard: reason``/``Soft: reason`` of a bounce, else "")
EVENT_FRAME_SCHEMA: dict[str, pl.DataType] = {
    "email": pl.Utf8(),
    "list_id": pl.Utf8(),
    "at": pl.Datetime("us"),
    "detail": pl.Utf8(),
}
Wire = Mapping[str, object]


def _s(value: object) -> str:
    return "" if value is None else value if isinstance(value, str) else str(value)


def _n(value: object) -> int:
    return int(value) if isinstance(value, int | float | str) and value != "" else 0


@dataclass(frozen=True, slots=True)
class Campaign:
    """A sent campaign as ``GET /clients/{id}/campaigns.json`` lists it."""

    campaign_id: str
    name: str
    subject: str
    sent_at: datetime | None
    total_recipients: int
    tags: tuple[str, ...]
    web_version_url: str

    @classmethod
    def from_wire(cls, d: Wire) -> Campaign:
        tags = d.get("Tags") or ()
        return cls(
            campaign_id=_s(d["CampaignID"]),
            name=_s(d.get("Name")),
            subject=_s(d.get("Subject")),
            sent_at=parse_timestamp(d.get("SentDate")),
            total_recipients=_n(d.get("TotalRecipients")),
            tags=tuple(_s(t) for t in tags) if isinstance(tags, list) else (),
            web_version_url=_s(d.get("WebVersionURL")),
        )


@dataclass(frozen=True, slots=True)
class CampaignSummary:
    """A campaign's totals (``/campaigns/{id}/summary.json``)."""

    name: str
    recipients: int
    total_opened: int
    unique_opened: int
    clicks: int
    unsubscribed: int
    bounced: int

    @classmethod
    def from_wire(cls, d: Wire) -> CampaignSummary:
        return cls(
            name=_s(d.get("Name")),
            recipients=_n(d.get("Recipients")),
            total_opened=_n(d.get("TotalOpened")),
            unique_opened=_n(d.get("UniqueOpened")),
            clicks=_n(d.get("Clicks")),
            unsubscribed=_n(d.get("Unsubscribed")),
            bounced=_n(d.get("Bounced")),
        )


@dataclass(frozen=True, slots=True)
class EmailEvent:
    """One open, click, bounce or unsubscribe of a campaign."""

    event: str
    email: str
    list_id: str
    at: datetime | None
    detail: str
    ip_address: str

    @classmethod
    def from_wire(cls, event: str, d: Wire) -> EmailEvent:
        return cls(
            event=event,
            email=_s(d.get("EmailAddress")),
            list_id=_s(d.get("ListID")),
            at=parse_timestamp(d.get("Date")),
            detail=_detail(event, d),
            ip_address=_s(d.get("IPAddress")),
        )


@dataclass(frozen=True, slots=True)
class HistoryAction:
    event: str  # Open, Click, Bounce, Unsubscribe, ...
    at: datetime | None
    ip_address: str
    detail: str


@dataclass(frozen=True, slots=True)
class HistoryEntry:
    """One campaign (or other sender) in a subscriber's history, with their actions."""

    id: str
    type: str
    name: str
    actions: tuple[HistoryAction, ...]

    @classmethod
    def from_wire(cls, d: Wire) -> HistoryEntry:
        actions = d.get("Actions") or []
        return cls(
            id=_s(d.get("ID")),
            type=_s(d.get("Type")),
            name=_s(d.get("Name")),
            actions=tuple(
                HistoryAction(
                    _s(a.get("Event")),
                    parse_timestamp(a.get("Date")),
                    _s(a.get("IPAddress")),
                    _s(a.get("Detail")),
                )
                for a in (actions if isinstance(actions, list) else [])
                if isinstance(a, dict)
            ),
        )


def _detail(event: str, d: Wire) -> str:
    if event == "click":
        return _s(d.get("URL"))
    if event == "bounce":
        return f"{_s(d.get('BounceType'))}: {_s(d.get('Reason')).strip()}"
    return ""


def event_frame(event: str, results: Sequence[Wire]) -> pl.DataFrame:
    """A page's records as an :data:`EVENT_FRAME_SCHEMA` frame (column by column, no records)."""
    if not results:
        return pl.DataFrame(schema=EVENT_FRAME_SCHEMA)
    if event == "click":
        detail = [_s(d.get("URL")) for d in results]
    elif event == "bounce":
        detail = [_detail(event, d) for d in results]
    else:
        detail = [""] * len(results)
    return pl.DataFrame(
        {
            "email": [_s(d.get("EmailAddress")) for d in results],
            "list_id": [_s(d.get("ListID")) for d in results],
            "at": pl.Series([_s(d.get("Date")) for d in results]).str.to_datetime(
                "%Y-%m-%d %H:%M:%S", time_unit="us", strict=False
            ),
            "detail": detail,
        },
        schema=EVENT_FRAME_SCHEMA,
    )


class CampaignActivity:
    """The campaign reads over ``self._transport`` (mixed into CampaignMonitor)."""

    _transport: Transport

    def _campaign_get(self, path: str, params: Params = None) -> Any:  # decoded JSON
        return self._transport.request("GET", path, params=params)

    def campaigns(
        self,
        client_id: str,
        *,
        sent_from: date | None = None,
        sent_to: date | None = None,
        tags: Sequence[str] = (),
        page_size: int = 1000,
    ) -> Iterator[Campaign]:
        """The client's sent campaigns, newest first, every page."""
        if not 1 <= page_size <= 1000:
            raise ValueError(f"page_size must be between 1 and 1000, not {page_size}")
        path = f"/clients/{client_id}/campaigns.json"

        def fetch(page: int) -> tuple[PageInfo, list[Campaign]]:
            body = self._campaign_get(
                path,
                [
                    ("sentfromdate", format_since(sent_from)),
                    ("senttodate", format_since(sent_to)),
                    ("page", str(page)),
                    ("tags", ",".join(tags)),
                    ("pagesize", str(page_size)),
                    ("orderdirection", "desc"),
                ],
            )
            results = body.get("Results") or ()
            return PageInfo.from_envelope(body, page), [Campaign.from_wire(d) for d in results]

        for records in iterate_pages(fetch):
            yield from records

    def campaign_summary(self, campaign_id: str) -> CampaignSummary:
        return CampaignSummary.from_wire(
            self._campaign_get(f"/campaigns/{campaign_id}/summary.json")
        )

    def _event_pages(
        self,
        campaign_id: str,
        event: str,
        since: date | datetime | str | None,
        page_size: int,
        order_direction: str,
    ) -> Iterator[list[Wire]]:
        if event not in ACTIVITY_KINDS:
            raise ValueError(f"event must be one of {sorted(ACTIVITY_KINDS)}, not {event!r}")
        if not 10 <= page_size <= 1000:
            raise ValueError(f"page_size must be between 10 and 1000, not {page_size}")
        if order_direction not in ("asc", "desc"):
            raise ValueError(f"order_direction must be asc or desc, not {order_direction!r}")
        path = f"/campaigns/{campaign_id}/{ACTIVITY_KINDS[event]}.json"

        def fetch(page: int) -> tuple[PageInfo, list[Wire]]:
            body = self._campaign_get(
                path,
                [
                    ("date", format_since(since)),
                    ("page", str(page)),
                    ("pagesize", str(page_size)),
                    ("orderfield", "date"),
                    ("orderdirection", order_direction),
                ],
            )
            return PageInfo.from_envelope(body, page), list(body.get("Results") or ())

        return self._pages(fetch)

    def _pages(self, fetch: Callable[[int], tuple[PageInfo, list[Wire]]]) -> Iterator[list[Wire]]:
        """Pages in order, read ahead ``max_in_flight`` at a time when the client can."""
        paged = getattr(self, "_paged", None)
        return paged(fetch) if paged is not None else iterate_pages(fetch)

    def campaign_events(
        self,
        campaign_id: str,
        event: str,
        *,
        since: date | datetime | str | None = None,
        page_size: int = 1000,
        order_direction: str = "asc",
    ) -> Iterator[EmailEvent]:
        """A campaign's opens, clicks, bounces or unsubscribes (``event``), date order."""
        for page in self._event_pages(campaign_id, event, since, page_size, order_direction):
            for d in page:
                yield EmailEvent.from_wire(event, d)

    def campaign_event_frames(
        self,
        campaign_id: str,
        event: str,
        *,
        since: date | datetime | str | None = None,
        page_size: int = 1000,
    ) -> Iterator[pl.DataFrame]:
        """The same, one :data:`EVENT_FRAME_SCHEMA` frame per page (for bulk imports)."""
        for page in self._event_pages(campaign_id, event, since, page_size, "asc"):
            yield event_frame(event, page)

    def subscriber_history(self, list_id: str, email: str) -> list[HistoryEntry]:
        """The campaigns a subscriber received and what they did with each, newest first."""
        body = self._campaign_get(f"/subscribers/{list_id}/history.json", [("email", email)])
        return [HistoryEntry.from_wire(d) for d in body or () if isinstance(d, dict)]
