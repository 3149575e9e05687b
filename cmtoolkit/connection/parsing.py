"""Reading a connection file's YAML into a :class:`~cmtoolkit.connection.model.Connection`.

Every problem raises :class:`~cmtoolkit.errors.ConnectionFileError` naming the file and the key
path (``import.mappings[2].rule``; list indexes count from 0) and saying what to write instead.
Values the user may have pasted by mistake (a credential) are never echoed.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TypeVar

import yaml

from cmtoolkit.campaign_monitor.concurrency import DEFAULT_MAX_IN_FLIGHT, MAX_IN_FLIGHT
from cmtoolkit.campaign_monitor.fields import STATES
from cmtoolkit.connection.activity import parse_email_activity
from cmtoolkit.connection.cron import cron_problem
from cmtoolkit.connection.model import (
    CONNECTION_ID_RE,
    CONSENT_TO_TRACK,
    ID_RE,
    INVALID_VALUES,
    KEEP_RUNS,
    ON_LEAVE,
    RULES,
    VALUE_TYPES,
    CampaignMonitorSettings,
    Connection,
    ConsentFrom,
    ExportGoal,
    ExportMapping,
    Identifier,
    ImportGoal,
    ImportMapping,
    TargetingGoal,
)
from cmtoolkit.connection.reader import Reader, kind_of
from cmtoolkit.credentials import credential_reference_problem
from cmtoolkit.errors import ConnectionFileError

T = TypeVar("T")

_TOP_KEYS = (
    "name",
    "id",
    "enabled",
    "campaign_monitor",
    "objectives",
    "schedule",
    "import",
    "export",
    "targeting",
    "alerts",
    "history",
)
_CM_KEYS = ("credential", "client_id", "max_in_flight")
_IMPORT_KEYS = (
    "lists",
    "states",
    "allow_create",
    "save_list_names_to",
    "identifiers",
    "mappings",
    "consent_from",
    "email_activity",
)
_EXPORT_KEYS = (
    "segment",
    "lists",
    "match_property",
    "consent_to_track",
    "resubscribe",
    "on_leave",
    "mappings",
    "create_missing",
    "invalid_values",
    "restart_autoresponders",
)
_TARGETING_KEYS = ("lists", "field", "segments")


def parse_connection(
    source: str | Mapping[str, object],
    *,
    file: str = "<connection>",
    default_name: str | None = None,
) -> Connection:
    """Validate YAML text (or already-parsed data) into a :class:`Connection`."""
    if isinstance(source, str):
        try:
            data = yaml.safe_load(source)
        except yaml.YAMLError as exc:
            mark = getattr(exc, "problem_mark", None)
            where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
            problem = getattr(exc, "problem", None) or "syntax error"
            raise ConnectionFileError(
                f"invalid YAML{where}: {problem}; fix the indentation or quoting there",
                file=file,
            ) from None
        except RecursionError:
            raise ConnectionFileError(
                "nested too deeply to read (thousands of levels); a connection file is a few "
                "levels deep: rewrite it from `cmtoolkit connections new`",
                file=file,
            ) from None
    else:
        data = source
    return _Parser(file).connection(data, default_name)


# --- validation --------------------------------------------------------------------------------


class _Parser(Reader):
    def list_ids(self, value: object, key: str) -> tuple[str, ...]:
        hint = "list the Campaign Monitor list ids, e.g. [a58ee1d3039b8bec838e6d1482a8a965]"
        for i, item in enumerate(self.seq(value, key, hint)):
            self._numeric_id(item, f"{key}[{i}]")
        ids = self.texts(value, key, hint)
        for i, list_id in enumerate(ids):
            if not ID_RE.match(list_id):
                self.fail(
                    f"{key}[{i}]",
                    f"{list_id!r} is not a Campaign Monitor list id (32 hexadecimal "
                    "characters); copy the ListID from the list's settings or from "
                    "'cmtoolkit status'",
                )
        return ids

    def _numeric_id(self, value: object, key: str) -> None:
        """YAML reads an all-digit id as a number, dropping leading zeros: ask for quotes."""
        numeric = isinstance(value, (int, float)) and not isinstance(value, bool)
        if numeric and not ID_RE.match(str(value)):
            self.fail(
                key,
                "YAML read this id as a number; write it in quotes, e.g. "
                "'00a58ee1d3039b8bec838e6d1482a8a9'",
            )

    # the file

    def connection(self, data: object, default_name: str | None) -> Connection:
        if data is None:
            self.fail(None, "the file is empty; start from the example in DESIGN §4")
        data = self.mapping(data, "", _TOP_KEYS)
        name_value = data.get("name", default_name)
        if name_value is None:
            self.fail("name", "missing required key 'name': give the connection a name")
        name = self.text(name_value, "name", "give the connection a name")
        cm = self.campaign_monitor(
            self.required(
                data,
                "",
                "campaign_monitor",
                "add 'campaign_monitor:' with 'credential:' (e.g. default) and 'client_id:'",
            )
        )
        schedule = data.get("schedule")
        if schedule is not None:
            schedule = self.text(schedule, "schedule", 'quote it, e.g. "0 3 * * *"')
            problem = cron_problem(schedule)
            if problem:
                self.fail("schedule", f"invalid cron schedule: {problem}")
        alerts = data.get("alerts")
        if alerts is not None and not isinstance(alerts, dict):
            self.fail("alerts", f"expected a mapping, got {kind_of(alerts)}")
        conn_id = data.get("id")
        if conn_id is not None:
            conn_id = self.text(conn_id, "id", 'quote it, e.g. id: "6f1c9a52"')
            if not CONNECTION_ID_RE.match(conn_id):
                self.fail(
                    "id",
                    f"{conn_id!r} is not a connection id (8 to 32 lowercase hexadecimal "
                    "characters); delete the line and the next use writes a new one",
                )
        return Connection(
            name=name,
            id=conn_id,
            enabled=self.boolean(data.get("enabled"), "enabled", True),
            campaign_monitor=cm,
            objectives=self.texts(data.get("objectives"), "objectives", "e.g. [email_marketing]"),
            schedule=schedule,
            import_=self.import_goal(data["import"]) if data.get("import") is not None else None,
            export=self.export_goal(data["export"]) if data.get("export") is not None else None,
            targeting=(
                self.targeting_goal(data["targeting"])
                if data.get("targeting") is not None
                else None
            ),
            alerts=alerts,
            keep_runs=self.keep_runs(data.get("history")),
        )

    def keep_runs(self, value: object) -> int:
        if value is None:
            return KEEP_RUNS
        data = self.mapping(value, "history", ("keep_runs",))
        n = data.get("keep_runs", KEEP_RUNS)
        if isinstance(n, bool) or not isinstance(n, int) or n < 1:
            self.fail("history.keep_runs", f"expected a whole number of runs >= 1, got {n!r}")
        return n

    def campaign_monitor(self, value: object) -> CampaignMonitorSettings:
        key = "campaign_monitor"
        data = self.mapping(value, key, _CM_KEYS)
        credential = self.required(
            data,
            key,
            "credential",
            "name a credential from 'cmtoolkit auth login --credential NAME' (e.g. default) "
            "or 'env:VARNAME'",
        )
        problem = credential_reference_problem(credential)
        if problem or not isinstance(credential, str):
            self.fail(f"{key}.credential", problem or "expected a credential name")
        client_id = data.get("client_id")
        if client_id is not None:
            self._numeric_id(client_id, f"{key}.client_id")
            client_id = self.text(client_id, f"{key}.client_id")
            if not ID_RE.match(client_id):
                self.fail(
                    f"{key}.client_id",
                    f"{client_id!r} is not a Campaign Monitor client id (32 hexadecimal "
                    "characters); pick one from 'cmtoolkit status' or the client's settings",
                )
        in_flight = data.get("max_in_flight", DEFAULT_MAX_IN_FLIGHT)
        if isinstance(in_flight, bool) or not isinstance(in_flight, int):
            in_flight = 0
        if not 1 <= in_flight <= MAX_IN_FLIGHT:
            self.fail(
                f"{key}.max_in_flight",
                f"expected a whole number from 1 to {MAX_IN_FLIGHT} (requests sent at once; "
                f"default {DEFAULT_MAX_IN_FLIGHT}), got {data.get('max_in_flight')!r}",
            )
        return CampaignMonitorSettings(
            credential=credential, client_id=client_id, max_in_flight=in_flight
        )

    def import_goal(self, value: object) -> ImportGoal:
        key = "import"
        data = self.mapping(value, key, _IMPORT_KEYS)
        lists = self.list_ids(
            self.required(data, key, "lists", "list the Campaign Monitor list ids to read"),
            f"{key}.lists",
        )
        states = data.get("states")
        if states is None:
            state_values: tuple[str, ...] = ("Active",)
        else:
            seq = self.seq(states, f"{key}.states", "e.g. [Active, Unsubscribed]")
            state_values = tuple(
                self.choice(s, f"{key}.states[{i}]", STATES, "subscriber state")
                for i, s in enumerate(seq)
            )
            if not state_values:
                self.fail(f"{key}.states", f"select at least one of {', '.join(STATES)}")
        ids = self.required(
            data,
            key,
            "identifiers",
            "link at least one field to a profile property, e.g. "
            "[{field: EmailAddress, property: email}]",
        )
        identifiers = self.items(
            ids,
            f"{key}.identifiers",
            "e.g. [{field: EmailAddress, property: email}]",
            self.identifier,
        )
        if not identifiers:
            self.fail(
                f"{key}.identifiers",
                "no identifier: link at least one field to a profile property, e.g. "
                "{field: EmailAddress, property: email}",
            )
        self.unique(
            ((f"{key}.identifiers[{i}].field", x.field) for i, x in enumerate(identifiers)),
            f"{key}.identifiers",
            "field",
        )
        mappings = self.items(
            data.get("mappings"),
            f"{key}.mappings",
            "e.g. [{field: Name, property: full_name, rule: set}]",
            self.import_mapping,
        )
        self.unique(
            ((f"{key}.mappings[{i}].property", m.property) for i, m in enumerate(mappings)),
            f"{key}.mappings",
            "property",
        )
        save_to = self.optional_text(data.get("save_list_names_to"), f"{key}.save_list_names_to")
        return ImportGoal(
            lists=lists,
            states=state_values,
            allow_create=self.boolean(data.get("allow_create"), f"{key}.allow_create", False),
            save_list_names_to=save_to,
            identifiers=identifiers,
            mappings=mappings,
            consent_from=self.consent_from(data.get("consent_from"), f"{key}.consent_from"),
            email_activity=parse_email_activity(
                self, data.get("email_activity"), f"{key}.email_activity"
            ),
        )

    def consent_from(self, value: object, key: str) -> ConsentFrom | None:
        """``{field: ConsentToTrack, "Yes": [objectives], "No": [objectives]}`` (DESIGN §5.3)."""
        if value is None:
            return None
        if isinstance(value, dict):  # YAML 1.1 reads an unquoted Yes/No key as a boolean
            value = {
                {True: "Yes", False: "No"}.get(k, k) if isinstance(k, bool) else k: v
                for k, v in value.items()
            }
        data = self.mapping(value, key, ("field", "Yes", "No"))
        field = self.required_text(data, key, "field", "name the field that carries consent")
        hint = "e.g. [email_marketing]"
        yes = self.texts(data.get("Yes"), f"{key}.Yes", hint)
        no = self.texts(data.get("No"), f"{key}.No", hint)
        if not yes and not no:
            self.fail(key, 'name the objectives a value grants, e.g. "Yes": [email_marketing]')
        return ConsentFrom(field, yes, no)

    def identifier(self, value: object, key: str) -> Identifier:
        data = self.mapping(value, key, ("field", "property"))
        return Identifier(
            field=self.required_text(data, key, "field", "name a Campaign Monitor field"),
            property=self.required_text(
                data, key, "property", "name the profile property to match"
            ),
        )

    def import_mapping(self, value: object, key: str) -> ImportMapping:
        data = self.mapping(value, key, ("field", "property", "rule"))
        field = self.required_text(data, key, "field", "name the Campaign Monitor field to read")
        prop = self.required_text(data, key, "property", "name the profile property to write")
        rule = data.get("rule", "set")
        return ImportMapping(field, prop, self.choice(rule, f"{key}.rule", RULES, "rule"))

    def export_goal(self, value: object) -> ExportGoal:
        key = "export"
        data = self.mapping(value, key, _EXPORT_KEYS)
        lists = self.list_ids(
            self.required(data, key, "lists", "list the Campaign Monitor list ids to write"),
            f"{key}.lists",
        )
        consent = data.get("consent_to_track", "Unchanged")
        if isinstance(consent, bool):  # YAML 1.1 reads an unquoted Yes/No as a boolean
            consent = "Yes" if consent else "No"
        consent = self.choice(
            consent, f"{key}.consent_to_track", CONSENT_TO_TRACK, "consent_to_track value"
        )
        mappings = self.items(
            data.get("mappings"),
            f"{key}.mappings",
            "e.g. [{value: property, property: full_name, field: Name}]",
            self.export_mapping,
        )
        self.unique(
            ((f"{key}.mappings[{i}].field", m.field) for i, m in enumerate(mappings)),
            f"{key}.mappings",
            "field",
        )
        return ExportGoal(
            segment=self.optional_text(data.get("segment"), f"{key}.segment"),
            lists=lists,
            match_property=self.optional_text(data.get("match_property"), f"{key}.match_property"),
            consent_to_track=consent,
            resubscribe=self.boolean(data.get("resubscribe"), f"{key}.resubscribe", False),
            on_leave=self.choice(
                data.get("on_leave", "keep"), f"{key}.on_leave", ON_LEAVE, "on_leave action"
            ),
            mappings=mappings,
            create_missing=self.boolean(data.get("create_missing"), f"{key}.create_missing", False),
            invalid_values=self.choice(
                data.get("invalid_values", "skip_field"),
                f"{key}.invalid_values",
                INVALID_VALUES,
                "invalid_values setting",
            ),
            restart_autoresponders=self.boolean(
                data.get("restart_autoresponders"), f"{key}.restart_autoresponders", False
            ),
        )

    def export_mapping(self, value: object, key: str) -> ExportMapping:
        data = self.mapping(value, key, ("value", "property", "field"))
        kind = self.choice(
            self.required(
                data, key, "value", f"say what to export: one of {', '.join(VALUE_TYPES)}"
            ),
            f"{key}.value",
            VALUE_TYPES,
            "value type",
        )
        prop = self.optional_text(data.get("property"), f"{key}.property")
        if kind == "property" and prop is None:
            self.fail(
                f"{key}.property",
                "missing required key 'property': 'value: property' needs the name of the "
                "profile property to export",
            )
        if kind != "property" and prop is not None:
            self.fail(
                f"{key}.property",
                f"'property' only applies to 'value: property' (this mapping exports {kind}); "
                "remove it or set 'value: property'",
            )
        field = self.required_text(data, key, "field", "name the Campaign Monitor field to write")
        return ExportMapping(value=kind, field=field, property=prop)

    def targeting_goal(self, value: object) -> TargetingGoal:
        key = "targeting"
        data = self.mapping(value, key, _TARGETING_KEYS)
        lists = self.list_ids(
            self.required(data, key, "lists", "list the Campaign Monitor list ids to tag"),
            f"{key}.lists",
        )
        segments = self.texts(
            self.required(data, key, "segments", "list the segments to expose, e.g. [vip]"),
            f"{key}.segments",
            "e.g. [vip, churn_risk]",
        )
        field = data.get("field", "Segments")
        return TargetingGoal(lists=lists, segments=segments, field=self.text(field, f"{key}.field"))
