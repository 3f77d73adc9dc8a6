"""Look inside the linkage model: Splink's own charts and per-comparison weights.

A match probability is only as trustworthy as the model behind it, so every
user who acts on one can see how it was made:

* :func:`parameters` - the m and u probabilities of every comparison level and
  the match weight ``log2(m / u)`` Splink derives from them (Splink's own
  ``Settings`` computes them from ``W/link/model.json``; nothing re-derived);
* :func:`match_weights_chart`, :func:`m_u_chart` - Splink's match-weights and
  m/u parameter charts;
* :func:`waterfall_chart` - Splink's waterfall for one pair: prior, one bar per
  comparison, the final weight.  ``pairs.parquet`` keeps the level of every
  comparison (``gamma_*``) and the final ``match_weight`` but not the
  per-name term-frequency adjustments, so these appear as one bar, "term
  frequency adjustments (names)", equal to what the final weight holds beyond
  the prior and the level weights.  The chart never shows a record's values
  (Splink's ``remove_sensitive_data``): only levels and weights;
* :func:`offline_html` - a page holding the charts with the Vega libraries
  Splink bundles, inline: it opens with no network.

Splink is imported only here, when a model is looked at.
"""

from __future__ import annotations

import json
import math
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any


@dataclass(frozen=True)
class LevelParameter:
    """One comparison level as the trained model holds it."""

    comparison: str
    gamma: int
    label: str
    m: float | None
    u: float | None
    weight: float  # log2(m / u); 0 for the null level ("not compared")
    is_null: bool
    tf_adjusted: bool


def _model(model: Path | dict) -> dict:
    return model if isinstance(model, dict) else json.loads(Path(model).read_text(encoding="utf-8"))


def settings_of(model: Path | dict):
    """Splink's ``Settings`` object for a saved model (m/u, prior, comparisons)."""
    from splink.internals.settings_creator import SettingsCreator

    m = _model(model)
    return SettingsCreator.from_path_or_dict(m).get_settings(m.get("sql_dialect") or "duckdb")


def prior_weight(model: Path | dict) -> float:
    """The starting match weight: log2 of the prior odds two records match."""
    p = float(_model(model)["probability_two_random_records_match"])
    return math.log2(p / (1 - p))


def parameters(model: Path | dict) -> list[LevelParameter]:
    """Every comparison level with its m, u and match weight, in the model's order."""
    out = []
    for rec in settings_of(model)._parameters_as_detailed_records:
        d = rec.as_dict()
        if d["comparison_name"] == "probability_two_random_records_match":
            continue
        w = d.get("log2_bayes_factor")
        out.append(
            LevelParameter(
                comparison=str(d["comparison_name"]),
                gamma=int(d["comparison_vector_value"]),
                label=str(d["label_for_charts"]),
                m=d.get("m_probability"),
                u=d.get("u_probability"),
                weight=0.0 if d.get("is_null_level") or w is None or not math.isfinite(w) else float(w),
                is_null=bool(d.get("is_null_level")),
                tf_adjusted=bool(d.get("has_tf_adjustments")),
            )
        )
    return out


def weights_by_level(model: Path | dict) -> dict[str, dict[int, tuple[str, float]]]:
    """comparison -> gamma -> (label, weight): what the lists' evidence column reads."""
    table: dict[str, dict[int, tuple[str, float]]] = {}
    for p in parameters(model):
        table.setdefault(p.comparison, {})[p.gamma] = (p.label, p.weight)
    return table


def match_weights_chart(model: Path | dict):
    """Splink's match-weights chart (one bar per comparison level)."""
    from splink.internals.charts import MatchWeightsChart

    return MatchWeightsChart(settings_of(model)._parameters_as_detailed_records)


def m_u_chart(model: Path | dict):
    """Splink's m and u probability chart per comparison level."""
    from splink.internals.charts import MUParametersChart

    return MUParametersChart(settings_of(model)._parameters_as_detailed_records)


TF_BAR = "Term frequency adjustments (names)"
UNEXPLAINED_BAR = "Stored weight not explained by this model (was the model changed after linkage?)"


def waterfall_chart(model: Path | dict, pair: dict[str, Any]):
    """Splink's waterfall for one pair (``gamma_*`` and ``match_weight`` from pairs.parquet).

    Values of the records are never part of it: Splink's sensitive-data switch
    is on, so the bars carry comparison names, levels and weights only.
    """
    from splink.internals.charts import WaterfallChart
    from splink.internals.waterfall_chart import records_to_waterfall_data

    settings = settings_of(model)
    record = dict(pair)
    for c in settings.comparisons:
        record.setdefault(c._gamma_column_name, -1)
        if record[c._gamma_column_name] is None:
            record[c._gamma_column_name] = -1
        record.setdefault(c._mw_tf_adj_column_name, 0.0)
    rows = records_to_waterfall_data([record], settings, True)
    explained = sum(r["log2_bayes_factor"] for r in rows[:-1] if r["log2_bayes_factor"] is not None)
    residual = float(pair["match_weight"]) - explained
    if abs(residual) >= 0.01:  # the service rounds weights to 2 decimals
        has_tf = any(c._has_tf_adjustments for c in settings.comparisons)
        final = rows.pop()
        rows.append(
            {
                "column_name": "tf_names" if has_tf else "unexplained",
                # without term-frequency comparisons the gap cannot be names: say so
                "label_for_charts": TF_BAR if has_tf else UNEXPLAINED_BAR,
                "sql_condition": None,
                "log2_bayes_factor": residual,
                "bayes_factor": 2**residual,
                "comparison_vector_value": None,
                "m_probability": None,
                "u_probability": None,
                "bayes_factor_description": (
                    "how much more (or less) common the names are than average, summed over the name comparisons"
                    if has_tf
                    else "the stored match weight differs from the model's sum"
                ),
                "value_l": "",
                "value_r": "",
                "term_frequency_adjustment": True,
                "record_number": 0,
            }
        )
        rows.append(final)
        for i, r in enumerate(rows):
            r["bar_sort_order"] = i
    return WaterfallChart(rows, filter_nulls=True)


def offline_html(title: str, body_html: str, charts: list[tuple[str, Any]]) -> str:
    """A complete page: ``body_html`` then each (heading, Splink chart), scripts inline.

    The Vega libraries are Splink's bundled copies (no CDN), included once;
    the chart specs are Splink's, with the "$schema" reference and the
    "open in editor" menu removed so nothing on the page points at a server.
    """
    from html import escape

    from splink.internals.html_utils import json_for_html, load_chart_libraries

    libs = {name: _offline(src) for name, src in load_chart_libraries().items()}
    parts = [
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">",
        '<meta name="viewport" content="width=device-width, initial-scale=1">',
        f"<title>{escape(title)}</title><style>{_CSS}</style>",
        *(f"<script>{libs[n]}</script>" for n in ("vega", "vega-lite", "vega-embed")),
        f"</head><body><main><h1>{escape(title)}</h1>{body_html}",
    ]
    for i, (heading, chart) in enumerate(charts):
        spec = dict(chart.chart_dict)
        spec.pop("$schema", None)
        spec.setdefault("config", {}).setdefault("view", {}).setdefault("continuousWidth", 300)
        parts.append(
            f'<section><h2>{escape(heading)}</h2><div class="chart" id="chart{i}"></div>'
            f"<script>vegaEmbed(document.getElementById('chart{i}'), {json_for_html(spec)}, "
            "{actions: false}).catch(function (e) { document.getElementById('chart"
            f"{i}').textContent = 'The chart could not be drawn: ' + e.message; }});</script></section>"
        )
    parts.append("</main></body></html>")
    return "".join(parts)


#: XML namespace names the libraries pass to the DOM: identifiers, never fetched.
XML_NAMESPACES = (
    "http://www.w3.org/1999/xlink",
    "http://www.w3.org/2000/svg",
    "http://www.w3.org/2000/xmlns/",
)
_URL = re.compile(r"https?://[A-Za-z0-9./:_~%#?=&+-]*")


def _offline(js: str) -> str:
    """A bundled library with every web address blanked except XML namespace names.

    The addresses are comments, error-message links, the "$schema" stamp and
    the editor menu (switched off): none is needed offline, and a page that
    names no server cannot be mistaken for one that calls it.
    """
    return _URL.sub(lambda m: m.group(0) if m.group(0) in XML_NAMESPACES else "", js)


_CSS = (
    "body{font:15px/1.5 system-ui,-apple-system,'Segoe UI',sans-serif;color:#1f2328;margin:0}"
    "main{max-width:1100px;margin:0 auto;padding:12px 16px}"
    "h1{font-size:1.5rem}h2{font-size:1.15rem;margin-top:1.6em}"
    ".chart{overflow-x:auto;max-width:100%}"
    "table{border-collapse:collapse;font-size:.9rem}td,th{border-bottom:1px solid #d0d7de;padding:3px 8px;text-align:left}"
    "td.n{text-align:right;font-variant-numeric:tabular-nums}.scroll{overflow-x:auto}"
    ".note{color:#57606a;font-size:.92rem}"
)
