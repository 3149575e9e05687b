"""What a subscriber row holds: its states, consent codes, email rule and timestamp format.

Timestamps are integer seconds on the emulator clock and render as ``YYYY-MM-DD HH:MM:SS`` (no
timezone: the real API's timezone is unconfirmed; the emulator's is UTC).
"""

from __future__ import annotations

import re
import time

import numpy as np

STATES = ("Active", "Unconfirmed", "Unsubscribed", "Bounced", "Deleted")
STATE_CODE = {name: code for code, name in enumerate(STATES)}
ACTIVE, UNCONFIRMED, UNSUBSCRIBED, BOUNCED, DELETED = range(5)
CONSENT = ("Unchanged", "Yes", "No")
READS_WITH = ("", "Gmail", "Outlook", "Apple Mail", "Yahoo Mail", "Thunderbird")


# Deliberately simple: one @, a dot in the domain, no spaces. ("example+1@example" is invalid,
# as in the partial-import fixture.)
EMAIL_RE = re.compile(r"^[^@\s]+@[^@\s.]+(\.[^@\s.]+)+$")


def valid_email(value: object) -> bool:
    return isinstance(value, str) and len(value) <= 254 and EMAIL_RE.match(value) is not None


def format_ts(seconds: int | float) -> str:
    return time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(int(seconds)))


def format_ts_many(values: np.ndarray) -> list[str]:
    """Vectorised ``format_ts`` for a page of timestamps."""
    text = np.datetime_as_string(values.astype("datetime64[s]"), unit="s")
    return [s.replace("T", " ") for s in text.tolist()]
