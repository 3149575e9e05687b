"""The emulated account: clients, lists, custom fields, subscribers, suppression list, segments.

Subscribers are stored per list in columns (``array.array`` for states and timestamps, Python
lists for strings, one column per custom field) plus a lower-cased-email → row index, so a million
subscribers cost a few hundred bytes each rather than a dict apiece. Paging uses per-order sorted
row indexes that are rebuilt only after a change that affects ordering (``MailingList.version``).

Timestamps are integer seconds on the emulator clock and render as ``YYYY-MM-DD HH:MM:SS`` (no
timezone: the real API's timezone is unconfirmed; the emulator's is UTC).
"""

from __future__ import annotations

import re
import time
from array import array
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import date as _date
from typing import Any

import numpy as np
import polars as pl

STATES = ("Active", "Unconfirmed", "Unsubscribed", "Bounced", "Deleted")
STATE_CODE = {name: code for code, name in enumerate(STATES)}
ACTIVE, UNCONFIRMED, UNSUBSCRIBED, BOUNCED, DELETED = range(5)
CONSENT = ("Unchanged", "Yes", "No")
READS_WITH = ("", "Gmail", "Outlook", "Apple Mail", "Yahoo Mail", "Thunderbird")
DATA_TYPES = ("Text", "Number", "MultiSelectOne", "MultiSelectMany", "Date", "Country", "USState")
MULTI = ("MultiSelectOne", "MultiSelectMany")
MAX_VALUE_LENGTH = 250
DATE_MIN, DATE_MAX = _date(1900, 1, 1), _date(2076, 6, 6)

# Deliberately simple: one @, a dot in the domain, no spaces. ("example+1@example" is invalid,
# as in the partial-import fixture.)
EMAIL_RE = re.compile(r"^[^@\s]+@[^@\s.]+(\.[^@\s.]+)+$")


def valid_email(value: Any) -> bool:
    return isinstance(value, str) and len(value) <= 254 and EMAIL_RE.match(value) is not None


def format_ts(seconds: int | float) -> str:
    return time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(int(seconds)))


def format_ts_many(values: np.ndarray) -> list[str]:
    """Vectorised ``format_ts`` for a page of timestamps."""
    text = np.datetime_as_string(values.astype("datetime64[s]"), unit="s")
    return [s.replace("T", " ") for s in text.tolist()]


def field_key(field_name: str) -> str:
    """The personalisation tag of a field: ``[`` + name without whitespace + ``]``.

    From the fixtures ("new date field" → "[newdatefield]"); the full real rule is unconfirmed.
    """
    return "[" + re.sub(r"\s+", "", field_name) + "]"


@dataclass
class CustomField:
    name: str
    data_type: str
    options: list[str] = field(default_factory=list)
    visible: bool = True

    @property
    def key(self) -> str:
        return field_key(self.name)

    @property
    def tag(self) -> str:
        return self.key[1:-1]

    def as_json(self) -> dict[str, Any]:
        return {
            "FieldName": self.name,
            "Key": self.key,
            "DataType": self.data_type,
            "FieldOptions": list(self.options),
            "VisibleInPreferenceCenter": self.visible,
        }

    def normalise(self, value: Any) -> str | None:
        """The stored form of one incoming value, or None when the value is ignored.

        Invalid values are *ignored*, not errors (the docs say so for out-of-range dates; the
        emulator applies it to every type): Text longer than 250 characters, a non-numeric
        Number, an unparseable or out-of-range Date, an option not in ``FieldOptions``.
        """
        if value is None:
            return None
        text = str(value).strip()
        if not text or len(text) > MAX_VALUE_LENGTH:
            return None
        t = self.data_type
        if t == "Number":
            try:
                number = float(text)
            except ValueError:
                return None
            if number != number or number in (float("inf"), float("-inf")):
                return None
            return str(int(number)) if number.is_integer() and "." not in text else text
        if t == "Date":
            m = re.match(r"^(\d{4})[-/](\d{1,2})[-/](\d{1,2})(?:[ T].*)?$", text)
            if not m:
                return None
            try:
                d = _date(int(m[1]), int(m[2]), int(m[3]))
            except ValueError:
                return None
            return d.isoformat() if DATE_MIN <= d <= DATE_MAX else None
        if t in MULTI:
            for option in self.options:
                if option.casefold() == text.casefold():
                    return option
            return None
        return text


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
        self.fields: list[CustomField] = []
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

    def resolve_field(self, key: Any) -> CustomField | None:
        """A write key as FieldName, bare tag or bracketed tag (case-insensitive); else None."""
        if not isinstance(key, str):
            return None
        k = key.strip().casefold()
        for f in self.fields:
            if k in (f.name.casefold(), f.key.casefold(), f.tag.casefold()):
                return f
        return None

    def add_field(self, f: CustomField) -> None:
        self.fields.append(f)
        self.values[f.name] = [None] * len(self)

    def remove_field(self, f: CustomField) -> None:
        self.fields.remove(f)
        del self.values[f.name]

    def rename_field(self, f: CustomField, new_name: str) -> None:
        self.values[new_name] = self.values.pop(f.name)
        f.name = new_name

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
        cache_key: Any = None,
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
    ) -> list[dict[str, Any]]:
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
            record: dict[str, Any] = {"EmailAddress": emails[row], "Name": names[row]}
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

    def details(self) -> dict[str, Any]:
        return {
            "ConfirmedOptIn": self.confirmed_opt_in,
            "Title": self.title,
            "UnsubscribePage": self.unsubscribe_page,
            "ListID": self.list_id,
            "ConfirmationSuccessPage": self.confirmation_success_page,
            "UnsubscribeSetting": self.unsubscribe_setting,
        }

    def stats(self, now: int) -> dict[str, Any]:
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
        out: dict[str, Any] = {}
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


@dataclass
class Segment:
    segment_id: str
    list_id: str
    title: str
    rule_groups: list[dict[str, Any]] = field(default_factory=list)

    def members(self, lst: MailingList) -> np.ndarray:
        """Rows matching every rule group (rules in a group are OR-ed, as in CM).

        Supported clauses: ``EQUALS v`` / ``CONTAINS v`` / ``PROVIDED`` / ``NOT PROVIDED`` on
        ``EmailAddress``, ``Name`` or a custom field ``[tag]``; unsupported rules match nobody.
        """
        n = len(lst)
        result = np.ones(n, dtype=bool)
        for group in self.rule_groups:
            any_rule = np.zeros(n, dtype=bool)
            for rule in group.get("Rules", []):
                any_rule |= _rule_mask(lst, rule.get("RuleType", ""), rule.get("Clause", ""))
            result &= any_rule
        return np.nonzero(result)[0]


def _rule_mask(lst: MailingList, rule_type: str, clause: str) -> np.ndarray:
    if rule_type == "EmailAddress":
        column: list[Any] = lst.emails
    elif rule_type == "Name":
        column = lst.names
    else:
        f = lst.resolve_field(rule_type)
        if f is None:
            return np.zeros(len(lst), dtype=bool)
        column = lst.values[f.name]
    op, _, arg = clause.partition(" ")
    op = op.upper()
    if clause.upper() == "NOT PROVIDED":
        return np.array([not v for v in column], dtype=bool)
    arg_cf = arg.casefold()

    def values(v: Any) -> tuple[str, ...]:
        if not v:
            return ()
        return v if isinstance(v, tuple) else (v,)

    if op == "PROVIDED":
        return np.array([bool(v) for v in column], dtype=bool)
    if op == "EQUALS":
        return np.array([any(x.casefold() == arg_cf for x in values(v)) for v in column], bool)
    if op == "CONTAINS":
        return np.array([any(arg_cf in x.casefold() for x in values(v)) for v in column], bool)
    return np.zeros(len(lst), dtype=bool)


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
    _supp_order: dict[tuple[Any, ...], list[str]] = field(default_factory=dict, repr=False)

    def details(self) -> dict[str, Any]:
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
