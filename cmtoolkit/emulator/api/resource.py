"""What every group of resources shares: the account, new ids, the page cache, and the lookups
that turn an id from the path into a client, list or segment the caller may see."""

from __future__ import annotations

from cmtoolkit.emulator.account import Account, Client
from cmtoolkit.emulator.api.paging import PageCache
from cmtoolkit.emulator.api.request import Ctx
from cmtoolkit.emulator.api_error import ApiError
from cmtoolkit.emulator.mailing_list import MailingList
from cmtoolkit.emulator.seeding import make_id
from cmtoolkit.emulator.segment import Segment


class Resources:
    """The base of the resource groups; the caller holds the emulator lock."""

    def __init__(self, account: Account, seed: int = 0, page_cache_bytes: int = 0) -> None:
        self.account = account
        self.seed = seed
        self._counter = 0
        self.pages = PageCache(page_cache_bytes)

    def new_id(self, kind: str) -> str:
        self._counter += 1
        return make_id(self.seed, "created", kind, self._counter, len(self.account.clients))

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


def segment_item(s: Segment) -> dict[str, str]:
    """A segment as the client and list segment listings show it."""
    return {"ListID": s.list_id, "SegmentID": s.segment_id, "Title": s.title}
