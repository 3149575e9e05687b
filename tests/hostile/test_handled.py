"""Hostile inputs the toolkit handles rather than refuses: a wrong line in the export journal is
set aside and the rest used, a reader that leaves a pipe ends the command quietly, a long CSV
cell loads, a file segment outside the workspace loads when the segment says it may, and run
scratch never outlives its run."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml

from cmtoolkit.emulator import Emulator
from cmtoolkit.workspace import Workspace
from tests.hostile.conftest import Answer, connection_data


def with_export(ws: Path, emu: Emulator) -> None:
    data: dict[str, Any] = connection_data(emu)
    data["export"] = {
        "segment": "newsletter_optin",
        "lists": [emu.list_ids[1]],
        "match_property": "email",
        "mappings": [{"value": "property", "property": "full_name", "field": "Name"}],
    }
    (ws / "connections" / "c1.yaml").write_text(yaml.safe_dump(data))


def test_a_wrong_line_in_the_export_journal_is_set_aside_and_the_rest_used(
    ws: Path, emu: Emulator, cli: Callable[..., Answer], caplog: pytest.LogCaptureFixture
) -> None:
    with_export(ws, emu)
    journal = ws / ".journal" / "c1.export.jsonl"
    journal.parent.mkdir()
    good = (
        b'{"list_id":["%s"],"profile_id":["p00000001"],"email":["e@example.com"],'
        b'"hash":["h"],"action":["send"]}' % emu.list_ids[1].encode()
    )
    journal.write_bytes(good + b'\n{"list_id": ["x"]}\n')  # the second: no profile_id
    # The connection has no id yet: its first use writes one, and the journal left under its
    # name (by an export before the upgrade) is taken over under the id.
    got = cli("sync", "c1", "--goal", "export", "--workspace", str(ws))
    assert got.code == 0, got.err
    warned = caplog.text
    (rejected,) = (ws / ".journal").glob("*.export.jsonl.rejected")
    assert "line(s) 2 " in warned and rejected.name in warned, warned
    assert "Traceback" not in got.err
    assert not journal.exists() and not list((ws / ".journal").glob("*.export.jsonl"))
    assert rejected.read_bytes() == b'{"list_id": ["x"]}\n'
    with Workspace(ws).store.connect() as con:
        (sent,) = con.execute("SELECT count(*) FROM export_state").fetchone() or (0,)
    assert sent > 0  # the export ran past the journal
    caplog.clear()
    again = cli("sync", "c1", "--goal", "export", "--workspace", str(ws))
    assert again.code == 0 and "rejected" not in caplog.text  # warned once, not every run


def test_a_reader_that_leaves_the_pipe_ends_the_command_quietly(
    ws: Path, cli: Callable[..., Answer]
) -> None:
    many = ws.parent / "many.csv"  # an answer far larger than the pipe's buffer
    many.write_text("profile_id,newsletter\n" + "".join(f"m{i:06d},yes\n" for i in range(30_000)))
    assert cli("profiles", "load", str(many), "--workspace", str(ws)).code == 0
    proc = subprocess.Popen(
        [sys.executable, "-m", "cmtoolkit", "profiles", "find", "newsletter", "yes", "--json",
         "--workspace", str(ws)],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE,
    )  # fmt: skip
    assert proc.stdout is not None and proc.stderr is not None
    proc.stdout.read(1)
    proc.stdout.close()  # `| head -c 1`
    err = proc.stderr.read().decode()
    assert proc.wait(timeout=60) == 141, err
    assert err == ""


def test_a_ten_megabyte_cell_loads(ws: Path, cli: Callable[..., Answer]) -> None:
    path = ws.parent / "long.csv"
    path.write_text("profile_id,note\np1," + "x" * 10_000_000 + "\np2,short\n")
    got = cli("profiles", "load", str(path), "--workspace", str(ws))
    assert got.code == 0, got.err[:2000]
    assert cli("profiles", "show", "p2", "--workspace", str(ws)).code == 0


def test_a_file_segment_outside_the_workspace_loads_when_the_segment_allows_it(
    ws: Path, cli: Callable[..., Answer]
) -> None:
    outside = ws.parent / "partner_ids.csv"
    outside.write_text("profile_id\np00000001\np00000002\n")
    (ws / "segments.yaml").write_text(
        f"partner: {{file: {outside}, allow_outside_workspace: true}}\n"
    )
    got = cli("segments", "refresh", "--workspace", str(ws))
    assert got.code == 0, got.err
    assert "partner [file]: 2 members" in got.out


def test_run_scratch_stays_in_the_workspace_and_a_dead_runs_is_swept(
    ws: Path, cli: Callable[..., Answer], tmp_path: Path
) -> None:
    dead = ws / ".runs" / "import-dead"
    dead.mkdir(parents=True)
    (dead / ".owner").write_text("")  # no process holds it: its run crashed
    (dead / "spill.tmp").write_text("subscriber data")
    before = {p.name for p in Path("/tmp").glob("cmtoolkit-*")}
    got = cli("sync", "c1", "--goal", "import", "--workspace", str(ws))
    assert got.code == 0, got.err
    assert list((ws / ".runs").iterdir()) == []
    assert {p.name for p in Path("/tmp").glob("cmtoolkit-*")} <= before
    assert os.environ.get("CMTOOLKIT_RUN_LOCK") is None
