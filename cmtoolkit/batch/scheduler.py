"""When connections run: what is scheduled, the crontab entry, and a foreground scheduler.

``schedule`` in a connection file is a five-field cron expression in **UTC**
(:mod:`cmtoolkit.connection.cron` validates and evaluates it). System cron reads entries in the
machine's local time zone, so ``schedule install`` does not translate each expression into a
crontab line: it installs **one** entry per workspace that runs ``cmtoolkit schedule run --once``
every minute, and that tick decides in UTC what is due. The entry sits between marker comments,
so installing again replaces it (idempotent) and ``--remove`` takes it out, leaving the user's
other lines alone.

The scheduler runs due connections **one at a time**: a connection that falls due while another
runs waits in a queue, and a connection already queued is not queued twice. Which fire times were
handled is kept in ``<workspace>/.schedule/state.json``, and ticks hold an exclusive lock
(``.schedule/tick.lock``), so overlapping ``--once`` ticks from cron queue behind each other and
never run the same fire twice.
"""

from __future__ import annotations

import fcntl
import json
import logging
import os
import shlex
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import yaml

from cmtoolkit.batch import alerts as alerting
from cmtoolkit.connection.cron import Cron
from cmtoolkit.connection.file import list_connections, load_connection
from cmtoolkit.errors import CmToolkitError, ConfigurationError
from cmtoolkit.sync.ledger import utc_now

log = logging.getLogger("cmtoolkit.batch.scheduler")

# --- what is scheduled ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Scheduled:
    connection: str
    cron: Cron
    next_run: datetime


@dataclass(frozen=True)
class Broken:
    """A connection file the scheduler cannot read: skipped, reported, alerted on."""

    file: Path
    problem: str


def scan(workspace: Path, now: datetime | None = None) -> tuple[list[Scheduled], list[Broken]]:
    """Enabled connections with a schedule, soonest first, and the files that could not be read
    (one broken file must not stop the schedule of every other connection)."""
    now = now or utc_now()
    out, broken = [], []
    for path in list_connections(Path(workspace)):
        try:
            conn = load_connection(path)
            if conn.enabled and conn.schedule:
                cron = Cron.parse(conn.schedule)
                out.append(Scheduled(conn.name, cron, cron.next_after(now)))
        except CmToolkitError as exc:
            problem = str(exc) if str(path) in str(exc) else f"{path}: {exc}"
            broken.append(Broken(path, problem))
    return sorted(out, key=lambda s: (s.next_run, s.connection)), broken


def scheduled_connections(workspace: Path, now: datetime | None = None) -> list[Scheduled]:
    """Enabled connections with a schedule, soonest first (broken files left out: see scan)."""
    return scan(workspace, now)[0]


def alert_broken(
    workspace: Path, broken: list[Broken], send: alerting.Sender | None = None
) -> list[dict[str, Any]]:
    """Alert once per file that became unreadable (through the ``alerts:`` section it still has,
    if any); a file readable again clears its alert. Returns the payloads delivered."""
    state = alerting.AlertState(workspace)
    active = state.read()
    now_broken = {f"file:{b.file.name}": b for b in broken}
    payloads = []
    for key, item in now_broken.items():
        if key in active:
            continue
        active[key] = {"broken": item.problem}
        settings = _alert_settings(item.file)
        payload = {
            "event": "alert",
            "connection": item.file.stem,
            "goal": None,
            "state": "BROKEN",
            "error": f"{item.problem}; the scheduler skips it until it is fixed",
            "alerts": [{"kind": "broken", "message": item.problem}],
            "at": datetime.now(UTC).isoformat(timespec="seconds"),
        }
        if settings is not None and settings.delivers:
            (send or alerting.deliver)(settings, payload)
            payloads.append(payload)
    for key in [k for k in active if k.startswith("file:") and k not in now_broken]:
        del active[key]
    state.write(active)
    return payloads


def _alert_settings(file: Path) -> alerting.AlertSettings | None:
    """The ``alerts:`` section of a file that fails validation elsewhere, when it still parses."""
    try:
        data = yaml.safe_load(file.read_text(encoding="utf-8"))
        return alerting.AlertSettings.parse(
            data.get("alerts") if isinstance(data, dict) else None, file=str(file)
        )
    except (OSError, UnicodeDecodeError, yaml.YAMLError, CmToolkitError):
        return None


# --- crontab -------------------------------------------------------------------------------------

BEGIN = "# >>> cmtoolkit schedule {workspace} >>>"
END = "# <<< cmtoolkit schedule {workspace} <<<"


def crontab_block(workspace: Path, executable: str | None = None) -> str:
    """The managed block for ``workspace``: a per-minute UTC tick, logging into the workspace."""
    ws = Path(workspace).resolve()
    exe = executable or _cmtoolkit_executable()
    log_file = ws / "reports" / "schedule.log"
    command = (
        f"{shlex.quote(exe)} schedule run --once --workspace {shlex.quote(str(ws))} "
        f">> {shlex.quote(str(log_file))} 2>&1"
    )
    return "\n".join(
        [
            BEGIN.format(workspace=ws),
            "# managed by `cmtoolkit schedule install`; remove with "
            "`cmtoolkit schedule install --remove`",
            "# every minute: run the connections whose UTC cron schedule is due, one at a time",
            f"* * * * * {command}",
            END.format(workspace=ws),
        ]
    )


def merge_crontab(current: str, workspace: Path, block: str | None) -> str:
    """``current`` with this workspace's managed block replaced (or removed when None)."""
    ws = Path(workspace).resolve()
    begin, end = BEGIN.format(workspace=ws), END.format(workspace=ws)
    kept: list[str] = []
    inside = False
    for line in current.splitlines():
        if line.strip() == begin:
            inside = True
            continue
        if inside:
            if line.strip() == end:
                inside = False
            continue
        kept.append(line)
    while kept and not kept[-1].strip():
        kept.pop()
    if block:
        kept.append(block)
    return "\n".join(kept) + "\n" if kept else ""


def read_crontab(path: Path | None) -> str:
    if path is not None:
        return path.read_text(encoding="utf-8") if path.exists() else ""
    done = subprocess.run(["crontab", "-l"], capture_output=True, text=True, check=False)
    if done.returncode != 0:
        if "no crontab" in done.stderr.lower():
            return ""
        raise ConfigurationError(f"crontab -l failed: {done.stderr.strip()}")
    return done.stdout


def write_crontab(text: str, path: Path | None) -> None:
    if path is not None:
        path.write_text(text, encoding="utf-8")
        return
    done = subprocess.run(["crontab", "-"], input=text, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise ConfigurationError(f"crontab - failed: {done.stderr.strip()}")


def _cmtoolkit_executable() -> str:
    candidate = Path(sys.executable).with_name("cmtoolkit")
    return str(candidate) if candidate.exists() else f"{sys.executable} -m cmtoolkit.cli"


# --- the scheduler -------------------------------------------------------------------------------

RunFunction = Callable[[str], Any]


class Scheduler:
    """Runs due connections of one workspace, one at a time, in a foreground loop.

    ``run(connection_name)`` does one batch run (the CLI passes the papermill runner); ``clock``
    returns naive UTC and ``sleep`` waits, both injectable so tests never sleep.
    """

    def __init__(
        self,
        workspace: Path,
        run: RunFunction,
        *,
        clock: Callable[[], datetime] = utc_now,
        sleep: Callable[[float], None] = time.sleep,
        send: alerting.Sender | None = None,
    ) -> None:
        self.workspace = Path(workspace)
        self.send = send
        self.broken: list[Broken] = []
        self.run = run
        self.clock = clock
        self.sleep = sleep
        self.queue: list[str] = []
        self.ran: list[tuple[str, datetime]] = []
        self.state_dir = self.workspace / ".schedule"

    def tick(self) -> list[str]:
        """Queue what fell due since it was last handled, then run the queue; returns who ran.

        Broken connection files are skipped, logged and alerted on (:attr:`broken`)."""
        ran: list[str] = []
        with self._tick_lock():
            self._enqueue_due()
            for item in self.broken:
                log.error("skipped a broken connection file: %s", item.problem)
            alert_broken(self.workspace, self.broken, self.send)
            while self.queue:
                name = self.queue.pop(0)
                log.info("scheduled run of %s", name)
                try:
                    self.run(name)
                except Exception:  # one connection's failure must not stop the others
                    log.exception("scheduled run of %s failed", name)
                ran.append(name)
                self.ran.append((name, self.clock()))
                self._enqueue_due()  # what fell due meanwhile waits its turn
        return ran

    def loop(self, *, ticks: int | None = None, interval: float = 30.0) -> None:
        n = 0
        while ticks is None or n < ticks:
            self.tick()
            n += 1
            if ticks is None or n < ticks:
                self.sleep(interval)

    def _enqueue_due(self) -> None:
        now = self.clock()
        state = self._read_state()
        floor = now.replace(second=0, microsecond=0) - timedelta(seconds=1)
        due: list[tuple[datetime, str]] = []
        scheduled, self.broken = scan(self.workspace, now)
        for item in scheduled:
            last_raw = state.get(item.connection)
            last = datetime.fromisoformat(last_raw) if last_raw else floor
            fires = item.cron.fires_between(last, now)
            if fires:
                state[item.connection] = fires[-1].isoformat()  # missed fires: one run
                due.append((fires[0], item.connection))
        for _, name in sorted(due):  # earliest fire first, then by name
            if name not in self.queue:
                self.queue.append(name)
        if due:
            self._write_state(state)

    def _read_state(self) -> dict[str, str]:
        path = self.state_dir / "state.json"
        try:
            return json.loads(path.read_text(encoding="utf-8"))
        except (FileNotFoundError, ValueError):
            return {}

    def _write_state(self, state: dict[str, str]) -> None:
        self.state_dir.mkdir(parents=True, exist_ok=True)
        tmp = self.state_dir / "state.json.tmp"
        tmp.write_text(json.dumps(state, indent=2, sort_keys=True), encoding="utf-8")
        os.replace(tmp, self.state_dir / "state.json")

    @contextmanager
    def _tick_lock(self) -> Iterator[None]:
        self.state_dir.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.state_dir / "tick.lock", os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)  # an overlapping tick waits: the queue across ticks
            yield
        finally:
            fcntl.flock(fd, fcntl.LOCK_UN)
            os.close(fd)


__all__ = [
    "Broken",
    "Cron",
    "Scheduled",
    "Scheduler",
    "alert_broken",
    "crontab_block",
    "merge_crontab",
    "read_crontab",
    "scan",
    "scheduled_connections",
    "write_crontab",
]
