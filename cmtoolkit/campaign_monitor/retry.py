"""When and how long to wait before trying a Campaign Monitor request again.

Exponential backoff with *full jitter* (a random wait in ``[0, min(max_delay, base * 2**n))``)
spreads retries from parallel jobs apart; a server-given wait (``X-RateLimit-Reset`` seconds or
``Retry-After``) replaces the computed one. Attempts and total elapsed time are both bounded so a
scheduled batch job cannot hang on a sick API.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime

__all__ = ["RetryPolicy", "server_wait"]


@dataclass(frozen=True)
class RetryPolicy:
    """Bounds for retrying 429, 5xx and transport errors.

    ``max_attempts`` counts every try (1 disables retries). ``max_elapsed`` bounds the total time
    spent on one call including waits; a wait that would cross it is not taken and the last error
    is raised. ``random`` returns a float in [0, 1) and is injectable for deterministic tests.
    """

    max_attempts: int = 6
    base_delay: float = 1.0
    max_delay: float = 60.0
    max_elapsed: float = 600.0
    random: Callable[[], float] = field(default=random.random, repr=False, compare=False)

    def backoff(self, retry_number: int) -> float:
        """The jittered wait before retry ``retry_number`` (1 for the first retry)."""
        cap = min(self.max_delay, self.base_delay * (2 ** (retry_number - 1)))
        return self.random() * cap


def server_wait(headers: Mapping[str, str]) -> float | None:
    """Seconds the server asked us to wait, from ``X-RateLimit-Reset`` or ``Retry-After``."""
    reset = headers.get("X-RateLimit-Reset")
    if reset is not None:
        try:
            return max(0.0, float(reset))
        except ValueError:
            pass
    after = headers.get("Retry-After")
    if after is not None:
        try:
            return max(0.0, float(after))
        except ValueError:
            try:
                when = parsedate_to_datetime(after)
            except (TypeError, ValueError):
                return None
            if when.tzinfo is None:
                when = when.replace(tzinfo=UTC)
            return max(0.0, (when - datetime.now(UTC)).total_seconds())
    return None
