"""Explain a match: each comparison's level and match weight, strongest first.

Staff acting on a list must see *why* a row is there.  Splink records, per
pair and per comparison, the level the pair reached (``gamma_<name>``): -1
for "one side missing", 0 for "no agreement" and higher numbers for stronger
agreement.  The saved model gives each level a label and a match weight
``log2(m / u)`` (Splink's own figure, :mod:`voterolls.link.explain`).  The
``evidence`` column lists the comparisons that moved the weight, ordered by
how much they moved it (largest first, for or against), each with its signed
weight: ``dob: exact full date (+10.2); last_name: Exact match on last_name
(+10.1); address: All other comparisons (-13.3)``.  Neutral comparisons (not
compared, weight 0) are left out.  Name-frequency adjustments are not in the
pairs file, so the weights are those of the level.  One SQL expression, no
row loops.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from pathlib import Path

from voterolls.sql import literal


@dataclass(frozen=True)
class ComparisonLevels:
    """The labels of one comparison's levels, keyed by gamma value."""

    name: str
    labels: dict[int, str]
    #: match weight log2(m/u) per gamma (0 for the null level); missing where the model has none
    weights: dict[int, float] = field(default_factory=dict)


def levels_from_model(model_json: Path | dict) -> list[ComparisonLevels]:
    """Read level labels from a Splink model JSON (``save_model_to_json`` output).

    Splink numbers the non-null levels of a comparison from ``n - 1`` (first,
    strongest) down to 0 (the "else" level); the null level is -1.
    """
    settings = model_json if isinstance(model_json, dict) else json.loads(Path(model_json).read_text())
    out = []
    for comp in settings.get("comparisons", []):
        name = comp.get("output_column_name") or comp.get("comparison_description", "comparison")
        levels = comp.get("comparison_levels", [])
        non_null = [lv for lv in levels if not lv.get("is_null_level")]
        null = next((lv for lv in levels if lv.get("is_null_level")), {})
        labels: dict[int, str] = {-1: _null_label(null.get("label_for_charts"))}
        for i, lv in enumerate(non_null):
            gamma = len(non_null) - 1 - i
            labels[gamma] = lv.get("label_for_charts") or lv.get("sql_condition", f"level {gamma}")
        out.append(ComparisonLevels(name=name, labels=labels, weights=_weights(comp, non_null)))
    splink = _splink_weights(settings)
    return [
        ComparisonLevels(c.name, c.labels, {g: w for g, (_, w) in splink[c.name].items()})
        if c.name in splink
        else c
        for c in out
    ]


def _weights(comp: dict, non_null: list[dict]) -> dict[int, float]:
    """log2(m/u) from the model JSON where both are given (the fallback to Splink's own)."""
    w: dict[int, float] = {-1: 0.0}
    for i, lv in enumerate(non_null):
        m, u = lv.get("m_probability"), lv.get("u_probability")
        if isinstance(m, int | float) and isinstance(u, int | float) and m > 0 and u > 0:
            w[len(non_null) - 1 - i] = math.log2(m / u)
    return w


def _splink_weights(settings: dict) -> dict[str, dict[int, tuple[str, float]]]:
    """Splink's own level weights (it fills untrained levels with its defaults), if it reads the model."""
    if "probability_two_random_records_match" not in settings:
        return {}
    try:
        from voterolls.link.explain import weights_by_level

        return weights_by_level(settings)
    except Exception:  # a partial model (hand-written, older): the JSON's own m/u serve
        return {}


def _null_label(label: str | None) -> str:
    """The model's own words for "not compared" where it has them.

    Splink labels a plain null level "<column> is NULL"; the DOB comparisons
    name theirs ("public dates compared instead, or no token"), which is more
    accurate than "missing": a pair with full dates on both sides is not
    compared on the sealed token because the dates were compared instead.
    """
    if not label or label.strip().lower() == "null" or label.rstrip().endswith("is NULL"):
        return "missing on one side"
    return label


def evidence_sql(levels: list[ComparisonLevels], available: set[str], prefix: str = "") -> str:
    """A DuckDB expression: the comparisons that moved the weight, strongest first.

    ``available`` are the columns present in the pairs table; comparisons
    without a gamma column are skipped.  Each part reads ``name: level label
    (+w.w)``; parts are sorted by absolute weight, largest first; weight-0
    parts (not compared) are dropped.  A level whose weight the model does not
    give is listed after the weighted ones without a number.  Falls back to the
    raw gamma numbers when no model labels are known.
    """
    parts = []
    for comp in levels:
        col = f"gamma_{comp.name}"
        if col not in available:
            continue
        g = f'{prefix}"{col}"'
        text = " ".join(
            f"WHEN {gamma} THEN {literal(comp.name + ': ' + label + _signed(comp.weights.get(gamma)))}"
            for gamma, label in comp.labels.items()
        )
        weight = " ".join(
            f"WHEN {gamma} THEN {comp.weights[gamma]!r}" for gamma in comp.labels if gamma in comp.weights
        )
        w_sql = f"CASE {g} {weight} ELSE NULL END" if weight else "NULL::DOUBLE"
        parts.append(
            f"struct_pack(k := coalesce(-abs({w_sql}), 0.5), w := {w_sql}, t := CASE {g} {text} ELSE NULL END)"
        )
    if not parts:
        gammas = sorted(c for c in available if c.startswith("gamma_"))
        parts = [f"'{c[6:]}=' || CAST({prefix}\"{c}\" AS VARCHAR)" for c in gammas]
        return "concat_ws('; ', " + ", ".join(parts) + ")" if parts else "NULL::VARCHAR"
    items = "[" + ", ".join(parts) + "]"
    kept = f"list_filter({items}, lambda x: x.t IS NOT NULL AND (x.w IS NULL OR x.w <> 0))"
    return f"array_to_string(list_transform(list_sort({kept}), lambda x: x.t), '; ')"


def _signed(w: float | None) -> str:
    return "" if w is None else f" ({w:+.1f})"
