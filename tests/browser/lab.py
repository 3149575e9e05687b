"""What the browser tests share: start JupyterLab, drive it in the system Chromium, stop it.

Playwright drives Debian's Chromium (``$CMTOOLKIT_CHROMIUM`` or ``/usr/bin/chromium``), never a
browser download; a test skips with the reason when Playwright or Chromium is missing. JupyterLab
runs with its own config, runtime and settings folders and with autosave off, so running a
notebook in the browser never writes the notebook file.
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import requests

ROOT = Path(__file__).resolve().parents[2]
ARTIFACTS = Path(__file__).with_name("artifacts")
CHROMIUM = os.environ.get("CMTOOLKIT_CHROMIUM", "/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


def requirements() -> Any:
    """``sync_playwright``, or skip the test saying what is missing."""
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        pytest.skip("playwright is not installed (pip install playwright)")
    if not Path(CHROMIUM).exists():
        pytest.skip(f"no Chromium at {CHROMIUM} (apt-get install -y chromium)")
    return sync_playwright


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def lab_environment(tmp_path: Path, **extra: str) -> dict[str, str]:
    """The test's own Jupyter folders (autosave off) and the variables given."""
    settings = tmp_path / "lab-settings"
    plugin = settings / "@jupyterlab" / "docmanager-extension"
    plugin.mkdir(parents=True, exist_ok=True)
    (plugin / "plugin.jupyterlab-settings").write_text(json.dumps({"autosave": False}))
    return {
        **os.environ,
        "JUPYTER_CONFIG_DIR": str(tmp_path / "jupyter-config"),
        "JUPYTER_RUNTIME_DIR": str(tmp_path / "jupyter-runtime"),
        "JUPYTERLAB_SETTINGS_DIR": str(settings),
        "JUPYTERLAB_WORKSPACES_DIR": str(tmp_path / "lab-workspaces"),
        **extra,
    }


def lab_arguments(port: int, token: str) -> list[str]:
    return [
        "--no-browser",
        "--ServerApp.ip=127.0.0.1",
        f"--ServerApp.port={port}",
        "--ServerApp.port_retries=0",
        f"--IdentityProvider.token={token}",
        *(["--allow-root"] if os.geteuid() == 0 else []),
        "--LabApp.news_url=",
        "--LabApp.check_for_updates_class=jupyterlab.NeverCheckForUpdate",
    ]


@dataclass
class Lab:
    url: str
    token: str
    proc: subprocess.Popen[bytes]
    log: Path

    def page_url(self, notebook: str) -> str:
        # reset: this notebook alone, not the tabs a previous page left open
        return f"{self.url}/lab/tree/{notebook}?reset&token={self.token}"


@contextlib.contextmanager
def running_lab(
    command: Sequence[str], *, cwd: Path, env: dict[str, str], log: Path, port: int, token: str
) -> Iterator[Lab]:
    """``command`` (which starts JupyterLab on ``port`` with ``token``) until the block ends."""
    with log.open("wb") as out:
        proc = subprocess.Popen(
            list(command),
            cwd=cwd,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        lab = Lab(f"http://127.0.0.1:{port}", token, proc, log)
        try:
            deadline = time.monotonic() + 90
            while True:
                with contextlib.suppress(requests.ConnectionError):
                    if requests.get(f"{lab.url}/api/status?token={token}", timeout=2).ok:
                        break
                if proc.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError("JupyterLab did not start:\n" + log.read_text())
                time.sleep(0.3)  # polling a starting server: no event to wait on
            yield lab
        finally:
            stop(proc)


def stop(proc: subprocess.Popen[bytes]) -> None:
    """SIGTERM to the process group (the server, its kernels, an emulator), then SIGKILL."""
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGTERM)
    try:
        proc.wait(timeout=30)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()


def sys_executable() -> str:
    return sys.executable


def new_token() -> str:
    return secrets.token_hex(16)


def launch(p: Any) -> Any:
    return p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)


def open_notebook(page: Any, lab: Lab, notebook: str) -> None:
    """Open ``notebook`` and wait for its kernel (cmtoolkit) to be idle."""
    page.goto(lab.page_url(notebook))
    page.wait_for_selector(".jp-Notebook .jp-Cell", state="visible")
    page.get_by_text("cmtoolkit | Idle").wait_for()
    news = page.get_by_role("button", name="No", exact=True)  # "get Jupyter news?"
    if news.count():
        news.first.click()
    page.locator(".jp-Notebook .jp-Cell").first.click()  # the menu acts on the focused notebook


def run_all(page: Any) -> None:
    """Run ▸ Run All Cells, answering the kernel dialog a fresh notebook may show."""
    from playwright.sync_api import TimeoutError as PlaywrightTimeout

    page.get_by_role("menuitem", name="Run", exact=True).click()
    page.locator("li[data-command='runmenu:run-all']").click()
    dialog = page.locator(".jp-Dialog")
    try:
        dialog.wait_for(timeout=5_000)
    except PlaywrightTimeout:
        return
    if dialog.locator("select").count():
        assert "cmtoolkit" in dialog.locator("select").input_value()
    dialog.get_by_role("button", name="Select").click()


DONE_JS = """() => {
  const prompts = [...document.querySelectorAll('.jp-CodeCell .jp-InputPrompt')];
  const failed = document.querySelector(
    ".jp-OutputArea-output[data-mime-type='application/vnd.jupyter.stderr']");
  return failed !== null
    || (prompts.length > 0 && prompts.every(p => /\\[\\d+\\]/.test(p.innerText)));
}"""


def wait_all_ran(page: Any, timeout_ms: int = 180_000) -> None:
    """Every code cell shows an execution count (run, not queued ``[*]``); a cell that failed
    (Run All stops there) fails at once, with its traceback."""
    page.wait_for_function(DONE_JS, timeout=timeout_ms)
    errors = error_outputs(page)
    assert not errors, "a cell failed:\n" + "\n".join(errors)
    page.get_by_text("cmtoolkit | Idle").wait_for()


def error_outputs(page: Any) -> list[str]:
    """The text of every error output on the page (a traceback, a stderr stream)."""
    cells = page.locator(
        ".jp-OutputArea-output[data-mime-type='application/vnd.jupyter.stderr'],"
        " .jp-OutputArea-output[data-mime-type='application/vnd.jupyter.error']"
    )
    return [cells.nth(i).inner_text() for i in range(cells.count())]


def screenshot(page: Any, name: str) -> Path:
    ARTIFACTS.mkdir(exist_ok=True)
    path = ARTIFACTS / name
    page.screenshot(path=str(path), full_page=True)
    return path
