"""``cmtoolkit run``: papermill-executed goal notebooks, exit codes, reports, the index, locks."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import textwrap
import time
from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import Any

import nbformat
import pytest

from cmtoolkit.batch.runner import run_connection
from cmtoolkit.cli import main
from cmtoolkit.errors import RunInProgress
from cmtoolkit.profiles.store import Store
from cmtoolkit.sync import RunState
from cmtoolkit.sync.locking import RunLock
from cmtoolkit.sync.runner import NotReady

NOTEBOOKS = Path(__file__).resolve().parents[1] / "notebooks"


def cli(*args: str) -> int:
    return main(list(args))


def goal_folder(tmp_path: Path, name: str = "sync_goal") -> Path:
    """A notebooks folder laid out like notebooks/ with a tiny notebook as every goal's."""
    folder = tmp_path / f"nb-{name}"
    folder.mkdir(exist_ok=True)
    for target in ("02_import.ipynb", "03_export.ipynb"):
        shutil.copy(NOTEBOOKS / f"{name}.ipynb", folder / target)
    return folder


def only_report(ws: Any, suffix: str) -> Path:
    (path,) = sorted((ws.reports_dir / "news").glob(f"*{suffix}"))
    return path


def test_a_finished_run_exits_0_with_a_clean_report_and_index(make_workspace, tmp_path, capsys):
    ws = make_workspace()
    code = cli(
        "run", "news", "--goal", "import", "--workspace", str(ws.path),
        "--notebooks", str(goal_folder(tmp_path)), "--json",
    )  # fmt: skip
    out = json.loads(capsys.readouterr().out)
    assert code == 0 and out["ok"], out
    (run,) = out["runs"]
    assert run["state"] == "FINISHED" and run["counts"]["CREATED"] > 100 and run["run_id"]
    assert Path(run["html"]).name.endswith("_import.html")
    assert Path(run["html"]).parent == ws.reports_dir / "news"

    nb = nbformat.read(only_report(ws, ".ipynb"), as_version=4)
    assert "papermill" not in nb.metadata and "widgets" not in nb.metadata
    assert all("papermill" not in c.metadata for c in nb.cells)
    assert not any("injected-parameters" in c.metadata.get("tags", []) for c in nb.cells)
    assert "Run FINISHED" in nb.cells[0].source and "CREATED" in nb.cells[0].source

    page = only_report(ws, ".html").read_text()
    assert "Run FINISHED" in page and "CREATED" in page
    assert "Workspace(workspace)" not in page, "code input is not rendered"
    assert "injected-parameters" not in page and str(ws.path) not in page
    assert "widget-state" not in page

    index = (ws.reports_dir / "index.html").read_text()
    assert "FINISHED" in index and "CREATED" in index
    assert f'href="news/{Path(run["html"]).name}"' in index


def test_a_failing_notebook_exits_1_and_its_report_leads_with_the_error(
    make_workspace, notebooks, capsys
):
    ws = make_workspace()
    result = run_connection(ws.path, "news", "import", notebooks=notebooks("fails"))
    assert not result.ok
    (g,) = result.runs
    assert g.state is RunState.FAILED and "this notebook always fails" in g.error
    nb = nbformat.read(only_report(ws, ".ipynb"), as_version=4)
    assert "Run FAILED" in nb.cells[0].source and "always fails" in nb.cells[0].source
    assert not any("papermill-error" in c.source for c in nb.cells[1:] if c.cell_type == "markdown")
    page = only_report(ws, ".html").read_text()
    assert page.index("Run FAILED") < page.index("Traceback")
    history = ws.connection("news").history()
    assert history[0].state is RunState.FAILED and history[0].run_id == g.run_id


def test_a_broken_mapping_is_refused_by_the_readiness_gate_before_any_notebook(
    make_workspace, batch_env, notebooks
):
    export = {
        "segment": "everyone",
        "lists": [batch_env.list_ids[0]],
        "match_property": "email",
        "mappings": [{"value": "profile_id", "field": "no such field"}],
    }
    ws = make_workspace(export=export)
    ws.segments_path.write_text("everyone:\n  property: email\n  exists: true\n")
    with pytest.raises(NotReady, match="'no such field' does not exist") as info:
        run_connection(ws.path, "news", "export", notebooks=notebooks())
    assert "export.mappings[0].field" in str(info.value)
    assert not (ws.reports_dir / "news").exists() and ws.connection("news").history() == []


def test_all_stops_at_the_first_failed_goal(make_workspace, batch_env, notebooks, tmp_path):
    export = {
        "segment": "everyone",
        "lists": [batch_env.list_ids[0]],
        "match_property": "email",
        "mappings": [{"value": "profile_id", "field": "website"}],
    }
    ws = make_workspace(
        export=export, targeting={"lists": [batch_env.list_ids[0]], "segments": ["everyone"]}
    )
    ws.segments_path.write_text("everyone:\n  property: email\n  exists: true\n")
    goals = {**notebooks(), "export": notebooks("fails")["export"]}
    result = run_connection(ws.path, "news", "all", notebooks=goals)
    assert [(g.goal, g.state) for g in result.runs] == [
        ("import", RunState.FINISHED),
        ("export", RunState.FAILED),
    ]


@pytest.mark.slow
def test_server_errors_past_the_retries_fail_the_run(make_workspace, batch_env, tmp_path, capsys):
    ws = make_workspace()
    batch_env.set_faults("500:path=/lists/*/active.json")  # the run's reads; status passes
    code = cli(
        "run", "news", "--goal", "import", "--workspace", str(ws.path),
        "--notebooks", str(goal_folder(tmp_path)),
    )  # fmt: skip
    out = capsys.readouterr().out
    assert code == 1
    assert "import of news: FAILED" in out and "500" in out
    assert "Run FAILED" in only_report(ws, ".html").read_text()


def test_a_revoked_token_is_refused_by_the_gate_and_says_to_reconnect(
    make_workspace, batch_env, notebooks
):
    from cmtoolkit.credentials import CredentialStore, OAuthCredential
    from cmtoolkit.secret import Secret

    tokens = batch_env.issue_token()
    CredentialStore(os.environ["CMTOOLKIT_CREDENTIALS"]).put(
        "team",
        OAuthCredential(Secret(tokens["access_token"]), Secret(tokens["refresh_token"])),
    )
    batch_env.revoke(tokens["access_token"])
    ws = make_workspace(campaign_monitor={"credential": "team", "client_id": batch_env.client_id})
    with pytest.raises(NotReady, match="auth login --credential team") as info:
        run_connection(ws.path, "news", "import", notebooks=notebooks())
    message = str(info.value)
    assert tokens["access_token"] not in message and tokens["refresh_token"] not in message
    assert not (ws.reports_dir / "news").exists()


def test_a_second_run_of_the_same_connection_is_refused(make_workspace, notebooks, capsys):
    ws = make_workspace()
    with RunLock(ws.path, "news"):  # another `cmtoolkit run` or `sync` of news holds it
        with pytest.raises(RunInProgress, match="already running"):
            run_connection(ws.path, "news", "import", notebooks=notebooks())
        code = cli("run", "news", "--workspace", str(ws.path))
    err = capsys.readouterr().err
    assert code == 2 and "connection 'news' is already running" in err
    assert f"process {os.getpid()}" in err
    assert not (ws.reports_dir / "news").exists()


def test_a_kernel_with_the_workspace_open_does_not_block_a_batch_run(make_workspace, notebooks):
    from jupyter_client.manager import start_new_kernel

    ws = make_workspace()
    km, kc = start_new_kernel(kernel_name="cmtoolkit")
    try:
        reply = kc.execute_interactive(
            "from cmtoolkit import Workspace\n"
            f"ws = Workspace({str(ws.path)!r})\n"
            "stats = ws.store.stats()\n"
            "runner = ws.connection('news')\n"
            "history = runner.history()",
            timeout=60,
        )
        assert reply["content"]["status"] == "ok"
        t0 = time.monotonic()
        result = run_connection(ws.path, "news", "import", notebooks=notebooks())
        assert result.ok and time.monotonic() - t0 < 30
        reply = kc.execute_interactive("assert len(runner.history()) == 1", timeout=60)
        assert reply["content"]["status"] == "ok"
    finally:
        kc.stop_channels()
        km.shutdown_kernel(now=True)


HOLDER = textwrap.dedent(
    """
    import sys, duckdb
    con = duckdb.connect(sys.argv[1])
    print("holding", flush=True)
    sys.stdin.read()  # until the test closes our stdin
    con.close()
    """
)


class Holder:
    """Another process with the store open, until :meth:`release`."""

    def __init__(self, path: Path) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, "-c", HOLDER, str(path)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        assert self.proc.stdout is not None and self.proc.stdout.readline().strip() == "holding"
        self.pid = self.proc.pid

    def release(self) -> None:
        if self.proc.stdin is not None and not self.proc.stdin.closed:
            self.proc.stdin.close()
        self.proc.wait(timeout=60)


class LockClock:
    """The store's clock while it waits out a lock: time moves only when the store waits, and
    ``on_wait`` runs at each wait (so a test can release the lock then)."""

    def __init__(self, on_wait: Callable[[], None] | None = None) -> None:
        self.now = 0.0
        self.waits: list[float] = []
        self.on_wait = on_wait

    def clock(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.waits.append(seconds)
        self.now += seconds
        if self.on_wait is not None:
            self.on_wait()


def use_lock_clock(monkeypatch: pytest.MonkeyPatch, clock: LockClock) -> None:
    """Workspaces opened from now on (``cmtoolkit run`` opens its own) wait on ``clock``."""
    monkeypatch.setattr(
        "cmtoolkit.workspace.Store", partial(Store, clock=clock.clock, sleep=clock.sleep)
    )


def test_a_store_held_past_the_lock_timeout_gives_a_clear_error(
    make_workspace, tmp_path, monkeypatch, capsys
):
    ws = make_workspace()
    monkeypatch.setenv("CMTOOLKIT_LOCK_TIMEOUT", "2")
    clock = LockClock()
    use_lock_clock(monkeypatch, clock)
    holder = Holder(ws.database_path)
    try:
        code = cli(
            "run", "news", "--goal", "import", "--workspace", str(ws.path),
            "--notebooks", str(goal_folder(tmp_path)),
        )  # fmt: skip
    finally:
        holder.release()
    err = capsys.readouterr().err
    assert code == 2 and sum(clock.waits) == pytest.approx(2) and len(clock.waits) > 1
    assert f"locked by process {holder.pid}" in err and "stayed locked for 2 s" in err
    assert "CMTOOLKIT_LOCK_TIMEOUT" in err
    assert not (ws.reports_dir / "news").exists()


def test_a_store_held_briefly_is_waited_for(make_workspace, notebooks, monkeypatch):
    ws = make_workspace()
    monkeypatch.setenv("CMTOOLKIT_LOCK_TIMEOUT", "60")
    holder = Holder(ws.database_path)
    clock = LockClock(on_wait=holder.release)  # the holder lets go while the run waits
    use_lock_clock(monkeypatch, clock)
    try:
        result = run_connection(ws.path, "news", "import", notebooks=notebooks())
    finally:
        holder.release()
    assert result.ok and len(clock.waits) == 1


def test_dry_run_reports_a_preview_and_writes_nothing(make_workspace, notebooks):
    ws = make_workspace()
    before = ws.store.stats()
    result = run_connection(ws.path, "news", "import", dry_run=True, notebooks=notebooks("leaky"))
    (g,) = result.runs
    assert result.ok and g.state is RunState.PREVIEW and g.counts["CREATED"] > 100
    assert ws.store.stats() == before and ws.connection("news").history() == []
    assert "dry run" in (ws.reports_dir / "index.html").read_text()


def test_the_builtin_goal_notebook_runs_when_no_notebooks_folder_has_it(
    make_workspace, monkeypatch, tmp_path
):
    ws = make_workspace()
    monkeypatch.setenv("CMTOOLKIT_NOTEBOOKS", str(tmp_path / "none"))
    result = run_connection(ws.path, "news", "import")
    (report,) = result.reports
    assert result.ok and report.notebook == "goal.ipynb" and report.run.counts["CREATED"] > 100
    assert 'class="cm-result" data-state="FINISHED"' in only_report(ws, ".html").read_text()


KERNEL_HOLDS = """\
import os, pathlib, time
import ipykernel.parentpoller as poller
from cmtoolkit.sync.locking import RunLock

# ipykernel's poller ends the kernel once its parent (JPY_PARENT_PID) is gone: it is told the
# parent lives while the cell writes, and sees the truth again once it ends.
parent = int(os.environ.get("JPY_PARENT_PID") or 0)
poller.os = type("Alive", (), {"getppid": staticmethod(lambda: parent), "_exit": os._exit})
lock = RunLock(pathlib.Path(workspace), connection).acquire()  # the engine's call, as sync does
here = pathlib.Path(workspace) / "kernel"
here.with_suffix(".tmp").write_text(str(os.getpid()))
here.with_suffix(".tmp").rename(here.with_suffix(".pid"))
while not here.with_suffix(".go").exists():  # writing, as a sync would, until told to end
    time.sleep(0.05)
poller.os = os
"""


def _alive(pid: int) -> bool:
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except FileNotFoundError:
        return False
    return "\nState:\tZ" not in status


def test_a_killed_run_holds_the_lock_until_its_kernel_ends_and_its_scratch_is_swept(
    make_workspace, tmp_path, notebooks
):
    """SIGKILL of `cmtoolkit run`: its kernel, still writing, keeps the connection; once the
    kernel ends the next run starts and removes the killed run's scratch (executed notebook)."""
    import signal

    ws = make_workspace()
    folder = tmp_path / "nb-holds"
    folder.mkdir()
    nb = nbformat.read(NOTEBOOKS / "sync_goal.ipynb", as_version=4)
    params = next(c for c in nb.cells if "parameters" in c.metadata.get("tags", []))
    nb.cells = [params, nbformat.v4.new_code_cell(KERNEL_HOLDS)]
    nbformat.write(nb, folder / "02_import.ipynb")
    proc = subprocess.Popen(
        [sys.executable, "-m", "cmtoolkit", "run", "news", "--goal", "import",
         "--workspace", str(ws.path), "--notebooks", str(folder)],
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
    )  # fmt: skip
    pid_file = ws.path / "kernel.pid"
    deadline = time.monotonic() + 120
    while not pid_file.exists():
        assert proc.poll() is None, proc.stderr.read() if proc.stderr else ""
        assert time.monotonic() < deadline, "the kernel never took the lock"
        time.sleep(0.05)
    kernel = int(pid_file.read_text())
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=30)
    assert _alive(kernel)
    (leftover,) = (ws.path / ".runs").iterdir()
    assert (leftover / "executed.ipynb").exists()
    with pytest.raises(RunInProgress, match="notebook kernel"):
        RunLock(ws.path, "news").acquire()
    assert cli("sync", "news", "--goal", "import", "--workspace", str(ws.path)) == 2
    assert _alive(kernel), "refused because the kernel still runs, not because it ended"

    (ws.path / "kernel.go").touch()
    deadline = time.monotonic() + 60
    while _alive(kernel):
        assert time.monotonic() < deadline
        time.sleep(0.05)
    result = run_connection(ws.path, "news", "import", notebooks=notebooks())
    assert result.ok
    assert not leftover.exists() and list((ws.path / ".runs").iterdir()) == []
