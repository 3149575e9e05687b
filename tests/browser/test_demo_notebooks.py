"""Issue 16's first must-show: after a fresh demo, the command it prints opens JupyterLab where
all four notebooks run top to bottom with their default parameters.

The demo runs as a user runs it (``cmtoolkit demo``, small), with nothing of the test's
environment; its last line is the command, started as printed (JupyterLab's own options after
``--``: port, token, no browser). Chromium opens each notebook, runs all cells, and finds no error
output and the widgets of each step. The notebooks are a copy (``$CMTOOLKIT_NOTEBOOKS``), so a
run in the browser cannot touch the repository's.
"""

from __future__ import annotations

import os
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.browser import lab as L

pytestmark = [pytest.mark.browser, pytest.mark.slow, pytest.mark.timeout(900)]

NOTEBOOKS = {
    # notebook: text that only shows when its widgets rendered against the demo
    "01_connect.ipynb": "Reset Authentication",
    "02_import.ipynb": "Set if empty",
    "03_export.ipynb": "newsletter_optin",
    "04_run_and_history.ipynb": "Run now",
}


def test_the_printed_command_opens_notebooks_that_run_with_their_defaults(tmp_path: Path) -> None:
    sync_playwright = L.requirements()
    ws = tmp_path / "workspace"
    env = {k: v for k, v in os.environ.items() if not k.startswith("CMTOOLKIT_")}
    env["CMTOOLKIT_CREDENTIALS"] = str(tmp_path / "credentials.json")
    env.pop("CM_API_KEY", None)
    done = subprocess.run(
        [sys.executable, "-m", "cmtoolkit.cli", "demo", "--workspace", str(ws),
         "--profiles", "1500", "--subscribers", "900"],
        capture_output=True, text=True, env=env, timeout=600, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr
    last = done.stdout.strip().splitlines()[-1]
    prefix = "[demo] open the notebooks (JupyterLab, with the emulator running): "
    assert last.startswith(prefix), done.stdout
    command = shlex.split(last.removeprefix(prefix))
    assert command[-3:] == ["--serve", "--workspace", str(ws.resolve())]
    # the workspace outlives the demo: the credential is stored, not an environment variable
    assert "env:" not in (ws / "connections" / "demo.yaml").read_text()

    copy = tmp_path / "notebooks"
    copy.mkdir()
    for nb in (L.ROOT / "notebooks").glob("0*.ipynb"):
        shutil.copy(nb, copy / nb.name)
    port, token = L.free_port(), L.new_token()
    lab_env = L.lab_environment(tmp_path, **env, CMTOOLKIT_NOTEBOOKS=str(copy))
    ARGS = ["--", *L.lab_arguments(port, token)]
    with L.running_lab(
        [*command, *ARGS], cwd=tmp_path, env=lab_env, log=tmp_path / "lab.log",
        port=port, token=token,
    ) as lab, sync_playwright() as p:  # fmt: skip
        browser = L.launch(p)
        try:
            for notebook, marker in NOTEBOOKS.items():
                page = browser.new_page(viewport={"width": 1400, "height": 1800})
                page.set_default_timeout(60_000)
                try:
                    L.open_notebook(page, lab, notebook)
                    L.run_all(page)
                    L.wait_all_ran(page)
                    page.get_by_text(marker).first.wait_for(state="attached")
                    assert L.error_outputs(page) == [], notebook
                    L.screenshot(page, f"demo_{notebook.removesuffix('.ipynb')}.png")
                except Exception:
                    L.screenshot(page, f"demo_{notebook.removesuffix('.ipynb')}_failure.png")
                    raise
                finally:
                    page.close()
        finally:
            browser.close()
    for nb in copy.glob("*.ipynb"):  # autosave off: the copies were never written
        assert nb.read_bytes() == (L.ROOT / "notebooks" / nb.name).read_bytes()
    assert "emulator stopped, its account saved" in (tmp_path / "lab.log").read_text()
