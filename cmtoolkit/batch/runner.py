"""``cmtoolkit run``: a connection's goal notebooks executed by papermill, as shareable reports.

One run takes the connection's run lock in this process and hands it to the kernel
(``RunLock.child_env``), so the engine inside the notebook runs under it while a second
``cmtoolkit run`` or ``sync`` of the same connection is refused. For each goal it executes the
goal's notebook with papermill (kernel ``cmtoolkit``; parameters carry names and paths only,
passed as Python strings and booleans, never coerced; ``store_widget_state=False``) into a private
scratch folder of the workspace (:mod:`cmtoolkit.sync.scratch`), writes the scrubbed report
(:mod:`cmtoolkit.batch.reports`), refreshes ``reports/index.html`` and processes alerts. The kernel
holds the connection's kernel lock until it ends (:mod:`cmtoolkit.sync.locking`), so killing this
process does not let a second run start while the kernel still writes.

A real run is recorded ``STARTING`` here and its ``run_id`` passed to the notebook, whose run
continues it (:func:`cmtoolkit.widgets.notebook.run_step`); afterwards the ledger says what became
of that run. A dry run has no run id: its counts are the result the notebook published
(:func:`cmtoolkit.widgets.publish`).

The goal notebooks are ``notebooks/02_import.ipynb`` (import) and ``notebooks/03_export.ipynb``
(export, targeting), found in ``$CMTOOLKIT_NOTEBOOKS`` or the source tree; when they are not
there (an installed package) a minimal built-in goal notebook is generated instead.

A goal that fails stops the goals after it. The result is ``ok`` only when every goal finished.
"""

from __future__ import annotations

import logging
import os
import tempfile
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from datetime import datetime
from pathlib import Path

import nbformat
import papermill as pm
from jupyter_client.kernelspec import KernelSpecManager
from papermill.exceptions import PapermillExecutionError

from cmtoolkit.batch import alerts as alerting
from cmtoolkit.batch.reports import Report, add_header, redact, scrub, slug, write_index
from cmtoolkit.batch.reports import write_report as _write_report
from cmtoolkit.connection.file import ensure_id, find_connection
from cmtoolkit.connection.model import Connection
from cmtoolkit.credentials import load_credential
from cmtoolkit.errors import ConfigurationError, CredentialError, RunError
from cmtoolkit.sync import Run, RunState, ledger, resolve_goals, utc_now
from cmtoolkit.sync.locking import RunLock
from cmtoolkit.sync.scratch import scratch_dir
from cmtoolkit.widgets import published_run
from cmtoolkit.widgets.rows import run_rows_html
from cmtoolkit.workspace import Workspace

log = logging.getLogger("cmtoolkit.batch")

KERNEL_NAME = "cmtoolkit"
NOTEBOOKS_ENV = "CMTOOLKIT_NOTEBOOKS"
GOAL_NOTEBOOKS = {
    "import": "02_import.ipynb",
    "export": "03_export.ipynb",
    "targeting": "03_export.ipynb",
}

Notebooks = Mapping[str, str | os.PathLike[str]] | str | os.PathLike[str]


@dataclass
class BatchResult:
    """The reports of one ``cmtoolkit run``, one per goal run, and the index they are in."""

    connection: str
    reports: list[Report] = field(default_factory=list)
    index: Path | None = None

    @property
    def runs(self) -> list[Run]:
        return [r.run for r in self.reports]

    @property
    def ok(self) -> bool:
        return bool(self.reports) and all(r.run.ok for r in self.reports)

    def to_dict(self, reports_dir: Path | None = None) -> dict[str, object]:
        def where(rel: str | None) -> str | None:
            return str(reports_dir / rel) if rel and reports_dir else rel

        return {
            "connection": self.connection,
            "ok": self.ok,
            "index": str(self.index) if self.index else None,
            "runs": [
                {**r.to_dict(), "ipynb": where(r.ipynb), "html": where(r.html)}
                for r in self.reports
            ],
        }


def default_notebooks_dir() -> Path:
    env = os.environ.get(NOTEBOOKS_ENV)
    if env:
        return Path(env)
    return Path(__file__).resolve().parents[2] / "notebooks"


def run_connection(
    workspace: Workspace | str | os.PathLike[str],
    connection: str,
    goal: str = "all",
    *,
    dry_run: bool = False,
    full: bool = False,
    force: bool = False,
    notebooks: Notebooks | None = None,
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
    ws = workspace if isinstance(workspace, Workspace) else Workspace.open(workspace)
    path = find_connection(ws.path, connection)
    conn = ensure_id(path)  # first use writes the connection's id (DESIGN §4)
    settings = alerting.AlertSettings.parse(conn.alerts, file=str(path))
    goals = resolve_goals(conn, goal)
    # The readiness gate (DESIGN §7), before any notebook starts: errors, or disabled unforced.
    ws.connection(str(path)).check_ready(force=force, dry_run=dry_run)
    check_kernel(kernel_name)
    secrets = connection_secrets(conn)
    result = BatchResult(conn.name)
    with RunLock(ws.path, conn.name) as lock:
        for g in goals:
            report = _run_goal(
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
            result.reports.append(report)
            if not dry_run:
                _alert(ws, settings, report, alert_sender)
            if report.run.state is RunState.FAILED:
                break
    result.index = write_index(ws, secrets)
    return result


def _run_goal(
    ws: Workspace,
    conn: Connection,
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
) -> Report:
    """Execute ``goal``'s notebook; the report of the run it made (a real run is allocated here
    and its id handed to the notebook, so the ledger says what became of it)."""
    run_id: str | None = None
    if not dry_run:
        with ws.store.transaction() as con:
            run_id = ledger.start_run(con, conn.name, goal, full=full)
    parameters = {
        "connection": conn.name,
        "workspace": str(ws.path.resolve()),
        "interactive": False,
        "goal": goal,
        "dry_run": dry_run,
        "full": full,
        "run_id": run_id,
    }
    started = utc_now()
    error: str | None = None
    with scratch_dir(ws.path, "run") as tmp:
        out = tmp / "executed.ipynb"  # papermill saves as it goes: keep it in the workspace
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
    if run_id is None:
        run = _preview(conn, goal, full, started, published_run(nb), error)
    else:
        run = _outcome(ws, run_id, notebook, error, secrets)
    if run.error:
        run = replace(run, error=redact(run.error, secrets))
    report = Report(run, notebook=notebook.name)
    rows = run_rows_html(ws.store, conn.name, run.run_id)  # the people not sent, first 100
    nb = add_header(scrub(nb, secrets), report, rows)
    return _write_report(ws.reports_dir, slug(conn.name), nb, report)


def _preview(
    conn: Connection,
    goal: str,
    full: bool,
    started: datetime,
    published: Run | None,
    error: str | None,
) -> Run:
    """A dry run as the notebook published it; the notebook's error makes it FAILED."""
    return Run(
        conn.name,
        goal,
        RunState.FAILED if error else RunState.PREVIEW,
        dict(published.counts) if published else {},
        started,
        utc_now(),
        full=full,
        dry_run=True,
        error=error,
    )


def _outcome(
    ws: Workspace, run_id: str, notebook: Path, error: str | None, secrets: list[str]
) -> Run:
    """The run as the ledger has it; a run the notebook left unfinished is recorded FAILED."""
    with ws.store.connect() as con:
        run = ledger.get_run(con, run_id)
    if run is None:  # cannot happen: the run was recorded before the notebook started
        raise RunError(f"run {run_id} is missing from the ledger")
    if run.state is RunState.FINISHED:
        if error:
            return replace(run, error=f"the run finished but its report notebook failed: {error}")
        return run
    if run.state is RunState.FAILED:
        return replace(run, error=run.error or error)
    if not error:
        error = (
            f"the notebook {notebook.name} finished without running the {run.goal} goal"
            if run.state is RunState.STARTING
            else "the notebook ended before the run finished"
        )
    with ws.store.transaction() as con:  # on record, so history shows it
        ledger.fail_run(con, run_id, redact(error, secrets))
    with ws.store.connect() as con:
        return ledger.get_run(con, run_id) or replace(run, state=RunState.FAILED, error=error)


def _alert(
    ws: Workspace,
    settings: alerting.AlertSettings | None,
    report: Report,
    sender: alerting.Sender | None,
) -> None:
    if settings is None:
        return
    run = report.run
    with ws.store.connect() as con:
        runs = ledger.history(con, run.connection, 200)
    previous = [
        sum(r.counts.values())
        for r in runs
        if r.goal == run.goal and r.state is RunState.FINISHED and r.run_id != run.run_id
    ]
    html = str(ws.reports_dir / report.html) if report.html else None
    alerting.process(ws.path, settings, run, previous, report=html, send=sender)


# --- helpers -------------------------------------------------------------------------------------


def check_kernel(name: str) -> None:
    if name not in KernelSpecManager().find_kernel_specs():
        raise ConfigurationError(
            f"no Jupyter kernel named {name!r}; install it into this environment with "
            f"`python -m ipykernel install --sys-prefix --name {name}` (make does this)"
        )


def connection_secrets(conn: Connection) -> list[str]:
    """The secret values behind the connection's credential, to redact from anything written."""
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


def _notebook_for(goal: str, notebooks: Notebooks | None) -> Path:
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
        'goal = "import"\ndry_run = False\nfull = False\nrun_id = None'
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
from cmtoolkit.widgets import notebook as nb

editor = nb.open_editor(workspace, connection)
results = nb.run_step(
    editor,
    nb.goals_for(editor, goal, ("import", "export", "targeting")),
    interactive=interactive,
    dry_run=dry_run,
    full=full,
    run_id=run_id,
)"""


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
    "BatchResult",
    "builtin_goal_notebook",
    "check_kernel",
    "connection_secrets",
    "default_notebooks_dir",
    "run_connection",
]
