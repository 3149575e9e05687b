"""The analyst notebooks, executed end to end by papermill against the emulator.

Each notebook runs in a real ``cmtoolkit`` kernel, batch (``interactive=False``: static tables,
runs its goal) and interactive (the widgets built without a frontend). The kernel inherits this
process's environment: ``CMTOOLKIT_API_URL`` points at an in-process emulator and the connection's
credential is ``env:CMTK_TEST_API_KEY``, whose value is a sentinel that must appear nowhere in
what the notebooks produce. Papermill runs with ``store_widget_state=False`` as the batch runner
does; a purpose-built probe notebook checks the live widget state inside the kernel.
"""

from __future__ import annotations

import json
import re
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import nbformat
import papermill as pm
import pytest

from cmtoolkit.batch.reports import render_html, scrub
from cmtoolkit.sync import ledger
from tests.widgets.env import SENTINEL_KEY, Setup, prepare

ROOT = Path(__file__).resolve().parents[2]
NOTEBOOKS = ROOT / "notebooks"
ANALYST_NOTEBOOKS = [
    "01_connect.ipynb",
    "02_import.ipynb",
    "03_export.ipynb",
    "04_run_and_history.ipynb",
]
PROBE = Path(__file__).with_name("widget_secret_probe.ipynb")
PARAMETERS = ["connection", "workspace", "interactive", "goal", "dry_run", "full"]

pytestmark = pytest.mark.timeout(900)


@pytest.fixture
def setup(
    emulator_factory: Callable[..., Any],
    cm_factory: Callable[..., Any],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> Setup:
    return prepare(emulator_factory, cm_factory, tmp_path, monkeypatch)


def execute(notebook: Path, out: Path, setup: Setup, **parameters: Any) -> nbformat.NotebookNode:
    params = {"connection": "demo", "workspace": str(setup.ws.path), **parameters}
    t0 = time.monotonic()
    pm.execute_notebook(
        str(notebook),
        str(out),
        parameters=params,
        kernel_name="cmtoolkit",
        cwd=str(out.parent),
        store_widget_state=False,
        progress_bar=False,
        log_output=False,
        execution_timeout=180,
    )
    print(f"{notebook.name} {parameters}: {time.monotonic() - t0:.1f} s")
    return nbformat.read(out, as_version=4)


def outputs_text(nb: nbformat.NotebookNode) -> str:
    return json.dumps([c.get("outputs", []) for c in nb.cells], ensure_ascii=False)


def assert_no_secret(path: Path) -> None:
    text = path.read_text(encoding="utf-8")
    assert SENTINEL_KEY not in text, f"the sentinel API key leaked into {path.name}"


# --- the committed notebooks -------------------------------------------------------------------


@pytest.mark.parametrize("name", ANALYST_NOTEBOOKS)
def test_notebook_is_committed_clean_with_the_parameter_contract(name: str) -> None:
    nb = nbformat.read(NOTEBOOKS / name, as_version=4)
    nbformat.validate(nb)
    assert nb.metadata.kernelspec == {
        "name": "cmtoolkit",
        "display_name": "cmtoolkit",
        "language": "python",
    }
    assert nb.metadata.language_info.name == "python"
    assert "widgets" not in nb.metadata and "papermill" not in nb.metadata
    for cell in nb.cells:
        if cell.cell_type == "code":
            assert cell.outputs == [] and cell.execution_count is None, cell.source
    tagged = [c for c in nb.cells if "parameters" in c.metadata.get("tags", [])]
    assert len(tagged) == 1
    names: dict[str, Any] = {}
    exec(tagged[0].source, {}, names)
    runs_a_goal = name in ("02_import.ipynb", "03_export.ipynb")
    assert list(names) == PARAMETERS + (["run_id"] if runs_a_goal else [])
    assert names.get("run_id") is None  # only `cmtoolkit run` sets it
    assert names["connection"] == "demo" and names["workspace"] == "workspace"
    assert names["interactive"] is True and names["dry_run"] is False and names["full"] is False
    expected_goal = {"02_import.ipynb": "import", "03_export.ipynb": "export"}.get(name, "all")
    assert names["goal"] == expected_goal
    assert sum(c.cell_type == "markdown" for c in nb.cells) >= 4  # explained step by step


# --- executed ----------------------------------------------------------------------------------


def test_batch_runs_every_notebook_and_its_goal(setup: Setup, tmp_path: Path) -> None:
    outs = {}
    outs["01"] = execute(
        NOTEBOOKS / "01_connect.ipynb", tmp_path / "01.ipynb", setup, interactive=False
    )
    assert "Campaign Monitor ⟶ profiles (ready)" in outputs_text(outs["01"])

    outs["02"] = execute(
        NOTEBOOKS / "02_import.ipynb", tmp_path / "02.ipynb", setup, interactive=False
    )
    text = outputs_text(outs["02"])
    assert "import: what a run would do" in text and "cm-before-after" in text
    assert 'data-state=\\"FINISHED\\"' in text
    assert "application/vnd.cmtoolkit.result+json" in text

    outs["03"] = execute(
        NOTEBOOKS / "03_export.ipynb", tmp_path / "03.ipynb", setup, interactive=False, goal="all"
    )
    text = outputs_text(outs["03"])
    assert "export: what a run would do" in text and "targeting: what a run would do" in text
    assert text.count('data-state=\\"FINISHED\\"') == 2

    with setup.ws.store.connect() as con:
        runs = ledger.history(con, "demo")
    assert [(r.goal, r.state) for r in reversed(runs)] == [
        ("import", "FINISHED"),
        ("export", "FINISHED"),
        ("targeting", "FINISHED"),
    ]
    assert runs[-1].counts["CREATED"] == 2  # cat and dan: no profile matched, created
    # The export reached Campaign Monitor: zed is now a subscriber of Customers.
    assert setup.cm.subscriber(setup.customers, "zed@example.com").name == "Zed Zero"

    outs["04"] = execute(
        NOTEBOOKS / "04_run_and_history.ipynb", tmp_path / "04.ipynb", setup, interactive=False
    )
    text = outputs_text(outs["04"])
    assert "cm-history" in text and text.count("FINISHED") >= 3
    for key in outs:
        assert_no_secret(tmp_path / f"{key}.ipynb")

    # As reports: every section shows something, the charts are there
    pages = {key: report_sections(nb) for key, nb in outs.items()}
    assert "Open the connection" not in pages["01"]  # nothing to show there in a report
    assert "Step 2 — Name, on/off, schedule, consent, alerts" not in pages["01"]
    assert "Step 1 — Authenticate and choose the client" in pages["01"]
    assert "Engagement" not in pages["02"]  # no email events in the store
    assert "cm-number-spread" in pages["02"]["Preview"]  # points (sum) before -> after
    assert "cm-history-chart" in pages["04"]["History"]
    assert "cm-history-chart" in pages["02"]["Recent runs"]


def report_sections(nb: nbformat.NotebookNode) -> dict[str, str]:
    """The report's HTML of an executed notebook, by section (its level-2 heading): asserts that
    each one shows an output."""
    page = render_html(scrub(nb), "report")
    parts = re.split(r"<h2[^>]*>(.*?)</h2>", page, flags=re.S)
    sections = {}
    for title, body in zip(parts[1::2], parts[2::2], strict=True):
        name = re.sub(r"<[^>]*>|¶", "", title).strip()
        assert "jp-OutputArea-output" in body, f"empty section {name!r} in the report"
        sections[name] = body
    return sections


def test_batch_dry_run_writes_nothing(setup: Setup, tmp_path: Path) -> None:
    nb = execute(
        NOTEBOOKS / "02_import.ipynb",
        tmp_path / "02.ipynb",
        setup,
        interactive=False,
        dry_run=True,
    )
    assert 'data-state=\\"PREVIEW\\"' in outputs_text(nb)
    with setup.ws.store.connect() as con:
        assert ledger.history(con, "demo") == []


def test_batch_raises_when_the_connection_cannot_run(setup: Setup, tmp_path: Path) -> None:
    text = setup.path.read_text()
    setup.path.write_text(text.replace("city, rule: set}", "city, rule: sum}"))
    with pytest.raises(pm.PapermillExecutionError) as info:
        execute(NOTEBOOKS / "02_import.ipynb", tmp_path / "02.ipynb", setup, interactive=False)
    assert info.value.ename == "NotReady"  # a ConfigurationError: the status gate
    assert "'sum' needs a number property" in info.value.evalue
    with setup.ws.store.connect() as con:
        assert ledger.history(con, "demo") == []
    assert_no_secret(tmp_path / "02.ipynb")


@pytest.mark.parametrize("name", ANALYST_NOTEBOOKS)
def test_interactive_builds_the_widgets_without_a_frontend(
    setup: Setup, tmp_path: Path, name: str
) -> None:
    goal = {"03_export.ipynb": "all"}.get(name)
    params = {"interactive": True, **({"goal": goal} if goal else {})}
    out = tmp_path / name
    nb = execute(NOTEBOOKS / name, out, setup, **params)
    text = outputs_text(nb)
    assert "application/vnd.jupyter.widget-view+json" in text
    assert "Traceback" not in text
    assert "widgets" not in nb.metadata  # store_widget_state=False
    with setup.ws.store.connect() as con:
        assert ledger.history(con, "demo") == []  # interactive notebooks never run on their own
    assert_no_secret(out)


def test_widget_state_inside_a_kernel_holds_no_secret(setup: Setup, tmp_path: Path) -> None:
    """The probe types the sentinel key into the AuthPanel inside the kernel, then checks the
    whole widget manager state (what a saved notebook would hold) and prints the verdict."""
    out = tmp_path / "probe.ipynb"
    nb = execute(PROBE, out, setup, interactive=True)
    text = outputs_text(nb)
    assert "widget state clean" in text and "credential stored: api_key" in text
    assert_no_secret(out)


def test_a_new_connection_opens_in_every_notebook(setup: Setup, tmp_path: Path) -> None:
    """01 starts it (not saved); once saved with no goal, 02-04 open it to fill its goals in."""
    execute(NOTEBOOKS / "01_connect.ipynb", tmp_path / "01.ipynb", setup,
            connection="weekly", interactive=True)  # fmt: skip
    assert not (setup.ws.connections_dir / "weekly.yaml").exists()
    (setup.ws.connections_dir / "weekly.yaml").write_text(
        "name: weekly\nid: abcdef12\nenabled: false\ncampaign_monitor: {credential: default}\n"
    )
    for name in ("02_import.ipynb", "03_export.ipynb", "04_run_and_history.ipynb"):
        execute(NOTEBOOKS / name, tmp_path / name, setup, connection="weekly", interactive=True)
