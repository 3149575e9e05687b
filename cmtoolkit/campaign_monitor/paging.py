"""Transparent paging over Campaign Monitor's paged envelopes, as records or polars frames.

The list endpoints return at most 1000 records per page in ``{Results, PageNumber,
NumberOfPages, TotalNumberOfRecords, ...}``. Pages are fetched lazily, one at a time, so a caller
streaming a million subscribers holds one page at once. The frame path decodes a page with
polars' native JSON reader straight into columns (no Python object per record), falling back to
orjson when the payload has an unexpected shape; it feeds the bulk import engine.
"""

from __future__ import annotations

import io
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any, TypeVar

import orjson
import polars as pl

from .fields import STATES
from .records import Subscriber

__all__ = [
    "FRAME_SCHEMA",
    "PageInfo",
    "SubscriberPage",
    "empty_frame",
    "iterate_pages",
    "parse_frame_page",
    "subscriber_query",
]

ORDER_FIELDS = ("email", "name", "date")
ORDER_DIRECTIONS = ("asc", "desc")
TIMESTAMP_FORMAT = "%Y-%m-%d %H:%M:%S"

_CUSTOM_FIELDS = pl.List(pl.Struct({"key": pl.Utf8(), "value": pl.Utf8()}))
FRAME_SCHEMA = pl.Schema(
    {
        "email": pl.Utf8(),
        "name": pl.Utf8(),
        "date": pl.Datetime("us"),
        "list_joined_date": pl.Datetime("us"),
        "state": pl.Utf8(),
        "consent_to_track": pl.Utf8(),
        "mobile_number": pl.Utf8(),
        "reads_email_with": pl.Utf8(),
        "custom_fields": _CUSTOM_FIELDS,
    }
)
_WIRE_RECORD: dict[str, pl.DataType] = {
    "EmailAddress": pl.Utf8(),
    "Name": pl.Utf8(),
    "Date": pl.Utf8(),
    "ListJoinedDate": pl.Utf8(),
    "State": pl.Utf8(),
    "ConsentToTrack": pl.Utf8(),
    "MobileNumber": pl.Utf8(),
    "ReadsEmailWith": pl.Utf8(),
    "CustomFields": pl.List(pl.Struct({"Key": pl.Utf8(), "Value": pl.Utf8()})),
}
_WIRE_PAGE: dict[str, pl.DataType] = {
    "Results": pl.List(pl.Struct(_WIRE_RECORD)),
    "PageNumber": pl.Int64(),
    "NumberOfPages": pl.Int64(),
    "TotalNumberOfRecords": pl.Int64(),
}

T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class PageInfo:
    number: int
    page_count: int
    total: int
    size: int

    @classmethod
    def from_envelope(cls, body: dict[str, Any], requested: int) -> PageInfo:
        results = body.get("Results") or ()
        return cls(
            number=int(body.get("PageNumber") or requested),
            page_count=int(body.get("NumberOfPages") or 0),
            total=int(body.get("TotalNumberOfRecords") or 0),
            size=len(results),
        )


@dataclass(frozen=True, slots=True)
class SubscriberPage:
    """One page of subscribers: ``number`` is 1-based, ``page_count`` and ``total`` are as the
    server reported them when this page was read."""

    number: int
    page_count: int
    total: int
    records: tuple[Subscriber, ...]


def format_since(since: date | datetime | str | None) -> str:
    """The ``date`` filter: ``YYYY-MM-DD HH:MM:SS`` (as the .NET wrapper), a day, or empty."""
    if since is None:
        return ""
    if isinstance(since, datetime):
        return since.strftime(TIMESTAMP_FORMAT)
    if isinstance(since, date):
        return since.isoformat()
    return since


def check_order(order_field: str, order_direction: str, page_size: int) -> None:
    if order_field not in ORDER_FIELDS:
        raise ValueError(f"order_field must be one of {ORDER_FIELDS}, not {order_field!r}")
    if order_direction not in ORDER_DIRECTIONS:
        raise ValueError(f"order_direction must be asc or desc, not {order_direction!r}")
    if not 10 <= page_size <= 1000:
        raise ValueError(
            f"page_size must be between 10 and 1000 (the API's range), not {page_size}"
        )


def state_segment(state: str) -> str:
    """``Active`` → ``active`` (the path segment), accepting any case."""
    for known in STATES:
        if known.lower() == state.lower():
            return known.lower()
    raise ValueError(f"state must be one of {STATES}, not {state!r}")


def subscriber_query(
    page: int,
    *,
    since: date | datetime | str | None,
    page_size: int,
    order_field: str,
    order_direction: str,
    include_tracking_preference: bool,
) -> list[tuple[str, str]]:
    """The query string in the official wrappers' order (``includetrackingpreference=True``)."""
    return [
        ("date", format_since(since)),
        ("page", str(page)),
        ("pagesize", str(page_size)),
        ("orderfield", order_field),
        ("orderdirection", order_direction),
        ("includetrackingpreference", str(bool(include_tracking_preference))),
    ]


def iterate_pages(fetch: Callable[[int], tuple[PageInfo, T]], start: int = 1) -> Iterator[T]:
    """Yield page after page from ``start`` until ``NumberOfPages`` is reached (or a page comes
    back empty)."""
    page = start
    while True:
        info, payload = fetch(page)
        yield payload
        if info.size == 0 or page >= info.page_count:
            return
        page += 1


def empty_frame() -> pl.DataFrame:
    return pl.DataFrame(schema=FRAME_SCHEMA)


def _to_frame(wire: pl.DataFrame) -> pl.DataFrame:
    """Rename wire columns, parse timestamps, and make custom fields ``List(Struct{key,value})``."""

    def ts(col: str) -> pl.Expr:
        return pl.col(col).str.to_datetime(TIMESTAMP_FORMAT, time_unit="us", strict=False)

    return wire.select(
        pl.col("EmailAddress").alias("email"),
        pl.col("Name").alias("name"),
        ts("Date").alias("date"),
        ts("ListJoinedDate").alias("list_joined_date"),
        pl.col("State").alias("state"),
        pl.col("ConsentToTrack").alias("consent_to_track"),
        pl.col("MobileNumber").alias("mobile_number"),
        pl.col("ReadsEmailWith").alias("reads_email_with"),
        pl.col("CustomFields")
        .fill_null(pl.lit([], dtype=_WIRE_RECORD["CustomFields"]))
        .list.eval(pl.element().struct.rename_fields(["key", "value"]))
        .cast(_CUSTOM_FIELDS)
        .alias("custom_fields"),
    )


def parse_frame_page(content: bytes) -> tuple[PageInfo, pl.DataFrame]:
    """Decode one paged envelope into its PageInfo and a frame of :data:`FRAME_SCHEMA`.

    Raises (and the transport turns that into a retriable TransportError) when the body is not
    valid JSON, e.g. cut mid-way.
    """
    try:
        page = pl.read_json(io.BytesIO(content), schema=_WIRE_PAGE)
    except pl.exceptions.PolarsError:
        return _parse_frame_page_slow(content)
    # Only the envelope's scalars: row() over "Results" would build 1000 Python dicts.
    meta = page.drop("Results").row(0, named=True)
    wire = page.select(pl.col("Results").explode()).unnest("Results").drop_nulls("EmailAddress")
    info = PageInfo(
        number=int(meta["PageNumber"] or 0),
        page_count=int(meta["NumberOfPages"] or 0),
        total=int(meta["TotalNumberOfRecords"] or 0),
        size=wire.height,
    )
    return info, _to_frame(wire)


def _parse_frame_page_slow(content: bytes) -> tuple[PageInfo, pl.DataFrame]:
    """orjson fallback for payloads polars' reader refuses (odd value types)."""
    body = orjson.loads(content)
    if not isinstance(body, dict):
        raise ValueError("a paged envelope must be a JSON object")
    results = body.get("Results") or []
    for r in results:
        r["CustomFields"] = [
            {"Key": str(c.get("Key", "")), "Value": str(c.get("Value", ""))}
            for c in r.get("CustomFields") or ()
        ]
    info = PageInfo.from_envelope(body, int(body.get("PageNumber") or 1))
    if not results:
        return info, empty_frame()
    wire = pl.from_dicts(results, schema=_WIRE_RECORD, strict=False)
    return info, _to_frame(wire)
