"""Several requests in flight (DESIGN §9), against the emulator over HTTP: pages come back in
the order a sequential read gives, whatever faults the service throws; a 429 halves the
concurrency and successes grow it back; the rate-limit budget is spread instead of spent; import
batches are acknowledged as they arrive; an expired token is refreshed once for all the calls
that met it."""

from __future__ import annotations

import itertools
import time
from collections.abc import Callable
from typing import Any

import polars as pl
import pytest

from cmtoolkit.campaign_monitor import CampaignMonitor, OAuthAuth
from cmtoolkit.campaign_monitor import client as client_module
from cmtoolkit.campaign_monitor.concurrency import Flow
from cmtoolkit.emulator import Emulator
from cmtoolkit.errors import BadRequest, ServerError

Make = Callable[..., Any]
STATES = ("Active", "Unconfirmed", "Unsubscribed", "Bounced", "Deleted")


def read_all(cm: CampaignMonitor, list_ids: list[str]) -> list[tuple[int, pl.DataFrame]]:
    selections = [(lst, state) for lst in list_ids for state in STATES]
    return list(cm.subscriber_frames_many(selections, page_size=10))


def same(a: list[tuple[int, pl.DataFrame]], b: list[tuple[int, pl.DataFrame]]) -> bool:
    return [i for i, _ in a] == [i for i, _ in b] and all(
        x.equals(y) for (_, x), (_, y) in zip(a, b, strict=True)
    )


def test_pages_are_read_concurrently_and_yielded_in_order(
    emulator_factory: Make, cm_factory: Make
) -> None:
    emu = emulator_factory(seed_size=300)
    expected = read_all(cm_factory(emu, max_in_flight=1), emu.list_ids)
    pages = len(expected)
    assert pages > 30
    emu.set_latency(0.05)
    cm = cm_factory(emu, max_in_flight=4)
    got = read_all(cm, emu.list_ids)
    assert same(got, expected)
    assert cm.flow.peak == 4
    # Seen from the server: four requests were waiting out their latency at the same moment
    # (one at a time, this is 1), and never more than the client allows.
    assert emu.peak_waiting == 4
    # subscriber_frames of one selection agrees with the many-selection read.
    one = list(cm.subscriber_frames(emu.list_ids[0], "Active", page_size=10))
    assert all(f.equals(g) for f, (_, g) in zip(one, got, strict=False))


def test_a_page_being_decoded_leaves_its_slot_to_another_request(
    emulator_factory: Make, cm_factory: Make, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Decoding happens outside the request's slot, and other workers fill it meanwhile: with
    one worker per slot, a worker decoding left its slot idle (4 slots: 3.2 on the wire)."""
    emu = emulator_factory(seed_size=300)
    emu.set_latency(0.2)
    cm = cm_factory(emu, max_in_flight=2)
    real = client_module.parse_frame_page
    calls = itertools.count(1)
    filled: list[bool] = []

    def decode(content: bytes) -> Any:
        if next(calls) == 2:  # page 1 was read alone; the next ones are queued by now
            deadline = time.monotonic() + 10  # a safety net: this takes 0.2 s when it works
            while cm.flow.in_flight < cm.max_in_flight and time.monotonic() < deadline:
                time.sleep(0.001)
            filled.append(cm.flow.in_flight == cm.max_in_flight)
        return real(content)

    monkeypatch.setattr(client_module, "parse_frame_page", decode)
    frames = list(cm.subscriber_frames_many([(emu.list_ids[0], "Active")], page_size=10))
    assert len(frames) > 6
    assert filled == [True], "a page being decoded held back a request"


def test_order_and_content_survive_faults_with_concurrency(
    emulator_factory: Make, cm_factory: Make
) -> None:
    emu = emulator_factory(seed_size=300)
    expected = read_all(cm_factory(emu, max_in_flight=1), emu.list_ids)
    emu.set_faults("500:p=0.15;drop:p=0.05;truncate:p=0.05;429:p=0.05,reset=1;503:p=0.05")
    cm = cm_factory(emu, max_in_flight=4)
    got = read_all(cm, emu.list_ids)
    assert same(got, expected)
    statuses = [s for _, _, s in emu.requests]
    assert statuses.count(500) + statuses.count(503) > 5  # the faults did fire
    assert cm.flow.peak > 1


def test_a_failing_page_raises_in_order_after_the_pages_before_it(
    emulator_factory: Make, cm_factory: Make
) -> None:
    emu = emulator_factory(seed_size=300)
    lst = emu.list_ids[0]
    expected = list(cm_factory(emu, max_in_flight=1).subscriber_frames(lst, page_size=10))
    emu.set_faults(f"500:path=/lists/{lst}/active.json,after=3")
    cm = cm_factory(emu, max_in_flight=4)
    got = []
    with pytest.raises(ServerError):
        for frame in cm.subscriber_frames(lst, "Active", page_size=10):
            got.append(frame)
    # Three requests were answered (page 1 and two of those in flight after it): what came
    # out is the read's beginning, in order, and nothing after the page that failed.
    assert 1 <= len(got) <= 3 and len(expected) > 5
    assert all(f.equals(g) for f, g in zip(got, expected, strict=False))


def test_429_halves_the_concurrency_once_per_round_and_successes_grow_it_back() -> None:
    flow = Flow(8, clock=lambda: 0.0, sleep=lambda s: None)
    a, b = flow.acquire(), flow.acquire()
    flow.release(a, 429)
    assert flow.limit == 4 and flow.slots == 4
    flow.release(b, 429)  # sent before the cut: no second cut
    assert flow.limit == 4
    c = flow.acquire()
    flow.release(c, 429)
    assert flow.limit == 2
    for _ in range(3):  # a round of successes adds about one slot
        flow.release(flow.acquire(), 200)
    assert flow.slots == 3
    for _ in range(50):
        flow.release(flow.acquire(), 200)
    assert flow.limit == 8 and flow.rate_limited == 3
    with pytest.raises(ValueError, match="max_in_flight"):
        Flow(0)


def test_the_rate_limit_budget_is_spread_over_the_window() -> None:
    now = [100.0]
    slept: list[float] = []

    def sleep(s: float) -> None:
        slept.append(s)
        now[0] += s

    flow = Flow(4, clock=lambda: now[0], sleep=sleep)
    t = flow.acquire()
    now[0] += 0.1  # a 100 ms round trip: full speed is 40 requests a second
    flow.release(t, 200, {"X-RateLimit-Remaining": "19", "X-RateLimit-Reset": "10"})
    # 19 left for 10 s: one start every 10/19 s instead of spending them in half a second.
    starts = []
    for _ in range(3):
        flow.acquire()
        starts.append(now[0])
    assert starts[1] - starts[0] == pytest.approx(10 / 19, rel=0.2)
    assert starts[2] - starts[1] == pytest.approx(10 / 19, rel=0.2)
    # Nothing left: wait for the reset.
    flow.release(t, 200, {"X-RateLimit-Remaining": "0", "X-RateLimit-Reset": "7"})
    before = now[0]
    flow.acquire()
    assert now[0] - before == pytest.approx(7, abs=0.01)
    # A budget full speed cannot spend before the reset is not paced.
    flow = Flow(4, clock=lambda: now[0], sleep=sleep)
    t = flow.acquire()
    now[0] += 0.1
    flow.release(t, 200, {"X-RateLimit-Remaining": "1000", "X-RateLimit-Reset": "2"})
    slept.clear()
    for _ in range(4):
        flow.acquire()
    assert slept == []


def test_a_stale_answer_does_not_raise_the_budget() -> None:
    """Answers are released out of order; the one counted first must not widen the budget the
    later one narrowed (it let one request too many through: a 429 at the window's end)."""
    now = [100.0]

    def sleep(s: float) -> None:
        now[0] += s

    flow = Flow(4, clock=lambda: now[0], sleep=sleep)
    first, second = flow.acquire(), flow.acquire()
    now[0] += 0.1
    flow.release(second, 200, {"X-RateLimit-Remaining": "9", "X-RateLimit-Reset": "10"})
    flow.release(first, 200, {"X-RateLimit-Remaining": "10", "X-RateLimit-Reset": "10"})
    a, b = flow.acquire(), flow.acquire()
    assert b.started - a.started == pytest.approx(10 / 9, rel=0.01)
    # Once the window has passed, the next answer's budget is believed again.
    flow.release(a, 200)
    flow.release(b, 200)
    now[0] += 10
    a, b = flow.acquire(), flow.acquire()
    now[0] += 0.1
    flow.release(a, 200, {"X-RateLimit-Remaining": "14", "X-RateLimit-Reset": "7"})
    flow.release(b, 200, {"X-RateLimit-Remaining": "13", "X-RateLimit-Reset": "7"})
    c, d = flow.acquire(), flow.acquire()
    assert d.started - c.started == pytest.approx(7 / 13, rel=0.01)


def test_a_window_that_began_before_the_estimated_reset_is_recognised() -> None:
    """Reset is whole seconds, so the end of a window is known to a second at best. An answer
    whose window must end later than the one known (sent at 200, 5 s left: not before 204) is
    the next window's: its budget counts, and the wait for the old window's end is dropped."""
    now = [200.0]
    flow = Flow(4, clock=lambda: now[0], sleep=lambda s: now.__setitem__(0, now[0] + s))
    a, b = flow.acquire(), flow.acquire()
    now[0] += 0.1
    flow.release(a, 200, {"X-RateLimit-Remaining": "0", "X-RateLimit-Reset": "2"})
    now[0] += 0.1
    flow.release(b, 200, {"X-RateLimit-Remaining": "14", "X-RateLimit-Reset": "5"})
    c, d = flow.acquire(), flow.acquire()
    assert c.started == pytest.approx(200.2)
    assert d.started - c.started == pytest.approx(5 / 14, rel=0.01)


def test_a_rate_limited_read_loses_nothing_and_rarely_hits_the_limit(
    emulator_factory: Make, cm_factory: Make
) -> None:
    emu = emulator_factory(seed_size=300)
    expected = read_all(cm_factory(emu, max_in_flight=1), emu.list_ids)
    emu.set_rate_limit(15, window=5)
    seen = len(emu.requests)
    # The client's clock is the emulator's: its waits move it, so windows pass at once.
    cm = cm_factory(emu, max_in_flight=4, clock=emu.now)
    got = read_all(cm, emu.list_ids)
    assert same(got, expected)
    statuses = [s for _, p, s in list(emu.requests)[seen:] if p.startswith("/api/")]
    assert len(statuses) >= len(expected) and statuses.count(200) == len(expected)
    assert statuses.count(429) <= max(1, len(statuses) // 100), statuses.count(429)


def rows(n: int, start: int = 0) -> list[dict[str, object]]:
    return [
        {"EmailAddress": f"b{i}@example.com", "Name": f"B {i}"} for i in range(start, start + n)
    ]


def test_import_batches_are_acknowledged_as_they_arrive(
    emulator_factory: Make, cm_factory: Make
) -> None:
    emu = emulator_factory(seed_size=0)
    cm = cm_factory(emu, max_in_flight=4)
    lst = cm.create_list(emu.client_id, "Empty")
    emu.set_faults("500:p=0.3,method=POST")
    jobs = [(lst, rows(20, 20 * k)) for k in range(12)]
    jobs.append((lst, [{"Name": "no address"}]))  # a partial success (400 code 210)
    acks = list(cm.import_batches(jobs))
    assert sorted(a.index for a in acks) == list(range(13))
    assert all(a.error is None and a.result is not None for a in acks)
    assert sum(a.result.total_new_subscribers for a in acks if a.result) == 240
    partial = [a for a in acks if a.result and a.result.failures]
    assert [a.index for a in partial] == [12] and partial[0].rows == jobs[12][1]
    with emu.lock:
        assert len(emu.account.clients[0].lists[0]) == 240
    assert cm.flow.peak > 1


def test_a_failing_batch_stops_sending_but_yields_what_was_acknowledged(
    emulator_factory: Make, cm_factory: Make
) -> None:
    emu = emulator_factory(seed_size=0)
    cm = cm_factory(emu, max_in_flight=4)
    lst = cm.create_list(emu.client_id, "Empty")
    emu.set_faults("500:method=POST,after=5")  # the 6th import on fails, retries included
    acks = []
    with pytest.raises(ServerError):
        for ack in cm.import_batches((lst, rows(10, 10 * k)) for k in range(40)):
            acks.append(ack)
    assert len(acks) == 5
    with emu.lock:  # everything acknowledged is stored, nothing else
        assert len(emu.account.clients[0].lists[0]) == 50
    posts = [p for m, p, _ in emu.requests if m == "POST"]
    assert len(posts) < 40  # it stopped sending


@pytest.mark.parametrize("in_flight", [1, 4])
def test_a_refused_batch_is_split_until_the_bad_rows_stand_alone(
    emulator_factory: Make, cm_factory: Make, monkeypatch: pytest.MonkeyPatch, in_flight: int
) -> None:
    """With ``split``, a whole-request 400 is sent again in halves ahead of the next batches,
    faults and all; only the bad rows come back refused, each alone, and every other row is
    acknowledged exactly once, placed by ``start`` in its input batch."""
    emu = emulator_factory(seed_size=0)
    cm = cm_factory(emu, max_in_flight=in_flight)
    lst = cm.create_list(emu.client_id, "Empty")
    real = cm.import_batch
    bad = {"b5@example.com", "b37@example.com", "b38@example.com"}

    def picky(list_id: str, batch: list[dict[str, object]], **kw: Any) -> Any:
        if any(r["EmailAddress"] in bad for r in batch):
            raise BadRequest("Invalid JSON in the request", status=400, code=400)
        return real(list_id, batch, **kw)

    monkeypatch.setattr(cm, "import_batch", picky)
    emu.set_faults("500:p=0.2,method=POST")
    jobs = [(lst, rows(20, 20 * k)) for k in range(4)]
    acks = list(cm.import_batches(jobs, split=True))
    refused = sorted(str(a.rows[0]["EmailAddress"]) for a in acks if a.error is not None)
    assert refused == sorted(bad)
    assert all(len(a.rows) == 1 for a in acks if a.error is not None)
    placed = sorted(
        (a.index, a.start + i, r["EmailAddress"]) for a in acks for i, r in enumerate(a.rows)
    )
    assert placed == [(k, i, f"b{20 * k + i}@example.com") for k in range(4) for i in range(20)]
    with emu.lock:
        assert len(emu.account.clients[0].lists[0]) == 80 - len(bad)
    assert (cm.flow.peak > 1) == (in_flight > 1)
    # Without split the refusal comes back whole, for the caller.
    whole = list(cm.import_batches(jobs[:1]))
    assert [len(a.rows) for a in whole] == [20] and whole[0].error is not None


def test_single_calls_run_concurrently_and_a_failure_stops_the_rest(
    emulator_factory: Make, cm_factory: Make
) -> None:
    emu = emulator_factory(seed_size=0)
    cm = cm_factory(emu, max_in_flight=4)
    lst = cm.create_list(emu.client_id, "Empty")
    cm.import_batch(lst, rows(30))
    emu.set_latency(0.02)
    emails = [f"b{i}@example.com" for i in range(30)]
    done = [e for e, _ in cm.concurrently(emails, lambda e: cm.unsubscribe(lst, e))]
    assert sorted(done) == sorted(emails) and cm.flow.peak > 1
    states = {s.email for s in cm.subscribers(lst, "Unsubscribed")}
    assert states == set(emails)

    def fails_at_ten(email: str) -> None:
        if email == "b10@example.com":
            raise ServerError("boom", status=500)
        cm.delete_subscriber(lst, email)

    seen: list[str] = []
    with pytest.raises(ServerError):
        for email, _ in cm.concurrently(emails, fails_at_ten):
            seen.append(email)
    assert "b10@example.com" not in seen and len(seen) < 29  # it stopped starting calls
    deleted = {s.email for s in cm.subscribers(lst, "Deleted")}
    assert deleted == set(seen)  # every call that went through was yielded


def test_an_expired_token_is_refreshed_once_for_every_call_in_flight(
    emulator_factory: Make, cm_factory: Make
) -> None:
    emu: Emulator = emulator_factory(seed_size=300, rotate_refresh_tokens=True)
    expected = read_all(cm_factory(emu, max_in_flight=1), emu.list_ids)
    raw = emu.issue_token(emu.oauth_app.client_id)  # type: ignore[attr-defined]
    emu.set_latency(0.02)  # keeps several requests in flight when the token dies
    refreshed: list[Any] = []
    auth = OAuthAuth(raw["access_token"], raw["refresh_token"])
    cm = cm_factory(emu, auth, max_in_flight=4, on_tokens_refreshed=refreshed.append)
    emu.set_faults("expire:after=6")
    assert same(read_all(cm, emu.list_ids), expected)
    assert len(refreshed) == 1


def test_the_connection_file_sets_max_in_flight(monkeypatch: pytest.MonkeyPatch) -> None:
    from cmtoolkit.connection import parse_connection
    from cmtoolkit.connection.client import client_for
    from cmtoolkit.errors import ConnectionFileError

    def conn(extra: str) -> str:
        return (
            "name: c\ncampaign_monitor:\n  credential: env:CM_API_KEY\n"
            + extra
            + f"import:\n  lists: [{'a' * 32}]\n"
            + "  identifiers: [{field: EmailAddress, property: email}]\n"
        )

    monkeypatch.setenv("CM_API_KEY", "k")
    default = parse_connection(conn(""), file="c.yaml")
    assert default.campaign_monitor.max_in_flight == 4
    assert "max_in_flight" not in default.to_dict()["campaign_monitor"]  # type: ignore[operator]
    eight = parse_connection(conn("  max_in_flight: 8\n"), file="c.yaml")
    assert eight.to_dict()["campaign_monitor"] == {
        "credential": "env:CM_API_KEY",
        "max_in_flight": 8,
    }
    with client_for(eight, base_url="http://127.0.0.1:9/api/v3.3") as cm:
        assert cm.max_in_flight == 8 and cm.flow.slots == 8
    for bad in ("0", "33", "true", "four"):
        with pytest.raises(ConnectionFileError, match="max_in_flight") as info:
            parse_connection(conn(f"  max_in_flight: {bad}\n"), file="c.yaml")
        assert "1 to 32" in str(info.value)
