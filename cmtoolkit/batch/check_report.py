"""Check the reports of a workspace: ``python -m cmtoolkit.batch.check_report WORKSPACE``.

Used by CI after ``make demo``. For the newest report of each goal of ``--connection`` (default
``demo``) it checks the sections a reader relies on and the things a shared report must not hold,
then checks ``reports/index.html`` lists those runs with links. Exit status 0 when all hold;
every problem is printed.

Checks per HTML report: the outcome banner first, with ``Run FINISHED`` (or ``--allow-failed``);
the counts per outcome; no code input (``jp-mod-noInput`` on every code cell, no input areas in
code cells); no ``injected-parameters``; no papermill metadata; no widget state; no value of the
environment variables named by ``--secret-env``.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import sys
from pathlib import Path
from typing import Any

from cmtoolkit.sync import RunState

GOALS = ("import", "export", "targeting")


def check(
    workspace: Path,
    connection: str = "demo",
    *,
    goals: tuple[str, ...] = GOALS,
    allow_failed: bool = False,
    secrets: tuple[str, ...] = (),
) -> list[str]:
    problems: list[str] = []
    reports = Path(workspace) / "reports"
    folder = reports / connection
    index_path = reports / "index.html"
    index = index_path.read_text(encoding="utf-8") if index_path.exists() else ""
    if not index:
        problems.append(f"{index_path} is missing")
    for goal in goals:
        found = sorted(folder.glob(f"*_{goal}.json"))
        if not found:
            problems.append(f"no {goal} report in {folder}")
            continue
        summary = json.loads(found[-1].read_text(encoding="utf-8"))
        html_path = reports / summary["html"]
        page = html_path.read_text(encoding="utf-8")
        where = str(html_path)
        problems += [f"{where}: {p}" for p in check_page(page, summary, allow_failed, secrets)]
        if summary["html"] not in index:
            problems.append(f"{index_path} has no link to {summary['html']}")
        if summary.get("run_id") and summary["state"] not in index:
            problems.append(f"{index_path} does not show the state {summary['state']}")
        ipynb = (reports / summary["ipynb"]).read_text(encoding="utf-8")
        nb = json.loads(ipynb)
        if "papermill" in nb.get("metadata", {}) or "widgets" in nb.get("metadata", {}):
            problems.append(f"{summary['ipynb']}: papermill metadata or widget state left")
        if "injected-parameters" in ipynb:
            problems.append(f"{summary['ipynb']}: injected-parameters cell left")
        problems += [f"{summary['ipynb']}: holds a secret" for s in secrets if s and s in ipynb]
    problems += [f"{index_path}: holds a secret" for s in secrets if s and s in index]
    return problems


def check_page(
    page: str, summary: dict[str, Any], allow_failed: bool = False, secrets: tuple[str, ...] = ()
) -> list[str]:
    problems = []
    body = page[page.find("<main") :]
    banner = body.find("cmtoolkit-banner")
    if banner < 0:
        problems.append("no outcome banner")
    elif body.find("jp-CodeCell") != -1 and body.find("jp-CodeCell") < banner:
        problems.append("the outcome banner is not the first section")
    state = summary["state"]
    if state != RunState.FINISHED and not (allow_failed and state == RunState.FAILED):
        problems.append(f"run state {state}: {summary.get('error')}")
    if f"Run {state}" not in body:
        problems.append(f"the banner does not say 'Run {state}'")
    if state == RunState.FAILED and (summary.get("error") or "")[:30] not in body:
        problems.append("a failed run's banner does not show its error")
    for outcome, count in (summary.get("counts") or {}).items():
        if count and outcome not in body:
            problems.append(f"the counts do not show {outcome}")
    for cell in re.findall(r'<div class="jp-Cell jp-CodeCell[^"]*"', body):
        if "jp-mod-noInput" not in cell:
            problems.append("a code cell shows its input")
            break
    if re.search(r'jp-CodeCell[^>]*>\s*<div class="jp-Cell-inputWrapper', body):
        problems.append("a code cell has an input area")
    for marker, what in (
        ("injected-parameters", "the injected-parameters cell"),
        ("application/vnd.jupyter.widget-state+json", "widget state"),
        ('"papermill"', "papermill metadata"),
    ):
        if marker in page:
            problems.append(f"holds {what}")
    problems += ["holds a secret" for s in secrets if s and s in page]
    return problems


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m cmtoolkit.batch.check_report")
    p.add_argument("workspace", type=Path)
    p.add_argument("--connection", default="demo")
    p.add_argument("--goals", default=",".join(GOALS), help="comma-separated (default: all)")
    p.add_argument("--allow-failed", action="store_true")
    p.add_argument(
        "--secret-env", action="append", default=[], metavar="VAR",
        help="fail if the value of $VAR appears (repeatable)",
    )  # fmt: skip
    args = p.parse_args(argv)
    secrets = tuple(os.environ.get(v, "") for v in args.secret_env)
    problems = check(
        args.workspace,
        args.connection,
        goals=tuple(g for g in args.goals.split(",") if g),
        allow_failed=args.allow_failed,
        secrets=secrets,
    )
    for problem in problems:
        print(f"FAIL {problem}")
    if not problems:
        print(f"ok: reports of {args.connection} in {args.workspace / 'reports'}")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
