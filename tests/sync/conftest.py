"""tests/sync: the model-based tests' budget and steps, shown in the session's summary."""

from __future__ import annotations

from typing import Any

from tests.sync import model_budget


def pytest_terminal_summary(terminalreporter: Any) -> None:
    for line in model_budget.LINES:
        terminalreporter.write_line(line)
