"""The emulator's rate limit: at most N API requests per window of the emulator clock."""

from __future__ import annotations

import math
from dataclasses import dataclass


@dataclass
class RateLimit:
    """At most ``limit`` API requests per ``window`` seconds of the emulator clock."""

    limit: int
    window: float = 60.0
    headers: bool = True
    started: float = 0.0
    count: int = 0

    def count_request(self, now: float) -> tuple[dict[str, str], bool]:
        """Count one request: the ``X-RateLimit-*`` headers to send, and whether it is over."""
        if now >= self.started + self.window:
            self.started, self.count = now, 0
        self.count += 1
        reset = max(0, math.ceil(self.started + self.window - now))  # whole seconds, never early
        extra: dict[str, str] = {}
        if self.headers:
            extra = rate_headers(self.limit, max(0, self.limit - self.count), reset)
        return extra, self.count > self.limit


def rate_headers(limit: int, remaining: int, reset: int) -> dict[str, str]:
    return {
        "X-RateLimit-Limit": str(limit),
        "X-RateLimit-Remaining": str(remaining),
        "X-RateLimit-Reset": str(reset),
    }
