"""The Splink model definition and the defaults every linkage command shares.

One place fixes the link type, comparisons, blocking rules and the numbers a
user may want to know (threshold, seeds, sample sizes), so a saved model
(``W/link/model.json``) and a fresh one agree on everything but the trained
parameters.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from splink import SettingsCreator

from voterolls.errors import UserError, require_file
from voterolls.link.blocking import prediction_rules
from voterolls.link.comparisons import all_comparisons

#: Pairs at or above this match probability are linked into one person
#: (clusters) and counted as predicted duplicates by ``evaluate``.  The
#: probabilities are calibrated, so 0.5 would minimise expected errors; 0.9
#: is chosen because a false link accuses a voter of a duplicate registration
#: (list maintenance treats a link as evidence for review, never removal).
DEFAULT_THRESHOLD = 0.9

#: Pairs scored below this probability are not written to pairs.parquet.  The
#: sum of match probabilities below it over all candidate pairs is small next
#: to the number of true duplicates (reported by ``voterolls link``), and the
#: statistics stage reads sums of probabilities.
DEFAULT_MIN_PROBABILITY = 0.001

#: Recalibrate the year-only and no-DOB classes with the map learnt from the
#: full-DOB pairs (voterolls.link.calibration).  On by default because it
#: brought the mid-range bins of those classes from 1.2-2.0x expected / true to
#: within ~10% at 100k registrations and did not lower F1 (bench/link_ceiling.py,
#: docs/LINKAGE.md).
DEFAULT_RECALIBRATE = True

#: Seed for every random choice in training (u sampling, EM sampling).
DEFAULT_SEED = 42

#: Record pairs sampled for u (Splink stops early once every level has >= 100
#: observations).  3e6 gives ~60 observations of an exact full-date match.
#: Cost is ~2-4 microseconds per pair on 2 cores (string similarities).
U_MAX_PAIRS = 3e6
#: Approximate pairs per EM session (Splink samples records deterministically).
EM_MAX_PAIRS = 2e6

#: Starting value for the prior; replaced by training.
INITIAL_PRIOR = 1e-6


def settings_creator(joint_names: bool = False, profile=None) -> SettingsCreator:
    """A fresh, untrained model definition (dialect-independent).

    ``profile`` (:class:`voterolls.link.fields.FieldProfile`): the fields the
    input carries; the prediction rules are those it can use (all when None).

    ``joint_names``: weigh "first and last name both exact" once, with the
    term frequency of the full name (:func:`voterolls.link.comparisons.last_name`).
    """
    return model_settings(all_comparisons(joint_names), prediction_rules(profile))


def model_settings(comparisons: list, rules: list) -> SettingsCreator:
    """The one model definition around a set of comparisons and prediction rules (plaintext or
    sealed): dedupe across and within states, the starting prior, the columns pairs keep."""
    return SettingsCreator(
        link_type="dedupe_only",
        unique_id_column_name="unique_id",
        comparisons=comparisons,
        blocking_rules_to_generate_predictions=rules,
        probability_two_random_records_match=INITIAL_PRIOR,
        retain_matching_columns=True,
        retain_intermediate_calculation_columns=False,
        additional_columns_to_retain=["state", "state_voter_id", "dob_granularity"],
        em_convergence=1e-4,
        max_iterations=20,
    )


def load_model(path: str | Path) -> dict[str, Any]:
    """Read a saved model JSON; a clear :class:`UserError` for a missing or broken file."""
    p = Path(path)
    require_file(p, "model file")
    try:
        model = json.loads(p.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise UserError(
            f"model file is not valid JSON ({exc.__class__.__name__})", file=p
        ) from None
    if not isinstance(model, dict) or "comparisons" not in model:
        raise UserError("not a Splink model (no 'comparisons')", file=p)
    return model


def transfer_parameters(
    model: dict[str, Any], target: dict[str, Any], *, source: str = "model"
) -> dict[str, Any]:
    """Copy trained m/u and the prior from ``model`` onto ``target`` (same structure).

    Used to run a model trained on one engine on another: the SQL of the
    levels differs by dialect (``jaro_winkler_similarity`` vs ``jaro_winkler``),
    the parameters do not.  Comparisons are matched by output column name and
    levels by position; any difference in structure is a :class:`UserError`.
    """
    by_name = {c["output_column_name"]: c for c in model["comparisons"]}
    out = json.loads(json.dumps(target))
    for comp in out["comparisons"]:
        name = comp["output_column_name"]
        src = by_name.get(name)
        if src is None or len(src["comparison_levels"]) != len(comp["comparison_levels"]):
            raise UserError(
                f"the model's comparison {name!r} does not match this version's definition",
                file=source,
            )
        for lvl, src_lvl in zip(comp["comparison_levels"], src["comparison_levels"], strict=True):
            for key in ("m_probability", "u_probability"):
                if key in src_lvl:
                    lvl[key] = src_lvl[key]
    out["probability_two_random_records_match"] = model["probability_two_random_records_match"]
    return out
