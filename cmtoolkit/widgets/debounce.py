"""Debouncing: run a callback once, a short while after the last of a burst of edits.

The preview re-plans a whole goal, so it must not run on every keystroke. Where the delay comes
from is a :class:`Scheduler`: in a kernel the running asyncio loop (callbacks then run on the
kernel's main thread, between messages, like a click handler); outside one a timer thread; in
tests a :class:`ManualScheduler` whose clock the test moves, so nothing sleeps.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable
from typing import Any, Protocol


class Handle(Protocol):
    def cancel(self) -> None: ...


class Scheduler(Protocol):
    def call_later(self, delay: float, callback: Callable[[], None]) -> Handle: ...


class KernelScheduler:
    """The kernel's event loop when there is one running, else a daemon timer thread."""

    def call_later(self, delay: float, callback: Callable[[], None]) -> Handle:
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            loop = None
        if loop is not None:
            return loop.call_later(delay, callback)
        timer = threading.Timer(delay, callback)
        timer.daemon = True
        timer.start()
        return timer


class _ManualHandle:
    def __init__(self, due: float, callback: Callable[[], None]) -> None:
        self.due = due
        self.callback = callback
        self.cancelled = False

    def cancel(self) -> None:
        self.cancelled = True


class ManualScheduler:
    """A scheduler driven by the test: :meth:`advance` runs what became due, in order."""

    def __init__(self) -> None:
        self.now = 0.0
        self._handles: list[_ManualHandle] = []

    def call_later(self, delay: float, callback: Callable[[], None]) -> Handle:
        handle = _ManualHandle(self.now + delay, callback)
        self._handles.append(handle)
        return handle

    @property
    def pending(self) -> int:
        return sum(1 for h in self._handles if not h.cancelled)

    def advance(self, seconds: float) -> int:
        """Move the clock; returns how many callbacks ran."""
        self.now += seconds
        ran = 0
        while True:
            due = sorted(
                (h for h in self._handles if not h.cancelled and h.due <= self.now),
                key=lambda h: h.due,
            )
            if not due:
                break
            handle = due[0]
            self._handles.remove(handle)
            handle.callback()
            ran += 1
        self._handles = [h for h in self._handles if not h.cancelled]
        return ran


class Debouncer:
    """``trigger()`` (re)starts the delay; the callback runs once when it passes quietly."""

    def __init__(
        self,
        delay: float,
        callback: Callable[[], Any],
        scheduler: Scheduler | None = None,
    ) -> None:
        self.delay = delay
        self.callback = callback
        self.scheduler = scheduler or KernelScheduler()
        self._handle: Handle | None = None
        self._lock = threading.Lock()

    @property
    def pending(self) -> bool:
        return self._handle is not None

    def trigger(self) -> None:
        with self._lock:
            if self._handle is not None:
                self._handle.cancel()
            self._handle = self.scheduler.call_later(self.delay, self._fire)

    def cancel(self) -> None:
        with self._lock:
            if self._handle is not None:
                self._handle.cancel()
                self._handle = None

    def flush(self) -> None:
        """Run a pending callback now (e.g. before a Save or a Run)."""
        if self.pending:
            self.cancel()
            self.callback()

    def _fire(self) -> None:
        with self._lock:
            self._handle = None
        self.callback()
