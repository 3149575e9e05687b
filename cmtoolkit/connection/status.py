"""Connection status: BlueConic's status indicator, as data.

:func:`connection_status` checks a :class:`~cmtoolkit.connection.model.Connection` offline and,
when given a Campaign Monitor client and/or a profile store, live. Every problem names the key of
the connection file it is about and says what to change. A goal is *ready* when it is configured
and no error concerns it (or the connection as a whole).

Only the small protocols below are used, so any client or store with these methods will do.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Protocol

from cmtoolkit.campaign_monitor.fields import STANDARD_FIELDS, WRITABLE_STANDARD_FIELDS
from cmtoolkit.connection import export_status
from cmtoolkit.connection.model import Connection
from cmtoolkit.errors import AuthenticationError, CmToolkitError, PermissionDenied

GOALS = ("import", "export", "targeting")


class ClientRecord(Protocol):
    @property
    def client_id(self) -> str: ...

    @property
    def name(self) -> str: ...


class ListRecord(Protocol):
    @property
    def list_id(self) -> str: ...

    @property
    def name(self) -> str: ...


class FieldRecord(Protocol):
    @property
    def field_name(self) -> str: ...

    @property
    def data_type(self) -> str: ...


#: A raw API item (``ClientID``, ``ListID``, ...), for clients that return plain JSON.
Item = Mapping[str, object]


class CampaignMonitorClient(Protocol):
    """What status needs from the Campaign Monitor client."""

    def clients(self) -> Sequence[ClientRecord | Item]: ...

    def lists(self, client_id: str) -> Sequence[ListRecord | Item]: ...

    def custom_fields(self, list_id: str) -> Sequence[FieldRecord | Item]: ...


class ProfileStore(Protocol):
    """What status needs from the profile store."""

    def properties(self) -> Mapping[str, str]: ...  # property name -> type

    def segment_names(self) -> Sequence[str]: ...


@dataclass(frozen=True)
class Problem:
    """One error or warning; ``key`` is the connection-file key path it is about."""

    key: str
    message: str

    def __str__(self) -> str:
        return f"{self.key or 'connection'}: {self.message}"


@dataclass
class Status:
    errors: list[Problem] = field(default_factory=list)
    warnings: list[Problem] = field(default_factory=list)
    import_ready: bool = False
    export_ready: bool = False
    targeting_ready: bool = False
    #: Which live checks ran: ``campaign_monitor`` and/or ``store``.
    checked: tuple[str, ...] = ()

    @property
    def ok(self) -> bool:
        return not self.errors

    def to_dict(self) -> dict[str, object]:
        return {
            "ok": self.ok,
            "import_ready": self.import_ready,
            "export_ready": self.export_ready,
            "targeting_ready": self.targeting_ready,
            "checked": list(self.checked),
            "errors": [{"key": p.key, "message": p.message} for p in self.errors],
            "warnings": [{"key": p.key, "message": p.message} for p in self.warnings],
        }


class _Checks:
    def __init__(self) -> None:
        self.errors: list[Problem] = []
        self.warnings: list[Problem] = []

    def error(self, key: str, message: str) -> None:
        self.errors.append(Problem(key, message))

    def warn(self, key: str, message: str) -> None:
        self.warnings.append(Problem(key, message))


def connection_status(
    conn: Connection,
    *,
    client: CampaignMonitorClient | None = None,
    store: ProfileStore | None = None,
) -> Status:
    """Errors, warnings and per-goal readiness of ``conn``."""
    checks = _Checks()
    _offline(conn, checks)
    checked: list[str] = []
    if client is not None:
        checked.append("campaign_monitor")
        _live_campaign_monitor(conn, client, checks)
    if store is not None:
        checked.append("store")
        _live_store(conn, store, checks)
    ready = {goal: _ready(conn, goal, checks.errors) for goal in GOALS}
    return Status(
        errors=checks.errors,
        warnings=checks.warnings,
        import_ready=ready["import"],
        export_ready=ready["export"],
        targeting_ready=ready["targeting"],
        checked=tuple(checked),
    )


def _ready(conn: Connection, goal: str, errors: Iterable[Problem]) -> bool:
    if goal not in conn.goals:
        return False
    for problem in errors:
        scope = problem.key.split(".", 1)[0].split("[", 1)[0]
        if scope == goal or scope not in GOALS:
            return False
    return True


# --- offline -----------------------------------------------------------------------------------


def _offline(conn: Connection, c: _Checks) -> None:
    if not conn.goals:
        c.error(
            "",
            "no goal: add an 'import', 'export' or 'targeting' section so the connection "
            "has something to do",
        )
    if not conn.enabled:
        c.warn("enabled", "the connection is switched off: set 'enabled: true' to let it run")
    if conn.campaign_monitor.client_id is None:
        c.error(
            "campaign_monitor.client_id",
            "no Campaign Monitor client selected: set 'client_id' (see 'cmtoolkit auth status' "
            "for the clients your credential can see)",
        )
    if conn.import_ is not None:
        imp = conn.import_
        if not imp.lists:
            c.error("import.lists", "select at least one Campaign Monitor list to import from")
        if imp.email_activity is not None and not any(
            i.field == "EmailAddress" for i in imp.identifiers
        ):
            c.error(
                "import.email_activity",
                "email behaviour is matched to profiles by email address: add an identifier "
                "{field: EmailAddress, property: email}",
            )
        quiet = imp.email_activity is None  # reading email behaviour changes profiles too
        if quiet and not imp.mappings and imp.save_list_names_to is None and not imp.allow_create:
            c.warn(
                "import.mappings",
                "no mappings, no list names and no profile creation: the import changes "
                "nothing; add a mapping",
            )
    if conn.export is not None:
        exp = conn.export
        if exp.segment is None:
            c.error("export.segment", "select the segment whose profiles are exported")
        if not exp.lists:
            c.error("export.lists", "select at least one Campaign Monitor list to export to")
        if exp.match_property is None:
            c.error(
                "export.match_property",
                "set the profile property that holds the email address (e.g. email)",
            )
        for i, m in enumerate(exp.mappings):
            if m.field in STANDARD_FIELDS and m.field not in WRITABLE_STANDARD_FIELDS:
                c.error(
                    f"export.mappings[{i}].field",
                    f"Campaign Monitor does not let an export write {m.field!r}; map to Name, "
                    "MobileNumber or a custom field",
                )
    if conn.targeting is not None:
        tgt = conn.targeting
        if not tgt.lists:
            c.error("targeting.lists", "select at least one Campaign Monitor list to tag")
        if not tgt.segments:
            c.error("targeting.segments", "select at least one segment to expose")
        if tgt.field in STANDARD_FIELDS:
            c.error(
                "targeting.field",
                f"{tgt.field!r} is a standard field; targeting needs a custom field "
                "(e.g. Segments)",
            )


# --- live: Campaign Monitor --------------------------------------------------------------------


def _live_campaign_monitor(conn: Connection, client: CampaignMonitorClient, c: _Checks) -> None:
    credential = conn.campaign_monitor.credential
    try:
        clients = list(client.clients())
    except AuthenticationError:
        if credential.startswith("env:"):  # not a store name: 'auth login' cannot fix it
            fix = (
                f"check the API key in ${credential[4:]}, or store a working one with "
                "'cmtoolkit auth login --credential NAME' and use that NAME"
            )
        else:
            fix = f"log in again with 'cmtoolkit auth login --credential {credential}'"
        c.error(
            "campaign_monitor.credential",
            f"Campaign Monitor refused credential {credential!r}: {fix}",
        )
        return
    except PermissionDenied:
        clients = None  # a client-level key cannot list clients; go on with the lists
    except CmToolkitError as exc:
        c.error(
            "campaign_monitor",
            f"could not reach Campaign Monitor ({type(exc).__name__}: {exc}); check the network or "
            "CMTOOLKIT_API_URL and try again",
        )
        return
    client_id = conn.campaign_monitor.client_id
    if client_id is None:
        return
    if clients is not None:
        known = {_attr(x, "client_id", "ClientID"): _attr(x, "name", "Name") for x in clients}
        if client_id not in known:
            names = ", ".join(f"{n} ({i})" for i, n in known.items()) or "none"
            c.error(
                "campaign_monitor.client_id",
                f"client {client_id} is not visible to credential {credential!r}; "
                f"pick one of: {names}",
            )
            return
    try:
        lists = {
            _attr(x, "list_id", "ListID"): _attr(x, "name", "Name") for x in client.lists(client_id)
        }
    except CmToolkitError as exc:
        c.error(
            "campaign_monitor.client_id",
            f"could not read the lists of client {client_id} ({type(exc).__name__}); check the "
            "client id and the credential's permissions",
        )
        return
    fields_cache: dict[str, dict[str, FieldRecord | Item] | None] = {}

    def fields_of(list_id: str) -> dict[str, FieldRecord | Item] | None:
        if list_id not in fields_cache:
            try:
                fields_cache[list_id] = {
                    _attr(f, "field_name", "FieldName"): f for f in client.custom_fields(list_id)
                }
            except CmToolkitError:
                fields_cache[list_id] = None
        return fields_cache[list_id]

    for goal_name, goal in (
        ("import", conn.import_),
        ("export", conn.export),
        ("targeting", conn.targeting),
    ):
        if goal is None:
            continue
        for i, list_id in enumerate(goal.lists):
            if list_id not in lists:
                c.error(
                    f"{goal_name}.lists[{i}]",
                    f"list {list_id} does not exist in client {client_id}; pick one of: "
                    + (", ".join(f"{n} ({k})" for k, n in lists.items()) or "none"),
                )
                continue
            fields = fields_of(list_id)
            if fields is None:
                c.error(
                    f"{goal_name}.lists[{i}]",
                    f"could not read the custom fields of list {lists[list_id]!r}; check the "
                    "credential's permissions",
                )
                continue
            _check_fields(conn, goal_name, lists[list_id], fields, c)


def _check_fields(
    conn: Connection,
    goal_name: str,
    list_name: str,
    fields: Mapping[str, FieldRecord | Item],
    c: _Checks,
) -> None:
    def missing(key: str, name: str) -> None:
        c.error(
            key,
            f"field {name!r} does not exist on list {list_name!r}; create the custom field in "
            "Campaign Monitor or map another field (known: "
            + ", ".join([*STANDARD_FIELDS, *fields])
            + ")",
        )

    if goal_name == "import" and conn.import_ is not None:
        for i, ident in enumerate(conn.import_.identifiers):
            if ident.field not in STANDARD_FIELDS and ident.field not in fields:
                missing(f"import.identifiers[{i}].field", ident.field)
        for i, m in enumerate(conn.import_.mappings):
            if m.field not in STANDARD_FIELDS and m.field not in fields:
                missing(f"import.mappings[{i}].field", m.field)
            elif m.rule == "sum" and m.field in fields:
                data_type = _attr(fields[m.field], "data_type", "DataType")
                if data_type != "Number":
                    c.warn(
                        f"import.mappings[{i}].rule",
                        f"'sum' reads field {m.field!r}, which is {data_type} on list "
                        f"{list_name!r}: values that are not numbers will be skipped",
                    )
        consent = conn.import_.consent_from
        if consent and consent.field not in STANDARD_FIELDS and consent.field not in fields:
            missing("import.consent_from.field", consent.field)
    elif goal_name == "export" and conn.export is not None:
        types = {k: _attr(f, "data_type", "DataType") for k, f in fields.items()}
        created = export_status.check_fields(conn, list_name, types, c.error, c.warn)
        for i, out in enumerate(conn.export.mappings):
            if out.field not in STANDARD_FIELDS and out.field not in fields and not created:
                missing(f"export.mappings[{i}].field", out.field)
    elif goal_name == "targeting" and conn.targeting is not None:
        name = conn.targeting.field
        if name in fields:
            data_type = _attr(fields[name], "data_type", "DataType")
            if data_type != "MultiSelectMany":
                c.error(
                    "targeting.field",
                    f"field {name!r} on list {list_name!r} is {data_type}, not "
                    "MultiSelectMany; choose another field name for targeting",
                )
        elif name not in STANDARD_FIELDS:
            c.warn(
                "targeting.field",
                f"field {name!r} does not exist yet on list {list_name!r}; targeting will "
                "create it",
            )


# --- live: profile store -----------------------------------------------------------------------


def _live_store(conn: Connection, store: ProfileStore, c: _Checks) -> None:
    props = dict(store.properties())
    segments = set(store.segment_names())
    if conn.import_ is not None:
        imp = conn.import_
        # Consent properties exist in every store: other properties mean profiles were loaded.
        loaded = [p for p in props if p not in ("consented_objectives", "refused_objectives")]
        for i, ident in enumerate(imp.identifiers):
            if ident.property in props:
                continue
            if loaded:  # DESIGN §5.2: a typo would create one new profile per contact
                near = difflib.get_close_matches(ident.property, loaded, n=1, cutoff=0.5)
                c.error(
                    f"import.identifiers[{i}].property",
                    f"property {ident.property!r} does not exist in the profile store"
                    + (f"; did you mean {near[0]!r}?" if near else "")
                    + " (no profile could match it: "
                    + (
                        "every contact would create a new profile)"
                        if imp.allow_create
                        else "every contact would be NOT_FOUND)"
                    ),
                )
            else:
                c.warn(
                    f"import.identifiers[{i}].property",
                    f"property {ident.property!r} does not exist yet (the store is empty), so "
                    + (
                        "every contact creates a new profile"
                        if imp.allow_create
                        else "every contact is NOT_FOUND"
                    ),
                )
        for i, m in enumerate(imp.mappings):
            ptype = props.get(m.property)
            if m.rule == "sum":
                if ptype is None:
                    c.error(
                        f"import.mappings[{i}].property",
                        f"'sum' needs a number property, and {m.property!r} does not exist "
                        "(import would create it as text): create it as a number first "
                        f"('cmtoolkit profiles load FILE --type {m.property}=number')",
                    )
                elif ptype != "number":
                    c.error(
                        f"import.mappings[{i}].rule",
                        f"'sum' needs a number property, but {m.property!r} is {ptype}: use "
                        "'set' or 'add', or map to a number property",
                    )
            elif ptype is None:
                c.warn(
                    f"import.mappings[{i}].property",
                    f"property {m.property!r} does not exist yet; import will create it as text",
                )
        if imp.save_list_names_to is not None and imp.save_list_names_to not in props:
            c.warn(
                "import.save_list_names_to",
                f"property {imp.save_list_names_to!r} does not exist yet; import will create "
                "it as text",
            )
    if conn.export is not None:
        exp = conn.export
        if exp.segment is not None and exp.segment not in segments:
            c.error(
                "export.segment",
                f"segment {exp.segment!r} does not exist; define it in segments.yaml "
                f"(known: {', '.join(sorted(segments)) or 'none'})",
            )
        if exp.match_property is not None and exp.match_property not in props:
            c.error(
                "export.match_property",
                f"property {exp.match_property!r} does not exist; name the property that "
                "holds email addresses",
            )
        for i, out in enumerate(exp.mappings):
            if out.property is not None and out.property not in props:
                c.warn(
                    f"export.mappings[{i}].property",
                    f"property {out.property!r} does not exist; field {out.field!r} will be sent "
                    "empty",
                )
    sample = getattr(store, "sample_values", None)  # optional: a store that can sample values
    export_status.check_store(conn, props, sample, c.error, c.warn)
    if conn.targeting is not None:
        for i, name in enumerate(conn.targeting.segments):
            if name not in segments:
                c.error(
                    f"targeting.segments[{i}]",
                    f"segment {name!r} does not exist; define it in segments.yaml "
                    f"(known: {', '.join(sorted(segments)) or 'none'})",
                )


def _attr(obj: object, name: str, key: str) -> str:
    """A record's attribute, or the raw API item's key (for clients that return plain JSON)."""
    value = obj.get(key, obj.get(name)) if isinstance(obj, Mapping) else getattr(obj, name)
    return value if isinstance(value, str) else str(value)
