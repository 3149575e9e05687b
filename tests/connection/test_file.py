"""Reading, validating and writing connection files."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest
import yaml

from cmtoolkit.connection import (
    CampaignMonitorSettings,
    ExportGoal,
    ImportGoal,
    connection_path,
    dump_connection,
    find_connection,
    list_connections,
    load_connection,
    parse_connection,
    save_connection,
    slugify,
)
from cmtoolkit.errors import ConnectionFileError

LIST = "a58ee1d3039b8bec838e6d1482a8a965"
CLIENT = "4a397ccaaa55eb4e6aa1221e1e2d7122"

EXAMPLE = f"""\
name: Newsletter sync
enabled: true
campaign_monitor:
  credential: default            # a name in the credential store (section 8)
  client_id: {CLIENT}
objectives: [email_marketing]    # empty or absent: no consent filter
schedule: "0 3 * * *"            # cron, UTC; optional

import:
  lists: [{LIST}]
  states: [Active]
  allow_create: true
  save_list_names_to: cm_lists
  identifiers:
    - {{field: EmailAddress, property: email}}
  mappings:
    - {{field: Name, property: full_name, rule: set_if_empty}}
    - {{field: interests, property: interests, rule: add}}
    - {{field: loyalty points, property: points, rule: sum}}

export:
  segment: newsletter_optin
  lists: [{LIST}]
  match_property: email
  consent_to_track: Unchanged    # Yes | No | Unchanged
  resubscribe: false
  on_leave: keep                 # keep | unsubscribe | delete
  mappings:
    - {{value: property, property: full_name, field: Name}}
    - {{value: profile_id, field: profile id}}
    - {{value: segments, field: segments}}
    - {{value: interactions, field: viewed}}
    - {{value: property, property: interests, field: interests}}

targeting:
  lists: [{LIST}]
  field: Segments
  segments: [vip, churn_risk]
"""


def write(workspace: Path, text: str, name: str = "news") -> Path:
    path = workspace / "connections" / f"{name}.yaml"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(textwrap.dedent(text), encoding="utf-8")
    return path


def test_design_example_loads(tmp_path: Path) -> None:
    conn = load_connection(write(tmp_path, EXAMPLE))
    assert conn.name == "Newsletter sync"
    assert conn.campaign_monitor.client_id == CLIENT
    assert conn.objectives == ("email_marketing",)
    assert conn.import_ is not None and conn.import_.mappings[2].rule == "sum"
    assert conn.import_.identifiers[0].field == "EmailAddress"
    assert conn.export is not None and conn.export.mappings[1].property is None
    assert conn.targeting is not None and conn.targeting.segments == ("vip", "churn_risk")
    assert conn.goals == ("import", "export", "targeting")


def test_round_trip_keeps_values_and_key_order(tmp_path: Path) -> None:
    conn = load_connection(write(tmp_path, EXAMPLE))
    out = save_connection(conn, tmp_path / "again.yaml")
    again = load_connection(out)
    assert again == conn
    assert load_connection(save_connection(again, tmp_path / "third.yaml")) == conn
    data = yaml.safe_load(out.read_text())
    assert list(data) == [
        "name", "enabled", "campaign_monitor", "objectives", "schedule",
        "import", "export", "targeting",
    ]  # fmt: skip
    assert list(data["import"]) == [
        "lists", "states", "allow_create", "save_list_names_to", "identifiers", "mappings",
    ]  # fmt: skip
    assert list(data["export"]) == [
        "segment", "lists", "match_property", "consent_to_track", "resubscribe", "on_leave",
        "mappings",
    ]  # fmt: skip
    assert data["export"]["mappings"][0] == {
        "value": "property",
        "property": "full_name",
        "field": "Name",
    }
    assert conn.to_dict() == data


def test_defaults_are_filled_and_written_explicitly(tmp_path: Path) -> None:
    conn = load_connection(
        write(
            tmp_path,
            f"""\
            campaign_monitor: {{credential: default}}
            import:
              lists: [{LIST}]
              identifiers: [{{field: EmailAddress, property: email}}]
              mappings: [{{field: Name, property: full_name}}]
            export:
              lists: [{LIST}]
            """,
        )
    )
    assert conn.name == "news"  # the file stem when 'name' is absent
    assert conn.enabled is True
    assert conn.import_ == ImportGoal(
        lists=(LIST,),
        identifiers=conn.import_.identifiers,
        states=("Active",),
        allow_create=False,
        mappings=conn.import_.mappings,
    )
    assert conn.import_.mappings[0].rule == "set"
    assert conn.export == ExportGoal(lists=(LIST,))
    assert conn.export.consent_to_track == "Unchanged"
    assert conn.export.on_leave == "keep"
    assert conn.export.resubscribe is False
    text = dump_connection(conn)
    assert "consent_to_track: Unchanged" in text
    assert parse_connection(text) == conn


def test_unquoted_yes_no_consent_is_understood() -> None:
    # YAML 1.1 reads a bare Yes/No as a boolean; the user meant the Campaign Monitor value.
    base = f"name: x\ncampaign_monitor: {{credential: default}}\nexport: {{lists: [{LIST}], "
    assert parse_connection(base + "consent_to_track: Yes}").export.consent_to_track == "Yes"
    conn = parse_connection(base + "consent_to_track: No}")
    assert conn.export.consent_to_track == "No"
    assert parse_connection(dump_connection(conn)) == conn


def test_alerts_pass_through(tmp_path: Path) -> None:
    text = EXAMPLE + "\nalerts:\n  email: [ops@example.com]\n  when: [failed]\n"
    conn = load_connection(write(tmp_path, text))
    assert conn.alerts == {"email": ["ops@example.com"], "when": ["failed"]}
    assert load_connection(save_connection(conn, tmp_path / "x.yaml")) == conn


def test_model_cannot_hold_a_secret() -> None:
    with pytest.raises(ValueError, match="looks like a secret") as info:
        CampaignMonitorSettings(credential="9f8e7d6c5b4a39281706f5e4d3c2b1a0")
    assert "9f8e7d6c5b4a39281706f5e4d3c2b1a0" not in str(info.value)
    assert CampaignMonitorSettings(credential="env:CM_API_KEY").credential == "env:CM_API_KEY"


def test_workspace_helpers(tmp_path: Path) -> None:
    assert slugify("Newsletter sync") == "newsletter-sync"
    assert slugify("Café & Co!") == "cafe-co"
    conn = parse_connection(EXAMPLE)
    path = save_connection(conn, connection_path(tmp_path, conn.name))
    assert path == tmp_path / "connections" / "newsletter-sync.yaml"
    write(tmp_path, EXAMPLE.replace("Newsletter sync", "Other"), name="odd-file-name")
    assert [p.name for p in list_connections(tmp_path)] == [
        "newsletter-sync.yaml",
        "odd-file-name.yaml",
    ]
    assert find_connection(tmp_path, "Newsletter sync") == path
    assert find_connection(tmp_path, "newsletter-sync") == path
    assert find_connection(tmp_path, "Other").name == "odd-file-name.yaml"
    assert find_connection(tmp_path, str(path)) == path
    with pytest.raises(ConnectionFileError, match=r"no connection 'nope'.*known: newsletter-sync"):
        find_connection(tmp_path, "nope")
    assert list_connections(tmp_path / "empty") == []


# --- broken files: each names the file and the key path, and says what to do ------------------

GOOD_IMPORT = f"""\
  lists: [{LIST}]
  identifiers: [{{field: EmailAddress, property: email}}]
"""
HEAD = "name: News\ncampaign_monitor: {credential: default, client_id: " + CLIENT + "}\n"

BROKEN: list[tuple[str, str, str | None, str]] = [
    # (id, file text, key path, a fragment of the message that says what to do)
    ("yaml-syntax", HEAD + "import:\n  lists: [abc\n", None, "invalid YAML at line"),
    ("yaml-tab", HEAD + "import:\n\tlists: []\n", None, "invalid YAML at line 4, column 1"),
    ("not-a-mapping", "- just\n- a list\n", None, "must be a mapping"),
    ("empty-file", "", None, "the file is empty"),
    ("unknown-top-key", HEAD + "imoprt:\n" + GOOD_IMPORT, "imoprt", "did you mean 'import'?"),
    (
        "unknown-nested-key",
        HEAD + "import:\n" + GOOD_IMPORT + "  mapings: []\n",
        "import.mapings",
        "did you mean 'mappings'?",
    ),
    (
        "missing-campaign-monitor",
        "name: News\nimport:\n" + GOOD_IMPORT,
        "campaign_monitor",
        "missing required key 'campaign_monitor'",
    ),
    (
        "missing-credential",
        "name: News\ncampaign_monitor: {client_id: " + CLIENT + "}\n",
        "campaign_monitor.credential",
        "cmtoolkit auth login --credential NAME",
    ),
    (
        "credential-is-a-secret",
        "name: News\ncampaign_monitor: {credential: 0123456789abcdef0123456789abcdef}\n",
        "campaign_monitor.credential",
        "looks like a secret",
    ),
    (
        "credential-bad-env",
        "name: News\ncampaign_monitor: {credential: 'env:1BAD'}\n",
        "campaign_monitor.credential",
        "env:CM_API_KEY",
    ),
    (
        "client-id-not-hex",
        "name: News\ncampaign_monitor: {credential: default, client_id: my-client}\n",
        "campaign_monitor.client_id",
        "32 hexadecimal",
    ),
    (
        "missing-import-lists",
        HEAD + "import:\n  identifiers: [{field: EmailAddress, property: email}]\n",
        "import.lists",
        "missing required key 'lists'",
    ),
    (
        "list-id-not-hex",
        HEAD + "import:\n  lists: [newsletter]\n  identifiers: [{field: Name, property: n}]\n",
        "import.lists[0]",
        "not a Campaign Monitor list id",
    ),
    (
        "list-id-read-as-number",
        HEAD + "targeting:\n  lists: [00000000000000000000000000000001]\n  segments: [vip]\n",
        "targeting.lists[0]",
        "write it in quotes",
    ),
    (
        "lists-not-a-list",
        HEAD + f"export:\n  lists: {{a: {LIST}}}\n",
        "export.lists",
        "expected a list",
    ),
    (
        "missing-identifiers",
        HEAD + f"import:\n  lists: [{LIST}]\n",
        "import.identifiers",
        "link at least one field",
    ),
    (
        "empty-identifiers",
        HEAD + f"import:\n  lists: [{LIST}]\n  identifiers: []\n",
        "import.identifiers",
        "no identifier",
    ),
    (
        "identifier-without-property",
        HEAD + f"import:\n  lists: [{LIST}]\n  identifiers: [{{field: EmailAddress}}]\n",
        "import.identifiers[0].property",
        "missing required key 'property'",
    ),
    (
        "unknown-rule",
        HEAD
        + "import:\n"
        + GOOD_IMPORT
        + "  mappings:\n    - {field: Name, property: a}\n    - {field: x, property: b}\n"
        + "    - {field: y, property: c, rule: replace}\n",
        "import.mappings[2].rule",
        "unknown rule 'replace' (expected one of set, set_if_empty, add, sum)",
    ),
    (
        "unknown-state",
        HEAD + "import:\n" + GOOD_IMPORT + "  states: [Active, Suppressed]\n",
        "import.states[1]",
        "expected one of Active, Unconfirmed, Unsubscribed, Bounced, Deleted",
    ),
    (
        "allow-create-not-bool",
        HEAD + "import:\n" + GOOD_IMPORT + "  allow_create: sometimes\n",
        "import.allow_create",
        "expected true or false",
    ),
    (
        "duplicate-import-target",
        HEAD
        + "import:\n"
        + GOOD_IMPORT
        + "  mappings:\n    - {field: Name, property: n}\n    - {field: Nick, property: n}\n",
        "import.mappings[1].property",
        "remove or merge one of them",
    ),
    (
        "unknown-consent",
        HEAD + f"export:\n  lists: [{LIST}]\n  consent_to_track: Maybe\n",
        "export.consent_to_track",
        "expected one of Yes, No, Unchanged",
    ),
    (
        "unknown-on-leave",
        HEAD + f"export:\n  lists: [{LIST}]\n  on_leave: unsubscibe\n",
        "export.on_leave",
        "did you mean 'unsubscribe'?",
    ),
    (
        "unknown-value-type",
        HEAD + f"export:\n  lists: [{LIST}]\n  mappings: [{{value: email, field: x}}]\n",
        "export.mappings[0].value",
        "expected one of profile_id, segments, interactions, property",
    ),
    (
        "value-property-without-property",
        HEAD + f"export:\n  lists: [{LIST}]\n  mappings: [{{value: property, field: Name}}]\n",
        "export.mappings[0].property",
        "needs the name of the profile property",
    ),
    (
        "duplicate-export-field",
        HEAD
        + f"export:\n  lists: [{LIST}]\n  mappings:\n"
        + "    - {value: profile_id, field: id}\n    - {value: segments, field: id}\n",
        "export.mappings[1].field",
        "remove or merge one of them",
    ),
    (
        "mapping-not-a-mapping",
        HEAD + f"export:\n  lists: [{LIST}]\n  mappings: [profile_id]\n",
        "export.mappings[0]",
        "write 'key: value' lines",
    ),
    (
        "resubscribe-not-bool",
        HEAD + f"export:\n  lists: [{LIST}]\n  resubscribe: 'yes please'\n",
        "export.resubscribe",
        "expected true or false",
    ),
    (
        "bad-cron-fields",
        HEAD + 'schedule: "0 3 * *"\n',
        "schedule",
        "e.g. '0 3 * * *'",
    ),
    (
        "bad-cron-range",
        HEAD + 'schedule: "0 25 * * *"\n',
        "schedule",
        "hour field '25': 25 is outside 0-23",
    ),
    (
        "targeting-without-segments",
        HEAD + f"targeting:\n  lists: [{LIST}]\n",
        "targeting.segments",
        "list the segments to expose",
    ),
    (
        "duplicate-list",
        HEAD + f"targeting:\n  lists: [{LIST}, {LIST}]\n  segments: [vip]\n",
        "targeting.lists[1]",
        "remove the duplicate",
    ),
    (
        "enabled-not-bool",
        HEAD + "enabled: 1\n",
        "enabled",
        "expected true or false",
    ),
    (
        "name-not-text",
        "name: [a, b]\ncampaign_monitor: {credential: default}\n",
        "name",
        "give the connection a name",
    ),
]


@pytest.mark.parametrize(
    ("text", "key", "hint"), [b[1:] for b in BROKEN], ids=[b[0] for b in BROKEN]
)
def test_broken_file_names_file_and_key(
    tmp_path: Path, text: str, key: str | None, hint: str
) -> None:
    path = write(tmp_path, text)
    with pytest.raises(ConnectionFileError) as info:
        load_connection(path)
    message = str(info.value)
    assert message.startswith("connections/news.yaml")
    assert info.value.file == "connections/news.yaml"
    if key is not None:
        assert info.value.key == key
        assert f"key '{key}'" in message
    assert hint in message, message


def test_each_mistake_gets_its_own_answer_and_the_base_is_valid(tmp_path: Path) -> None:
    """The broken files differ from a valid file only by their mistake, and no two of them get the
    same message (no catch-all answer)."""
    base = parse_connection(HEAD + "import:\n" + GOOD_IMPORT)
    assert base.import_ is not None and base.import_.lists == (LIST,)
    messages = []
    for name, text, _key, _hint in BROKEN:
        with pytest.raises(ConnectionFileError) as info:
            load_connection(write(tmp_path, text, name))
        messages.append(str(info.value).split(": ", 1)[1])
    duplicates = {m for m in messages if messages.count(m) > 1}
    assert not duplicates, duplicates


def test_a_pasted_secret_is_not_echoed(tmp_path: Path) -> None:
    secret = "SENTINEL0secret0apikey0123456789"
    path = write(tmp_path, f"name: x\ncampaign_monitor: {{credential: {secret}}}\n")
    with pytest.raises(ConnectionFileError) as info:
        load_connection(path)
    assert secret not in str(info.value)
    assert secret not in repr(info.value)


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(ConnectionFileError, match="file not found"):
        load_connection(tmp_path / "connections" / "nope.yaml")


@pytest.mark.parametrize(
    "schedule", ["0 3 * * *", "*/15 * * * *", "0 9-17 * * mon-fri", "0 0 1,15 jan,jul *", "@daily"]
)
def test_valid_schedules(schedule: str) -> None:
    assert parse_connection(HEAD + f'schedule: "{schedule}"\n').schedule == schedule
