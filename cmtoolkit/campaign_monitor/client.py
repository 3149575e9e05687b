"""The Campaign Monitor API v3.3 client the sync engines, widgets and CLI use: the reads.

One object per credential: it owns a pooled session, refreshes an expired OAuth token once per
call (handing the new tokens to ``on_tokens_refreshed`` so they are saved) and pages
transparently; the writes come from :class:`~cmtoolkit.campaign_monitor.writes.Writes`. Only the
transport talks HTTP; this module knows endpoints and payloads.

Up to ``max_in_flight`` requests run at once (DESIGN §9): a paged read fetches the pages after
the first ahead of the consumer and yields them in page order; :meth:`subscriber_frames_many`
also starts the next selections' first pages early; :meth:`import_batches` sends import
batches concurrently and yields each acknowledgement as it arrives. With ``max_in_flight=1``
everything is sequential, one request at a time, exactly as before.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import date, datetime
from types import TracebackType
from typing import Any, TypeVar

import polars as pl
import requests

from .auth import ApiKeyAuth, OAuthAuth, OAuthTokens, refresh_form, request_tokens
from .batches import BatchAck, ConcurrentWrites
from .campaigns import CampaignActivity
from .concurrency import DEFAULT_MAX_IN_FLIGHT, Flow
from .paging import (
    PageInfo,
    SubscriberPage,
    check_order,
    iterate_pages,
    parse_frame_page,
    state_segment,
    subscriber_query,
)
from .pipeline import pages_in_order
from .records import (
    ClientDetails,
    ClientSummary,
    CustomField,
    ListDetails,
    ListMembership,
    ListStats,
    ListSummary,
    Segment,
    Subscriber,
    SuppressedEmail,
)
from .retry import RetryPolicy
from .transport import Params, Transport, decode_json
from .writes import MAX_IMPORT_BATCH

__all__ = ["MAX_IMPORT_BATCH", "BatchAck", "CampaignMonitor"]

log = logging.getLogger("cmtoolkit.campaign_monitor")

#: Workers beyond ``max_in_flight``: they decode pages while the others wait on the wire.
DECODING_WORKERS = 2

T = TypeVar("T")


class CampaignMonitor(CampaignActivity, ConcurrentWrites):
    """A Campaign Monitor API v3.3 client.

    ``base_url`` defaults to ``CMTOOLKIT_API_URL``, then the real API. ``sleep``/``clock`` are
    injectable so retry tests never wait. ``max_in_flight`` bounds the requests running at once
    (the connection file's ``campaign_monitor.max_in_flight``). Use as a context manager (or
    call :meth:`close`) to release pooled connections and threads.
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
        max_in_flight: int = DEFAULT_MAX_IN_FLIGHT,
    ) -> None:
        self._transport = Transport(
            base_url,
            timeout=timeout,
            retry=retry or RetryPolicy(),
            session=session,
            sleep=sleep,
            clock=clock,
            auth=auth,
            max_in_flight=max_in_flight,
        )
        self._pool: ThreadPoolExecutor | None = None
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

    @property
    def max_in_flight(self) -> int:
        return self._transport.flow.max_in_flight

    @property
    def flow(self) -> Flow:
        """The gate every request passes (its ``limit`` adapts to 429s)."""
        return self._transport.flow

    def close(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=True, cancel_futures=True)
            self._pool = None
        self._transport.close()

    def _executor(self) -> ThreadPoolExecutor:
        if self._pool is None:
            # The Flow keeps at most max_in_flight on the wire; the extra workers let a page be
            # decoded (10-30 ms against a 100 ms round trip) without leaving a slot idle. With
            # one worker per slot, 4 slots held 3.2 requests on the wire on average.
            self._pool = ThreadPoolExecutor(
                max_workers=self.max_in_flight + DECODING_WORKERS,
                thread_name_prefix="cmtoolkit-cm",
            )
        return self._pool

    def _paged(self, fetch: Callable[[int], tuple[PageInfo, T]]) -> Iterator[T]:
        """Every page of one selection in page order, ``max_in_flight`` at a time."""
        if self.max_in_flight == 1:
            return iterate_pages(fetch)
        pool = self._executor()
        return pages_in_order(pool.submit(fetch, 1), fetch, pool, 2 * self.max_in_flight)

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

    def _get(
        self, path: str, params: Params = None, parse: Callable[[Any], T] = lambda body: body
    ) -> T:
        """GET ``path`` and ``parse`` its JSON inside the transport's decode step, so an answer
        of the wrong shape (not Campaign Monitor's API) is a clear error, not a TypeError."""

        def decode(content: bytes) -> T:
            body = decode_json(content)
            if not isinstance(body, list | dict):
                raise ValueError("expected a JSON object or array")
            return parse(body)

        return self._transport.request("GET", path, params=params, decode=decode)

    # --- reads ------------------------------------------------------------------------------

    def clients(self) -> list[ClientSummary]:
        return self._get("/clients.json", parse=lambda b: [ClientSummary.from_wire(d) for d in b])

    def client_details(self, client_id: str) -> ClientDetails:
        return self._get(f"/clients/{client_id}.json", parse=ClientDetails.from_wire)

    def lists(self, client_id: str) -> list[ListSummary]:
        return self._get(
            f"/clients/{client_id}/lists.json",
            parse=lambda b: [ListSummary.from_wire(d) for d in b],
        )

    def list_details(self, list_id: str) -> ListDetails:
        return self._get(f"/lists/{list_id}.json", parse=ListDetails.from_wire)

    def list_stats(self, list_id: str) -> ListStats:
        return self._get(f"/lists/{list_id}/stats.json", parse=ListStats.from_wire)

    def custom_fields(self, list_id: str) -> list[CustomField]:
        return self._get(
            f"/lists/{list_id}/customfields.json",
            parse=lambda b: [CustomField.from_wire(d) for d in b],
        )

    def segments(self, client_id: str) -> list[Segment]:
        return self._get(
            f"/clients/{client_id}/segments.json", parse=lambda b: [Segment.from_wire(d) for d in b]
        )

    def list_segments(self, list_id: str) -> list[Segment]:
        return self._get(
            f"/lists/{list_id}/segments.json", parse=lambda b: [Segment.from_wire(d) for d in b]
        )

    def subscriber(
        self, list_id: str, email: str, *, include_tracking_preference: bool = True
    ) -> Subscriber:
        params = [("email", email), ("includetrackingpreference", str(include_tracking_preference))]
        return self._get(f"/subscribers/{list_id}.json", params, parse=Subscriber.from_wire)

    def lists_for_email(self, client_id: str, email: str) -> list[ListMembership]:
        return self._get(
            f"/clients/{client_id}/listsforemail.json",
            [("email", email)],
            parse=lambda b: [ListMembership.from_wire(d) for d in b],
        )

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

        return self._paged(typed)

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
        return self._paged(fetch)

    def subscriber_frames_many(
        self,
        selections: Iterable[tuple[str, str] | tuple[str, str, date | datetime | None]],
        *,
        since: date | datetime | str | None = None,
        order_field: str = "email",
        order_direction: str = "asc",
        page_size: int = 1000,
        include_tracking_preference: bool = True,
        totals: Callable[[int, int], None] | None = None,
    ) -> Iterator[tuple[int, pl.DataFrame]]:
        """``(i, frame)`` for every page of each ``(list_id, state)`` selection, in selection
        order then page order (what ``subscriber_frames`` of each in turn would give), with the
        first pages of every selection read at the start, so later selections start at once.

        ``totals(i, records)``, when given, is called in the caller's thread with selection
        ``i``'s ``TotalNumberOfRecords`` as soon as its first page is in (before the next frame
        is yielded): a progress bar knows the whole read's size a few round trips in.

        A selection ``(list_id, state, since)`` has its own ``date`` filter instead of ``since``
        (an import reads only the recent leavers of a list, DESIGN §5.6)."""
        fetches = [
            self._subscriber_fetch(
                list_id,
                state,
                parse_frame_page,
                since=own[0] if own else since,
                order_field=order_field,
                order_direction=order_direction,
                page_size=page_size,
                include_tracking_preference=include_tracking_preference,
            )
            for list_id, state, *own in selections
        ]
        if self.max_in_flight == 1:
            for i, fetch in enumerate(fetches):
                info, frame = fetch(1)
                if totals is not None:
                    totals(i, info.total)
                yield i, frame
                if info.size and info.page_count > 1:
                    yield from ((i, f) for f in iterate_pages(fetch, start=2))
            return
        pool = self._executor()
        # A few frames of 1000 rows each: cheap to hold, and every selection's count is known
        # after a round trip or two instead of when the reader reaches it.
        firsts = {i: pool.submit(fetch, 1) for i, fetch in enumerate(fetches)}
        unreported = dict(firsts) if totals is not None else {}

        def report() -> None:
            for j, future in list(unreported.items()):
                if future.done() and not future.exception():
                    del unreported[j]
                    assert totals is not None
                    totals(j, future.result()[0].total)

        try:
            for i, fetch in enumerate(fetches):
                first = firsts.pop(i)
                for frame in pages_in_order(first, fetch, pool, 2 * self.max_in_flight):
                    report()
                    yield i, frame
        finally:
            for future in firsts.values():
                future.cancel()

    def _pool_or_none(self) -> ThreadPoolExecutor | None:
        """The worker threads, or None to call in this thread (``max_in_flight`` 1)."""
        return None if self.max_in_flight == 1 else self._executor()

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
            body: Any = self._get(path, params)
            records = [SuppressedEmail.from_wire(d) for d in body.get("Results") or ()]
            return PageInfo.from_envelope(body, page), records

        for records in self._paged(fetch):
            yield from records
