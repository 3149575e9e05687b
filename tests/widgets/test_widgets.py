"""Headless widget tests: no kernel, no browser. Clicks (``Button.click()``) and frontend-style
changes (``set_state``) drive the connection model; previews refresh on a test-driven clock."""

from __future__ import annotations

import json
from typing import Any

import ipywidgets as W
import pytest

from cmtoolkit.campaign_monitor import OAuthApp
from cmtoolkit.connection.file import load_connection
from cmtoolkit.connection.model import ImportMapping
from cmtoolkit.sync import RunState
from cmtoolkit.widgets import (
    AuthPanel,
    ExportEditor,
    HistoryView,
    IdentifierLinker,
    ListPicker,
    ManualScheduler,
    MappingEditor,
    PreviewPane,
    RunPanel,
    SaveBar,
    StatusBar,
    TargetingEditor,
)
from cmtoolkit.widgets.debounce import Debouncer
from tests.conftest import TEST_OAUTH_APP
from tests.connection.test_login import emulator_browser
from tests.widgets.env import SENTINEL_KEY


def option_index(widget: Any, value: Any) -> int:
    return [o[1] if isinstance(o, tuple) else o for o in widget.options].index(value)


def pick(widget: Any, value: Any) -> None:
    """Choose ``value`` in a Dropdown as the browser does (by index)."""
    widget.set_state({"index": option_index(widget, value)})


# --- lists, identifiers, mappings --------------------------------------------------------------


def test_list_picker_shows_lists_with_counts_and_edits_the_import_goal(editor, setup) -> None:
    picker = ListPicker(editor)
    labels = dict((v, k) for k, v in picker.lists.select.options)
    assert labels[setup.news] == "Newsletter — 4 active"
    assert labels[setup.customers] == "Customers — 2 active"
    assert picker.lists.select.value == (setup.news,)
    picker.lists.select.set_state(
        {"index": [option_index(picker.lists.select, x) for x in (setup.news, setup.customers)]}
    )
    assert editor.model.import_.lists == (setup.news, setup.customers)
    picker.states["Unsubscribed"].set_state({"value": True})
    assert editor.model.import_.states == ("Active", "Unsubscribed")
    picker.allow_create.set_state({"value": False})
    assert editor.model.import_.allow_create is False
    picker.save_names.set_state({"value": True})
    assert editor.model.import_.save_list_names_to == "cm_lists"
    assert not picker.names_property.disabled
    assert "nickname" in picker.names_property.options  # existing properties to pick from
    picker.names_property.set_state({"value": "nickname"})
    assert editor.model.import_.save_list_names_to == "nickname"
    picker.save_names.set_state({"value": False})
    assert editor.model.import_.save_list_names_to is None


def test_mapping_editor_adds_removes_and_changes_rules(editor) -> None:
    mappings = MappingEditor(editor)
    assert len(mappings.rows) == 4
    assert "loyalty points" in mappings.rows[0]["field"]._options_values  # the list's fields
    pick(mappings.rows[3]["rule"], "add")
    assert editor.model.import_.mappings[3] == ImportMapping("city", "city", "add")
    mappings.add_button.click()
    assert len(mappings.rows) == 5
    added = editor.model.import_.mappings[4]
    assert added == ImportMapping("MobileNumber", "mobilenumber", "set")
    pick(mappings.rows[4]["field"], "note")
    mappings.rows[4]["property"].set_state({"value": "cm_note"})  # a new property
    assert editor.model.import_.mappings[4] == ImportMapping("note", "cm_note", "set")
    mappings.rows[1]["remove"].click()
    assert [m.field for m in editor.model.import_.mappings] == [
        "Name",
        "loyalty points",
        "city",
        "note",
    ]
    assert len(mappings.rows) == 4 and mappings.rows[1]["field"].value == "loyalty points"
    # An empty property is not taken into the model; the row says what is missing.
    mappings.rows[0]["property"].set_state({"value": ""})
    assert editor.model.import_.mappings[0].property == "full_name"
    assert "name a profile property" in mappings.message.value


def test_identifier_linker_edits_identifiers_in_order(editor) -> None:
    linker = IdentifierLinker(editor)
    assert [r["field"].value for r in linker.rows] == ["EmailAddress"]
    linker.add_button.click()
    pick(linker.rows[1]["field"], "Name")
    linker.rows[1]["property"].set_state({"value": "full_name"})
    assert [(i.field, i.property) for i in editor.model.import_.identifiers] == [
        ("EmailAddress", "email"),
        ("Name", "full_name"),
    ]
    linker.rows[0]["remove"].click()
    assert [i.field for i in editor.model.import_.identifiers] == ["Name"]


def test_views_follow_edits_made_elsewhere(editor) -> None:
    mappings, picker = MappingEditor(editor), ListPicker(editor)
    editor.edit_import(
        mappings=(ImportMapping("city", "city", "sum"),), allow_create=False, states=("Bounced",)
    )
    assert len(mappings.rows) == 1 and mappings.rows[0]["rule"].value == "sum"
    assert picker.allow_create.value is False
    assert [s for s, b in picker.states.items() if b.value] == ["Bounced"]


# --- save ------------------------------------------------------------------------------------


def test_save_round_trips_the_yaml(editor, setup) -> None:
    save, mappings, picker = SaveBar(editor), MappingEditor(editor), ListPicker(editor)
    assert "saved in demo.yaml" in save.state.value
    pick(mappings.rows[0]["rule"], "set")
    picker.lists.select.set_state(
        {"index": [option_index(picker.lists.select, x) for x in (setup.customers, setup.news)]}
    )
    assert editor.dirty and "unsaved" in save.state.value
    save.save_button.click()
    assert not editor.dirty
    loaded = load_connection(setup.path)
    assert loaded == editor.model
    assert loaded.import_.mappings[0].rule == "set"
    assert set(loaded.import_.lists) == {setup.news, setup.customers}
    text = setup.path.read_text()
    assert "env:CMTK_TEST_API_KEY" in text and SENTINEL_KEY not in text
    # Revert drops unsaved edits and the views follow.
    pick(mappings.rows[0]["rule"], "add")
    save.revert_button.click()
    assert editor.model == loaded and mappings.rows[0]["rule"].value == "set"


# --- status ----------------------------------------------------------------------------------


def test_status_bar_shows_readiness_and_broken_choices(editor, setup) -> None:
    bar, mappings = StatusBar(editor), MappingEditor(editor)
    assert bar.status.import_ready and bar.status.export_ready, bar.errors
    assert 'data-ready="true"' in bar.html.value and "cm-errors" not in bar.html.value
    assert "property &#x27;interests&#x27; does not exist yet" in bar.html.value  # a warning
    # 'sum' into a text property
    pick(mappings.rows[3]["rule"], "sum")
    assert not bar.status.import_ready and bar.status.export_ready
    assert any(e.startswith("import.mappings[3].rule: 'sum' needs a number") for e in bar.errors)
    # the key as the analyst sees it: the row numbered from 1, as on screen
    assert "cm-errors" in bar.html.value and "import mapping row 4 (rule)" in bar.html.value
    assert "✖ row 4: &#x27;sum&#x27; needs a number" in mappings.rows[3]["error"].value
    assert all(not r["error"].value for r in mappings.rows[:3])
    pick(mappings.rows[3]["rule"], "set")
    assert bar.status.import_ready


def test_status_bar_shows_a_field_missing_on_a_chosen_list(editor, setup) -> None:
    setup.cm.create_custom_field(setup.news, "shoe size", "Number")
    editor.reset_client()  # the catalog was read before the field existed
    bar, mappings, picker = StatusBar(editor), MappingEditor(editor), ListPicker(editor)
    mappings.add_button.click()
    pick(mappings.rows[4]["field"], "shoe size")
    assert bar.status.import_ready, bar.errors
    picker.lists.select.set_state(
        {"index": [option_index(picker.lists.select, x) for x in (setup.news, setup.customers)]}
    )
    assert not bar.status.import_ready
    assert any(
        "import.mappings[4].field: field 'shoe size' does not exist on list 'Customers'" in e
        for e in bar.errors
    ), bar.errors


def test_status_bar_names_a_missing_credential(editor, monkeypatch) -> None:
    monkeypatch.delenv("CMTK_TEST_API_KEY")
    editor.reset_client()
    bar = StatusBar(editor)
    assert not bar.status.import_ready
    assert bar.errors[0].startswith("campaign_monitor.credential:")
    assert "CMTK_TEST_API_KEY is not set" in bar.errors[0]


# --- preview ---------------------------------------------------------------------------------


def test_preview_refreshes_once_after_a_burst_of_edits(editor) -> None:
    clock = ManualScheduler()
    pane = PreviewPane(editor, "import", delay=0.5, scheduler=clock)
    mappings = MappingEditor(editor)
    assert pane.refreshes == 1
    first = pane.result
    assert first.counts["MODIFIED"] == 2 and first.counts["CREATED"] == 2
    assert "Bergen</span> → <b>Oslo" in pane.samples.value  # city 'set' overwrites
    assert "background:#fff3b0" in pane.samples.value  # changed cells highlighted
    pick(mappings.rows[3]["rule"], "add")
    pick(mappings.rows[3]["rule"], "set_if_empty")
    assert "updating preview" in pane.state.value and clock.pending == 1
    assert clock.advance(0.3) == 0 and pane.refreshes == 1  # still typing
    assert clock.advance(0.3) == 1 and pane.refreshes == 2
    assert "Oslo" not in pane.samples.value  # set_if_empty keeps Bergen
    assert 'data-outcome="MODIFIED"' in pane.counts.value


def test_preview_shows_why_it_cannot_run(editor) -> None:
    clock = ManualScheduler()
    pane = PreviewPane(editor, "import", scheduler=clock)
    editor.edit_import(lists=("0" * 32,))
    clock.advance(1)
    assert pane.result is None and "cannot run yet" in pane.message.value


def test_debouncer_flush_and_cancel() -> None:
    clock, calls = ManualScheduler(), []
    d = Debouncer(1.0, lambda: calls.append(1), clock)
    d.trigger()
    d.cancel()
    assert clock.advance(2) == 0 and calls == []
    d.trigger()
    d.flush()
    assert calls == [1] and not d.pending and clock.advance(2) == 0


# --- export and targeting --------------------------------------------------------------------


def test_export_editor_binds_the_export_goal_and_previews_payloads(editor, setup) -> None:
    clock = ManualScheduler()
    view = ExportEditor(editor)
    pane = PreviewPane(editor, "export", scheduler=clock)
    assert view.segment.value == "news" and view.match_property.value == "email"
    assert pane.result.counts["EXPORTED"] == 3
    assert "zed@example.com" in pane.samples.value and "Key" not in pane.samples.value
    pick(view.segment, "vip")
    view.mappings.add_button.click()
    pick(view.mappings.rows[2]["value"], "segments")
    assert view.mappings.rows[2]["property"].disabled
    pick(view.mappings.rows[2]["field"], "note")
    pick(view.consent, "Yes")
    pick(view.on_leave, "unsubscribe")
    view.resubscribe.set_state({"value": True})
    exp = editor.model.export
    assert exp.segment == "vip" and exp.consent_to_track == "Yes" and exp.resubscribe
    assert exp.on_leave == "unsubscribe"
    assert (exp.mappings[2].value, exp.mappings[2].field, exp.mappings[2].property) == (
        "segments",
        "note",
        None,
    )
    assert "Name" in view.mappings.rows[0]["field"]._options_values
    assert "EmailAddress" not in view.mappings.rows[0]["field"]._options_values  # not writable
    clock.advance(1)
    assert pane.result.counts["EXPORTED"] == 1
    assert "note = &#x27;news|vip&#x27;" in pane.samples.value


def test_targeting_editor_binds_the_targeting_goal(editor, setup) -> None:
    clock = ManualScheduler()
    view = TargetingEditor(editor)
    pane = PreviewPane(editor, "targeting", scheduler=clock)
    # every member of vip or news who is an active subscriber (zed@ is not: NOT_SUBSCRIBED)
    assert pane.result.counts["EXPORTED"] == 2 and pane.result.counts["NOT_SUBSCRIBED"] == 1
    assert view.segments.value == ("vip", "news")
    view.segments.set_state({"index": [option_index(view.segments, "vip")]})
    view.field.set_state({"value": "Audiences"})
    assert editor.model.targeting.segments == ("vip",)
    assert editor.model.targeting.field == "Audiences"
    clock.advance(1)
    assert pane.result.counts["EXPORTED"] == 1


def test_filling_in_a_missing_export_goal_creates_it(editor, setup) -> None:
    editor.edit(export=None)
    view = ExportEditor(editor)
    pane = PreviewPane(editor, "export", scheduler=ManualScheduler())
    assert view.segment.value is None  # a placeholder, not a segment the model lacks
    assert "No export goal yet" in pane.message.value
    pick(view.segment, "vip")
    view.lists.select.set_state({"index": [option_index(view.lists.select, setup.news)]})
    view.match_property.set_state({"value": "email"})
    exp = editor.model.export
    assert (exp.segment, exp.lists, exp.match_property) == ("vip", (setup.news,), "email")
    pane.refresh_button.click()
    assert pane.result.counts["EXPORTED"] == 1


# --- run and history -------------------------------------------------------------------------


def test_run_panel_runs_the_current_model_and_history_shows_it(editor) -> None:
    panel, history = RunPanel(editor, ("import",)), HistoryView(editor)
    assert "No runs yet" in history.html.value
    panel.dry_run.value = True
    panel.run_button.click()
    assert panel.results[-1].state == "PREVIEW"
    panel.dry_run.value = False
    panel.run_button.click()  # asks first, with the preview's counts
    assert len(panel.results) == 1 and "The preview says: CREATED 2" in panel.question.value
    panel.confirm_button.click()
    result = panel.results[-1]
    assert result.state == "FINISHED" and result.counts["CREATED"] == 2
    assert 'data-state="FINISHED"' in panel.output.value
    history.refresh_button.click()
    assert "FINISHED" in history.html.value and "CREATED 2" in history.html.value


# --- authentication --------------------------------------------------------------------------


def all_widget_state() -> str:
    return json.dumps(W.Widget.get_manager_state(drop_defaults=False), default=str)


def test_api_key_moves_to_the_credential_store_and_leaves_no_widget_state(editor) -> None:
    panel = AuthPanel(editor, oauth_app=None)
    assert "1 client(s) visible" in panel.state.value
    assert panel.client.value == editor.model.campaign_monitor.client_id
    panel.api_key.set_state({"value": SENTINEL_KEY})  # what the browser sends on Enter
    assert panel.api_key.value == ""
    assert SENTINEL_KEY not in all_widget_state()
    stored = editor.credentials.get("default")
    assert stored.api_key.reveal() == SENTINEL_KEY
    assert editor.model.campaign_monitor.credential == "default"  # env: refs cannot be written
    assert "saved as credential &#x27;default&#x27;" in panel.message.value
    assert "1 client(s) visible" in panel.state.value
    # A wrong key: cleared too, refused by Campaign Monitor, nothing stored over the good one.
    panel.api_key.set_state({"value": "wrong0key0000000000000000000000"})
    assert panel.api_key.value == "" and "not saved" in panel.message.value
    assert editor.credentials.get("default").api_key.reveal() == SENTINEL_KEY
    # Reset Authentication
    panel.reset_button.click()
    assert editor.credentials.find("default") is None
    assert "not connected" in panel.state.value
    assert SENTINEL_KEY not in all_widget_state()


def test_a_key_pasted_as_credential_name_is_cleared(editor) -> None:
    panel = AuthPanel(editor, oauth_app=None)
    panel.credential.set_state({"value": SENTINEL_KEY})
    assert panel.credential.value == "env:CMTK_TEST_API_KEY"
    assert "looks like a secret" in panel.message.value
    assert SENTINEL_KEY not in all_widget_state()


def test_connect_with_campaign_monitor_runs_the_oauth_flow(editor, setup) -> None:
    editor.edit_campaign_monitor(credential="team")
    log: list[str] = []
    panel = AuthPanel(
        editor,
        oauth_app=OAuthApp(
            TEST_OAUTH_APP.client_id, TEST_OAUTH_APP.client_secret, TEST_OAUTH_APP.redirect_uri
        ),
        open_browser=emulator_browser(setup.emulator.origin, log),
        threaded=False,
        timeout=10,
    )
    assert "not connected" in panel.state.value
    panel.connect_button.click()
    assert log == [f"200 {TEST_OAUTH_APP.redirect_uri}"], panel.message.value
    assert "connected: OAuth" in panel.message.value, panel.message.value
    assert editor.credentials.get("team").kind == "oauth"
    assert "1 client(s) visible" in panel.state.value
    state = all_widget_state()
    token = editor.credentials.get("team").access_token.reveal()
    assert token not in state and "emulator-test-secret" not in state


def test_client_dropdown_sets_the_client(editor, setup) -> None:
    editor.edit_campaign_monitor(client_id=None)
    panel = AuthPanel(editor, oauth_app=None)
    assert panel.client.value is None and panel.client.options[0][0] == "— choose —"
    panel.client.set_state({"index": 1})
    assert editor.model.campaign_monitor.client_id == setup.client_id


@pytest.mark.parametrize("interactive", [True, False])
def test_notebook_steps_build(editor, interactive: bool) -> None:
    from cmtoolkit.widgets import notebook as nb

    nb.auth_step(editor, interactive)
    nb.status_step(editor, interactive)
    nb.import_step(editor, interactive)
    nb.export_step(editor, interactive)
    nb.preview_step(editor, ["import", "export", "targeting"], interactive)
    results = nb.run_step(editor, ["import"], interactive=interactive, dry_run=True)
    assert interactive or results[0].state is RunState.PREVIEW
    nb.history_step(editor, interactive)
    assert SENTINEL_KEY not in all_widget_state()


# --- the notebook run path ---------------------------------------------------------------------


def test_run_step_continues_the_run_cmtoolkit_run_recorded(editor) -> None:
    from cmtoolkit.sync import RunState, ledger
    from cmtoolkit.widgets import notebook as nb

    with editor.workspace.store.transaction() as con:  # what `cmtoolkit run` does first
        run_id = ledger.start_run(con, "demo", "import", full=False)
    (result,) = nb.run_step(editor, ["import"], interactive=False, run_id=run_id)
    assert result.run_id == run_id and result.state is RunState.FINISHED
    (run,) = editor.history()
    assert run.run_id == run_id and run.state is RunState.FINISHED and run.counts


def test_run_step_refuses_a_run_id_that_is_not_waiting_for_it(editor) -> None:
    from cmtoolkit.errors import ConfigurationError, RunError
    from cmtoolkit.sync import RunState, ledger
    from cmtoolkit.widgets import notebook as nb

    with editor.workspace.store.transaction() as con:
        run_id = ledger.start_run(con, "demo", "export", full=False)
    with pytest.raises(RunError, match="is not waiting to start as the import run of 'demo'"):
        nb.run_step(editor, ["import"], interactive=False, run_id=run_id)
    with pytest.raises(ConfigurationError, match="one real run of one goal"):
        nb.run_step(editor, ["import"], interactive=False, dry_run=True, run_id=run_id)
    (run,) = editor.history()
    assert run.run_id == run_id and run.state is RunState.STARTING  # left for its runner


def test_run_step_refuses_a_goal_its_status_says_is_not_ready(editor) -> None:
    from cmtoolkit.errors import ConfigurationError
    from cmtoolkit.widgets import notebook as nb

    editor.edit_import(lists=())
    assert not editor.status().import_ready
    with pytest.raises(ConfigurationError, match=r"not ready(.|\n)*import\.lists: select"):
        nb.run_step(editor, ["import"], interactive=False)
    assert editor.history() == []
