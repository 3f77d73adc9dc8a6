"""Render a :class:`ReportData` into one self-contained HTML page.

Pure: the same model gives the same page (apart from nothing: the timestamp
is in the model).  Charts are inline SVG from ``charts``; CSS is inlined from
``templates/report.css``; there is no script, no web font and no reference to
any network resource, so the file opens offline and can be mailed or archived
as it is.  Jinja2 autoescaping is on; only chart SVG (built from numbers and
fixed labels) is marked safe.
"""

from __future__ import annotations

import math
from importlib import resources
from pathlib import Path

from jinja2 import Environment, PackageLoader, StrictUndefined, select_autoescape
from markupsafe import Markup

from voterolls.report import charts
from voterolls.report.model import Estimate, Purge, ReportData

#: Sections in page order: (anchor, heading).  Tests assert each heading appears.
SECTIONS = (
    ("summary", "Summary"),
    ("coverage", "Coverage by state"),
    ("fields", "Field availability by state"),
    ("uniformity", "Uniformity of the state files"),
    ("matches", "Match-probability distribution"),
    ("estimates", "Estimates with intervals"),
    ("methods", "Methods and caveats"),
)


def _env() -> Environment:
    env = Environment(
        loader=PackageLoader("voterolls.report", "templates"),
        autoescape=select_autoescape(["html", "j2"]),
        undefined=StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters["int"] = charts.fmt_int  # counts of people / pairs: small cells read "<10"
    env.filters["commas"] = lambda v: f"{int(v):,}"  # structural numbers (states, pairs of states)
    env.filters["num"] = charts.fmt_num
    env.filters["pct"] = charts.fmt_pct
    env.filters["interval"] = interval_text
    env.filters["value"] = value_text
    env.filters["national"] = national_text
    env.filters["rests"] = rests_text
    env.filters["below_zero"] = below_zero_text
    env.filters["sentence"] = lambda t: (t[:1].upper() + t[1:]) if t else ""
    return env


def national_text(e: Estimate | None) -> str:
    """The national figure with its model label, or what the figure is limited to."""
    if e is None:
        return ""
    if e.national is not None:
        txt = "≈ 0" if e.national < 0 else charts.fmt_num(e.national)
        if e.national_low is not None and e.national_high is not None:
            txt += f" ({charts.fmt_num(e.national_low)} to {charts.fmt_num(e.national_high)})"
        return txt + (f"; {e.national_label}" if e.national_label else "")
    if e.national_label:
        return e.national_label + (f" ({e.national_model})" if e.national_model else "")
    return "—"


def rests_text(e: Estimate | None) -> str:
    if e is None or not e.rests_on_states:
        return ""
    txt = ", ".join(e.rests_on_states)
    if e.rests_on_share is not None:
        txt += f" ({charts.fmt_pct(e.rests_on_share)} of US registrants)"
    return txt


def value_text(e: Estimate | None) -> str:
    if e is None:
        return "n/a"
    if e.kind == "count":
        return charts.fmt_int(e.point)
    if e.point is not None and e.point < 0:
        # an unbiased estimator can dip below zero; the quantity cannot
        return "≈ 0"
    return charts.fmt_num(e.point)


def _signed_interval(e: Estimate) -> tuple[float, float] | None:
    """The unclipped interval (stats' ``ci95_signed``) when the figure carries one and it
    differs from the displayed one (``truncated_at_zero``); else None.
    """
    lo, hi, truncated = e.low_signed, e.high_signed, e.truncated_at_zero
    if lo is None or hi is None:
        return None
    if truncated is False or (truncated is None and lo >= 0 and (e.point or 0) >= 0):
        return None
    return float(lo), float(hi)


def interval_text(e: Estimate | None) -> str:
    """ "95% interval 1,100 to 1,400", or a plain statement that there is none.

    An interval clipped at zero (a count cannot be negative) around a positive
    estimate says so and gives the signed interval, so a reader can see how far
    below zero it reached; for a negative estimate :func:`below_zero_text` does.
    """
    if e is None:
        return ""
    if e.low is not None and e.high is None and e.high_unbounded:
        lvl = f"{e.level * 100:.0f}%" if e.level else ""
        return f"{lvl} interval {charts.fmt_num(e.low)} to no upper bound".strip()
    if e.low is None or e.high is None:
        if e.kind == "count":
            return "observed count"
        if e.kind == "expected":
            return "model expectation"
        return "no interval reported"
    lvl = f"{e.level * 100:.0f}%" if e.level else ""
    txt = f"{lvl} interval {charts.fmt_num(e.low)} to {charts.fmt_num(e.high)}".strip()
    signed = _signed_interval(e)
    if signed is not None and signed[0] < 0 and (e.point or 0) >= 0:
        # (a negative point estimate gets the signed interval in its footnote instead)
        txt += f" (clipped at 0; signed {charts.fmt_num(signed[0])} to {charts.fmt_num(signed[1])})"
    return txt


def below_zero_text(e: Estimate | None) -> str:
    """Why a figure reads "≈ 0": the estimator's point value fell below zero.

    The footnote gives the signed estimate and, where the figure carries it, the
    signed 95% interval (stats' ``ci95_signed``): the estimators are unbiased, so
    averages over runs must use these signed values, not the displayed 0.
    Empty for a figure that is not below zero (the template reads empty as "detected").
    """
    if e is None or e.point is None or e.point >= 0 or e.kind == "count":
        return ""
    txt = f"Point estimate {charts.fmt_num(e.point)}"
    signed = _signed_interval(e)
    if signed is not None:
        txt += f" (signed 95% interval {charts.fmt_num(signed[0])} to {charts.fmt_num(signed[1])})"
    return (
        txt + ": below zero after correcting for coincidences and record errors, so none detected."
    )


def _blocked_interval(p: Purge) -> str:
    """ " (95% interval a to b)" for the legitimate votes a purge blocks, when reported."""
    lo, hi = p.legitimate_votes_blocked_low, p.legitimate_votes_blocked_high
    if lo is None or hi is None:
        return ""
    return f" (95% interval {charts.fmt_num(lo)} to {charts.fmt_num(hi)})"


def birthday_table() -> list[tuple[int, float]]:
    """P(at least two of n people share a birthday), 365 equally likely days.

    Exact arithmetic, not a measurement: it shows why a shared name + birth
    date is weak evidence.  Real births are not uniform, which raises these.
    """
    out = []
    for n in (10, 23, 40, 70):
        p_distinct = math.prod((365 - i) / 365 for i in range(n))
        out.append((n, 1 - p_distinct))
    return out


def coverage_caveat(data: ReportData) -> str:
    cov = data.coverage.data
    if cov is None:
        return "Coverage unknown."
    k = cov.states_with_data
    if k == 0:
        return "No state's registrations are loaded: every figure below is empty or not available."
    text = f"Covers {k} of {len(cov.states)} jurisdictions"
    if cov.share_registrants_with_data is not None:
        text += f", home to {charts.fmt_pct(cov.share_registrants_with_data)} of US registrants"
    else:
        text += "; the share of US registrants they hold is unknown"
    est = data.estimates.data
    scaled = est is not None and any(
        e is not None and e.national is not None
        for e in (
            est.duplicate_registrations,
            est.duplicate_registrations_in_state,
            est.double_votes,
        )
    )
    if scaled:
        return text + (
            ". Figures are for these jurisdictions only; a national figure appears only in the "
            '"National" column of the estimates, where the statistics stage extrapolated with an explicit model.'
        )
    return text + (
        ". Figures are for these jurisdictions only, not national totals, and are not scaled up "
        "to states that sent nothing."
    )


def purge_lines(data: ReportData) -> list[str]:
    """Plain arithmetic on the estimates, each line saying what it divides."""
    est = data.estimates.data
    if est is None:
        return []
    f_int, f_num, f_pct = charts.fmt_int, charts.fmt_num, charts.fmt_pct
    lines: list[str] = []
    cc, dup, dv, co = (
        est.crosscheck_flagged,
        est.duplicate_registrations,
        est.double_votes,
        est.coincidences_expected,
    )
    if cc is not None and cc.point and co is not None and co.point is not None:
        lines.append(
            f"The Crosscheck rule flags {f_int(cc.point)} cross-state pairs. The birthday problem predicts "
            f"that about {f_num(co.point)} of them ({f_pct(min(co.point / cc.point, 1.0))}) are different "
            "people who happen to share a first name, last name and date of birth."
        )
    if dup is not None and dup.point is not None:
        txt = f"Estimated pairs that really are one person registered in two states: {value_text(dup)}"
        if dup.low is not None and dup.high is not None:
            txt += f" ({interval_text(dup)})"
        if est.linkage_used is False:
            txt += (
                "; without linkage this counts only duplicates recorded identically in both states "
                "(nicknames, typos and changed dates are missed), net of coincidences"
            )
        else:
            txt += "; this includes duplicates the rule misses (nicknames, typos) and excludes coincidences"
        lines.append(txt + ".")
    p = est.purge
    if p is not None:
        txt = "A purge that removes the earlier-registered record of every flagged pair"
        if p.registrations_removed is not None:
            txt += f" would remove {f_int(p.registrations_removed)} registrations"
            if p.removed_registrations_used_to_vote is not None:
                txt += f", {f_int(p.removed_registrations_used_to_vote)} of them used to vote"
        txt += "."
        dvp = p.double_votes_prevented
        if p.ratio is not None:
            if dvp is not None and dvp.point is not None:
                txt += f" It could prevent at most about {f_num(dvp.point)} double votes"
                if p.legitimate_votes_blocked is not None:
                    txt += f" while blocking about {f_num(p.legitimate_votes_blocked)} legitimate votes"
                    txt += _blocked_interval(p)
                txt += "."
            txt += f" That is about {f_num(p.ratio)} legitimate votes blocked for each double vote prevented"
            if p.ratio_low is not None and p.ratio_high is not None:
                lo, hi = sorted((p.ratio_low, p.ratio_high))
                txt += f" ({f_num(lo)} to {f_num(hi)} over the interval)"
            txt += "."
        elif dvp is not None and (dvp.point or 0) <= 0:
            txt += (
                " No double votes are detected among the flagged pairs, so it would prevent none: "
                "any vote it blocked would be a legitimate one."
            )
            if p.legitimate_votes_blocked is not None:
                txt += (
                    f" Legitimate votes it would block: about {f_num(p.legitimate_votes_blocked)}"
                    + _blocked_interval(p)
                    + "."
                )
        lines.append(txt)
    elif cc is not None and cc.point and dv is not None and dv.point and dv.point > 0:
        lines.append(
            f"Flagged pairs per estimated double vote: {f_int(cc.point)} ÷ {f_num(dv.point)} ≈ "
            f"{f_num(cc.point / dv.point)}. A purge of every flagged registration would remove that many "
            "registrations, nearly all lawful, for each double vote it could prevent."
        )
    return lines


AVAILABILITY_GROUPS = (
    ("supplied", "In the data"),
    ("sealed", "Sealed token only"),
    ("violation", "In the data although the law withholds it"),
    ("allowed_missing", "Law allows; not in the data"),
    ("withheld", "Withheld by law"),
    ("unknown_law", "Law unknown"),
)


def availability_rows(data: ReportData) -> list[tuple[str, dict[str, list[str]]]]:
    """Per state: field names grouped by availability (the heat map as an accessible table)."""
    fa = data.fields.data
    if fa is None:
        return []
    out = []
    for st in fa.states:
        groups: dict[str, list[str]] = {k: [] for k, _ in AVAILABILITY_GROUPS}
        for c in fa.cells:
            if c.state == st and c.availability in groups:
                groups[c.availability].append(c.field)
        out.append((st, groups))
    return out


def render(data: ReportData) -> str:
    """The report as one HTML string."""
    env = _env()
    css = (resources.files("voterolls.report") / "templates" / "report.css").read_text(
        encoding="utf-8"
    )
    ctx: dict[str, object] = {
        "d": data,
        "sections": SECTIONS,
        "css": Markup(css),
        "caveat": coverage_caveat(data),
        "purge": purge_lines(data),
        "birthday": birthday_table(),
        "charts": {},
        "status_legend": [],
        "availability_legend": [],
        "uniformity_findings": [],
        "availability_groups": AVAILABILITY_GROUPS,
        "availability_rows": availability_rows(data),
    }
    ch: dict[str, Markup | list[Markup]] = {}
    if data.coverage.data is not None:
        ch["tilemap"] = Markup(charts.tile_map(data.coverage.data))
        ctx["status_legend"] = charts.status_legend(data.coverage.data)
    if data.fields.data is not None:
        ch["availability"] = Markup(charts.availability_heatmap(data.fields.data))
        ctx["availability_legend"] = charts.availability_legend(data.fields.data)
    if data.uniformity.data is not None:
        u = data.uniformity.data
        ch["uniformity"] = Markup(charts.uniformity_heatmap(u))
        ctx["uniformity_findings"] = [
            r
            for r in u.rows
            if (r.plausible_share is not None and r.plausible_share < 0.99)
            or (r.unmapped or 0) > 0
            or any(c.count for c in r.unmapped_codes)
        ]
    if data.matches.data is not None:
        md = data.matches.data
        ch["histogram"] = Markup(charts.histogram(md, 0))
        ch["small_multiples"] = [
            Markup(charts.histogram(md, i, width=360, height=210, compact=True))
            for i in range(1, len(md.series))
        ]
    if data.estimates.data is not None:
        svg = charts.estimates_chart(data.estimates.data)
        if svg:
            ch["estimates"] = Markup(svg)
    ctx["charts"] = ch
    return env.get_template("report.html.j2").render(**ctx)


def write_report(data: ReportData, out: Path) -> Path:
    """Write atomically (temp file + rename) so a reader never sees half a report."""
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(out.name + ".tmp")
    tmp.write_text(render(data), encoding="utf-8")
    tmp.replace(out)
    return out
