"""Sent campaigns and their activity (opens, clicks, bounces, unsubscribes), generated lazily.

A campaign stores only its settings; its events are a pure function of (seed, campaign, list
row) and the list's columns, computed with numpy when a request needs them and kept by
:class:`ActivityCache`. A million recipients × fifty campaigns is therefore tens
of millions of *possible* events and a few million actual ones, and none of them is a Python
object until a page of them is rendered.

The engagement model: each subscriber has a fixed propensity (about 55 % never open, 30 % open
now and then, 12 % often, 3 % nearly always); openers open one to a few times, early after the
send; about 30 % of openers click (1-3 links), so clicks are a subset of opens; ~1 % of
recipients soft-bounce (and do not open). Hard bounces and unsubscribes **follow the subscriber
states**: a subscriber who is Bounced (Unsubscribed) on the list has a hard bounce (unsubscribe)
event, dated as their state change, in the last campaign sent to the list before it (within
:data:`ATTRIBUTION` seconds); nobody else has one. Recipients are the list members who had joined
by the send and were Active then (Unconfirmed never receive; a leaver received campaigns sent
before they left). A campaign "sent" through the control API changes the states of its own
unsubscribers and hard bounces, so both stay in agreement.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from cmtoolkit import people
from cmtoolkit.emulator.mailing_list import MailingList
from cmtoolkit.emulator.subscriber import ACTIVE, BOUNCED, UNCONFIRMED, UNSUBSCRIBED

KINDS = ("opens", "clicks", "bounces", "unsubscribes")
ATTRIBUTION = 14 * 86400  # a state change this long after a send is blamed on it
SEEDED_WINDOW = 5 * 86400  # seeded campaigns' opens and clicks fall within five days
LINKS = (
    "https://example.com/spring-sale",
    "https://example.com/new-arrivals",
    "https://example.com/blog/latest",
    "https://example.com/account",
    "https://example.org/events",
)
LOCATIONS = (  # city, region, country code, country, latitude, longitude
    ("Sydney", "New South Wales", "AU", "Australia", -33.8683, 151.2086),
    ("Melbourne", "Victoria", "AU", "Australia", -37.8136, 144.9631),
    ("Berlin", "Berlin", "DE", "Germany", 52.52, 13.405),
    ("Paris", "Ile-de-France", "FR", "France", 48.8566, 2.3522),
    ("Tokyo", "Tokyo", "JP", "Japan", 35.6762, 139.6503),
    ("London", "England", "GB", "United Kingdom", 51.5072, -0.1276),
)
SOFT_REASON = "Soft Bounce - Mailbox Full"
HARD_REASON = "Hard Bounce - Address does not exist"


@dataclass
class Campaign:
    """A sent campaign: settings only (its events are generated)."""

    campaign_id: str
    name: str
    list_id: str
    sent_at: int
    number: int  # the generation stream: unique per client
    window: int = SEEDED_WINDOW  # opens and clicks of the send fall within [sent_at, +window]
    tags: list[str] = field(default_factory=list)
    waves: list[tuple[int, int]] = field(default_factory=list)  # later activity (start, end)

    @property
    def subject(self) -> str:
        return self.name

    def record(self, recipients: int) -> dict[str, object]:
        """The campaign as ``GET /clients/{id}/campaigns.json`` lists it."""
        web = f"https://example.createsend.com/t/r-{self.campaign_id[:16].upper()}"
        return {
            "WebVersionURL": web,
            "WebVersionTextURL": web + "/t",
            "CampaignID": self.campaign_id,
            "Subject": self.subject,
            "Name": self.name,
            "FromName": "Client One",
            "FromEmail": "news@example.com",
            "ReplyTo": "news@example.com",
            "SentDate": _ts(self.sent_at),
            "TotalRecipients": recipients,
            "Tags": list(self.tags),
        }

    def to_json(self) -> dict[str, object]:
        return {**self.__dict__, "waves": [list(w) for w in self.waves]}

    @classmethod
    def from_json(cls, d: dict[str, object]) -> Campaign:
        waves = d.get("waves") or []
        assert isinstance(waves, list)
        return cls(**{**d, "waves": [(int(a), int(b)) for a, b in waves]})  # type: ignore[arg-type]


@dataclass
class Events:
    """One campaign's events of one kind as columns, in date order (then row, then detail)."""

    rows: np.ndarray  # list row of the subscriber
    at: np.ndarray  # seconds, whole minutes
    detail: np.ndarray  # click: link index; bounce: 1 hard, 0 soft; else 0

    def __len__(self) -> int:
        return len(self.rows)


@dataclass
class Activity:
    """A campaign's recipients and events."""

    recipients: np.ndarray
    kinds: dict[str, Events]


class ActivityCache:
    """Generated activity per campaign, kept up to ``budget`` bytes (oldest used dropped first).

    A campaign's activity is history: it is computed once per list size (rows appended since
    can be recipients of campaigns sent later only) and its waves, not again after every state
    change, as a real server's reports do not change when a subscriber leaves later.
    """

    def __init__(self, budget: int = 512 * 2**20) -> None:
        self.budget = budget
        self._bytes = 0
        self._hits: OrderedDict[tuple[object, ...], tuple[Activity, int]] = OrderedDict()

    def activity(
        self, seed: int, campaign: Campaign, lst: MailingList, sends: Sequence[int]
    ) -> Activity:
        key = (seed, campaign.campaign_id, len(lst), tuple(campaign.waves))
        hit = self._hits.get(key)
        if hit is not None:
            self._hits.move_to_end(key)
            return hit[0]
        act = generate(seed, campaign, lst, sends)
        size = act.recipients.nbytes + sum(
            e.rows.nbytes + e.at.nbytes + e.detail.nbytes for e in act.kinds.values()
        )
        self._hits[key] = (act, size)
        self._bytes += size
        while self._bytes > self.budget and len(self._hits) > 1:
            _, (_, dropped) = self._hits.popitem(last=False)
            self._bytes -= dropped
        return act


def list_sends(campaigns: Sequence[Campaign], list_id: str) -> list[int]:
    """The send times of a list's campaigns, ascending (for blaming state changes)."""
    return sorted(c.sent_at for c in campaigns if c.list_id == list_id)


def recipients(campaign: Campaign, lst: MailingList) -> np.ndarray:
    """Rows that received the campaign: joined by the send, Active then."""
    n = len(lst)
    states = np.frombuffer(lst.states, dtype=np.int8)[:n]
    dates = np.frombuffer(lst.dates, dtype=np.int64)[:n]
    joined = np.frombuffer(lst.joined, dtype=np.int64)[:n]
    ok = (joined <= campaign.sent_at) & (states != UNCONFIRMED)
    ok &= (states == ACTIVE) | (dates >= campaign.sent_at)
    return np.nonzero(ok)[0].astype(np.int64)


def generate(seed: int, campaign: Campaign, lst: MailingList, sends: Sequence[int]) -> Activity:
    """Every event of ``campaign`` (see the module docstring for the model)."""
    rec = recipients(campaign, lst)
    base = _list_stream(lst.list_id) * 7919 + campaign.number * 97

    def u(rows: np.ndarray, stream: int) -> np.ndarray:
        return people.uniform(seed, rows, base + stream)

    states = np.frombuffer(lst.states, dtype=np.int8)[: len(lst)]
    dates = np.frombuffer(lst.dates, dtype=np.int64)[: len(lst)]
    leaving = blamed(campaign, rec, states[rec], dates[rec], sends)
    hard = leaving & (states[rec] == BOUNCED)
    unsub = leaving & (states[rec] == UNSUBSCRIBED)
    soft = (u(rec, 1) < 0.01) & ~hard
    propensity = propensities(seed, lst.list_id, rec)
    opened = (u(rec, 2) < propensity) & ~hard & ~soft
    openers = rec[opened]
    t0 = campaign.sent_at
    span = campaign.window
    # First open early (squared uniform), later ones spread over the rest of the window.
    first = t0 + (span * 0.5 * u(openers, 3) ** 2).astype(np.int64)
    extra = (u(openers, 4) * (1 + 4 * propensity[opened])).astype(np.int64)
    more_rows = np.repeat(openers, extra)
    more_first = np.repeat(first, extra)
    seq = _sequence(extra)
    more_at = more_first + ((t0 + span - more_first) * u(more_rows * 8 + seq, 5)).astype(np.int64)
    open_rows = [openers, more_rows]
    open_at = [first, more_at]
    clickers = u(openers, 6) < 0.3
    n_clicks = 1 + (u(openers, 7) * 2.99).astype(np.int64)
    n_clicks[~clickers] = 0
    click_rows = np.repeat(openers, n_clicks)
    cseq = _sequence(n_clicks)
    click_at = np.repeat(first, n_clicks) + (u(click_rows * 8 + cseq, 8) * 1800).astype(np.int64)
    click_at = np.minimum(click_at, t0 + span)
    link = (people.mix(seed, click_rows * 8 + cseq, base + 9) % np.uint64(len(LINKS))).astype(
        np.int64
    )
    click_rows_l, click_at_l, link_l = [click_rows], [click_at], [link]
    for w, (start, end) in enumerate(campaign.waves):
        again = openers[u(openers, 20 + w) < 0.3]
        at = start + (u(again, 40 + w) * (end - start)).astype(np.int64)
        open_rows.append(again)
        open_at.append(at)
        clicks = u(again, 60 + w) < 0.2
        click_rows_l.append(again[clicks])
        click_at_l.append(at[clicks])
        link_l.append((people.mix(seed, again[clicks], base + 80 + w) % np.uint64(5)).astype(int))
    bounce_rows = np.concatenate([rec[soft], rec[hard]])
    bounce_at = np.concatenate([t0 + (u(rec[soft], 10) * 3600).astype(np.int64), dates[rec[hard]]])
    bounce_kind = np.concatenate([np.zeros(soft.sum(), np.int64), np.ones(hard.sum(), np.int64)])
    kinds = {
        "opens": _events(np.concatenate(open_rows), np.concatenate(open_at), None),
        "clicks": _events(
            np.concatenate(click_rows_l), np.concatenate(click_at_l), np.concatenate(link_l)
        ),
        "bounces": _events(bounce_rows, bounce_at, bounce_kind),
        "unsubscribes": _events(rec[unsub], dates[rec[unsub]], None),
    }
    return Activity(rec, kinds)


def propensities(seed: int, list_id: str, rows: np.ndarray) -> np.ndarray:
    """Each subscriber's chance to open a campaign: most never do, a few nearly always."""
    r = people.uniform(seed, rows, _list_stream(list_id) * 31 + 7)
    return np.select([r < 0.55, r < 0.85, r < 0.97], [0.0, 0.25, 0.55], 0.9)


def blamed(
    campaign: Campaign,
    rows: np.ndarray,
    states: np.ndarray,
    dates: np.ndarray,
    sends: Sequence[int],
) -> np.ndarray:
    """Which recipients left (Bounced/Unsubscribed) because of this campaign: their state date is
    within :data:`ATTRIBUTION` of the send and no later send of the list came before it."""
    left = (states == BOUNCED) | (states == UNSUBSCRIBED)
    times = np.asarray(sends, dtype=np.int64)
    last = times[np.maximum(np.searchsorted(times, dates, side="right") - 1, 0)]
    return (
        left
        & (dates >= campaign.sent_at)
        & (dates - campaign.sent_at <= ATTRIBUTION)
        & (last == campaign.sent_at)
    )


def apply_send(seed: int, campaign: Campaign, lst: MailingList) -> tuple[int, int]:
    """A campaign sent now changes its own leavers' states (dated within its window), so that its
    unsubscribes and hard bounces follow the states; returns (unsubscribed, bounced)."""
    rec = recipients(campaign, lst)
    rec = rec[np.frombuffer(lst.states, dtype=np.int8)[rec] == ACTIVE]
    base = _list_stream(lst.list_id) * 7919 + campaign.number * 97
    r = people.uniform(seed, rec, base + 11)
    at = campaign.sent_at + (people.uniform(seed, rec, base + 12) * campaign.window) // 60 * 60
    leave_unsub = r < 0.003
    leave_hard = (r >= 0.003) & (r < 0.005)
    for rows, state in ((rec[leave_unsub], UNSUBSCRIBED), (rec[leave_hard], BOUNCED)):
        when = at[np.isin(rec, rows)].astype(np.int64)
        for row, t in zip(rows.tolist(), when.tolist(), strict=True):
            lst.states[row] = state
            lst.dates[row] = t
    lst.touch()
    return int(leave_unsub.sum()), int(leave_hard.sum())


def _events(rows: np.ndarray, at: np.ndarray, detail: np.ndarray | None) -> Events:
    rows = rows.astype(np.int64)
    at = (at.astype(np.int64) // 60) * 60
    det = np.zeros(len(rows), np.int64) if detail is None else detail.astype(np.int64)
    order = np.lexsort((det, rows, at))
    rows, at, det = rows[order], at[order], det[order]
    if len(rows):  # one event per (person, minute, detail): the API's minute resolution
        keep = np.ones(len(rows), dtype=bool)
        keep[1:] = (rows[1:] != rows[:-1]) | (at[1:] != at[:-1]) | (det[1:] != det[:-1])
        rows, at, det = rows[keep], at[keep], det[keep]
    return Events(rows, at, det)


def _sequence(counts: np.ndarray) -> np.ndarray:
    """0, 1, ..., n-1 for each count n, concatenated (a repeat's index within its group)."""
    total = int(counts.sum())
    if total == 0:
        return np.zeros(0, np.int64)
    starts = np.repeat(np.cumsum(counts) - counts, counts)
    return np.arange(total, dtype=np.int64) - starts


def _list_stream(list_id: str) -> int:
    return int(list_id[:8], 16) % 1_000_003 + 1


def _ts(seconds: int) -> str:
    return str(np.datetime64(int(seconds), "s")).replace("T", " ")


def send_campaign(
    seed: int,
    campaigns: list[Campaign],
    lst: MailingList,
    campaign_id: str,
    name: str,
    now: int,
    hours: float = 72.0,
    tags: Sequence[str] = (),
) -> dict[str, object]:
    """Record a campaign sent ``hours`` ago to ``lst`` whose activity runs up to ``now`` (the
    control API's "send"); its unsubscribes and hard bounces change the states at once."""
    if not 1 / 60 <= hours <= 24 * 365:
        raise ValueError("hours must be between 1/60 and 8760")
    window = int(hours * 3600) // 60 * 60
    number = max((c.number for c in campaigns), default=-1) + 1
    campaign = Campaign(
        campaign_id, name, lst.list_id, now // 60 * 60 - window, number, window, list(tags)
    )
    unsubscribed, bounced = apply_send(seed, campaign, lst)
    campaigns.append(campaign)
    return {
        "CampaignID": campaign_id,
        "Name": name,
        "ListID": lst.list_id,
        "SentDate": _ts(campaign.sent_at),
        "Unsubscribed": unsubscribed,
        "Bounced": bounced,
    }


def add_activity(campaign: Campaign, now: int, hours: float | None = None) -> dict[str, object]:
    """A wave of later opens and clicks of earlier openers, from the end of the campaign's last
    activity (or ``hours`` before ``now``, when later) up to ``now``."""
    last = max([campaign.sent_at + campaign.window, *(end for _, end in campaign.waves)])
    start = last if hours is None else max(last, now - int(hours * 3600))
    if now - start < 60:
        raise ValueError("no time has passed since the campaign's last activity")
    campaign.waves.append((start, now))
    return {"CampaignID": campaign.campaign_id, "From": _ts(start), "To": _ts(now)}
