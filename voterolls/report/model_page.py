"""The offline "inside the model" page: Splink's own charts and the m/u table.

``voterolls report`` writes it beside the report (``<report>-model.html``)
whenever the workspace has a trained model, and the report links to it; the
service serves the same page at ``/model`` and a per-pair waterfall at
``/states/XX/pairs/<pair_ref>`` (:func:`pair_page`).  The report itself stays
script-free; these pages carry Splink's bundled Vega libraries inline and
load nothing from the network (:func:`voterolls.link.explain.offline_html`).
They show model parameters and weights only: no record values.
"""

from __future__ import annotations

from html import escape
from pathlib import Path

from voterolls.link import explain


def _p(v: float | None) -> str:
    return "—" if v is None else f"{v:.4g}"


def model_page(model_json: Path) -> str:
    """The page for ``W/link/model.json``: m/u and weights per comparison level, two charts."""
    params = explain.parameters(model_json)
    rows = "".join(
        f"<tr><td>{escape(p.comparison)}</td><td class='n'>{p.gamma}</td><td>{escape(p.label)}</td>"
        f"<td class='n'>{_p(p.m)}</td><td class='n'>{_p(p.u)}</td>"
        f"<td class='n'>{'not compared' if p.is_null else f'{p.weight:+.2f}'}</td>"
        f"<td>{'yes' if p.tf_adjusted else ''}</td></tr>"
        for p in params
    )
    prior = explain.prior_weight(model_json)
    body = (
        "<p>How the linkage model turns agreement into a match probability (Fellegi-Sunter, as "
        "trained by Splink without labels). For every comparison, <b>m</b> is the share of true "
        "matches that reach a level and <b>u</b> the share of non-matches; the level's match weight "
        "is log2(m / u). A pair's weight is the prior plus the weights of the levels it reached "
        "(names also get a term-frequency adjustment: common names count for less); the "
        "probability is 2<sup>w</sup> / (1 + 2<sup>w</sup>).</p>"
        f"<p>Prior (starting) match weight: <b>{prior:+.2f}</b> "
        "(re-estimated on every linkage run).</p>"
        "<h2>Parameters per comparison level</h2><div class='scroll'><table>"
        "<thead><tr><th>Comparison</th><th>Level</th><th>Label</th><th>m</th><th>u</th>"
        "<th>Weight log2(m/u)</th><th>Term-frequency adjusted</th></tr></thead>"
        f"<tbody>{rows}</tbody></table></div>"
        "<p class='note'>Charts below are Splink's own (match_weights_chart, "
        "m_u_parameters_chart), drawn with the Vega libraries Splink bundles; the page loads "
        "nothing from the network.</p>"
    )
    return explain.offline_html(
        "Inside the linkage model",
        body,
        [
            ("Match weights per comparison level", explain.match_weights_chart(model_json)),
            ("m and u probabilities per comparison level", explain.m_u_chart(model_json)),
        ],
    )


def pair_page(model_json: Path, pair: dict, state: str) -> str:
    """Splink's waterfall for one pair, seen from ``state`` (its own side only named)."""
    other = pair["other_state"]
    body = (
        f"<p>Pair <code>{escape(str(pair['pair_ref']))}</code>: {escape(state)} registration "
        f"<code>{escape(str(pair['voter_id']))}</code> and a registration in "
        f"{escape(other) if other != state else 'the same state'}. Match probability "
        f"<b>{float(pair['match_probability']):.4f}</b>, match weight "
        f"<b>{float(pair['match_weight']):+.2f}</b>.</p>"
        "<p>Each bar is one comparison's contribution to the match weight, starting from the "
        "prior; comparisons that were not made (no value on one side) are left out. "
        f"'{explain.TF_BAR}' is what the final weight holds beyond the level weights: the "
        "adjustment for how common the names are. No value of either record is on this page.</p>"
    )
    return explain.offline_html(
        "Why this pair was scored as it was",
        body,
        [("Match-weight waterfall (Splink)", explain.waterfall_chart(model_json, pair))],
    )


def model_page_path(report_path: Path) -> Path:
    """Where ``voterolls report`` writes the model page: beside the report."""
    return report_path.with_name(report_path.stem + "-model.html")
