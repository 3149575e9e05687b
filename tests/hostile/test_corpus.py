"""The hostile-input corpus: every case is refused with the exact exit code, a message that names
the file/key/line and says what to do, no traceback, and the workspace byte for byte unchanged
(or, where the brief says "handled", handled as documented).

Each case is ``(id, setup, expected code, words the message must hold)``; ``setup(ws, emu)``
prepares the hostile input in a fresh copy of the sample workspace and returns the CLI arguments.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import Any, NamedTuple

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import yaml

from cmtoolkit.emulator import Emulator
from tests.hostile.conftest import Answer, checksum, connection_data

Setup = Callable[[Path, Emulator], list[str]]


class Case(NamedTuple):
    id: str
    setup: Setup
    code: int
    says: tuple[str, ...]  # every one must be in the message (case-insensitive)


CASES: list[Case] = []


def case(id: str, code: int, *says: str) -> Callable[[Setup], Setup]:
    def add(setup: Setup) -> Setup:
        CASES.append(Case(id, setup, code, says))
        return setup

    return add


def w(ws: Path) -> list[str]:
    return ["--workspace", str(ws)]


def conn_file(ws: Path) -> Path:
    return ws / "connections" / "c1.yaml"


def edit_conn(ws: Path, emu: Emulator, change: Callable[[dict[str, Any]], None]) -> None:
    data = connection_data(emu)
    change(data)
    conn_file(ws).write_text(yaml.safe_dump(data))


def status(ws: Path) -> list[str]:
    return ["status", "c1", *w(ws)]


# --- connection files --------------------------------------------------------------------------


def _raw(text: str | bytes) -> Setup:
    def setup(ws: Path, emu: Emulator) -> list[str]:
        target = conn_file(ws)
        if isinstance(text, bytes):
            target.write_bytes(text)
        else:
            target.write_text(text)
        return status(ws)

    return setup


case("conn-invalid-yaml", 2, "c1.yaml", "line")(_raw("name: c1\nimport: [unclosed\n"))
case("conn-a-list", 2, "c1.yaml", "mapping")(_raw("- name: c1\n"))
case("conn-empty-file", 2, "c1.yaml")(_raw(""))
case("conn-latin1", 2, "c1.yaml", "utf-8")(_raw("name: caf\xe9\n".encode("latin-1")))
case("conn-binary", 2, "c1.yaml")(_raw(bytes(range(256)) * 4))
case("conn-tabs", 2, "c1.yaml", "line")(_raw("name: c1\nimport:\n\tlists: [x]\n"))
case("conn-deep", 2, "c1.yaml")(_raw("name: c1\nimport: " + "[" * 3000 + "]" * 3000 + "\n"))


def _conn(change: Callable[[dict[str, Any]], None], args: Callable[[Path], list[str]] = status):
    def setup(ws: Path, emu: Emulator) -> list[str]:
        edit_conn(ws, emu, change)
        return args(ws)

    return setup


case("conn-unknown-key", 2, "c1.yaml", "colour")(_conn(lambda d: d.update(colour="red")))
case("conn-unknown-nested-key", 2, "c1.yaml", "import.stats")(
    _conn(lambda d: d["import"].update(stats=["Active"]))
)
case("conn-lists-a-string", 2, "c1.yaml", "import.lists")(
    _conn(lambda d: d["import"].update(lists="abc"))
)
case("conn-no-campaign-monitor", 2, "c1.yaml", "campaign_monitor")(
    _conn(lambda d: d.pop("campaign_monitor"))
)
case("conn-secret-inline", 2, "c1.yaml", "api_key")(
    _conn(lambda d: d["campaign_monitor"].update(api_key="0123456789abcdef"))
)
case("conn-bad-state", 2, "c1.yaml", "Sleeping")(
    _conn(lambda d: d["import"].update(states=["Sleeping"]))
)
case("conn-bad-rule", 2, "c1.yaml", "merge")(
    _conn(lambda d: d["import"]["mappings"][0].update(rule="merge"))
)
case("conn-no-identifiers", 2, "c1.yaml", "identifiers")(
    _conn(lambda d: d["import"].update(identifiers=[]))
)
case("conn-enabled-a-string", 2, "c1.yaml", "enabled")(_conn(lambda d: d.update(enabled="yes")))
case("conn-bad-cron", 2, "c1.yaml", "schedule")(_conn(lambda d: d.update(schedule="0 25 * * *")))
case("conn-no-goal", 2, "no goal", "add import")(
    _conn(lambda d: d.pop("import"), lambda ws: ["sync", "c1", "--goal", "all", *w(ws)])
)


@case("conn-unknown-name", 2, "nope", "c1")
def _unknown_connection(ws: Path, emu: Emulator) -> list[str]:
    return ["status", "nope", *w(ws)]


@case("conn-a-folder", 2, "c2")
def _folder(ws: Path, emu: Emulator) -> list[str]:
    (ws / "connections" / "c2.yaml").mkdir()
    return ["status", "c2", *w(ws)]


@case("conn-missing-credential-env", 2, "CMTOOLKIT_HOSTILE_KEY")
def _no_key(ws: Path, emu: Emulator) -> list[str]:
    os.environ.pop("CMTOOLKIT_HOSTILE_KEY")
    return ["preview", "c1", "--goal", "import", *w(ws)]


@case("conn-goal-not-configured", 2, "export")
def _goal_missing(ws: Path, emu: Emulator) -> list[str]:
    return ["sync", "c1", "--goal", "export", *w(ws)]


@case("conn-disabled-sync", 2, "disabled", "--force")
def _disabled(ws: Path, emu: Emulator) -> list[str]:
    edit_conn(ws, emu, lambda d: d.update(enabled=False))
    return ["sync", "c1", "--goal", "import", *w(ws)]


# --- profile files -----------------------------------------------------------------------------


def _csv(content: bytes | str, *extra: str, name: str = "in.csv") -> Setup:
    def setup(ws: Path, emu: Emulator) -> list[str]:
        path = ws.parent / name
        path.write_bytes(content.encode() if isinstance(content, str) else content)
        return ["profiles", "load", str(path), *extra, *w(ws)]

    return setup


case("csv-nul-in-id", 2, "line 3", "control character")(_csv("profile_id,city\np1,a\np2\0,b\n"))
case("csv-empty-header", 2, "line 1", "column 2", "name")(_csv("profile_id,,city\np1,a,b\n"))
case("csv-duplicate-header", 2, "columns 2 and 3", "city", "rename")(
    _csv("profile_id,city,city\np1,a,b\n")
)
case("csv-200k-columns", 2, "200,001 columns", "limit")(
    _csv("profile_id," + ",".join(f"c{i}" for i in range(200_000)) + "\np1\n")
)
case("csv-no-id-column", 2, "profile_id", "--id-column")(_csv("id,city\np1,a\n"))
case("csv-empty-file", 2, "in.csv")(_csv(""))
case("csv-duplicate-ids", 2, "line 3", "duplicate")(_csv("profile_id,city\np1,a\np1,b\n"))
case("csv-empty-id", 2, "line 3", "empty")(_csv("profile_id,city\np1,a\n,b\n"))
case("csv-latin1", 2, "in.csv")(_csv("profile_id,city\np1,K\xf6ln\n".encode("latin-1")))
case("csv-ragged-row", 2, "line 3")(_csv("profile_id,city\np1,a\np2,b,c,d\n"))
case("csv-unterminated-quote", 2, "in.csv")(_csv('profile_id,city\np1,"a\np2,b\n'))
case("csv-not-a-number", 2, "line 3", "score", "lots", "number")(
    _csv("profile_id,score\np1,12\np2,lots\n", "--type", "score=number")
)
case("csv-unknown-type", 2, "colour")(_csv("profile_id,city\np1,a\n", "--type", "city=colour"))
case("csv-type-for-missing-column", 2, "nosuch")(
    _csv("profile_id,city\np1,a\n", "--type", "nosuch=number")
)
case("csv-existing-type-clash", 2, "points", "number")(_csv("profile_id,points\np1,a lot\n"))
case("csv-case-clash", 2, "Email", "email")(_csv("profile_id,Email\np1,a@example.com\n"))
case("csv-reserved-column", 2, "_cm_row", "reserved", "rename")(_csv("profile_id,_cm_row\np1,1\n"))
case("csv-unknown-suffix", 2, ".xlsx", ".csv")(_csv("x", name="in.xlsx"))


@case("csv-missing-file", 2, "nowhere.csv", "no such file")
def _missing(ws: Path, emu: Emulator) -> list[str]:
    return ["profiles", "load", str(ws.parent / "nowhere.csv"), *w(ws)]


@case("csv-a-folder", 2, "folder.csv")
def _csv_folder(ws: Path, emu: Emulator) -> list[str]:
    (ws.parent / "folder.csv").mkdir()
    return ["profiles", "load", str(ws.parent / "folder.csv"), *w(ws)]


case("parquet-garbage", 2, "in.parquet", "parquet")(_csv(os.urandom(2000), name="in.parquet"))


@case("parquet-no-id", 2, "profile_id", "--id-column")
def _parquet_no_id(ws: Path, emu: Emulator) -> list[str]:
    path = ws.parent / "noid.parquet"
    pq.write_table(pa.table({"id": ["p1"], "city": ["a"]}), path)
    return ["profiles", "load", str(path), *w(ws)]


@case("parquet-null-ids", 2, "row 2", "empty")
def _parquet_null(ws: Path, emu: Emulator) -> list[str]:
    path = ws.parent / "nullid.parquet"
    pq.write_table(pa.table({"profile_id": ["p1", None], "city": ["a", "b"]}), path)
    return ["profiles", "load", str(path), *w(ws)]


@case("parquet-empty-file", 2, "empty.parquet", "parquet")
def _parquet_empty(ws: Path, emu: Emulator) -> list[str]:
    (ws.parent / "empty.parquet").write_bytes(b"")
    return ["profiles", "load", str(ws.parent / "empty.parquet"), *w(ws)]


case("interactions-bad-date", 2, "viewed_at", "line 2")(
    lambda ws, emu: _write_interactions(ws, "profile_id,interaction,viewed_at\np1,x,someday\n")
)
case("interactions-missing-column", 2, "viewed_at")(
    lambda ws, emu: _write_interactions(ws, "profile_id,interaction\np1,x\n")
)


def _write_interactions(ws: Path, text: str) -> list[str]:
    path = ws.parent / "interactions.csv"
    path.write_text(text)
    return ["interactions", "load", str(path), *w(ws)]


# --- segments ----------------------------------------------------------------------------------


def _segments(text: str | bytes) -> Setup:
    def setup(ws: Path, emu: Emulator) -> list[str]:
        target = ws / "segments.yaml"
        if isinstance(text, bytes):
            target.write_bytes(text)
        else:
            target.write_text(text)
        return ["segments", "refresh", *w(ws)]

    return setup


case("segments-latin1", 2, "segments.yaml", "line 2", "utf-8")(
    _segments("# ok\nvip: {property: city, equals: K\xf6ln}\n".encode("latin-1"))
)
case("segments-nested-3000", 2, "segments.yaml", "deep", "flatten")(
    _segments("deep: " + "{not: " * 3000 + "{property: city, exists: true}" + "}" * 3000 + "\n")
)
case("segments-nested-60", 2, "segments.yaml", "deep", "flatten")(
    _segments("deep: " + "{not: " * 60 + "{property: city, exists: true}" + "}" * 60 + "\n")
)
case("segments-file-etc-passwd", 2, "/etc/passwd", "outside", "allow_outside_workspace")(
    _segments("leak: {file: /etc/passwd}\n")
)
case("segments-file-dotdot", 2, "outside", "allow_outside_workspace")(
    _segments("leak: {file: ../ids.csv}\n")
)
case("segments-allow-not-bool", 2, "allow_outside_workspace")(
    _segments("leak: {file: /etc/passwd, allow_outside_workspace: 'yes'}\n")
)
case("segments-file-missing", 2, "gone.csv", "does not exist")(
    _segments("gone: {file: gone.csv}\n")
)
case("segments-unknown-operator", 2, "maybe", "segment 'x'")(_segments("x: {maybe: []}\n"))
case("segments-gte-not-number", 2, "segment 'x'", "gte", "number")(
    _segments("x: {property: points, gte: many}\n")
)
case("segments-unknown-property", 2, "segment 'x'", "nosuch")(
    _segments("x: {property: nosuch, exists: true}\n")
)
case("segments-a-list", 2, "segments.yaml", "mapping")(_segments("- vip\n"))
case("segments-invalid-yaml", 2, "segments.yaml", "line")(_segments("x: {all: [\n"))
case("segments-membership-latin1", 2, "ids.csv", "utf-8")(
    lambda ws, emu: (
        (ws / "ids.csv").write_bytes("p\xe9\n".encode("latin-1")),
        _segments("x: {file: ids.csv}\n")(ws, emu),
    )[1]
)


# --- workspace states --------------------------------------------------------------------------


@case("ws-a-file", 2, "hostname", "is a file")
def _ws_file(ws: Path, emu: Emulator) -> list[str]:
    path = ws.parent / "hostname"
    path.write_text("box\n")
    return ["profiles", "stats", "--workspace", str(path)]


@case("ws-truncated-store", 2, "profiles.duckdb", "backup")
def _truncated(ws: Path, emu: Emulator) -> list[str]:
    store = ws / "profiles.duckdb"
    store.write_bytes(store.read_bytes()[:20_000])
    return ["profiles", "stats", *w(ws)]


@case("ws-store-cut-late", 2, "profiles.duckdb", "backup")
def _cut_late(ws: Path, emu: Emulator) -> list[str]:
    store = ws / "profiles.duckdb"
    data = store.read_bytes()
    store.write_bytes(data[: len(data) * 3 // 4])
    return ["profiles", "stats", *w(ws)]


@case("ws-store-garbage", 2, "profiles.duckdb", "backup")
def _garbage(ws: Path, emu: Emulator) -> list[str]:
    (ws / "profiles.duckdb").write_bytes(b"not a database" * 100)
    return ["profiles", "stats", *w(ws)]


@case("ws-locks-a-file", 2, ".locks", "writable")
def _locks_file(ws: Path, emu: Emulator) -> list[str]:
    (ws / ".locks").write_text("")
    return ["sync", "c1", "--goal", "import", *w(ws)]


@case("ws-runs-a-file", 2, ".runs", "writable")
def _runs_file(ws: Path, emu: Emulator) -> list[str]:
    (ws / ".runs").write_text("")
    return ["preview", "c1", "--goal", "import", *w(ws)]


@case("ws-newer-schema", 2, "schema version", "upgrade cmtoolkit")
def _newer(ws: Path, emu: Emulator) -> list[str]:
    import duckdb

    with duckdb.connect(str(ws / "profiles.duckdb")) as con:
        con.execute("INSERT INTO schema_version VALUES (999, 'from the future', now())")
    return ["profiles", "stats", *w(ws)]


@case("ws-run-in-progress", 2, "already running", "try again")
def _running(ws: Path, emu: Emulator) -> list[str]:
    from cmtoolkit.sync.locking import RunLock

    RunLock(ws, "c1").acquire()  # released when the test's lock object is collected
    return ["sync", "c1", "--goal", "import", *w(ws)]


@case("ws-lock-timeout-not-a-number", 2, "CMTOOLKIT_LOCK_TIMEOUT", "seconds")
def _timeout_env(ws: Path, emu: Emulator) -> list[str]:
    os.environ["CMTOOLKIT_LOCK_TIMEOUT"] = "soon"
    return ["profiles", "stats", *w(ws)]


@case("emulator-state-not-json", 2, "st.json", "not an emulator state file")
def _state_text(ws: Path, emu: Emulator) -> list[str]:
    (ws.parent / "st.json").write_text("hello")
    return ["emulator", "serve", "--port", "0", "--state", str(ws.parent / "st.json")]


@case("emulator-state-other-json", 2, "st.json", "not an emulator state file")
def _state_other(ws: Path, emu: Emulator) -> list[str]:
    (ws.parent / "st.json").write_text('{"clients": []}')
    return ["emulator", "serve", "--port", "0", "--state", str(ws.parent / "st.json")]


@case("emulator-state-damaged", 2, "st.json", "damaged")
def _state_damaged(ws: Path, emu: Emulator) -> list[str]:
    (ws.parent / "st.json").write_text('{"format": "cmtoolkit-emulator-state/1", "account": 1}')
    return ["emulator", "serve", "--port", "0", "--state", str(ws.parent / "st.json")]


# --- command-line arguments --------------------------------------------------------------------


case("args-unknown-goal", 2, "invalid choice", "import")(
    lambda ws, emu: ["sync", "c1", "--goal", "everything", *w(ws)]
)
case("args-type-without-equals", 2, "PROPERTY=TYPE")(
    lambda ws, emu: ["profiles", "load", str(ws / "vip_ids.csv"), "--type", "points", *w(ws)]
)
case("args-unknown-profile", 1, "no profile", "nobody")(
    lambda ws, emu: ["profiles", "show", "nobody", *w(ws)]
)
case("args-unknown-run", 2, "r-nope")(lambda ws, emu: ["rows", "c1", "--run", "r-nope", *w(ws)])
case("args-unknown-command", 2, "invalid choice")(lambda ws, emu: ["frobnicate", *w(ws)])
case("args-bad-mode", 2, "invalid choice", "set")(
    lambda ws, emu: ["profiles", "load", str(ws / "vip_ids.csv"), "--mode", "merge", *w(ws)]
)
case("args-history-unknown-connection", 2, "nope")(lambda ws, emu: ["history", "nope", *w(ws)])
case("args-schedule-no-action", 2, "usage")(lambda ws, emu: ["schedule", *w(ws)])


@pytest.mark.parametrize("c", CASES, ids=[c.id for c in CASES])
def test_hostile_input_is_refused_clearly_and_changes_nothing(
    c: Case, ws: Path, emu: Emulator, cli: Callable[..., Answer]
) -> None:
    args = c.setup(ws, emu)
    before = checksum(ws)
    got = cli(*args)
    message = got.err.lower()
    assert got.code == c.code, (got.code, got.err[-2000:])
    assert "traceback" not in message, got.err
    assert c.code != 2 or "error:" in message or "usage:" in message, got.err
    for word in c.says:
        assert word.lower() in message, (word, got.err[-2000:])
    assert len(got.err) < 4000, "a message, not a dump"
    assert checksum(ws) == before, "the workspace changed"


def test_the_corpus_is_large() -> None:
    assert len(CASES) + len(MANGLES) >= 60


from tests.hostile.mangling import MANGLES  # noqa: E402  (the server-answer half of the corpus)
