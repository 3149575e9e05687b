"""Server answers through a mangling proxy: every one is a clear error (exit 2) that says what
came back, no traceback, and the workspace unchanged."""

from __future__ import annotations

from collections.abc import Callable
from functools import partial
from pathlib import Path

import pytest

from cmtoolkit.campaign_monitor.retry import RetryPolicy
from cmtoolkit.emulator import Emulator
from tests.hostile.conftest import Answer, checksum
from tests.hostile.mangling import MANGLES, mangling_proxy


@pytest.fixture(autouse=True)
def _quick_retries(monkeypatch: pytest.MonkeyPatch) -> None:
    """The same retries, waits of a millisecond: the corpus stays fast."""
    quick = partial(RetryPolicy, base_delay=0.001, max_delay=0.001)
    monkeypatch.setattr("cmtoolkit.campaign_monitor.client.RetryPolicy", quick)
    monkeypatch.setattr("cmtoolkit.campaign_monitor.transport.RetryPolicy", quick)


@pytest.mark.parametrize("name", sorted(MANGLES))
@pytest.mark.parametrize("command", ["preview", "sync"])
def test_a_mangled_answer_is_a_clear_error(
    name: str,
    command: str,
    ws: Path,
    emu: Emulator,
    cli: Callable[..., Answer],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    mangle, says = MANGLES[name]
    before = checksum(ws)
    with mangling_proxy(emu.base_url or "", mangle) as url:
        monkeypatch.setenv("CMTOOLKIT_API_URL", url)
        got = cli(command, "c1", "--goal", "import", "--workspace", str(ws))
    assert got.code == 2, (got.code, got.out[-1000:], got.err[-2000:])
    assert "traceback" not in got.err.lower() and got.err.startswith("error:"), got.err
    for word in says:
        assert word.lower() in got.err.lower(), (word, got.err)
    assert len(got.err) < 3000
    if command == "preview":
        assert checksum(ws) == before
