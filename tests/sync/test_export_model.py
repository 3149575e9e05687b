"""Model-based test of export and targeting (DESIGN §6, §7): a hypothesis state machine
interleaves store edits, Campaign Monitor changes, connection edits, previews, runs, a crash
mid-export and injected faults, against the real goals, a real DuckDB workspace and the emulator
over HTTP; the reference is the pure-Python model in ``tests/sync/export_model.py``.

After every step the emulator's subscribers (state, name, every custom field, on every list) equal
the model's. Every run checks: its counts equal the model's and the preview's just before it, and
a second run with nothing changed sends nothing (the emulator's write requests are counted).

Budget: ``HYPOTHESIS_PROFILE`` (``default`` in ``make test``, ``long`` for nightly runs); the
number of examples and steps run is printed in the test summary.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import polars as pl
import pytest
import yaml
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    invariant,
    precondition,
    rule,
    run_state_machine_as_test,
)

from cmtoolkit.connection.model import (
    CampaignMonitorSettings,
    Connection,
    ExportGoal,
    ExportMapping,
    TargetingGoal,
)
from cmtoolkit.emulator import BOUNCED, Emulator
from cmtoolkit.sync import preview, sync
from cmtoolkit.workspace import Workspace
from tests.conftest import make_client
from tests.sync import model_budget
from tests.sync.export_model import (
    OBJECTIVE,
    Cm,
    CmList,
    Field,
    GoalCfg,
    Mapping,
    Model,
    ModelFailure,
)

PROFILES = [f"p{i}" for i in range(6)]
FIELDS = [
    Field("tier", "MultiSelectOne", ["Gold", "Silver"]),
    Field("interests", "MultiSelectMany", ["golf", "chess"]),
    Field("score", "Number"),
    Field("web", "Text"),
]
#: Every mapping a connection edit may choose from (pid and segs are created by create_missing).
MAPPINGS = (
    Mapping("property", "Name", "full_name"),
    Mapping("property", "tier", "tier"),
    Mapping("property", "interests", "interests"),
    Mapping("property", "score", "score"),
    Mapping("property", "web", "web"),
    Mapping("segments", "segs"),
    Mapping("profile_id", "pid"),
)
VALUES = {
    "email": lambda i: [[f"p{i}@example.com"], ["p0@example.com"], ["not-an-email"], []],
    "full_name": lambda i: [[f"Person {i}"], [], ["n" * 251]],
    "tier": lambda i: [[], ["Gold"], ["silver"], ["Bronze"], ["Gold", "Silver"]],
    "interests": lambda i: [[], ["golf"], ["golf", "darts"], ["CHESS"]],
    "score": lambda i: [[], ["5"], ["2.50"], ["many"]],
    "web": lambda i: [[], ["https://example.com"], ["w" * 251]],
    "level": lambda i: [["0"], ["1"], ["2"], ["3"]],
}
TARGET_FIELD = "Targets"
STATES = ("Active", "Unconfirmed", "Unsubscribed", "Bounced", "Deleted")
#: Steps and examples run, for the summary line (tests/sync/conftest.py prints it).
STATS = {"examples": 0, "steps": 0, "runs": 0}


def profile_frame(rows: dict[str, dict[str, list[str]]], consent: dict[str, bool]) -> pl.DataFrame:
    data: dict[str, list[Any]] = {"profile_id": list(rows)}
    for prop in VALUES:
        data[prop] = [rows[pid][prop] for pid in rows]
    data["consented_objectives"] = [[OBJECTIVE] if consent[pid] else [] for pid in rows]
    schema = {k: pl.List(pl.Utf8) if k != "profile_id" else pl.Utf8 for k in data}
    return pl.DataFrame(data, schema=schema)


class ExportMachine(RuleBasedStateMachine):
    """One workspace, two lists; export (configurable) and targeting run as ``--goal all`` does."""

    emulator: Emulator

    def __init__(self) -> None:
        super().__init__()
        STATS["examples"] += 1
        emu = self.emulator
        emu.set_faults(None)
        emu.reseed(seed_size=0)
        self.cm = make_client(emu)
        self.client_id = emu.client_id
        self.lists = [self.cm.create_list(self.client_id, f"List {n}") for n in (1, 2)]
        cm_model = Cm()
        for lid in self.lists:
            cm_model.lists[lid] = CmList(lid)
            for f in FIELDS:
                self.cm.create_custom_field(lid, f.name, f.data_type, f.options)
                cm_model.lists[lid].fields.append(Field(f.name, f.data_type, list(f.options)))
        self.tmp = Path(tempfile.mkdtemp(prefix="cmtoolkit-model-"))
        self.ws = Workspace.create(self.tmp / "ws")
        rows = {pid: {p: VALUES[p](i)[0] for p in VALUES} for i, pid in enumerate(PROFILES)}
        for i, pid in enumerate(PROFILES):
            rows[pid]["level"] = [str(i % 4)]
        consent = dict.fromkeys(PROFILES, True)
        self.ws.store.load(profile_frame(rows, consent), types={"level": "number", "email": "text"})
        self.model = Model(rows, consent, threshold=1, vip=["p0", "p1"], cm=cm_model)
        self.write_segments()
        self.ws.segments.refresh()  # stored membership exists, as in any used workspace
        self.export = GoalCfg(
            "export",
            lists=(self.lists[0],),
            segments=("news",),
            mappings=MAPPINGS[:5],
        )
        self.targeting = GoalCfg(
            "targeting",
            lists=(self.lists[0],),
            segments=("news", "vip"),
            mappings=(Mapping("target_segments", TARGET_FIELD),),
            on_leave="clear",
            only_subscribed=True,
        )

    def teardown(self) -> None:
        self.cm.close()
        self.emulator.set_faults(None)
        shutil.rmtree(self.tmp, ignore_errors=True)

    # -- helpers -----------------------------------------------------------------------------------

    def write_segments(self) -> None:
        (self.ws.path / "vip.csv").write_text("profile_id\n" + "\n".join(self.model.vip) + "\n")
        rules = {
            "news": {"property": "level", "gte": self.model.threshold},
            "vip": {"file": "vip.csv"},
        }
        self.ws.segments_path.write_text(yaml.safe_dump(rules))

    def connection(self) -> Connection:
        e = self.export
        return Connection(
            name="model",
            campaign_monitor=CampaignMonitorSettings("default", self.client_id),
            objectives=(OBJECTIVE,),
            export=ExportGoal(
                lists=e.lists,
                segment=e.segments[0],
                match_property="email",
                resubscribe=e.resubscribe,
                on_leave=e.on_leave,
                mappings=tuple(ExportMapping(m.kind, m.field, m.property) for m in e.mappings),
                create_missing=e.create_missing,
                invalid_values=e.invalid_values,
            ),
            targeting=TargetingGoal(
                lists=self.targeting.lists, segments=self.targeting.segments, field=TARGET_FIELD
            ),
        )

    def cfgs(self) -> list[GoalCfg]:
        return [self.export, self.targeting]

    def writes(self, since: int) -> list[tuple[str, str, int]]:
        """The write requests the emulator answered since request number ``since``."""
        n = self.emulator.request_count - since
        tail = list(self.emulator.requests)[-n:] if n else []
        return [r for r in tail if r[0] != "GET" and r[1].startswith("/api/")]

    def preview_counts(self, cfg: GoalCfg) -> dict[str, int] | None:
        try:
            return preview(self.ws.context(self.connection(), self.cm), cfg.goal).counts
        except Exception as exc:  # the model says whether this goal fails
            assert "no custom field" in str(exc), exc
            return None

    def run_all(self, *, full: bool = False, previews: bool = False) -> None:
        """Both goals as ``--goal all`` runs them; each checked against the model and, with
        ``previews``, against a preview taken just before it (after the goal before it ran:
        export's subscribers are targeting's to update)."""
        STATS["runs"] += 1
        for cfg in self.cfgs():
            predicted = self.preview_counts(cfg) if previews else None
            try:
                expected: dict[str, int] | None = self.model.run(cfg, full=full)
            except ModelFailure:
                expected = None
            result = sync(
                self.ws.context(self.connection(), self.cm, full=full),
                cfg.goal,
                raise_on_failure=False,
            )
            if expected is None:
                assert result.state == "FAILED" and "no custom field" in (result.error or "")
                assert predicted is None
                continue
            assert result.ok, result.error
            assert result.counts == expected, (cfg.goal, result.counts, expected)
            if previews:
                assert predicted == result.counts, (cfg.goal, predicted, result.counts)

    def email(self, pid: str) -> str | None:
        emails = self.model.profiles[pid]["email"]
        return emails[0] if emails else None

    # -- store edits -------------------------------------------------------------------------------

    @rule(
        pid=st.sampled_from(PROFILES), prop=st.sampled_from(sorted(VALUES)), pick=st.integers(0, 4)
    )
    def set_property(self, pid: str, prop: str, pick: int) -> None:
        choices = VALUES[prop](PROFILES.index(pid))
        values = choices[pick % len(choices)]
        self.model.profiles[pid][prop] = values
        self.ws.store.set_values(
            pl.DataFrame(
                {"profile_id": [pid], prop: [values]},
                schema={"profile_id": pl.Utf8, prop: pl.List(pl.Utf8)},
            )
        )

    @rule(pid=st.sampled_from(PROFILES), consents=st.booleans())
    def set_consent(self, pid: str, consents: bool) -> None:
        self.model.consent[pid] = consents
        self.ws.store.set_values(
            pl.DataFrame(
                {"profile_id": [pid], "consented_objectives": [[OBJECTIVE] if consents else []]},
                schema={"profile_id": pl.Utf8, "consented_objectives": pl.List(pl.Utf8)},
            )
        )

    @rule(threshold=st.integers(0, 3))
    def edit_segment_rule(self, threshold: int) -> None:
        self.model.threshold = threshold
        self.write_segments()

    @rule(members=st.sets(st.sampled_from(PROFILES)))
    def edit_file_segment(self, members: set[str]) -> None:
        self.model.vip = sorted(members)
        self.write_segments()

    # -- Campaign Monitor changes ------------------------------------------------------------------

    def _row(self, list_no: int, pid: str) -> tuple[Any, str] | None:
        email = self.email(pid)
        lid = self.lists[list_no]
        if email is None or email.lower() not in self.model.cm.lists[lid].subs:
            return None
        return lid, email

    @rule(list_no=st.integers(0, 1), pid=st.sampled_from(PROFILES))
    def cm_unsubscribe(self, list_no: int, pid: str) -> None:
        found = self._row(list_no, pid)
        if found:
            self.cm.unsubscribe(*found)
            self.model.cm.unsubscribe(*found)

    @rule(list_no=st.integers(0, 1), pid=st.sampled_from(PROFILES))
    def cm_delete(self, list_no: int, pid: str) -> None:
        found = self._row(list_no, pid)
        if found:
            self.cm.delete_subscriber(*found)
            self.model.cm.delete(*found)

    @rule(list_no=st.integers(0, 1), pid=st.sampled_from(PROFILES))
    def cm_bounce(self, list_no: int, pid: str) -> None:
        found = self._row(list_no, pid)
        if found:
            lid, email = found
            with self.emulator.lock:
                lst = next(x for x in self.emulator.account.clients[0].lists if x.list_id == lid)
                lst.set_state(lst.row_of(email), BOUNCED, int(self.emulator.now()))
            self.model.cm.lists[lid].subs[email.lower()].state = "Bounced"

    @rule(pid=st.sampled_from(PROFILES))
    def cm_suppress(self, pid: str) -> None:
        email = self.email(pid)
        if email is None or "@" not in email:
            return
        with self.emulator.lock:
            self.emulator.account.clients[0].suppress(email, "Manually Suppressed", 0)
        self.model.cm.suppressed.add(email.lower())

    @rule(list_no=st.integers(0, 1), pid=st.sampled_from(PROFILES))
    def cm_resubscribe(self, list_no: int, pid: str) -> None:
        """The list owner re-adds someone: their state changes, so they are sent again."""
        found = self._row(list_no, pid)
        if found:
            lid, email = found
            self.cm.add_subscriber(lid, email, resubscribe=True)
            self.model.cm.suppressed.discard(email.lower())
            self.model.cm.lists[lid].subs[email.lower()].state = "Active"

    @rule(
        list_no=st.integers(0, 1),
        name=st.sampled_from(["tier", "interests", "score", "segs", "pid", TARGET_FIELD]),
    )
    def cm_delete_field(self, list_no: int, name: str) -> None:
        lid = self.lists[list_no]
        if self.model.cm.lists[lid].field(name) is None:
            return
        with self.emulator.lock:
            lst = next(x for x in self.emulator.account.clients[0].lists if x.list_id == lid)
            lst.remove_field(lst.field_named(name))
        self.model.cm.delete_field(lid, name)

    @rule(list_no=st.integers(0, 1), name=st.sampled_from(["tier", "interests", TARGET_FIELD]))
    def cm_delete_option(self, list_no: int, name: str) -> None:
        lid = self.lists[list_no]
        f = self.model.cm.lists[lid].field(name)
        if f is None or len(f.options) < 2:
            return
        kept = f.options[:-1]
        self.cm.update_custom_field_options(lid, f"[{f.name}]", kept, keep_existing=False)
        self.model.cm.set_options(lid, name, kept)

    # -- connection edits --------------------------------------------------------------------------

    @rule(chosen=st.sets(st.sampled_from(MAPPINGS), min_size=1))
    def edit_mappings(self, chosen: set[Mapping]) -> None:
        self.export = self.export.with_(mappings=tuple(m for m in MAPPINGS if m in chosen))

    @rule(
        on_leave=st.sampled_from(["keep", "unsubscribe", "delete"]),
        resubscribe=st.booleans(),
        create_missing=st.booleans(),
        invalid_values=st.sampled_from(["skip_field", "skip_row"]),
    )
    def edit_settings(
        self, on_leave: str, resubscribe: bool, create_missing: bool, invalid_values: str
    ) -> None:
        self.export = self.export.with_(
            on_leave=on_leave,
            resubscribe=resubscribe,
            create_missing=create_missing,
            invalid_values=invalid_values,
        )

    @rule(both=st.booleans(), segment=st.sampled_from(["news", "vip"]))
    def edit_lists_and_segment(self, both: bool, segment: str) -> None:
        lists = tuple(self.lists) if both else (self.lists[0],)
        self.export = self.export.with_(lists=lists, segments=(segment,))

    # -- previews and runs -------------------------------------------------------------------------

    @rule()
    def preview_then_run(self) -> None:
        """A preview's counts equal the next run's (and the model's)."""
        self.run_all(previews=True)

    @rule()
    def full_run(self) -> None:
        """``--full`` ignores what earlier runs recorded: every eligible row is decided again
        (refused ones are still not sent)."""
        self.run_all(full=True)

    @rule()
    def run_twice(self) -> None:
        """A second run with nothing changed sends nothing."""
        self.run_all()
        mark = self.emulator.request_count
        self.run_all(previews=True)
        assert self.writes(mark) == [], self.writes(mark)

    @precondition(lambda self: len(self.export.lists) == 2)
    @rule()
    def crash_mid_export(self) -> None:
        """The process dies at the second import request (the other list's batch may be in
        flight and accepted); the next run resumes and the end state is that of one complete
        run."""
        real = self.cm.import_batch
        calls = {"n": 0}
        lock = threading.Lock()

        def dying_import(*args: Any, **kwargs: Any) -> Any:
            with lock:  # batches are sent from several threads
                calls["n"] += 1
                if calls["n"] == 2:
                    raise SystemExit("killed mid-export")
            return real(*args, **kwargs)

        self.cm.import_batch = dying_import
        try:
            sync(self.ws.context(self.connection(), self.cm), "export", raise_on_failure=False)
        except SystemExit:
            pass
        finally:
            del self.cm.import_batch
        self.run_all_eventually()

    def run_all_eventually(self) -> None:
        """Run both goals after an interruption: the model's state after one complete run."""
        for cfg in self.cfgs():
            with contextlib.suppress(ModelFailure):
                self.model.run(cfg)
            sync(self.ws.context(self.connection(), self.cm), cfg.goal, raise_on_failure=False)

    @rule(spec=st.sampled_from(["500:p=0.3", "429:p=0.3,reset=1", "503:every=3;500:at=2"]))
    def run_with_faults(self, spec: str) -> None:
        """Transient faults are retried: the same end state as a clean run."""
        self.emulator.set_faults(spec)
        try:
            self.run_all_eventually()
        finally:
            self.emulator.set_faults(None)
        # A request that is never retried (creating a field) may have failed the run: the next
        # run finishes the work; the end state is still that of one complete run.
        for cfg in self.cfgs():
            sync(self.ws.context(self.connection(), self.cm), cfg.goal, raise_on_failure=False)

    # -- the invariant -----------------------------------------------------------------------------

    @invariant()
    def campaign_monitor_matches_the_model(self) -> None:
        STATS["steps"] += 1
        assert self.real_snapshot() == self.model.cm.snapshot()

    def real_snapshot(self) -> dict[str, dict[str, Any]]:
        out: dict[str, dict[str, Any]] = {}
        for lid in self.lists:
            subs: dict[str, Any] = {}
            for state in STATES:
                for s in self.cm.subscribers(lid, state):
                    fields = {k: tuple(sorted(v)) for k, v in s.custom_fields.items() if v}
                    subs[s.email.lower()] = (s.state, s.name, fields)
            out[lid] = subs
        return out


settings.register_profile(
    "export-model-default",
    max_examples=int(os.environ.get("EXPORT_MODEL_EXAMPLES", "3")),
    stateful_step_count=20,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
)
settings.register_profile(
    "export-model-long",
    max_examples=200,
    stateful_step_count=60,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
)


@pytest.fixture(scope="module")
def model_emulator() -> Iterator[Emulator]:
    emu = Emulator(seed_size=0, seed=1)
    emu.start("127.0.0.1", 0)
    yield emu
    emu.stop()


def test_export_and_targeting_follow_the_model(model_emulator: Emulator) -> None:
    profile = os.environ.get("HYPOTHESIS_PROFILE", "default")
    chosen = settings.get_profile(
        "export-model-long" if profile == "long" else "export-model-default"
    )
    ExportMachine.emulator = model_emulator
    STATS.update(examples=0, steps=0, runs=0)
    try:
        run_state_machine_as_test(ExportMachine, settings=chosen)
    finally:
        line = (
            f"export model ({profile}: up to {chosen.max_examples} examples x "
            f"{chosen.stateful_step_count} steps): {STATS['examples']} examples, "
            f"{STATS['steps']} steps, {STATS['runs']} checked runs"
        )
        print(line)
        model_budget.LINES.append(line)
