"""A unique sentinel API key never appears in anything a batch run writes or prints.

The connection's credential is ``env:CMTOOLKIT_SENTINEL_KEY``; the emulator accepts only the
sentinel. One goal notebook deliberately prints the key, another holds a ``Password`` widget:
the reports must still hold zero occurrences (the runner redacts the credential's values and
drops widget state), and so must the index, the ledger, the alert payloads, every other file in
the workspace and the command's own stdout/stderr (with DEBUG logging).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
import uuid
from pathlib import Path
from typing import Any

import pytest

SENTINEL = "sentinelKEY" + uuid.uuid4().hex + "Zq9"
NOTEBOOKS = Path(__file__).resolve().parents[1] / "notebooks"


@pytest.fixture
def emulator(emulator_factory: Any) -> Any:
    return emulator_factory(api_key=SENTINEL)


def cmtoolkit(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "cmtoolkit.cli", "-vv", *args],
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
        check=False,
    )


def test_no_secret_in_reports_index_workspace_logs_or_output(make_workspace, tmp_path):
    payloads = tmp_path / "ws" / "alerts.jsonl"
    ws = make_workspace(
        key_env="CMTOOLKIT_SENTINEL_KEY",
        alerts={"on_failure": True, "command": f"cat >> {payloads}"},
    )
    env = {**os.environ, "CMTOOLKIT_SENTINEL_KEY": SENTINEL}
    before_tmp = set(Path(tempfile.gettempdir()).glob("cmtoolkit-run-*"))
    outputs = []
    for notebook in ("leaky", "widgets", "fails", "leaky"):
        folder = tmp_path / f"nb-{notebook}"
        folder.mkdir(exist_ok=True)
        shutil.copy(NOTEBOOKS / f"{notebook}.ipynb", folder / "02_import.ipynb")
        for extra in ([], ["--dry-run"], ["--json"]):
            done = cmtoolkit(
                "run", "news", "--goal", "import", "--workspace", str(ws.path),
                "--notebooks", str(folder), *extra, env=env,
            )  # fmt: skip
            assert done.returncode == (1 if notebook == "fails" else 0), done.stderr
            outputs += [done.stdout, done.stderr]
    for args in (["history", "news"], ["schedule", "list"], ["status", "news"]):
        done = cmtoolkit(*args, "--workspace", str(ws.path), env=env)
        outputs += [done.stdout, done.stderr]

    reports = list((ws.reports_dir / "news").glob("*.html"))
    assert len(reports) == 12 and payloads.exists()
    leaked_into_report = [p for p in reports if "[redacted]" in p.read_text()]
    assert leaked_into_report, "the leaky notebook did print the key; the runner redacted it"
    assert all("widget-secret-value" not in p.read_text() for p in reports)

    files = [p for p in ws.path.rglob("*") if p.is_file()]
    assert any(p.name == "index.html" for p in files) and any(p.suffix == ".ipynb" for p in files)
    hits = [str(p) for p in files if SENTINEL.encode() in p.read_bytes()]
    hits += [f"output {i}" for i, text in enumerate(outputs) if SENTINEL in text]
    # papermill's in-progress notebook lives in a private temporary folder, removed after the
    # run (other processes' runs may have theirs at this moment: only a secret there counts)
    for leftover in set(Path(tempfile.gettempdir()).glob("cmtoolkit-run-*")) - before_tmp:
        for path in leftover.rglob("*"):
            try:
                if path.is_file() and SENTINEL.encode() in path.read_bytes():
                    hits.append(f"temporary file {path}")
            except OSError:
                pass  # removed meanwhile
    assert hits == []
