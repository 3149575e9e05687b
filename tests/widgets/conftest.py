"""Fixtures: the shared set-up (tests/widgets/env.py) against a fresh emulator, and an editor."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import ipywidgets as W
import pytest

from cmtoolkit.credentials import CredentialStore
from cmtoolkit.widgets import ConnectionEditor
from tests.widgets.env import Setup, prepare


@pytest.fixture
def setup(
    emulator_factory: Callable[..., Any],
    cm_factory: Callable[..., Any],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> Setup:
    return prepare(emulator_factory, cm_factory, tmp_path, monkeypatch)


@pytest.fixture
def editor(setup: Setup, tmp_path: Path) -> Iterator[ConnectionEditor]:
    ed = ConnectionEditor.open(
        setup.ws.path, "demo", credentials=CredentialStore(tmp_path / "credentials.json")
    )
    yield ed
    ed.reset_client()


@pytest.fixture(autouse=True)
def _close_widgets() -> Iterator[None]:
    """Each test starts and ends with no live widget (manager state is per process)."""
    W.Widget.close_all()
    yield
    W.Widget.close_all()
