"""Sending a plan: imports in batches, leavers one call each; acknowledgements go to the writer.

The store is not touched here: accepted rows go to a :class:`StateWriter`, and what did not go as
planned is collected in a :class:`SendResult` for the finish step.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import orjson
import polars as pl

from cmtoolkit.campaign_monitor import MAX_IMPORT_BATCH
from cmtoolkit.errors import BadRequest
from cmtoolkit.sync.exports.acknowledgements import StateWriter
from cmtoolkit.sync.exports.plan import PLAN_SCHEMA

if TYPE_CHECKING:
    from cmtoolkit.campaign_monitor import CampaignMonitor

#: Campaign Monitor's code for an address that is not in the list (or already removed).
NOT_IN_LIST = 203

#: A subscriber as the import endpoint takes it (parsed from a plan row's payload).
Payload = dict[str, object]


@dataclass
class SendResult:
    """Rows that did not go as planned: (list_id, profile_id) → (outcome, reason)."""

    exceptions: dict[tuple[str, str], tuple[str, str]] = field(default_factory=dict)
    requests: int = 0


def _batch_rows(frame: pl.DataFrame) -> list[Payload]:
    rows: list[Payload] = orjson.loads(
        ("[" + ",".join(frame.get_column("payload").to_list()) + "]").encode()
    )
    return rows


def send_imports(
    client: CampaignMonitor,
    pending: pl.DataFrame,
    writer: StateWriter,
    result: SendResult,
    *,
    resubscribe: bool,
    restart_autoresponders: bool = False,
    progress: Callable[[int], None] | None = None,
) -> None:
    """Import the ``send``/``clear`` rows list by list, ≤1000 per request; acks go to ``writer``.

    A 400 without ResultData (the whole request refused) is split in halves until the bad rows
    are alone, each of which is then ``REJECTED`` with that error.
    """
    # The plan is ordered by list: walk each list's run of rows as zero-copy slices (a
    # group_by would copy a million payloads once more).
    done = 0
    runs = pending.get_column("list_id").rle()
    for list_id, length in zip(runs.struct.field("value"), runs.struct.field("len"), strict=True):
        for start in range(done, done + length, MAX_IMPORT_BATCH):
            batch = pending.slice(start, min(MAX_IMPORT_BATCH, done + length - start))
            _post(
                client,
                str(list_id),
                batch,
                _batch_rows(batch),
                writer,
                result,
                (resubscribe, restart_autoresponders),
            )
            if progress is not None:
                progress(start + batch.height)
        done += length


def _post(
    client: CampaignMonitor,
    list_id: str,
    batch: pl.DataFrame,
    payloads: list[Payload],
    writer: StateWriter,
    result: SendResult,
    flags: tuple[bool, bool],
) -> None:
    result.requests += 1
    resubscribe, restart = flags
    try:
        answer = client.import_batch(
            list_id,
            payloads,
            resubscribe=resubscribe,
            restart_subscription_based_autoresponders=restart,
        )
    except BadRequest as exc:
        if batch.height == 1:
            reason = f"code {exc.code}: {exc}"
            result.exceptions[(list_id, batch.item(0, "profile_id"))] = ("REJECTED", reason)
            return
        half = batch.height // 2
        _post(client, list_id, batch.slice(0, half), payloads[:half], writer, result, flags)
        _post(client, list_id, batch.slice(half), payloads[half:], writer, result, flags)
        return
    failed = {f.email.strip().lower(): f for f in answer.failures}
    if failed:
        low = batch.get_column("email").str.to_lowercase()
        hit = low.is_in(list(failed))
        for pid, email in batch.filter(hit).select("profile_id", "email").iter_rows():
            f = failed[email.lower()]
            result.exceptions[(list_id, pid)] = ("REJECTED", f"code {f.code}: {f.message}")
        batch = batch.filter(~hit)
    writer.ack(batch)


def remove_leavers(
    client: CampaignMonitor,
    leavers: pl.DataFrame,
    writer: StateWriter,
    result: SendResult,
    on_leave: str,
) -> None:
    """Unsubscribe or delete each leaver (one call each); every mode drops the state rows."""
    chunk: list[dict[str, object]] = []
    for row in leavers.iter_rows(named=True):
        key = (row["list_id"], row["profile_id"])
        try:
            if on_leave == "unsubscribe":
                result.requests += 1
                client.unsubscribe(row["list_id"], row["email"])
            elif on_leave == "delete":
                result.requests += 1
                client.delete_subscriber(row["list_id"], row["email"])
        except BadRequest as exc:
            if exc.code != NOT_IN_LIST:
                result.exceptions[key] = ("REJECTED", f"code {exc.code}: {exc}")
                continue
            result.exceptions[key] = ("REMOVED", "not in the list any more")
        chunk.append(row)
        if len(chunk) >= MAX_IMPORT_BATCH:
            writer.ack(pl.DataFrame(chunk, schema=PLAN_SCHEMA))
            chunk = []
    if chunk:
        writer.ack(pl.DataFrame(chunk, schema=PLAN_SCHEMA))
