"""Inline SVG charts, generated in Python so the report needs no script or font.

Every chart is a pure function from model objects to an SVG string with a
``viewBox`` (it scales with the page), a ``<title>`` / ``<desc>`` for screen
readers and a ``<title>`` tooltip on each mark.  Colours come from the
ColorBrewer RdBu / PuOr families, which stay distinguishable with the common
colour-vision deficiencies, and every colour is paired with a text label or
pattern so no meaning rests on colour alone.  Suppressed small cells are drawn
hatched and labelled "<10".
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from html import escape
from typing import TypeVar

from voterolls.privacy import WITHHELD, WITHHELD_LABEL
from voterolls.privacy import label as privacy_label
from voterolls.report.model import (
    Coverage,
    Estimates,
    FieldAvailability,
    FieldCell,
    MatchDistribution,
    Uniformity,
    UniformityRow,
)
from voterolls.report.suppress import SMALL_CELL

INK = "#1f2328"
MUTED = "#59636e"
GRID = "#d0d7de"
T = TypeVar("T")

FONT = "system-ui, -apple-system, 'Segoe UI', Roboto, 'Helvetica Neue', Arial, sans-serif"

STATUS_COLOURS = {
    "complied": "#2166ac",
    "partial": "#92c5de",
    "refused": "#d6604d",
    "pending": "#e0e0e0",
    "unknown": "#f7f7f7",
}
STATUS_LABELS = {
    "complied": "Complied",
    "partial": "Partial",
    "refused": "Refused",
    "pending": "Pending",
    "unknown": "No request recorded",
}

AVAILABILITY_COLOURS = {
    "supplied": "#2166ac",
    "sealed": "#762a83",
    "allowed_missing": "#92c5de",
    "allowed_no_data": "#d1e5f0",
    "withheld": "#878787",
    "unknown_law": "#d9d9d9",
    "not_applicable": "#ffffff",
    "not_collected": "#f0f0f0",
    "violation": "#d6604d",
}
AVAILABILITY_LABELS = {
    "supplied": "In the data",
    "sealed": "Sealed token only",
    "allowed_missing": "Law allows; not in the data",
    "allowed_no_data": "Law allows; state not loaded",
    "withheld": "Withheld by law",
    "unknown_law": "Law unknown (treated as withheld)",
    "not_applicable": "Not applicable",
    "not_collected": "Not collected from any state",
    "violation": "In the data although law withholds it",
}

#: US tile-grid layout: state -> (column, row).  Roughly geographic, one
#: equal tile per jurisdiction so small states are as visible as large ones.
TILE_GRID: dict[str, tuple[int, int]] = {
    "AK": (0, 0), "ME": (10, 0),
    "WI": (5, 1), "VT": (9, 1), "NH": (10, 1),
    "WA": (0, 2), "ID": (1, 2), "MT": (2, 2), "ND": (3, 2), "MN": (4, 2), "IL": (5, 2),
    "MI": (6, 2), "NY": (8, 2), "MA": (9, 2),
    "OR": (0, 3), "NV": (1, 3), "WY": (2, 3), "SD": (3, 3), "IA": (4, 3), "IN": (5, 3),
    "OH": (6, 3), "PA": (7, 3), "NJ": (8, 3), "CT": (9, 3), "RI": (10, 3),
    "CA": (0, 4), "UT": (1, 4), "CO": (2, 4), "NE": (3, 4), "MO": (4, 4), "KY": (5, 4),
    "WV": (6, 4), "VA": (7, 4), "MD": (8, 4), "DE": (9, 4),
    "AZ": (1, 5), "NM": (2, 5), "KS": (3, 5), "AR": (4, 5), "TN": (5, 5), "NC": (6, 5),
    "SC": (7, 5), "DC": (8, 5),
    "OK": (3, 6), "LA": (4, 6), "MS": (5, 6), "AL": (6, 6), "GA": (7, 6),
    "HI": (0, 7), "TX": (3, 7), "FL": (8, 7),
}  # fmt: skip


def _lum(hex_colour: str) -> float:
    """WCAG relative luminance of an #rrggbb colour."""
    h = hex_colour.lstrip("#")
    chans = [int(h[i : i + 2], 16) / 255 for i in (0, 2, 4)]
    lin = [c / 12.92 if c <= 0.03928 else ((c + 0.055) / 1.055) ** 2.4 for c in chans]
    return 0.2126 * lin[0] + 0.7152 * lin[1] + 0.0722 * lin[2]


def text_on(fill: str) -> str:
    """Black or white, whichever contrasts more with ``fill`` (WCAG ratio)."""
    lum = _lum(fill)
    return "#ffffff" if (1.05 / (lum + 0.05)) > ((lum + 0.05) / 0.05) else INK


def _e(text: object) -> str:
    return escape(str(text), quote=True)


def _svg_open(w: float, h: float, title: str, desc: str, cls: str) -> str:
    return (
        f'<svg class="chart {cls}" viewBox="0 0 {w:.0f} {h:.0f}" role="img" '
        f'preserveAspectRatio="xMidYMid meet" font-family="{_e(FONT)}">'
        f"<title>{_e(title)}</title><desc>{_e(desc)}</desc>"
        '<defs><pattern id="hatch" width="6" height="6" patternUnits="userSpaceOnUse" '
        'patternTransform="rotate(45)"><rect width="6" height="6" fill="#ffffff"/>'
        f'<line x1="0" y1="0" x2="0" y2="6" stroke="{MUTED}" stroke-width="2" opacity="0.45"/>'
        "</pattern></defs>"
    )


def fmt_int(v: int | float | str | None) -> str:
    """A published count: "1,234", "<10" (a small cell) or "withheld to protect a small cell"."""
    return privacy_label(v, SMALL_CELL)


def fmt_num(v: float | None) -> str:
    """A number at a precision suited to its size (estimates, not counts)."""
    if v is None:
        return "n/a"
    a = abs(v)
    if a >= 10:
        return f"{v:,.0f}"
    if a >= 1:
        return f"{v:,.1f}"
    if a == 0:
        return "0"
    return f"{v:.2g}"


def fmt_pct(v: float | None, digits: int = 1) -> str:
    if v is None:
        return "n/a"
    if 0 < v < 0.001:
        return "<0.1%"
    if digits == 0 and 0 < v < 0.01:
        return "<1%"
    if 0.999 < v < 1:
        return ">99.9%"
    return f"{v * 100:.{digits}f}%"


# --------------------------------------------------------------------------
# Coverage tile map
# --------------------------------------------------------------------------


def tile_map(cov: Coverage) -> str:
    """US tile grid coloured by request status, each tile labelled with the share covered."""
    size, gap, pad_top = 58, 5, 8
    cols = 1 + max(c for c, _ in TILE_GRID.values())
    rows = 1 + max(r for _, r in TILE_GRID.values())
    w = cols * (size + gap) + gap
    h = rows * (size + gap) + gap + pad_top
    by = {s.state: s for s in cov.states}
    out = [
        _svg_open(
            w,
            h,
            "Coverage by state",
            "Tile map of the 50 states and DC coloured by request status; tiles with a dark outline and "
            "a check mark have registrations loaded in the compiled data.",
            "tilemap",
        )
    ]
    for st, (c, r) in TILE_GRID.items():
        s = by.get(st)
        status = s.status if s else "unknown"
        fill = STATUS_COLOURS[status]
        ink = text_on(fill)
        x = gap + c * (size + gap)
        y = pad_top + gap + r * (size + gap)
        has = s is not None and s.has_data
        sub = "data \u2713" if has else "no data"
        tip = f"{st}: {STATUS_LABELS[status]}"
        if s is not None and s.date_responded:
            tip += f" ({s.date_responded})"
        if has:
            tip += f"; {fmt_int(s.registrations_loaded)} registrations loaded"
            if s.delivered_field_share is not None:
                tip += f"; {fmt_pct(s.delivered_field_share, 0)} of requested fields delivered"
        else:
            tip += "; no registrations loaded"
        if s is not None and s.registrant_share is not None:
            tip += f"; {fmt_pct(s.registrant_share)} of US registrants"
        dash = ' stroke-dasharray="3 3"' if status == "unknown" else ""
        stroke = INK if has else ("#8c959f" if status in ("unknown", "pending") else fill)
        width = 2.5 if has else 1
        out.append(
            f'<g class="tile"><title>{_e(tip)}</title>'
            f'<rect x="{x}" y="{y}" width="{size}" height="{size}" rx="6" fill="{fill}" '
            f'stroke="{stroke}" stroke-width="{width}"{dash}/>'
        )
        out.append(
            f'<text x="{x + size / 2}" y="{y + 27}" text-anchor="middle" font-size="17" font-weight="700" fill="{ink}">{st}</text>'
            f'<text x="{x + size / 2}" y="{y + 43}" text-anchor="middle" font-size="11" fill="{ink}">{_e(sub)}</text></g>'
        )
    out.append("</svg>")
    return "".join(out)


def status_legend(cov: Coverage) -> list[tuple[str, str, str, int]]:
    """(status, label, colour, count) for the HTML legend."""
    return [(k, STATUS_LABELS[k], STATUS_COLOURS[k], cov.count(k)) for k in STATUS_COLOURS]


# --------------------------------------------------------------------------
# Field availability heat map
# --------------------------------------------------------------------------


def _heatmap(
    rows: Sequence[str],
    cols: Sequence[str],
    cells: Mapping[tuple[str, str], T],
    cell: Callable[[T, str, str, float, float], Iterable[str]],
    col_label: Callable[[float, str], str],
    *,
    title: str,
    desc: str,
    cls: str,
    grid: tuple[float, float, float, float],
    extra_w: float = 0,
    bold_rows: bool = False,
) -> str:
    """The grid both heat maps share: an SVG with row labels and one cell per (row, column).

    ``col_label(x_centre, col)`` draws a column label (the maps rotate them
    differently); ``cell(item, row, col, x, y)`` yields the SVG pieces of the
    cell ``cells[row, col]`` whose top left corner is (x, y).  A (row, column)
    without an item stays empty.  ``grid`` is (cell width, cell height, left
    margin, top margin).
    """
    cell_w, cell_h, left, top = grid
    w = left + cell_w * len(cols) + 8 + extra_w
    h = top + cell_h * len(rows) + 8
    out = [_svg_open(w, h, title, desc, cls)]
    out.extend(col_label(left + j * cell_w + cell_w / 2, c) for j, c in enumerate(cols))
    weight = ' font-weight="600"' if bold_rows else ""
    for i, r in enumerate(rows):
        y = top + i * cell_h
        out.append(
            f'<text x="{left - 8}" y="{y + cell_h / 2}" text-anchor="end" dominant-baseline="middle" '
            f'font-size="12"{weight} fill="{INK}">{_e(r)}</text>'
        )
        for j, c in enumerate(cols):
            item = cells.get((r, c))
            if item is not None:
                out.extend(cell(item, r, c, left + j * cell_w, y))
    out.append("</svg>")
    return "".join(out)


def availability_heatmap(fa: FieldAvailability) -> str:
    cell_w, cell_h, left, top = 19, 22, 182, 34

    def col_label(x: float, st: str) -> str:
        return (
            f'<text x="{x}" y="{top - 8}" text-anchor="middle" font-size="9.5" fill="{MUTED}" '
            f'transform="rotate(-90 {x} {top - 8})" dominant-baseline="middle" dx="6">{st}</text>'
        )

    def cell(c: FieldCell, field: str, st: str, x: float, y: float) -> Iterator[str]:
        fill = AVAILABILITY_COLOURS[c.availability]
        tip = f"{st} · {field}: {AVAILABILITY_LABELS[c.availability]}"
        if c.non_null_share is not None and c.availability not in ("not_collected",):
            tip += f" ({fmt_pct(c.non_null_share)} of rows have a value)"
        if c.law:
            tip += f". Policy: {c.law}"
        pattern = "url(#hatch)" if c.availability == "not_collected" else fill
        yield (
            f'<rect x="{x + 1}" y="{y + 1}" width="{cell_w - 2}" height="{cell_h - 2}" rx="2" '
            f'fill="{pattern}" stroke="{GRID if fill in ("#ffffff", "#f0f0f0", "#f7f7f7") else fill}">'
            f"<title>{_e(tip)}</title></rect>"
        )
        if c.availability == "violation":
            yield (
                f'<text x="{x + cell_w / 2}" y="{y + cell_h / 2 + 1}" text-anchor="middle" '
                f'dominant-baseline="middle" font-size="12" font-weight="700" fill="#ffffff">!</text>'
            )
        elif c.availability == "not_applicable":
            yield f'<circle cx="{x + cell_w / 2}" cy="{y + cell_h / 2}" r="1.6" fill="{MUTED}"/>'

    return _heatmap(
        fa.fields,
        fa.states,
        {(c.field, c.state): c for c in fa.cells},
        cell,
        col_label,
        title="Field availability by state",
        desc="Heat map: one row per requested field, one column per state; colour says whether the field "
        "is in the compiled data, allowed by law but missing, withheld by law, or unknown.",
        cls="heatmap",
        grid=(cell_w, cell_h, left, top),
    )


def availability_legend(fa: FieldAvailability) -> list[tuple[str, str, str, bool]]:
    """(key, label, colour, hatched) for the categories present in the map."""
    present = {c.availability for c in fa.cells}
    return [
        (k, AVAILABILITY_LABELS[k], AVAILABILITY_COLOURS[k], k == "not_collected")
        for k in AVAILABILITY_COLOURS
        if k in present
    ]


# --------------------------------------------------------------------------
# Uniformity heat map (non-null share, implausible values marked)
# --------------------------------------------------------------------------

_BLUES = [
    "#f7fbff",
    "#deebf7",
    "#c6dbef",
    "#9ecae1",
    "#6baed6",
    "#4292c6",
    "#2171b5",
    "#08519c",
    "#08306b",
]


def share_colour(share: float | None) -> str:
    if share is None:
        return "url(#hatch)"
    i = min(len(_BLUES) - 1, int(round(share * (len(_BLUES) - 1))))
    return _BLUES[i]


def uniformity_heatmap(u: Uniformity) -> str:
    cell_w, cell_h, left = 30, 24, 46
    longest = max((len(f) for f in u.fields), default=8)
    top = 20 + int(longest * 6.2 * 0.82)  # room for labels rotated by 55 degrees

    def col_label(x: float, f: str) -> str:
        return (
            f'<text x="{x}" y="{top - 6}" font-size="10.5" fill="{MUTED}" '
            f'transform="rotate(-55 {x} {top - 6})">{_e(f)}</text>'
        )

    def cell(r: UniformityRow, st: str, f: str, x: float, y: float) -> Iterator[str]:
        fill = share_colour(r.non_null_share)
        tip = f"{st} · {f}: {fmt_pct(r.non_null_share)} non-null"
        if r.plausible_share is not None:
            tip += f", {fmt_pct(r.plausible_share)} of values plausible"
        if r.unmapped:
            tip += f", {fmt_int(r.unmapped)} unmapped codes"
        if r.non_null_share is None:
            tip += f" (suppressed: fewer than {SMALL_CELL} rows)"
        if r.present is False:
            tip += "; not in this state's file format"
        if r.policy in ("withheld", "generalised"):
            tip += f"; {r.policy} by law at ingest"
        yield (
            f'<rect x="{x + 1}" y="{y + 1}" width="{cell_w - 2}" height="{cell_h - 2}" rx="2" fill="{fill}" '
            f'stroke="{GRID}"><title>{_e(tip)}</title></rect>'
        )
        if r.present is False:
            yield (
                f'<line x1="{x + cell_w / 2 - 5}" x2="{x + cell_w / 2 + 5}" y1="{y + cell_h / 2}" '
                f'y2="{y + cell_h / 2}" stroke="{MUTED}" stroke-width="1.5"/>'
            )
        flag = (r.plausible_share is not None and r.plausible_share < 0.99) or (r.unmapped or 0) > 0
        if flag:
            dot = text_on(fill) if fill.startswith("#") else INK
            yield (
                f'<circle cx="{x + cell_w / 2}" cy="{y + cell_h / 2}" r="4" fill="none" '
                f'stroke="{dot}" stroke-width="2"><title>{_e(tip)}</title></circle>'
            )

    return _heatmap(
        u.states,
        u.fields,
        {(r.state, r.field): r for r in u.rows},
        cell,
        col_label,
        title="Completeness and plausibility by state and field",
        desc="Heat map: rows are states, columns are national-schema fields; darker blue = a larger share "
        "of rows carry a value; a dot marks fields where more than 1% of values fail a plausibility check.",
        cls="uniformity",
        grid=(cell_w, cell_h, left, top),
        extra_w=int(longest * 6.2 * 0.57),  # room for the last rotated label
        bold_rows=True,
    )


# --------------------------------------------------------------------------
# Histogram with a log count axis
# --------------------------------------------------------------------------


def _log_ticks(vmax: float) -> list[int]:
    top = max(1, math.ceil(math.log10(max(vmax, 10))))
    return [10**k for k in range(0, top + 1)]


def histogram(
    md: MatchDistribution,
    series_index: int = 0,
    *,
    width: float = 720,
    height: float = 300,
    compact: bool = False,
) -> str:
    s = md.series[series_index]
    edges = md.bin_edges
    left, right, top, bottom = (46, 10, 26 if compact else 16, 40)
    pw, ph = width - left - right, height - top - bottom
    shown = [c for c in s.counts if isinstance(c, int)]
    vmax = max(shown + [10])
    ticks = _log_ticks(vmax)
    lmax = math.log10(ticks[-1])

    def ypos(v: float) -> float:
        # log10(1 + v) keeps the 0..1 region visible; ticks label powers of ten
        return top + ph - (math.log10(max(v, 1)) / lmax) * ph if v > 0 else top + ph

    title = f"Match-probability distribution: {s.label}"
    out = [
        _svg_open(
            width,
            height,
            title,
            "Histogram of scored candidate pairs by match probability, counts on a logarithmic scale; "
            "wider bars are adjacent bins merged so that none holds fewer than "
            f"{SMALL_CELL} pairs; hatched bars are small cells (fewer than {SMALL_CELL} pairs); "
            "dashed outlines are bars withheld to protect a small cell.",
            "histogram",
        )
    ]
    if compact:
        out.append(
            f'<text x="{left}" y="14" font-size="13" font-weight="600" fill="{INK}">{_e(s.label)}</text>'
        )
        out.append(
            f'<text x="{width - right}" y="14" text-anchor="end" font-size="11" fill="{MUTED}">'
            + ("total withheld (protects a small cell)" if s.total == WITHHELD else f"{_e(fmt_int(s.total))} pairs")
            + "</text>"
        )
    for t in ticks:
        y = ypos(t)
        out.append(
            f'<line x1="{left}" x2="{width - right}" y1="{y:.1f}" y2="{y:.1f}" stroke="{GRID}" stroke-width="1"/>'
            f'<text x="{left - 6}" y="{y:.1f}" text-anchor="end" dominant-baseline="middle" font-size="10.5" '
            f'fill="{MUTED}">{_tick_label(t)}</text>'
        )
    def xpos(edge: float) -> float:
        return left + (edge - edges[0]) / ((edges[-1] - edges[0]) or 1) * pw

    for i, c in enumerate(s.counts):
        lo, hi = edges[i], edges[i + 1]
        x, bw = xpos(lo), xpos(hi) - xpos(lo)
        if c is None:
            y = ypos(SMALL_CELL - 1)
            out.append(
                f'<rect x="{x + 1:.1f}" y="{y:.1f}" width="{bw - 2:.1f}" height="{top + ph - y:.1f}" '
                f'fill="url(#hatch)" stroke="{MUTED}" stroke-width="0.8"><title>{lo:.2f}–{hi:.2f}: '
                f"fewer than {SMALL_CELL} pairs (suppressed)</title></rect>"
            )
        elif c == WITHHELD:  # not drawn: its height would give a small cell away
            out.append(
                f'<rect x="{x + 1:.1f}" y="{top:.1f}" width="{bw - 2:.1f}" height="{ph:.1f}" '
                f'fill="none" stroke="{MUTED}" stroke-width="0.8" stroke-dasharray="3 3"><title>{lo:.2f}–{hi:.2f}: '
                f"{WITHHELD_LABEL}</title></rect>"
                f'<text x="{x + bw / 2:.1f}" y="{top + 12:.1f}" text-anchor="middle" font-size="10" '
                f'fill="{MUTED}">withheld</text>'
            )
        elif c > 0:
            y = ypos(c)
            colour = "#b2182b" if lo >= 0.5 else "#2166ac"
            out.append(
                f'<rect x="{x + 1:.1f}" y="{y:.1f}" width="{bw - 2:.1f}" height="{top + ph - y:.1f}" '
                f'fill="{colour}"><title>{lo:.2f}–{hi:.2f}: {c:,} pairs</title></rect>'
            )
    out.append(
        f'<line x1="{left}" x2="{width - right}" y1="{top + ph}" y2="{top + ph}" stroke="{INK}" stroke-width="1"/>'
    )
    for t in (0.0, 0.2, 0.4, 0.6, 0.8, 1.0):
        if not edges[0] <= t <= edges[-1]:
            continue
        x = xpos(t)
        out.append(
            f'<line x1="{x:.1f}" x2="{x:.1f}" y1="{top + ph}" y2="{top + ph + 4}" stroke="{INK}"/>'
            f'<text x="{x:.1f}" y="{top + ph + 16}" text-anchor="middle" font-size="10.5" fill="{MUTED}">'
            f"{t:.1f}</text>"
        )
    out.append(
        f'<text x="{left + pw / 2}" y="{height - 6}" text-anchor="middle" font-size="11.5" fill="{INK}">'
        "match probability</text>"
    )
    out.append("</svg>")
    return "".join(out)


def _tick_label(v: float) -> str:
    if v >= 1_000_000:
        return f"{v / 1_000_000:g}M"
    if v >= 1000:
        return f"{v / 1000:g}k"
    return f"{v:g}"


# --------------------------------------------------------------------------
# Estimates: dot and interval on a log axis
# --------------------------------------------------------------------------


def estimates_chart(est: Estimates) -> str:
    items = [e for e in est.headline() if e.point is not None or e.low is not None]
    if not items:
        return ""
    width, row_h, left, right, top = 760, 46, 250, 24, 20
    height = top + row_h * len(items) + 40
    vals = [v for e in items for v in (e.point, e.low, e.high) if v is not None and v > 0]
    lo_exp = math.floor(math.log10(min(vals))) if vals else 0
    hi_exp = math.ceil(math.log10(max(vals))) if vals else 1
    if hi_exp <= lo_exp:
        hi_exp = lo_exp + 1
    pw = width - left - right

    def xpos(v: float) -> float:
        v = max(v, 10**lo_exp)
        return left + (math.log10(v) - lo_exp) / (hi_exp - lo_exp) * pw

    out = [
        _svg_open(
            width,
            height,
            "Flagged, coincidental and estimated real",
            "Dot-and-interval chart on a logarithmic axis comparing the number of pairs the Crosscheck rule "
            "flags, the number expected by coincidence, and the estimated true duplicate registrations and "
            "double votes with their confidence intervals.",
            "estimates",
        )
    ]
    for k in range(lo_exp, hi_exp + 1):
        x = xpos(10**k)
        out.append(
            f'<line x1="{x:.1f}" x2="{x:.1f}" y1="{top - 6}" y2="{height - 32}" stroke="{GRID}"/>'
            f'<text x="{x:.1f}" y="{height - 16}" text-anchor="middle" font-size="10.5" fill="{MUTED}">'
            f"{_tick_label(10**k)}</text>"
        )
    colours = {"count": "#d6604d", "expected": "#878787", "estimate": "#2166ac", "ratio": "#762a83"}
    short = {
        "crosscheck_flagged": "Crosscheck rule flags",
        "coincidences_expected": "Expected by coincidence",
        "duplicate_registrations": "Estimated duplicate registrations",
        "double_votes": "Estimated double votes",
    }
    for i, e in enumerate(items):
        y = top + i * row_h + row_h / 2
        colour = colours[e.kind]
        out.append(
            f'<text x="{left - 12}" y="{y}" text-anchor="end" dominant-baseline="middle" font-size="12.5" '
            f'fill="{INK}">{_e(short.get(e.key, e.label))}</text>'
        )
        tip = f"{e.label}: {fmt_num(e.point) if e.kind != 'count' else fmt_int(e.point)}"
        if e.low is not None and e.high is not None:
            tip += f" ({_level(e.level)} interval {fmt_num(e.low)} to {fmt_num(e.high)})"
            x1, x2 = xpos(max(e.low, 10**lo_exp)), xpos(max(e.high, 10**lo_exp))
            out.append(
                f'<line x1="{x1:.1f}" x2="{x2:.1f}" y1="{y}" y2="{y}" stroke="{colour}" stroke-width="3" '
                f'stroke-linecap="round" opacity="0.55"/>'
                f'<line x1="{x1:.1f}" x2="{x1:.1f}" y1="{y - 7}" y2="{y + 7}" stroke="{colour}" stroke-width="2"/>'
                f'<line x1="{x2:.1f}" x2="{x2:.1f}" y1="{y - 7}" y2="{y + 7}" stroke="{colour}" stroke-width="2"/>'
            )
        if e.point is not None and e.point > 0:
            x = xpos(e.point)
            shape = (
                f'<rect x="{x - 6:.1f}" y="{y - 6}" width="12" height="12" fill="{colour}"/>'
                if e.kind == "count"
                else f'<circle cx="{x:.1f}" cy="{y}" r="6.5" fill="{colour}" stroke="#ffffff" stroke-width="1.5"/>'
            )
            label = fmt_int(e.point) if e.kind == "count" else fmt_num(e.point)
            anchor, dx = ("end", -10) if x > left + pw * 0.8 else ("start", 10)
            out.append(
                f"<g><title>{_e(tip)}</title>{shape}"
                f'<text x="{x + dx:.1f}" y="{y - 10}" text-anchor="{anchor}" font-size="11.5" font-weight="600" '
                f'fill="{INK}">{_e(label)}</text></g>'
            )
        elif e.point is not None and e.point <= 0:
            x = xpos(max(e.low or 0.0, 10**lo_exp))
            out.append(
                f'<text x="{x + 4:.1f}" y="{y - 10}" font-size="11.5" font-weight="600" fill="{INK}">'
                f"≈ 0<title>{_e(tip)}</title></text>"
            )
        elif e.point is None and e.kind == "count":
            out.append(
                f'<text x="{left + 4}" y="{y}" dominant-baseline="middle" font-size="11.5" fill="{MUTED}">'
                "fewer than 10 (suppressed)</text>"
            )
    out.append(
        f'<text x="{left + pw / 2}" y="{height - 2}" text-anchor="middle" font-size="11" fill="{MUTED}">'
        "number of pairs / people (log scale)</text>"
    )
    out.append("</svg>")
    return "".join(out)


def _level(level: float | None) -> str:
    return f"{level * 100:.0f}%" if level else "interval"
