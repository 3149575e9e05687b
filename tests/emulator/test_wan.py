"""The emulator as a wide-area network: latency that is waited (so concurrent requests overlap),
a rate limit that holds under concurrent clients, concurrent serving without lost connections,
and malformed HTTP answered with 400 (over raw sockets, as a broken client would send it)."""

from __future__ import annotations

import base64
import http.client
import socket
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

import orjson
import pytest
import requests

from cmtoolkit.emulator import DEFAULT_API_KEY, Emulator

from .test_cli import serve, stop

Make = Callable[..., Emulator]


def basic(emu: Emulator) -> str:
    return "Basic " + base64.b64encode(f"{emu.api_key}:x".encode()).decode()


def timed_get(emu: Emulator, path: str = "/clients.json") -> tuple[float, int]:
    started = time.perf_counter()
    r = requests.get(emu.base_url + path, headers={"Authorization": basic(emu)}, timeout=10)
    return time.perf_counter() - started, r.status_code


def test_latency_is_waited_not_computed(emulator_factory: Make) -> None:
    latency, n = 0.4, 8
    emu = emulator_factory(seed_size=0, latency=latency)
    cpu = time.process_time()
    with ThreadPoolExecutor(n) as pool:
        answers = list(pool.map(lambda _: timed_get(emu), range(n)))
    cpu = time.process_time() - cpu
    assert all(status == 200 for _, status in answers)
    assert all(took >= latency for took, _ in answers)
    # The N answers waited at the same time (not one after another), burning no processor.
    assert emu.peak_waiting == n
    assert cpu < latency / 2, cpu
    # The control API is not behind the network: its answer is not held back.
    emu.peak_waiting = 0
    assert requests.get(emu.origin + "/_emulator/state", timeout=5).json()["latency"] == {
        "seconds": latency,
        "jitter": 0.0,
    }
    assert emu.peak_waiting == 0


def test_jitter_spreads_the_latency_and_the_control_api_sets_it(emulator_factory: Make) -> None:
    emu = emulator_factory(seed_size=0)
    assert timed_get(emu)[0] < 0.1
    r = requests.post(
        emu.origin + "/_emulator/latency", json={"latency": 0.2, "jitter": 0.1}, timeout=5
    )
    assert r.status_code == 200
    with ThreadPoolExecutor(10) as pool:
        took = [t for t, _ in pool.map(lambda _: timed_get(emu), range(10))]
    assert min(took) >= 0.1
    # The delays drawn lie within latency ± jitter and are spread, not one fixed delay.
    drawn = [emu.network_delay() for _ in range(200)]
    assert min(drawn) >= 0.1 and max(drawn) <= 0.3 and max(drawn) - min(drawn) > 0.1
    bad = requests.post(emu.origin + "/_emulator/latency", json={"latency": -1}, timeout=5)
    assert bad.status_code == 400 and emu.latency == 0.2


def test_rate_limit_holds_under_concurrent_clients(emulator_factory: Make) -> None:
    emu = emulator_factory(seed_size=0)
    emu.set_rate_limit(30, window=60)
    barrier = threading.Barrier(8)

    def client(_: int) -> list[requests.Response]:
        with requests.Session() as s:
            s.headers["Authorization"] = basic(emu)
            barrier.wait()
            return [s.get(emu.base_url + "/clients.json", timeout=10) for _ in range(10)]

    with ThreadPoolExecutor(8) as pool:
        answers = [r for rs in pool.map(client, range(8)) for r in rs]
    ok = [r for r in answers if r.status_code == 200]
    over = [r for r in answers if r.status_code == 429]
    assert (len(ok), len(over)) == (30, 50)
    # Every allowed request was counted once: the remaining counts are 29 down to 0, no repeats.
    assert sorted(int(r.headers["X-RateLimit-Remaining"]) for r in ok) == list(range(30))
    for r in over:
        assert r.json() == {"Code": 429, "Message": "Rate limit exceeded"}
        assert r.headers["X-RateLimit-Limit"] == "30"
        assert r.headers["X-RateLimit-Remaining"] == "0"
        assert 0 < int(r.headers["X-RateLimit-Reset"]) <= 60
    emu.advance(60)  # the window passes on the emulator's clock
    again = requests.get(emu.base_url + "/clients.json", headers={"Authorization": basic(emu)})
    assert again.status_code == 200 and again.headers["X-RateLimit-Remaining"] == "29"


def raw_exchange(port: int, data: bytes) -> bytes:
    with socket.create_connection(("127.0.0.1", port), timeout=5) as s:
        s.sendall(data)
        chunks = []
        while chunk := s.recv(65536):  # the server closes after a 400
            chunks.append(chunk)
    return b"".join(chunks)


@pytest.mark.parametrize(
    "request_bytes",
    [
        b"POST /api/v3.3/clients.json HTTP/1.1\r\nHost: x\r\nContent-Length: abc\r\n\r\n",
        b"POST /api/v3.3/clients.json HTTP/1.1\r\nHost: x\r\nContent-Length: -5\r\n\r\n",
        b"POST /api/v3.3/clients.json HTTP/1.1\r\nHost: x\r\nContent-Length: 1000000000000000"
        b"\r\n\r\n",
        b"POST /api/v3.3/clients.json HTTP/1.1\r\nHost: x\r\nContent-Length: 1e3\r\n\r\n",
        b"POST /api/v3.3/clients.json HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\n"
        b"Content-Length: 3\r\n\r\nab",
        b"GET /api/v3.3/clients.json\r\n\r\n",
        b"POST /api/v3.3/clients.json\r\n\r\n",
        b"NONSENSE\r\n\r\n",
    ],
    ids=["letters", "negative", "huge", "exponent", "twice", "no-version", "no-version-post", "1w"],
)
def test_malformed_http_gets_400(
    emulator_factory: Make, request_bytes: bytes, capfd: pytest.CaptureFixture[str]
) -> None:
    emu = emulator_factory(seed_size=0)
    answer = raw_exchange(emu.port, request_bytes)
    head, _, body = answer.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 400 "), answer[:200]
    assert b"content-type: application/json" in head.lower()
    assert orjson.loads(body)["Code"] == 400
    assert b"clients.json" not in body  # the request line is not echoed
    # The server goes on serving, and printed no traceback.
    assert timed_get(emu)[1] == 200
    err = capfd.readouterr().err
    assert "Traceback" not in err and "_headers_buffer" not in err


def test_many_concurrent_clients_lose_nothing(emulator_factory: Make) -> None:
    emu = emulator_factory(seed_size=10)
    list_id = emu.list_ids[0]
    clients, each = 100, 20
    barrier = threading.Barrier(clients)
    auth = basic(emu)

    def client(c: int) -> list[int]:
        statuses = []
        barrier.wait()
        for i in range(each):
            # A new connection per request: the accept backlog is what gets tested.
            conn = http.client.HTTPConnection("127.0.0.1", emu.port, timeout=30)
            body = orjson.dumps(
                {"EmailAddress": f"c{c}.p{i}@example.com", "Name": "x", "ConsentToTrack": "Yes"}
            )
            conn.request(
                "POST",
                f"/api/v3.3/subscribers/{list_id}.json",
                body,
                {"Authorization": auth, "Content-Type": "application/json"},
            )
            statuses.append(conn.getresponse().status)
            conn.close()
        return statuses

    with ThreadPoolExecutor(clients) as pool:
        statuses = [s for ss in pool.map(client, range(clients)) for s in ss]
    assert statuses == [201] * (clients * each)
    with emu.lock:
        stored = emu.account.clients[0].lists[0]
        assert len(stored) == 10 + clients * each


def test_serve_takes_latency_and_rate_limit_flags() -> None:
    proc, url = serve("--seed-size", "0", "--latency", "250", "--rate-limit", "5")
    try:
        started = time.perf_counter()
        r = requests.get(url + "/clients.json", auth=(DEFAULT_API_KEY, "x"))
        assert time.perf_counter() - started >= 0.25
        assert r.status_code == 200 and r.headers["X-RateLimit-Limit"] == "5"
    finally:
        assert stop(proc) == 0
    bad = serve("--latency", "-3")[0]
    assert bad.wait(timeout=20) == 2
