"""``cmtoolkit demo``: the embedded default, end to end, on this machine alone.

1. starts the Campaign Monitor emulator on a free loopback port, its account kept in
   ``<workspace>/emulator-state.json`` so a second demo continues where the first stopped;
2. builds the workspace: synthetic profiles (about 50,000 by default, half of them also
   subscribers), viewed interactions, the sample segments;
3. stores the emulator's API key as the credential ``cmtoolkit-demo`` in the user's credential
   store (so the workspace still works after the demo: ``cmtoolkit status demo``, the notebooks)
   and writes ``connections/demo.yaml`` with the goals this toolkit has, unless the user edited
   that file since (then it is kept as it is, and the demo says so and runs it);
4. checks the connection's status, then runs the batch job (``cmtoolkit run demo --goal all``:
   every goal's notebook executed by papermill into an HTML report), stops the emulator and
   prints where the reports and the index are, and the one command that opens the notebooks
   against this workspace with the emulator running (``cmtoolkit demo --serve``).

Run it again and the goals pick up what the previous runs changed (targeting subscribed segment
members to the imported list, the import then enriches their profiles, segments refreshed on the
enriched values move a little); by the third run next to nothing is sent or written: the delta.
"""

from __future__ import annotations

import os
import shlex
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path

from cmtoolkit.batch.runner import BatchResult, default_notebooks_dir, run_connection
from cmtoolkit.connection.file import (
    connection_path,
    load_connection,
    parse_connection,
    save_connection,
)
from cmtoolkit.connection.model import Connection
from cmtoolkit.credentials import ApiKeyCredential, CredentialStore
from cmtoolkit.emulator import DEFAULT_API_KEY, Emulator
from cmtoolkit.errors import CmToolkitError, ConfigurationError
from cmtoolkit.profiles.synthetic import (
    emulator_person_offset,
    interactions_frame,
    profiles_frame,
    write_sample_segments,
)
from cmtoolkit.secret import Secret
from cmtoolkit.sync import configured_goals
from cmtoolkit.workspace import Workspace

CREDENTIAL = "cmtoolkit-demo"
STATE_FILE = "emulator-state.json"
WORKSPACE_ENV = "CMTOOLKIT_WORKSPACE"  # what the notebooks' default workspace follows


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
        state_file=str(ws_path / STATE_FILE),
    )
    store_credential()
    base_url = emu.start("127.0.0.1", 0)
    os.environ["CMTOOLKIT_API_URL"] = base_url
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
    say(f"open the notebooks (JupyterLab, with the emulator running): {serve_command(ws.path)}")
    return result


def serve(
    workspace: str | os.PathLike[str],
    *,
    port: int = 0,
    lab_args: Sequence[str] = (),
    notebooks: Path | None = None,
) -> int:
    """The demo's emulator (its saved account) and JupyterLab on the notebooks, until stopped.

    JupyterLab's kernels get ``CMTOOLKIT_API_URL`` (this emulator) and ``CMTOOLKIT_WORKSPACE``
    (this workspace), so the notebooks open with their default parameters. Ctrl-C or SIGTERM
    stops both; the emulator writes its state back, so the next demo continues from it.
    """
    ws_path = Path(workspace).expanduser().resolve()
    state = ws_path / STATE_FILE
    if not state.exists():
        raise ConfigurationError(
            f"{ws_path} holds no demo ({STATE_FILE} missing): run 'cmtoolkit demo --workspace "
            f"{ws_path}' first"
        )
    folder = notebooks or default_notebooks_dir()
    emu = Emulator(api_key=DEFAULT_API_KEY, state_file=str(state))
    base_url = emu.start("127.0.0.1", port)
    env = {**os.environ, "CMTOOLKIT_API_URL": base_url, WORKSPACE_ENV: str(ws_path)}
    say(f"emulator: {base_url} (account from {state})")
    say(f"JupyterLab on {folder}, workspace {ws_path}; Ctrl-C stops both")
    previous = signal.signal(signal.SIGTERM, _exit_on_sigterm)
    proc: subprocess.Popen[bytes] | None = None
    try:
        proc = subprocess.Popen(
            [sys.executable, "-m", "jupyterlab", f"--ServerApp.root_dir={folder}", *lab_args],
            cwd=folder,
            env=env,
        )
        return proc.wait()
    except KeyboardInterrupt:
        return 0
    finally:
        if proc is not None and proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        signal.signal(signal.SIGTERM, previous)
        emu.stop()
        say("emulator stopped, its account saved")


def _exit_on_sigterm(signum: int, frame: object) -> None:
    raise SystemExit(128 + signum)


def store_credential(store: CredentialStore | None = None) -> None:
    """The emulator's key as credential ``cmtoolkit-demo``, unless that name holds another."""
    store = store or CredentialStore()
    found = store.find(CREDENTIAL)
    if found is None:
        store.put(CREDENTIAL, ApiKeyCredential(Secret(DEFAULT_API_KEY)))
        say(f"credential {CREDENTIAL!r} (the emulator's API key) stored in {store.path}")
    elif not (isinstance(found, ApiKeyCredential) and found.api_key.reveal() == DEFAULT_API_KEY):
        raise ConfigurationError(
            f"credential {CREDENTIAL!r} in {store.path} is not the emulator's: the demo will "
            f"not replace it; remove it with 'cmtoolkit auth logout --credential {CREDENTIAL}'"
        )


def serve_command(workspace: Path) -> str:
    """The command that opens the notebooks on ``workspace`` (``cmtoolkit`` of this install)."""
    script = Path(sys.executable).with_name("cmtoolkit")
    program = "cmtoolkit" if shutil.which("cmtoolkit") == str(script) else str(script)
    if not script.exists():
        program = f"{sys.executable} -m cmtoolkit"
    return f"{program} demo --serve --workspace {shlex.quote(str(workspace.resolve()))}"


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
    """``connections/demo.yaml``, unless the file there is not the one the demo would write.

    The emulator's ids are the same from one demo to the next (its state file), so any other
    content is the user's edit: it is kept, and the demo runs it.
    """
    path = connection_path(ws.path, "demo")
    model = demo_connection(client_id, list_ids)
    if path.exists():
        if _edited(path, model):
            say(f"connection: {path} is not the demo's (edited?): kept as it is, not overwritten")
        else:
            say(f"connection: {path}")
        return path
    save_connection(model, path)
    say(f"connection: {path}")
    return path


def _edited(path: Path, model: Connection) -> bool:
    """Whether the file says anything else than ``model`` (its generated ``id`` aside)."""
    try:
        found = load_connection(path)
    except CmToolkitError:
        return True
    found = replace(found, id=model.id)  # written on first use: not an edit
    return found != model


def demo_connection(client_id: str, list_ids: list[str]) -> Connection:
    newsletter = list_ids[0]
    return parse_connection(
        {
            "name": "demo",
            "campaign_monitor": {"credential": CREDENTIAL, "client_id": client_id},
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
