"""The Campaign Monitor API v3.3 client the sync engines, widgets and CLI use.

One object per credential: it owns a pooled session, refreshes an expired OAuth token once per
call (handing the new tokens to ``on_tokens_refreshed`` so they are saved), pages transparently and
chunks bulk imports. Only the transport talks HTTP; this module knows endpoints and payloads.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from datetime import date, datetime
from itertools import islice
from types import TracebackType
from typing import Any
from urllib.parse import quote

import polars as pl
import requests

from cmtoolkit.errors import BadRequest

from .auth import ApiKeyAuth, OAuthAuth, OAuthTokens, refresh_form, request_tokens
from .paging import (
    PageInfo,
    SubscriberPage,
    check_order,
    iterate_pages,
    parse_frame_page,
    state_segment,
    subscriber_query,
)
from .records import (
    ClientDetails,
    ClientSummary,
    CustomField,
    ImportResult,
    ListDetails,
    ListMembership,
    ListStats,
    ListSummary,
    Segment,
    Subscriber,
    SuppressedEmail,
)
from .retry import RetryPolicy
from .transport import Transport, decode_json

__all__ = ["MAX_IMPORT_BATCH", "CampaignMonitor"]

log = logging.getLogger("cmtoolkit.campaign_monitor")

MAX_IMPORT_BATCH = 1000
CONSENT_VALUES = ("Yes", "No", "Unchanged")
PARTIAL_IMPORT_CODE = 210

CustomFieldsArg = Mapping[str, str | Sequence[str]] | Iterable[tuple[str, str] | Mapping[str, Any]]


def _consent(value: str) -> str:
    for known in CONSENT_VALUES:
        if known.lower() == str(value).lower():
            return known
    raise ValueError(f"consent_to_track must be one of {CONSENT_VALUES}, not {value!r}")


def _custom_fields_wire(fields: CustomFieldsArg) -> list[dict[str, Any]]:
    """``{"Key","Value"}`` items; a sequence value repeats the key (MultiSelectMany)."""
    out: list[dict[str, Any]] = []
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


class CampaignMonitor:
    """A Campaign Monitor API v3.3 client.

    ``base_url`` defaults to ``CMTOOLKIT_API_URL``, then the real API. ``sleep``/``clock`` are
    injectable so retry tests never wait. Use as a context manager (or call :meth:`close`) to
    release pooled connections.
    """

    def __init__(
        self,
        auth: ApiKeyAuth | OAuthAuth,
        *,
        base_url: str | None = None,
        timeout: float | tuple[float, float] = (5.0, 60.0),
        retry: RetryPolicy | None = None,
        session: requests.Session | None = None,
        on_tokens_refreshed: Callable[[OAuthTokens], None] | None = None,
        sleep: Callable[[float], None] = time.sleep,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._transport = Transport(
            base_url,
            timeout=timeout,
            retry=retry or RetryPolicy(),
            session=session,
            sleep=sleep,
            clock=clock,
            auth=auth,
        )
        self._on_tokens_refreshed = on_tokens_refreshed
        self._auth = auth
        if isinstance(auth, OAuthAuth) and auth.refresh_token:
            self._transport.on_token_expired = self._refresh

    # --- plumbing ---------------------------------------------------------------------------

    @property
    def base_url(self) -> str:
        return self._transport.base_url

    @property
    def auth(self) -> ApiKeyAuth | OAuthAuth:
        """The current credential (a refresh replaces it)."""
        return self._auth

    def __repr__(self) -> str:
        return f"CampaignMonitor(base_url={self.base_url!r}, auth={type(self._auth).__name__})"

    def close(self) -> None:
        self._transport.close()

    def __enter__(self) -> CampaignMonitor:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def _refresh(self) -> None:
        """Code 121: renew the access token, adopt it, and let the owner persist it."""
        auth = self._auth
        if not isinstance(auth, OAuthAuth) or not auth.refresh_token:
            return
        tokens = request_tokens(self._transport, refresh_form(auth.refresh_token))
        if not tokens.refresh_token:  # the grant kept the old refresh token
            tokens = OAuthTokens(
                tokens.access_token, auth.refresh_token, tokens.expires_in, tokens.expires_at
            )
        self._auth = OAuthAuth.from_tokens(tokens)
        self._transport.auth = self._auth
        log.info("Campaign Monitor access token expired and was refreshed")
        if self._on_tokens_refreshed is not None:
            self._on_tokens_refreshed(tokens)

    def _get(self, path: str, params: Any = None) -> Any:
        return self._transport.request("GET", path, params=params)

    # --- reads ------------------------------------------------------------------------------

    def clients(self) -> list[ClientSummary]:
        return [ClientSummary.from_wire(d) for d in self._get("/clients.json")]

    def client_details(self, client_id: str) -> ClientDetails:
        return ClientDetails.from_wire(self._get(f"/clients/{client_id}.json"))

    def lists(self, client_id: str) -> list[ListSummary]:
        return [ListSummary.from_wire(d) for d in self._get(f"/clients/{client_id}/lists.json")]

    def list_details(self, list_id: str) -> ListDetails:
        return ListDetails.from_wire(self._get(f"/lists/{list_id}.json"))

    def list_stats(self, list_id: str) -> ListStats:
        return ListStats.from_wire(self._get(f"/lists/{list_id}/stats.json"))

    def custom_fields(self, list_id: str) -> list[CustomField]:
        return [CustomField.from_wire(d) for d in self._get(f"/lists/{list_id}/customfields.json")]

    def segments(self, client_id: str) -> list[Segment]:
        return [Segment.from_wire(d) for d in self._get(f"/clients/{client_id}/segments.json")]

    def list_segments(self, list_id: str) -> list[Segment]:
        return [Segment.from_wire(d) for d in self._get(f"/lists/{list_id}/segments.json")]

    def subscriber(
        self, list_id: str, email: str, *, include_tracking_preference: bool = True
    ) -> Subscriber:
        params = [("email", email), ("includetrackingpreference", str(include_tracking_preference))]
        return Subscriber.from_wire(self._get(f"/subscribers/{list_id}.json", params))

    def lists_for_email(self, client_id: str, email: str) -> list[ListMembership]:
        body = self._get(f"/clients/{client_id}/listsforemail.json", [("email", email)])
        return [ListMembership.from_wire(d) for d in body]

    # --- paged reads ------------------------------------------------------------------------

    def _subscriber_fetch(
        self,
        list_id: str,
        state: str,
        decode: Callable[[bytes], Any],
        *,
        since: date | datetime | str | None,
        order_field: str,
        order_direction: str,
        page_size: int,
        include_tracking_preference: bool,
    ) -> Callable[[int], Any]:
        check_order(order_field, order_direction, page_size)
        path = f"/lists/{list_id}/{state_segment(state)}.json"

        def fetch(page: int) -> Any:
            params = subscriber_query(
                page,
                since=since,
                page_size=page_size,
                order_field=order_field,
                order_direction=order_direction,
                include_tracking_preference=include_tracking_preference,
            )
            return self._transport.request("GET", path, params=params, decode=decode)

        return fetch

    def subscriber_pages(
        self,
        list_id: str,
        state: str = "Active",
        *,
        since: date | datetime | str | None = None,
        order_field: str = "email",
        order_direction: str = "asc",
        page_size: int = 1000,
        include_tracking_preference: bool = True,
    ) -> Iterator[SubscriberPage]:
        """Every subscriber of ``list_id`` in ``state``, one page at a time (lazily)."""
        fetch = self._subscriber_fetch(
            list_id,
            state,
            decode_json,
            since=since,
            order_field=order_field,
            order_direction=order_direction,
            page_size=page_size,
            include_tracking_preference=include_tracking_preference,
        )

        def typed(page: int) -> tuple[PageInfo, SubscriberPage]:
            body = fetch(page)
            info = PageInfo.from_envelope(body, page)
            records = tuple(Subscriber.from_wire(d) for d in body.get("Results") or ())
            return info, SubscriberPage(info.number, info.page_count, info.total, records)

        return iterate_pages(typed)

    def subscribers(
        self,
        list_id: str,
        state: str = "Active",
        *,
        since: date | datetime | str | None = None,
        order_field: str = "email",
        order_direction: str = "asc",
        page_size: int = 1000,
        include_tracking_preference: bool = True,
    ) -> Iterator[Subscriber]:
        """Every subscriber of ``list_id`` in ``state`` as records, fetched page by page."""
        for page in self.subscriber_pages(
            list_id,
            state,
            since=since,
            order_field=order_field,
            order_direction=order_direction,
            page_size=page_size,
            include_tracking_preference=include_tracking_preference,
        ):
            yield from page.records

    def subscriber_frames(
        self,
        list_id: str,
        state: str = "Active",
        *,
        since: date | datetime | str | None = None,
        order_field: str = "email",
        order_direction: str = "asc",
        page_size: int = 1000,
        include_tracking_preference: bool = True,
    ) -> Iterator[pl.DataFrame]:
        """One polars DataFrame per page (schema :data:`~.paging.FRAME_SCHEMA`), for bulk sync."""
        fetch = self._subscriber_fetch(
            list_id,
            state,
            parse_frame_page,
            since=since,
            order_field=order_field,
            order_direction=order_direction,
            page_size=page_size,
            include_tracking_preference=include_tracking_preference,
        )
        return iterate_pages(fetch)

    def suppression_list(
        self,
        client_id: str,
        *,
        order_field: str = "email",
        order_direction: str = "asc",
        page_size: int = 1000,
    ) -> Iterator[SuppressedEmail]:
        """The client's suppression list, fetched page by page."""
        check_order(order_field, order_direction, page_size)
        path = f"/clients/{client_id}/suppressionlist.json"

        def fetch(page: int) -> tuple[PageInfo, list[SuppressedEmail]]:
            params = [
                ("page", str(page)),
                ("pagesize", str(page_size)),
                ("orderfield", order_field),
                ("orderdirection", order_direction),
            ]
            body = self._get(path, params)
            records = [SuppressedEmail.from_wire(d) for d in body.get("Results") or ()]
            return PageInfo.from_envelope(body, page), records

        for records in iterate_pages(fetch):
            yield from records

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
        body: dict[str, Any] = {"EmailAddress": email, "Name": name or ""}
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
        body: dict[str, Any] = {"EmailAddress": new_email or email}
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
        rows: Sequence[Mapping[str, Any]],
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
        rows: Iterable[Mapping[str, Any]],
        *,
        resubscribe: bool = False,
        queue_subscription_based_autoresponders: bool = False,
        restart_subscription_based_autoresponders: bool = False,
        chunk_size: int = MAX_IMPORT_BATCH,
        on_batch: Callable[[Sequence[Mapping[str, Any]], ImportResult], None] | None = None,
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
