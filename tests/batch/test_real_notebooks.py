"""``cmtoolkit run`` with the analyst notebooks of notebooks/ (02_import, 03_export)."""

from __future__ import annotations

import re

import pytest

from cmtoolkit.batch.runner import default_notebooks_dir, run_connection
from cmtoolkit.sync import RunState


@pytest.fixture(autouse=True)
def _real_notebooks(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("CMTOOLKIT_NOTEBOOKS", raising=False)
    if not (default_notebooks_dir() / "02_import.ipynb").exists():
        pytest.skip("notebooks/02_import.ipynb is not there")


def test_run_all_through_the_analyst_notebooks(make_workspace, batch_env):
    targeting = {"lists": [batch_env.list_ids[0]], "segments": ["everyone"], "field": "Segments"}
    ws = make_workspace(targeting=targeting)
    ws.segments_path.write_text("everyone:\n  property: email\n  exists: true\n")
    result = run_connection(ws.path, "news", "all")
    assert [(r.run.goal, r.run.state, r.notebook) for r in result.reports] == [
        ("import", RunState.FINISHED, "02_import.ipynb"),
        ("targeting", RunState.FINISHED, "03_export.ipynb"),
    ], [g.error for g in result.runs]
    imported, targeted = result.runs
    assert imported.counts["CREATED"] > 100 and imported.run_id
    assert sum(targeted.counts.values()) > 0
    for report in result.reports:
        assert report.html is not None
        page = (ws.reports_dir / report.html).read_text()
        assert "Run FINISHED" in page and "injected-parameters" not in page
        assert "open_editor" not in page  # no code input
        # no how-to for the analyst at the screen, and the run's one duration (the header's)
        assert "Interactive:" not in page and "Run now" not in page and "Press" not in page
        if report.run.goal == "import":  # its history holds this run alone: one duration
            assert set(re.findall(r"(\d+\.\d) s\b", page)) == {f"{report.run.duration_s:.1f}"}
    runs = ws.connection("news").history()
    assert {r.run_id for r in runs} == {g.run_id for g in result.runs}


def test_a_failing_goal_in_the_analyst_notebook_exits_non_zero(make_workspace, batch_env):
    ws = make_workspace()
    # Ready by its status, then Campaign Monitor fails reading the list: the goal fails inside
    # the analyst notebook (a bad key would be stopped by the readiness gate before it).
    batch_env.set_faults(f"500:path=/lists/{batch_env.list_ids[0]}/active.json")
    result = run_connection(ws.path, "news", "import")
    ((report, g),) = [(r, r.run) for r in result.reports]
    assert not result.ok and g.state is RunState.FAILED and g.error
    assert report.html is not None
    page = (ws.reports_dir / report.html).read_text()
    assert page.index("Run FAILED") < page.index(g.error[:20].replace("'", "&#x27;"))
