"""``cmtoolkit demo``: the embedded default, end to end, on this machine alone.

1. starts the Campaign Monitor emulator on a free loopback port, its account kept in
   ``<workspace>/emulator-state.json`` so a second demo continues where the first stopped;
2. builds the workspace: synthetic profiles (about 50,000 by default, half of them also
   subscribers), viewed interactions, the sample segments;
3. writes ``connections/demo.yaml`` with the goals this toolkit has, the credential referenced as
   ``env:CMTOOLKIT_DEMO_API_KEY`` (set for this process only: no secret is written anywhere);
4. checks the connection's status, then runs the batch job (``cmtoolkit run demo --goal all``:
   every goal's notebook executed by papermill into an HTML report), stops the emulator and
   prints where the reports and the index are.

Run it again and the goals pick up what the previous runs changed (targeting subscribed segment
members to the imported list, the import then enriches their profiles, segments refreshed on the
enriched values move a little); by the third run next to nothing is sent or written: the delta.
"""

from __future__ import annotations

import os
import time
from pathlib import Path

from cmtoolkit.batch.runner import BatchResult, run_connection
from cmtoolkit.connection.file import connection_path, parse_connection, save_connection
from cmtoolkit.emulator import DEFAULT_API_KEY, Emulator
from cmtoolkit.profiles.synthetic import (
    emulator_person_offset,
    interactions_frame,
    profiles_frame,
    write_sample_segments,
)
from cmtoolkit.sync import configured_goals
from cmtoolkit.workspace import Workspace

CREDENTIAL_ENV = "CMTOOLKIT_DEMO_API_KEY"


def run_demo(
    workspace: str | os.PathLike[str],
    *,
    profiles: int = 50_000,
    subscribers: int = 30_000,
    seed: int = 7,
) -> BatchResult:
    """The whole demo (steps 1-4 above), narrated on stdout; the batch run's result."""
    ws_path = Path(workspace)
    ws_path.mkdir(parents=True, exist_ok=True)
    offset = emulator_person_offset(profiles, subscribers, subscribers // 2)
    emu = Emulator(
        seed_size=subscribers,
        seed=seed,
        person_offset=offset,
        api_key=DEFAULT_API_KEY,
        state_file=str(ws_path / "emulator-state.json"),
    )
    base_url = emu.start("127.0.0.1", 0)
    os.environ["CMTOOLKIT_API_URL"] = base_url
    os.environ[CREDENTIAL_ENV] = DEFAULT_API_KEY
    say(f"emulator: {base_url}")
    try:
        ws = build_workspace(ws_path, profiles, seed)
        write_connection(ws, emu.client_id, emu.list_ids)
        check_status(ws)
        result = run_batch(ws)
    finally:
        emu.stop()
    say("emulator stopped")
    for report in result.reports:
        if report.html:
            say(f"{report.run.goal} report: {ws.reports_dir / report.html}")
    say(f"index: {result.index}")
    say(f"history: cmtoolkit history demo --workspace {ws.path}")
    return result


def say(line: str) -> None:
    print(f"[demo] {line}", flush=True)


def build_workspace(path: Path, profiles: int, seed: int) -> Workspace:
    """Profiles, interactions and segments, generated into an empty workspace only.

    A second demo keeps the store as the first one's runs left it (enriched by the import), so
    its runs show what a scheduled sync does: next to nothing.
    """
    t = time.perf_counter()
    ws = Workspace.create(path)
    if ws.store.count() == 0:
        ws.store.load(profiles_frame(seed, 0, profiles, email_noise=0.05))
        ws.store.load_interactions(interactions_frame(seed, 0, profiles))
    write_sample_segments(ws.segments_path)
    sizes = {s.name: s.size for s in ws.segments.refresh()}
    say(
        f"workspace {path}: {profiles:,} profiles, segments {sizes} "
        f"({time.perf_counter() - t:.1f} s)"
    )
    return ws


def write_connection(ws: Workspace, client_id: str, list_ids: list[str]) -> Path:
    newsletter = list_ids[0]
    conn = parse_connection(
        {
            "name": "demo",
            "campaign_monitor": {"credential": f"env:{CREDENTIAL_ENV}", "client_id": client_id},
            "objectives": ["email_marketing"],
            "schedule": "0 3 * * *",
            "import": {
                "lists": [newsletter],
                "states": ["Active"],
                "allow_create": True,
                "save_list_names_to": "cm_lists",
                "identifiers": [{"field": "EmailAddress", "property": "email"}],
                "mappings": [
                    {"field": "Name", "property": "full_name", "rule": "set_if_empty"},
                    {"field": "interests", "property": "interests", "rule": "add"},
                    {"field": "loyalty points", "property": "points", "rule": "sum"},
                    {"field": "tier", "property": "cm_tier", "rule": "set"},
                ],
            },
            "export": {
                "segment": "newsletter_optin",
                "lists": [list_ids[2]],
                "match_property": "email",
                "consent_to_track": "Unchanged",
                "mappings": [
                    {"value": "property", "property": "full_name", "field": "Name"},
                    {"value": "property", "property": "points", "field": "loyalty points"},
                ],
            },
            "targeting": {
                "lists": [newsletter],
                "field": "Segments",
                "segments": ["vip", "churn_risk"],
            },
        },
        default_name="demo",
    )
    path = save_connection(conn, connection_path(ws.path, "demo"))
    say(f"connection: {path}")
    return path


def check_status(ws: Workspace) -> None:
    runner = ws.connection("demo")
    status = runner.status()
    say(
        "status: "
        + ", ".join(
            f"{g} {'ready' if getattr(status, f'{g}_ready', True) else 'NOT ready'}"
            for g in configured_goals(runner.model)
        )
    )
    for problem in status.errors:
        say(f"  error: {problem}")


def run_batch(ws: Workspace) -> BatchResult:
    """``cmtoolkit run demo --goal all``, in-process: notebooks, reports, index."""
    say("running `cmtoolkit run demo --goal all` (papermill, kernel cmtoolkit)")
    result = run_connection(ws.path, "demo", "all")
    for g in result.runs:
        tail = f": {g.error}" if g.error else ""
        say(f"{g.goal}: {g.state} in {g.duration_s or 0:.1f} s — {_counts(g.counts)}{tail}")
    return result


def _counts(counts: dict[str, int]) -> str:
    return ", ".join(f"{k} {v:,}" for k, v in counts.items() if v) or "nothing to do"
