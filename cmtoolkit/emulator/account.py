"""The emulated account: its clients, each with lists, segments and a suppression list."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import polars as pl

from cmtoolkit.emulator.activity import Campaign
from cmtoolkit.emulator.mailing_list import MailingList
from cmtoolkit.emulator.segment import Segment
from cmtoolkit.emulator.subscriber import STATES


@dataclass
class Suppressed:
    email: str
    reason: str
    date: int


@dataclass
class Client:
    client_id: str
    name: str
    api_key: str
    lists: list[MailingList] = field(default_factory=list)
    segments: list[Segment] = field(default_factory=list)
    suppression: dict[str, Suppressed] = field(default_factory=dict)
    campaigns: list[Campaign] = field(default_factory=list)  # sent campaigns (activity.py)
    #: Per list, subscribers imported with RestartSubscriptionBasedAutoresponders (the emulator
    #: sends no email: tests read this to see that the flag reached Campaign Monitor).
    autoresponder_restarts: dict[str, int] = field(default_factory=dict)
    _supp_order: dict[tuple[Any, ...], list[str]] = field(default_factory=dict, repr=False)

    def details(self) -> dict[str, object]:
        return {
            "ApiKey": self.api_key,
            "AccessDetails": {"Username": self.name.lower().replace(" ", ""), "AccessLevel": 23},
            "BasicDetails": {
                "ClientID": self.client_id,
                "CompanyName": self.name,
                "ContactName": f"{self.name} (contact)",
                "EmailAddress": "contact@example.com",
                "Country": "Australia",
                "TimeZone": "(GMT) Coordinated Universal Time",
            },
            "BillingDetails": {
                "CanPurchaseCredits": True,
                "Credits": 500,
                "ClientPays": True,
                "BaseRatePerRecipient": 1.0,
                "MarkupPerRecipient": 0.0,
                "MarkupOnDelivery": 0.0,
                "BaseDeliveryRate": 5.0,
                "Currency": "USD",
                "BaseDesignSpamTestRate": 5.0,
            },
        }

    def suppress(self, email: str, reason: str, now: int) -> None:
        self.suppression[email.strip().lower()] = Suppressed(email.strip(), reason, now)
        self._supp_order.clear()

    def unsuppress(self, email: str) -> bool:
        found = self.suppression.pop(email.strip().lower(), None) is not None
        self._supp_order.clear()
        return found

    def suppression_order(self, order_field: str, descending: bool) -> list[str]:
        key = (order_field, descending)
        hit = self._supp_order.get(key)
        if hit is None:
            items = self.suppression.items()
            if order_field == "date":
                ordered = sorted(items, key=lambda kv: (kv[1].date, kv[0]))
            else:  # email and name (a suppressed address has no name)
                ordered = sorted(items, key=lambda kv: kv[0])
            hit = [k for k, _ in ordered]
            if descending:
                hit.reverse()
            self._supp_order[key] = hit
        return hit


@dataclass
class Account:
    """Everything the emulated Campaign Monitor account holds."""

    api_key: str
    clients: list[Client] = field(default_factory=list)

    def client(self, client_id: str) -> Client | None:
        for c in self.clients:
            if c.client_id == client_id:
                return c
        return None

    def find_list(self, list_id: str) -> tuple[Client, MailingList] | None:
        for c in self.clients:
            for lst in c.lists:
                if lst.list_id == list_id:
                    return c, lst
        return None

    def find_segment(self, segment_id: str) -> tuple[Client, Segment] | None:
        for c in self.clients:
            for s in c.segments:
                if s.segment_id == segment_id:
                    return c, s
        return None

    def list_named(self, title: str) -> MailingList:
        for c in self.clients:
            for lst in c.lists:
                if lst.title == title:
                    return lst
        raise KeyError(title)

    def subscribers(self, list_id: str) -> pl.DataFrame:
        """A list's subscribers as a frame (for test assertions): one row each."""
        found = self.find_list(list_id)
        if found is None:
            raise KeyError(list_id)
        lst = found[1]
        return pl.DataFrame(
            {
                "email": lst.emails,
                "name": lst.names,
                "state": pl.Series(np.frombuffer(lst.states, dtype=np.int8)).replace_strict(
                    list(range(5)), list(STATES), return_dtype=pl.Utf8
                )
                if len(lst)
                else pl.Series([], dtype=pl.Utf8),
                "date": np.frombuffer(lst.dates, dtype=np.int64),
                "list_joined": np.frombuffer(lst.joined, dtype=np.int64),
            },
            schema={
                "email": pl.Utf8,
                "name": pl.Utf8,
                "state": pl.Utf8,
                "date": pl.Int64,
                "list_joined": pl.Int64,
            },
        )
