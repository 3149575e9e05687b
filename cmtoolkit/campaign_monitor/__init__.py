"""Campaign Monitor API v3.3 client: auth (API key, OAuth 2 with refresh), transparent paging,
bounded retries with backoff, typed records and typed errors (see :mod:`cmtoolkit.errors`).

    from cmtoolkit.campaign_monitor import CampaignMonitor, ApiKeyAuth
    with CampaignMonitor(ApiKeyAuth(Secret(key))) as cm:
        for frame in cm.subscriber_frames(list_id):
            ...
"""

from .auth import (
    ApiKeyAuth,
    OAuthApp,
    OAuthAuth,
    OAuthTokens,
    authorize_url,
    exchange_code,
    refresh_tokens,
)
from .campaigns import Campaign, CampaignSummary, EmailEvent, HistoryEntry
from .client import CampaignMonitor
from .fields import STANDARD_FIELDS, WRITABLE_STANDARD_FIELDS
from .fields import STATES as SUBSCRIBER_STATES
from .paging import FRAME_SCHEMA, SubscriberPage
from .records import (
    ClientDetails,
    ClientSummary,
    CustomField,
    ImportFailure,
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
from .transport import DEFAULT_BASE_URL
from .writes import MAX_IMPORT_BATCH

__all__ = [
    "DEFAULT_BASE_URL",
    "FRAME_SCHEMA",
    "MAX_IMPORT_BATCH",
    "STANDARD_FIELDS",
    "SUBSCRIBER_STATES",
    "WRITABLE_STANDARD_FIELDS",
    "ApiKeyAuth",
    "Campaign",
    "CampaignMonitor",
    "CampaignSummary",
    "ClientDetails",
    "ClientSummary",
    "CustomField",
    "EmailEvent",
    "HistoryEntry",
    "ImportFailure",
    "ImportResult",
    "ListDetails",
    "ListMembership",
    "ListStats",
    "ListSummary",
    "OAuthApp",
    "OAuthAuth",
    "OAuthTokens",
    "RetryPolicy",
    "Segment",
    "Subscriber",
    "SubscriberPage",
    "SuppressedEmail",
    "authorize_url",
    "exchange_code",
    "refresh_tokens",
]
