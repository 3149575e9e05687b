"""Several requests in flight, results handed back in the order the caller needs.

Two shapes: :func:`pages_in_order` reads the pages of one paged selection ahead of the consumer
and yields them in page order (the import merges in list order), and :func:`as_completed` runs
independent jobs (import batches) and yields each result as soon as it is acknowledged, so it can
be journalled at once. The :class:`~.concurrency.Flow` inside the transport decides how many
requests are really on the wire; these only keep enough queued to fill it.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import FIRST_COMPLETED, Executor, Future, wait
from itertools import islice
from typing import TypeVar

from .paging import PageInfo

__all__ = ["as_completed", "pages_in_order"]

T = TypeVar("T")
J = TypeVar("J")
R = TypeVar("R")

Fetch = Callable[[int], tuple[PageInfo, T]]


def pages_in_order(
    first: Future[tuple[PageInfo, T]], fetch: Fetch[T], pool: Executor, ahead: int
) -> Iterator[T]:
    """Page 1 (``first``), then pages 2… fetched ``ahead`` at a time, yielded in page order.

    The stopping rule is the sequential one (:func:`~.paging.iterate_pages`): after a page that
    is empty or whose number reaches its own ``NumberOfPages``; a later page announcing more
    pages (the list grew) extends the read. Pages fetched past the end are dropped; closing the
    iterator cancels what has not started.
    """
    info, payload = first.result()
    yield payload
    if info.size == 0 or info.page_count <= 1:
        return
    known = info.page_count
    next_page = 2
    queued: deque[tuple[int, Future[tuple[PageInfo, T]]]] = deque()
    try:
        while True:
            while next_page <= known and len(queued) < ahead:
                queued.append((next_page, pool.submit(fetch, next_page)))
                next_page += 1
            if not queued:
                return
            page, future = queued.popleft()
            info, payload = future.result()
            known = max(known, info.page_count)
            yield payload
            if info.size == 0 or page >= info.page_count:
                return
    finally:
        for _, future in queued:
            future.cancel()


def as_completed(
    jobs: Iterable[J],
    work: Callable[[J], R],
    pool: Executor | None,
    width: int,
    follow_up: Callable[[J, R], Sequence[J]] | None = None,
) -> Iterator[tuple[J, R]]:
    """``(job, work(job))`` for each job, as each finishes, at most ``width`` queued at once
    (``pool`` None: one at a time, in this thread).

    ``follow_up(job, result)`` may return jobs to run *instead of* yielding that result (a
    refused import batch sent again in halves); they go ahead of the remaining ``jobs``. Once
    a job has raised, follow-ups are not run and the result that asked for them is dropped.
    When a job raises, no further job starts; those already running finish and are yielded
    first (their results must not be lost: they were acknowledged), then the error is raised.
    Closing the iterator early waits for the running jobs and drops their results.
    """
    ahead: deque[J] = deque()
    source = iter(jobs)

    def more(job: J, result: R, *, stopping: bool = False) -> bool:
        """Queue ``job``'s follow-ups (none once stopping: its result is dropped then)."""
        again = follow_up(job, result) if follow_up is not None else ()
        if not stopping:
            ahead.extendleft(reversed(again))
        return bool(again)

    if pool is None:
        while taken := _take(ahead, source):
            job = taken[0]
            result = work(job)
            if not more(job, result):
                yield job, result
        return
    running: dict[Future[R], J] = {}
    failure: BaseException | None = None
    try:
        while True:
            while failure is None and len(running) < width and (taken := _take(ahead, source)):
                running[pool.submit(work, taken[0])] = taken[0]
            if not running:
                break
            done, _ = wait(running, return_when=FIRST_COMPLETED)
            for future in done:
                job = running.pop(future)
                error = future.exception()
                if error is not None:
                    failure = failure or error
                    continue
                result = future.result()
                if more(job, result, stopping=failure is not None):
                    continue
                yield job, result
    finally:
        for future in running:
            future.cancel()
        wait(running)
    if failure is not None:
        raise failure


def _take(ahead: deque[J], source: Iterator[J]) -> list[J]:
    """The next job (follow-ups first) as a one-item list, or [] when there is none."""
    if ahead:
        return [ahead.popleft()]
    return list(islice(source, 1))
