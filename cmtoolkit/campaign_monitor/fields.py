"""Campaign Monitor's standard subscriber fields: the one home of which exist and which an
export may write."""

from __future__ import annotations

#: Standard subscriber fields, named as Campaign Monitor's subscriber records carry them, with
#: the column of the client's subscriber frames that holds each.
STANDARD_FIELD_COLUMNS: dict[str, str] = {
    "EmailAddress": "email",
    "Name": "name",
    "MobileNumber": "mobile_number",
    "State": "state",
    "Date": "date",
    "ListJoinedDate": "list_joined_date",
    "ReadsEmailWith": "reads_email_with",
    "ConsentToTrack": "consent_to_track",
}
STANDARD_FIELDS: tuple[str, ...] = tuple(STANDARD_FIELD_COLUMNS)
#: Standard fields read back as timestamps (Campaign Monitor writes them ``YYYY-MM-DD HH:MM:SS``).
TIMESTAMP_FIELDS: tuple[str, ...] = ("Date", "ListJoinedDate")
#: Standard fields an export can write (``EmailAddress`` comes from ``match_property``).
WRITABLE_STANDARD_FIELDS: tuple[str, ...] = ("Name", "MobileNumber")
#: Subscriber states, as the API names them.
STATES: tuple[str, ...] = ("Active", "Unconfirmed", "Unsubscribed", "Bounced", "Deleted")
