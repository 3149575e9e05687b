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


#: A decoded JSON object of the API (PascalCase keys).
Wire = Mapping[str, object]


def parse_timestamp(value: object) -> datetime | None:
    """``"YYYY-MM-DD HH:MM:SS"`` (account-local, no offset) as a naive datetime; ``""`` → None."""
    if not value:
        return None
    return datetime.fromisoformat(_text(value))


def _text(value: object) -> str:
    return value if isinstance(value, str) else str(value)


def _opt(value: object) -> str | None:
    """A text value that may be absent (``None`` stays ``None``)."""
    return None if value is None else _text(value)


def _int(value: object) -> int:
    if isinstance(value, int | float | str):
        return int(value)
    raise TypeError(f"expected a number, got {type(value).__name__}")


def _list(value: object) -> list[object]:
    """A JSON array (``None`` or absent: empty)."""
    if not value:
        return []
    if not isinstance(value, list | tuple):
        raise TypeError(f"expected a list, got {type(value).__name__}")
    return list(value)


def _items(value: object) -> list[Wire]:
    """A JSON array of objects (``None`` or absent: empty)."""
    items = _list(value)
    for item in items:
        if not isinstance(item, Mapping):
            raise TypeError(f"expected an object, got {type(item).__name__}")
    return [item for item in items if isinstance(item, Mapping)]


def _frozen_mapping(pairs: Iterable[Wire] | None) -> Mapping[str, tuple[str, ...]]:
    """Group ``[{"Key", "Value"}, ...]`` by key, keeping repeated keys (multi-select) in order."""
    grouped: dict[str, list[str]] = {}
    for item in pairs or ():
        grouped.setdefault(_text(item["Key"]), []).append(_opt(item.get("Value")) or "")
    return MappingProxyType({k: tuple(v) for k, v in grouped.items()})


@dataclass(frozen=True, slots=True)
class ClientSummary:
    client_id: str
    name: str

    @classmethod
    def from_wire(cls, d: Wire) -> ClientSummary:
        return cls(client_id=_text(d["ClientID"]), name=_text(d["Name"]))


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
    def from_wire(cls, d: Wire) -> ClientDetails:
        basic = d.get("BasicDetails") or {}
        if not isinstance(basic, Mapping):
            raise TypeError(f"BasicDetails: expected an object, got {type(basic).__name__}")
        key = d.get("ApiKey")
        return cls(
            client_id=_text(basic.get("ClientID", "")),
            company_name=_text(basic.get("CompanyName", "")),
            contact_name=_opt(basic.get("ContactName")),
            email_address=_opt(basic.get("EmailAddress")),
            country=_opt(basic.get("Country")),
            timezone=_opt(basic.get("TimeZone")),
            api_key=Secret(_text(key)) if key else None,
        )


@dataclass(frozen=True, slots=True)
class ListSummary:
    list_id: str
    name: str

    @classmethod
    def from_wire(cls, d: Wire) -> ListSummary:
        return cls(list_id=_text(d["ListID"]), name=_text(d["Name"]))


@dataclass(frozen=True, slots=True)
class ListDetails:
    list_id: str
    title: str
    confirmed_opt_in: bool
    unsubscribe_page: str
    confirmation_success_page: str
    unsubscribe_setting: str

    @classmethod
    def from_wire(cls, d: Wire) -> ListDetails:
        return cls(
            list_id=_text(d["ListID"]),
            title=_text(d["Title"]),
            confirmed_opt_in=bool(d.get("ConfirmedOptIn")),
            unsubscribe_page=_opt(d.get("UnsubscribePage")) or "",
            confirmation_success_page=_opt(d.get("ConfirmationSuccessPage")) or "",
            unsubscribe_setting=_opt(d.get("UnsubscribeSetting")) or "",
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
    def from_wire(cls, d: Wire) -> ListStats:
        return cls(
            total_active=_int(d.get("TotalActiveSubscribers", 0)),
            total_unsubscribes=_int(d.get("TotalUnsubscribes", 0)),
            total_deleted=_int(d.get("TotalDeleted", 0)),
            total_bounces=_int(d.get("TotalBounces", 0)),
            counters=MappingProxyType({k: _int(v) for k, v in d.items()}),
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
    def from_wire(cls, d: Wire) -> CustomField:
        return cls(
            field_name=_text(d["FieldName"]),
            key=_text(d["Key"]),
            data_type=_text(d["DataType"]),
            options=tuple(_text(o) for o in _list(d.get("FieldOptions"))),
            visible_in_preference_center=bool(d.get("VisibleInPreferenceCenter", True)),
        )


@dataclass(frozen=True, slots=True)
class Segment:
    list_id: str
    segment_id: str
    title: str

    @classmethod
    def from_wire(cls, d: Wire) -> Segment:
        return cls(
            list_id=_text(d["ListID"]), segment_id=_text(d["SegmentID"]), title=_text(d["Title"])
        )


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
    def from_wire(cls, d: Wire) -> Subscriber:
        return cls(
            email=_text(d["EmailAddress"]),
            name=_opt(d.get("Name")) or "",
            state=_opt(d.get("State")) or "",
            date=parse_timestamp(d.get("Date")),
            list_joined_date=parse_timestamp(d.get("ListJoinedDate")),
            custom_fields=_frozen_mapping(_items(d.get("CustomFields"))),
            consent_to_track=_opt(d.get("ConsentToTrack")),
            mobile_number=_opt(d.get("MobileNumber")),
            consent_to_send_sms=_opt(d.get("ConsentToSendSms")),
            reads_email_with=_opt(d.get("ReadsEmailWith")),
        )


@dataclass(frozen=True, slots=True)
class SuppressedEmail:
    """An entry of a client's suppression list."""

    email: str
    reason: str
    date: datetime | None
    state: str

    @classmethod
    def from_wire(cls, d: Wire) -> SuppressedEmail:
        return cls(
            email=_text(d["EmailAddress"]),
            reason=_opt(d.get("SuppressionReason")) or "",
            date=parse_timestamp(d.get("Date")),
            state=_opt(d.get("State")) or "",
        )


@dataclass(frozen=True, slots=True)
class ListMembership:
    """One list an email address belongs to (``lists_for_email``)."""

    list_id: str
    list_name: str
    state: str
    date_added: datetime | None

    @classmethod
    def from_wire(cls, d: Wire) -> ListMembership:
        return cls(
            list_id=_text(d["ListID"]),
            list_name=_opt(d.get("ListName")) or "",
            state=_opt(d.get("SubscriberState")) or "",
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
    def from_wire(cls, d: Wire) -> ImportResult:
        return cls(
            total_unique_emails_submitted=_int(d.get("TotalUniqueEmailsSubmitted") or 0),
            total_existing_subscribers=_int(d.get("TotalExistingSubscribers") or 0),
            total_new_subscribers=_int(d.get("TotalNewSubscribers") or 0),
            duplicate_emails=tuple(_text(e) for e in _list(d.get("DuplicateEmailsInSubmission"))),
            failures=tuple(
                ImportFailure(
                    email=_text(f.get("EmailAddress", "")),
                    code=_int(f.get("Code") or 0),
                    message=_opt(f.get("Message")) or "",
                )
                for f in _items(d.get("FailureDetails"))
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
