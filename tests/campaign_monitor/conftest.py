"""Shared helpers: the fixtures folder (shared/ is a sibling of the clone), a fake clock, and a
client wired to ``responses`` with injected sleep/clock so nothing waits for real."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import responses

from cmtoolkit.campaign_monitor import ApiKeyAuth, CampaignMonitor, RetryPolicy
from cmtoolkit.secret import Secret

BASE = "https://api.createsend.com/api/v3.3"
API_KEY = "test-api-key-123"


def fixtures_dir() -> Path:
    """``shared/fixtures/campaign_monitor`` next to the repository clone."""
    return Path(__file__).resolve().parents[2].parent / "shared" / "fixtures" / "campaign_monitor"


def fixture_text(name: str) -> str:
    return (fixtures_dir() / name).read_text(encoding="utf-8")


def fixture_json(name: str) -> Any:
    return json.loads(fixture_text(name))


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
    """Access to the shared API fixtures (tests import nothing from conftest: importlib mode)."""

    dir = staticmethod(fixtures_dir)
    text = staticmethod(fixture_text)
    json = staticmethod(fixture_json)
    base = BASE
    api_key = API_KEY


@pytest.fixture
def fx() -> Fixtures:
    return Fixtures()
