"""HTML renderings shared by the widgets (interactive) and the notebooks' batch path (static).

Every function returns a self-contained HTML fragment with inline styles, so the same text shows
in JupyterLab, in an ``HTML`` widget and in the nbconvert report. Values are escaped; nothing
here ever receives a credential.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import polars as pl

from cmtoolkit.connection.model import Connection
from cmtoolkit.connection.status import Problem, Status
from cmtoolkit.sync import Run, RunState
from cmtoolkit.sync.imports.plan import NumberSpread
from cmtoolkit.widgets.charts import OUTCOME_SHADES, bars_svg, esc, hbars_svg, number

GREEN, RED, GREY, AMBER = "#1a7f37", "#cf222e", "#8c959f", "#9a6700"
CHANGED_BG = "#fff3b0"
OUTCOME_COLOURS = {
    "CREATED": GREEN,
    "MODIFIED": GREEN,
    "EXPORTED": GREEN,
    "UNCHANGED": GREY,
    "REMOVED": AMBER,
    "CONSENT_MISMATCH": AMBER,
    "NO_IDENTIFIER": AMBER,
    "NOT_FOUND": AMBER,
    "AMBIGUOUS": RED,
    "INVALID": RED,
    "REJECTED": RED,
}
RULE_LABELS = {"set": "Set", "set_if_empty": "Set if empty", "add": "Add", "sum": "Sum"}
VALUE_TYPE_LABELS = {
    "profile_id": "Profile identifier",
    "segments": "Associated segment(s)",
    "interactions": "All viewed interactions",
    "property": "Profile property",
}
TABLE = 'style="border-collapse:collapse;font-size:13px;margin:4px 0"'
CELL = "padding:3px 8px;border:1px solid #d0d7de;text-align:left;vertical-align:top"


def table(headers: Sequence[str], rows: Iterable[Sequence[Any]], *, cls: str = "") -> str:
    """A plain table; a cell given as ``(text, style)`` gets that extra style."""
    head = "".join(f'<th style="{CELL};background:#f6f8fa">{esc(h)}</th>' for h in headers)
    body = []
    for row in rows:
        cells = []
        for cell in row:
            if isinstance(cell, tuple):
                text, style = cell
                cells.append(f'<td style="{CELL};{style}">{text}</td>')
            else:
                cells.append(f'<td style="{CELL}">{esc(cell)}</td>')
        body.append("<tr>" + "".join(cells) + "</tr>")
    return f'<table class="{cls}" {TABLE}><tr>{head}</tr>{"".join(body)}</table>'


# --- status ------------------------------------------------------------------------------------


def _arrow(label: str, configured: bool, ready: bool) -> str:
    if not configured:
        colour, word = GREY, "not configured"
    elif ready:
        colour, word = GREEN, "ready"
    else:
        colour, word = RED, "not ready"
    return (
        f'<span class="cm-arrow" data-ready="{str(ready).lower()}" '
        f'style="color:{colour};font-weight:600;margin-right:18px">{esc(label)} '
        f"({word})</span>"
    )


_ROW_KEY = re.compile(r"^(import|export)\.(mappings|identifiers)\[(\d+)\](?:\.(\w+))?$")
_ROW_NAMES = {"mappings": "mapping", "identifiers": "identifier"}


def human_key(key: str) -> str:
    """A key path as the analyst sees it: ``import.mappings[0].rule`` → ``import mapping row 1
    (rule)``; rows are numbered from 1, as on screen."""
    m = _ROW_KEY.match(key)
    if not m:
        return key or "connection"
    goal, rows, index, attr = m.groups()
    tail = f" ({attr})" if attr else ""
    return f"{goal} {_ROW_NAMES[rows]} row {int(index) + 1}{tail}"


def _problems_html(problems: Iterable[Problem], css_class: str, colour: str, title: str) -> str:
    items = "".join(
        f"<li><code>{esc(human_key(p.key))}</code>: {esc(p.message)}</li>" for p in problems
    )
    return (
        f'<div class="{css_class}" style="color:{colour}"><b>{title}</b>'
        f'<ul style="margin:2px 0">{items}</ul></div>'
    )


def status_html(status: Status, connection: Connection) -> str:
    """BlueConic's status indicator: direction arrows, then what to fix (red) and warnings."""
    goals = connection.goals
    arrows = (
        _arrow("Campaign Monitor ⟶ profiles", "import" in goals, status.import_ready)
        + _arrow("profiles ⟶ Campaign Monitor", "export" in goals, status.export_ready)
        + _arrow("segments ⟶ targeting", "targeting" in goals, status.targeting_ready)
    )
    parts = [f'<div class="cm-status">{arrows}</div>']
    if status.errors:
        title = f"✖ {len(status.errors)} to fix before this connection can run:"
        parts.append(_problems_html(status.errors, "cm-errors", RED, title))
    if status.warnings:
        parts.append(_problems_html(status.warnings, "cm-warnings", AMBER, "⚠ warnings:"))
    if not status.errors and not status.warnings:
        parts.append(f'<div style="color:{GREEN}">✔ no problems found</div>')
    return "".join(parts)


# --- settings ----------------------------------------------------------------------------------


def import_settings_html(connection: Connection, list_names: dict[str, str]) -> str:
    imp = connection.import_
    if imp is None:
        return "<p>No import goal.</p>"
    lists = ", ".join(esc(list_names.get(x, x)) for x in imp.lists) or "none"
    head = (
        f"<p><b>Lists:</b> {lists} · <b>states:</b> {esc(', '.join(imp.states))} · "
        f"<b>create new profiles:</b> {'yes' if imp.allow_create else 'no'}"
        + (
            f" · <b>list names saved to:</b> {esc(imp.save_list_names_to)}"
            if imp.save_list_names_to
            else ""
        )
        + "</p>"
    )
    idents = table(
        ["#", "Campaign Monitor field", "profile property"],
        [(i + 1, x.field, x.property) for i, x in enumerate(imp.identifiers)],
    )
    maps = table(
        ["Campaign Monitor field", "profile property", "merge rule"],
        [(m.field, m.property, RULE_LABELS.get(m.rule, m.rule)) for m in imp.mappings],
    )
    return f"{head}<p><b>Identifiers</b> (first match wins)</p>{idents}<p><b>Mappings</b></p>{maps}"


def export_settings_html(connection: Connection, list_names: dict[str, str]) -> str:
    parts = []
    exp = connection.export
    if exp is not None:
        lists = ", ".join(esc(list_names.get(x, x)) for x in exp.lists) or "none"
        parts.append(
            f"<p><b>Export</b> segment <b>{esc(exp.segment or '—')}</b> to {lists}, matched on "
            f"<b>{esc(exp.match_property or '—')}</b> · consent to track "
            f"{esc(exp.consent_to_track)} · resubscribe {'yes' if exp.resubscribe else 'no'} · "
            f"leavers: {esc(exp.on_leave)}</p>"
        )
        parts.append(
            table(
                ["value type", "profile property", "Campaign Monitor field"],
                [
                    (VALUE_TYPE_LABELS.get(m.value, m.value), m.property or "", m.field)
                    for m in exp.mappings
                ],
            )
        )
    tgt = connection.targeting
    if tgt is not None:
        lists = ", ".join(esc(list_names.get(x, x)) for x in tgt.lists) or "none"
        parts.append(
            f"<p><b>Targeting</b>: segments {esc(', '.join(tgt.segments) or 'none')} written to "
            f"field <b>{esc(tgt.field)}</b> on {lists}</p>"
        )
    return "".join(parts) or "<p>No export or targeting goal.</p>"


# --- preview and results -----------------------------------------------------------------------


def counts_html(counts: dict[str, int], *, title: str = "") -> str:
    cells = []
    for outcome, n in counts.items():
        colour = OUTCOME_COLOURS.get(outcome, "#24292f") if n else GREY
        cells.append(
            f'<td class="cm-count" data-outcome="{esc(outcome)}" style="{CELL};color:{colour}">'
            f'<div style="font-size:11px">{esc(outcome)}</div>'
            f'<div style="font-size:18px;font-weight:600">{n:,}</div></td>'
        )
    caption = f"<div><b>{esc(title)}</b></div>" if title else ""
    return f"{caption}<table {TABLE}><tr>{''.join(cells)}</tr></table>"


def _values(value: object) -> str:
    if value is None:
        return "∅"
    if isinstance(value, list | tuple):
        return " | ".join(str(v) for v in value) if value else "∅"
    return str(value)


def before_after_html(
    samples: pl.DataFrame | None, people: dict[str, tuple[str, str]] | None = None
) -> str:
    """Import samples (profile_id, created, property, before, after) as one row per profile.

    A property the run changes shows ``before → after`` on a highlighted cell. ``people`` gives
    each profile id its (email or identifier, name), shown beside the id so a row is someone.
    """
    if samples is None or not len(samples):
        return "<p><i>No profile would change.</i></p>"
    rows = samples.to_dicts()
    props: list[str] = []
    by_profile: dict[str, dict[str, Any]] = {}
    for r in rows:
        if r["property"] not in props:
            props.append(r["property"])
        entry = by_profile.setdefault(r["profile_id"], {"created": r.get("created"), "cells": {}})
        entry["cells"][r["property"]] = (r["before"], r["after"])
    out = []
    people = people or {}
    for pid, entry in by_profile.items():
        who, name = people.get(pid, ("", ""))
        cells: list[Any] = [
            (f"<b>{esc(who)}</b>" if who else "", ""),
            (esc(name), ""),
            (f'<span style="color:{GREY}">{esc(pid)}</span>', "white-space:nowrap"),
        ]
        if entry["created"]:
            cells[2] = (cells[2][0] + " <i>(new)</i>", "white-space:nowrap")
        for p in props:
            if p in entry["cells"]:
                before, after = entry["cells"][p]
                cells.append(
                    (
                        f'<span class="cm-changed" style="color:{GREY}">{esc(_values(before))}'
                        f"</span> → <b>{esc(_values(after))}</b>",
                        f"background:{CHANGED_BG}",
                    )
                )
            else:
                cells.append(("", ""))
        out.append(cells)
    return table(["email / identifier", "name", "profile", *props], out, cls="cm-before-after")


def payload_html(samples: pl.DataFrame | None) -> str:
    """Export/targeting samples: outcome, reason and the payload as it would be sent."""
    if samples is None or not len(samples):
        return "<p><i>Nothing would be sent.</i></p>"
    out = []
    for r in samples.to_dicts():
        payload = r.get("payload")
        try:
            data = json.loads(payload) if payload else {}
        except (TypeError, ValueError):
            data = {"payload": payload}
        fields = [f"{k}: {v}" for k, v in data.items() if k != "CustomFields"]
        for cf in data.get("CustomFields", []) or []:
            fields.append(f"{cf.get('Key')} = {cf.get('Value')!r}")
        colour = OUTCOME_COLOURS.get(r.get("outcome", ""), "#24292f")
        out.append(
            (
                r.get("profile_id", ""),
                r.get("email", "") or "",
                (esc(r.get("outcome", "")), f"color:{colour};font-weight:600"),
                r.get("reason") or "",
                ("<br>".join(esc(f) for f in fields), "font-family:monospace;font-size:12px"),
            )
        )
    return table(["profile", "email", "outcome", "reason", "payload"], out, cls="cm-payloads")


def samples_html(
    goal: str, samples: pl.DataFrame | None, people: dict[str, tuple[str, str]] | None = None
) -> str:
    return before_after_html(samples, people) if goal == "import" else payload_html(samples)


def import_notes_html(details: Mapping[str, object]) -> str:
    """What an import's counts do not say (DESIGN §5): values not summed again, leavers, skipped
    mappings; empty when there is nothing to say."""
    notes = []
    keys = ("already_summed", "leavers", "mapping_skipped")
    summed, leavers, skipped = (details.get(k) for k in keys)
    if isinstance(summed, int) and summed:
        notes.append(f"sum: {summed:,} value{'s' * (summed != 1)} already summed, not added again")
    if isinstance(leavers, int) and leavers:
        notes.append(
            f"leavers: {leavers:,} subscriber{'s' * (leavers != 1)} left a list; its name is "
            "taken away from the list-names property and a State mapping gets the new state"
        )
    if isinstance(skipped, int) and skipped:
        notes.append(
            f"{skipped:,} contact{'s' * (skipped != 1)} had a mapping skipped (a value that does "
            "not fit its property); the rows say which"
        )
    items = "".join(f"<li>{esc(n)}</li>" for n in notes)
    return f'<ul class="cm-import-notes">{items}</ul>' if notes else ""


def number_spreads_html(details: Mapping[str, object]) -> str:
    """An import preview's Number properties (``details["number_spreads"]``), each as a
    histogram of every profile's value before and after the run; ``""`` when none changes."""
    found = details.get("number_spreads")
    if not isinstance(found, Mapping):
        return ""
    charts = []
    colours = {"before": GREY, "after the run": "#0969da"}
    for text in found.values():
        spread = NumberSpread.from_detail(str(text))
        if spread.before == spread.after:
            continue
        e = spread.edges
        labels = [f"{number(e[i])}–{number(e[i + 1])}" for i in range(len(spread.before))]
        rule = RULE_LABELS.get(spread.rule, spread.rule)
        series = {"before": spread.before, "after the run": spread.after}
        width = max(360, min(640, 80 + 60 * len(labels)))
        title = f"{spread.property} ({rule}): profiles' values"
        chart = bars_svg(title, labels, series, colours, width=width, height=230, cls=SPREAD)
        charts.append(chart)
    if not charts:
        return ""
    return f'<div style="display:flex;flex-wrap:wrap;gap:12px">{"".join(charts)}</div>'


SPREAD = "cm-number-spread"


def result_html(result: Run, *, duration: bool = True) -> str:
    """One goal's run (or dry run): state, duration (left out where a report's header already
    gives the run's one duration), counts, error."""
    colour = GREEN if result.ok else RED
    kind = "dry run" if result.dry_run else f"run {esc(result.run_id or '')}"
    took = f" in {result.duration_s or 0:.1f} s" if duration else ""
    head = (
        f'<p class="cm-result" data-state="{esc(result.state)}"><b>{esc(result.goal)}</b> '
        f'{kind}: <b style="color:{colour}">{esc(result.state)}</b>{took}</p>'
    )
    error = f'<p style="color:{RED}">{esc(result.error)}</p>' if result.error else ""
    return head + counts_html(result.counts) + import_notes_html(result.details) + error


def sizes_html(sizes: dict[str, int | None], chosen: Sequence[str] = (), width: int = 520) -> str:
    """Segment sizes as horizontal bars, biggest first (the chosen ones highlighted): ``""``
    when no segment has a size yet."""
    known = sorted(((k, v) for k, v in sizes.items() if v is not None), key=lambda kv: -kv[1])
    colours = {name: GREEN if name in chosen else GREY for name, _ in known}
    return hbars_svg(
        "Segment sizes (profiles)", known, colours=colours, series="profiles", width=width,
        cls="cm-sizes",
    )  # fmt: skip


# --- history -----------------------------------------------------------------------------------


def history_chart_html(runs: Sequence[Run], *, last: int = 30) -> str:
    """The ``last`` runs' counts over time (oldest left), one column per run stacked by outcome;
    ``""`` when no run counted anything."""
    shown = sorted(runs[:last], key=lambda r: r.started_at)
    seen = {k for r in shown for k, v in r.counts.items() if v}
    outcomes = [o for o in OUTCOME_SHADES if o in seen] + sorted(seen - set(OUTCOME_SHADES))
    labels = [f"{r.started_at:%m-%d %H:%M} {r.goal}" for r in shown]
    series = {o: [r.counts.get(o, 0) for r in shown] for o in outcomes}
    colours = {o: OUTCOME_SHADES.get(o, GREY) for o in outcomes}
    width = max(420, min(900, 120 + 34 * len(shown)))
    return bars_svg(
        "Outcomes per run over time (UTC)", labels, series, colours, stacked=True, width=width,
        height=300, cls="cm-history-chart",
    )  # fmt: skip


def history_html(runs: Sequence[Run], *, width: int = 260) -> str:
    """Runs, newest first, each with a bar of its counts per outcome (no matplotlib needed),
    under a chart of the counts over time."""
    if not runs:
        return "<p><i>No runs yet.</i></p>"
    biggest = max((sum(r.counts.values()) for r in runs), default=0) or 1
    rows = []
    for r in runs:
        total = sum(r.counts.values())
        segments = "".join(
            f'<span title="{esc(k)} {v:,}" style="display:inline-block;height:12px;'
            f"width:{max(1, round(width * v / biggest))}px;"
            f'background:{OUTCOME_COLOURS.get(k, GREY)}"></span>'
            for k, v in r.counts.items()
            if v
        )
        colour = {RunState.FINISHED: GREEN, RunState.FAILED: RED}.get(r.state, AMBER)
        duration = f"{r.duration_s:.1f} s" if r.duration_s is not None else "—"
        summary = ", ".join(f"{k} {v:,}" for k, v in r.counts.items() if v) or "nothing"
        rows.append(
            (
                r.started_at.strftime("%Y-%m-%d %H:%M:%S"),
                r.goal,
                (esc(r.state), f"color:{colour};font-weight:600"),
                duration,
                (f"{segments} {total:,}", "white-space:nowrap"),
                summary + (f" — {r.error}" if r.error else ""),
            )
        )
    return history_chart_html(runs) + table(
        ["started (UTC)", "goal", "state", "duration", "contacts / profiles", "counts"],
        rows,
        cls="cm-history",
    )
