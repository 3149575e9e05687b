"""The notebooks' charts, as inline SVG (no plotting library): one home for every chart.

An SVG fragment shows the same in JupyterLab, in an ``HTML`` widget and in the static nbconvert
report. Every bar carries ``data-label``, ``data-series`` and ``data-value`` (the number it
stands for), and a ``<title>`` tooltip, so a reader hovering and a test parsing see the same
figures. An empty chart is not drawn: each helper returns ``""`` when it has nothing to show.
"""

from __future__ import annotations

import html
from collections.abc import Mapping, Sequence

#: Outcomes told apart in a stacked chart (the text colours of :mod:`.html` group them).
OUTCOME_SHADES = {
    "CREATED": "#1a7f37",
    "MODIFIED": "#4ac26b",
    "EXPORTED": "#2da44e",
    "UNCHANGED": "#afb8c1",
    "REMOVED": "#bf8700",
    "CONSENT_MISMATCH": "#d4a72c",
    "NO_IDENTIFIER": "#e09b13",
    "NOT_FOUND": "#9a6700",
    "NOT_SUBSCRIBED": "#8c959f",
    "SUPPRESSED": "#bf3989",
    "AMBIGUOUS": "#8250df",
    "INVALID": "#cf222e",
    "REJECTED": "#82071e",
}
AXIS = "#8c959f"
FONT = "font:11px sans-serif"


def esc(value: object) -> str:
    return html.escape(str(value))


def number(v: float, unit: str = "") -> str:
    """A bar's value as its label shows it: thousands separators, a unit, at most 2 decimals."""
    if unit:
        return f"{v:.0f}{unit}"
    if float(v).is_integer():
        return f"{v:,.0f}"
    return f"{v:,.2f}".rstrip("0").rstrip(".")


def _svg(title: str, width: int, height: int, cls: str) -> list[str]:
    return [
        f'<svg xmlns="http://www.w3.org/2000/svg" class="{esc(cls)}" width="{width}" '
        f'height="{height}" role="img" aria-label="{esc(title)}" style="{FONT}">',
        f'<text x="8" y="16" style="font-weight:bold;font-size:13px">{esc(title)}</text>',
    ]


def _bar(
    x: float, y: float, w: float, h: float, colour: str, label: str, series: str, value: float
) -> str:
    shown = number(value)
    return (
        f'<rect x="{x:.1f}" y="{y:.1f}" width="{max(w, 0):.1f}" height="{max(h, 0):.1f}" '
        f'fill="{colour}" data-label="{esc(label)}" data-series="{esc(series)}" '
        f'data-value="{value:g}"><title>{esc(label)}: {esc(series)} {esc(shown)}</title></rect>'
    )


def _legend(series: Sequence[str], colours: Mapping[str, str], y: int, width: int) -> str:
    """Swatches with names in rows from the left, wrapping at ``width``."""
    out, x, row = [], 8, y
    for name in series:
        step = 22 + 7 * len(name)
        if x + step > width and x > 8:
            x, row = 8, row + 14
        out.append(f'<rect x="{x}" y="{row}" width="10" height="10" fill="{colours[name]}"/>')
        out.append(f'<text x="{x + 14}" y="{row + 9}">{esc(name)}</text>')
        x += step
    return "".join(out)


def _legend_rows(series: Sequence[str], width: int) -> int:
    rows, x = 1, 8
    for name in series:
        step = 22 + 7 * len(name)
        if x + step > width and x > 8:
            rows, x = rows + 1, 8
        x += step
    return rows


def _short(label: str, n: int = 18) -> str:
    return label if len(label) <= n else label[: n - 1] + "…"


def bars_svg(
    title: str,
    labels: Sequence[str],
    series: Mapping[str, Sequence[float]],
    colours: Mapping[str, str],
    *,
    unit: str = "",
    width: int = 640,
    height: int = 260,
    stacked: bool = False,
    cls: str = "cm-chart",
) -> str:
    """Vertical bars per label: one bar per series side by side, or stacked (the total above)."""
    if not labels or not any(v for values in series.values() for v in values):
        return ""
    names = list(series)
    legend_h = 14 * _legend_rows(names, width)
    top, bottom, left = 30 + legend_h, 70, 48
    plot_h = height - top - bottom
    if stacked:
        peak = max(sum(float(series[s][i]) for s in names) for i in range(len(labels)))
    else:
        peak = max(float(v) for values in series.values() for v in values)
    peak = peak or 1
    group = (width - left - 10) / len(labels)
    per_group = 1 if stacked else len(names)
    bar = max(min(group * 0.8 / per_group, 40), 2)
    parts = _svg(title, width, height, cls)
    parts.append(_legend(names, colours, 22, width))
    base_y = top + plot_h
    parts.append(
        f'<line x1="{left}" y1="{base_y}" x2="{width - 10}" y2="{base_y}" stroke="{AXIS}"/>'
    )
    for i, label in enumerate(labels):
        x0 = left + i * group + (group - bar * per_group) / 2
        y = float(base_y)
        for j, name in enumerate(names):
            v = float(series[name][i])
            h = plot_h * v / peak
            if stacked:
                if v:
                    y -= h
                    parts.append(_bar(x0, y, bar - 1, h, colours[name], label, name, v))
                continue
            x = x0 + j * bar
            parts.append(_bar(x, base_y - h, bar - 1, h, colours[name], label, name, v))
            if len(labels) * per_group <= 24:
                parts.append(
                    f'<text x="{x + bar / 2:.1f}" y="{base_y - h - 3:.1f}" text-anchor="middle" '
                    f'style="font-size:9px">{esc(number(v, unit))}</text>'
                )
        if stacked and len(labels) <= 24:
            total = sum(float(series[s][i]) for s in names)
            parts.append(
                f'<text x="{x0 + bar / 2:.1f}" y="{y - 3:.1f}" text-anchor="middle" '
                f'class="cm-total" style="font-size:9px">{esc(number(total, unit))}</text>'
            )
        cx, cy = left + i * group + group / 2, base_y + 12
        parts.append(
            f'<text x="{cx:.1f}" y="{cy:.1f}" text-anchor="end" '
            f'transform="rotate(-30 {cx:.1f} {cy:.1f})">{esc(_short(label))}</text>'
        )
    parts.append("</svg>")
    return "".join(parts)


def hbars_svg(
    title: str,
    rows: Sequence[tuple[str, float]],
    *,
    colours: Mapping[str, str] | None = None,
    colour: str = "#0969da",
    series: str = "count",
    width: int = 520,
    label_width: int = 200,
    cls: str = "cm-chart",
) -> str:
    """One horizontal bar per (label, value) in the order given, the value at its end; a label
    in ``colours`` gets that colour (e.g. the chosen segments)."""
    if not rows:
        return ""
    row_h, top = 18, 26
    height = top + row_h * len(rows) + 6
    peak = max(v for _, v in rows) or 1
    room = width - label_width - 70
    parts = _svg(title, width, height, cls)
    for i, (label, value) in enumerate(rows):
        y = top + i * row_h
        w = max(1.0, room * value / peak) if value else 0.0
        fill = (colours or {}).get(label, colour)
        parts.append(
            f'<text x="{label_width - 6}" y="{y + 11}" text-anchor="end">'
            f"{esc(_short(label, label_width // 6))}</text>"
        )
        parts.append(_bar(label_width, y + 2, w, row_h - 5, fill, label, series, value))
        parts.append(
            f'<text x="{label_width + w + 4:.1f}" y="{y + 11}">{esc(number(value))}</text>'
        )
    parts.append("</svg>")
    return "".join(parts)


__all__ = ["OUTCOME_SHADES", "bars_svg", "esc", "hbars_svg", "number"]
