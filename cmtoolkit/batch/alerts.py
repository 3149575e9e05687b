"""Alerts on batch runs: failure, too many rejected rows, record counts far from the usual.

The ``alerts:`` section of a connection file::

    alerts:
      on_failure: true                      # a run that did not finish (default true)
      rejected_above: 10                    # REJECTED rows above this number
      count_deviation: {runs: 5, percent: 50}  # records processed vs the mean of the last 5 runs
      webhook: https://hooks.example.com/x  # JSON POST
      command: notify-team --channel ops    # JSON on stdin (run through the shell)

Each condition is tracked per connection and goal in ``<workspace>/.alerts/state.json``. An
alert goes out when a condition **starts** to hold; while it keeps holding nothing more is sent;
when it stops holding a ``recovered`` notice goes out. One run sends at most one message, which
lists every condition that changed. Payloads carry names, counts and the run's error message
(already free of secrets: see DESIGN §8); the webhook URL itself is never included.
"""

from __future__ import annotations

import json
import logging
import os
import subprocess
import urllib.error
import urllib.request
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from cmtoolkit.errors import ConnectionFileError
from cmtoolkit.sync import Run, RunState

log = logging.getLogger("cmtoolkit.batch.alerts")

KEYS = ("on_failure", "rejected_above", "count_deviation", "webhook", "command")
CONDITIONS = ("failure", "rejected", "count_deviation")


@dataclass(frozen=True)
class AlertSettings:
    on_failure: bool = True
    rejected_above: int | None = None
    deviation_runs: int | None = None
    deviation_percent: float | None = None
    webhook: str | None = None
    command: str | None = None

    @property
    def delivers(self) -> bool:
        return bool(self.webhook or self.command)

    @classmethod
    def parse(cls, data: Any, *, file: str | None = None) -> AlertSettings | None:
        """Validate an ``alerts:`` mapping; None when absent. Errors name the key path."""
        if data is None:
            return None

        def bad(key: str, message: str) -> ConnectionFileError:
            return ConnectionFileError(message, file=file, key=key)

        if not isinstance(data, dict):
            raise bad("alerts", "expected a mapping, e.g. {on_failure: true, webhook: URL}")
        for key in data:
            if key not in KEYS:
                raise bad(f"alerts.{key}", f"unknown key; use one of {', '.join(KEYS)}")
        on_failure = data.get("on_failure", True)
        if not isinstance(on_failure, bool):
            raise bad("alerts.on_failure", "expected true or false")
        rejected = data.get("rejected_above")
        if rejected is not None and (
            isinstance(rejected, bool) or not isinstance(rejected, int) or rejected < 0
        ):
            raise bad("alerts.rejected_above", "expected a whole number >= 0")
        runs = percent = None
        dev = data.get("count_deviation")
        if dev is not None:
            if not isinstance(dev, dict) or set(dev) - {"runs", "percent"}:
                raise bad("alerts.count_deviation", "expected {runs: N, percent: P}")
            runs, percent = dev.get("runs", 5), dev.get("percent")
            if isinstance(runs, bool) or not isinstance(runs, int) or runs < 1:
                raise bad("alerts.count_deviation.runs", "expected a whole number >= 1")
            if isinstance(percent, bool) or not isinstance(percent, int | float) or percent <= 0:
                raise bad("alerts.count_deviation.percent", "expected a number > 0, e.g. 50")
        webhook = data.get("webhook")
        if webhook is not None and (
            not isinstance(webhook, str) or not webhook.startswith(("http://", "https://"))
        ):
            raise bad("alerts.webhook", "expected an http:// or https:// URL")
        command = data.get("command")
        if command is not None and (not isinstance(command, str) or not command.strip()):
            raise bad("alerts.command", "expected a shell command")
        return cls(on_failure, rejected, runs, percent, webhook, command)


@dataclass(frozen=True)
class Condition:
    kind: str  # failure | rejected | count_deviation
    message: str


def evaluate(
    settings: AlertSettings, run: Run, previous_totals: Sequence[int]
) -> dict[str, Condition | None]:
    """Which conditions hold for ``run``; None = tracked, clear.

    ``previous_totals`` are the record totals of earlier finished runs of the same goal, newest
    first. Conditions the settings do not ask for are left out.
    """
    out: dict[str, Condition | None] = {}
    counts = run.counts
    if settings.on_failure:
        out["failure"] = (
            Condition("failure", f"run {run.state}: {run.error or 'no error message'}")
            if run.state is RunState.FAILED
            else None
        )
    if run.state is not RunState.FINISHED:
        return out  # counts of a failed run say nothing about the data
    if settings.rejected_above is not None:
        rejected = int(counts.get("REJECTED", 0))
        out["rejected"] = (
            Condition("rejected", f"{rejected} rows rejected (threshold {settings.rejected_above})")
            if rejected > settings.rejected_above
            else None
        )
    if settings.deviation_runs and settings.deviation_percent is not None:
        window = list(previous_totals)[: settings.deviation_runs]
        if window:
            mean = sum(window) / len(window)
            total = sum(int(v) for v in counts.values())
            deviation = abs(total - mean) / mean * 100 if mean else (100.0 if total else 0.0)
            out["count_deviation"] = (
                Condition(
                    "count_deviation",
                    f"{total} records vs a mean of {mean:.0f} over the last {len(window)} "
                    f"runs ({deviation:.0f}% off, threshold {settings.deviation_percent:g}%)",
                )
                if deviation > settings.deviation_percent
                else None
            )
    return out


class AlertState:
    """Which conditions are active, per ``connection/goal``, in a small JSON file."""

    def __init__(self, workspace: Path) -> None:
        self.path = Path(workspace) / ".alerts" / "state.json"

    def read(self) -> dict[str, dict[str, str]]:
        try:
            return json.loads(self.path.read_text(encoding="utf-8"))
        except (FileNotFoundError, ValueError):
            return {}

    def write(self, data: dict[str, dict[str, str]]) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.path.with_suffix(".tmp")
        tmp.write_text(json.dumps(data, indent=2, sort_keys=True), encoding="utf-8")
        os.replace(tmp, self.path)


Sender = Callable[[AlertSettings, dict[str, Any]], None]


def process(
    workspace: Path,
    settings: AlertSettings | None,
    run: Run,
    previous_totals: Sequence[int] = (),
    *,
    report: str | None = None,
    send: Sender | None = None,
) -> dict[str, Any] | None:
    """Update the alert state for ``run`` and deliver a message on a change; returns the payload.

    ``report`` is the run's HTML report, named in the message.
    """
    if settings is None:
        return None
    key = f"{run.connection}/{run.goal}"
    state = AlertState(workspace)
    all_active = state.read()
    active = dict(all_active.get(key, {}))
    fired: list[dict[str, str]] = []
    recovered: list[dict[str, str]] = []
    for kind, condition in evaluate(settings, run, previous_totals).items():
        if condition is not None and kind not in active:
            active[kind] = condition.message
            fired.append({"kind": kind, "message": condition.message})
        elif condition is None and kind in active:
            recovered.append({"kind": kind, "message": active.pop(kind)})
    if not fired and not recovered:
        return None
    all_active[key] = active
    state.write(all_active)
    payload = {
        "event": "alert" if fired else "recovered",
        "connection": run.connection,
        "goal": run.goal,
        "run_id": run.run_id,
        "state": str(run.state),
        "counts": run.counts,
        "error": run.error,
        "alerts": fired,
        "recovered": recovered,
        "still_active": sorted(k for k in active if k not in {f["kind"] for f in fired}),
        "report": report,
        "at": datetime.now(UTC).isoformat(timespec="seconds"),
    }
    if settings.delivers:
        (send or deliver)(settings, payload)
    return payload


def deliver(settings: AlertSettings, payload: dict[str, Any], *, timeout: float = 10.0) -> None:
    """POST to the webhook and/or pipe to the command; a delivery problem is logged, not raised."""
    body = json.dumps(payload).encode()
    if settings.webhook:
        request = urllib.request.Request(
            settings.webhook,
            data=body,
            headers={"Content-Type": "application/json", "User-Agent": "cmtoolkit-alerts"},
            method="POST",
        )
        try:
            with urllib.request.urlopen(request, timeout=timeout) as response:
                response.read()
        except (urllib.error.URLError, OSError) as exc:
            log.error("alert webhook for %s failed: %s", payload["connection"], exc)
    if settings.command:
        try:
            done = subprocess.run(
                settings.command,
                shell=True,
                input=body + b"\n",
                capture_output=True,
                timeout=timeout * 6,
                check=False,
            )
        except (OSError, subprocess.TimeoutExpired) as exc:
            log.error("alert command for %s failed: %s", payload["connection"], exc)
        else:
            if done.returncode != 0:
                log.error("alert command for %s exited %s", payload["connection"], done.returncode)


__all__ = ["AlertSettings", "AlertState", "Condition", "deliver", "evaluate", "process"]
