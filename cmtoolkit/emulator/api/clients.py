"""Account and client resources: clients, the system date, a client's lists and segments,
the lists an address is on, and the client's suppression list."""

from __future__ import annotations

from cmtoolkit.emulator.api.paging import envelope, paging
from cmtoolkit.emulator.api.request import Ctx, Result
from cmtoolkit.emulator.api.resource import Resources, segment_item
from cmtoolkit.emulator.api_error import ApiError
from cmtoolkit.emulator.subscriber import STATES, format_ts, valid_email


class ClientResources(Resources):
    """The account's clients and what each client holds."""

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
        return Result(200, [segment_item(s) for s in c.segments])

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
