"""Shared pytest fixtures: a real emulated Campaign Monitor API and a client bound to it.

``emulator``  a fresh in-process :class:`cmtoolkit.emulator.Emulator` on an ephemeral loopback
              port (200 seeded people, three lists, one registered OAuth app), stopped after the
              test. Use ``.base_url``, ``.api_key`` (str), ``.client_id``, ``.list_ids``,
              ``.account`` (the live data), ``.reseed(seed_size=...)``, ``.set_faults(SPEC)``,
              ``.revoke(token)``, ``.expire(token)``, ``.advance(seconds)`` (its clock),
              ``.set_rate_limit(limit, window, headers)``, ``.oauth_app``.
``emulator_factory``  ``make(**Emulator kwargs)`` for other seeds/sizes; all stopped afterwards.
``cm_factory``  ``make(emu, auth=None, **kwargs)`` more such clients (e.g. OAuth), closed after.
``cm``        a :class:`cmtoolkit.campaign_monitor.CampaignMonitor` for ``emulator`` with an
              API key and a retry policy whose sleep never sleeps: it records the wait in
              ``cm.sleeps`` and advances the emulator clock by it. Skips the test when the
              client package is not importable.
``cm_samples``  the Campaign Monitor sample responses in ``tests/fixtures/campaign_monitor``
              (``.dir``, ``.text(name)``, ``.json(name)``): the one way a test reaches them, so
              no test reads anything outside the repository.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from cmtoolkit.emulator import Emulator, OAuthApp

TEST_OAUTH_APP = OAuthApp(
    client_id="100001",
    client_secret="emulator-test-secret",
    redirect_uri="http://127.0.0.1:8799/callback",
)
DEFAULT_SEED_SIZE = 200
FIXTURES = Path(__file__).resolve().parent / "fixtures"


class Samples:
    """Real Campaign Monitor response bodies kept in the repository (see their README.md)."""

    dir = FIXTURES / "campaign_monitor"

    def text(self, name: str) -> str:
        return (self.dir / name).read_text(encoding="utf-8")

    def json(self, name: str) -> Any:
        return json.loads(self.text(name))


@pytest.fixture(scope="session")
def cm_samples() -> Samples:
    return Samples()


@pytest.fixture
def emulator_factory() -> Iterator[Callable[..., Emulator]]:
    started: list[Emulator] = []

    def make(**kwargs: Any) -> Emulator:
        kwargs.setdefault("seed_size", DEFAULT_SEED_SIZE)
        kwargs.setdefault("seed", 1)
        kwargs.setdefault("oauth_apps", [TEST_OAUTH_APP])
        emu = Emulator(**kwargs)
        emu.oauth_app = TEST_OAUTH_APP  # type: ignore[attr-defined]
        emu.start("127.0.0.1", 0)
        started.append(emu)
        return emu

    yield make
    for emu in started:
        emu.stop()


@pytest.fixture
def emulator(emulator_factory: Callable[..., Emulator]) -> Emulator:
    return emulator_factory()


def make_client(emu: Emulator, auth: Any = None, **kwargs: Any) -> Any:
    """A CampaignMonitor for ``emu`` that never sleeps: a requested wait is recorded in
    ``.sleeps`` and moves the emulator's clock instead (so rate-limit windows pass), which is
    also the client's clock."""
    cmp = pytest.importorskip("cmtoolkit.campaign_monitor")
    from cmtoolkit.secret import Secret

    sleeps: list[float] = []

    def sleep(seconds: float) -> None:
        sleeps.append(seconds)
        emu.advance(seconds)

    kwargs.setdefault("retry", cmp.RetryPolicy(max_attempts=6, base_delay=0.01, max_delay=0.05))
    kwargs.setdefault("clock", emu.now)  # the clock its sleeps move (rate-limit pacing reads it)
    client = cmp.CampaignMonitor(
        auth or cmp.ApiKeyAuth(Secret(emu.api_key)),
        base_url=emu.base_url,
        sleep=sleep,
        **kwargs,
    )
    client.sleeps = sleeps
    return client


@pytest.fixture
def cm_factory() -> Iterator[Callable[..., Any]]:
    """``make(emu, auth=None, **kwargs)``: more clients like ``cm``; closed afterwards."""
    made: list[Any] = []

    def make(emu: Emulator, auth: Any = None, **kwargs: Any) -> Any:
        client = make_client(emu, auth, **kwargs)
        made.append(client)
        return client

    yield make
    for client in made:
        client.close()


@pytest.fixture
def cm(emulator: Emulator) -> Iterator[Any]:
    client = make_client(emulator)
    yield client
    client.close()
