"""Shared helpers: the API sample responses (``cm_samples`` of tests/conftest.py), a fake clock,
and a client wired to ``responses`` with injected sleep/clock so nothing waits for real."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest
import responses

from cmtoolkit.campaign_monitor import ApiKeyAuth, CampaignMonitor, RetryPolicy
from cmtoolkit.secret import Secret

BASE = "https://api.createsend.com/api/v3.3"
API_KEY = "test-api-key-123"


class FakeClock:
    """A monotonic clock that only moves when ``sleep`` is called; records every wait."""

    def __init__(self) -> None:
        self.now = 1000.0
        self.sleeps: list[float] = []

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds


@pytest.fixture(autouse=True)
def _no_env_base_url(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("CMTOOLKIT_API_URL", raising=False)


@pytest.fixture
def rsps() -> Iterator[responses.RequestsMock]:
    with responses.RequestsMock(assert_all_requests_are_fired=False) as mock:
        yield mock


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def make_client(clock: FakeClock) -> Iterator[Callable[..., CampaignMonitor]]:
    made: list[CampaignMonitor] = []

    def make(auth: Any = None, **kw: Any) -> CampaignMonitor:
        kw.setdefault("retry", RetryPolicy(random=lambda: 0.5))
        kw.setdefault("sleep", clock.sleep)
        kw.setdefault("clock", clock)
        kw.setdefault("base_url", BASE)
        cm = CampaignMonitor(auth or ApiKeyAuth(Secret(API_KEY)), **kw)
        made.append(cm)
        return cm

    yield make
    for cm in made:
        cm.close()


@pytest.fixture
def cm(make_client: Callable[..., CampaignMonitor]) -> CampaignMonitor:
    return make_client()


class Fixtures:
    """The API sample responses plus this folder's constants (tests import nothing from
    conftest: importlib mode)."""

    base = BASE
    api_key = API_KEY

    def __init__(self, samples: Any) -> None:
        self.dir = samples.dir
        self.text: Callable[[str], str] = samples.text
        self.json: Callable[[str], Any] = samples.json


@pytest.fixture
def fx(cm_samples: Any) -> Fixtures:
    return Fixtures(cm_samples)
