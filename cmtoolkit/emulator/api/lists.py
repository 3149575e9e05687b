"""List resources (details, settings, stats, webhooks) and segment resources."""

from __future__ import annotations

import numpy as np

from cmtoolkit.emulator.api.request import Ctx, Result, as_bool
from cmtoolkit.emulator.api.resource import Resources, segment_item
from cmtoolkit.emulator.api_error import ApiError
from cmtoolkit.emulator.mailing_list import MailingList
from cmtoolkit.emulator.segment import Segment
from cmtoolkit.emulator.subscriber import ACTIVE


class ListResources(Resources):
    """Lists, their settings, stats and webhooks, and segments."""

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
        return Result(200, [segment_item(s) for s in c.segments if s.list_id == list_id])

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
        return self.pages.page(ctx, lst, (ACTIVE,), segment=s)
