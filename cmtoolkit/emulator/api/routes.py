"""The ``/api/v3.3`` route table: method and path pattern → resource.

The choices made where the real API is unconfirmed are listed in ``docs/emulator.md``.
"""

from __future__ import annotations

import re
from collections.abc import Callable

from cmtoolkit.emulator.account import Account
from cmtoolkit.emulator.api.campaigns import CampaignResources
from cmtoolkit.emulator.api.clients import ClientResources
from cmtoolkit.emulator.api.fields import FieldResources
from cmtoolkit.emulator.api.lists import ListResources
from cmtoolkit.emulator.api.request import Ctx, Result
from cmtoolkit.emulator.api.subscribers import SubscriberResources


class Api(ClientResources, ListResources, FieldResources, SubscriberResources, CampaignResources):
    """Routes ``/api/v3.3`` requests to the account; the caller holds the emulator lock."""

    def __init__(self, account: Account, seed: int = 0, page_cache_bytes: int = 0) -> None:
        super().__init__(account, seed, page_cache_bytes)
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
            ("GET", R(r"/subscribers/(\w+)/history"), self.subscriber_history),
            ("GET", R(r"/clients/(\w+)/campaigns"), self.client_campaigns),
            ("GET", R(r"/campaigns/(\w+)/summary"), self.campaign_summary),
            ("GET", R(r"/campaigns/(\w+)/recipients"), self.campaign_recipients),
            ("GET", R(r"/campaigns/(\w+)/opens"), self.campaign_opens),
            ("GET", R(r"/campaigns/(\w+)/clicks"), self.campaign_clicks),
            ("GET", R(r"/campaigns/(\w+)/bounces"), self.campaign_bounces),
            ("GET", R(r"/campaigns/(\w+)/unsubscribes"), self.campaign_unsubscribes),
        ]

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
