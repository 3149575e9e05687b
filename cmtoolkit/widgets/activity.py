"""Email behaviour in the import notebook: switch ``import.email_activity`` on, pick the events and
the derived properties (:class:`EmailActivityEditor`), and engagement charts from the store's
``email_events`` (:func:`engagement_html`): opens and clicks per campaign, the share of profiles
active in the last 30 and 90 days, and a histogram of opens per profile.

The charts are inline SVG (:mod:`.charts`) in one HTML fragment, so they show the same in
JupyterLab, in an ``HTML`` widget and in the static nbconvert report.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from typing import Any

import ipywidgets as W
from IPython.display import HTML, display

from cmtoolkit.connection.activity import DERIVED, EVENTS, EmailActivity, since_problem
from cmtoolkit.connection.model import Connection
from cmtoolkit.profiles.events import has_events
from cmtoolkit.profiles.store import Store
from cmtoolkit.widgets.charts import bars_svg
from cmtoolkit.widgets.editor import ConnectionEditor
from cmtoolkit.widgets.html import GREY, esc
from cmtoolkit.widgets.view import View

__all__ = [
    "EmailActivityEditor",
    "Engagement",
    "email_activity_step",
    "engagement",
    "engagement_html",
    "engagement_step",
]

OPEN, CLICK, ACTIVE = "#0969da", "#bf3989", "#1a7f37"
HISTOGRAM_BINS = ((0, 0, "0"), (1, 1, "1"), (2, 2, "2"), (3, 5, "3–5"), (6, 10, "6–10"))
DERIVED_LABELS = {
    "last_open": "Last open (datetime)",
    "last_click": "Last click (datetime)",
    "opens_90d": "Opens in 90 days (number)",
    "clicks_90d": "Clicks in 90 days (number)",
    "opened_campaigns": "Opened campaigns (text)",
    "clicked_campaigns": "Clicked campaigns (text)",
}


class EmailActivityEditor(View):
    """The import's ``email_activity`` section: on/off, since, events, derived properties."""

    def __init__(self, editor: ConnectionEditor) -> None:
        super().__init__(editor)
        self.enabled = W.Checkbox(description="Read email behaviour", indent=False)
        self.since = W.Text(description="First run reads", placeholder="90d or 2025-01-01")
        self.events = {e: W.Checkbox(description=e, indent=False) for e in EVENTS}
        self.derived = {
            name: (
                W.Checkbox(description=DERIVED_LABELS[name], indent=False),
                W.Text(value=f"cm_{name}", placeholder="property"),
            )
            for name in DERIVED
        }
        for w in (self.enabled, self.since, *self.events.values()):
            w.observe(self._changed, "value")
        for box, text in self.derived.values():
            box.observe(self._changed, "value")
            text.observe(self._changed, "value")
        self.details = W.VBox(
            [
                self.since,
                W.HBox(list(self.events.values())),
                W.HTML("<b>Derived properties</b> (recomputed on every run)"),
                *(W.HBox([box, text]) for box, text in self.derived.values()),
            ]
        )
        self.children = [self.enabled, self.details, self.message]
        self.start()

    def redraw(self, model: Connection) -> None:
        settings = model.import_.email_activity if model.import_ is not None else None
        self.enabled.value = settings is not None
        self.details.layout.display = "" if settings is not None else "none"
        current = settings or EmailActivity()
        self.since.value = current.since
        for name, box in self.events.items():
            box.value = name in current.events
        chosen = dict(current.properties)
        for name, (box, text) in self.derived.items():
            box.value = name in chosen
            if name in chosen:
                text.value = chosen[name]

    def settings(self) -> EmailActivity | None:
        """What the widgets say, or None when switched off; a problem shows and raises."""
        if not self.enabled.value:
            return None
        problem = since_problem(self.since.value or "90d")
        if problem:
            raise ValueError(problem)
        events = tuple(e for e, box in self.events.items() if box.value)
        if not events:
            raise ValueError("pick at least one event")
        props = tuple(
            (name, text.value.strip())
            for name, (box, text) in self.derived.items()
            if box.value and text.value.strip()
        )
        return EmailActivity(self.since.value.strip() or "90d", events, props)

    def _changed(self, _change: dict[str, Any]) -> None:
        if self.updating:
            return
        try:
            settings = self.settings()
        except ValueError as exc:
            self.show_error(str(exc))
            return
        self.message.value = ""
        self.editor.edit_import(email_activity=settings)


@dataclass
class Engagement:
    """What the charts show, computed from ``email_events`` in a few aggregate queries."""

    reference: dt.datetime | None  # "now" for the 30/90-day shares: the latest event
    campaigns: list[tuple[str, int, int]] = field(default_factory=list)  # name, opens, clicks
    profiles: int = 0
    active_30d: int = 0
    active_90d: int = 0
    histogram: list[tuple[str, int]] = field(default_factory=list)


def engagement(store: Store, campaigns: int = 12) -> Engagement:
    """The newest ``campaigns`` campaigns' opens and clicks, activity shares and the histogram.

    The 30/90-day windows end at the latest event in the store, so a store filled from an old
    account still shows its shape (the chart says which date that is).
    """
    if not store.path.exists():
        return Engagement(None)
    with store.connect() as con:
        if not has_events(con):
            return Engagement(None)
        (reference, profiles) = con.execute(
            'SELECT max("at"), (SELECT count(*) FROM profiles) FROM email_events'
        ).fetchone() or (None, 0)
        if reference is None:
            return Engagement(None, profiles=int(profiles or 0))
        rows = con.execute(
            """SELECT campaign, count(*) FILTER (WHERE event = 'open'),
                      count(*) FILTER (WHERE event = 'click')
               FROM email_events GROUP BY campaign_id, campaign
               ORDER BY min("at") DESC LIMIT ?""",
            [campaigns],
        ).fetchall()
        active = con.execute(
            """SELECT count(DISTINCT profile_id) FILTER (WHERE "at" >= ?),
                      count(DISTINCT profile_id) FILTER (WHERE "at" >= ?)
               FROM email_events WHERE event IN ('open', 'click')""",
            [reference - dt.timedelta(days=30), reference - dt.timedelta(days=90)],
        ).fetchone() or (0, 0)
        opens = dict(
            con.execute(
                """SELECT n, count(*) FROM (
                       SELECT p.profile_id, count(e.profile_id) AS n FROM profiles AS p
                       LEFT JOIN email_events AS e
                         ON e.profile_id = p.profile_id AND e.event = 'open'
                       GROUP BY p.profile_id)
                   GROUP BY n"""
            ).fetchall()
        )
    bins = [
        (label, sum(c for n, c in opens.items() if lo <= n <= hi))
        for lo, hi, label in HISTOGRAM_BINS
    ]
    bins.append(("11+", sum(c for n, c in opens.items() if n > 10)))
    return Engagement(
        reference,
        [(str(n), int(o), int(c)) for n, o, c in reversed(rows)],
        int(profiles or 0),
        int(active[0] or 0),
        int(active[1] or 0),
        bins,
    )


def engagement_html(store: Store, campaigns: int = 12, *, quiet: bool = False) -> str:
    """The three charts as one self-contained HTML fragment (inline SVG); without events, how
    to get them, or (``quiet``, a report) nothing."""
    data = engagement(store, campaigns)
    if data.reference is None:
        if quiet:
            return ""
        return (
            f'<p style="color:{GREY}">No email activity in the store yet: switch on '
            "<b>Read email behaviour</b> above and run the import.</p>"
        )
    labels = [name for name, _, _ in data.campaigns]
    per_campaign = bars_svg(
        "Opens and clicks per campaign",
        labels,
        {"opens": [o for _, o, _ in data.campaigns], "clicks": [c for _, _, c in data.campaigns]},
        {"opens": OPEN, "clicks": CLICK},
    )
    total = max(data.profiles, 1)
    shares = bars_svg(
        f"Profiles active (opened or clicked) up to {data.reference:%Y-%m-%d}",
        ["last 30 days", "last 90 days"],
        {"% of profiles": [100 * data.active_30d / total, 100 * data.active_90d / total]},
        {"% of profiles": ACTIVE},
        unit="%",
        width=320,
    )
    histogram = bars_svg(
        "Profiles by number of opens",
        [label for label, _ in data.histogram],
        {"profiles": [n for _, n in data.histogram]},
        {"profiles": OPEN},
        width=380,
    )
    return (
        '<div class="cmtoolkit-engagement" style="display:flex;flex-wrap:wrap;gap:16px">'
        f"{per_campaign}{shares}{histogram}</div>"
    )


def email_activity_step(editor: ConnectionEditor, interactive: bool) -> None:
    """The notebook's "Email behaviour" cell: the editor, or (batch) the settings as text."""
    if interactive:
        display(EmailActivityEditor(editor))
        return
    goal = editor.model.import_
    settings = goal.email_activity if goal is not None else None
    if settings is None:
        display(HTML(f'<p style="color:{GREY}">Email behaviour is not read.</p>'))
        return
    props = ", ".join(f"{esc(n)} → <code>{esc(p)}</code>" for n, p in settings.properties)
    display(
        HTML(
            f"<p>Reads <b>{esc(', '.join(settings.events))}</b> since <b>{esc(settings.since)}"
            f"</b> (first run; later runs continue). Derived: {props or 'none'}.</p>"
        )
    )


def engagement_step(editor: ConnectionEditor, interactive: bool = True) -> None:
    """The notebook's engagement charts (the same HTML interactive and in the report); a report
    without email events shows nothing, so its section is left out."""
    html = engagement_html(editor.workspace.store, quiet=not interactive)
    if html:
        display(HTML(html))
