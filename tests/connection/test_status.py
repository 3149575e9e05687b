"""Connection status: offline checks and live checks through small fakes of client and store."""

from __future__ import annotations

from dataclasses import dataclass, field

from cmtoolkit.connection import Problem, Status, connection_status, parse_connection
from cmtoolkit.errors import AuthenticationError, TransportError

LIST = "a58ee1d3039b8bec838e6d1482a8a965"
LIST2 = "b58ee1d3039b8bec838e6d1482a8a965"
CLIENT = "4a397ccaaa55eb4e6aa1221e1e2d7122"
HEAD = f"name: News\ncampaign_monitor: {{credential: default, client_id: {CLIENT}}}\n"

FULL = (
    HEAD
    + f"""
import:
  lists: [{LIST}]
  allow_create: true
  identifiers: [{{field: EmailAddress, property: email}}]
  mappings:
    - {{field: Name, property: full_name, rule: set_if_empty}}
    - {{field: loyalty points, property: points, rule: sum}}
export:
  segment: newsletter_optin
  lists: [{LIST}]
  match_property: email
  mappings:
    - {{value: property, property: full_name, field: Name}}
    - {{value: segments, field: segments}}
targeting:
  lists: [{LIST}]
  segments: [vip]
"""
)


@dataclass
class Rec:
    client_id: str = ""
    list_id: str = ""
    name: str = ""
    field_name: str = ""
    key: str = ""
    data_type: str = "Text"
    options: tuple[str, ...] = ()


def cf(name: str, data_type: str = "Text") -> Rec:
    return Rec(field_name=name, key=f"[{name.replace(' ', '')}]", data_type=data_type)


@dataclass
class FakeClient:
    fields: dict[str, list[Rec]] = field(
        default_factory=lambda: {
            LIST: [
                cf("loyalty points", "Number"),
                cf("segments"),
                cf("Segments", "MultiSelectMany"),
            ]
        }
    )
    fail: Exception | None = None
    calls: list[str] = field(default_factory=list)

    def clients(self) -> list[Rec]:
        self.calls.append("clients")
        if self.fail:
            raise self.fail
        return [Rec(client_id=CLIENT, name="Acme")]

    def lists(self, client_id: str) -> list[Rec]:
        self.calls.append(f"lists {client_id}")
        return [Rec(list_id=lid, name=f"List {lid[:2]}") for lid in self.fields]

    def custom_fields(self, list_id: str) -> list[Rec]:
        self.calls.append(f"custom_fields {list_id}")
        return self.fields[list_id]


@dataclass
class FakeStore:
    props: dict[str, str] = field(
        default_factory=lambda: {"email": "email", "full_name": "text", "points": "number"}
    )
    segments: list[str] = field(default_factory=lambda: ["newsletter_optin", "vip"])

    def properties(self) -> dict[str, str]:
        return self.props

    def segment_names(self) -> list[str]:
        return self.segments


def keys(problems: list[Problem]) -> list[str]:
    return [p.key for p in problems]


def test_full_connection_is_ready_offline_and_live() -> None:
    conn = parse_connection(FULL)
    offline = connection_status(conn)
    assert offline.ok and offline.errors == []
    assert (offline.import_ready, offline.export_ready, offline.targeting_ready) == (True,) * 3
    live = connection_status(conn, client=FakeClient(), store=FakeStore())
    assert live.errors == [], live.errors
    assert live.checked == ("campaign_monitor", "store")
    assert live.import_ready and live.export_ready and live.targeting_ready


def test_no_goal_is_an_error_and_nothing_is_ready() -> None:
    status = connection_status(parse_connection(HEAD))
    assert not status.ok
    assert status.errors[0].key == ""
    assert "no goal" in status.errors[0].message
    assert "add an 'import', 'export' or 'targeting' section" in str(status.errors[0])
    assert not (status.import_ready or status.export_ready or status.targeting_ready)


def test_export_without_segment_or_match_property() -> None:
    conn = parse_connection(HEAD + f"export:\n  lists: [{LIST}]\n")
    status = connection_status(conn)
    assert keys(status.errors) == ["export.segment", "export.match_property"]
    assert not status.export_ready


def test_an_error_in_one_goal_keeps_the_others_ready() -> None:
    conn = parse_connection(FULL.replace("  segment: newsletter_optin\n", ""))
    status = connection_status(conn)
    assert keys(status.errors) == ["export.segment"]
    assert status.import_ready and not status.export_ready and status.targeting_ready


def test_missing_client_id_blocks_every_goal() -> None:
    conn = parse_connection(FULL.replace(f", client_id: {CLIENT}", ""))
    status = connection_status(conn)
    assert keys(status.errors) == ["campaign_monitor.client_id"]
    assert not (status.import_ready or status.export_ready or status.targeting_ready)


def test_offline_warnings_and_unwritable_fields() -> None:
    conn = parse_connection(
        HEAD
        + "enabled: false\n"
        + f"import:\n  lists: [{LIST}]\n  identifiers: [{{field: EmailAddress, property: e}}]\n"
        + f"export:\n  segment: s\n  lists: [{LIST}]\n  match_property: e\n"
        + "  mappings: [{value: profile_id, field: State}]\n"
        + f"targeting:\n  lists: [{LIST}]\n  segments: [vip]\n  field: Name\n"
    )
    status = connection_status(conn)
    assert keys(status.warnings) == ["enabled", "import.mappings"]
    assert keys(status.errors) == ["export.mappings[0].field", "targeting.field"]
    assert status.import_ready


def test_live_credential_refused() -> None:
    client = FakeClient(fail=AuthenticationError("Invalid API key", status=401, code=100))
    status = connection_status(parse_connection(FULL), client=client)
    assert keys(status.errors) == ["campaign_monitor.credential"]
    assert "cmtoolkit auth login --credential default" in status.errors[0].message
    assert not status.import_ready


def test_live_unreachable() -> None:
    status = connection_status(parse_connection(FULL), client=FakeClient(fail=TransportError("x")))
    assert keys(status.errors) == ["campaign_monitor"]
    assert "CMTOOLKIT_API_URL" in status.errors[0].message


def test_live_unknown_client_and_list() -> None:
    other = "ffffffffffffffffffffffffffffffff"
    status = connection_status(parse_connection(FULL.replace(CLIENT, other)), client=FakeClient())
    assert keys(status.errors) == ["campaign_monitor.client_id"]
    assert "pick one of: Acme (4a397ccaaa55eb4e6aa1221e1e2d7122)" in status.errors[0].message

    conn = parse_connection(
        FULL.replace(
            f"export:\n  segment: newsletter_optin\n  lists: [{LIST}]",
            f"export:\n  segment: newsletter_optin\n  lists: [{LIST2}]",
        )
    )
    status = connection_status(conn, client=FakeClient())
    assert keys(status.errors) == ["export.lists[0]"]
    assert f"list {LIST2} does not exist" in status.errors[0].message
    assert status.import_ready and not status.export_ready


def test_live_missing_fields_on_every_selected_list() -> None:
    client = FakeClient(
        fields={LIST: [cf("loyalty points", "Number"), cf("segments")], LIST2: [cf("segments")]}
    )
    conn = parse_connection(
        FULL.replace(f"import:\n  lists: [{LIST}]", f"import:\n  lists: [{LIST}, {LIST2}]")
    )
    status = connection_status(conn, client=client)
    assert keys(status.errors) == ["import.mappings[1].field"]
    assert "'loyalty points' does not exist on list 'List b5'" in status.errors[0].message
    assert "create the custom field" in status.errors[0].message
    # targeting's field is missing on LIST: it will be created
    assert "targeting.field" in keys(status.warnings)
    assert client.calls.count(f"custom_fields {LIST}") == 1  # cached per list


def test_live_field_types() -> None:
    client = FakeClient(fields={LIST: [cf("loyalty points"), cf("segments"), cf("Segments")]})
    status = connection_status(parse_connection(FULL), client=client)
    assert keys(status.errors) == ["targeting.field"]
    assert "not MultiSelectMany" in status.errors[0].message
    assert "import.mappings[1].rule" in keys(status.warnings)


def test_store_checks() -> None:
    store = FakeStore(props={"email": "email", "points": "text"}, segments=["vip"])
    status = connection_status(parse_connection(FULL), store=store)
    assert keys(status.errors) == ["import.mappings[1].rule", "export.segment"]
    assert "'sum' needs a number property, but 'points' is text" in status.errors[0].message
    assert "define it in segments.yaml" in status.errors[1].message
    assert keys(status.warnings) == ["import.mappings[0].property", "export.mappings[0].property"]
    assert "import will create it as text" in status.warnings[0].message


def test_store_sum_into_missing_property_and_missing_segment_and_match_property() -> None:
    store = FakeStore(props={}, segments=[])
    status = connection_status(parse_connection(FULL), store=store)
    assert keys(status.errors) == [
        "import.mappings[1].property",
        "export.segment",
        "export.match_property",
        "targeting.segments[0]",
    ]
    assert "--type points=number" in status.errors[0].message
    assert "import.identifiers[0].property" in keys(status.warnings)


def test_status_to_dict() -> None:
    status = connection_status(parse_connection(HEAD))
    data = status.to_dict()
    assert data["ok"] is False
    assert data["errors"][0]["key"] == ""
    assert isinstance(status, Status)


def test_live_checks_against_the_emulator(cm, emulator) -> None:  # type: ignore[no-untyped-def]
    lists = emulator.list_ids
    conn = parse_connection(
        f"name: News\ncampaign_monitor: {{credential: default, client_id: {emulator.client_id}}}\n"
        f"import:\n  lists: [{lists[0]}, {lists[1]}]\n"
        "  identifiers: [{field: EmailAddress, property: email}]\n"
        "  mappings:\n"
        "    - {field: loyalty points, property: points, rule: sum}\n"
        "    - {field: website, property: site, rule: sum}\n"
        "    - {field: favourite colour, property: colour}\n"
        f"export:\n  segment: vip\n  lists: [{lists[2]}]\n  match_property: email\n"
        "  mappings: [{value: segments, field: interests}]\n"
        f"targeting:\n  lists: [{lists[0]}]\n  segments: [vip]\n  field: tier\n"
    )
    status = connection_status(conn, client=cm)
    assert keys(status.errors) == [
        "import.mappings[2].field",  # on the first list
        "import.mappings[2].field",  # and on the second
        "targeting.field",  # tier is MultiSelectOne
    ]
    assert "'favourite colour' does not exist on list 'Newsletter'" in status.errors[0].message
    assert keys(status.warnings) == ["import.mappings[1].rule", "import.mappings[1].rule"]
    assert status.export_ready and not status.import_ready and not status.targeting_ready
