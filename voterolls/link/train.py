"""Training without labels: u by random sampling, m by EM, the prior by EM on the blocked pairs.

* **u** (how often strangers agree at each level) from a seeded random sample
  of record pairs: almost every random pair is two different people.
* **m** (how often the same person agrees) by expectation maximisation on
  two blocking rules, each leaving the other's columns free to estimate:
  (full DOB, first initial) estimates the name, middle, suffix, gender,
  address and SSN comparisons; (canonical first, last name) estimates DOB,
  including the year-only level for mixed granularity.  EM sessions sample
  deterministically (``max_pairs``), so a common-name block cannot dominate.
* **the prior** (probability that two random registrations are the same
  person) by :func:`estimate_prior`: EM for the mixing proportion over all
  blocked candidate pairs with m and u fixed, scaled by blocked / all pairs.
  It assumes the blocking rules contain (nearly) all true pairs, which the
  synthetic evaluation checks (``voterolls evaluate`` reports blocking recall).

Everything is seeded (:data:`voterolls.link.settings.DEFAULT_SEED`), so the
same input gives the same model JSON.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Callable

from splink import Linker

from voterolls.link.blocking import training_rules
from voterolls.link.settings import DEFAULT_SEED, EM_MAX_PAIRS, U_MAX_PAIRS
from voterolls.log import get_logger

log = get_logger(__name__)

#: m for a level EM never observed among matches (instead of Splink's 1e-6,
#: which would make e.g. one transposed birthday a veto): "1 in 1,000 true
#: matches land here".
UNOBSERVED_M = 1e-3
#: Smallest m any level keeps.  EM can drive m of a disagreement level to
#: ~1e-14 on clean synthetic data (gender never flips there); real lists have
#: coding errors, so no single disagreement may count more than log2(u / 1e-4).
M_FLOOR = 1e-4


@dataclass
class TrainingReport:
    seed: int
    u_max_pairs: float
    em_max_pairs: float
    em_rules: list[str] = field(default_factory=list)
    em_iterations: list[int] = field(default_factory=list)
    prior: float | None = None
    prior_iterations: int = 0
    m_floored: list[str] = field(default_factory=list)

    def as_dict(self) -> dict:
        return dict(self.__dict__)


def train(
    linker: Linker,
    *,
    seed: int = DEFAULT_SEED,
    u_max_pairs: float = U_MAX_PAIRS,
    em_max_pairs: float = EM_MAX_PAIRS,
    step: Callable[[str], None] | None = None,
) -> TrainingReport:
    """Estimate u and m on ``linker`` in place.  The prior is set later by :func:`estimate_prior`."""
    report = TrainingReport(seed=seed, u_max_pairs=u_max_pairs, em_max_pairs=em_max_pairs)
    if step:
        step("estimating u by random sampling")
    linker.training.estimate_u_using_random_sampling(max_pairs=u_max_pairs, seed=seed)
    for rule in training_rules():
        sql = rule.get_blocking_rule(linker._sql_dialect_str).blocking_rule_sql
        if step:
            step(f"EM on {sql}")
        session = linker.training.estimate_parameters_using_expectation_maximisation(
            rule, max_pairs=em_max_pairs, estimate_without_term_frequencies=True
        )
        report.em_rules.append(sql)
        report.em_iterations.append(len(getattr(session, "_core_model_settings_history", [])))
    report.m_floored = floor_m(linker)
    return report


def floor_m(linker: Linker) -> list[str]:
    """Apply :data:`UNOBSERVED_M` and :data:`M_FLOOR`; return the levels changed (labels only)."""
    from splink.internals.constants import LEVEL_NOT_OBSERVED_TEXT

    changed = []
    for comp in linker._settings_obj.core_model_settings.comparisons:
        for level in comp.comparison_levels:
            if level.is_null_level:
                continue
            raw = level._m_probability
            if raw == LEVEL_NOT_OBSERVED_TEXT or raw is None:
                level.m_probability = UNOBSERVED_M
            elif raw < M_FLOOR:
                level.m_probability = M_FLOOR
            else:
                continue
            changed.append(f"{comp.output_column_name}: {level.label_for_charts}")
    return changed


def log2_odds(p: float) -> float:
    return math.log2(p / (1.0 - p))


def estimate_prior(
    engine,
    predictions_table: str,
    *,
    n_records: int,
    scoring_prior: float,
    start: float | None = None,
    max_iterations: int = 200,
    tol: float = 1e-4,
) -> tuple[float, int, int]:
    """EM for the prior over all scored candidate pairs, m and u held fixed.

    ``predictions_table`` holds ``match_weight`` computed with prior
    ``scoring_prior``; the pair's evidence (sum of log2 Bayes factors) is
    ``match_weight - log2_odds(scoring_prior)``.  Within the candidate set the
    match share ``pi`` solves ``pi = mean(posterior(pi))``; the global prior is
    ``pi * candidates / (n (n - 1) / 2)``.  Returns (prior, candidates, iterations).
    """
    candidates = int(engine.scalar(f"SELECT count(*) FROM {predictions_table}"))
    all_pairs = n_records * (n_records - 1) / 2
    if candidates == 0 or all_pairs == 0:
        return scoring_prior, candidates, 0
    shift = log2_odds(scoring_prior)
    pi = start if start is not None else min(0.5, max(1e-9, scoring_prior * all_pairs / candidates))
    it = 0
    for it in range(1, max_iterations + 1):
        lo = log2_odds(pi)
        # posterior with prior pi:  1 / (1 + 2^-(evidence + log2 odds(pi)))
        new = engine.scalar(
            f"SELECT avg(1.0 / (1.0 + pow(2.0, -least(greatest(match_weight - ({shift}) + ({lo}), -1000), 1000)))) "
            f"FROM {predictions_table}"
        )
        new = float(min(max(new, 1e-12), 1 - 1e-12))
        if abs(new - pi) <= tol * pi:
            pi = new
            break
        pi = new
    prior = pi * candidates / all_pairs
    log.info("prior estimated: candidates=%s iterations=%s", candidates, it)
    return float(min(prior, 0.5)), candidates, it
