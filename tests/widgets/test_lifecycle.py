"""Issue 16's widget bugs, each with a test that fails without its fix, and the connection
lifecycle widgets (switch on, schedule, objectives, alerts, new connection)."""

from __future__ import annotations

from typing import Any

from cmtoolkit.connection.file import load_connection
from cmtoolkit.emulator import DEFAULT_API_KEY
from cmtoolkit.widgets import AuthPanel, IdentifierLinker, ListPicker, MappingEditor, SaveBar
from cmtoolkit.widgets import notebook as nb

UNKNOWN_LIST = "0123456789abcdef0123456789abcdef"


def pick(widget: Any, value: Any) -> None:
    """Choose ``value`` in a Dropdown as the browser does (by index)."""
    values = [o[1] if isinstance(o, tuple) else o for o in widget.options]
    widget.set_state({"index": values.index(value)})


def test_a_new_mapping_rows_property_follows_its_field(editor) -> None:
    mappings = MappingEditor(editor)
    mappings.add_button.click()
    row = mappings.rows[-1]
    assert row["property"].value == editor.model.import_.mappings[-1].property == "mobilenumber"
    pick(row["field"], "note")
    assert row["property"].value == "note"
    assert editor.model.import_.mappings[-1].field == "note"
    assert editor.model.import_.mappings[-1].property == "note"
    pick(row["field"], "city")  # again: the suggestion follows, never the previous field's name
    assert editor.model.import_.mappings[-1].property == "city"


def test_a_property_the_user_chose_stays_when_the_field_changes(editor) -> None:
    mappings = MappingEditor(editor)
    row = mappings.rows[0]  # Name → full_name, chosen in the file
    pick(row["field"], "note")
    assert editor.model.import_.mappings[0].property == "full_name"
    identifiers = IdentifierLinker(editor)
    identifiers.add_button.click()  # MobileNumber → mobilenumber
    pick(identifiers.rows[-1]["field"], "EmailAddress")
    assert editor.model.import_.identifiers[-1].property == "email"


def test_an_unknown_list_id_leaves_the_import_editor_usable(editor, setup) -> None:
    """A list deleted in Campaign Monitor: flagged on screen, the rows still editable."""
    editor.edit_import(lists=(UNKNOWN_LIST,))
    picker, mappings = ListPicker(editor), MappingEditor(editor)  # TraitError before the fix
    nb.import_step(editor, True)
    labels = dict((v, k) for k, v in picker.lists.select.options)
    assert labels[UNKNOWN_LIST] == f"⚠ unknown list {UNKNOWN_LIST}"
    field = mappings.rows[1]["field"]  # 'interests' exists on no known list now
    assert field.value == "interests" and "⚠ interests (not found)" in field._options_labels
    picker.lists.select.set_state({"index": [0]})  # pick an existing list instead
    assert editor.model.import_.lists == (setup.news,)
    assert "⚠ interests (not found)" not in field._options_labels


def test_the_emulators_api_key_typed_as_the_credential_name_is_refused(editor, setup) -> None:
    panel = AuthPanel(editor, verify=None)
    before = editor.model.campaign_monitor.credential
    panel.credential.set_state({"value": DEFAULT_API_KEY})
    assert panel.credential.value == before
    assert editor.model.campaign_monitor.credential == before
    assert "looks like a secret" in panel.message.value
    assert DEFAULT_API_KEY not in panel.message.value
    SaveBar(editor).save_button.click()
    assert DEFAULT_API_KEY not in setup.path.read_text()
    assert load_connection(setup.path).campaign_monitor.credential == before
