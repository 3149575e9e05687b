"""A reference model of the import's semantics (DESIGN §5), in plain Python: no SQL, no DuckDB.

It is written to be read against DESIGN §5 line by line, not to be fast: a run is a loop over
contacts, then a loop over profiles. ``test_import_model.py`` drives it and the real import with
the same Campaign Monitor account, store and connection, and compares the stores after every step.

Campaign Monitor is the *input* (the test reads the account's subscribers and hands them over);
what the model owns is the store's profiles and what a connection remembers between runs.
"""

from __future__ import annotations

import hashlib
import unicodedata
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation

LEAVING = ("Unsubscribed", "Bounced", "Deleted")
ZERO_WIDTH = dict.fromkeys(map(ord, "\u200b\u200c\u200d\u2060\ufeff"))
APPLIED = ("CREATED", "MODIFIED", "UNCHANGED")


@dataclass(frozen=True)
class Sub:
    """One subscriber of one list, as Campaign Monitor returns it."""

    email: str
    name: str
    state: str
    consent: str  # ConsentToTrack: Yes / No / Unchanged
    fields: tuple[tuple[str, tuple[str, ...]], ...]  # custom field -> values, CM's order

    def values(self, name: str) -> list[str]:
        """A field's incoming values: empty strings dropped (DESIGN §5.4)."""
        standard = {
            "EmailAddress": self.email,
            "Name": self.name,
            "State": self.state,
            "ConsentToTrack": self.consent,
        }
        if name in standard:
            v = standard[name]
            return [v] if v.strip(" ") else []
        return [v for f, vs in self.fields if f == name for v in vs if v.strip(" ")]


@dataclass(frozen=True)
class Config:
    """The parts of a connection the import reads."""

    id: str
    lists: tuple[str, ...]
    states: tuple[str, ...]
    allow_create: bool
    save_list_names_to: str | None
    identifiers: tuple[tuple[str, str], ...]
    mappings: tuple[tuple[str, str, str], ...]
    objectives: tuple[str, ...] = ()
    consent_from: tuple[str, tuple[str, ...], tuple[str, ...]] | None = None

    def fingerprint(self) -> tuple[object, ...]:
        """What a contact's 'settings unchanged' means (DESIGN §5.5)."""
        return (
            self.identifiers,
            self.mappings,
            self.save_list_names_to,
            self.allow_create,
            self.consent_from,
        )


@dataclass
class Memory:
    """What one connection id remembers: per (list, subscriber) the contact last applied, and per
    (list, subscriber, field, property) the value last summed."""

    seen: dict[tuple[str, str], object] = field(default_factory=dict)
    summed: dict[tuple[str, str, str, str], str] = field(default_factory=dict)


def email_key(value: str) -> str:
    return unicodedata.normalize("NFC", value).translate(ZERO_WIDTH).strip(" ").lower()


def text_key(value: str) -> str:
    return unicodedata.normalize("NFC", value.strip(" "))


def new_profile_id(prop: str, identifier: str) -> str:
    """How the import names a created profile (docs/import.md): stable across re-runs."""
    return "cm-" + hashlib.md5(f"{prop}\x1f{identifier}".encode()).hexdigest()[:24]


def is_number(value: str) -> bool:
    try:
        float(value.strip())
    except ValueError:
        return False
    return True


def as_decimal(value: str) -> Decimal | None:
    try:
        return Decimal(value.strip())
    except InvalidOperation:
        return None


def decimal_text(d: Decimal) -> str:
    text = format(d.quantize(Decimal("0.000000001")), "f")
    return text.rstrip("0").rstrip(".") if "." in text else text


@dataclass
class Contact:
    list_index: int
    list_id: str
    list_name: str
    sub: Sub
    outcome: str | None = None
    profile: str | None = None
    is_new: bool = False
    notes: list[str] = field(default_factory=list)
    incoming: dict[str, list[str]] = field(default_factory=dict)  # property -> values
    removed: list[str] = field(default_factory=list)  # list names left
    to_sum: dict[tuple[str, str], str] = field(default_factory=dict)  # (field, prop) -> text
    signature: object = None

    @property
    def leaving(self) -> bool:
        return self.sub.state in LEAVING


class ImportModel:
    """The store's profiles plus each connection's memory; :meth:`run` applies DESIGN §5."""

    def __init__(self, profiles: dict[str, dict[str, list[str]]], types: dict[str, str]) -> None:
        self.profiles = profiles
        self.types = types
        self.memory: dict[str, Memory] = {}

    def run(
        self,
        cfg: Config,
        account: dict[str, tuple[str, list[Sub]]],  # list id -> (name, subscribers)
        *,
        full: bool = False,
        write: bool = True,
    ) -> dict[str, int]:
        """One import; returns its counts. ``write=False`` is a preview: nothing changes."""
        mem = self.memory.setdefault(cfg.id, Memory())
        before = {pid: {k: list(v) for k, v in p.items()} for pid, p in self.profiles.items()}
        contacts = self._read(cfg, account, mem)
        for c in contacts:
            self._decide(cfg, c, mem, before, full)
        self._consent_existing(cfg, contacts, before)
        result = self._merge(cfg, contacts, before)
        self._consent_new(cfg, contacts, result)
        counts = dict.fromkeys(
            (*APPLIED, "NO_IDENTIFIER", "NOT_FOUND", "AMBIGUOUS", "CONSENT_MISMATCH", "INVALID"),
            0,
        )
        for c in contacts:
            if c.outcome is None:  # merged: created, modified or already current
                new, old = result[c.profile or ""], before.get(c.profile or "")
                c.outcome = "CREATED" if c.is_new else ("MODIFIED" if new != old else "UNCHANGED")
            counts[c.outcome] += 1
        if write:
            self._write(cfg, contacts, result, mem)
        return counts

    # --- reading ---------------------------------------------------------------------------------

    def _read(
        self, cfg: Config, account: dict[str, tuple[str, list[Sub]]], mem: Memory
    ) -> list[Contact]:
        """Every subscriber of the selected lists in list order, the selected states first, then
        the leavers this connection applied from that list before (DESIGN §5.6)."""
        order = cfg.states + tuple(s for s in LEAVING if s not in cfg.states)
        contacts = []
        for i, list_id in enumerate(cfg.lists):
            name, subs = account[list_id]
            for state in order:
                for sub in sorted((s for s in subs if s.state == state), key=lambda s: s.email):
                    known = (list_id, email_key(sub.email)) in mem.seen
                    if state in cfg.states or known:
                        contacts.append(Contact(i, list_id, name, sub))
        return contacts

    def _signature(self, cfg: Config, c: Contact) -> object:
        read = {f for f, _ in cfg.identifiers} | {m[0] for m in cfg.mappings}
        if cfg.consent_from:
            read.add(cfg.consent_from[0])
        return (
            cfg.fingerprint(),
            c.list_name if cfg.save_list_names_to else None,
            tuple(sorted((f, tuple(c.sub.values(f))) for f in read)),
            c.sub.state if c.leaving else None,
        )

    # --- per contact -----------------------------------------------------------------------------

    def _decide(
        self,
        cfg: Config,
        c: Contact,
        mem: Memory,
        store: dict[str, dict[str, list[str]]],
        full: bool,
    ) -> None:
        selected = c.sub.state in cfg.states
        keys = []  # (rule index, key, stored value) of the rules that apply (DESIGN §5.1)
        for r, (f, _) in enumerate(cfg.identifiers):
            values = c.sub.values(f)
            if values:
                raw = values[0]
                if f == "EmailAddress":
                    key, kept = email_key(raw), unicodedata.normalize("NFC", raw)
                    kept = kept.translate(ZERO_WIDTH).strip(" ")
                else:
                    key = kept = text_key(raw)
                if key:
                    keys.append((r, key, kept))
        c.signature = self._signature(cfg, c)
        if not keys:
            c.outcome = "NO_IDENTIFIER"
            return
        if not full and mem.seen.get((c.list_id, email_key(c.sub.email))) == c.signature:
            c.outcome = "UNCHANGED"  # the delta: values and settings as last applied
            return
        for r, key, _ in keys:  # DESIGN §5.2: in order, first rule matching anyone decides
            f, prop = cfg.identifiers[r]
            norm = email_key if f == "EmailAddress" else text_key
            holders = [pid for pid, p in store.items() if key in map(norm, p.get(prop, []))]
            if len(holders) > 1:
                c.outcome = "AMBIGUOUS"
                return
            if holders:
                c.profile = holders[0]
                break
        else:
            if not selected:
                c.outcome = "UNCHANGED"  # a leaver no profile holds: nothing to take away
                return
            if not cfg.allow_create:
                c.outcome = "NOT_FOUND"
                return
            r0, key0, _ = keys[0]
            c.profile, c.is_new = new_profile_id(cfg.identifiers[r0][1], key0), True
            for r, _, kept in keys:  # every applying rule's identifier property
                c.incoming.setdefault(cfg.identifiers[r][1], [kept])
        self._incoming(cfg, c, mem, selected)

    def _incoming(self, cfg: Config, c: Contact, mem: Memory, selected: bool) -> None:
        subscriber = email_key(c.sub.email)
        for f, prop, rule in cfg.mappings:
            if not selected and f != "State":
                continue  # a leaver outside `states` brings only its state and list
            values = c.sub.values(f)
            if rule == "sum":
                text = "\x1f".join(values)
                if values and mem.summed.get((c.list_id, subscriber, f, prop)) == text:
                    values = []  # summed once already (DESIGN §5.5)
                elif values:
                    c.to_sum[(f, prop)] = text
            elif self.types.get(prop) == "number" and any(not is_number(v) for v in values):
                bad = next(v for v in values if not is_number(v))
                c.notes.append(f"{f} skipped: not a valid number for property {prop}: {bad}")
                values = []
            c.incoming[prop] = c.incoming.get(prop, []) + values
        if cfg.consent_from and selected:
            f, yes, no = cfg.consent_from
            got = c.sub.values(f)
            if "Yes" in got and yes:
                c.incoming["consented_objectives"] = list(yes)
            if "No" in got and no:
                c.incoming["refused_objectives"] = list(no)
        if cfg.save_list_names_to:
            if c.leaving:
                c.removed.append(c.list_name)
            else:
                c.incoming.setdefault(cfg.save_list_names_to, []).append(c.list_name)

    # --- consent ---------------------------------------------------------------------------------

    @staticmethod
    def _consents(p: dict[str, list[str]], objectives: tuple[str, ...]) -> bool:
        yes, no = p.get("consented_objectives", []), p.get("refused_objectives", [])
        return any(o in yes and o not in no for o in objectives)

    def _consent_existing(
        self, cfg: Config, contacts: list[Contact], store: dict[str, dict[str, list[str]]]
    ) -> None:
        if not cfg.objectives:
            return
        for c in contacts:
            if c.outcome is None and not c.is_new:
                grants = {
                    "consented_objectives": c.incoming.get("consented_objectives", []),
                    "refused_objectives": c.incoming.get("refused_objectives", []),
                }
                if not self._consents(store[c.profile or ""], cfg.objectives) and not (
                    self._consents(grants, cfg.objectives)
                ):
                    c.outcome = "CONSENT_MISMATCH"

    def _consent_new(
        self, cfg: Config, contacts: list[Contact], result: dict[str, dict[str, list[str]]]
    ) -> None:
        if not cfg.objectives:
            return
        refused = {
            pid
            for pid in {c.profile for c in contacts if c.outcome is None and c.is_new}
            if pid and not self._consents(result[pid], cfg.objectives)
        }
        for c in contacts:
            if c.outcome is None and c.profile in refused:
                c.outcome = "CONSENT_MISMATCH"
        for pid in refused:
            del result[pid]

    # --- merge (DESIGN §5.4) ---------------------------------------------------------------------

    def _rules(self, cfg: Config) -> dict[str, str]:
        rules = {prop: rule for _, prop, rule in cfg.mappings}
        for prop in ("consented_objectives", "refused_objectives"):
            rules.setdefault(prop, "add")
        if cfg.save_list_names_to:
            rules.setdefault(cfg.save_list_names_to, "lists")
        for _, prop in cfg.identifiers:
            rules.setdefault(prop, "set_if_empty")
        return rules

    def _merge(
        self, cfg: Config, contacts: list[Contact], store: dict[str, dict[str, list[str]]]
    ) -> dict[str, dict[str, list[str]]]:
        """Per profile, its contacts in list order: set (last wins), set_if_empty (first), add
        (union), sum (total); list names added, and taken away for lists left."""
        rules = self._rules(cfg)
        result: dict[str, dict[str, list[str]]] = {}
        by_profile: dict[str, list[Contact]] = {}
        for c in contacts:
            if c.outcome is None and c.profile:
                by_profile.setdefault(c.profile, []).append(c)
        for pid, group in by_profile.items():
            group.sort(key=lambda c: c.list_index)  # stable: read order within a list
            old = {} if group[0].is_new else store[pid]
            new = {k: list(v) for k, v in old.items()}
            for prop, rule in rules.items():
                incoming = [v for c in group for v in c.incoming.get(prop, [])]
                per_contact = [c.incoming.get(prop, []) for c in group]
                current = new.get(prop, [])
                if rule == "set":
                    filled = [vs for vs in per_contact if vs]
                    if filled:
                        current = list(dict.fromkeys(filled[-1]))
                elif rule == "set_if_empty":
                    filled = [vs for vs in per_contact if vs]
                    if not current and filled:
                        current = list(dict.fromkeys(filled[0]))
                elif rule == "add":
                    current = current + [v for v in dict.fromkeys(incoming) if v not in current]
                elif rule == "lists":
                    gone = {n for c in group for n in c.removed} - set(incoming)
                    kept = [v for v in current if v not in gone]
                    current = kept + [v for v in dict.fromkeys(incoming) if v not in kept]
                elif rule == "sum" and incoming:
                    numbers = [as_decimal(v) for v in current + incoming]
                    if len(current) <= 1 and all(n is not None for n in numbers):
                        current = [decimal_text(sum(n for n in numbers if n is not None))]
                    else:
                        for c in group:
                            for key in [k for k in c.to_sum if k[1] == prop]:
                                del c.to_sum[key]  # not summed, so not remembered
                new[prop] = current
            result[pid] = {k: v for k, v in new.items() if v}
        return result

    # --- write -----------------------------------------------------------------------------------

    def _write(
        self,
        cfg: Config,
        contacts: list[Contact],
        result: dict[str, dict[str, list[str]]],
        mem: Memory,
    ) -> None:
        for pid, props in result.items():
            self.profiles[pid] = props
        for c in contacts:
            subscriber = email_key(c.sub.email)
            if c.outcome in APPLIED and c.signature is not None:
                mem.seen[(c.list_id, subscriber)] = c.signature
            if c.outcome in APPLIED:
                for (f, prop), text in c.to_sum.items():
                    mem.summed[(c.list_id, subscriber, f, prop)] = text
