"""A faithful local Campaign Monitor API v3.3 server, seeded from the synthetic generator.

    from cmtoolkit.emulator import Emulator
    emu = Emulator(seed_size=1000, seed=7)
    base_url = emu.start()          # http://127.0.0.1:PORT/api/v3.3
    ...
    emu.stop()                      # writes ``state_file`` when given

``emu.account`` is the live data for assertions (its lists hold subscribers by state code:
:data:`ACTIVE` ... :data:`DELETED`). The API's behaviour where the real one is unconfirmed, the
fault SPEC and the control API are described in ``docs/emulator.md``.
"""

from cmtoolkit.emulator.account import Account, Client
from cmtoolkit.emulator.api_error import ApiError
from cmtoolkit.emulator.auth import IssuedTokens, OAuthApp, OAuthAppLike, Revealable
from cmtoolkit.emulator.custom_field import CustomField, field_key
from cmtoolkit.emulator.faults import FaultRule, FaultSpecError, parse_faults
from cmtoolkit.emulator.mailing_list import MailingList
from cmtoolkit.emulator.ratelimit import RateLimit
from cmtoolkit.emulator.seeding import DEFAULT_LISTS, seed_account
from cmtoolkit.emulator.segment import Segment
from cmtoolkit.emulator.server import API_PREFIX, DEFAULT_API_KEY, Emulator
from cmtoolkit.emulator.subscriber import (
    ACTIVE,
    BOUNCED,
    DELETED,
    STATES,
    UNCONFIRMED,
    UNSUBSCRIBED,
)

__all__ = [
    "ACTIVE",
    "API_PREFIX",
    "BOUNCED",
    "DEFAULT_API_KEY",
    "DEFAULT_LISTS",
    "DELETED",
    "STATES",
    "UNCONFIRMED",
    "UNSUBSCRIBED",
    "Account",
    "ApiError",
    "Client",
    "CustomField",
    "Emulator",
    "FaultRule",
    "FaultSpecError",
    "IssuedTokens",
    "MailingList",
    "OAuthApp",
    "OAuthAppLike",
    "RateLimit",
    "Revealable",
    "Segment",
    "field_key",
    "parse_faults",
    "seed_account",
]
