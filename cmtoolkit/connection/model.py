"""The connection file (DESIGN §4) as immutable, typed values.

The model holds names and references only: a credential is a *reference* (a store name or
``env:VARNAME``), checked on construction, so a ``Connection`` cannot carry a secret into a file,
a repr or a notebook. Reading and validating the YAML is :mod:`cmtoolkit.connection.parsing`.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from cmtoolkit.campaign_monitor.concurrency import DEFAULT_MAX_IN_FLIGHT, MAX_IN_FLIGHT
from cmtoolkit.connection.activity import EmailActivity
from cmtoolkit.credentials import credential_reference_problem

RULES: tuple[str, ...] = ("set", "set_if_empty", "add", "sum")
CONSENT_TO_TRACK: tuple[str, ...] = ("Yes", "No", "Unchanged")
ON_LEAVE: tuple[str, ...] = ("keep", "unsubscribe", "delete")
INVALID_VALUES: tuple[str, ...] = ("skip_field", "skip_row")
#: Runs of a connection whose row-level ledger detail is kept (DESIGN §7 history.keep_runs).
KEEP_RUNS = 30
VALUE_TYPES: tuple[str, ...] = ("profile_id", "segments", "interactions", "property")

ID_RE = re.compile(r"^[0-9a-fA-F]{32}$")
#: A connection's own id (DESIGN §4): written into its file on first use, 8 hex digits.
CONNECTION_ID_RE = re.compile(r"^[0-9a-f]{8,32}$")


@dataclass(frozen=True)
class CampaignMonitorSettings:
    """Which credential to use and which Campaign Monitor client the lists belong to."""

    credential: str = "default"
    client_id: str | None = None
    #: Requests kept in flight at once (DESIGN §9); 1 sends them one at a time.
    max_in_flight: int = DEFAULT_MAX_IN_FLIGHT

    def __post_init__(self) -> None:
        problem = credential_reference_problem(self.credential)
        if problem:
            raise ValueError(f"campaign_monitor.credential: {problem}")
        if not 1 <= self.max_in_flight <= MAX_IN_FLIGHT:
            raise ValueError(f"campaign_monitor.max_in_flight: between 1 and {MAX_IN_FLIGHT}")


@dataclass(frozen=True)
class Identifier:
    """Links a Campaign Monitor field to the profile property that identifies a profile."""

    field: str
    property: str


@dataclass(frozen=True)
class ImportMapping:
    field: str
    property: str
    rule: str = "set"


@dataclass(frozen=True)
class ConsentFrom:
    """``import.consent_from``: a field value that consents to (``yes``) or refuses (``no``)
    objectives, e.g. ``{field: ConsentToTrack, "Yes": [email_marketing]}`` (DESIGN §5.3)."""

    field: str
    yes: tuple[str, ...] = ()
    no: tuple[str, ...] = ()


@dataclass(frozen=True)
class ImportGoal:
    lists: tuple[str, ...]
    identifiers: tuple[Identifier, ...]
    states: tuple[str, ...] = ("Active",)
    allow_create: bool = False
    save_list_names_to: str | None = None
    mappings: tuple[ImportMapping, ...] = ()
    consent_from: ConsentFrom | None = None
    email_activity: EmailActivity | None = None  # DESIGN §6a


@dataclass(frozen=True)
class ExportMapping:
    """One exported value: ``value`` says what (``property`` needs the property's name)."""

    value: str
    field: str
    property: str | None = None


@dataclass(frozen=True)
class ExportGoal:
    lists: tuple[str, ...]
    segment: str | None = None
    match_property: str | None = None
    consent_to_track: str = "Unchanged"
    resubscribe: bool = False
    on_leave: str = "keep"
    mappings: tuple[ExportMapping, ...] = ()
    create_missing: bool = False  # create missing custom fields and MultiSelect options
    invalid_values: str = "skip_field"  # skip_field | skip_row
    restart_autoresponders: bool = False


@dataclass(frozen=True)
class TargetingGoal:
    lists: tuple[str, ...]
    segments: tuple[str, ...] = ()
    field: str = "Segments"


@dataclass(frozen=True)
class Connection:
    """One ``connections/<slug>.yaml`` file."""

    name: str
    campaign_monitor: CampaignMonitorSettings = field(default_factory=CampaignMonitorSettings)
    #: Stable identity (DESIGN §4): run state is kept under it, so a rename keeps it. None
    #: until first use writes one into the file (:func:`cmtoolkit.connection.file.ensure_id`).
    id: str | None = None
    enabled: bool = True
    objectives: tuple[str, ...] = ()
    schedule: str | None = None
    import_: ImportGoal | None = None
    export: ExportGoal | None = None
    targeting: TargetingGoal | None = None
    #: Alert settings as written; :mod:`cmtoolkit.batch.alerts` validates them.
    alerts: dict[str, object] | None = field(default=None, hash=False)
    #: history.keep_runs: runs whose ledger rows are kept (counts are kept forever).
    keep_runs: int = KEEP_RUNS

    @property
    def state_key(self) -> str:
        """What the import's delta state is kept under: the id, or the name before it has one."""
        return self.id or self.name

    @property
    def goals(self) -> tuple[str, ...]:
        """The configured goals, in file order (``import``, ``export``, ``targeting``)."""
        present = (("import", self.import_), ("export", self.export), ("targeting", self.targeting))
        return tuple(name for name, goal in present if goal is not None)

    def to_dict(self) -> dict[str, object]:
        """Plain data in the key order of DESIGN §4 (what :func:`save_connection` writes)."""
        data: dict[str, object] = {"name": self.name}
        if self.id is not None:
            data["id"] = self.id
        data["enabled"] = self.enabled
        cm: dict[str, object] = {"credential": self.campaign_monitor.credential}
        if self.campaign_monitor.client_id is not None:
            cm["client_id"] = self.campaign_monitor.client_id
        if self.campaign_monitor.max_in_flight != DEFAULT_MAX_IN_FLIGHT:
            cm["max_in_flight"] = self.campaign_monitor.max_in_flight
        data["campaign_monitor"] = cm
        if self.objectives:
            data["objectives"] = list(self.objectives)
        if self.schedule is not None:
            data["schedule"] = self.schedule
        if self.import_ is not None:
            data["import"] = _import_to_dict(self.import_)
        if self.export is not None:
            data["export"] = _export_to_dict(self.export)
        if self.targeting is not None:
            t = self.targeting
            data["targeting"] = {
                "lists": list(t.lists),
                "field": t.field,
                "segments": list(t.segments),
            }
        if self.alerts is not None:
            data["alerts"] = self.alerts
        if self.keep_runs != KEEP_RUNS:
            data["history"] = {"keep_runs": self.keep_runs}
        return data


def _import_to_dict(g: ImportGoal) -> dict[str, object]:
    data: dict[str, object] = {
        "lists": list(g.lists),
        "states": list(g.states),
        "allow_create": g.allow_create,
    }
    if g.save_list_names_to is not None:
        data["save_list_names_to"] = g.save_list_names_to
    data["identifiers"] = [{"field": i.field, "property": i.property} for i in g.identifiers]
    data["mappings"] = [
        {"field": m.field, "property": m.property, "rule": m.rule} for m in g.mappings
    ]
    if g.consent_from is not None:
        c = g.consent_from
        data["consent_from"] = {"field": c.field, "Yes": list(c.yes), "No": list(c.no)}
    if g.email_activity is not None:
        data["email_activity"] = g.email_activity.to_dict()
    return data


def _export_to_dict(g: ExportGoal) -> dict[str, object]:
    data: dict[str, object] = {}
    if g.segment is not None:
        data["segment"] = g.segment
    data["lists"] = list(g.lists)
    if g.match_property is not None:
        data["match_property"] = g.match_property
    data["consent_to_track"] = g.consent_to_track
    data["resubscribe"] = g.resubscribe
    data["on_leave"] = g.on_leave
    if g.create_missing:
        data["create_missing"] = True
    if g.invalid_values != "skip_field":
        data["invalid_values"] = g.invalid_values
    if g.restart_autoresponders:
        data["restart_autoresponders"] = True
    mappings = []
    for m in g.mappings:
        item: dict[str, object] = {"value": m.value}
        if m.property is not None:
            item["property"] = m.property
        item["field"] = m.field
        mappings.append(item)
    data["mappings"] = mappings
    return data
