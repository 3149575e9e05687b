"""Issue 16's widget bugs, each with a test that fails without its fix, and the connection
lifecycle widgets (switch on, schedule, objectives, alerts, new connection)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import polars as pl
import pytest

from cmtoolkit.connection.file import load_connection
from cmtoolkit.emulator import DEFAULT_API_KEY
from cmtoolkit.errors import NotFound
from cmtoolkit.widgets import (
    AuthPanel,
    ExportEditor,
    IdentifierLinker,
    ListPicker,
    MappingEditor,
    PreviewPane,
    RunPanel,
    SaveBar,
    TargetingEditor,
)
from cmtoolkit.widgets import notebook as nb
from cmtoolkit.widgets.settings import ConnectionSettings, NameBox

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


# --- save and run respect the status --------------------------------------------------------------


def test_save_with_errors_saves_switched_off_and_says_so(editor, setup) -> None:
    bar, mappings = SaveBar(editor), MappingEditor(editor)
    pick(mappings.rows[3]["rule"], "sum")  # 'sum' into the text property city
    assert "✖ row 4:" in mappings.rows[3]["error"].value
    bar.save_button.click()
    saved = load_connection(setup.path)
    assert not saved.enabled and saved.import_.mappings[3].rule == "sum"
    assert "switched off" in bar.state.value and "1 problem(s)" in bar.state.value
    assert "✔" not in bar.state.value
    pick(mappings.rows[3]["rule"], "set")  # fixed: the row's error goes, a save is plain
    assert mappings.rows[3]["error"].value == ""
    editor.edit(enabled=True)
    bar.save_button.click()
    assert load_connection(setup.path).enabled and "✔ saved" in bar.state.value


def test_run_now_asks_with_the_previews_counts_and_cancel_runs_nothing(editor) -> None:
    panel = RunPanel(editor, ("import",))
    panel.run_button.click()
    assert panel.confirm_box.layout.display == "flex"
    assert "Run import for real?" in panel.question.value
    assert "CREATED 2" in panel.question.value and "MODIFIED" in panel.question.value
    panel.cancel_button.click()
    assert panel.results == [] and editor.history() == []
    assert panel.confirm_box.layout.display == "none"


def test_run_now_refuses_a_goal_whose_status_has_errors(editor) -> None:
    panel = RunPanel(editor, ("import",))
    editor.edit_import(lists=())
    panel.run_button.click()
    assert "import cannot run: fix first" in panel.output.value and "import.lists" in (
        panel.output.value
    )
    assert panel.confirm_box.layout.display == "none" and editor.history() == []


# --- the connection's own settings ----------------------------------------------------------------


def test_settings_switch_on_schedule_objectives_and_alerts(editor, setup) -> None:
    setup.ws.store.load(
        pl.DataFrame(
            {"profile_id": ["p1", "p2", "p3"],
             "consented_objectives": [["email_marketing"], ["email_marketing", "ads"], []]}
        )
    )  # fmt: skip
    view = ConnectionSettings(editor)
    labels = dict((v, k) for k, v in view.objectives.options)
    assert labels == {"ads": "ads — 1 profiles consent",
                      "email_marketing": "email_marketing — 2 profiles consent"}  # fmt: skip
    view.enabled.set_state({"index": 0})
    assert editor.model.enabled is False
    pick(view.preset, "0 3 * * *")
    assert editor.model.schedule == "0 3 * * *" and view.cron.disabled
    pick(view.preset, "custom")
    view.cron.set_state({"value": "61 * * * *"})  # refused, said next to it
    assert editor.model.schedule == "0 3 * * *" and "minute field" in view.cron_note.value
    view.cron.set_state({"value": "30 5 * * 1-5"})
    assert editor.model.schedule == "30 5 * * 1-5"
    view.objectives.set_state({"index": [1]})
    assert "next runs" in view.cron_note.value  # the times themselves: the test below
    assert editor.model.objectives == ("email_marketing",)
    view.on_failure.set_state({"value": True})
    view.rejected.set_state({"value": "10"})
    view.webhook.set_state({"value": "ftp://nope"})
    assert "http:// or https://" in view.alerts_note.value
    view.webhook.set_state({"value": "https://hooks.example.com/x"})
    assert editor.model.alerts == {
        "on_failure": True, "rejected_above": 10, "webhook": "https://hooks.example.com/x"
    }  # fmt: skip
    editor.save()
    saved = load_connection(setup.path)
    assert (saved.enabled, saved.schedule, saved.objectives) == (
        False, "30 5 * * 1-5", ("email_marketing",)
    )  # fmt: skip
    assert saved.alerts == editor.model.alerts


def test_the_schedule_shows_its_next_three_run_times(editor) -> None:
    now = datetime(2026, 11, 27, 5, 45)  # a Friday, before 06:00 UTC
    view = ConnectionSettings(editor, clock=lambda: now)
    pick(view.preset, "0 6 * * 1-5")  # weekdays at 06:00: today, then Monday and Tuesday
    assert "Fri 2026-11-27 06:00, Mon 2026-11-30 06:00, Tue 2026-12-01 06:00" in (
        view.cron_note.value
    )
    pick(view.preset, "custom")
    view.cron.set_state({"value": "*/20 23 31 12 *"})  # New Year's Eve, every 20 minutes
    assert "Thu 2026-12-31 23:00, Thu 2026-12-31 23:20, Thu 2026-12-31 23:40" in (
        view.cron_note.value
    )
    view.cron.set_state({"value": "0 3 * *"})  # not a schedule: no times, the problem
    assert "next runs" not in view.cron_note.value and "5 fields" in view.cron_note.value
    pick(view.preset, "")
    assert "only when started by hand" in view.cron_note.value


def test_a_new_connection_name_credential_client_save(setup, tmp_path) -> None:
    """01_connect's first step for a connection the workspace does not have yet."""
    editor = nb.open_editor(setup.ws, "Team news", create=True, credentials=None)
    assert not editor.path.exists() and not editor.model.enabled and editor.model.id
    names = NameBox(editor)
    names.name.set_state({"value": "demo"})  # taken: refused, said so
    assert "demo.yaml exists already" in names.message.value and editor.model.name == "Team news"
    names.name.set_state({"value": "Weekly"})
    assert editor.model.name == "Weekly" and editor.path.name == "weekly.yaml"
    panel = AuthPanel(editor, verify=None)
    panel.credential.set_state({"value": "env:CMTK_TEST_API_KEY"})
    pick(panel.client, setup.client_id)
    assert editor.model.campaign_monitor.client_id == setup.client_id
    bar = SaveBar(editor)
    bar.save_button.click()  # no goal yet: saved, switched off, saying so
    saved = load_connection(editor.path)
    assert saved.id == editor.model.id and saved.name == "Weekly" and not saved.enabled
    assert saved.campaign_monitor.credential == "env:CMTK_TEST_API_KEY"
    assert "switched off" in bar.state.value
    names.name.set_state({"value": "Renamed"})  # saved: its name is its file's
    assert "weekly.yaml is saved" in names.message.value and editor.model.name == "Weekly"


# --- errors that say what is wrong ----------------------------------------------------------------


def test_an_unknown_list_id_is_named_with_the_lists_that_exist(editor, setup, cm) -> None:
    editor.edit_import(lists=(UNKNOWN_LIST,))
    pane = PreviewPane(editor, "import")
    text = pane.message.value
    assert f"no list {UNKNOWN_LIST} in this account" in text and "code 101" in text
    assert "credential" not in text and "API key" not in text
    assert f"Newsletter ({setup.news})" in text and f"Customers ({setup.customers})" in text
    with pytest.raises(NotFound, match=r"no client 0{32} in this account"):
        cm.lists("0" * 32)


def test_a_refused_env_key_is_not_told_to_log_in_as_env(editor, monkeypatch) -> None:
    monkeypatch.setenv("CMTK_TEST_API_KEY", "not-the-key")
    editor.reset_client()
    errors = [str(p) for p in editor.status().errors]
    assert any("check the API key in $CMTK_TEST_API_KEY" in e for e in errors), errors
    assert not any("--credential env:" in e for e in errors)


def test_preview_rows_name_the_person_beside_the_profile_id(editor) -> None:
    pane = PreviewPane(editor, "import")
    html = pane.samples.value
    assert "<th" in html and "email / identifier" in html
    ann = html.index("<b>ann@example.com</b>")  # stored profile p1: its email
    assert html.index("p1", ann) > ann
    assert "Robert Baker" in html  # p2's stored name beside its id
    assert "<b>cat@example.com</b>" in html  # a new profile: the identifier it would get
    cat = html.index("<b>cat@example.com</b>")
    assert html.index("Cat Cole", cat) < html.index("(new)", cat)  # and its name


def test_segment_choices_show_their_sizes(editor) -> None:
    export, targeting = ExportEditor(editor), TargetingEditor(editor)
    labels = dict((v, k) for k, v in export.segment.options if v)
    assert labels == {"news": "news — 3 profiles", "vip": "vip — 1 profiles"}
    assert dict((v, k) for k, v in targeting.segments.options) == labels
    assert export.consent.style.description_width == "150px"  # "Consent to track" not cut
    chart = targeting.sizes.value  # sizes as bars (tests/widgets/test_charts.py reads them)
    assert chart.index("news") < chart.index("vip") and 'data-value="3"' in chart


def test_an_import_in_the_notebook_shows_a_bar_for_its_read(editor) -> None:
    """The import's staging reports 'read' (contacts read of the total): Run now shows it as a
    bar, full when the last page is in (the Newsletter list's 4 active subscribers)."""
    panel = RunPanel(editor, ("import",))
    panel.run_button.click()
    panel.confirm_button.click()
    assert panel.results[-1].state == "FINISHED"
    read = panel.progress.meters["read"]
    assert read.finished and read.total == read.done == 4
    bar, label = next(
        row.children for row in panel.progress.box.children if "read" in row.children[1].value
    )
    assert (bar.value, bar.max, bar.bar_style) == (4, 4, "success")
    assert label.value.startswith("read: 4/4 (100%)")


def test_run_now_shows_progress_bars_while_it_runs(editor, setup) -> None:
    editor.edit_export(lists=(setup.customers,))
    panel = RunPanel(editor, ("export",))
    panel.run_button.click()
    panel.confirm_button.click()
    assert panel.results[-1].state == "FINISHED"
    (send,) = panel.progress.meters.values()  # the export's batches, with a bar
    assert send.stage == "send" and send.finished and send.total == send.done > 0
    assert panel.progress_box.children == (panel.progress.box,)
