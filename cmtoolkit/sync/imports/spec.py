"""What an import reads and writes: the connection's import section, resolved once against the
store's property names, and the targets (the properties it writes) derived from it once.

Stage and plan both work from one :class:`ImportSpec`: the stage hashes its fingerprint and reads
its targets' fields, the plan merges into its targets. Both must see the same names, so the
names are resolved before either runs (:meth:`ImportSpec.from_connection`).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass
from functools import cached_property
from typing import Literal

from cmtoolkit.connection.model import Connection
from cmtoolkit.errors import ConfigurationError
from cmtoolkit.profiles.properties import resolve

TargetKind = Literal["field", "list_names", "identifier", "consent"]

#: States in which a subscriber has left a list (DESIGN §5.6): read whatever ``states`` selects.
LEAVING_STATES: tuple[str, ...] = ("Unsubscribed", "Bounced", "Deleted")


@dataclass(frozen=True)
class Target:
    """One property the import writes: where its incoming values come from and the merge rule.

    ``alias`` names the target's columns in the temp tables (``in_<alias>``, ``new_<alias>``);
    property names reach SQL only through ``quote_ident`` and field names only as parameters.
    """

    alias: str
    property: str
    rule: str
    field: str | None  # a subscriber field; None for the pseudo-targets
    kind: TargetKind = "field"
    #: consent targets: the field value that grants (``when``) these objectives
    when: str | None = None
    grants: tuple[str, ...] = ()


@dataclass(frozen=True)
class ImportSpec:
    """The parts of a connection the import needs, property names spelled as the store has them.

    Build it with :meth:`from_connection`; constructing it directly takes the names as given.
    """

    connection: str  # the name, for messages
    client_id: str
    lists: tuple[str, ...]
    states: tuple[str, ...]
    allow_create: bool
    save_list_names_to: str | None
    identifiers: tuple[tuple[str, str], ...]  # (field, property), tried in order
    mappings: tuple[tuple[str, str, str], ...]  # (field, property, rule)
    objectives: tuple[str, ...]
    #: where the delta state is kept: the connection's id (its name before it has one)
    key: str = ""
    #: ``consent_from``: (field, objectives "Yes" grants, objectives "No" refuses)
    consent_from: tuple[str, tuple[str, ...], tuple[str, ...]] | None = None

    @property
    def state_key(self) -> str:
        return self.key or self.connection

    @property
    def read_states(self) -> tuple[str, ...]:
        """The states read: the selected ones, then the leaving ones not selected (leavers)."""
        return self.states + self.leaver_states

    @property
    def leaver_states(self) -> tuple[str, ...]:
        """The leaving states not selected: read only for their leavers (DESIGN §5.6)."""
        return tuple(s for s in LEAVING_STATES if s not in self.states)

    @property
    def leaver_settings(self) -> str:
        """What a list's leaver cursor holds for: the settings that decide a leaver's effect
        (the fingerprint) and which states are leavers. Other settings read leavers in full."""
        return hashlib.md5(json.dumps([self.fingerprint, self.states]).encode()).hexdigest()

    @property
    def sum_targets(self) -> tuple[Target, ...]:
        return tuple(t for t in self.targets if t.rule == "sum" and t.kind == "field")

    @classmethod
    def from_connection(cls, connection: Connection, properties: Mapping[str, str]) -> ImportSpec:
        """The connection's import section, each property name resolved against
        ``properties`` (the store's, name → type): DuckDB columns fold case, and the delta hash
        covers the names, so they are spelled as defined."""
        goal = connection.import_
        if goal is None:
            raise ConfigurationError(f"connection {connection.name!r} has no import section")
        client_id = connection.campaign_monitor.client_id
        if client_id is None:
            raise ConfigurationError(
                f"connection {connection.name!r} names no Campaign Monitor client: set "
                "campaign_monitor.client_id"
            )

        defined = dict(properties)

        def canon(name: str) -> str:
            return resolve(defined, name) or name

        return cls(
            connection=connection.name,
            client_id=client_id,
            lists=tuple(goal.lists),
            states=tuple(goal.states),
            allow_create=bool(goal.allow_create),
            save_list_names_to=canon(goal.save_list_names_to) if goal.save_list_names_to else None,
            identifiers=tuple((i.field, canon(i.property)) for i in goal.identifiers),
            mappings=tuple((m.field, canon(m.property), m.rule) for m in goal.mappings),
            objectives=tuple(connection.objectives or ()),
            key=connection.state_key,
            consent_from=(
                (goal.consent_from.field, goal.consent_from.yes, goal.consent_from.no)
                if goal.consent_from
                else None
            ),
        )

    @property
    def fingerprint(self) -> str:
        """Changes when the configuration that shapes a contact's effect changes.

        Part of every stored delta hash: its format must never change.
        """
        doc: list[object] = [
            self.identifiers,
            self.mappings,
            self.save_list_names_to,
            self.allow_create,
        ]
        if self.consent_from:  # appended only when set: older hashes stay valid
            doc.append(self.consent_from)
        return hashlib.md5(json.dumps(doc).encode()).hexdigest()

    @cached_property
    def targets(self) -> tuple[Target, ...]:
        """Every property the import writes: the mappings, then consent_from's objectives, the
        list names, then the identifiers a created profile gets (unless a mapping already writes
        that property)."""
        targets = [
            Target(f"t{i}", prop, rule, field)
            for i, (field, prop, rule) in enumerate(self.mappings)
        ]
        mapped = {t.property for t in targets}
        if self.consent_from:
            field, yes, no = self.consent_from
            for alias, prop, when, grants in (
                ("tcy", "consented_objectives", "Yes", yes),
                ("tcn", "refused_objectives", "No", no),
            ):
                if grants and prop not in mapped:
                    targets.append(Target(alias, prop, "add", field, "consent", when, grants))
                    mapped.add(prop)
        if self.save_list_names_to and self.save_list_names_to not in mapped:
            targets.append(Target("tl", self.save_list_names_to, "add", None, "list_names"))
            mapped.add(self.save_list_names_to)
        for j, (_, prop) in enumerate(self.identifiers):
            if prop not in mapped:
                targets.append(Target(f"ti{j}", prop, "set_if_empty", None, "identifier"))
                mapped.add(prop)
        return tuple(targets)
