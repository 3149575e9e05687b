"""Paged reads: the paging query parameters, the page envelope, and the rendered-page cache.

Sequential paging (what every sync does) finds its next page already rendered when the server
pre-renders it right after answering, which overlaps the emulator's rendering with the client's
parsing when they run in different processes. With a byte budget that holds a whole list, a
re-read costs the emulator nothing but the sending, as a remote server's work costs the reader
nothing. Cached pages die with any write (``generation``).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import orjson

from cmtoolkit.emulator.api.request import Ctx, Result, as_bool, parse_date
from cmtoolkit.emulator.api_error import ApiError
from cmtoolkit.emulator.mailing_list import MailingList
from cmtoolkit.emulator.segment import Segment

PageKey = tuple[Any, ...]


def page_and_size(ctx: Ctx, low: int = 10) -> tuple[int, int]:
    """The ``page`` and ``pagesize`` parameters, refused as the API refuses them (800, 801)."""
    try:
        page = int(ctx.q("page") or "1")
    except ValueError:
        page = 0
    if page < 1:
        raise ApiError(400, 800, "Invalid page number")
    try:
        size = int(ctx.q("pagesize") or "1000")
    except ValueError:
        size = 0
    if not low <= size <= 1000:
        raise ApiError(400, 801, f"The page size must be between {low} and 1000")
    return page, size


def paging(ctx: Ctx) -> tuple[int, int, str, bool, int | None]:
    """Page number, page size, order field, descending, and the ``date`` filter (or None)."""
    page, size = page_and_size(ctx)
    order_field = (ctx.q("orderfield") or "email").lower()
    if order_field not in ("email", "name", "date"):
        raise ApiError(400, 802, "Invalid order field: must be email, name or date")
    direction = (ctx.q("orderdirection") or "asc").lower()
    if direction not in ("asc", "desc"):
        raise ApiError(400, 803, "Invalid order direction: must be asc or desc")
    date = ctx.q("date")
    since = parse_date(date) if date and date.strip() else None
    return page, size, order_field, direction == "desc", since


def envelope(
    results: Sequence[object], order_field: str, descending: bool, page: int, size: int, total: int
) -> dict[str, Any]:
    return {
        "Results": results,
        "ResultsOrderedBy": order_field,
        "OrderDirection": "desc" if descending else "asc",
        "PageNumber": page,
        "PageSize": size,
        "RecordsOnThisPage": len(results),
        "TotalNumberOfRecords": total,
        "NumberOfPages": math.ceil(total / size),
    }


class PageCache:
    """Rendered subscriber pages by request key (oldest first), valid for one ``generation``.

    The server bumps the generation on every API write; code that changes the account directly
    bypasses it, so without a byte ``budget`` only a pre-rendered page is kept, and only until it
    is served. With a budget, at most that many bytes of pages are kept.
    """

    def __init__(self, budget: int = 0) -> None:
        self.budget = budget
        self.generation = 0
        self._pages: dict[PageKey, tuple[bytes, int]] = {}
        self._pages_generation = 0
        self._pages_bytes = 0

    def __len__(self) -> int:
        return len(self._pages)

    def invalidate(self) -> None:
        """Every page rendered so far is stale (an API write is about to happen)."""
        self.generation += 1

    def page(
        self, ctx: Ctx, lst: MailingList, states: tuple[int, ...], segment: Segment | None = None
    ) -> Result:
        """One page of subscribers; its ``prefetch`` pre-renders the next page once it is sent."""
        page, size, order_field, descending, since = paging(ctx)
        tracking = as_bool(
            ctx.q("includetrackingpreference") or ctx.q("includetrackinginformation") or ""
        )
        seg_key = None if segment is None else (segment.segment_id, repr(segment.rule_groups))
        base = (lst.list_id, states, order_field, descending, since, size, tracking, seg_key)
        key = (self.generation, *base, page)
        # Without a budget only a pre-rendered page is kept, and only until it is served.
        raw = self._pages.get(key) if self.budget else self._pages.pop(key, None)
        if raw is None:
            raw = _render(
                lst, states, segment, page, size, order_field, descending, since, tracking
            )
            if self.budget:
                self._keep(key, raw)
        body, pages = raw
        generation = self.generation

        def prefetch() -> None:
            key = (generation, *base, page + 1)
            if generation != self.generation or page >= pages or key in self._pages:
                return
            self._keep(
                key,
                _render(
                    lst, states, segment, page + 1, size, order_field, descending, since, tracking
                ),
            )

        return Result(200, raw=body, prefetch=prefetch)

    def _keep(self, key: PageKey, raw: tuple[bytes, int]) -> None:
        """Cache a rendered page, dropping the oldest ones past the byte budget."""
        if self._pages_generation != self.generation:
            self._pages.clear()
            self._pages_generation, self._pages_bytes = self.generation, 0
        self._pages[key] = raw
        self._pages_bytes += len(raw[0])
        while self._pages_bytes > self.budget and len(self._pages) > 1:
            oldest = next(iter(self._pages))
            self._pages_bytes -= len(self._pages.pop(oldest)[0])


def _render(
    lst: MailingList,
    states: tuple[int, ...],
    segment: Segment | None,
    page: int,
    size: int,
    order_field: str,
    descending: bool,
    since: int | None,
    tracking: bool,
) -> tuple[bytes, int]:
    """A page's serialised body and the number of pages of its selection."""
    if segment is None:
        selected = lst.select(states, order_field, descending, since)
    else:
        selected = lst.select(
            states,
            order_field,
            descending,
            since,
            rows=lambda: segment.members(lst),
            cache_key=("segment", segment.segment_id, repr(segment.rule_groups)),
        )
    total = len(selected)
    rows = selected[(page - 1) * size : page * size].tolist()
    results = lst.records(rows, tracking=tracking, reads_with=segment is None)
    out = envelope(results, order_field, descending, page, size, total)
    return orjson.dumps(out), out["NumberOfPages"]
