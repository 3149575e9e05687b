"""The Campaign Monitor API v3.3 resources, as pure request → response functions.

Choices where the real API is unconfirmed (``reference/campaign-monitor-api.md`` §8), applied
consistently:

* Unknown ListID → HTTP 401 code 101 "Invalid ListID" (by analogy with 102 Invalid ClientID).
  Unknown SegmentID → 400 code 271. Unknown path → 404 with an empty body.
* ``GET /subscribers/{listid}.json?email=`` for an address not in the list → 400 code 203
  "Subscriber not in list". Deleted subscribers are still found (State "Deleted").
* Creates (list, custom field, segment, webhook, subscriber add) answer **201** with the bare JSON
  string; updates, unsubscribe and delete answer 200 with an empty body.
* Paging: an empty selection has ``NumberOfPages: 0``; a page past the end is an empty page.
  An unparseable ``date`` filter → 400 code 800 ("Invalid date"); booleans other than
  true/false (any case) count as false. Query parameter names match case-insensitively.
* Single add without ``Resubscribe`` of an Unsubscribed/Bounced/Deleted/suppressed address →
  400 code 206/207/205/204 and nothing changes. Add and update require ``ConsentToTrack``
  (214 missing, 215 invalid); in an import it is optional per item.
* Import with ``Resubscribe: false``: existing Unsubscribed (206), Bounced (207), Deleted (205)
  subscribers keep their state but *do* get their name and custom fields updated; addresses on the
  client's suppression list (204) are not added or changed at all. Each is listed in
  ``FailureDetails``, and any failure makes the answer HTTP 400 code 210 with ``ResultData``.
  With ``Resubscribe: true`` they become Active (the address leaves the suppression list).
  Imported subscribers are Active even on confirmed-opt-in lists, and existing Unconfirmed ones
  become Active (an import counts as confirmed). Duplicates in one batch (case-insensitive) are
  applied in order (last value wins) and listed once in ``DuplicateEmailsInSubmission``.
* Custom-field write keys: FieldName, bare tag or ``[tag]``, case-insensitive; unknown keys are
  ignored silently (as users report). Invalid values are ignored (the field keeps its value):
  > 250 characters, non-numeric Number, unparseable or out-of-range Date (1900-01-01 …
  2076-06-06; ``YYYY-MM-DD`` or ``YYYY/MM/DD``), options not in ``FieldOptions``. An empty Value
  without ``Clear`` is ignored. MultiSelectMany values sent in one request replace the stored
  ones; ``Clear: true`` clears the field, or with a Value removes just that option.
* Changing a field's options drops stored values that are no longer options.
* Unsubscribe on a list with ``UnsubscribeSetting: AllClientLists`` unsubscribes the address from
  every list of the client (seeded lists use ``OnlyThisList``); ``AddUnsubscribesToSuppList`` adds
  it to the suppression list.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from urllib.parse import unquote

import numpy as np
import orjson

from cmtoolkit.emulator.account import (
    ACTIVE,
    BOUNCED,
    DATA_TYPES,
    DELETED,
    MULTI,
    STATE_CODE,
    STATES,
    UNCONFIRMED,
    UNSUBSCRIBED,
    Account,
    Client,
    CustomField,
    MailingList,
    Segment,
    field_key,
    format_ts,
    valid_email,
)
from cmtoolkit.emulator.auth import ApiError, Identity
from cmtoolkit.emulator.seeding import make_id

NOT_ADDED = {
    UNSUBSCRIBED: (206, "Subscriber is unsubscribed. Subscriber not added."),
    BOUNCED: (207, "Subscriber is bounced. Subscriber not added."),
    DELETED: (205, "Subscriber is deleted. Subscriber not added."),
}
IN_SUPPRESSION = (204, "Subscriber is in the suppression list. Subscriber not added.")
MAX_IMPORT = 1000


@dataclass
class Ctx:
    method: str
    path: str
    query: dict[str, str]
    raw_body: bytes
    identity: Identity
    now: int

    def json(self) -> Any:
        if not self.raw_body:
            raise ApiError(400, 400, "Failed to deserialize your request body")
        try:
            return orjson.loads(self.raw_body)
        except orjson.JSONDecodeError:
            raise ApiError(400, 400, "Failed to deserialize your request body") from None

    def obj(self) -> dict[str, Any]:
        """The JSON object body with lower-cased keys (the server binds keys case-insensitively)."""
        body = self.json()
        if not isinstance(body, dict):
            raise ApiError(400, 400, "Failed to deserialize your request body")
        return lower_keys(body)

    def q(self, name: str, default: str | None = None) -> str | None:
        return self.query.get(name, default)


@dataclass
class Result:
    status: int
    body: Any = None  # None → empty body
    raw: bytes | None = None  # an already-serialised body
    prefetch: Callable[[], None] | None = None  # work to do after the answer is sent


def lower_keys(d: dict[str, Any]) -> dict[str, Any]:
    return {str(k).lower(): v for k, v in d.items()}


def as_bool(value: Any) -> bool:
    if isinstance(value, bool):
        return value
    return isinstance(value, str) and value.strip().lower() == "true"


def parse_date(text: str) -> int:
    text = text.strip()
    for fmt in ("%Y-%m-%d %H:%M:%S", "%Y-%m-%d %H:%M", "%Y-%m-%d", "%Y/%m/%d"):
        try:
            d = datetime.strptime(text, fmt)
        except ValueError:
            continue
        return int((d - datetime(1970, 1, 1)).total_seconds())
    raise ApiError(400, 800, "Invalid date")


class Api:
    """Routes ``/api/v3.3`` requests to the account; the caller holds the emulator lock."""

    def __init__(self, account: Account, seed: int = 0, page_cache_bytes: int = 0) -> None:
        self.account = account
        self.seed = seed
        self._counter = 0
        # Rendered pages by request key (oldest first), valid for one ``generation`` (bumped by
        # every API write; code that changes ``account`` directly bypasses it, so by default
        # only the prefetched page is kept). At most ``page_cache_bytes`` are kept.
        self.generation = 0
        self.page_cache_bytes = page_cache_bytes
        self._pages: dict[tuple[Any, ...], tuple[bytes, int]] = {}
        self._pages_generation = 0
        self._pages_bytes = 0
        R = re.compile
        self.routes: list[tuple[str, re.Pattern[str], Callable[..., Result]]] = [
            ("GET", R(r"/clients"), self.clients),
            ("GET", R(r"/systemdate"), self.systemdate),
            ("GET", R(r"/clients/(\w+)"), self.client_details),
            ("GET", R(r"/clients/(\w+)/lists"), self.client_lists),
            ("GET", R(r"/clients/(\w+)/segments"), self.client_segments),
            ("GET", R(r"/clients/(\w+)/listsforemail"), self.lists_for_email),
            ("GET", R(r"/clients/(\w+)/suppressionlist"), self.suppression_list),
            ("POST", R(r"/clients/(\w+)/suppress"), self.suppress),
            ("PUT", R(r"/clients/(\w+)/unsuppress"), self.unsuppress),
            ("POST", R(r"/lists/(\w+)"), self.create_list),
            ("GET", R(r"/lists/(\w+)"), self.list_details),
            ("PUT", R(r"/lists/(\w+)"), self.update_list),
            ("DELETE", R(r"/lists/(\w+)"), self.delete_list),
            ("GET", R(r"/lists/(\w+)/stats"), self.list_stats),
            ("GET", R(r"/lists/(\w+)/customfields"), self.custom_fields),
            ("POST", R(r"/lists/(\w+)/customfields"), self.create_custom_field),
            ("PUT", R(r"/lists/(\w+)/customfields/([^/]+)/options"), self.update_field_options),
            ("PUT", R(r"/lists/(\w+)/customfields/([^/]+)"), self.update_custom_field),
            ("DELETE", R(r"/lists/(\w+)/customfields/([^/]+)"), self.delete_custom_field),
            ("GET", R(r"/lists/(\w+)/segments"), self.list_segments),
            ("GET", R(r"/lists/(\w+)/webhooks"), self.webhooks),
            ("POST", R(r"/lists/(\w+)/webhooks"), self.create_webhook),
            (
                "GET",
                R(r"/lists/(\w+)/(active|unconfirmed|unsubscribed|bounced|deleted)"),
                self.list_subscribers,
            ),
            ("POST", R(r"/segments/(\w+)"), self.create_segment),
            ("GET", R(r"/segments/(\w+)"), self.segment_details),
            ("GET", R(r"/segments/(\w+)/active"), self.segment_subscribers),
            ("GET", R(r"/subscribers/(\w+)"), self.get_subscriber),
            ("POST", R(r"/subscribers/(\w+)"), self.add_subscriber),
            ("PUT", R(r"/subscribers/(\w+)"), self.update_subscriber),
            ("DELETE", R(r"/subscribers/(\w+)"), self.delete_subscriber),
            ("POST", R(r"/subscribers/(\w+)/unsubscribe"), self.unsubscribe),
            ("POST", R(r"/subscribers/(\w+)/import"), self.import_subscribers),
            ("GET", R(r"/subscribers/(\w+)/history"), self.history),
        ]

    # --- dispatch -------------------------------------------------------------------------------

    def handle(self, ctx: Ctx) -> Result:
        path = ctx.path
        if not path.endswith(".json"):
            return Result(404)
        path = path[: -len(".json")]
        for method, pattern, handler in self.routes:
            m = pattern.fullmatch(path)
            if m and method == ctx.method:
                return handler(ctx, *m.groups())
        return Result(404)

    def new_id(self, kind: str) -> str:
        self._counter += 1
        return make_id(self.seed, "created", kind, self._counter, len(self.account.clients))

    # --- lookups --------------------------------------------------------------------------------

    def _client(self, ctx: Ctx, client_id: str) -> Client:
        c = self.account.client(client_id)
        if c is None or (ctx.identity.client_id and ctx.identity.client_id != client_id):
            raise ApiError(401, 102, "Invalid ClientID")
        return c

    def _list(self, ctx: Ctx, list_id: str) -> tuple[Client, MailingList]:
        found = self.account.find_list(list_id)
        if found is None or (
            ctx.identity.client_id and ctx.identity.client_id != found[0].client_id
        ):
            raise ApiError(401, 101, "Invalid ListID")
        return found

    def _segment(self, ctx: Ctx, segment_id: str) -> tuple[Client, Segment]:
        found = self.account.find_segment(segment_id)
        if found is None or (
            ctx.identity.client_id and ctx.identity.client_id != found[0].client_id
        ):
            raise ApiError(400, 271, "Invalid SegmentID")
        return found

    # --- account and clients --------------------------------------------------------------------

    def clients(self, ctx: Ctx) -> Result:
        return Result(
            200,
            [
                {"ClientID": c.client_id, "Name": c.name}
                for c in self.account.clients
                if not ctx.identity.client_id or ctx.identity.client_id == c.client_id
            ],
        )

    def systemdate(self, ctx: Ctx) -> Result:
        return Result(200, {"SystemDate": format_ts(ctx.now)})

    def client_details(self, ctx: Ctx, client_id: str) -> Result:
        return Result(200, self._client(ctx, client_id).details())

    def client_lists(self, ctx: Ctx, client_id: str) -> Result:
        c = self._client(ctx, client_id)
        return Result(200, [{"ListID": lst.list_id, "Name": lst.title} for lst in c.lists])

    def client_segments(self, ctx: Ctx, client_id: str) -> Result:
        c = self._client(ctx, client_id)
        return Result(200, [_segment_item(s) for s in c.segments])

    def lists_for_email(self, ctx: Ctx, client_id: str) -> Result:
        c = self._client(ctx, client_id)
        email = (ctx.q("email") or "").strip()
        if not valid_email(email):
            raise ApiError(400, 1, "Invalid Email Address")
        out = []
        for lst in c.lists:
            row = lst.row_of(email)
            if row is not None:
                out.append(
                    {
                        "ListID": lst.list_id,
                        "ListName": lst.title,
                        "SubscriberState": STATES[lst.states[row]],
                        "DateSubscriberAdded": format_ts(lst.joined[row]),
                    }
                )
        return Result(200, out)

    def suppression_list(self, ctx: Ctx, client_id: str) -> Result:
        c = self._client(ctx, client_id)
        page, size, order_field, descending, since = paging(ctx)
        keys = c.suppression_order(order_field, descending)
        if since is not None:
            keys = [k for k in keys if c.suppression[k].date >= since]
        total = len(keys)
        chunk = keys[(page - 1) * size : page * size]
        results = [
            {
                "SuppressionReason": (s := c.suppression[k]).reason,
                "EmailAddress": s.email,
                "Date": format_ts(s.date),
                "State": "Suppressed",
            }
            for k in chunk
        ]
        return Result(200, envelope(results, order_field, descending, page, size, total))

    def suppress(self, ctx: Ctx, client_id: str) -> Result:
        c = self._client(ctx, client_id)
        emails = ctx.obj().get("emailaddresses") or []
        if not isinstance(emails, list):
            raise ApiError(400, 1, "Invalid Email Address")
        for e in emails:
            if isinstance(e, str) and valid_email(e.strip()):
                c.suppress(e, "Manually Suppressed", ctx.now)
        return Result(200)

    def unsuppress(self, ctx: Ctx, client_id: str) -> Result:
        c = self._client(ctx, client_id)
        c.unsuppress(ctx.q("email") or "")
        return Result(200)

    # --- lists ----------------------------------------------------------------------------------

    def create_list(self, ctx: Ctx, client_id: str) -> Result:
        c = self._client(ctx, client_id)
        body = ctx.obj()
        title = str(body.get("title") or "").strip()
        if not title:
            raise ApiError(400, 250, "List title must not be empty")
        if any(lst.title == title for lst in c.lists):
            raise ApiError(400, 250, "List title must be unique")
        setting = body.get("unsubscribesetting") or "AllClientLists"
        if setting not in ("AllClientLists", "OnlyThisList"):
            raise ApiError(400, 261, "Invalid UnsubscribeSetting")
        lst = MailingList(
            self.new_id("list"),
            title,
            confirmed_opt_in=as_bool(body.get("confirmedoptin", False)),
            unsubscribe_setting=setting,
        )
        lst.unsubscribe_page = str(body.get("unsubscribepage") or "")
        lst.confirmation_success_page = str(body.get("confirmationsuccesspage") or "")
        c.lists.append(lst)
        return Result(201, lst.list_id)

    def list_details(self, ctx: Ctx, list_id: str) -> Result:
        return Result(200, self._list(ctx, list_id)[1].details())

    def update_list(self, ctx: Ctx, list_id: str) -> Result:
        _, lst = self._list(ctx, list_id)
        body = ctx.obj()
        if "title" in body:
            lst.title = str(body["title"])
        if "unsubscribesetting" in body:
            if body["unsubscribesetting"] not in ("AllClientLists", "OnlyThisList"):
                raise ApiError(400, 261, "Invalid UnsubscribeSetting")
            lst.unsubscribe_setting = body["unsubscribesetting"]
        if "confirmedoptin" in body:
            lst.confirmed_opt_in = as_bool(body["confirmedoptin"])
        if "addunsubscribestosupplist" in body:
            lst.add_unsubscribes_to_supp_list = as_bool(body["addunsubscribestosupplist"])
        for key, attr in (
            ("unsubscribepage", "unsubscribe_page"),
            ("confirmationsuccesspage", "confirmation_success_page"),
        ):
            if key in body:
                setattr(lst, attr, str(body[key] or ""))
        return Result(200)

    def delete_list(self, ctx: Ctx, list_id: str) -> Result:
        c, lst = self._list(ctx, list_id)
        c.lists.remove(lst)
        c.segments = [s for s in c.segments if s.list_id != list_id]
        return Result(200)

    def list_stats(self, ctx: Ctx, list_id: str) -> Result:
        return Result(200, self._list(ctx, list_id)[1].stats(ctx.now))

    def list_segments(self, ctx: Ctx, list_id: str) -> Result:
        c, _ = self._list(ctx, list_id)
        return Result(200, [_segment_item(s) for s in c.segments if s.list_id == list_id])

    def webhooks(self, ctx: Ctx, list_id: str) -> Result:
        return Result(200, self._list(ctx, list_id)[1].webhooks)

    def create_webhook(self, ctx: Ctx, list_id: str) -> Result:
        _, lst = self._list(ctx, list_id)
        body = ctx.obj()
        events = body.get("events") or []
        if not events or any(e not in ("Subscribe", "Deactivate", "Update") for e in events):
            raise ApiError(400, 603, "Invalid event")
        url = str(body.get("url") or "")
        if not url.startswith(("http://", "https://")):
            raise ApiError(400, 601, "Invalid URL")
        fmt = str(body.get("payloadformat") or "json").lower()
        if fmt not in ("json", "xml"):
            raise ApiError(400, 602, "Invalid payload format")
        webhook_id = self.new_id("webhook")[:16]
        lst.webhooks.append(
            {
                "WebhookID": webhook_id,
                "Events": list(events),
                "Url": url,
                "Status": "Active",
                "PayloadFormat": fmt.capitalize(),
            }
        )
        return Result(201, webhook_id)

    # --- custom fields --------------------------------------------------------------------------

    def custom_fields(self, ctx: Ctx, list_id: str) -> Result:
        return Result(200, [f.as_json() for f in self._list(ctx, list_id)[1].fields])

    def create_custom_field(self, ctx: Ctx, list_id: str) -> Result:
        _, lst = self._list(ctx, list_id)
        body = ctx.obj()
        name = str(body.get("fieldname") or "").strip()
        if not name or len(name) > 100 or field_key(name) == "[]":
            raise ApiError(400, 254, "Invalid Field Name")
        data_type = body.get("datatype")
        if data_type not in DATA_TYPES:
            raise ApiError(400, 259, "Invalid Field Type")
        options = body.get("options") or []
        if not isinstance(options, list):
            raise ApiError(400, 257, "Field Options must be a list")
        if data_type in MULTI and not options:
            raise ApiError(400, 257, "A multi-option field must have options")
        if data_type not in MULTI and options:
            raise ApiError(400, 256, "Only multi-option fields can have options")
        key = field_key(name)
        if any(f.name.casefold() == name.casefold() or f.key == key for f in lst.fields):
            raise ApiError(400, 255, "Field Name already exists")
        visible = body.get("visibleinpreferencecenter", True)
        lst.add_field(
            CustomField(name, data_type, _distinct(str(o) for o in options), as_bool(visible))
        )
        return Result(201, key)

    def _field(self, lst: MailingList, raw_key: str) -> CustomField:
        key = unquote(raw_key)
        if not (key.startswith("[") and key.endswith("]")):
            raise ApiError(400, 253, "Invalid Key. Keys must be surrounded with [ ]")
        f = lst.field_by_key(key)
        if f is None:
            raise ApiError(400, 253, "Invalid Key. No custom field has this key")
        return f

    def update_custom_field(self, ctx: Ctx, list_id: str, raw_key: str) -> Result:
        _, lst = self._list(ctx, list_id)
        f = self._field(lst, raw_key)
        body = ctx.obj()
        name = str(body.get("fieldname") or "").strip()
        if not name or field_key(name) == "[]":
            raise ApiError(400, 254, "Invalid Field Name")
        key = field_key(name)
        if any(
            o is not f and (o.name.casefold() == name.casefold() or o.key == key)
            for o in lst.fields
        ):
            raise ApiError(400, 255, "Field Name already exists")
        lst.rename_field(f, name)
        if "visibleinpreferencecenter" in body:
            f.visible = as_bool(body["visibleinpreferencecenter"])
        return Result(200, f.key)

    def update_field_options(self, ctx: Ctx, list_id: str, raw_key: str) -> Result:
        _, lst = self._list(ctx, list_id)
        f = self._field(lst, raw_key)
        if f.data_type not in MULTI:
            raise ApiError(400, 256, "Only multi-option fields can have options")
        body = ctx.obj()
        options = [str(o) for o in body.get("options") or []]
        keep = as_bool(body.get("keepexistingoptions", False))
        new = _distinct([*f.options, *options] if keep else options)
        if not new:
            raise ApiError(400, 257, "A multi-option field must have options")
        f.options = new
        allowed = set(new)
        column = lst.values[f.name]
        for row, v in enumerate(column):
            if v is None:
                continue
            if isinstance(v, tuple):
                kept = tuple(o for o in v if o in allowed)
                if kept != v:
                    column[row] = kept or None
            elif v not in allowed:
                column[row] = None
        return Result(200)

    def delete_custom_field(self, ctx: Ctx, list_id: str, raw_key: str) -> Result:
        _, lst = self._list(ctx, list_id)
        lst.remove_field(self._field(lst, raw_key))
        return Result(200)

    # --- segments -------------------------------------------------------------------------------

    def create_segment(self, ctx: Ctx, list_id: str) -> Result:
        c, _ = self._list(ctx, list_id)
        body = ctx.obj()
        title = str(body.get("title") or "").strip()
        if not title:
            raise ApiError(400, 272, "Invalid Segment Title")
        groups = body.get("rulegroups") or []
        segment = Segment(self.new_id("segment"), list_id, title, groups)
        c.segments.append(segment)
        return Result(201, segment.segment_id)

    def segment_details(self, ctx: Ctx, segment_id: str) -> Result:
        _, s = self._segment(ctx, segment_id)
        found = self.account.find_list(s.list_id)
        assert found is not None
        lst = found[1]
        members = s.members(lst)
        active = int((np.frombuffer(lst.states, dtype=np.int8)[members] == ACTIVE).sum())
        return Result(
            200,
            {
                "ActiveSubscribers": active,
                "RuleGroups": s.rule_groups,
                "ListID": s.list_id,
                "SegmentID": s.segment_id,
                "Title": s.title,
            },
        )

    def segment_subscribers(self, ctx: Ctx, segment_id: str) -> Result:
        _, s = self._segment(ctx, segment_id)
        found = self.account.find_list(s.list_id)
        assert found is not None
        lst = found[1]
        return self._page(ctx, lst, (ACTIVE,), segment=s)

    # --- subscribers ----------------------------------------------------------------------------

    def list_subscribers(self, ctx: Ctx, list_id: str, state: str) -> Result:
        _, lst = self._list(ctx, list_id)
        return self._page(ctx, lst, (STATE_CODE[state.capitalize()],))

    def _page(
        self, ctx: Ctx, lst: MailingList, states: tuple[int, ...], segment: Segment | None = None
    ) -> Result:
        """One page of subscribers, pre-rendering the next page once this one is sent.

        Sequential paging (what every sync does) then finds its next page already rendered,
        which overlaps the emulator's rendering with the client's parsing when they run in
        different processes. With a ``page_cache_bytes`` budget that holds a whole list, a
        re-read costs the emulator nothing but the sending, as a remote server's work costs the
        reader nothing. Cached pages die with any write (``generation``).
        """
        page, size, order_field, descending, since = paging(ctx)
        tracking = as_bool(
            ctx.q("includetrackingpreference") or ctx.q("includetrackinginformation") or ""
        )
        seg_key = None if segment is None else (segment.segment_id, repr(segment.rule_groups))
        base = (lst.list_id, states, order_field, descending, since, size, tracking, seg_key)
        key = (self.generation, *base, page)
        # Without a budget only a pre-rendered page is kept, and only until it is served.
        raw = self._pages.get(key) if self.page_cache_bytes else self._pages.pop(key, None)
        if raw is None:
            raw = self._render(
                lst, states, segment, page, size, order_field, descending, since, tracking
            )
            if self.page_cache_bytes:
                self._keep(key, raw)
        body, pages = raw
        generation = self.generation

        def prefetch() -> None:
            key = (generation, *base, page + 1)
            if generation != self.generation or page >= pages or key in self._pages:
                return
            self._keep(
                key,
                self._render(
                    lst, states, segment, page + 1, size, order_field, descending, since, tracking
                ),
            )

        return Result(200, raw=body, prefetch=prefetch)

    def _keep(self, key: tuple[Any, ...], raw: tuple[bytes, int]) -> None:
        """Cache a rendered page, dropping the oldest ones past the byte budget."""
        if self._pages_generation != self.generation:
            self._pages.clear()
            self._pages_generation, self._pages_bytes = self.generation, 0
        self._pages[key] = raw
        self._pages_bytes += len(raw[0])
        while self._pages_bytes > self.page_cache_bytes and len(self._pages) > 1:
            oldest = next(iter(self._pages))
            self._pages_bytes -= len(self._pages.pop(oldest)[0])

    def _render(
        self,
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

    def _row(self, ctx: Ctx, lst: MailingList) -> int:
        email = (ctx.q("email") or "").strip()
        row = lst.row_of(email) if email else None
        if row is None:
            raise ApiError(400, 203, "Subscriber not in list or has already been removed.")
        return row

    def get_subscriber(self, ctx: Ctx, list_id: str) -> Result:
        _, lst = self._list(ctx, list_id)
        row = self._row(ctx, lst)
        tracking = as_bool(ctx.q("includetrackingpreference") or "")
        return Result(200, lst.records([row], tracking=tracking, details=True)[0])

    def history(self, ctx: Ctx, list_id: str) -> Result:
        _, lst = self._list(ctx, list_id)
        self._row(ctx, lst)
        return Result(200, [])  # the emulator sends no campaigns

    def add_subscriber(self, ctx: Ctx, list_id: str) -> Result:
        c, lst = self._list(ctx, list_id)
        body = ctx.obj()
        email = str(body.get("emailaddress") or "").strip()
        if not valid_email(email):
            raise ApiError(400, 1, "Invalid Email Address")
        consent = _consent(body, required=True)
        mobile = _mobile(body)
        resubscribe = as_bool(body.get("resubscribe", False))
        row = lst.row_of(email)
        suppressed = email.lower() in c.suppression
        if not resubscribe:
            if suppressed:
                raise ApiError(400, *IN_SUPPRESSION)
            if row is not None and lst.states[row] in NOT_ADDED:
                raise ApiError(400, *NOT_ADDED[lst.states[row]])
        if row is None:
            state = UNCONFIRMED if lst.confirmed_opt_in else ACTIVE
            row = lst.append(email, "", state, ctx.now)
        elif lst.states[row] != ACTIVE and lst.states[row] != UNCONFIRMED:
            lst.set_state(row, ACTIVE, ctx.now)
        if suppressed:
            c.unsuppress(email)
        _apply(lst, row, body, consent, mobile)
        return Result(201, lst.emails[row])

    def update_subscriber(self, ctx: Ctx, list_id: str) -> Result:
        _, lst = self._list(ctx, list_id)
        row = self._row(ctx, lst)
        body = ctx.obj()
        new_email = str(body.get("emailaddress") or lst.emails[row]).strip()
        if not valid_email(new_email):
            raise ApiError(400, 211, "Invalid New Email Address")
        other = lst.row_of(new_email)
        if other is not None and other != row:
            raise ApiError(400, 201, "New Email Address is already subscribed to the list")
        consent = _consent(body, required=True)
        mobile = _mobile(body)
        if new_email != lst.emails[row]:
            del lst.index[lst.emails[row].lower()]
            lst.emails[row] = new_email
            lst.index[new_email.lower()] = row
            lst.touch()
        if as_bool(body.get("resubscribe", False)) and lst.states[row] in NOT_ADDED:
            lst.set_state(row, ACTIVE, ctx.now)
        _apply(lst, row, body, consent, mobile)
        return Result(200)

    def unsubscribe(self, ctx: Ctx, list_id: str) -> Result:
        c, lst = self._list(ctx, list_id)
        email = str(ctx.obj().get("emailaddress") or "").strip()
        row = lst.row_of(email) if email else None
        if row is None:
            raise ApiError(400, 203, "Subscriber not in list or has already been removed.")
        targets = c.lists if lst.unsubscribe_setting == "AllClientLists" else [lst]
        for target in targets:
            r = target.row_of(email)
            if r is not None and target.states[r] in (ACTIVE, UNCONFIRMED):
                target.set_state(r, UNSUBSCRIBED, ctx.now)
        if lst.add_unsubscribes_to_supp_list:
            c.suppress(lst.emails[row], "Unsubscribed", ctx.now)
        return Result(200)

    def delete_subscriber(self, ctx: Ctx, list_id: str) -> Result:
        _, lst = self._list(ctx, list_id)
        row = self._row(ctx, lst)
        lst.set_state(row, DELETED, ctx.now)
        return Result(200)

    def import_subscribers(self, ctx: Ctx, list_id: str) -> Result:
        c, lst = self._list(ctx, list_id)
        body = ctx.obj()
        items = body.get("subscribers")
        if not isinstance(items, list) or not items:
            raise ApiError(400, 212, "No subscribers were provided in this batch")
        if len(items) > MAX_IMPORT:
            raise ApiError(
                400,
                209,
                "Too many subscribers in this batch. You can only add 1000 subscribers in one call",
            )
        resubscribe = as_bool(body.get("resubscribe", False))
        failures: list[dict[str, Any]] = []
        seen: dict[str, bool] = {}  # lower email -> already counted as failed
        duplicates: list[str] = []
        duplicate_set: set[str] = set()
        existing = new = 0
        for raw in items:
            item = lower_keys(raw) if isinstance(raw, dict) else {}
            email = str(item.get("emailaddress") or "").strip()
            lower = email.lower()
            if lower in seen and lower not in duplicate_set:
                duplicate_set.add(lower)
                duplicates.append(email)
            if not valid_email(email):
                if lower not in seen:
                    failures.append(_failure(email, 1, "Invalid Email Address"))
                seen.setdefault(lower, True)
                continue
            try:
                consent = _consent(item, required=False)
            except ApiError as exc:
                if lower not in seen:
                    failures.append(_failure(email, exc.code, exc.message))
                seen.setdefault(lower, True)
                continue
            first = lower not in seen
            seen[lower] = False
            row = lst.row_of(email)
            if first:
                if row is None:
                    new += 1
                else:
                    existing += 1
            if lower in c.suppression and not resubscribe:
                if first:
                    failures.append(_failure(email, *IN_SUPPRESSION))
                if row is None:
                    new -= 1 if first else 0
                continue
            if row is None:
                row = lst.append(email, "", ACTIVE, ctx.now)
            else:
                state = lst.states[row]
                if state in NOT_ADDED and not resubscribe:
                    if first:
                        failures.append(_failure(email, *NOT_ADDED[state]))
                elif state != ACTIVE:
                    lst.set_state(row, ACTIVE, ctx.now)
            if lower in c.suppression:
                c.unsuppress(email)
            _apply(lst, row, item, consent, _mobile(item, strict=False))
        result = {
            "FailureDetails": failures,
            "TotalUniqueEmailsSubmitted": len(seen),
            "TotalExistingSubscribers": existing,
            "TotalNewSubscribers": new,
            "DuplicateEmailsInSubmission": duplicates,
        }
        if failures:
            raise ApiError(400, 210, "Subscriber Import had some failures", result_data=result)
        return Result(201, result)


# --- helpers ------------------------------------------------------------------------------------


def paging(ctx: Ctx) -> tuple[int, int, str, bool, int | None]:
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
    if not 10 <= size <= 1000:
        raise ApiError(400, 801, "The page size must be between 10 and 1000")
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
    results: list[Any], order_field: str, descending: bool, page: int, size: int, total: int
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


def _segment_item(s: Segment) -> dict[str, str]:
    return {"ListID": s.list_id, "SegmentID": s.segment_id, "Title": s.title}


def _failure(email: str, code: int, message: str) -> dict[str, Any]:
    return {"EmailAddress": email, "Code": code, "Message": message}


def _distinct(values: Any) -> list[str]:
    out: list[str] = []
    for v in values:
        if v not in out:
            out.append(v)
    return out


def _consent(body: dict[str, Any], *, required: bool) -> int | None:
    """ConsentToTrack as a stored code (1 Yes, 2 No), None for Unchanged/absent."""
    value = body.get("consenttotrack")
    if value is None or value == "":
        if required:
            raise ApiError(400, 214, "Please provide a consent to track value")
        return None
    text = str(value).strip().lower()
    if text not in ("yes", "no", "unchanged"):
        raise ApiError(400, 215, "Please provide a valid consent to track value")
    return {"yes": 1, "no": 2}.get(text)


def _mobile(body: dict[str, Any], strict: bool = True) -> str | None:
    value = body.get("mobilenumber")
    if not value:
        return None
    text = str(value).strip()
    if not re.fullmatch(r"\+[1-9]\d{6,14}", text):
        if strict:
            raise ApiError(400, 220, "Invalid mobile number")
        return None
    return text


def _apply(
    lst: MailingList, row: int, body: dict[str, Any], consent: int | None, mobile: str | None
) -> None:
    """Name, consent, mobile and custom fields of an add/update/import item."""
    name = body.get("name")
    if isinstance(name, str) and name.strip() and name != lst.names[row]:
        lst.names[row] = name.strip()
        lst.touch()
    if consent is not None:
        lst.consent[row] = consent
    if mobile:
        lst.mobile[row] = mobile
    fields = body.get("customfields") or []
    if not isinstance(fields, list):
        return
    many: dict[str, list[str]] = {}
    for raw in fields:
        if not isinstance(raw, dict):
            continue
        item = lower_keys(raw)
        f = lst.resolve_field(item.get("key"))
        if f is None:
            continue  # unknown keys are silently ignored, like the real API
        column = lst.values[f.name]
        value = item.get("value")
        if as_bool(item.get("clear", False)):
            if f.data_type == "MultiSelectMany" and value not in (None, ""):
                option = f.normalise(value)
                current = column[row] or ()
                kept = tuple(o for o in current if o != option)
                column[row] = kept or None
                if f.name in many:
                    many[f.name] = [o for o in many[f.name] if o != option]
            else:
                column[row] = None
                many.pop(f.name, None)
            continue
        stored = f.normalise(value)
        if stored is None:
            continue
        if f.data_type == "MultiSelectMany":
            chosen = many.setdefault(f.name, [])
            if stored not in chosen:
                chosen.append(stored)
        else:
            column[row] = stored
    for name_, chosen in many.items():
        f = lst.field_named(name_)
        if f is not None:
            ordered = tuple(o for o in f.options if o in chosen)
            lst.values[name_][row] = ordered or None
