"""The import notebook's email-behaviour widgets: the editor switches ``email_activity`` on and
off in the connection, and the engagement charts render from a real store's events."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import polars as pl

from cmtoolkit.connection.activity import EVENTS, EmailActivity
from cmtoolkit.widgets import ConnectionEditor
from cmtoolkit.widgets.activity import EmailActivityEditor, engagement, engagement_html
from cmtoolkit.workspace import Workspace


def test_the_editor_switches_email_activity_on_and_picks_properties(
    editor: ConnectionEditor,
) -> None:
    view = EmailActivityEditor(editor)
    assert editor.model.import_ is not None and editor.model.import_.email_activity is None
    assert view.details.layout.display == "none"
    view.enabled.value = True
    assert editor.model.import_.email_activity == EmailActivity("90d", EVENTS, ())
    view.derived["last_open"][0].value = True
    view.derived["opens_90d"][1].value = "engagement_90d"
    view.derived["opens_90d"][0].value = True
    view.events["bounce"].value = False
    got = editor.model.import_.email_activity
    assert got == EmailActivity(
        "90d",
        ("open", "click", "unsubscribe"),
        (("last_open", "cm_last_open"), ("opens_90d", "engagement_90d")),
    )
    view.since.value = "soon"
    assert "not a duration or a date" in view.message.value
    assert editor.model.import_.email_activity == got  # a bad value changes nothing
    view.since.value = "2025-01-01"
    assert "email_activity" in editor.save().read_text()
    view.enabled.value = False
    assert editor.model.import_.email_activity is None


def test_engagement_charts_render_from_the_store(tmp_path: Path) -> None:
    ws = Workspace.create(tmp_path / "ws")
    assert "No email activity" in engagement_html(ws.store)
    ws.store.load(pl.DataFrame({"profile_id": ["a", "b", "c"]}))
    at = dt.datetime(2025, 6, 1, 9)
    rows = [
        ("a", "c1", "Spring <sale>", "open", at),
        ("a", "c1", "Spring <sale>", "click", at),
        ("a", "c2", "June news", "open", at + dt.timedelta(days=7)),
        ("b", "c1", "Spring <sale>", "open", at - dt.timedelta(days=60)),
    ]
    with ws.store.connect(write=True) as con:
        con.executemany("INSERT INTO email_events VALUES (?, ?, ?, ?, ?, '')", rows)
    data = engagement(ws.store)
    assert data.campaigns == [("Spring <sale>", 2, 1), ("June news", 1, 0)]
    assert (data.profiles, data.active_30d, data.active_90d) == (3, 1, 2)
    assert dict(data.histogram)["0"] == 1 and dict(data.histogram)["2"] == 1
    html = engagement_html(ws.store)
    assert html.count("<svg") == 3
    assert "Spring &lt;sale&gt;" in html and "<sale>" not in html
    assert "up to 2025-06-08" in html
