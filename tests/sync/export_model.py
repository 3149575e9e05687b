"""A pure-Python reference model of DESIGN §6: export and targeting, and the Campaign Monitor
side they write to, for the model-based test (tests/sync/test_export_model.py).

No SQL and no toolkit code: the rules are re-stated from the design as plain Python, so a
disagreement with the real goals is a bug in one of them. What the model holds:

- the profiles (each property a list of values; consent as a flag), the ``news`` rule's threshold
  and the ``vip`` membership file;
- Campaign Monitor as the emulator keeps it: per list its custom fields (type, options in order)
  and its subscribers (state, name, every custom field), and the client's suppression list;
- what each goal last sent per (list, profile): the email and a signature of everything the
  payload is made of (the real goals keep a hash of the same things).
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass, field, replace

EMAIL_RE = re.compile(r"[^@\s]+@[^@\s.]+(\.[^@\s.]+)+")
MAX_TEXT = 250
REFUSED_STATES = {"Deleted": 205, "Unsubscribed": 206, "Bounced": 207}
SINGLE = ("Number", "MultiSelectOne")
MULTI = ("MultiSelectOne", "MultiSelectMany")
STANDARD = ("Name",)
OUTCOMES = (
    "EXPORTED",
    "UNCHANGED",
    "INVALID",
    "REJECTED",
    "SUPPRESSED",
    "CONSENT_MISMATCH",
    "REMOVED",
    "NOT_SUBSCRIBED",
)
OBJECTIVE = "email_marketing"


class ModelFailure(Exception):
    """The goal fails before sending anything (e.g. a mapped field is missing)."""


# --- Campaign Monitor ----------------------------------------------------------------------------


@dataclass
class Field:
    name: str
    data_type: str
    options: list[str] = field(default_factory=list)
    # Planning only: the field, or these options, missing in Campaign Monitor (the run creates
    # them). A row carrying a value for it is sent even when unchanged: the field or option
    # was deleted there, and its values with it.
    created: bool = False
    added: list[str] = field(default_factory=list)

    def needs(self, values: list[str]) -> bool:
        """Whether values for this field need what the run creates."""
        if self.created:
            return bool(values)
        added = {o.lower() for o in self.added}
        return any(v.strip().lower() in added for v in values)

    def normalise(self, value: str) -> str | None:
        """The stored form of an incoming value (None: ignored), as Campaign Monitor does."""
        text = value.strip()
        if not text or len(text) > MAX_TEXT:
            return None
        if self.data_type == "Number":
            try:
                number = float(text)
            except ValueError:
                return None
            return str(int(number)) if number.is_integer() and "." not in text else text
        if self.data_type in MULTI:
            return next((o for o in self.options if o.casefold() == text.casefold()), None)
        return text


@dataclass
class Subscriber:
    email: str
    state: str = "Active"
    name: str = ""
    fields: dict[str, tuple[str, ...]] = field(default_factory=dict)


@dataclass
class CmList:
    list_id: str
    fields: list[Field] = field(default_factory=list)
    subs: dict[str, Subscriber] = field(default_factory=dict)

    def field(self, name: str) -> Field | None:
        return next((f for f in self.fields if f.name.casefold() == name.casefold()), None)


@dataclass
class Cm:
    lists: dict[str, CmList] = field(default_factory=dict)
    suppressed: set[str] = field(default_factory=set)

    def refusal(self, list_id: str, email: str) -> int | None:
        """The code the import endpoint refuses ``email`` with (without Resubscribe)."""
        low = email.lower()
        if low in self.suppressed:
            return 204
        sub = self.lists[list_id].subs.get(low)
        return REFUSED_STATES.get(sub.state) if sub is not None else None

    def active(self, list_id: str, email: str) -> bool:
        sub = self.lists[list_id].subs.get(email.lower())
        return sub is not None and sub.state == "Active"

    def unsubscribe(self, list_id: str, email: str) -> bool:
        """False when the address is not in the list (203). Lists unsubscribe client-wide."""
        if email.lower() not in self.lists[list_id].subs:
            return False
        for lst in self.lists.values():
            sub = lst.subs.get(email.lower())
            if sub is not None and sub.state in ("Active", "Unconfirmed"):
                sub.state = "Unsubscribed"
        return True

    def delete(self, list_id: str, email: str) -> bool:
        sub = self.lists[list_id].subs.get(email.lower())
        if sub is None:
            return False
        sub.state = "Deleted"
        return True

    def set_options(self, list_id: str, name: str, options: list[str]) -> None:
        """Replace a multi-option field's options; values no longer allowed are dropped."""
        lst = self.lists[list_id]
        f = lst.field(name)
        assert f is not None
        f.options = list(dict.fromkeys(options))
        for sub in lst.subs.values():
            kept = tuple(v for v in sub.fields.get(f.name, ()) if v in f.options)
            if kept:
                sub.fields[f.name] = kept
            else:
                sub.fields.pop(f.name, None)

    def delete_field(self, list_id: str, name: str) -> None:
        lst = self.lists[list_id]
        f = lst.field(name)
        assert f is not None
        lst.fields.remove(f)
        for sub in lst.subs.values():
            sub.fields.pop(f.name, None)

    def import_row(self, list_id: str, email: str, name: str | None, entries: list[Entry]) -> None:
        """One accepted row of a bulk import (the refusals are decided before sending)."""
        lst = self.lists[list_id]
        sub = lst.subs.get(email.lower())
        if sub is None:
            sub = lst.subs[email.lower()] = Subscriber(email)
        sub.state = "Active"
        self.suppressed.discard(email.lower())
        if name is not None and name.strip():
            sub.name = name.strip()
        many: dict[str, list[str]] = {}
        for key, value, clear in entries:
            f = lst.field(key)
            if f is None:
                continue  # unknown keys are ignored
            if clear:
                sub.fields.pop(f.name, None)
                many.pop(f.name, None)
                continue
            stored = f.normalise(value)
            if stored is None:
                continue
            if f.data_type == "MultiSelectMany":
                chosen = many.setdefault(f.name, [])
                if stored not in chosen:
                    chosen.append(stored)
            else:
                sub.fields[f.name] = (stored,)
        for fname, chosen in many.items():
            f = lst.field(fname)
            assert f is not None
            ordered = tuple(o for o in f.options if o in chosen)
            if ordered:
                sub.fields[fname] = ordered
            else:
                sub.fields.pop(fname, None)

    def snapshot(self) -> dict[str, dict[str, tuple[str, str, dict[str, tuple[str, ...]]]]]:
        """Per list, every subscriber: (state, name, custom fields with sorted values)."""
        return {
            lid: {
                e: (s.state, s.name, {k: tuple(sorted(v)) for k, v in s.fields.items() if v})
                for e, s in lst.subs.items()
            }
            for lid, lst in self.lists.items()
        }


#: A custom field entry of an import row: (key, value, clear).
Entry = tuple[str, str, bool]


# --- the connection ------------------------------------------------------------------------------


@dataclass(frozen=True)
class Mapping:
    kind: str  # property | segments | profile_id
    field: str
    property: str | None = None


@dataclass(frozen=True)
class GoalCfg:
    """One goal's settings as the model needs them (export, or targeting as an export)."""

    goal: str
    lists: tuple[str, ...]
    segments: tuple[str, ...]
    mappings: tuple[Mapping, ...]
    on_leave: str = "keep"
    resubscribe: bool = False
    create_missing: bool = False
    invalid_values: str = "skip_field"
    only_subscribed: bool = False

    def with_(self, **changes: object) -> GoalCfg:
        return replace(self, **changes)  # type: ignore[arg-type]


@dataclass
class Candidate:
    pid: str
    email: str | None
    consented: bool
    values: list[list[str]]
    dup_of: str | None = None


@dataclass
class Row:
    list_id: str
    pid: str
    email: str | None
    outcome: str | None  # None: to send (action below)
    action: str | None = None  # send | clear | leave | forget
    sig: tuple[object, ...] | None = None
    name: str | None = None
    entries: list[Entry] = field(default_factory=list)


# --- the model -----------------------------------------------------------------------------------


@dataclass
class Model:
    profiles: dict[str, dict[str, list[str]]]
    consent: dict[str, bool]
    threshold: int
    vip: list[str]
    cm: Cm
    sent: dict[tuple[str, str, str], tuple[str, tuple[object, ...]]] = field(default_factory=dict)

    def segments(self) -> dict[str, set[str]]:
        news = {
            pid
            for pid, p in self.profiles.items()
            if any(float(v) >= self.threshold for v in p.get("level", []))
        }
        return {"news": news, "vip": {pid for pid in self.vip if pid in self.profiles}}

    # -- planning ------------------------------------------------------------------------------

    def _types(self, cfg: GoalCfg, create: bool) -> dict[str, dict[str, Field]]:
        out: dict[str, dict[str, Field]] = {}
        for lid in cfg.lists:
            lst = self.cm.lists[lid]
            types: dict[str, Field] = {}
            for m in cfg.mappings:
                if m.field in STANDARD:
                    types[m.field] = Field(m.field, m.field)
                    continue
                f = lst.field(m.field)
                if f is not None:
                    types[m.field] = Field(f.name, f.data_type, list(f.options))
                elif cfg.goal == "targeting":
                    types[m.field] = Field(
                        m.field, "MultiSelectMany", list(cfg.segments), created=True
                    )
                    if create:
                        lst.fields.append(Field(m.field, "MultiSelectMany", list(cfg.segments)))
                elif cfg.create_missing:
                    data_type = "MultiSelectMany" if m.kind == "segments" else "Text"
                    types[m.field] = Field(m.field, data_type, created=True)
                    if create and data_type == "Text":
                        lst.fields.append(Field(m.field, "Text"))
                else:
                    raise ModelFailure(f"list {lid} has no custom field {m.field!r}")
                if cfg.goal == "targeting" and f is not None:
                    missing = [s for s in cfg.segments if s not in f.options]
                    types[m.field].options += missing
                    types[m.field].added += missing
                    if create:
                        f.options += missing
            out[lid] = types
        return out

    def _candidates(self, cfg: GoalCfg) -> list[Candidate]:
        segs = self.segments()
        members = sorted(set().union(*(segs[s] for s in cfg.segments)))
        out = []
        for pid in members:
            p = self.profiles[pid]
            emails = p.get("email", [])
            email = emails[0].strip() if emails else None
            values = []
            for m in cfg.mappings:
                if m.kind == "profile_id":
                    values.append([pid])
                elif m.kind == "segments":
                    values.append(sorted(s for s, ids in segs.items() if pid in ids))
                elif m.kind == "target_segments":
                    values.append([s for s in cfg.segments if pid in segs[s]])
                else:
                    assert m.property is not None
                    values.append([v for v in p.get(m.property, []) if v != ""])
            out.append(Candidate(pid, email or None, self.consent.get(pid, False), values))
        by_email: dict[str, list[Candidate]] = {}
        for c in out:
            if c.email is not None:
                by_email.setdefault(c.email.lower(), []).append(c)
        for group in by_email.values():
            group.sort(key=lambda c: (not c.consented, c.pid))
            for c in group[1:]:
                c.dup_of = group[0].pid
        return out

    def _add_options(
        self, cfg: GoalCfg, types: dict[str, dict[str, Field]], cands: list[Candidate], create: bool
    ) -> None:
        for i, m in enumerate(cfg.mappings):
            wanted: dict[str, str] = {}
            for c in cands:
                for v in c.values[i]:
                    x = v.strip()
                    if x:
                        low = x.lower()
                        wanted[low] = min(wanted.get(low, x), x)
            ordered = [wanted[k] for k in sorted(wanted)]
            for lid in cfg.lists:
                ft = types[lid][m.field]
                if ft.data_type not in MULTI:
                    continue
                have = {o.lower() for o in ft.options}
                new = [o for o in ordered if o.lower() not in have]
                if not new:
                    continue
                ft.options = [*ft.options, *new]
                ft.added = [*ft.added, *new]
                if create:
                    lst = self.cm.lists[lid]
                    f = lst.field(ft.name)
                    if f is None:
                        lst.fields.append(Field(ft.name, ft.data_type, list(new)))
                    else:
                        f.options = list(dict.fromkeys([*f.options, *new]))

    @staticmethod
    def _value(
        ft: Field, vals: list[str], skip: bool
    ) -> tuple[str | None, list[Entry], str | None]:
        """(error, entries, name) of one value written to one field."""
        label = f"field {ft.name}: "
        if ft.data_type == "Name":
            joined = "|".join(vals)
            err = label + "too long" if len(joined) > MAX_TEXT else None
            name = joined or None
            return err, [], (None if err and skip else name)
        canon = {o.lower(): o for o in reversed(ft.options)}
        clear: list[Entry] = [(ft.name, "", True)]
        if ft.data_type == "MultiSelectMany":
            bad = [x for x in vals if x.strip().lower() not in canon]
            good = [canon[x.strip().lower()] for x in vals if x.strip().lower() in canon]
            err = label + "not an option" if bad else None
            if err and not skip:
                return err, [], None
            return err, clear + [(ft.name, g, False) for g in good], None
        if ft.data_type in SINGLE:
            err = None
            if len(vals) > 1:
                err = label + "many values"
            elif len(vals) == 1:
                x = vals[0].strip()
                if ft.data_type == "Number":
                    try:
                        number = float(x)
                    except ValueError:
                        number = float("nan")
                    if number != number or number in (float("inf"), float("-inf")):
                        err = label + "not a number"
                    value = x
                else:
                    found = canon.get(x.lower())
                    err = label + "not an option" if found is None else None
                    value = found or ""
            if err:
                return err, [], None
            return None, clear if not vals else [(ft.name, value, False)], None
        joined = "|".join(vals)  # Text
        if len(joined) > MAX_TEXT:
            return label + "too long", [], None
        return None, clear if not vals else [(ft.name, joined, False)], None

    def plan(self, cfg: GoalCfg, *, create: bool, full: bool = False) -> list[Row]:
        """Every row of one goal's run; ``create`` makes the fields and options it needs (a
        run) instead of only assuming them (a preview)."""
        types = self._types(cfg, create)
        cands = self._candidates(cfg)
        if cfg.create_missing:
            self._add_options(cfg, types, cands, create)
        skip = cfg.invalid_values == "skip_field"
        rows: list[Row] = []
        for lid in cfg.lists:
            fp = (
                tuple(sorted((k, t.data_type, tuple(t.options)) for k, t in types[lid].items())),
                cfg.mappings,
            )
            for c in cands:
                row = Row(lid, c.pid, c.email, None)
                rows.append(row)
                if not c.consented:
                    row.outcome = "CONSENT_MISMATCH"
                    continue
                email_err = c.email is None or not EMAIL_RE.fullmatch(c.email) or c.dup_of
                results = [
                    self._value(types[lid][m.field], c.values[i], skip)
                    for i, m in enumerate(cfg.mappings)
                ]
                if email_err or (not skip and any(r[0] for r in results)):
                    row.outcome = "INVALID"
                    continue
                assert c.email is not None
                sig = (fp, cfg.resubscribe, c.email, tuple(tuple(v) for v in c.values))
                before = self.sent.get((cfg.goal, lid, c.pid))
                stale = any(
                    types[lid][m.field].needs(c.values[i]) for i, m in enumerate(cfg.mappings)
                )
                if not (full or stale) and before is not None and before[1] == sig:
                    row.outcome = "UNCHANGED"
                elif cfg.only_subscribed and not self.cm.active(lid, c.email):
                    row.outcome = "NOT_SUBSCRIBED"
                elif not cfg.resubscribe and self.cm.refusal(lid, c.email) is not None:
                    row.outcome = "SUPPRESSED"
                else:
                    row.action, row.sig = "send", sig
                    row.entries = [e for r in results for e in r[1]]
                    names = [r[2] for r in results if r[2] is not None]
                    row.name = names[-1] if names else None
        eligible = {c.pid for c in cands if c.consented}
        # Addresses a member that stays holds: a leaver with one only loses its state row.
        held = {
            (r.list_id, r.email.lower())
            for r in rows
            if r.email is not None and (r.action == "send" or r.outcome == "UNCHANGED")
        }
        for (goal, lid, pid), (email, _) in sorted(self.sent.items()):
            if goal != cfg.goal or lid not in cfg.lists or pid in eligible:
                continue
            row = Row(lid, pid, email, None, action="leave")
            if cfg.on_leave != "keep" and (lid, email.lower()) in held:
                row.action = "forget"
            elif cfg.on_leave == "clear" and (
                self.cm.active(lid, email) and self.cm.refusal(lid, email) is None
            ):
                row.action = "clear"
                row.entries = [(cfg.mappings[0].field, "", True)]
            rows.append(row)
        rows.sort(key=lambda r: (cfg.lists.index(r.list_id), r.pid))
        return rows

    @staticmethod
    def counts(rows: Iterable[Row]) -> dict[str, int]:
        out = dict.fromkeys(OUTCOMES, 0)
        for r in rows:
            out[r.outcome or ("EXPORTED" if r.action == "send" else "REMOVED")] += 1
        return out

    def preview(self, cfg: GoalCfg) -> dict[str, int]:
        return self.counts(self.plan(cfg, create=False))

    def run(self, cfg: GoalCfg, *, full: bool = False) -> dict[str, int]:
        """A complete run: imports list by list, then the leavers; returns the counts."""
        rows = self.plan(cfg, create=True, full=full)
        for r in rows:
            if r.action in ("send", "clear"):
                assert r.email is not None
                self.cm.import_row(r.list_id, r.email, r.name, r.entries)
                if r.action == "send":
                    assert r.sig is not None
                    self.sent[(cfg.goal, r.list_id, r.pid)] = (r.email, r.sig)
                else:
                    del self.sent[(cfg.goal, r.list_id, r.pid)]
        for r in rows:
            if r.action in ("leave", "forget"):
                assert r.email is not None
                if r.action == "leave" and cfg.on_leave == "unsubscribe":
                    self.cm.unsubscribe(r.list_id, r.email)
                elif r.action == "leave" and cfg.on_leave == "delete":
                    self.cm.delete(r.list_id, r.email)
                del self.sent[(cfg.goal, r.list_id, r.pid)]
        return self.counts(rows)
