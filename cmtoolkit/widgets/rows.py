"""The people a run did not send, with their reasons: for reports, the export notebook after a
run, and the history notebook (DESIGN §7: "the rows are for people").

One HTML fragment (inline styles, every value escaped) serves the report, an ``HTML`` widget and
nbconvert alike: a chart of how many were not sent for which reason, then the first
:data:`SHOWN` rows whose outcome is one of :data:`NOT_SENT`, with email, outcome, Campaign
Monitor code and reason, and a count of the rest.
"""

from __future__ import annotations

import html
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import polars as pl

from cmtoolkit.sync import ledger
from cmtoolkit.widgets.charts import OUTCOME_SHADES, hbars_svg

if TYPE_CHECKING:
    from cmtoolkit.profiles.store import Store

#: Outcomes of people who were not sent: refused by Campaign Monitor or caught before sending.
NOT_SENT = ("REJECTED", "INVALID", "SUPPRESSED", "NOT_SUBSCRIBED")
SHOWN = 100
COLUMNS = ("email", "outcome", "code", "reason")
#: Bars in the reasons chart; the rarer reasons are summed into one "other reasons" bar.
REASON_BARS = 10


@dataclass(frozen=True)
class RunRows:
    """The first rows of a run's records of ``outcomes``, and how many there are in all."""

    run_id: str
    rows: pl.DataFrame
    total: int
    #: (outcome, reason without its value, rows), most first: every row, not only those shown
    reasons: tuple[tuple[str, str, int], ...] = ()

    @property
    def rest(self) -> int:
        return self.total - self.rows.height


def run_rows(
    store: Store,
    connection: str,
    run_id: str,
    outcomes: Sequence[str] = NOT_SENT,
    limit: int = SHOWN,
) -> RunRows:
    """Read a run's not-sent rows from the ledger (at most ``limit``), count them all and by
    reason."""
    with store.connect() as con:
        rows = ledger.rows(con, connection, run_id=run_id, outcomes=outcomes, limit=limit)
        reasons = ledger.count_rows(con, run_id, outcomes)
    return RunRows(run_id, rows, sum(n for _, _, n in reasons), tuple(reasons))


def reasons_svg(found: RunRows) -> str:
    """How many rows were not sent for which reason, as bars (coloured by outcome)."""
    bars: list[tuple[str, float]] = []
    colours: dict[str, str] = {}
    for outcome, kind, n in found.reasons[:REASON_BARS]:
        label = f"{outcome} · {kind}"
        bars.append((label, float(n)))
        colours[label] = OUTCOME_SHADES.get(outcome, "#8c959f")
    rest = sum(n for _, _, n in found.reasons[REASON_BARS:])
    if rest:
        bars.append(("other reasons", float(rest)))
    return hbars_svg(
        "Not sent, by reason", bars, colours=colours, series="rows", width=760,
        label_width=420, cls="cm-reasons",
    )  # fmt: skip


def rows_html(found: RunRows, *, title: str = "Not sent") -> str:
    """The table as a self-contained HTML fragment; empty text when there is nothing to show."""
    if not found.total:
        return ""
    head = "".join(
        f"<th style='text-align:left;padding:2px 8px'>{html.escape(c)}</th>" for c in COLUMNS
    )
    body = []
    for r in found.rows.iter_rows(named=True):
        cells = "".join(
            "<td style='padding:2px 8px;vertical-align:top'>"
            f"{html.escape('' if r[c] is None else str(r[c]))}</td>"
            for c in COLUMNS
        )
        body.append(f"<tr>{cells}</tr>")
    rest = (
        f"<p>… and {found.rest:,} more (<code>cmtoolkit rows CONNECTION --run "
        f"{html.escape(found.run_id)} --csv FILE</code> lists them all)</p>"
        if found.rest > 0
        else ""
    )
    return (
        f"<div class='cmtoolkit-rows'><h3>{html.escape(title)}: {found.total:,} "
        f"{'person' if found.total == 1 else 'people'}</h3>\n{reasons_svg(found)}\n"
        "<table style='border-collapse:collapse;font-size:90%'>"
        f"<thead><tr>{head}</tr></thead><tbody>{''.join(body)}</tbody></table>\n{rest}</div>"
    )


def run_rows_html(store: Store, connection: str, run_id: str | None) -> str:
    """:func:`rows_html` of a recorded run ("" for a preview, a run without rows, no store)."""
    if run_id is None or not store.path.exists():
        return ""
    return rows_html(run_rows(store, connection, run_id))


def rows_widget(store: Store, connection: str, run_id: str | None) -> object:
    """The same table as an ``ipywidgets.HTML`` (for the export and history notebooks)."""
    import ipywidgets

    return ipywidgets.HTML(run_rows_html(store, connection, run_id))
