"""What the model-based tests ran, for the line ``tests/sync/conftest.py`` prints at the end of
the session (a passing test's own output is hidden by pytest)."""

from __future__ import annotations

import tempfile
from pathlib import Path

#: Lines to print in the terminal summary, e.g. "import model: 15 examples x 12 steps, ...".
LINES: list[str] = []
#: Steps (checked states) the import model test ran.
STEPS = 0
#: Where a model test's workspaces go (one per example, removed after it).
BASE = Path(tempfile.gettempdir())
