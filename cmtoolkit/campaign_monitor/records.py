"""Typed, immutable records for what Campaign Monitor returns.

Wire payloads are PascalCase dicts; the rest of the toolkit works with these frozen dataclasses so a
renamed or missing key fails here, in one place, instead of deep inside a sync engine. Secrets that
come back in a payload (a client's ``ApiKey``) are wrapped in :class:`~cmtoolkit.secret.Secret` at
once.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from types import MappingProxyType
from typing import Any

from cmtoolkit.secret import Secret

__all__ = [
    "ClientDetails",
    "ClientSummary",
    "CustomField",
    "ImportFailure",
    "ImportResult",
    "ListDetails",
    "ListMembership",
    "ListStats",
    "ListSummary",
    "Segment",
    "Subscriber",
    "SuppressedEmail",
    "parse_timestamp",
]


def parse_timestamp(value: str | None) -> datetime | None:
    """``"YYYY-MM-DD HH:MM:SS"`` (account-local, no offset) as a naive datetime; ``""`` → None."""
    if not value:
        return None
    return datetime.fromisoformat(value)


def _frozen_mapping(pairs: Iterable[Mapping[str, Any]] | None) -> Mapping[str, tuple[str, ...]]:
    """Group ``[{"Key", "Value"}, ...]`` by key, keeping repeated keys (multi-select) in order."""
    grouped: dict[str, list[str]] = {}
    for item in pairs or ():
        grouped.setdefault(item["Key"], []).append(item.get("Value") or "")
    return MappingProxyType({k: tuple(v) for k, v in grouped.items()})


@dataclass(frozen=True, slots=True)
class ClientSummary:
    client_id: str
    name: str

    @classmethod
    def from_wire(cls, d: Mapping[str, Any]) -> ClientSummary:
        return cls(client_id=d["ClientID"], name=d["Name"])


@dataclass(frozen=True, slots=True)
class ClientDetails:
    """A client's basic details; ``api_key`` is the client-level key (held as a Secret)."""

    client_id: str
    company_name: str
    contact_name: str | None
    email_address: str | None
    country: str | None
    timezone: str | None
    api_key: Secret | None

    @classmethod
    def from_wire(cls, d: Mapping[str, Any]) -> ClientDetails:
        basic = d.get("BasicDetails") or {}
        key = d.get("ApiKey")
        return cls(
            client_id=basic.get("ClientID", ""),
            company_name=basic.get("CompanyName", ""),
            contact_name=basic.get("ContactName"),
            email_address=basic.get("EmailAddress"),
            country=basic.get("Country"),
            timezone=basic.get("TimeZone"),
            api_key=Secret(key) if key else None,
        )


@dataclass(frozen=True, slots=True)
class ListSummary:
    list_id: str
    name: str

    @classmethod
    def from_wire(cls, d: Mapping[str, Any]) -> ListSummary:
        return cls(list_id=d["ListID"], name=d["Name"])


@dataclass(frozen=True, slots=True)
class ListDetails:
    list_id: str
    title: str
    confirmed_opt_in: bool
    unsubscribe_page: str
    confirmation_success_page: str
    unsubscribe_setting: str

    @classmethod
    def from_wire(cls, d: Mapping[str, Any]) -> ListDetails:
        return cls(
            list_id=d["ListID"],
            title=d["Title"],
            confirmed_opt_in=bool(d.get("ConfirmedOptIn")),
            unsubscribe_page=d.get("UnsubscribePage") or "",
            confirmation_success_page=d.get("ConfirmationSuccessPage") or "",
            unsubscribe_setting=d.get("UnsubscribeSetting") or "",
        )


@dataclass(frozen=True, slots=True)
class ListStats:
    """The main totals (to pre-size an import) plus every counter the API returned."""

    total_active: int
    total_unsubscribes: int
    total_deleted: int
    total_bounces: int
    counters: Mapping[str, int] = field(default_factory=dict)

    @classmethod
    def from_wire(cls, d: Mapping[str, Any]) -> ListStats:
        return cls(
            total_active=int(d.get("TotalActiveSubscribers", 0)),
            total_unsubscribes=int(d.get("TotalUnsubscribes", 0)),
            total_deleted=int(d.get("TotalDeleted", 0)),
            total_bounces=int(d.get("TotalBounces", 0)),
            counters=MappingProxyType({k: int(v) for k, v in d.items()}),
        )


@dataclass(frozen=True, slots=True)
class CustomField:
    """A list's custom field. ``key`` is the bracketed tag (``[age]``) used in management URLs;
    subscriber records carry values under ``field_name``."""

    field_name: str
    key: str
    data_type: str
    options: tuple[str, ...] = ()
    visible_in_preference_center: bool = True

    @classmethod
    def from_wire(cls, d: Mapping[str, Any]) -> CustomField:
        return cls(
            field_name=d["FieldName"],
            key=d["Key"],
            data_type=d["DataType"],
            options=tuple(d.get("FieldOptions") or ()),
            visible_in_preference_center=bool(d.get("VisibleInPreferenceCenter", True)),
        )


@dataclass(frozen=True, slots=True)
class Segment:
    list_id: str
    segment_id: str
    title: str

    @classmethod
    def from_wire(cls, d: Mapping[str, Any]) -> Segment:
        return cls(list_id=d["ListID"], segment_id=d["SegmentID"], title=d["Title"])


@dataclass(frozen=True, slots=True)
class Subscriber:
    """One subscriber of one list. ``custom_fields`` maps a field name to its values in order
    (a MultiSelectMany field has several); ``date`` is when the state last changed."""

    email: str
    name: str
    state: str
    date: datetime | None = None
    list_joined_date: datetime | None = None
    custom_fields: Mapping[str, tuple[str, ...]] = field(
        default_factory=lambda: MappingProxyType({})
    )
    consent_to_track: str | None = None
    mobile_number: str | None = None
    consent_to_send_sms: str | None = None
    reads_email_with: str | None = None

    @classmethod
    def from_wire(cls, d: Mapping[str, Any]) -> Subscriber:
        return cls(
            email=d["EmailAddress"],
            name=d.get("Name") or "",
            state=d.get("State") or "",
            date=parse_timestamp(d.get("Date")),
            list_joined_date=parse_timestamp(d.get("ListJoinedDate")),
            custom_fields=_frozen_mapping(d.get("CustomFields")),
            consent_to_track=d.get("ConsentToTrack"),
            mobile_number=d.get("MobileNumber"),
            consent_to_send_sms=d.get("ConsentToSendSms"),
            reads_email_with=d.get("ReadsEmailWith"),
        )


@dataclass(frozen=True, slots=True)
class SuppressedEmail:
    """An entry of a client's suppression list."""

    email: str
    reason: str
    date: datetime | None
    state: str

    @classmethod
    def from_wire(cls, d: Mapping[str, Any]) -> SuppressedEmail:
        return cls(
            email=d["EmailAddress"],
            reason=d.get("SuppressionReason") or "",
            date=parse_timestamp(d.get("Date")),
            state=d.get("State") or "",
        )


@dataclass(frozen=True, slots=True)
class ListMembership:
    """One list an email address belongs to (``lists_for_email``)."""

    list_id: str
    list_name: str
    state: str
    date_added: datetime | None

    @classmethod
    def from_wire(cls, d: Mapping[str, Any]) -> ListMembership:
        return cls(
            list_id=d["ListID"],
            list_name=d.get("ListName") or "",
            state=d.get("SubscriberState") or "",
            date_added=parse_timestamp(d.get("DateSubscriberAdded")),
        )


@dataclass(frozen=True, slots=True)
class ImportFailure:
    """A row Campaign Monitor rejected in a bulk import (``FailureDetails``)."""

    email: str
    code: int
    message: str


@dataclass(frozen=True, slots=True)
class ImportResult:
    """The outcome of one or more bulk-import batches, summed.

    A partial failure (HTTP 400, code 210) is a result, not an error: the rejected rows are in
    ``failures`` and every other row was accepted.
    """

    total_unique_emails_submitted: int = 0
    total_existing_subscribers: int = 0
    total_new_subscribers: int = 0
    duplicate_emails: tuple[str, ...] = ()
    failures: tuple[ImportFailure, ...] = ()
    batches: int = 0

    @classmethod
    def from_wire(cls, d: Mapping[str, Any]) -> ImportResult:
        return cls(
            total_unique_emails_submitted=int(d.get("TotalUniqueEmailsSubmitted") or 0),
            total_existing_subscribers=int(d.get("TotalExistingSubscribers") or 0),
            total_new_subscribers=int(d.get("TotalNewSubscribers") or 0),
            duplicate_emails=tuple(d.get("DuplicateEmailsInSubmission") or ()),
            failures=tuple(
                ImportFailure(
                    email=f.get("EmailAddress", ""),
                    code=int(f.get("Code") or 0),
                    message=f.get("Message") or "",
                )
                for f in d.get("FailureDetails") or ()
            ),
            batches=1,
        )

    @classmethod
    def combine(cls, results: Sequence[ImportResult]) -> ImportResult:
        return cls(
            total_unique_emails_submitted=sum(r.total_unique_emails_submitted for r in results),
            total_existing_subscribers=sum(r.total_existing_subscribers for r in results),
            total_new_subscribers=sum(r.total_new_subscribers for r in results),
            duplicate_emails=tuple(e for r in results for e in r.duplicate_emails),
            failures=tuple(f for r in results for f in r.failures),
            batches=sum(r.batches for r in results),
        )

    def __add__(self, other: ImportResult) -> ImportResult:
        return ImportResult.combine((self, other))

    @property
    def failed_emails(self) -> Mapping[str, ImportFailure]:
        """Failures by email address (the last one wins if an address failed twice)."""
        return {f.email: f for f in self.failures}

    @property
    def partial(self) -> bool:
        """True when some rows were rejected."""
        return bool(self.failures)
