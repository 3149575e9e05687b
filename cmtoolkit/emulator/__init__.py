"""A faithful local Campaign Monitor API v3.3 server, seeded from the synthetic generator.

    from cmtoolkit.emulator import Emulator
    emu = Emulator(seed_size=1000, seed=7)
    base_url = emu.start()          # http://127.0.0.1:PORT/api/v3.3
    ...
    emu.stop()                      # writes ``state_file`` when given

Modules: :mod:`~cmtoolkit.emulator.account` (the data and its column store),
:mod:`~cmtoolkit.emulator.seeding`, :mod:`~cmtoolkit.emulator.api` (resources and the documented
choices where the real API is unconfirmed), :mod:`~cmtoolkit.emulator.auth` (API keys, OAuth),
:mod:`~cmtoolkit.emulator.faults` (the ``--faults`` SPEC), :mod:`~cmtoolkit.emulator.server`
(HTTP server, control API), :mod:`~cmtoolkit.emulator.state` (the state file).
"""

from cmtoolkit.emulator.account import Account, CustomField, MailingList, field_key
from cmtoolkit.emulator.auth import OAuthApp
from cmtoolkit.emulator.faults import FaultSpecError, parse_faults
from cmtoolkit.emulator.seeding import DEFAULT_LISTS, seed_account
from cmtoolkit.emulator.server import API_PREFIX, DEFAULT_API_KEY, Emulator, RateLimit

__all__ = [
    "API_PREFIX",
    "DEFAULT_API_KEY",
    "DEFAULT_LISTS",
    "Account",
    "CustomField",
    "Emulator",
    "FaultSpecError",
    "MailingList",
    "OAuthApp",
    "RateLimit",
    "field_key",
    "parse_faults",
    "seed_account",
]
