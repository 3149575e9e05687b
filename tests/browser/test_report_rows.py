"""Issue 16's last click: open a run's report and see its rejected rows, in the system Chromium.

An export run by ``cmtoolkit run`` (the batch runner, the analyst notebook ``03_export``) sends a
segment in which two profiles have no valid email (INVALID, caught before sending) and one is
a subscriber who bounced in Campaign Monitor (code 207: not sent). In the JupyterLab started on
the workspace, the analyst opens ``reports/index.html``, follows the run's *report* link and sees
the people not sent, charted by reason and listed with Campaign Monitor's code and reason; then
the history notebook ``04_run_and_history`` shows the same rows. Screenshots of both land in
tests/browser/artifacts/.
"""

from __future__ import annotations

import shutil
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import polars as pl
import pytest
import yaml

from cmtoolkit.batch.runner import run_connection
from cmtoolkit.emulator import BOUNCED
from tests.browser import lab as L
from tests.widgets.env import SENTINEL_KEY, Setup, prepare

pytestmark = [pytest.mark.browser, pytest.mark.timeout(900)]

EMAILS = {"p1": "ann@example.com", "p2": "bob@example.com", "p3": "zed@example.com",
          "p4": "not-an-email", "p5": "x@"}  # fmt: skip


@pytest.fixture
def reported(
    emulator_factory: Callable[..., Any],
    cm_factory: Callable[..., Any],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> Iterator[tuple[L.Lab, Setup, Any, str]]:
    """A workspace whose export run left rejected rows and a report; JupyterLab on it."""
    sync_playwright = L.requirements()
    home = tmp_path / "lab"
    home.mkdir()
    setup = prepare(emulator_factory, cm_factory, home, monkeypatch)
    for nb in (L.ROOT / "notebooks").glob("0*.ipynb"):
        shutil.copy(nb, home / nb.name)
    ws = setup.ws
    ws.store.load(pl.DataFrame({"profile_id": list(EMAILS),
                                "contact": [[e] for e in EMAILS.values()]}))  # fmt: skip
    setup.set_members("news", list(EMAILS))
    data = yaml.safe_load(setup.path.read_text())
    data["export"]["match_property"] = "contact"  # a text property: it may hold anything
    setup.path.write_text(yaml.safe_dump(data, sort_keys=False))
    emu = setup.emulator
    with emu.lock:
        lst = next(x for x in emu.account.clients[0].lists if x.list_id == setup.customers)
        lst.set_state(lst.row_of("bob@example.com"), BOUNCED, int(emu.now()))
    monkeypatch.delenv("CMTOOLKIT_NOTEBOOKS", raising=False)
    result = run_connection(ws.path, "demo", "export", force=True)
    (report,) = result.reports
    assert report.run.ok and report.html, report.run.error
    port, token = L.free_port(), L.new_token()
    env = L.lab_environment(tmp_path)
    env.pop("CMTOOLKIT_WORKSPACE", None)
    command = [L.sys_executable(), "-m", "jupyterlab", *L.lab_arguments(port, token)]
    with L.running_lab(
        command, cwd=home, env=env, log=tmp_path / "lab.log", port=port, token=token
    ) as running:
        yield running, setup, sync_playwright, report.html


def rows_of(page: Any) -> list[dict[str, str]]:
    """The not-sent table as the reader sees it: one dict per row, keyed by column header."""
    table = page.locator(".cmtoolkit-rows table").first
    heads = table.locator("th").all_inner_texts()
    return [
        dict(zip(heads, tr.locator("td").all_inner_texts(), strict=True))
        for tr in table.locator("tbody tr").all()
    ]


def expect_rejected(page: Any) -> None:
    rows = {r["email"]: r for r in rows_of(page)}
    assert set(rows) == {"bob@example.com", "not-an-email", "x@"}
    assert rows["bob@example.com"]["code"] == "207"
    assert rows["bob@example.com"]["outcome"] in ("REJECTED", "SUPPRESSED")
    assert rows["bob@example.com"]["reason"].startswith("code 207:")
    assert rows["not-an-email"]["outcome"] == "INVALID" and rows["not-an-email"]["code"] == ""
    assert rows["x@"]["reason"] == "not a valid email address: x@"
    bars = page.locator("svg.cm-reasons rect[data-label]")
    got = {
        bars.nth(i).get_attribute("data-label"): bars.nth(i).get_attribute("data-value")
        for i in range(bars.count())
    }
    assert got.pop("INVALID · not a valid email address") == "2"
    (code,) = got  # the bounced subscriber, by its Campaign Monitor code
    assert code.endswith(rows["bob@example.com"]["reason"].split(";")[0]) and got[code] == "1"


def test_open_a_runs_report_and_see_its_rejected_rows(
    reported: tuple[L.Lab, Setup, Any, str],
) -> None:
    running, setup, sync_playwright, report_html = reported
    with sync_playwright() as p:
        browser = L.launch(p)
        page = browser.new_page(viewport={"width": 1400, "height": 1600})
        page.set_default_timeout(60_000)
        try:
            # the workspace's report index, as JupyterLab serves the workspace's files
            page.goto(f"{running.url}/files/workspace/reports/index.html?token={running.token}")
            row = page.locator("#runs tbody tr").filter(has_text="export").first
            assert "FINISHED" in row.inner_text()
            href = row.get_by_role("link", name="report").get_attribute("href")
            assert href == report_html
            # followed by address: Jupyter serves files sandboxed, and refuses a click's
            # request from the sandbox's opaque origin ("Blocking request from unknown origin")
            page.goto(f"{running.url}/files/workspace/reports/{href}?token={running.token}")
            page.locator(".cmtoolkit-rows").wait_for()
            assert "Not sent: 3 people" in page.locator(".cmtoolkit-rows h3").inner_text()
            page.locator("svg.cm-reasons").scroll_into_view_if_needed()
            expect_rejected(page)
            L.screenshot(page, "report_rejected_rows.png")
            assert SENTINEL_KEY not in page.content()

            # the history notebook: the latest export's rejected rows, the same table
            L.open_notebook(page, running, "04_run_and_history.ipynb")
            L.run_all(page)
            L.wait_all_ran(page)
            page.locator(".cmtoolkit-rows").first.wait_for()
            expect_rejected(page)
            page.locator(".cmtoolkit-rows").first.scroll_into_view_if_needed()
            L.screenshot(page, "history_rejected_rows.png")
            assert SENTINEL_KEY not in page.content()
        except Exception:
            L.screenshot(page, "report_rows_failure.png")
            raise
        finally:
            browser.close()
    for nb in setup.ws.path.parent.glob("0*.ipynb"):  # autosave off: never written
        assert nb.read_bytes() == (L.ROOT / "notebooks" / nb.name).read_bytes()
