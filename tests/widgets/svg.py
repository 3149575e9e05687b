"""Reading the charts back: each ``<svg>`` of a class in an HTML fragment, as the bars it draws."""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET

NS = "{http://www.w3.org/2000/svg}"


def charts(html: str, cls: str) -> list[ET.Element]:
    """Every ``<svg class="cls">`` in ``html``, parsed (so it is well-formed XML, too)."""
    found = re.findall(rf'<svg [^>]*class="{re.escape(cls)}".*?</svg>', html, flags=re.S)
    return [ET.fromstring(svg) for svg in found]


def chart(html: str, cls: str) -> ET.Element:
    (one,) = charts(html, cls)
    return one


def bars(svg: ET.Element) -> list[tuple[str, str, float]]:
    """(label, series, value) of every bar, in drawing order."""
    return [
        (r.get("data-label", ""), r.get("data-series", ""), float(r.get("data-value", "nan")))
        for r in svg.iter(f"{NS}rect")
        if r.get("data-label") is not None
    ]


def lengths(svg: ET.Element, axis: str = "height") -> dict[tuple[str, str], float]:
    """Each bar's drawn ``height`` (vertical bars) or ``width`` (horizontal bars)."""
    return {
        (r.get("data-label", ""), r.get("data-series", "")): float(r.get(axis, "nan"))
        for r in svg.iter(f"{NS}rect")
        if r.get("data-label") is not None
    }


def texts(svg: ET.Element) -> list[str]:
    return [t.text or "" for t in svg.iter(f"{NS}text")]
