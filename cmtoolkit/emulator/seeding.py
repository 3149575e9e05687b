"""Seeding an emulated account from :func:`cmtoolkit.people.people`.

Person ``person_offset + i`` (``i < seed_size``) is the same person (name, email) that a profile
store generated with the same seed holds, so a store of persons ``[0, P)`` and an account seeded
from ``person_offset = P - k`` overlap by exactly ``k`` people.

The first list ("Newsletter") holds everybody; later lists hold a deterministic share (55 %, 30 %,
...). Per list every state occurs (about 86 % Active, 3 % Unconfirmed, 5 % Unsubscribed, 3 %
Bounced, 3 % Deleted); about 0.5 % of people are on the client's suppression list (as Unsubscribed
or Bounced on the lists). Every custom-field DataType is present, with multi-select values.
Everything is vectorised; a million subscribers take a few seconds.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence

import numpy as np

from cmtoolkit import people
from cmtoolkit.emulator.account import Account, Client
from cmtoolkit.emulator.activity import Campaign
from cmtoolkit.emulator.custom_field import CustomField
from cmtoolkit.emulator.mailing_list import MailingList
from cmtoolkit.emulator.segment import Segment
from cmtoolkit.emulator.subscriber import ACTIVE, BOUNCED, DELETED, UNCONFIRMED, UNSUBSCRIBED

DEFAULT_LISTS = ("Newsletter", "Customers", "Events")
LIST_SHARE = (1.0, 0.55, 0.30, 0.2, 0.1)
TIERS = ["Bronze", "Silver", "Gold", "Platinum"]
INTERESTS = ["Sports", "Music", "Travel", "Food & Drink", "Technology", "Fashion", "Café culture"]
COUNTRIES = ["Australia", "Germany", "France", "Japan", "United Kingdom", "New Zealand"]
US_STATES = ["California", "New York", "Texas", "Washington", "Florida", "Illinois"]
SEED_EPOCH = 1577836800  # 2020-01-01 00:00:00
SEED_SPAN = 5 * 365 * 86400
# Seeded campaigns go out weekly (Tuesdays 09:00) up to the last state changes of the seeded
# subscribers, so unsubscribes and bounces can be blamed on them (activity.py).
CAMPAIGNS = 20
CAMPAIGN_END = 1750755600  # 2025-06-24 09:00:00 UTC, a Tuesday
CAMPAIGN_THEMES = (
    "Spring sale",
    "Monthly newsletter",
    "New arrivals",
    "Member offers",
    "Events near you",
    "Summer preview",
)


def make_id(seed: int, *parts: object) -> str:
    """A deterministic 32-hex-digit id (the real API's id format)."""
    text = ":".join(str(p) for p in (seed, *parts))
    return hashlib.md5(text.encode()).hexdigest()


def seeded_fields() -> list[CustomField]:
    return [
        CustomField("website", "Text"),
        CustomField("loyalty points", "Number"),
        CustomField("birthday", "Date", visible=False),
        CustomField("tier", "MultiSelectOne", list(TIERS)),
        CustomField("interests", "MultiSelectMany", list(INTERESTS)),
        CustomField("country", "Country"),
        CustomField("us state", "USState"),
    ]


def seed_account(
    *,
    seed: int = 0,
    seed_size: int = 0,
    person_offset: int = 0,
    api_key: str,
    lists: Sequence[str] = DEFAULT_LISTS,
    client_name: str = "Client One",
    campaigns: int = CAMPAIGNS,
) -> Account:
    client = Client(
        client_id=make_id(seed, "client", 0),
        name=client_name,
        api_key=make_id(seed, "client-key", 0) + make_id(seed, "client-key", 1)[:16],
    )
    account = Account(api_key=api_key, clients=[client])
    if seed_size <= 0:
        return account
    # Rows are stored in email order (the default paging order), and the strings are created in
    # that order too, so reading a big list by email walks memory sequentially: at a million
    # subscribers that makes rendering a page several times faster than person order.
    frame = people.people(seed, person_offset, person_offset + seed_size).sort("email")
    index = frame.get_column("person").to_numpy()
    emails = frame.get_column("email").to_list()
    names = (frame.get_column("first_name") + " " + frame.get_column("last_name")).to_list()

    def u(stream: int) -> np.ndarray:
        return people.uniform(seed, index, 1000 + stream)

    suppressed = u(1) < 0.005
    for list_no, title in enumerate(lists):
        lst = MailingList(make_id(seed, "list", list_no), title)
        for f in seeded_fields():
            lst.add_field(f)
        share = LIST_SHARE[min(list_no, len(LIST_SHARE) - 1)]
        member = (u(10 + list_no) < share) if list_no else np.ones(len(index), dtype=bool)
        rows = np.nonzero(member)[0]
        _fill_list(lst, seed, list_no, index[rows], rows, emails, names, suppressed[rows])
        client.lists.append(lst)
        client.segments.append(
            Segment(
                make_id(seed, "segment", list_no),
                lst.list_id,
                f"{title}: Gold tier",
                [{"Rules": [{"RuleType": "[tier]", "Clause": "EQUALS Gold"}]}],
            )
        )
    client.campaigns = seeded_campaigns(seed, client.lists, campaigns)
    for i in np.nonzero(suppressed)[0].tolist():
        reason = "Bounced" if (i % 3 == 0) else "Unsubscribed"
        client.suppress(emails[i], reason, SEED_EPOCH + SEED_SPAN + int(index[i] % 86400) * 60)
    return account


def seeded_campaigns(seed: int, lists: Sequence[MailingList], count: int) -> list[Campaign]:
    """``count`` weekly campaigns ending at :data:`CAMPAIGN_END`; every fourth goes to the
    second list (when there is one), the others to the first."""
    out: list[Campaign] = []
    for n in range(count if lists else 0):
        week = count - 1 - n
        theme = CAMPAIGN_THEMES[n % len(CAMPAIGN_THEMES)]
        target = lists[1] if n % 4 == 3 and len(lists) > 1 else lists[0]
        out.append(
            Campaign(
                campaign_id=make_id(seed, "campaign", n),
                name=f"{theme} #{n + 1}",
                list_id=target.list_id,
                sent_at=CAMPAIGN_END - week * 7 * 86400,
                number=n,
                tags=[theme.split()[0].lower()],
            )
        )
    return out


def _fill_list(
    lst: MailingList,
    seed: int,
    list_no: int,
    persons: np.ndarray,
    rows: np.ndarray,
    emails: list[str],
    names: list[str],
    suppressed: np.ndarray,
) -> None:
    def u(stream: int) -> np.ndarray:
        return people.uniform(seed, persons, 2000 + list_no * 100 + stream)

    n = len(persons)
    r = u(0)
    state = np.full(n, ACTIVE, dtype=np.int8)
    state[r >= 0.86] = UNCONFIRMED
    state[r >= 0.89] = UNSUBSCRIBED
    state[r >= 0.94] = BOUNCED
    state[r >= 0.97] = DELETED
    bounced_supp = suppressed & (persons % 3 == 0)
    state[suppressed] = UNSUBSCRIBED
    state[bounced_supp] = BOUNCED
    joined = SEED_EPOCH + (u(1) * SEED_SPAN).astype(np.int64) // 60 * 60
    later = (u(2) * 180 * 86400).astype(np.int64) // 60 * 60
    dates = np.where(state == ACTIVE, joined, joined + later)

    # Taking rows through numpy object arrays keeps the same string objects (no copies) at C
    # speed: at 10M subscribers, Python loops here cost most of the seeding time.
    lst.emails = _take(emails, rows)
    lst.names = _take(names, rows)
    lst.states.frombytes(state.tobytes())
    lst.dates.frombytes(dates.astype(np.int64).tobytes())
    lst.joined.frombytes(joined.astype(np.int64).tobytes())
    lst.consent.frombytes(np.where(u(3) < 0.7, 1, 2).astype(np.int8).tobytes())
    lst.reads.frombytes((u(4) * 6).astype(np.int8).tobytes())
    # Seeded emails are lower case already (cmtoolkit.people): the index shares their strings.
    lst.index = dict(zip(lst.emails, range(n), strict=True))

    # Custom-field values: strings drawn from small shared pools (cheap for 1M rows).
    def sparse(prob: float, stream: int, pool: Sequence[object]) -> list[object]:
        present = u(stream) < prob
        pick = (u(stream + 50) * len(pool)).astype(np.int64)
        pick = np.where(present, pick, len(pool))
        extended = np.empty(len(pool) + 1, dtype=object)  # None last
        for i, value in enumerate(pool):
            extended[i] = value  # one by one: a tuple must not be spread into the array
        result: list[object] = extended[pick].tolist()
        return result

    websites = [f"https://{d}/" for d in ("example.com", "example.org", "shop.example.net")]
    points = [str(i * 5) for i in range(1000)]
    birthdays = [str(np.datetime64("1950-01-01") + np.timedelta64(d, "D")) for d in range(20000)]
    masks = [
        tuple(opt for bit, opt in enumerate(INTERESTS) if m >> bit & 1) or None
        for m in range(1 << len(INTERESTS))
    ]
    lst.values["website"] = sparse(0.3, 10, websites)
    lst.values["loyalty points"] = sparse(0.8, 11, points)
    lst.values["birthday"] = sparse(0.6, 12, birthdays)
    lst.values["tier"] = sparse(0.9, 13, TIERS)
    lst.values["interests"] = sparse(0.7, 14, masks)
    lst.values["country"] = sparse(0.5, 15, COUNTRIES)
    lst.values["us state"] = sparse(0.2, 16, US_STATES)
    # A few mobile numbers for the single-subscriber record.
    for row in np.nonzero(u(17) < 0.01)[0].tolist():
        lst.mobile[row] = f"+6142{persons[row] % 10_000_000:07d}"
    lst.touch()


def _take(values: list[str], rows: np.ndarray) -> list[str]:
    """``[values[i] for i in rows]``, the same objects, without a Python loop."""
    column = np.empty(len(values), dtype=object)
    column[:] = values
    taken: list[str] = column[rows].tolist()
    return taken
