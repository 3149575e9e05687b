"""Sending a plan: imports in batches, leavers one call each, ``max_in_flight`` requests at
once; acknowledgements go to the writer as they arrive.

The store is not touched here: accepted rows go to a :class:`StateWriter`, and what did not go as
planned is collected in a :class:`SendResult` for the finish step.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import orjson
import polars as pl

from cmtoolkit.campaign_monitor import MAX_IMPORT_BATCH
from cmtoolkit.errors import BadRequest
from cmtoolkit.sync.exports.acknowledgements import AckJournal, StateWriter

if TYPE_CHECKING:
    from cmtoolkit.campaign_monitor import CampaignMonitor
    from cmtoolkit.campaign_monitor.batches import BatchAck

#: Campaign Monitor's code for an address that is not in the list (or already removed).
NOT_IN_LIST = 203


@dataclass
class SendResult:
    """Rows that did not go as planned: (list_id, profile_id) → (outcome, reason)."""

    exceptions: dict[tuple[str, str], tuple[str, str]] = field(default_factory=dict)
    requests: int = 0


def _batch_rows(frame: pl.DataFrame) -> list[orjson.Fragment]:
    """The batch's payloads as the JSON the plan built, sent without parsing them again."""
    return [orjson.Fragment(p) for p in frame.get_column("payload")]


def send_imports(
    client: CampaignMonitor,
    batches: Iterable[tuple[str, pl.DataFrame]],
    writer: StateWriter,
    result: SendResult,
    *,
    resubscribe: bool,
    restart_autoresponders: bool = False,
    progress: Callable[[int], None] | None = None,
) -> None:
    """Import ``(list_id, rows)`` batches of ``send``/``clear`` rows (≤1000 of one list),
    ``max_in_flight`` requests at once; each acknowledgement goes to ``writer`` (journalled) as
    it arrives. Only the batches in flight are held: ``batches`` may stream from the plan file.

    A 400 without ResultData (the whole request refused) is split in halves until the bad rows
    are alone, each of which is then ``REJECTED`` with that error.
    """
    # Batches in flight together land in any order: fine, as no (list, address) is in two rows
    # (a duplicate address is INVALID, and a leaver whose address a member holds only loses its
    # state row; two leavers' clears of one address are the same request).
    done = 0
    held: dict[int, pl.DataFrame] = {}  # batches not yet wholly acknowledged, by index
    left: dict[int, int] = {}  # their rows not yet acknowledged

    def jobs() -> Iterator[tuple[str, list[orjson.Fragment]]]:
        for index, (list_id, batch) in enumerate(batches):
            held[index], left[index] = batch, batch.height
            yield list_id, _batch_rows(batch)

    acks = client.import_batches(
        jobs(),
        resubscribe=resubscribe,
        restart_subscription_based_autoresponders=restart_autoresponders,
        split=True,
    )
    split: set[int] = set()  # batches refused whole, sent again in parts
    for ack in acks:
        batch = held[ack.index]
        if len(ack.rows) == batch.height:
            result.requests += 1
        else:  # a batch split into n parts took 2n - 1 requests
            result.requests += 2 if ack.index in split else 1
            split.add(ack.index)
        _acknowledged(ack, batch.slice(ack.start, len(ack.rows)), writer, result)
        left[ack.index] -= len(ack.rows)
        if not left[ack.index]:
            del held[ack.index], left[ack.index]
        done += len(ack.rows)
        if progress is not None:
            progress(done)


def _acknowledged(
    ack: BatchAck, batch: pl.DataFrame, writer: StateWriter, result: SendResult
) -> None:
    """Record one answer: rejected rows as exceptions, the accepted ones to the writer."""
    if ack.error is not None:  # refused alone (a split ends at single rows)
        reason = f"code {ack.error.code}: {ack.error}"
        for pid in batch.get_column("profile_id"):
            result.exceptions[(ack.list_id, pid)] = ("REJECTED", reason)
        return
    assert ack.result is not None
    failed = {f.email.strip().lower(): f for f in ack.result.failures}
    if failed:
        low = batch.get_column("email").str.to_lowercase()
        hit = low.is_in(list(failed))
        for pid, email in batch.filter(hit).select("profile_id", "email").iter_rows():
            f = failed[email.lower()]
            result.exceptions[(ack.list_id, pid)] = ("REJECTED", f"code {f.code}: {f.message}")
        batch = batch.filter(~hit)
    writer.ack(batch)


def remove_leavers(
    client: CampaignMonitor,
    leavers: Iterable[pl.DataFrame],
    writer: StateWriter,
    result: SendResult,
    on_leave: str,
) -> None:
    """Unsubscribe or delete each ``leave`` row (one call each, ``max_in_flight`` at once);
    every mode drops the state rows, and ``forget`` rows only that."""
    calls = on_leave in ("unsubscribe", "delete")

    def called(row: dict[str, str]) -> bool:
        return calls and row["action"] == "leave"

    def remove(row: dict[str, str]) -> BadRequest | None:
        if not called(row):
            return None
        try:
            if on_leave == "unsubscribe":
                client.unsubscribe(row["list_id"], row["email"])
            else:
                client.delete_subscriber(row["list_id"], row["email"])
        except BadRequest as exc:
            return exc
        return None

    rows = (row for chunk in leavers for row in chunk.iter_rows(named=True))
    answers = client.concurrently(rows, remove) if calls else ((row, None) for row in rows)
    chunk: list[dict[str, object]] = []
    schema = dict.fromkeys(AckJournal.COLUMNS, pl.Utf8)  # what an acknowledgement carries
    for row, error in answers:
        key = (row["list_id"], row["profile_id"])
        result.requests += called(row)
        if error is not None:
            if error.code != NOT_IN_LIST:
                result.exceptions[key] = ("REJECTED", f"code {error.code}: {error}")
                continue
            result.exceptions[key] = ("REMOVED", "not in the list any more")
        chunk.append(row)
        if len(chunk) >= MAX_IMPORT_BATCH:
            writer.ack(pl.DataFrame(chunk, schema=schema))
            chunk = []
    if chunk:
        writer.ack(pl.DataFrame(chunk, schema=schema))
