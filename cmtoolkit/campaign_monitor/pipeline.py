"""Several requests in flight, results handed back in the order the caller needs.

Two shapes: :func:`pages_in_order` reads the pages of one paged selection ahead of the consumer
and yields them in page order (the import merges in list order), and :func:`as_completed` runs
independent jobs (import batches) and yields each result as soon as it is acknowledged, so it can
be journalled at once. The :class:`~.concurrency.Flow` inside the transport decides how many
requests are really on the wire; these only keep enough queued to fill it.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import FIRST_COMPLETED, Executor, Future, wait
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
    jobs: Iterable[J], work: Callable[[J], R], pool: Executor, width: int
) -> Iterator[tuple[J, R]]:
    """``(job, work(job))`` for each job, as each finishes, at most ``width`` queued at once.

    When a job raises, no further job starts; those already running finish and are yielded
    first (their results must not be lost: they were acknowledged), then the error is raised.
    Closing the iterator early waits for the running jobs and drops their results.
    """
    running: dict[Future[R], J] = {}
    source = iter(jobs)
    exhausted = False
    failure: BaseException | None = None
    try:
        while True:
            while failure is None and not exhausted and len(running) < width:
                try:
                    job = next(source)
                except StopIteration:
                    exhausted = True
                    break
                running[pool.submit(work, job)] = job
            if not running:
                break
            done, _ = wait(running, return_when=FIRST_COMPLETED)
            for future in done:
                job = running.pop(future)
                error = future.exception()
                if error is not None:
                    failure = failure or error
                    continue
                yield job, future.result()
    finally:
        for future in running:
            future.cancel()
        wait(running)
    if failure is not None:
        raise failure
