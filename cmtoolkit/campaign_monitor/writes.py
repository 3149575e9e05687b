"""The Campaign Monitor calls that change an account: subscribers, bulk imports, lists, fields.

A mixin of :class:`~cmtoolkit.campaign_monitor.CampaignMonitor` (which adds the reads): only the
transport it holds talks HTTP. Upserts and unsubscribes are retried (a repeat changes nothing);
creating a list or a field is not, once sent.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from itertools import islice
from urllib.parse import quote

import orjson

from cmtoolkit.errors import BadRequest

from .records import ImportResult
from .transport import Transport

__all__ = ["MAX_IMPORT_BATCH", "CustomFieldsArg", "ImportRow", "Row", "Writes"]

MAX_IMPORT_BATCH = 1000
CONSENT_VALUES = ("Yes", "No", "Unchanged")
PARTIAL_IMPORT_CODE = 210

#: A wire-shaped import row (``EmailAddress``, ``Name``, ``CustomFields``, ...).
Row = Mapping[str, object]
#: An import row as a mapping, or as its JSON already (sent as is: an export's plan holds each
#: row's payload, and parsing it only to serialise it again cost more than the request).
ImportRow = Row | orjson.Fragment
#: Custom field values: ``{name: value or values}``, ``(name, value)`` pairs or wire items.
CustomFieldsArg = Mapping[str, str | Sequence[str]] | Iterable[tuple[str, str] | Row]


def _consent(value: str) -> str:
    for known in CONSENT_VALUES:
        if known.lower() == str(value).lower():
            return known
    raise ValueError(f"consent_to_track must be one of {CONSENT_VALUES}, not {value!r}")


def _custom_fields_wire(fields: CustomFieldsArg) -> list[dict[str, object]]:
    """``{"Key","Value"}`` items; a sequence value repeats the key (MultiSelectMany)."""
    out: list[dict[str, object]] = []
    if isinstance(fields, Mapping):
        for key, value in fields.items():
            values = [value] if isinstance(value, str) else list(value)
            out.extend({"Key": key, "Value": v} for v in values)
        return out
    for item in fields:
        if isinstance(item, Mapping):
            out.append(dict(item))
        else:
            key, value = item
            out.append({"Key": key, "Value": value})
    return out


def _bracketed(key: str) -> str:
    return key if key.startswith("[") and key.endswith("]") else f"[{key}]"


class Writes:
    """Subscriber, import, list and custom field writes over ``self._transport``."""

    _transport: Transport

    # --- subscriber writes ------------------------------------------------------------------

    def add_subscriber(
        self,
        list_id: str,
        email: str,
        *,
        name: str | None = None,
        custom_fields: CustomFieldsArg = (),
        consent_to_track: str = "Unchanged",
        resubscribe: bool = False,
        mobile_number: str | None = None,
        restart_subscription_based_autoresponders: bool = False,
    ) -> str:
        """Add or update (upsert) one subscriber; queued by Campaign Monitor. Returns the email."""
        body: dict[str, object] = {"EmailAddress": email, "Name": name or ""}
        if mobile_number is not None:
            body["MobileNumber"] = mobile_number
        body["CustomFields"] = _custom_fields_wire(custom_fields)
        body["Resubscribe"] = resubscribe
        body["RestartSubscriptionBasedAutoresponders"] = restart_subscription_based_autoresponders
        body["ConsentToTrack"] = _consent(consent_to_track)
        result = self._transport.request(
            "POST", f"/subscribers/{list_id}.json", json=body, idempotent=True
        )
        return result if isinstance(result, str) else email

    def update_subscriber(
        self,
        list_id: str,
        email: str,
        *,
        new_email: str | None = None,
        name: str | None = None,
        custom_fields: CustomFieldsArg = (),
        consent_to_track: str = "Unchanged",
        resubscribe: bool = False,
        mobile_number: str | None = None,
        restart_subscription_based_autoresponders: bool = False,
    ) -> None:
        """Update the subscriber ``email`` (optionally renaming it to ``new_email``)."""
        body: dict[str, object] = {"EmailAddress": new_email or email}
        if name is not None:
            body["Name"] = name
        if mobile_number is not None:
            body["MobileNumber"] = mobile_number
        body["CustomFields"] = _custom_fields_wire(custom_fields)
        body["Resubscribe"] = resubscribe
        body["RestartSubscriptionBasedAutoresponders"] = restart_subscription_based_autoresponders
        body["ConsentToTrack"] = _consent(consent_to_track)
        self._transport.request(
            "PUT", f"/subscribers/{list_id}.json", params=[("email", email)], json=body
        )

    def unsubscribe(self, list_id: str, email: str) -> None:
        """Unsubscribe ``email``; idempotent (a repeat changes nothing), so it is retried."""
        self._transport.request(
            "POST",
            f"/subscribers/{list_id}/unsubscribe.json",
            json={"EmailAddress": email},
            idempotent=True,
        )

    def delete_subscriber(self, list_id: str, email: str) -> None:
        """Move ``email`` to the Deleted state of the list."""
        self._transport.request("DELETE", f"/subscribers/{list_id}.json", params=[("email", email)])

    # --- bulk import ------------------------------------------------------------------------

    def import_batch(
        self,
        list_id: str,
        rows: Sequence[ImportRow],
        *,
        resubscribe: bool = False,
        queue_subscription_based_autoresponders: bool = False,
        restart_subscription_based_autoresponders: bool = False,
    ) -> ImportResult:
        """One import request (≤1000 wire-shaped rows). HTTP 400 code 210 is a partial success:
        the rejected rows are in ``failures``. A 400 without ResultData raises BadRequest."""
        if len(rows) > MAX_IMPORT_BATCH:
            raise ValueError(
                f"an import batch holds at most {MAX_IMPORT_BATCH} rows, got {len(rows)}; "
                "use import_subscribers() to chunk"
            )
        if not rows:
            return ImportResult()
        body = {
            "Subscribers": list(rows),
            "Resubscribe": resubscribe,
            "QueueSubscriptionBasedAutoResponders": queue_subscription_based_autoresponders,
            "RestartSubscriptionBasedAutoresponders": restart_subscription_based_autoresponders,
        }
        try:
            result = self._transport.request(
                "POST", f"/subscribers/{list_id}/import.json", json=body, idempotent=True
            )
        except BadRequest as exc:
            if exc.code != PARTIAL_IMPORT_CODE or not isinstance(exc.result_data, dict):
                raise
            partial = exc.result_data
        else:
            return ImportResult.from_wire(result or {})
        return ImportResult.from_wire(partial)

    def import_subscribers(
        self,
        list_id: str,
        rows: Iterable[Row],
        *,
        resubscribe: bool = False,
        queue_subscription_based_autoresponders: bool = False,
        restart_subscription_based_autoresponders: bool = False,
        chunk_size: int = MAX_IMPORT_BATCH,
        on_batch: Callable[[Sequence[Row], ImportResult], None] | None = None,
    ) -> ImportResult:
        """Import any number of rows in batches of ``chunk_size`` (≤1000), summing the results.

        ``on_batch(rows, result)`` runs as soon as each batch is accepted, so an export can
        record its progress and resume after an interruption. A failing batch raises; batches
        before it stay accepted.
        """
        if not 1 <= chunk_size <= MAX_IMPORT_BATCH:
            raise ValueError(f"chunk_size must be between 1 and {MAX_IMPORT_BATCH}")
        results: list[ImportResult] = []
        iterator = iter(rows)
        while batch := list(islice(iterator, chunk_size)):
            result = self.import_batch(
                list_id,
                batch,
                resubscribe=resubscribe,
                queue_subscription_based_autoresponders=queue_subscription_based_autoresponders,
                restart_subscription_based_autoresponders=restart_subscription_based_autoresponders,
            )
            results.append(result)
            if on_batch is not None:
                on_batch(batch, result)
        return ImportResult.combine(results)

    # --- list and custom field management ---------------------------------------------------

    def create_list(
        self,
        client_id: str,
        title: str,
        *,
        unsubscribe_page: str = "",
        confirmed_opt_in: bool = False,
        confirmation_success_page: str = "",
        unsubscribe_setting: str = "AllClientLists",
    ) -> str:
        """Create a list; returns its ListID. Not retried once sent (it would duplicate)."""
        body = {
            "Title": title,
            "UnsubscribePage": unsubscribe_page,
            "ConfirmedOptIn": confirmed_opt_in,
            "ConfirmationSuccessPage": confirmation_success_page,
            "UnsubscribeSetting": unsubscribe_setting,
        }
        return self._transport.request("POST", f"/lists/{client_id}.json", json=body)

    def create_custom_field(
        self,
        list_id: str,
        field_name: str,
        data_type: str,
        options: Sequence[str] = (),
        visible_in_preference_center: bool = True,
    ) -> str:
        """Create a custom field; returns its bracketed key (e.g. ``[newdatefield]``)."""
        body = {
            "FieldName": field_name,
            "DataType": data_type,
            "Options": list(options),
            "VisibleInPreferenceCenter": visible_in_preference_center,
        }
        return self._transport.request("POST", f"/lists/{list_id}/customfields.json", json=body)

    def update_custom_field_options(
        self, list_id: str, key: str, options: Sequence[str], *, keep_existing: bool = True
    ) -> None:
        """Set a multi-select field's options (``keep_existing`` adds instead of replacing)."""
        path = f"/lists/{list_id}/customfields/{quote(_bracketed(key), safe='')}/options.json"
        body = {"Options": list(options), "KeepExistingOptions": keep_existing}
        self._transport.request("PUT", path, json=body)

    def delete_custom_field(self, list_id: str, key: str) -> None:
        """Delete a custom field, and every subscriber's value of it."""
        path = f"/lists/{list_id}/customfields/{quote(_bracketed(key), safe='')}.json"
        self._transport.request("DELETE", path)
