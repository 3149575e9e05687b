"""The export goal (DESIGN §6) end to end: a real DuckDB workspace, the emulator over HTTP, and the
Campaign Monitor side read back through the client."""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import orjson
import polars as pl
import pytest

from cmtoolkit.connection.model import (
    CampaignMonitorSettings,
    Connection,
    ExportGoal,
    ExportMapping,
)
from cmtoolkit.emulator import BOUNCED
from cmtoolkit.errors import BadRequest
from cmtoolkit.sync import preview, sync
from cmtoolkit.sync.exports import FieldType, GoalSpec, Plan, Value, plan_file, plan_statements
from cmtoolkit.workspace import Workspace

FIELDS = [
    ("website", "Text", []),
    ("tags", "Text", []),
    ("points", "Number", []),
    ("birthday", "Date", []),
    ("tier", "MultiSelectOne", ["Bronze", "Gold"]),
    ("interests", "MultiSelectMany", ["golf", "tennis", "chess"]),
    ("profile id", "Text", []),
    ("segments", "Text", []),
    ("viewed", "MultiSelectMany", ["home", "pricing", "checkout"]),
]
MAPPINGS = (
    ExportMapping("property", "Name", "full_name"),
    ExportMapping("property", "website", "website"),
    ExportMapping("property", "tags", "interests"),
    ExportMapping("property", "interests", "interests"),
    ExportMapping("property", "points", "points"),
    ExportMapping("property", "birthday", "birthday"),
    ExportMapping("property", "tier", "tier"),
    ExportMapping("profile_id", "profile id"),
    ExportMapping("segments", "segments"),
    ExportMapping("interactions", "viewed"),
)
TYPES = {"email": "text", "points": "text", "birthday": "text"}


def profiles(n: int, **overrides: dict[str, list[str]]) -> pl.DataFrame:
    """``n`` valid profiles ``p0000``…; ``overrides[pid]`` replaces some of one's properties."""
    rows = []
    for i in range(n):
        pid = f"p{i:04d}"
        row = {
            "profile_id": pid,
            "email": [f"person{i}@example.com"],
            "full_name": [f"Person {i}"],
            "website": ["https://example.com"],
            "interests": ["golf", "tennis"] if i % 2 else ["chess"],
            "points": [str(i)],
            "birthday": ["1990-05-17"],
            "tier": ["Gold"],
            "consented_objectives": ["email_marketing"],
            "refused_objectives": [],
        }
        row.update(overrides.get(pid, {}))
        rows.append(row)
    return pl.DataFrame(
        rows, schema={k: pl.List(pl.Utf8) if k != "profile_id" else pl.Utf8 for k in rows[0]}
    )


class Env:
    """An emulator account with one list, a workspace and a connection exporting ``news``."""

    def __init__(self, emulator: Any, cm: Any, tmp: Path, frame: pl.DataFrame) -> None:
        emulator.reseed(seed_size=0)
        self.emulator, self.cm = emulator, cm
        self.client_id = emulator.client_id
        self.list_id = cm.create_list(self.client_id, "Newsletter")
        for name, kind, options in FIELDS:
            cm.create_custom_field(self.list_id, name, kind, options)
        self.ws = Workspace.create(tmp / "ws")
        self.ws.store.load(frame, types=TYPES)
        ids = frame.get_column("profile_id").to_list()
        self.set_members("news", ids)
        self.set_members("vip", ids[:2])
        self.ws.store.load_interactions(
            pl.DataFrame(
                {
                    "profile_id": [ids[0], ids[0], ids[0]],
                    "interaction": ["pricing", "home", "pricing"],
                    "viewed_at": [
                        dt.datetime(2025, 1, 2),
                        dt.datetime(2025, 1, 3),
                        dt.datetime(2025, 1, 4),
                    ],
                }
            )
        )

    def set_members(self, segment: str, ids: list[str]) -> None:
        (self.ws.path / f"{segment}.csv").write_text("\n".join(ids) + "\n")
        path = self.ws.path / "segments.yaml"
        text = path.read_text() if path.exists() else ""
        if f"{segment}:" not in text:
            path.write_text(text + f"{segment}:\n  file: {segment}.csv\n")
        self.ws.segments.refresh(segment)

    def connection(self, **goal: Any) -> Connection:
        objectives = goal.pop("objectives", ())
        settings: dict[str, Any] = {
            "lists": (self.list_id,),
            "segment": "news",
            "match_property": "email",
            "mappings": MAPPINGS,
        }
        settings.update(goal)
        return Connection(
            name="news-export",
            campaign_monitor=CampaignMonitorSettings("default", self.client_id),
            objectives=tuple(objectives),
            export=ExportGoal(**settings),
        )

    def run(self, conn: Connection, *, full: bool = False, **kw: Any) -> Any:
        return sync(self.ws.context(conn, self.cm, full=full), "export", **kw)

    def run_rows(self, run_id: str) -> dict[str, tuple[str, str | None]]:
        with self.ws.store.connect() as con:
            found = con.execute(
                "SELECT profile_id, outcome, reason FROM run_rows WHERE run_id = ?", [run_id]
            ).fetchall()
        return {pid: (outcome, reason) for pid, outcome, reason in found}

    def state(self) -> dict[str, str]:
        with self.ws.store.connect() as con:
            return dict(
                con.execute(
                    "SELECT profile_id, hash FROM export_state WHERE goal = 'export'"
                ).fetchall()
            )

    def subscriber(self, email: str) -> Any:
        return self.cm.subscriber(self.list_id, email)

    def imports(self) -> int:
        return sum(1 for m, p, _ in self.emulator.requests if m == "POST" and "import" in p)

    def account_state(self) -> dict[str, Any]:
        """Every subscriber of the list as Campaign Monitor holds it."""
        out = {}
        for state in ("Active", "Unsubscribed", "Bounced", "Deleted", "Unconfirmed"):
            for s in self.cm.subscribers(self.list_id, state):
                out[s.email] = (s.name, s.state, dict(s.custom_fields))
        return out


@pytest.fixture
def export_env(emulator: Any, cm: Any, tmp_path: Path) -> Env:
    return Env(emulator, cm, tmp_path, profiles(4))


def test_every_value_type_and_field_format(export_env: Env) -> None:
    env = export_env
    result = env.run(env.connection())
    assert result.counts["EXPORTED"] == 4 and result.counts["INVALID"] == 0
    s = env.subscriber("person0@example.com")
    assert s.name == "Person 0" and s.state == "Active"
    f = s.custom_fields
    assert f["website"] == ("https://example.com",)
    assert f["tags"] == ("chess",)
    assert f["points"] == ("0",)
    assert f["birthday"] == ("1990-05-17",)  # sent as 1990/05/17, read back as the API does
    assert f["tier"] == ("Gold",)
    assert f["profile id"] == ("p0000",)
    assert f["segments"] == ("news|vip",)  # Text: pipe-joined
    assert set(f["viewed"]) == {"home", "pricing"}  # MultiSelectMany: repeated keys
    s1 = env.subscriber("person1@example.com")
    assert s1.custom_fields["tags"] == ("golf|tennis",)  # Text field: pipe-joined
    assert set(s1.custom_fields["interests"]) == {"golf", "tennis"}  # repeated keys


def test_preview_shows_exact_payloads_and_writes_nothing(export_env: Env) -> None:
    env = export_env
    before = env.emulator.request_count
    posts = env.imports()
    out = preview(env.ws.context(env.connection(), env.cm), "export")
    assert out.counts["EXPORTED"] == 4
    # Reads only: custom fields, the suppression list, the unsubscribed/bounced/deleted pages.
    assert env.imports() == posts and env.emulator.request_count - before == 5
    assert env.state() == {}
    payload = json.loads(out.samples.filter(pl.col("profile_id") == "p0001").item(0, "payload"))
    assert payload["EmailAddress"] == "person1@example.com"
    assert payload["ConsentToTrack"] == "Unchanged"
    cf = payload["CustomFields"]
    assert {"Key": "tags", "Value": "golf|tennis"} in cf
    assert {"Key": "birthday", "Value": "1990/05/17"} in cf
    assert [c["Value"] for c in cf if c["Key"] == "interests"] == ["", "golf", "tennis"]
    assert {"Key": "viewed", "Value": "", "Clear": True} in cf  # no interactions: cleared
    # The plan's payload is what the real run sends: compare with the emulator's record.
    env.run(env.connection())
    assert env.subscriber("person1@example.com").custom_fields["tags"] == ("golf|tennis",)


BAD = {
    "p0000": ({"email": []}, "no value for match property email"),
    "p0001": ({"email": ["not-an-email"]}, "not a valid email address: not-an-email"),
    "p0003": ({"email": [" PERSON2@Example.com "]}, "profile p0002 in the segment has the same"),
    "p0004": ({"website": ["x" * 251]}, "field website: longer than 250 characters"),
    "p0005": ({"points": ["many"]}, "field points: not a number: many"),
    "p0006": ({"points": ["1", "2"]}, "field points: 2 values for a single-value Number"),
    "p0007": ({"birthday": ["17/05/1990"]}, "field birthday: not a date"),
    "p0008": ({"birthday": ["1850-01-01"]}, "outside 1900/01/01-2076/06/06"),
    "p0009": ({"tier": ["Silver"]}, "field tier: not an option: Silver"),
    "p0010": ({"tier": ["Gold", "Bronze"]}, "2 values for a single-value MultiSelectOne"),
    "p0011": ({"interests": ["golf", "darts"]}, "field interests: not an option: darts"),
    "p0012": ({"full_name": ["n" * 251]}, "field Name: longer than 250 characters"),
}


def test_each_invalid_reason_is_reported_and_not_sent(
    emulator: Any, cm: Any, tmp_path: Path
) -> None:
    frame = profiles(14, **{pid: props for pid, (props, _) in BAD.items()})
    env = Env(emulator, cm, tmp_path, frame)
    # ISO datetimes from the store are accepted and reformatted.
    env.ws.store.set_values(
        pl.DataFrame({"profile_id": ["p0013"], "birthday": [["2001-02-03T10:00:00"]]})
    )
    result = env.run(env.connection(invalid_values="skip_row"))
    rows = env.run_rows(result.run_id)
    for pid, (_, reason) in BAD.items():
        assert rows[pid][0] == "INVALID", pid
        assert reason in rows[pid][1], (pid, rows[pid][1])
    assert rows["p0002"][0] == "EXPORTED"  # the first holder of the duplicated address
    assert result.counts == {**dict.fromkeys(result.counts, 0), "INVALID": 12, "EXPORTED": 2}
    assert env.subscriber("person13@example.com").custom_fields["birthday"] == ("2001-02-03",)
    with pytest.raises(BadRequest):
        env.subscriber("person5@example.com")
    assert set(env.account_state()) == {"person2@example.com", "person13@example.com"}


def test_a_profile_stored_twice_is_exported_once_from_its_first_row(export_env: Env) -> None:
    env = export_env
    with env.ws.store.connect(write=True) as con:  # the store has no key to refuse this
        con.execute(
            "INSERT INTO profiles BY NAME SELECT * REPLACE (['Someone Else'] AS full_name) "
            "FROM profiles WHERE profile_id = 'p0001'"
        )
    result = env.run(env.connection())
    assert result.counts == {**dict.fromkeys(result.counts, 0), "EXPORTED": 4}
    assert env.subscriber("person1@example.com").name == "Person 1"
    assert env.imports() == 1


def test_skip_field_sends_the_row_without_the_bad_value(
    emulator: Any, cm: Any, tmp_path: Path
) -> None:
    """invalid_values: skip_field (the default): the bad value is dropped from its field with a
    warning, the rest of the row goes; a bad match email is still INVALID."""
    frame = profiles(14, **{pid: props for pid, (props, _) in BAD.items()})
    env = Env(emulator, cm, tmp_path, frame)
    result = env.run(env.connection())
    rows = env.run_rows(result.run_id)
    for pid in ("p0000", "p0001", "p0003"):
        assert rows[pid][0] == "INVALID", pid
    for pid, (_, reason) in list(BAD.items())[3:]:
        assert rows[pid][0] == "EXPORTED" and reason in (rows[pid][1] or ""), (pid, rows[pid])
    assert result.counts["INVALID"] == 3 and result.counts["EXPORTED"] == 11
    tier = env.subscriber("person9@example.com").custom_fields
    assert "tier" not in tier and tier["website"] == ("https://example.com",)
    # A MultiSelectMany field keeps the valid options.
    assert env.subscriber("person11@example.com").custom_fields["interests"] == ("golf",)
    assert env.subscriber("person12@example.com").name == ""  # the 251-character name dropped
    again = env.run(env.connection())
    assert again.counts["EXPORTED"] == 0 and again.counts["INVALID"] == 3


def test_consent_filters_candidates(emulator: Any, cm: Any, tmp_path: Path) -> None:
    frame = profiles(
        3,
        p0001={"consented_objectives": []},
        p0002={"refused_objectives": ["email_marketing"]},
    )
    env = Env(emulator, cm, tmp_path, frame)
    result = env.run(env.connection(objectives=("email_marketing",)))
    rows = env.run_rows(result.run_id)
    assert rows["p0000"][0] == "EXPORTED"
    assert rows["p0001"] == (
        "CONSENT_MISMATCH",
        "profile has not consented to any of: email_marketing",
    )
    assert rows["p0002"][0] == "CONSENT_MISMATCH"
    assert set(env.account_state()) == {"person0@example.com"}
    # Without objectives everybody is processed.
    assert env.run(env.connection()).counts["EXPORTED"] == 2


def _make_inactive(env: Env) -> None:
    """person0 unsubscribed, person1 bounced, person2 on the suppression list."""
    env.cm.import_subscribers(
        env.list_id,
        [{"EmailAddress": f"person{i}@example.com", "Name": "Old"} for i in range(3)],
    )
    env.cm.unsubscribe(env.list_id, "person0@example.com")
    emu = env.emulator
    with emu.lock:
        client = emu.account.clients[0]
        lst = next(x for x in client.lists if x.list_id == env.list_id)
        lst.set_state(lst.row_of("person1@example.com"), BOUNCED, int(emu.now()))
        client.suppress("person2@example.com", "Unsubscribed", int(emu.now()))
        lst.set_state(lst.row_of("person2@example.com"), 2, int(emu.now()))


def test_list_states_read_at_once_are_those_read_one_state_after_another(
    emulator_factory: Any, cm_factory: Any
) -> None:
    """Every (list, state) is read at once (a far-away service answers each first page after a
    round trip): the refusals and Active members are those of reading each state in turn, an
    address refused twice keeping its first reason (the suppression list's)."""
    from types import SimpleNamespace

    from cmtoolkit.sync.exports.refusals import STATE_REFUSAL, read_states

    emu = emulator_factory(seed_size=3000)  # Active spans several pages of 1000
    one_by_one = cm_factory(emu, max_in_flight=1)
    client_id = emu.client_id
    lists = [x.list_id for x in one_by_one.lists(client_id)]
    spec = SimpleNamespace(resubscribe=False, lists=lists)

    def emails(list_id: str, state: str) -> list[str]:
        frames = one_by_one.subscriber_frames(list_id, state)
        return [e for f in frames for e in f.get_column("email").to_list()]

    suppressed = [s.email.lower() for s in one_by_one.suppression_list(client_id)]
    expected = [
        (list_id, email.lower(), code)
        for list_id in lists
        for email, code in [(e, 204) for e in suppressed]
        + [(e, STATE_REFUSAL[s][0]) for s in STATE_REFUSAL for e in emails(list_id, s)]
    ]
    first: dict[tuple[str, str], int] = {}
    for list_id, email, code in expected:
        first.setdefault((list_id, email), code)
    active = [(list_id, e.lower()) for list_id in lists for e in emails(list_id, "Active")]
    assert len(active) > 2000 and len(first) < len(expected)  # pages, and reasons that repeat

    for k in (4, 1):
        states = read_states(cm_factory(emu, max_in_flight=k), client_id, spec, active=True)
        refused = states.refused.select("list_id", "email", "code").rows()
        assert refused == [(*key, code) for key, code in first.items()]
        assert states.active is not None and states.active.rows() == active


def test_inactive_subscribers_are_suppressed_not_sent_until_their_state_changes(
    export_env: Env,
) -> None:
    env = export_env
    _make_inactive(env)
    conn = env.connection()
    before = preview(env.ws.context(conn, env.cm), "export")
    posts = env.imports()
    result = env.run(conn)
    assert before.counts == result.counts  # the preview knows what Campaign Monitor refuses
    rows = env.run_rows(result.run_id)
    assert rows["p0000"][0] == "SUPPRESSED" and rows["p0000"][1].startswith("code 206")
    assert rows["p0001"][0] == "SUPPRESSED" and rows["p0001"][1].startswith("code 207")
    assert rows["p0002"][0] == "SUPPRESSED" and rows["p0002"][1].startswith("code 204")
    assert rows["p0003"][0] == "EXPORTED"
    assert env.imports() == posts + 1  # one batch, person3 alone
    assert env.subscriber("person0@example.com").state == "Unsubscribed"
    assert env.subscriber("person1@example.com").state == "Bounced"
    assert env.subscriber("person2@example.com").state == "Unsubscribed"
    assert set(env.state()) == {"p0003"}
    with env.ws.store.connect() as con:
        remembered = con.execute(
            "SELECT email, code FROM export_suppressions ORDER BY email"
        ).fetchall()
    assert remembered == [
        ("person0@example.com", 206),
        ("person1@example.com", 207),
        ("person2@example.com", 204),
    ]
    # Nothing changed: nothing is sent, the refusals are reported again.
    again = env.run(conn)
    assert again.counts["SUPPRESSED"] == 3 and env.imports() == posts + 1
    # person1's state changes in Campaign Monitor (re-added by the list owner): sent again.
    env.cm.add_subscriber(env.list_id, "person1@example.com", name="Back", resubscribe=True)
    back = env.run(conn)
    assert back.counts["EXPORTED"] == 1 and back.counts["SUPPRESSED"] == 2
    assert env.run_rows(back.run_id)["p0001"][0] == "EXPORTED"
    # resubscribe: true sends everyone (and changes every row's hash).
    resub = env.run(env.connection(resubscribe=True))
    assert resub.counts["EXPORTED"] == 4
    for i in range(3):
        assert env.subscriber(f"person{i}@example.com").state == "Active"


def test_second_run_sends_nothing_and_full_resends(export_env: Env) -> None:
    env = export_env
    env.run(env.connection())
    posts = env.imports()
    second = env.run(env.connection())
    assert second.counts["UNCHANGED"] == 4 and second.counts["EXPORTED"] == 0
    assert env.imports() == posts
    env.ws.store.set_values(pl.DataFrame({"profile_id": ["p0002"], "website": [["https://x.org"]]}))
    third = env.run(env.connection())
    assert (third.counts["EXPORTED"], third.counts["UNCHANGED"]) == (1, 3)
    assert env.imports() == posts + 1
    assert env.subscriber("person2@example.com").custom_fields["website"] == ("https://x.org",)
    full = env.run(env.connection(), full=True)
    assert full.counts["EXPORTED"] == 4 and env.imports() == posts + 2


def holds(rows: Any, email: str) -> bool:
    """Whether an import batch (rows as mappings or as their JSON) holds ``email``."""
    return f'"EmailAddress":"{email}"'.encode() in orjson.dumps(list(rows))


def test_whole_batch_400_is_split_to_isolate_bad_rows(
    export_env: Env, monkeypatch: pytest.MonkeyPatch
) -> None:
    env = export_env
    real = env.cm.import_batch
    calls: list[int] = []

    def picky(list_id: str, rows: list[dict[str, Any]], **kw: Any) -> Any:
        calls.append(len(rows))
        if holds(rows, "person2@example.com"):
            raise BadRequest("Invalid JSON in the request", status=400, code=400)
        return real(list_id, rows, **kw)

    monkeypatch.setattr(env.cm, "import_batch", picky)
    result = env.run(env.connection())
    rows = env.run_rows(result.run_id)
    assert rows["p0002"] == ("REJECTED", "code 400: Invalid JSON in the request")
    assert result.counts["EXPORTED"] == 3
    assert calls == [4, 2, 2, 1, 1]  # the good half goes through, the bad half is split
    assert set(env.state()) == {"p0000", "p0001", "p0003"}


def _big(emulator: Any, cm: Any, tmp: Path) -> Env:
    return Env(emulator, cm, tmp, profiles(2500))


def test_the_plan_is_a_file_in_the_runs_scratch_streamed_a_batch_of_one_list_at_a_time(
    emulator: Any, cm: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The plan is not held in memory (issue 19): the send reads it from ``plan.duckdb`` in the
    workspace's ``.runs/`` a batch of one list at a time, list after list, and the file goes
    with the run; the ledger lists the rows in list, then profile order."""
    env = _big(emulator, cm, tmp_path)
    second = cm.create_list(env.client_id, "Second")
    for name, kind, options in FIELDS:
        cm.create_custom_field(second, name, kind, options)
    conn = env.connection(lists=(env.list_id, second))
    seen: list[tuple[str, int, list[str]]] = []
    files: set[Path] = set()
    real = Plan.sends

    def watched(plan: Plan) -> Iterator[tuple[str, pl.DataFrame]]:
        for list_id, batch in real(plan):
            assert plan.path.is_file()  # read from the file while sending
            files.add(plan.path)
            seen.append((list_id, batch.height, batch.get_column("profile_id").to_list()))
            yield list_id, batch

    monkeypatch.setattr(Plan, "sends", watched)
    result = env.run(conn)
    assert result.counts["EXPORTED"] == 5000
    assert [(list_id, n) for list_id, n, _ in seen] == [
        (list_id, n) for list_id in (env.list_id, second) for n in (1000, 1000, 500)
    ]
    for list_id in (env.list_id, second):
        ids = [pid for lid, _, batch in seen if lid == list_id for pid in batch]
        assert len(ids) == len(set(ids)) == 2500
    (path,) = files
    assert path.parent.parent == env.ws.path / ".runs" and not path.parent.exists()
    with env.ws.store.connect() as con:
        ledger = con.execute(
            "SELECT list_id, profile_id FROM run_rows WHERE run_id = ? ORDER BY seq",
            [result.run_id],
        ).fetchall()
    order = [env.list_id, second]
    assert ledger == sorted(ledger, key=lambda row: (order.index(row[0]), row[1]))
    assert set(ledger) == {(list_id, pid) for list_id, _, batch in seen for pid in batch}
    assert sum(1 for _ in env.cm.subscribers(second, "Active")) == 2500


def test_the_plan_file_keeps_of_the_unchanged_rows_only_what_a_preview_can_show(
    emulator: Any, cm: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """UNCHANGED rows are counted, never sent nor in the ledger: the plan file keeps only the
    first HEAD_ROWS of them in plan order, which is all a preview's head and samples show (a
    10M re-run wrote 10M rows for nothing). The preview and the run say the same as before."""
    env = _big(emulator, cm, tmp_path)
    conn = env.connection()
    env.run(conn)
    changed = {f"p{i:04d}": {"points": ["-1"]} for i in range(0, 2500, 3)}  # interleaved
    env.ws.store.load(profiles(2500, **changed), types=TYPES)
    every = preview(env.ws.context(conn, env.cm), "export")
    assert every.rows.height == 1000

    monkeypatch.setattr(plan_file, "HEAD_ROWS", 10)
    kept: list[tuple[int, int]] = []
    real = Plan.head

    def head(plan: Plan, n: int | None = None) -> pl.DataFrame:
        with plan.connect() as con:
            counted = "SELECT count(*), count(*) FILTER (outcome = 'UNCHANGED') FROM plan"
            kept.append(con.execute(counted).fetchone())  # type: ignore[arg-type]
        return real(plan, n)

    monkeypatch.setattr(Plan, "head", head)
    few = preview(env.ws.context(conn, env.cm), "export")
    assert kept == [(len(changed) + 10, 10)]
    assert few.counts == every.counts == {**few.counts, "EXPORTED": 834, "UNCHANGED": 1666}
    assert few.rows.equals(every.rows.head(10))
    assert few.samples.equals(every.samples)
    result = env.run(conn)
    assert result.counts == few.counts
    assert set(env.run_rows(result.run_id)) == set(changed)


def test_killed_export_resumes_without_resending(
    emulator_factory: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from tests.conftest import make_client

    clean_emu, killed_emu = emulator_factory(), emulator_factory()
    clean = _big(clean_emu, make_client(clean_emu), tmp_path / "clean")
    clean.run(clean.connection())

    env = _big(killed_emu, make_client(killed_emu), tmp_path / "killed")
    killed_emu.set_latency(0.05)  # the three batches are in flight together
    real = env.cm.import_batch

    def dies_on_the_last(list_id: str, rows: Any, **kw: Any) -> Any:
        if len(rows) == 500:  # 2,500 rows: batches of 1000, 1000 and 500
            raise KeyboardInterrupt
        return real(list_id, rows, **kw)

    monkeypatch.setattr(env.cm, "import_batch", dies_on_the_last)
    with pytest.raises(KeyboardInterrupt):
        env.run(env.connection())
    assert env.cm.flow.peak > 1
    assert len(env.state()) == 2000  # both acknowledged batches were recorded
    monkeypatch.setattr(env.cm, "import_batch", real)
    posts = env.imports()
    resumed = env.run(env.connection())
    assert (resumed.counts["EXPORTED"], resumed.counts["UNCHANGED"]) == (500, 2000)
    assert env.imports() == posts + 1
    assert env.account_state() == clean.account_state()
    assert env.state() == clean.state()


def test_injected_faults_give_the_same_final_state(emulator_factory: Any, tmp_path: Path) -> None:
    from tests.conftest import make_client

    clean_emu, faulty_emu = emulator_factory(), emulator_factory()
    clean = _big(clean_emu, make_client(clean_emu), tmp_path / "clean")
    clean.run(clean.connection())
    env = _big(faulty_emu, make_client(faulty_emu), tmp_path / "faulty")
    # 10 % of API requests fail (500, 503, dropped connection), plus a 429 on the first import.
    faulty_emu.set_faults(
        "429:first=1,reset=1,path=/subscribers/*/import.json;500:p=0.04;503:p=0.03;drop:p=0.03"
    )
    sends: list[tuple[int, int | None]] = []

    def progress(stage: str, done: int, total: int | None) -> None:
        if stage == "send":
            sends.append((done, total))

    result = sync(env.ws.context(env.connection(), env.cm, progress=progress), "export")
    faulty_emu.set_faults(None)
    assert result.counts["EXPORTED"] == 2500
    assert env.cm.sleeps  # faults happened and were retried
    assert env.cm.flow.peak > 1  # with several batches in flight
    # Progress counts the acknowledged rows as each batch's answer arrives, in any order.
    assert sends == [(1000, 2500), (2000, 2500), (2500, 2500)] or sends[1] == (1500, 2500)
    assert env.account_state() == clean.account_state()


@pytest.mark.parametrize(
    ("mode", "cm_state"),
    [("keep", "Active"), ("unsubscribe", "Unsubscribed"), ("delete", "Deleted")],
)
def test_on_leave(export_env: Env, mode: str, cm_state: str) -> None:
    env = export_env
    conn = env.connection(on_leave=mode, objectives=("email_marketing",))
    env.run(conn)
    env.set_members("news", ["p0000", "p0001", "p0003"])  # p0002 leaves the segment
    env.ws.store.set_values(  # p0003 withdraws consent
        pl.DataFrame({"profile_id": ["p0003"], "refused_objectives": [["email_marketing"]]})
    )
    result = env.run(conn)
    rows = env.run_rows(result.run_id)
    assert rows["p0002"][0] == "REMOVED" and rows["p0002"][1].startswith("left the segment")
    assert rows["p0003"][0] == "REMOVED" and "no longer consents" in rows["p0003"][1]
    assert result.counts["REMOVED"] == 2 and result.counts["UNCHANGED"] == 2
    assert env.subscriber("person2@example.com").state == cm_state
    assert env.subscriber("person3@example.com").state == cm_state
    assert set(env.state()) == {"p0000", "p0001"}
    assert env.run(conn).counts["REMOVED"] == 0  # removed once


@pytest.mark.parametrize("mode", ["unsubscribe", "delete"])
def test_a_leaver_whose_address_a_new_member_holds_leaves_it_subscribed(
    emulator: Any, cm: Any, tmp_path: Path, mode: str
) -> None:
    """p0002 leaves as p0004, with the same address, joins: the address is p0004's now, so it
    is sent with p0004's values and neither unsubscribed nor deleted after."""
    env = Env(emulator, cm, tmp_path, profiles(5, p0004={"email": ["Person2@example.com"]}))
    env.set_members("news", ["p0000", "p0001", "p0002", "p0003"])
    conn = env.connection(on_leave=mode)
    env.run(conn)
    env.set_members("news", ["p0000", "p0001", "p0003", "p0004"])
    seen = len(emulator.requests)
    result = env.run(conn)
    rows = env.run_rows(result.run_id)
    assert rows["p0004"][0] == "EXPORTED"
    assert rows["p0002"][0] == "REMOVED" and "profile p0004" in (rows["p0002"][1] or "")
    sub = env.subscriber("person2@example.com")
    assert sub.state == "Active" and sub.name == "Person 4"
    calls = [(m, p) for m, p, _ in list(emulator.requests)[seen:] if m in ("POST", "DELETE")]
    assert not [c for c in calls if "unsubscribe" in c[1] or c[0] == "DELETE"], calls
    assert set(env.state()) == {"p0000", "p0001", "p0003", "p0004"}
    assert env.run(conn).counts["REMOVED"] == 0


def test_unknown_field_is_a_configuration_error_before_sending(export_env: Env) -> None:
    env = export_env
    conn = env.connection(mappings=(ExportMapping("property", "nope", "website"),))
    result = env.run(conn, raise_on_failure=False)
    assert result.state == "FAILED" and "no custom field 'nope'" in (result.error or "")
    assert env.imports() == 0


def test_plan_statements_print_with_every_value_a_parameter() -> None:
    spec = GoalSpec(
        connection="news export",
        goal="export",
        lists=("L1", "L2"),
        segments=("news",),
        match_property="email",
        objectives=("email_marketing",),
        values=(Value("property", "tier", "tier"), Value("segments", "segments")),
    )
    tier = {"tier": FieldType("tier", "MultiSelectOne", ("Bronze", "Gold"))}
    types = {"L1": {**tier, "segments": FieldType("segments", "Text")}}
    types["L2"] = types["L1"]
    statements = plan_statements(spec, {"email": "text", "tier": "text"}, types)
    # refusals and active subscribers, members, candidates, the plan table, one INSERT per
    # list, the leavers
    assert [s.sql.split()[0] for s in statements] == ["CREATE"] * 5 + ["INSERT"] * 3
    sql = "".join(s.sql for s in statements)
    printed = "\n".join(map(str, statements))
    for value in ("news export", "L2", "Gold", "email_marketing"):
        assert value not in sql
        assert repr(value) in printed


SIGKILLER = """
import os, signal, sys
from cmtoolkit.campaign_monitor import ApiKeyAuth, CampaignMonitor
from cmtoolkit.connection.file import load_connection
from cmtoolkit.secret import Secret
from cmtoolkit.sync import GoalContext, sync
from cmtoolkit.sync.exports import StateWriter
from cmtoolkit.workspace import Workspace

ws_path, conn_path, base_url, key, in_flight, peak_path = sys.argv[1:7]
acks = []
real_ack = StateWriter.ack

def ack_then_die(self, rows):
    real_ack(self, rows)  # journaled: Campaign Monitor accepted this batch
    acks.append(rows.height)
    if len(acks) == 2:
        with open(peak_path, "w") as peak:
            peak.write(str(client.flow.peak))
        os.kill(os.getpid(), signal.SIGKILL)  # before the store write of either batch

StateWriter.ack = ack_then_die
client = CampaignMonitor(
    ApiKeyAuth(Secret(key)), base_url=base_url, max_in_flight=int(in_flight)
)
sync(Workspace(ws_path).context(load_connection(conn_path), client), "export")
"""


@pytest.mark.parametrize("in_flight", [1, 4])
def test_sigkill_after_acknowledged_batches_resumes_without_resending(
    emulator_factory: Any, tmp_path: Path, in_flight: int
) -> None:
    """Killed (SIGKILL, no cleanup) once two batches are journalled: the next run sends exactly
    the rows not journalled. One at a time, those are the last batch; four in flight, the
    third batch was in flight (and maybe accepted) when the process died, and goes again."""
    import os
    import signal
    import subprocess
    import sys

    from cmtoolkit.connection.file import save_connection
    from tests.conftest import make_client

    clean_emu, killed_emu = emulator_factory(), emulator_factory()
    clean = _big(clean_emu, make_client(clean_emu), tmp_path / "clean")
    clean.run(clean.connection())

    env = _big(killed_emu, make_client(killed_emu), tmp_path / "killed")
    conn_path = save_connection(env.connection(), tmp_path / "news-export.yaml")
    script = tmp_path / "killer.py"
    script.write_text(SIGKILLER)
    peak = tmp_path / "peak"
    killed_emu.set_latency(0.05)  # the batches overlap when several may be in flight
    proc = subprocess.run(
        [sys.executable, str(script), str(env.ws.path), str(conn_path),
         killed_emu.base_url, killed_emu.api_key, str(in_flight), str(peak)],
        capture_output=True, text=True, timeout=120, env={**os.environ},
    )  # fmt: skip
    killed_emu.set_latency(0)
    assert proc.returncode == -signal.SIGKILL, proc.stderr
    assert (int(peak.read_text()) > 1) == (in_flight > 1)  # batches in flight together
    posts = env.imports()
    journal = env.ws.path / ".journal" / "news-export.export.jsonl"
    lines = journal.read_bytes().splitlines()
    journalled = sum(len(json.loads(line)["profile_id"]) for line in lines)
    assert len(lines) == 2 and journalled in (1500, 2000)
    if in_flight == 1:
        assert posts == 2 and journalled == 2000  # two batches went out and were acknowledged
    else:
        assert posts in (2, 3)  # the third was in flight: accepted or not, it was not journalled

    dry = preview(env.ws.context(env.connection(), env.cm), "export")
    assert (dry.counts["EXPORTED"], dry.counts["UNCHANGED"]) == (2500 - journalled, journalled)
    assert journal.exists()  # a preview writes nothing, not even the journal's fold
    resumed = env.run(env.connection())
    assert not journal.exists()
    assert (resumed.counts["EXPORTED"], resumed.counts["UNCHANGED"]) == (
        2500 - journalled,
        journalled,
    )
    assert env.imports() == posts + 1  # only the batch not journalled was sent again
    assert env.account_state() == clean.account_state()
    assert env.state() == clean.state()


def test_status_catches_what_would_fail_every_row(export_env: Env) -> None:
    """A matching property that holds no emails and segment names into a Number field are
    errors; an export matching property other than the import's email identifier a warning."""
    from cmtoolkit.connection.model import Identifier, ImportGoal
    from cmtoolkit.sync import ConnectionRunner

    env = export_env

    def status(conn: Connection) -> Any:
        runner = ConnectionRunner(env.ws.store, env.ws.segments, env.ws.path, conn, client=env.cm)
        return runner.status()

    good = status(env.connection())
    assert good.export_ready and not good.errors
    wrong = status(env.connection(match_property="full_name"))
    (problem,) = [p for p in wrong.errors if p.key == "export.match_property"]
    assert "'full_name' does not hold email addresses" in problem.message
    assert "0 of 4 sampled" in problem.message and not wrong.export_ready
    numbers = status(env.connection(mappings=(ExportMapping("segments", "points"),)))
    assert not numbers.export_ready
    assert any("segments are names" in p.message for p in numbers.errors)
    both = replace(
        env.connection(match_property="website"),
        import_=ImportGoal(
            lists=(env.list_id,), identifiers=(Identifier("EmailAddress", "email"),)
        ),
    )
    warned = [p.message for p in status(both).warnings if p.key == "export.match_property"]
    assert warned and "'website'" in warned[0] and "'email'" in warned[0]
    missing = status(env.connection(mappings=(ExportMapping("profile_id", "new field"),)))
    assert any("does not exist on list" in p.message for p in missing.errors)
    created = status(
        env.connection(mappings=(ExportMapping("profile_id", "new field"),), create_missing=True)
    )
    assert created.export_ready and any("will create" in p.message for p in created.warnings)


def test_create_missing_and_restart_autoresponders(export_env: Env) -> None:
    """create_missing makes the missing Text and MultiSelectMany fields and the missing options
    (the preview plans as if they existed and changes nothing); restart_autoresponders reaches
    Campaign Monitor with the import."""
    env = export_env
    mappings = (
        ExportMapping("profile_id", "member id"),
        ExportMapping("segments", "member of"),
        ExportMapping("property", "interests", "interests"),
    )
    env.ws.store.set_values(pl.DataFrame({"profile_id": ["p0001"], "interests": [["darts"]]}))
    conn = env.connection(mappings=mappings, create_missing=True, restart_autoresponders=True)
    fields_before = {f.field_name: f.options for f in env.cm.custom_fields(env.list_id)}
    planned = preview(env.ws.context(conn, env.cm), "export")
    assert {f.field_name: f.options for f in env.cm.custom_fields(env.list_id)} == fields_before
    result = env.run(conn)
    assert planned.counts == result.counts and result.counts["EXPORTED"] == 4
    fields = {f.field_name: f for f in env.cm.custom_fields(env.list_id)}
    assert fields["member id"].data_type == "Text"
    assert fields["member of"].data_type == "MultiSelectMany"
    assert set(fields["member of"].options) == {"news", "vip"}
    assert fields["interests"].options[-1] == "darts"  # added, the others kept
    sub = env.subscriber("person1@example.com").custom_fields
    assert sub["member id"] == ("p0001",) and set(sub["member of"]) == {"news", "vip"}
    assert sub["interests"] == ("darts",)
    with env.emulator.lock:
        assert env.emulator.account.clients[0].autoresponder_restarts[env.list_id] == 4
    assert env.run(conn).counts["UNCHANGED"] == 4


def test_a_field_or_option_deleted_in_campaign_monitor_is_written_again(export_env: Env) -> None:
    """Deleting a field or a MultiSelect option in Campaign Monitor deletes its values. With
    create_missing the next run creates it again and sends again exactly the rows that carry
    its values, though their hash is unchanged; its preview counts the same first."""
    env = export_env
    mappings = (ExportMapping("profile_id", "member id"), *MAPPINGS[3:4])  # + interests
    conn = env.connection(mappings=mappings, create_missing=True)
    assert env.run(conn).counts["EXPORTED"] == 4
    keys = {f.field_name: f.key for f in env.cm.custom_fields(env.list_id)}

    def values(field: str) -> dict[str, tuple[str, ...]]:
        return {e: f.get(field, ()) for e, (_, _, f) in env.account_state().items()}

    sent = values("member id")
    env.cm.delete_custom_field(env.list_id, keys["member id"])
    assert set(values("member id").values()) == {()}
    planned = preview(env.ws.context(conn, env.cm), "export")
    again = env.run(conn)
    assert planned.counts == again.counts and again.counts["EXPORTED"] == 4
    assert values("member id") == sent
    assert env.run(conn).counts["UNCHANGED"] == 4

    interests = values("interests")  # chess: person0 and person2
    env.cm.update_custom_field_options(
        env.list_id, keys["interests"], ["golf", "tennis"], keep_existing=False
    )
    planned = preview(env.ws.context(conn, env.cm), "export")
    again = env.run(conn)
    assert planned.counts == again.counts
    assert (again.counts["EXPORTED"], again.counts["UNCHANGED"]) == (2, 2)
    rows = env.run_rows(again.run_id)
    assert set(rows) == {"p0000", "p0002"}
    assert all(
        (r or "").startswith("sent again: Campaign Monitor lacked") for _, r in rows.values()
    )
    assert values("interests") == interests
    assert env.run(conn).counts["UNCHANGED"] == 4


def test_ledger_rows_only_for_changes_and_kept_for_the_last_runs(export_env: Env) -> None:
    """UNCHANGED rows are counted only; row detail is kept for the last history.keep_runs runs
    of the connection, counts forever (DESIGN §7)."""
    env = export_env
    conn = replace(env.connection(), keep_runs=2)
    first = env.run(conn)
    unchanged = env.run(conn)
    assert unchanged.counts["UNCHANGED"] == 4 and env.run_rows(unchanged.run_id) == {}
    third = env.run(conn, full=True)
    assert len(env.run_rows(third.run_id)) == 4
    assert env.run_rows(first.run_id) == {}  # pruned: more than 2 runs ago
    with env.ws.store.connect() as con:
        kept = dict(con.execute("SELECT run_id, counts FROM runs").fetchall())
    assert json.loads(kept[first.run_id])["EXPORTED"] == 4  # its counts stay


def test_connection_file_export_options_and_history() -> None:
    from cmtoolkit.connection.file import parse_connection
    from cmtoolkit.errors import ConnectionFileError

    base = {
        "name": "x",
        "campaign_monitor": {"credential": "default", "client_id": "a" * 32},
        "export": {
            "segment": "news",
            "lists": ["b" * 32],
            "match_property": "email",
            "create_missing": True,
            "invalid_values": "skip_row",
            "restart_autoresponders": True,
        },
        "history": {"keep_runs": 5},
    }
    conn = parse_connection(base)
    assert conn.export is not None and conn.keep_runs == 5
    assert (conn.export.create_missing, conn.export.invalid_values) == (True, "skip_row")
    assert conn.export.restart_autoresponders
    assert parse_connection(conn.to_dict()) == conn  # written back as read
    assert parse_connection({**base, "history": None}).keep_runs == 30
    with pytest.raises(ConnectionFileError, match=r"export\.invalid_values"):
        parse_connection({**base, "export": {**base["export"], "invalid_values": "drop"}})
    with pytest.raises(ConnectionFileError, match=r"history\.keep_runs"):
        parse_connection({**base, "history": {"keep_runs": 0}})


def test_state_follows_the_connection_id_through_an_upgrade_and_a_rename(export_env: Env) -> None:
    env = export_env
    env.run(env.connection())  # no id yet: state kept under the name
    with_id = replace(env.connection(), id="6f1c9a52")
    planned = preview(env.ws.context(with_id, env.cm), "export")
    assert planned.counts["UNCHANGED"] == 4  # the preview sees the state the run will adopt
    assert env.run(with_id).counts["UNCHANGED"] == 4
    with env.ws.store.connect() as con:
        keys = {r[0] for r in con.execute("SELECT connection FROM export_state").fetchall()}
    assert keys == {"6f1c9a52"}
    renamed = replace(with_id, name="newsletter export")
    assert env.run(renamed).counts["UNCHANGED"] == 4  # a rename keeps the run state
