"""One mailing list and its subscribers, stored column by column.

Subscribers are stored in columns (``array.array`` for states and timestamps, Python lists for
strings, one column per custom field) plus a lower-cased-email → row index, so a million
subscribers cost a few hundred bytes each rather than a dict apiece. Paging uses per-order sorted
row indexes that are rebuilt only after a change that affects ordering (``MailingList.version``).
"""

from __future__ import annotations

import time
from array import array
from collections.abc import Callable, Iterable
from datetime import date as _date
from typing import Any

import numpy as np
import polars as pl

from cmtoolkit.emulator.custom_field import CustomField
from cmtoolkit.emulator.subscriber import (
    ACTIVE,
    BOUNCED,
    DELETED,
    READS_WITH,
    STATES,
    UNSUBSCRIBED,
    format_ts_many,
)


class MailingList:
    """One list and its subscribers, column by column."""

    def __init__(
        self,
        list_id: str,
        title: str,
        *,
        confirmed_opt_in: bool = False,
        unsubscribe_setting: str = "OnlyThisList",
    ) -> None:
        self.list_id = list_id
        self.title = title
        self.confirmed_opt_in = confirmed_opt_in
        self.unsubscribe_page = ""
        self.confirmation_success_page = ""
        self.unsubscribe_setting = unsubscribe_setting
        self.add_unsubscribes_to_supp_list = False
        self._fields_version = 0
        self._fields: list[CustomField] = []
        self.webhooks: list[dict[str, Any]] = []
        # columns
        self.emails: list[str] = []
        self.names: list[str] = []
        self.states = array("b")
        self.dates = array("q")
        self.joined = array("q")
        self.consent = array("b")
        self.reads = array("b")
        self.mobile: dict[int, str] = {}
        self.values: dict[str, list[Any]] = {}  # field name -> column of None | str | tuple
        self.index: dict[str, int] = {}
        self.version = 0
        self._orders: dict[str, np.ndarray] = {}
        self._selections: dict[tuple[Any, ...], np.ndarray] = {}
        self._order_version = -1
        self._resolver: dict[str, CustomField] = {}
        self._resolver_version = -1

    # --- structure ------------------------------------------------------------------------------

    def __len__(self) -> int:
        return len(self.emails)

    def field_named(self, name: str) -> CustomField | None:
        for f in self.fields:
            if f.name == name:
                return f
        return None

    def field_by_key(self, key: str) -> CustomField | None:
        for f in self.fields:
            if f.key.casefold() == key.casefold():
                return f
        return None

    def resolve_field(self, key: object) -> CustomField | None:
        """A write key as FieldName, bare tag or bracketed tag (case-insensitive); else None.

        Looked up in a table rebuilt when the fields change (``add_field``, ``remove_field``,
        ``rename_field``, assigning ``fields``): an import resolves every custom field of every
        row, and computing each field's tag per lookup was the emulator's main cost."""
        if not isinstance(key, str):
            return None
        if self._resolver_version != self._fields_version:
            table: dict[str, CustomField] = {}
            for f in self.fields:  # the first field claiming a spelling wins, as a scan would
                for spelling in (f.name, f.key, f.tag):
                    table.setdefault(spelling.casefold(), f)
            self._resolver, self._resolver_version = table, self._fields_version
        return self._resolver.get(key.strip().casefold())

    @property
    def fields(self) -> list[CustomField]:
        return self._fields

    @fields.setter
    def fields(self, fields: list[CustomField]) -> None:
        self._fields = fields
        self._fields_version += 1

    def add_field(self, f: CustomField) -> None:
        self.fields.append(f)
        self._fields_version += 1
        self.values[f.name] = [None] * len(self)

    def remove_field(self, f: CustomField) -> None:
        self.fields.remove(f)
        self._fields_version += 1
        del self.values[f.name]

    def rename_field(self, f: CustomField, new_name: str) -> None:
        self.values[new_name] = self.values.pop(f.name)
        f.name = new_name
        self._fields_version += 1

    # --- rows -----------------------------------------------------------------------------------

    def row_of(self, email: str) -> int | None:
        return self.index.get(email.strip().lower())

    def append(self, email: str, name: str, state: int, now: int, consent: int = 0) -> int:
        row = len(self.emails)
        self.emails.append(email)
        self.names.append(name)
        self.states.append(state)
        self.dates.append(now)
        self.joined.append(now)
        self.consent.append(consent)
        self.reads.append(0)
        for column in self.values.values():
            column.append(None)
        self.index[email.lower()] = row
        self.touch()
        return row

    def set_state(self, row: int, state: int, now: int) -> None:
        if self.states[row] != state:
            self.states[row] = state
            self.dates[row] = now
            self.touch()

    def touch(self) -> None:
        self.version += 1

    def state_counts(self) -> dict[str, int]:
        counts = np.bincount(np.frombuffer(self.states, dtype=np.int8), minlength=5)
        return {STATES[i]: int(counts[i]) for i in range(5)}

    # --- paging ---------------------------------------------------------------------------------

    def _order(self, order_field: str) -> np.ndarray:
        if self._order_version != self.version:
            self._orders.clear()
            self._selections.clear()
            self._order_version = self.version
        order = self._orders.get(order_field)
        if order is None:
            emails = pl.Series(self.emails, dtype=pl.Utf8).str.to_lowercase()
            if order_field == "email":
                frame = pl.DataFrame({"e": emails})
                by = ["e"]
            elif order_field == "name":
                names = pl.Series(self.names, dtype=pl.Utf8).str.to_lowercase()
                frame = pl.DataFrame({"n": names, "e": emails})
                by = ["n", "e"]
            else:
                frame = pl.DataFrame({"d": np.frombuffer(self.dates, dtype=np.int64), "e": emails})
                by = ["d", "e"]
            order = (
                frame.with_row_index("row").sort(by).get_column("row").to_numpy().astype(np.int64)
            )
            self._orders[order_field] = order
        return order

    def select(
        self,
        states: Iterable[int],
        order_field: str,
        descending: bool,
        since: int | None,
        rows: Callable[[], np.ndarray] | None = None,
        cache_key: object = None,
    ) -> np.ndarray:
        """Row numbers in the given states (status date ≥ ``since``), in page order.

        Cached per (states, order, direction, since) until the next ordering change, so paging
        a million subscribers does no per-page O(N) work.
        """
        states = tuple(states)
        order = self._order(order_field)
        key = (states, order_field, descending, since, cache_key)
        hit = self._selections.get(key)
        if hit is not None:
            return hit
        state_arr = np.frombuffer(self.states, dtype=np.int8)[order]
        mask = np.isin(state_arr, np.array(states, dtype=np.int8))
        if since is not None:
            mask &= np.frombuffer(self.dates, dtype=np.int64)[order] >= since
        if rows is not None:
            member = np.zeros(len(self), dtype=bool)
            member[rows()] = True
            mask &= member[order]
        selected = order[mask]
        if descending:
            selected = selected[::-1]
        if len(self._selections) > 64:
            self._selections.clear()
        self._selections[key] = selected
        return selected

    # --- rendering ------------------------------------------------------------------------------

    def custom_fields_of(self, row: int) -> list[dict[str, str]]:
        out: list[dict[str, str]] = []
        for f in self.fields:
            v = self.values[f.name][row]
            if v is None:
                continue
            if isinstance(v, tuple):
                out.extend({"Key": f.name, "Value": option} for option in v)
            else:
                out.append({"Key": f.name, "Value": v})
        return out

    def records(
        self,
        rows: list[int],
        *,
        tracking: bool,
        reads_with: bool = True,
        details: bool = False,
    ) -> list[dict[str, object]]:
        """Subscriber records as the API returns them (custom-field keys are FieldNames)."""
        if not rows:
            return []
        idx = np.asarray(rows, dtype=np.int64)
        dates = format_ts_many(np.frombuffer(self.dates, dtype=np.int64)[idx])
        joined = format_ts_many(np.frombuffer(self.joined, dtype=np.int64)[idx])
        emails, names, states, consent, reads = (
            self.emails,
            self.names,
            self.states,
            self.consent,
            self.reads,
        )
        columns = [(f.name, self.values[f.name]) for f in self.fields]
        out = []
        for n, row in enumerate(rows):
            cfs = []
            for name, column in columns:
                v = column[row]
                if v is None:
                    continue
                if v.__class__ is tuple:
                    for option in v:
                        cfs.append({"Key": name, "Value": option})
                else:
                    cfs.append({"Key": name, "Value": v})
            record: dict[str, object] = {"EmailAddress": emails[row], "Name": names[row]}
            if details and row in self.mobile:
                record["MobileNumber"] = self.mobile[row]
            record["Date"] = dates[n]
            record["ListJoinedDate"] = joined[n]
            record["State"] = STATES[states[row]]
            record["CustomFields"] = cfs
            if reads_with:
                record["ReadsEmailWith"] = READS_WITH[reads[row]]
            if tracking:
                record["ConsentToTrack"] = "Yes" if consent[row] == 1 else "No"
                if details and row in self.mobile:
                    record["ConsentToSendSms"] = "No"
            out.append(record)
        return out

    def details(self) -> dict[str, object]:
        return {
            "ConfirmedOptIn": self.confirmed_opt_in,
            "Title": self.title,
            "UnsubscribePage": self.unsubscribe_page,
            "ListID": self.list_id,
            "ConfirmationSuccessPage": self.confirmation_success_page,
            "UnsubscribeSetting": self.unsubscribe_setting,
        }

    def stats(self, now: int) -> dict[str, int]:
        states = np.frombuffer(self.states, dtype=np.int8)
        dates = np.frombuffer(self.dates, dtype=np.int64)
        day = 86400
        today = now - now % day
        weekday = time.gmtime(now).tm_wday
        tm = time.gmtime(now)
        month_start = int(_epoch(tm.tm_year, tm.tm_mon, 1))
        year_start = int(_epoch(tm.tm_year, 1, 1))
        windows = {
            "Today": (today, now + 1),
            "Yesterday": (today - day, today),
            "ThisWeek": (today - weekday * day, now + 1),
            "ThisMonth": (month_start, now + 1),
            "ThisYear": (year_start, now + 1),
        }
        out: dict[str, int] = {}
        for state, total, prefix in (
            (ACTIVE, "TotalActiveSubscribers", "NewActiveSubscribers"),
            (UNSUBSCRIBED, "TotalUnsubscribes", "Unsubscribes"),
            (DELETED, "TotalDeleted", "Deleted"),
            (BOUNCED, "TotalBounces", "Bounces"),
        ):
            in_state = states == state
            out[total] = int(in_state.sum())
            sd = dates[in_state]
            for suffix, (lo, hi) in windows.items():
                out[prefix + suffix] = int(((sd >= lo) & (sd < hi)).sum())
        return out


def _epoch(year: int, month: int, day: int) -> float:
    return (_date(year, month, day) - _date(1970, 1, 1)).days * 86400.0
