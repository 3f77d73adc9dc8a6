"""Explain a match: which fields agreed, at what level, from Splink's gamma columns.

Staff acting on a list must see *why* a row is there.  Splink records, per
pair and per comparison, the level the pair reached (``gamma_<name>``): -1
for "one side missing", 0 for "no agreement" and higher numbers for stronger
agreement.  The saved model JSON names each level; this module turns the
numbers back into those names as one SQL expression (no row loops).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from voterolls.sql import literal


@dataclass(frozen=True)
class ComparisonLevels:
    """The labels of one comparison's levels, keyed by gamma value."""

    name: str
    labels: dict[int, str]


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
        out.append(ComparisonLevels(name=name, labels=labels))
    return out


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
    """A DuckDB expression building one readable evidence string per pair.

    ``available`` are the columns present in the pairs table; comparisons
    without a gamma column are skipped.  Falls back to the raw gamma numbers
    when no model labels are known.
    """
    parts = []
    for comp in levels:
        col = f"gamma_{comp.name}"
        if col not in available:
            continue
        cases = " ".join(f"WHEN {g} THEN {literal(comp.name + ': ' + label)}" for g, label in comp.labels.items())
        parts.append(f"CASE {prefix}\"{col}\" {cases} ELSE NULL END")
    if not parts:
        gammas = sorted(c for c in available if c.startswith("gamma_"))
        parts = [f"'{c[6:]}=' || CAST({prefix}\"{c}\" AS VARCHAR)" for c in gammas]
    if not parts:
        return "NULL::VARCHAR"
    return "concat_ws('; ', " + ", ".join(parts) + ")"
