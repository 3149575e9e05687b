"""``cmtoolkit demo`` end to end (smaller than the default) and the CI report checker."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from cmtoolkit.batch import check_report


@pytest.mark.slow
def test_demo_runs_the_batch_job_and_its_reports_pass_the_checker(tmp_path):
    ws = tmp_path / "ws"
    env = {k: v for k, v in os.environ.items() if not k.startswith("CMTOOLKIT_")}
    done = subprocess.run(
        [sys.executable, "-m", "cmtoolkit.cli", "demo", "--workspace", str(ws),
         "--profiles", "4000", "--subscribers", "2500"],
        capture_output=True, text=True, env=env, timeout=600, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr
    out = done.stdout
    for goal in ("import", "export", "targeting"):
        assert f"[demo] {goal}: FINISHED" in out and f"[demo] {goal} report: {ws}" in out
    assert (
        "[demo] emulator stopped" in out and f"[demo] index: {ws / 'reports' / 'index.html'}" in out
    )
    assert check_report.main([str(ws)]) == 0

    # the checker does catch what must not be shared
    summary = json.loads(sorted((ws / "reports" / "demo").glob("*_import.json"))[-1].read_text())
    page = (ws / "reports" / summary["html"]).read_text()
    bad = page.replace("</main>", '<div class="celltag_injected-parameters"></div></main>')
    assert any("injected-parameters" in p for p in check_report.check_page(bad, summary))
    assert check_report.check_page(page, summary, secrets=("FINISHED",)) == ["holds a secret"]
