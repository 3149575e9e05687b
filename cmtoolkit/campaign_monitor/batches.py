"""Many writes at once (DESIGN §9): import batches acknowledged as they arrive, split when
refused whole, and independent single-subscriber calls, ``max_in_flight`` at a time.

A mixin of :class:`~cmtoolkit.campaign_monitor.CampaignMonitor` over the writes of
:class:`~.writes.Writes`; the client supplies ``max_in_flight`` and the worker threads.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import TypeVar

from cmtoolkit.errors import BadRequest

from .pipeline import as_completed
from .records import ImportResult
from .writes import ImportRow, Writes

__all__ = ["BatchAck", "ConcurrentWrites", "ImportJob"]

J = TypeVar("J")
R = TypeVar("R")
#: One import request to make: the list and its ≤1000 wire-shaped rows (or their JSON).
ImportJob = tuple[str, Sequence[ImportRow]]
#: A batch, or part of one being split: (input index, first row's offset, list, rows).
_Part = tuple[int, int, str, Sequence[ImportRow]]


@dataclass(frozen=True, slots=True)
class BatchAck:
    """The answer to one import batch: ``result`` when Campaign Monitor took it (rejected rows,
    if any, in its failures), ``error`` when it refused the whole request as invalid (the
    caller may split it). ``index`` is the batch's position in the input."""

    index: int
    list_id: str
    rows: Sequence[ImportRow]
    result: ImportResult | None = None
    error: BadRequest | None = None
    start: int = 0  # where ``rows`` begin in the input batch (a split sends parts of one)


class ConcurrentWrites(Writes):
    """:meth:`import_batches` and :meth:`concurrently`, over the client's worker threads."""

    @property
    def max_in_flight(self) -> int:
        raise NotImplementedError

    def _pool_or_none(self) -> ThreadPoolExecutor | None:
        """The worker threads, or None to call in this thread (``max_in_flight`` 1)."""
        raise NotImplementedError

    def import_batches(
        self,
        batches: Iterable[ImportJob],
        *,
        resubscribe: bool = False,
        queue_subscription_based_autoresponders: bool = False,
        restart_subscription_based_autoresponders: bool = False,
        split: bool = False,
    ) -> Iterator[BatchAck]:
        """Send ``(list_id, rows)`` import batches, ``max_in_flight`` at once, yielding each
        :class:`BatchAck` as Campaign Monitor acknowledges it (not in input order).

        Journal each acknowledgement as it arrives: a batch is acknowledged exactly when it is
        yielded. A refused batch (HTTP 400 without a partial result) comes back as ``error``;
        with ``split`` it is first sent again in halves, ahead of the next batches, until the
        bad rows stand alone, so only single-row refusals come back (``start`` places an ack's
        rows in its input batch). Any other failure (after the transport's retries) stops
        sending: the batches already in flight finish and are yielded, then the error is
        raised, so every accepted batch has been seen. Closing the iterator early waits for the
        ones in flight (the import is an upsert: re-sending one unseen batch changes nothing).
        Batches go out in any order: the caller keeps one subscriber out of two batches of one
        call when their order matters.
        """

        def send(job: _Part) -> BatchAck:
            index, start, list_id, rows = job
            try:
                result = self.import_batch(
                    list_id,
                    rows,
                    resubscribe=resubscribe,
                    queue_subscription_based_autoresponders=queue_subscription_based_autoresponders,
                    restart_subscription_based_autoresponders=restart_subscription_based_autoresponders,
                )
            except BadRequest as exc:
                return BatchAck(index, list_id, rows, error=exc, start=start)
            return BatchAck(index, list_id, rows, result=result, start=start)

        def halves(job: _Part, ack: BatchAck) -> list[_Part]:
            index, start, list_id, rows = job
            if not split or ack.error is None or len(rows) < 2:
                return []
            half = len(rows) // 2
            return [
                (index, start, list_id, rows[:half]),
                (index, start + half, list_id, rows[half:]),
            ]

        jobs = ((i, 0, list_id, rows) for i, (list_id, rows) in enumerate(batches))
        for _, ack in as_completed(jobs, send, self._pool_or_none(), self.max_in_flight, halves):
            yield ack

    def concurrently(self, jobs: Iterable[J], call: Callable[[J], R]) -> Iterator[tuple[J, R]]:
        """``(job, call(job))`` for independent calls (one subscriber each), ``max_in_flight``
        at once, each as it finishes; a call that raises stops the rest as in
        :meth:`import_batches` (the ones in flight are yielded first)."""
        return as_completed(jobs, call, self._pool_or_none(), self.max_in_flight)
