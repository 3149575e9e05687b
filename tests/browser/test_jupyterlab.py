"""The import notebook in a real JupyterLab, driven by a real Chromium (Playwright).

JupyterLab runs on loopback in a temporary folder holding a copy of the notebooks, a prepared
workspace with the ``demo`` connection, and an environment pointing at an in-process emulator.
The test opens ``02_import.ipynb``, runs all cells, sees the list picker with the emulator's
lists, the mapping editor and the preview with numbers, changes a merge rule and sees the preview
change. A screenshot lands in ``tests/browser/artifacts/`` (git-ignored).

Needs the Python package ``playwright`` and a Chromium at ``$CMTOOLKIT_CHROMIUM`` or
``/usr/bin/chromium`` (Debian package ``chromium``); skipped with the reason when either is absent.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import requests

from tests.widgets.env import CREDENTIAL_ENV, SENTINEL_KEY, Setup

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

pytestmark = [pytest.mark.browser, pytest.mark.timeout(600)]


def _requirements() -> Any:
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        pytest.skip("playwright is not installed (pip install playwright)")
    if not Path(CHROMIUM).exists():
        pytest.skip(f"no Chromium at {CHROMIUM} (apt-get install -y chromium)")
    return sync_playwright


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def lab(
    emulator_factory: Callable[..., Any],
    cm_factory: Callable[..., Any],
    tmp_path: Path,
) -> Iterator[dict[str, Any]]:
    sync_playwright = _requirements()  # skip before starting anything
    emu = emulator_factory(api_key=SENTINEL_KEY)
    home = tmp_path / "lab"
    home.mkdir()
    for nb in (ROOT / "notebooks").glob("0*.ipynb"):
        shutil.copy(nb, home / nb.name)
    setup = Setup(emu, cm_factory(emu), home)  # workspace at lab/workspace: the default parameter
    token = secrets.token_hex(16)
    port = _free_port()
    env = {
        **os.environ,
        "CMTOOLKIT_API_URL": emu.base_url,
        CREDENTIAL_ENV: SENTINEL_KEY,
        "CMTOOLKIT_CREDENTIALS": str(tmp_path / "credentials.json"),
        "JUPYTER_CONFIG_DIR": str(tmp_path / "jupyter-config"),
        "JUPYTER_RUNTIME_DIR": str(tmp_path / "jupyter-runtime"),
        "JUPYTERLAB_SETTINGS_DIR": str(tmp_path / "lab-settings"),
        "JUPYTERLAB_WORKSPACES_DIR": str(tmp_path / "lab-workspaces"),
    }
    log = (tmp_path / "jupyterlab.log").open("wb")
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "jupyterlab",
            "--no-browser",
            "--ServerApp.ip=127.0.0.1",
            f"--ServerApp.port={port}",
            "--ServerApp.port_retries=0",
            f"--IdentityProvider.token={token}",
            *(["--allow-root"] if os.geteuid() == 0 else []),
            f"--ServerApp.root_dir={home}",
            "--LabApp.news_url=",
            "--LabApp.check_for_updates_class=jupyterlab.NeverCheckForUpdate",
        ],
        cwd=home,
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                if requests.get(f"{url}/api/status?token={token}", timeout=2).ok:
                    break
            except requests.ConnectionError:
                pass
            if proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(
                    "JupyterLab did not start:\n" + (tmp_path / "jupyterlab.log").read_text()
                )
            time.sleep(0.3)
        yield {
            "url": url,
            "token": token,
            "setup": setup,
            "home": home,
            "sync_playwright": sync_playwright,
        }
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGTERM)  # the server and the kernels it started
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
        log.close()


def test_import_notebook_in_jupyterlab(lab: dict[str, Any]) -> None:
    sync_playwright = lab["sync_playwright"]
    from playwright.sync_api import TimeoutError as PlaywrightTimeout

    ARTIFACTS.mkdir(exist_ok=True)
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            page = browser.new_page(viewport={"width": 1400, "height": 2200})
            page.set_default_timeout(60_000)
            page.goto(f"{lab['url']}/lab/tree/02_import.ipynb?token={lab['token']}")
            page.wait_for_selector(".jp-Notebook .jp-Cell", state="visible")
            page.get_by_text("cmtoolkit | Idle").wait_for()
            news = page.get_by_role("button", name="No", exact=True)  # "get Jupyter news?"
            if news.count():
                news.first.click()
            page.get_by_role("menuitem", name="Run", exact=True).click()
            page.locator("li[data-command='runmenu:run-all']").click()
            # A fresh notebook may ask which kernel: the one it names (cmtoolkit) is preselected.
            dialog = page.locator(".jp-Dialog")
            try:
                dialog.wait_for(timeout=10_000)
            except PlaywrightTimeout:
                pass
            else:
                assert "cmtoolkit" in dialog.locator("select").input_value()
                dialog.get_by_role("button", name="Select").click()
            # List picker: the emulator's lists with their subscriber counts.
            page.wait_for_selector("option:has-text('Newsletter — 4 active')", state="attached")
            assert page.locator("option:has-text('Customers — 2 active')").count() >= 1
            # Mapping editor: four rows, each with a merge-rule drop-down.
            rules = page.locator("select:has(option:has-text('Set if empty'))")
            rules.nth(3).wait_for()
            assert rules.count() == 4
            # Preview with numbers, and the city change Bergen → Oslo highlighted.
            modified = page.locator(".cm-count[data-outcome='MODIFIED']")
            modified.wait_for()
            assert modified.inner_text().split()[-1] == "2"
            before_after = page.locator(".cm-before-after")
            assert "Oslo" in before_after.inner_text()
            page.screenshot(path=str(ARTIFACTS / "02_import_before.png"), full_page=True)
            # Change the city rule from Set to Set if empty: the preview refreshes by itself.
            rules.nth(3).select_option(label="Set if empty")
            page.wait_for_function(
                "() => { const t = document.querySelector('.cm-before-after');"
                " return t && !t.innerText.includes('Oslo'); }"
            )
            assert "Bergen" not in page.locator(".cm-before-after").inner_text()
            page.screenshot(path=str(ARTIFACTS / "02_import_after.png"), full_page=True)
            html = page.content()
            assert SENTINEL_KEY not in html
        except Exception:
            page.screenshot(path=str(ARTIFACTS / "failure.png"), full_page=True)
            raise
        finally:
            browser.close()
    # The change is on screen only until saved: the file still says 'set'.
    assert "city, rule: set}" in lab["setup"].path.read_text()
