"""Building the Campaign Monitor client a connection uses.

The credential store (or the environment) provides the auth, ``CMTOOLKIT_API_URL`` the base URL
(the emulator), and refreshed OAuth tokens are saved back to the same store entry.
"""

from __future__ import annotations

import os

from cmtoolkit.campaign_monitor import CampaignMonitor
from cmtoolkit.campaign_monitor.concurrency import DEFAULT_MAX_IN_FLIGHT
from cmtoolkit.connection.model import Connection
from cmtoolkit.credentials import CredentialStore, resolve, token_saver


def client_for_credential(
    ref: str,
    *,
    store: CredentialStore | None = None,
    base_url: str | None = None,
    max_in_flight: int = DEFAULT_MAX_IN_FLIGHT,
) -> CampaignMonitor:
    """A ``CampaignMonitor`` client authenticated with the credential ``ref``."""
    store = store or CredentialStore()
    return CampaignMonitor(
        resolve(ref, store=store),
        base_url=base_url or os.environ.get("CMTOOLKIT_API_URL") or None,
        on_tokens_refreshed=token_saver(ref, store=store),
        max_in_flight=max_in_flight,
    )


def client_for(
    conn: Connection, *, store: CredentialStore | None = None, base_url: str | None = None
) -> CampaignMonitor:
    """The client for ``conn``'s ``campaign_monitor.credential`` and ``max_in_flight``."""
    cm = conn.campaign_monitor
    return client_for_credential(
        cm.credential, store=store, base_url=base_url, max_in_flight=cm.max_in_flight
    )
