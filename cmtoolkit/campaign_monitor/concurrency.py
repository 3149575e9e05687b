"""How many requests may be in flight to Campaign Monitor, and when the next one may start.

:class:`Flow` is the one gate every request of a client passes (DESIGN §9). Two controls:

* **Adaptive concurrency (AIMD)**: at most ``limit`` requests in flight, ``limit`` starting at
  ``max_in_flight``. A 429 halves it (once per round of requests: answers to requests sent before
  the cut do not cut again); every other answer grows it by ``1/limit``, so it takes a full round
  of successes to add one request in flight.
* **The rate-limit budget**: when answers carry ``X-RateLimit-Remaining`` and
  ``X-RateLimit-Reset`` (seconds), the budget left is spread evenly over the time left, but only
  when going at full speed would spend it before the reset; with nothing left, requests wait for
  the reset. Requests still in flight are counted against the budget, as the server may not have
  counted them yet; within a window the lowest ``Remaining`` seen counts, as answers are released
  out of order. The reset moment is the earliest one the window's answers allow (``Reset``
  is rounded to whole seconds, so one answer alone can overstate the wait by a second); an
  answer whose window must end later than that belongs to the next window.

Starts are *reserved*: each request takes the next start time under the lock, then sleeps until
it once, with the injected ``sleep`` (so tests with a fake clock never wait).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass

__all__ = ["DEFAULT_MAX_IN_FLIGHT", "MAX_IN_FLIGHT", "Flow", "Ticket"]

DEFAULT_MAX_IN_FLIGHT = 4
#: The most requests one client may keep in flight (a bound on the threads and connections).
MAX_IN_FLIGHT = 32
RTT_WEIGHT = 0.2  # weight of the newest sample in the round-trip-time average


@dataclass(frozen=True, slots=True)
class Ticket:
    """One admitted request: the cut ``generation`` it was sent under and when it started."""

    generation: int
    started: float


def _header(headers: Mapping[str, str], name: str) -> float | None:
    value = headers.get(name)
    if value is None:
        return None
    try:
        return float(value)
    except ValueError:
        return None


class Flow:
    """The gate: :meth:`acquire` before a request, :meth:`release` with its answer."""

    def __init__(
        self,
        max_in_flight: int = DEFAULT_MAX_IN_FLIGHT,
        *,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        if not 1 <= max_in_flight <= MAX_IN_FLIGHT:
            raise ValueError(
                f"max_in_flight must be between 1 and {MAX_IN_FLIGHT}, not {max_in_flight}"
            )
        self.max_in_flight = max_in_flight
        self.limit = float(max_in_flight)
        self.in_flight = 0
        self.peak = 0  # the most requests in flight at once so far
        self.rate_limited = 0  # 429 answers seen
        self.answers = 0
        self._clock = clock
        self._sleep = sleep
        self._cond = threading.Condition()
        self._generation = 0
        self._next_start = 0.0
        self._interval = 0.0
        self._reset_at = 0.0  # when the rate-limit window is expected to reset
        self._remaining = 0.0  # the fewest requests left in that window any answer reported
        self._rtt: float | None = None

    def __repr__(self) -> str:
        return (
            f"Flow(limit={self.limit:.2f}, in_flight={self.in_flight}, "
            f"max_in_flight={self.max_in_flight}, interval={self._interval:.3f})"
        )

    @property
    def slots(self) -> int:
        """Requests allowed in flight now."""
        return max(1, int(self.limit))

    def acquire(self) -> Ticket:
        """Wait for a free slot and this request's start time (blocking)."""
        with self._cond:
            while self.in_flight >= self.slots:
                self._cond.wait()
            self.in_flight += 1
            self.peak = max(self.peak, self.in_flight)
            now = self._clock()
            start = max(now, self._next_start)
            self._next_start = start + self._interval
            generation = self._generation
        if start > now:
            self._sleep(start - now)
        return Ticket(generation, self._clock())

    def release(
        self, ticket: Ticket, status: int | None, headers: Mapping[str, str] | None = None
    ) -> None:
        """Free the slot and learn from the answer (``status`` None: no answer at all)."""
        with self._cond:
            self.in_flight -= 1
            now = self._clock()
            if status is not None:
                self.answers += 1
                sample = max(0.0, now - ticket.started)
                self._rtt = (
                    sample if self._rtt is None else self._rtt + RTT_WEIGHT * (sample - self._rtt)
                )
                if status == 429:
                    self.rate_limited += 1
                    if ticket.generation == self._generation:
                        self.limit = max(1.0, self.limit / 2)
                        self._generation += 1
                else:
                    self.limit = min(float(self.max_in_flight), self.limit + 1 / self.limit)
                if headers is not None:
                    self._budget(headers, ticket.started, now)
            self._cond.notify_all()

    def _budget(self, headers: Mapping[str, str], sent: float, now: float) -> None:
        remaining = _header(headers, "X-RateLimit-Remaining")
        reset = _header(headers, "X-RateLimit-Reset")
        if remaining is None or reset is None:
            return
        # The server counted the request between its start and now and rounded Reset to whole
        # seconds: the window this answer speaks of ends between these two moments. The lowest
        # ``latest`` of a window's answers is the closest bound of its end.
        reset = max(0.0, reset)
        latest, earliest = now + reset, sent + reset - 1
        if now >= self._reset_at or earliest > self._reset_at:
            # The window we knew has passed (or this answer's cannot be it): a new one, whose
            # budget replaces any wait for the old one's end.
            self._reset_at, self._remaining = latest, remaining
            self._next_start = min(self._next_start, now)
        else:
            # Within a window the count only falls, but answers are released out of order: the
            # lowest is the newest (a stale higher one would let one request too many through).
            self._reset_at = min(self._reset_at, latest)
            self._remaining = min(self._remaining, remaining)
        left = self._reset_at - now
        budget = self._remaining - self.in_flight
        if budget <= 0:
            # Nothing left in this window: start nothing before it resets.
            self._next_start = max(self._next_start, self._reset_at)
            self._interval = 0.0
            return
        full_speed = self.slots / self._rtt if self._rtt else float("inf")
        if left <= 0 or budget >= full_speed * left:
            self._interval = 0.0  # the window resets before full speed could spend the budget
        else:
            self._interval = left / budget
