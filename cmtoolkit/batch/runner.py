"""``cmtoolkit run``: a connection's goal notebooks executed by papermill, as shareable reports.

One run takes the connection's run lock in this process and hands it to the kernel
(``RunLock.child_env``), so the engine inside the notebook runs under it while a second
``cmtoolkit run`` or ``sync`` of the same connection is refused. For each goal it executes the
goal's notebook with papermill (kernel ``cmtoolkit``; parameters carry names and paths only,
passed as Python strings and booleans, never coerced; ``store_widget_state=False``) into a private
temporary file, reads the outcome from the run ledger, writes the scrubbed report
(:mod:`cmtoolkit.batch.reports`), refreshes ``reports/index.html`` and processes alerts.

The goal notebooks are ``notebooks/02_import.ipynb`` (import) and ``notebooks/03_export.ipynb``
(export, targeting), found in ``$CMTOOLKIT_NOTEBOOKS`` or the source tree; when they are not
there (an installed package) a minimal built-in goal notebook is generated instead.

A goal that fails stops the goals after it. The result is ``ok`` only when every goal finished.
"""

from __future__ import annotations

import logging
import os
import tempfile
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import nbformat

from cmtoolkit.batch import alerts as alerting
from cmtoolkit.batch.reports import (
    ReportSummary,
    add_header,
    redact,
    scrub,
    slug,
    write_index,
)
from cmtoolkit.batch.reports import write_report as _write_report
from cmtoolkit.errors import ConfigurationError, CredentialError
from cmtoolkit.sync.ledger import utc_now

log = logging.getLogger("cmtoolkit.batch")

KERNEL_NAME = "cmtoolkit"
NOTEBOOKS_ENV = "CMTOOLKIT_NOTEBOOKS"
GOAL_NOTEBOOKS = {
    "import": "02_import.ipynb",
    "export": "03_export.ipynb",
    "targeting": "03_export.ipynb",
}
RESULT_MIME = "application/vnd.cmtoolkit.result+json"


@dataclass
class BatchResult:
    connection: str
    goals: list[ReportSummary] = field(default_factory=list)
    index: Path | None = None

    @property
    def ok(self) -> bool:
        return bool(self.goals) and all(g.state in ("FINISHED", "PREVIEW") for g in self.goals)

    def to_dict(self, reports_dir: Path | None = None) -> dict[str, Any]:
        def where(rel: str | None) -> str | None:
            return str(reports_dir / rel) if rel and reports_dir else rel

        return {
            "connection": self.connection,
            "ok": self.ok,
            "index": str(self.index) if self.index else None,
            "runs": [
                {**g.to_dict(), "ipynb": where(g.ipynb), "html": where(g.html)} for g in self.goals
            ],
        }


def default_notebooks_dir() -> Path:
    env = os.environ.get(NOTEBOOKS_ENV)
    if env:
        return Path(env)
    return Path(__file__).resolve().parents[2] / "notebooks"


def run_connection(
    workspace: str | os.PathLike[str],
    connection: str,
    goal: str = "all",
    *,
    dry_run: bool = False,
    full: bool = False,
    notebooks: Mapping[str, str | os.PathLike[str]] | str | os.PathLike[str] | None = None,
    kernel_name: str = KERNEL_NAME,
    execution_timeout: float | None = None,
    progress_bar: bool = False,
    alert_sender: alerting.Sender | None = None,
) -> BatchResult:
    """Run ``goal`` of ``connection`` through its notebooks; reports, index and alerts.

    ``notebooks`` is a folder holding the goal notebooks, or a mapping goal → notebook path
    (tests use tiny purpose-built notebooks). Raises :class:`RunInProgress` when the connection
    is already running and :class:`ConfigurationError` for what must be fixed before any run.
    """
    from cmtoolkit.connection.file import find_connection, load_connection
    from cmtoolkit.sync import resolve_goals
    from cmtoolkit.sync.locking import RunLock
    from cmtoolkit.workspace import Workspace

    ws = Workspace.open(workspace)
    path = find_connection(ws.path, connection)
    conn = load_connection(path)
    settings = alerting.AlertSettings.parse(conn.alerts, file=str(path))
    goals = resolve_goals(conn, goal)
    check_kernel(kernel_name)
    secrets = connection_secrets(conn)
    result = BatchResult(conn.name)
    with RunLock(ws.path, conn.name) as lock:
        for g in goals:
            summary = _run_goal(
                ws,
                conn,
                g,
                _notebook_for(g, notebooks),
                dry_run=dry_run,
                full=full,
                kernel_name=kernel_name,
                execution_timeout=execution_timeout,
                progress_bar=progress_bar,
                child_env=lock.child_env(),
                secrets=secrets,
            )
            result.goals.append(summary)
            if not dry_run:
                _alert(ws, settings, summary, alert_sender)
            if summary.state == "FAILED":
                break
    result.index = write_index(ws, secrets)
    return result


def _run_goal(
    ws: Any,
    conn: Any,
    goal: str,
    notebook: Path,
    *,
    dry_run: bool,
    full: bool,
    kernel_name: str,
    execution_timeout: float | None,
    progress_bar: bool,
    child_env: dict[str, str],
    secrets: list[str],
) -> ReportSummary:
    import papermill as pm
    from papermill.exceptions import PapermillExecutionError

    from cmtoolkit.sync import ledger

    parameters = {
        "connection": conn.name,
        "workspace": str(ws.path.resolve()),
        "interactive": False,
        "goal": goal,
        "dry_run": dry_run,
        "full": full,
    }
    before = _run_ids(ws, conn.name)
    started = utc_now()
    t0 = time.monotonic()
    error: str | None = None
    with tempfile.TemporaryDirectory(prefix="cmtoolkit-run-") as tmp:
        out = Path(tmp) / "executed.ipynb"  # papermill saves as it goes: keep it private
        try:
            with _environ(child_env), _redacted_logging(secrets):
                pm.execute_notebook(
                    str(notebook),
                    str(out),
                    parameters=parameters,
                    kernel_name=kernel_name,
                    cwd=str(ws.path.resolve()),
                    store_widget_state=False,
                    progress_bar=progress_bar,
                    log_output=False,
                    execution_timeout=execution_timeout,
                )
        except PapermillExecutionError as exc:
            error = f"{exc.ename}: {exc.evalue}"
        except Exception as exc:  # dead kernel, cell timeout, missing kernel, ...
            error = f"{type(exc).__name__}: {exc}"
        nb = nbformat.read(out, as_version=4) if out.exists() else nbformat.read(notebook, 4)
    ended = utc_now()
    published = _published_result(nb)
    counts: dict[str, int] = dict(published.get("counts") or {}) if published else {}
    run_id: str | None = None
    state = "FAILED" if error else ("PREVIEW" if dry_run else "FINISHED")
    if not dry_run:
        runs = [r for r in _new_runs(ws, conn.name, before) if r.goal == goal]
        if runs:
            run = runs[0]
            run_id, counts = run.run_id, run.counts or counts
            if run.state == "FAILED":
                state, error = "FAILED", run.error or error
            elif run.state != "FINISHED":  # the kernel died mid-run: record it
                state = "FAILED"
                error = error or "the notebook ended before the run finished"
                with ws.store.transaction() as con:
                    ledger.fail_run(con, run_id, error)
            elif error:
                error = f"the run finished but its report notebook failed: {error}"
        else:
            if not error:
                state = "FAILED"
                error = f"the notebook {notebook.name} finished without running the {goal} goal"
            with ws.store.transaction() as con:  # on record, so history shows it
                run_id = ledger.start_run(con, conn.name, goal, full=full)
                ledger.fail_run(con, run_id, redact(error, secrets))
    if error:
        error = redact(error, secrets)
    summary = ReportSummary(
        connection=conn.name,
        goal=goal,
        state=state,
        started_at=started.isoformat(timespec="seconds"),
        ended_at=ended.isoformat(timespec="seconds"),
        duration_s=round(time.monotonic() - t0, 3),
        counts=counts,
        error=error,
        run_id=run_id,
        dry_run=dry_run,
        full=full,
        notebook=notebook.name,
    )
    nb = add_header(scrub(nb, secrets), summary)
    return _write_report(ws.reports_dir, slug(conn.name), nb, summary)


def _alert(
    ws: Any,
    settings: alerting.AlertSettings | None,
    summary: ReportSummary,
    sender: alerting.Sender | None,
) -> None:
    if settings is None:
        return
    from cmtoolkit.sync import ledger

    with ws.store.connect() as con:
        runs = ledger.history(con, summary.connection, 200)
    previous = [
        sum(r.counts.values())
        for r in runs
        if r.goal == summary.goal and r.state == "FINISHED" and r.run_id != summary.run_id
    ]
    payload = {**summary.to_dict(), "report_html": str(ws.reports_dir / summary.html)}
    alerting.process(ws.path, settings, payload, previous, send=sender)


# --- helpers -------------------------------------------------------------------------------------


def check_kernel(name: str) -> None:
    from jupyter_client.kernelspec import KernelSpecManager

    if name not in KernelSpecManager().find_kernel_specs():
        raise ConfigurationError(
            f"no Jupyter kernel named {name!r}; install it into this environment with "
            f"`python -m ipykernel install --sys-prefix --name {name}` (make does this)"
        )


def connection_secrets(conn: Any) -> list[str]:
    """The secret values behind the connection's credential, to redact from anything written."""
    from cmtoolkit.credentials import load_credential

    try:
        cred = load_credential(conn.campaign_monitor.credential)
    except CredentialError:
        return []
    values = []
    for name in ("api_key", "access_token", "refresh_token", "client_secret"):
        value = getattr(cred, name, None)
        if value is not None:
            values.append(value.reveal() if hasattr(value, "reveal") else str(value))
    return [v for v in values if len(v) >= 6]


def _notebook_for(goal: str, notebooks: Any) -> Path:
    if isinstance(notebooks, Mapping):
        if goal not in notebooks:
            raise ConfigurationError(f"no notebook given for the {goal} goal")
        return Path(notebooks[goal])
    folder = Path(notebooks) if notebooks is not None else default_notebooks_dir()
    candidate = folder / GOAL_NOTEBOOKS[goal]
    if candidate.exists():
        return candidate
    if notebooks is not None:
        raise ConfigurationError(f"{candidate} does not exist")
    return builtin_goal_notebook()


def builtin_goal_notebook() -> Path:
    """A minimal goal notebook (the parameter contract of the analyst notebooks), on disk."""
    folder = Path(tempfile.gettempdir()) / f"cmtoolkit-{os.getuid()}"
    folder.mkdir(mode=0o700, exist_ok=True)
    path = folder / "goal.ipynb"
    nb = nbformat.v4.new_notebook()
    params = nbformat.v4.new_code_cell(
        'connection = "demo"\nworkspace = "workspace"\ninteractive = True\n'
        'goal = "import"\ndry_run = False\nfull = False'
    )
    params.metadata["tags"] = ["parameters"]
    nb.cells = [
        nbformat.v4.new_markdown_cell("# Connection run"),
        params,
        nbformat.v4.new_code_cell(BUILTIN_GOAL_CODE),
    ]
    nb.metadata["kernelspec"] = {"name": KERNEL_NAME, "display_name": "cmtoolkit"}
    nb.metadata["language_info"] = {"name": "python"}
    tmp = path.with_suffix(".tmp")
    nbformat.write(nb, tmp)
    os.replace(tmp, path)
    return path


BUILTIN_GOAL_CODE = """\
from cmtoolkit import Workspace
from cmtoolkit.batch import run_goal_in_notebook

result = run_goal_in_notebook(
    Workspace(workspace), connection, goal, dry_run=dry_run, full=full, interactive=interactive
)"""


def _published_result(nb: Any) -> dict[str, Any] | None:
    for cell in reversed(nb.cells):
        for output in cell.get("outputs", []):
            data = output.get("data", {})
            if RESULT_MIME in data:
                value = data[RESULT_MIME]
                return value if isinstance(value, dict) else None
    return None


def _run_ids(ws: Any, connection: str) -> set[str]:
    from cmtoolkit.sync import ledger

    with ws.store.connect() as con:
        return {r.run_id for r in ledger.history(con, connection, 1000)}


def _new_runs(ws: Any, connection: str, before: set[str]) -> list[Any]:
    from cmtoolkit.sync import ledger

    with ws.store.connect() as con:
        return [r for r in ledger.history(con, connection, 50) if r.run_id not in before]


@contextmanager
def _environ(extra: dict[str, str]) -> Iterator[None]:
    """Entries the kernel inherits (the kernel is spawned with a copy of ``os.environ``)."""
    saved = {k: os.environ.get(k) for k in extra}
    os.environ.update(extra)
    try:
        yield
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


class _RedactFilter(logging.Filter):
    def __init__(self, secrets: list[str]) -> None:
        super().__init__()
        self.secrets = secrets

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        if any(s in message for s in self.secrets):
            record.msg, record.args = redact(message, self.secrets), None
        return True


@contextmanager
def _redacted_logging(secrets: list[str]) -> Iterator[None]:
    """nbclient logs every kernel message at DEBUG: keep the credential out of those lines."""
    if not secrets:
        yield
        return
    handlers = list(logging.getLogger().handlers)
    flt = _RedactFilter(secrets)
    for h in handlers:
        h.addFilter(flt)
    try:
        yield
    finally:
        for h in handlers:
            h.removeFilter(flt)


__all__ = [
    "GOAL_NOTEBOOKS",
    "KERNEL_NAME",
    "RESULT_MIME",
    "BatchResult",
    "builtin_goal_notebook",
    "check_kernel",
    "connection_secrets",
    "run_connection",
]
