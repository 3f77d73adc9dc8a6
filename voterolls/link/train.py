"""Training without labels: u by random sampling, m by EM, the prior by EM on the blocked pairs.

* **u** (how often strangers agree at each level) from a seeded random sample
  of record pairs: almost every random pair is two different people.
* **m** (how often the same person agrees) by expectation maximisation on
  two blocking rules, each leaving the other's columns free to estimate:
  (full DOB, first initial) estimates the name, middle, suffix, gender,
  address and SSN comparisons; (canonical first, last name) estimates DOB,
  including the year-only level for mixed granularity.  EM sessions sample
  deterministically (``max_pairs``), so a common-name block cannot dominate.
* **m of the name and DOB comparisons** then again, with the expected
  strangers counted out of a block rather than fitted by EM
  (:func:`apply_stranger_m`, :mod:`voterolls.link.stranger_m`): at national
  density EM's blocks fill with strangers and EM takes some for matches
  with a changed surname or date;
* **the prior** (probability that two random registrations are the same
  person) by :func:`estimate_prior`: the fixed point of the mixing
  proportion (:func:`prior_fixed_point`, m and u fixed) over the scored
  pairs where both sides publish a full DOB, carried over to all pairs by
  the share of full-DOB registrations.  Also run when a saved model is
  reused: the prior belongs to the data, not to the model.  It assumes the
  blocking rules contain (nearly) all true full-DOB pairs, which the synthetic
  evaluation checks (``voterolls evaluate`` reports the share scored).

Everything is seeded (:data:`voterolls.link.settings.DEFAULT_SEED`), so the
same input gives the same model JSON.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field

from splink import Linker

from voterolls.errors import UserError
from voterolls.link.blocking import training_rules
from voterolls.link.fields import FieldProfile
from voterolls.link.settings import DEFAULT_SEED, EM_MAX_PAIRS, U_MAX_PAIRS
from voterolls.link.splink_adapter import (
    comparison_gamma_sql,
    level_m,
    level_u,
    model_comparisons,
    model_snapshot,
    restore_model,
    sql_dialect,
)
from voterolls.log import get_logger

log = get_logger(__name__)

#: m for a disagreement (``else``) level EM never observed among matches
#: (instead of Splink's 1e-6, which would make e.g. JR vs SR in a small
#: sample a veto): "1 in 1,000 true matches land here".
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
    prior: dict | None = None
    m_floored: list[str] = field(default_factory=list)
    m_derived: list[str] = field(default_factory=list)
    em_skipped: list[str] = field(default_factory=list)
    fields: dict | None = None
    #: EM rules whose session failed (an m that underflowed to 0 in Splink's maximisation
    #: step) and were skipped: the comparisons keep the m of the other sessions
    em_failed: list[str] = field(default_factory=list)
    #: per target comparison: the block, its pairs, expected strangers and the m
    #: that replaced EM's (:mod:`voterolls.link.stranger_m`)
    m_stranger_corrected: list[dict] = field(default_factory=list)

    def as_dict(self) -> dict:
        return dict(self.__dict__)


def train(
    linker: Linker,
    *,
    seed: int = DEFAULT_SEED,
    u_max_pairs: float = U_MAX_PAIRS,
    em_max_pairs: float = EM_MAX_PAIRS,
    step: Callable[[str], None] | None = None,
    profile: FieldProfile | None = None,
    engine=None,
    input_table: str = "link_input",
) -> TrainingReport:
    """Estimate u and m on ``linker`` in place.  The prior is set later by :func:`estimate_prior`.

    ``profile``: the fields the input carries; the EM sessions are chosen from
    it (:func:`voterolls.link.blocking.training_rule_columns`).  A session
    whose blocking rule yields no pair is skipped and reported; when none
    yields any, linkage cannot be trained and a :class:`UserError` says so.

    ``engine`` (the link engine holding ``input_table``): when given, the m of
    the name and DOB comparisons is then re-estimated with the expected
    strangers counted out (:func:`apply_stranger_m`), which EM cannot do at
    national density.
    """
    from splink.internals.exceptions import EMTrainingException

    report = TrainingReport(seed=seed, u_max_pairs=u_max_pairs, em_max_pairs=em_max_pairs)
    report.fields = profile.as_dict() if profile is not None else None
    if step:
        step("estimating u by random sampling")
    linker.training.estimate_u_using_random_sampling(max_pairs=u_max_pairs, seed=seed)
    for rule in training_rules(profile):
        sql = rule.get_blocking_rule(sql_dialect(linker)).blocking_rule_sql
        if step:
            step(f"EM on {sql}")
        saved = model_snapshot(linker)
        try:
            session = linker.training.estimate_parameters_using_expectation_maximisation(
                rule, max_pairs=em_max_pairs, estimate_without_term_frequencies=True
            )
        except EMTrainingException:
            # No pair agrees on this rule's fields in this data: nothing to learn from it.
            report.em_skipped.append(sql)
            log.info("EM session skipped (no pairs): %s", sql)
            continue
        except ValueError as exc:
            # Splink refuses an m that underflows to 0 (a level seen only among pairs EM is
            # certain are non-matches, as in a small nation at national namesake density).
            # The session edits the model in place, so the model from before it is put back:
            # skipping it leaves the model as the other sessions leave it; the floor below
            # bounds every m.
            if "below the minimum allowed value" not in str(exc):
                raise
            restore_model(linker, saved)
            log.warning("EM on %s skipped: an m probability underflowed to 0", sql)
            report.em_failed.append(sql)
            continue
        report.em_rules.append(sql)
        report.em_iterations.append(len(getattr(session, "_core_model_settings_history", [])))
    if not report.em_rules:
        raise UserError(
            "linkage cannot be trained: no two registrations agree on the fields any training "
            "session blocks on (" + "; ".join(report.em_skipped or ["no session applies"]) + ")"
        )
    if engine is not None and profile is not None:
        report.m_stranger_corrected = apply_stranger_m(linker, engine, input_table, profile)
    report.m_derived = derive_dependent_m(linker) + derive_joint_name_m(linker)
    report.m_floored = floor_m(linker)
    return report


def apply_stranger_m(linker: Linker, engine, input_table: str, profile: FieldProfile) -> list[dict]:
    """Replace EM's m of the name and DOB comparisons by the stranger-corrected m where it holds.

    See :mod:`voterolls.link.stranger_m`.  Comparisons of the joint full-name
    model keep EM's m (their levels mean something else).  Returns what was
    estimated, applied or not, for the training report.
    """
    from voterolls.link.comparisons import FULL_NAME_LABEL, FULL_NAME_NEUTRAL_LABEL
    from voterolls.link.stranger_m import TARGETS, estimate

    wanted = {t.comparison for t in TARGETS}
    comps = {}
    levels = {}
    for comp in model_comparisons(linker):
        name = comp.output_column_name
        lv = [x for x in comp.comparison_levels if not x.is_null_level]
        if name not in wanted or lv[0].label_for_charts in (FULL_NAME_LABEL, FULL_NAME_NEUTRAL_LABEL):
            continue
        case, columns = comparison_gamma_sql(comp)
        comps[name] = (case, columns, [level_u(x) for x in lv])
        levels[name] = lv
    present = {c for t in TARGETS for c in (*t.block, *t.strata, *t.needs) if profile.trains_on(c)}
    results = estimate(engine, input_table, comps, present)
    for r in results:
        if r.applied:
            for level, m in zip(levels[r.comparison], r.m, strict=True):
                level.m_probability = min(max(m, M_FLOOR), 1.0 - M_FLOOR)
    return [r.as_dict() for r in results]


def _levels(linker: Linker, name: str) -> list:
    for comp in model_comparisons(linker):
        if comp.output_column_name == name:
            return [lv for lv in comp.comparison_levels if not lv.is_null_level]
    raise KeyError(name)


def derive_dependent_m(linker: Linker) -> list[str]:
    """m of ``birth_year`` (always) and ``dob_token`` (when EM had no token pairs) from ``dob``.

    A year-only state's birth year is the year of a date recorded with the
    same errors as anyone's, so P(years agree | match) is the share of true
    matches whose full dates agree on the year: exact, transposed day/month
    and same year-month.  A sealed token is an exact full date, so when no
    token pairs were seen in training its m is the exact-date m.
    """
    dob = _levels(linker, "dob")  # exact, transposed, same y-m, same m-d, else
    ms = [level_m(lv) for lv in dob]
    if ms[0] is None:  # no full-date pairs at all: leave the EM / fallback values
        return []
    same_year = min(1.0 - M_FLOOR, sum(v for v in ms[:3] if v is not None))
    changed = []
    year = _levels(linker, "birth_year")
    year[0].m_probability, year[1].m_probability = same_year, 1.0 - same_year
    changed.append("birth_year")
    token = _levels(linker, "dob_token")
    if level_m(token[0]) is None:
        exact = min(max(ms[0], M_FLOOR), 1.0 - M_FLOOR)
        token[0].m_probability, token[1].m_probability = exact, 1.0 - exact
        changed.append("dob_token")
    return changed


def derive_joint_name_m(linker: Linker) -> list[str]:
    """m of the joint full-name levels (a no-op for a model without them).

    EM sees only part of each: the (DOB, last name) session has every pair
    agreeing on the surname, so "first exact, surname differs" is never seen
    there; the (DOB, canonical first) session splits exact surnames between
    "full name exact" and "surname exact, first differs".  Assuming first and
    last names are recorded independently *for one person* (not across
    people - that is the correlation the joint level exists for):

    * first_name "exact (surname differs)" gets m of "full name exact", which
      the (DOB, last) session estimated as P(first exact | match);
    * last_name "exact (first differs)" gets P(last exact | match), the sum of
      the two exact-surname levels' m;
    * last_name "full name exact" gets m = P(last exact | match) * u, i.e. a
      Bayes factor of P(last exact | match): the rarity of the full name is
      counted once, under first_name, with its own term frequency.
    """
    from voterolls.link.comparisons import FULL_NAME_LABEL, FULL_NAME_NEUTRAL_LABEL

    try:
        first, last = _levels(linker, "first_name"), _levels(linker, "last_name")
    except KeyError:
        return []
    if first[0].label_for_charts != FULL_NAME_LABEL or last[0].label_for_charts != FULL_NAME_NEUTRAL_LABEL:
        return []
    changed = []
    m_full = level_m(first[0])
    if m_full is not None:
        first[1].m_probability = min(max(m_full, M_FLOOR), 1.0 - M_FLOOR)
        changed.append("first_name: exact (surname differs)")
    m_both, m_last_only = level_m(last[0]), level_m(last[1])
    p_last = sum(v for v in (m_both, m_last_only) if v is not None)
    if p_last > 0:
        p_last = min(max(p_last, M_FLOOR), 1.0 - M_FLOOR)
        last[1].m_probability = p_last
        u = level_u(last[0])
        if u is None:  # only the ratio matters here
            u = 1e-6
            last[0].u_probability = u
        last[0].m_probability = p_last * float(u)
        changed += ["last_name: exact (first name differs)", "last_name: full name exact"]
    return changed


def full_name_tf_sql(input_table: str) -> str:
    """Term frequency of each full name, with the pair itself discounted.

    Plain frequency on a near-unique key is dominated by the duplicates being
    sought (a duplicated person's full name occurs at least twice), which made
    the joint level under-confident (docs/LINKAGE.md).  Here
    tf = max(tf_first * tf_last, (count - 2) / N): a name seen only in the
    pair falls back to the product of the separate frequencies, a common full
    name (more strangers share it than the product predicts) gets its excess.
    """
    return f"""
    WITH t AS (SELECT first_name, last_name, full_name FROM {input_table} WHERE full_name IS NOT NULL),
         n AS (SELECT CAST(count(*) AS DOUBLE) AS n FROM t),
         f AS (SELECT first_name, count(*) AS c FROM t GROUP BY first_name),
         l AS (SELECT last_name, count(*) AS c FROM t GROUP BY last_name),
         fl AS (SELECT full_name, min(first_name) AS fn, min(last_name) AS ln, count(*) AS c
                FROM t GROUP BY full_name)
    SELECT fl.full_name,
           greatest((f.c / n.n) * (l.c / n.n), (fl.c - 2) / n.n) AS tf_full_name
    FROM fl JOIN f ON f.first_name = fl.fn JOIN l ON l.last_name = fl.ln CROSS JOIN n
    """


def register_full_name_tf(linker: Linker, engine, input_table: str = "link_input") -> None:
    """Give Splink the discounted full-name frequencies (:func:`full_name_tf_sql`)."""
    sdf = engine.register_sql(full_name_tf_sql(input_table), "vr_tf_full_name")
    linker.table_management.register_term_frequency_lookup(sdf, "full_name")


def floor_m(linker: Linker) -> list[str]:
    """Replace unobserved / vanishing m values; return the levels changed (labels only).

    * an agreement level EM never observed among matches becomes neutral
      (m = u): no data, no evidence either way;
    * an unobserved ``else`` level (a disagreement) gets :data:`UNOBSERVED_M`,
      so it counts against a match without being a veto;
    * any m below :data:`M_FLOOR` is raised to it.
    """
    from voterolls.link.comparisons import FULL_NAME_NEUTRAL_LABEL

    changed = []
    for comp in model_comparisons(linker):
        levels = [lv for lv in comp.comparison_levels if not lv.is_null_level]
        for i, level in enumerate(levels):
            if level.label_for_charts == FULL_NAME_NEUTRAL_LABEL:
                continue  # m is set relative to u (derive_joint_name_m); not a probability to floor
            m = level_m(level)
            is_else = i == len(levels) - 1
            if m is None:
                u = level_u(level)
                level.m_probability = UNOBSERVED_M if is_else or u is None else max(u, M_FLOOR)
            elif m < M_FLOOR:
                level.m_probability = M_FLOOR
            else:
                continue
            changed.append(f"{comp.output_column_name}: {level.label_for_charts}")
    return changed


def log2_odds(p: float) -> float:
    return math.log2(p / (1.0 - p))


@dataclass
class PriorEstimate:
    prior: float
    method: str
    lambda_full: float | None = None
    in_state_share: float | None = None
    full_share: float | None = None
    iterations: int = 0


#: Evidence (weight minus the scoring prior's log-odds) is rounded to this many
#: decimals (bits) before the prior is solved, so the solve runs on a
#: histogram; 1e-6 bits moves no posterior by more than 7e-7 (relative).
PRIOR_WEIGHT_DECIMALS = 6


def prior_fixed_point(
    engine,
    table: str,
    where: str,
    pairs_total: float,
    shift: float,
    start: float | None = None,
    max_iterations: int = 5000,
    tol: float = 1e-12,
) -> tuple[float, int]:
    """Solve ``lam = sum(posterior(lam)) / pairs_total`` over the scored pairs matching ``where``.

    ``table`` holds Splink's ``match_weight`` scored with a prior whose log2
    odds are ``shift``; a pair's evidence is ``match_weight - shift`` and its
    posterior at prior ``lam`` is ``1 / (1 + 2^-(evidence + log2_odds(lam)))``.
    ``pairs_total`` is the number of record pairs the scored ones are drawn
    from (compared or not).  Returns ``(lam, iterations)``.

    One query pulls a histogram of the (rounded) weights; the fixed point is
    then iterated in numpy to ``tol`` (relative), so the answer does not
    depend on ``start`` - a saved model applied to the same data gets the same
    prior it was trained with - and costs one scan whatever the number of
    iterations.  Public: the external-list matcher (``voterolls.lists``) uses
    it for the (registration, external record) base rate.
    """
    import numpy as np

    w, k = engine.columns(
        f"SELECT round(match_weight - ({shift!r}), {PRIOR_WEIGHT_DECIMALS}) AS w, count(*) AS k "
        f"FROM {table} WHERE {where} GROUP BY 1"
    )
    evidence = np.clip(np.asarray(w, dtype=np.float64), -1000.0, 1000.0)
    counts = np.asarray(k, dtype=np.float64)
    lam = float(start) if start is not None else 1e-6
    lam = min(max(lam, 1e-15), 0.5)
    iterations = 0
    for it in range(1, max_iterations + 1):
        iterations = it
        lo = log2_odds(lam)
        total = float(np.dot(counts, 1.0 / (1.0 + np.exp2(-np.clip(evidence + lo, -1000, 1000)))))
        new = float(min(max(total / pairs_total, 1e-15), 0.5))
        done = abs(new - lam) <= tol * lam
        lam = new
        if done:
            break
    return lam, iterations


def estimate_prior(
    engine,
    predictions_table: str,
    *,
    n_records: int,
    n_full: int,
    scoring_prior: float,
    min_expected_matches: float = 10.0,
) -> PriorEstimate:
    """The prior (probability two random registrations are the same person), label-free.

    Splink scored ``predictions_table`` with prior ``scoring_prior``; a pair's
    evidence is ``match_weight - log2_odds(scoring_prior)``.

    The estimate uses only pairs where **both sides publish a full DOB**: there
    the model is sharp (a full date is ~25,000:1 evidence), so the expected
    number of matches, sum of posteriors, is trustworthy.  Solving
    ``lam_full = sum(posterior(lam_full)) / C(n_full, 2)`` gives P(match | both
    full).  Taking the fixed point over *all* candidate pairs instead is not
    robust: name-only pairs carry over-confident evidence (first and last
    names are correlated through ethnicity, which naive Bayes ignores), and the
    fixed point then runs away (40x too high at 1M registrations, measured).

    To go from "both full" to all pairs: P(M) = P(M | both full) P(both full) /
    P(both full | M), with P(both full) = C(n_full, 2) / C(n, 2) and, assuming a
    registration's DOB granularity is independent of being duplicated,
    P(both full | M) = (1 - s) f^2 + s f, f = n_full / n, s = share of
    duplicate pairs within one state (a within-state pair shares its state's
    granularity).  s is recovered from the in-state share among both-full
    matches, s_full = s f / ((1 - s) f^2 + s f).  Falls back to the all-pairs
    fixed point when fewer than ``min_expected_matches`` full pairs match.
    """
    shift = log2_odds(scoring_prior)
    all_pairs = n_records * (n_records - 1) / 2
    full_pairs = n_full * (n_full - 1) / 2
    if n_full >= 2:
        lam_full, it = prior_fixed_point(
            engine, predictions_table, "gamma_dob >= 0", full_pairs, shift, scoring_prior
        )
        lo = log2_odds(lam_full)
        post = f"1.0 / (1.0 + pow(2.0, -least(greatest(match_weight - ({shift!r}) + ({lo!r}), -1000.0), 1000.0)))"
        total, in_state = engine.row(
            f"SELECT coalesce(sum({post}), 0), "
            f"coalesce(sum(CASE WHEN state_l = state_r THEN {post} ELSE 0 END), 0) "
            f"FROM {predictions_table} WHERE gamma_dob >= 0"
        )
        total, in_state = float(total), float(in_state)
        if total >= min_expected_matches:
            f = n_full / n_records
            s_full = in_state / total
            s = s_full * f / (1.0 - s_full + s_full * f) if f < 1 else s_full
            p_full_given_m = (1.0 - s) * f * f + s * f
            prior = lam_full * (full_pairs / all_pairs) / p_full_given_m
            log.info("prior from full-DOB pairs: iterations=%s", it)
            return PriorEstimate(
                prior=float(min(prior, 0.5)),
                method="full-DOB pairs",
                lambda_full=lam_full,
                in_state_share=round(s, 4),
                full_share=round(f, 4),
                iterations=it,
            )
    lam, it = prior_fixed_point(engine, predictions_table, "true", all_pairs, shift, scoring_prior)
    return PriorEstimate(prior=lam, method="all candidate pairs", iterations=it)
