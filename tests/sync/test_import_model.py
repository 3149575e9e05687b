"""The import against its reference model (``import_model.py``), over time.

A hypothesis state machine interleaves Campaign Monitor changes (through the emulator over HTTP),
store edits, connection edits, previews, runs, ``--full`` runs and runs killed between their
writes and their commit; after every step the real store must equal the model's, profile by
profile and property by property. Invariants: a preview's counts equal the next run's, a second
run with nothing changed applies no contact the first applied, and a value is summed once. Days
pass too: a run then reads only the recent leavers (DESIGN §5.6), which may leave out UNCHANGED
ones the model, reading every leaver, counts; nothing else may differ.

Budget: the ``default`` hypothesis profile keeps ``make test`` short; ``HYPOTHESIS_PROFILE=long``
runs hundreds of examples (nightly). ``tests/sync/conftest.py`` prints the budget and the steps.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any, ClassVar

import polars as pl
import pytest
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    initialize,
    invariant,
    rule,
    run_state_machine_as_test,
)

from cmtoolkit.connection.model import (
    CampaignMonitorSettings,
    Connection,
    ConsentFrom,
    Identifier,
    ImportGoal,
    ImportMapping,
)
from cmtoolkit.sync import preview, sync
from cmtoolkit.sync.imports.state import LEAVER_LAG
from cmtoolkit.workspace import Workspace
from tests.sync import model_budget as budget
from tests.sync.import_model import LEAVING, Config, ImportModel, Sub

EMAILS = ("ann@x.io", "bob@x.io", "cid@x.io", "dee@x.io", "eve@x.io")
CODES = ("C1", "C2", "C3")
POINTS = ("1", "2", "5", "7")
NOTES = ("3", "12", "n/a")
NAMES = ("Ann", "Bob", "Zed")
FIELDS = (("code", "Text"), ("points", "Number"), ("note", "Text"))
TYPES = {
    "email": "email",
    "code": "text",
    "full_name": "text",
    "points": "number",
    "score": "number",
    "cm_lists": "text",
    "cm_state": "text",
}
IDENTIFIERS = (
    (("EmailAddress", "email"),),
    (("EmailAddress", "email"), ("code", "code")),
    (("code", "code"), ("EmailAddress", "email")),
)
MAPPINGS = (
    ("Name", "full_name", "set_if_empty"),
    ("points", "points", "sum"),
    ("note", "score", "set"),
    ("State", "cm_state", "set"),
)
CONSENT = ("ConsentToTrack", ("email_marketing",), ())


def assert_counts(
    real: dict[str, int],
    model: dict[str, int],
    account: dict[str, tuple[str, list[Sub]]],
    cfg: Config,
    what: str,
) -> None:
    """The model's counts, except that a run reading leavers from a cursor may not count
    settled leavers outside ``states`` (UNCHANGED in the model)."""
    leavers = sum(
        1
        for list_id in cfg.lists
        for s in account[list_id][1]
        if s.state in LEAVING and s.state not in cfg.states
    )
    unread = model["UNCHANGED"] - real["UNCHANGED"]
    assert {**real, "UNCHANGED": 0} == {**model, "UNCHANGED": 0}, f"{what} {real} != model {model}"
    assert 0 <= unread <= leavers, f"{what} {real}: {unread} UNCHANGED unread, {leavers} leavers"


def initial_profiles() -> dict[str, dict[str, list[str]]]:
    return {
        "p1": {
            "email": ["ann@x.io"],
            "points": ["10"],
            "consented_objectives": ["email_marketing"],
        },
        "p2": {"email": ["bob@x.io"], "full_name": ["Bob Original"]},
        "p3": {"code": ["C1"]},
        "p4": {"code": ["C2"], "consented_objectives": ["email_marketing"]},
        "p5": {"code": ["C2"]},
    }


class ImportMachine(RuleBasedStateMachine):
    emulator: ClassVar[Any]
    cm: ClassVar[Any]
    crash: ClassVar[Any]  # a context manager that makes the next apply crash before commit

    def __init__(self) -> None:
        super().__init__()
        self.folder = Path(tempfile.mkdtemp(prefix="import-model-", dir=budget.BASE))
        self.ws = Workspace.create(self.folder / "ws")
        for name, type_ in TYPES.items():
            self.ws.store.define_property(name, type_)
        profiles = initial_profiles()
        self.ws.store.set_values(
            pl.DataFrame([{"profile_id": pid, **p} for pid, p in profiles.items()]),
        )
        self.model = ImportModel(profiles, dict(TYPES))
        self.emulator.reseed(seed_size=0)
        cm = self.cm
        client = self.emulator.client_id
        self.lists = (cm.create_list(client, "Newsletter"), cm.create_list(client, "Customers"))
        for list_id in self.lists:
            for name, kind in FIELDS:
                cm.create_custom_field(list_id, name, kind, [])
        self.cfg = Config(
            id="a1b2c3d4",
            lists=self.lists,
            states=("Active",),
            allow_create=True,
            save_list_names_to="cm_lists",
            identifiers=IDENTIFIERS[1],
            mappings=MAPPINGS[:2],
        )
        self.name = "news"
        self.subscribed: set[tuple[str, str]] = set()

    def teardown(self) -> None:
        shutil.rmtree(self.folder, ignore_errors=True)

    # --- the connection, as the real import gets it -------------------------------------------

    def connection(self) -> Connection:
        c = self.cfg
        return Connection(
            name=self.name,
            id=c.id,
            campaign_monitor=CampaignMonitorSettings("default", self.emulator.client_id),
            objectives=c.objectives,
            import_=ImportGoal(
                lists=c.lists,
                states=c.states,
                allow_create=c.allow_create,
                save_list_names_to=c.save_list_names_to,
                identifiers=tuple(Identifier(f, p) for f, p in c.identifiers),
                mappings=tuple(ImportMapping(f, p, r) for f, p, r in c.mappings),
                consent_from=ConsentFrom(*c.consent_from) if c.consent_from else None,
            ),
        )

    def account(self) -> dict[str, tuple[str, list[Sub]]]:
        """Campaign Monitor as the import will read it (the model's input)."""
        names = {lst.list_id: lst.name for lst in self.cm.lists(self.emulator.client_id)}
        out = {}
        for list_id in self.lists:
            subs = []
            for state in ("Active", "Unconfirmed", "Unsubscribed", "Bounced", "Deleted"):
                for s in self.cm.subscribers(list_id, state, include_tracking_preference=True):
                    fields = tuple((k, tuple(v)) for k, v in s.custom_fields.items())
                    subs.append(Sub(s.email, s.name, s.state, s.consent_to_track or "", fields))
            out[list_id] = (names[list_id], subs)
        return out

    def context(self, full: bool = False) -> Any:
        return self.ws.context(self.connection(), self.cm, full=full)

    # --- Campaign Monitor changes ---------------------------------------------------------------

    # Three rules change the world and four run the import, so most steps check a run, and a
    # change is soon followed by one (a budget of a dozen steps must reach "change, then run").

    @initialize(
        people=st.lists(
            st.tuples(st.sampled_from(EMAILS), st.sampled_from(CODES)),
            min_size=1,
            max_size=3,
            unique_by=lambda p: p[0],
        ),
        points=st.sampled_from(POINTS),
    )
    def some_subscribers(self, people: list[tuple[str, str]], points: str) -> None:
        """A few subscribers whose email and code may name different profiles (rule order)."""
        for email, code in people:
            self.subscribe(0, email, "Ann", code, points, "3", "Yes")

    @rule(data=st.data())
    def campaign_monitor_changes(self, data: st.DataObject) -> None:
        ops = ["subscribe"] + (["edit", "state", "move"] if self.subscribed else [])
        op = data.draw(st.sampled_from(ops), label="campaign monitor change")
        if op == "subscribe":
            self.subscribe(
                data.draw(st.integers(0, 1)),
                data.draw(st.sampled_from(EMAILS)),
                data.draw(st.sampled_from(NAMES)),
                data.draw(st.sampled_from((*CODES, ""))),
                data.draw(st.sampled_from((*POINTS, ""))),
                data.draw(st.sampled_from((*NOTES, ""))),
                data.draw(st.sampled_from(("Yes", "No"))),
            )
            return
        list_id, email = data.draw(st.sampled_from(sorted(self.subscribed)))
        if op == "edit":
            field = data.draw(st.sampled_from(("code", "points", "note")))
            values = {"code": CODES, "points": POINTS, "note": NOTES}[field]
            value = data.draw(st.sampled_from(values))
            self.cm.update_subscriber(
                list_id, email, custom_fields=[{"Key": field, "Value": value}]
            )
        elif op == "state":
            how = data.draw(st.sampled_from(("unsubscribe", "bounce", "delete", "resubscribe")))
            self.change_state(list_id, email, how)
        else:
            self.move(list_id, email)

    def subscribe(
        self, at: int, email: str, name: str, code: str, points: str, note: str, consent: str
    ) -> None:
        fields = {"code": code, "points": points, "note": note}
        custom = [{"Key": k, "Value": v} for k, v in fields.items() if v]
        self.cm.add_subscriber(
            self.lists[at],
            email,
            name=name,
            custom_fields=custom,
            consent_to_track=consent,
            resubscribe=True,
        )
        self.subscribed.add((self.lists[at], email))

    def change_state(self, list_id: str, email: str, how: str) -> None:
        if how == "unsubscribe":
            self.cm.unsubscribe(list_id, email)
        elif how == "delete":
            self.cm.delete_subscriber(list_id, email)
        elif how == "resubscribe":
            self.cm.add_subscriber(list_id, email, resubscribe=True)
        else:  # a bounce is Campaign Monitor's doing: the emulator's account directly
            _, lst = self.emulator.account.find_list(list_id)
            lst.set_state(lst.row_of(email), 3, int(self.emulator.now()))

    def move(self, list_id: str, email: str) -> None:
        other = self.lists[1 - self.lists.index(list_id)]
        record = self.cm.subscriber(list_id, email)
        custom = [{"Key": k, "Value": v} for k, vs in record.custom_fields.items() for v in vs]
        self.cm.delete_subscriber(list_id, email)
        self.cm.add_subscriber(
            other, email, name=record.name, custom_fields=custom, resubscribe=True
        )
        self.subscribed.add((other, email))

    # --- store changes ------------------------------------------------------------------------

    @rule(data=st.data())
    def store_changes(self, data: st.DataObject) -> None:
        op = data.draw(st.sampled_from(("edit", "delete", "duplicate")), label="store change")
        profiles = self.model.profiles
        pid = data.draw(st.sampled_from(sorted(profiles)))
        if op == "edit":
            value = data.draw(st.sampled_from(("3", "100", "Edited")))
            prop = "full_name" if value == "Edited" else "points"
            self.ws.store.set_values(pl.DataFrame({"profile_id": [pid], prop: [[value]]}))
            profiles[pid][prop] = [value]
        elif op == "delete" and len(profiles) > 1:
            self.ws.store.delete_profiles([pid])
            del profiles[pid]
        elif op == "duplicate":  # another profile takes someone's identifier: AMBIGUOUS
            prop = data.draw(st.sampled_from(("email", "code")))
            holders = sorted(p for p, v in profiles.items() if v.get(prop))
            if not holders:
                return
            value = profiles[data.draw(st.sampled_from(holders))][prop][0]
            if value in profiles[pid].get(prop, []):
                return
            frame = pl.DataFrame({"profile_id": [pid], prop: [[value]]})
            self.ws.store.set_values(frame, mode="add")
            profiles[pid][prop] = [*profiles[pid].get(prop, []), value]

    # --- connection edits ---------------------------------------------------------------------

    def edit(self, **changes: Any) -> None:
        self.cfg = Config(**{**self.cfg.__dict__, **changes})

    @rule(data=st.data())
    def connection_edits(self, data: st.DataObject) -> None:
        what = data.draw(
            st.sampled_from(
                ("allow_create", "identifiers", "mappings", "states", "lists", "list_names",
                 "objectives", "rename")
            ),
            label="connection edit",
        )  # fmt: skip
        if what == "allow_create":
            self.edit(allow_create=not self.cfg.allow_create)
        elif what == "identifiers":  # add, remove and reorder identifier rules
            self.edit(identifiers=data.draw(st.sampled_from(IDENTIFIERS)))
        elif what == "mappings":  # add, remove and reorder mapping rows (sum among them or not)
            chosen = data.draw(st.lists(st.sampled_from(MAPPINGS), unique=True))
            self.edit(mappings=tuple(chosen))
        elif what == "states":
            self.edit(states=data.draw(st.sampled_from((("Active",), ("Active", "Unsubscribed")))))
        elif what == "lists":
            order = data.draw(st.sampled_from(((0, 1), (1, 0), (0,), (1,))))
            self.edit(lists=tuple(self.lists[i] for i in order))
        elif what == "list_names":
            self.edit(save_list_names_to=None if self.cfg.save_list_names_to else "cm_lists")
        elif what == "objectives":
            on = not self.cfg.objectives
            self.edit(
                objectives=("email_marketing",) if on else (), consent_from=CONSENT if on else None
            )
        else:  # a rename keeps the id, and so the run state
            self.name = data.draw(st.sampled_from(("news", "Newsletter sync", "renamed")))

    # --- previews and runs ----------------------------------------------------------------------

    @rule()
    def preview_then_run(self) -> None:
        account = self.account()
        expected = self.model.run(self.cfg, account, write=False)
        dry = preview(self.context(), "import")
        assert_counts(dry.counts, expected, account, self.cfg, "preview")
        real = sync(self.context(), "import")
        assert real.counts == dry.counts, f"run {real.counts} != its preview {dry.counts}"
        self.model.run(self.cfg, account)

    @rule(full=st.booleans())
    def run(self, full: bool) -> None:
        account = self.account()
        expected = self.model.run(self.cfg, account, full=full)
        real = sync(self.context(full=full), "import")
        if full:  # every leaver read
            assert real.counts == expected, f"run (full) {real.counts} != model {expected}"
        assert_counts(real.counts, expected, account, self.cfg, "run")

    @rule()
    def run_twice(self) -> None:
        """With nothing changed, a second run applies no contact the first applied. It may
        apply one the first left unresolved: matching sees the profiles as a run starts, so a
        contact the first found AMBIGUOUS by its code can match now, by the email another
        contact's new profile holds."""
        account = self.account()
        self.model.run(self.cfg, account)
        first = sync(self.context(), "import")
        expected = self.model.run(self.cfg, account)
        again = sync(self.context(), "import")
        assert_counts(again.counts, expected, account, self.cfg, "second run")
        with self.ws.store.connect() as con:

            def applied(run_id: str | None) -> set[tuple[str, str]]:
                sql = (
                    "SELECT list_id, email FROM run_rows WHERE run_id = $run "
                    "AND outcome IN ('CREATED', 'MODIFIED')"
                )
                return set(con.execute(sql, {"run": run_id}).fetchall())

            twice = applied(first.run_id) & applied(again.run_id)
        assert not twice, f"applied again with nothing changed: {sorted(twice)}"

    @rule()
    def days_pass(self) -> None:
        """Past the lag: leavers applied before are not read again, unless still unsettled."""
        self.emulator.advance(2 * LEAVER_LAG.total_seconds())

    @rule()
    def killed_run(self) -> None:
        """A run that dies between its writes and its commit leaves the store as it was."""
        with self.crash(), pytest.raises(RuntimeError, match="injected crash"):
            sync(self.context(), "import")

    # --- after every step -------------------------------------------------------------------------

    @invariant()
    def store_equals_model(self) -> None:
        budget.STEPS += 1
        with self.ws.store.connect() as con:
            frame = con.sql("SELECT * EXCLUDE (created_at, updated_at) FROM profiles").pl()
        store = {
            row.pop("profile_id"): {k: list(v) for k, v in row.items() if v}
            for row in frame.to_dicts()
        }
        want = {pid: {k: v for k, v in p.items() if v} for pid, p in self.model.profiles.items()}
        assert sorted(store) == sorted(want), "profile ids differ from the model's"
        for pid, got in store.items():
            assert got == want[pid], f"profile {pid}: store {got} != model {want[pid]}"


settings.register_profile(
    "import-model-default",
    max_examples=int(os.environ.get("IMPORT_MODEL_EXAMPLES", "10")),
    stateful_step_count=12,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
)
settings.register_profile(
    "import-model-long",
    max_examples=300,
    stateful_step_count=40,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
)


def test_the_import_matches_its_model_over_time(emulator, cm, monkeypatch, tmp_path):
    from cmtoolkit.sync.imports import goal

    real_apply = goal.apply_import

    @contextlib.contextmanager
    def crash() -> Any:
        def crashing(*args: Any, **kwargs: Any) -> None:
            real_apply(*args, **kwargs)  # every write done, the transaction not committed
            raise RuntimeError("injected crash")

        with monkeypatch.context() as m:
            m.setattr(goal, "apply_import", crashing)
            yield

    profile = os.environ.get("HYPOTHESIS_PROFILE", "default")
    chosen = settings.get_profile(f"import-model-{'long' if profile == 'long' else 'default'}")
    ImportMachine.emulator = emulator
    ImportMachine.cm = cm
    ImportMachine.crash = staticmethod(crash)  # type: ignore[assignment]
    budget.BASE, budget.STEPS = tmp_path, 0
    try:
        run_state_machine_as_test(ImportMachine, settings=chosen)
    finally:
        budget.LINES.append(
            f"import model ({profile}: max {chosen.max_examples} examples x "
            f"{chosen.stateful_step_count} steps): {budget.STEPS} steps checked against the model"
        )
