"""Estimated duplicate registrations and double votes, with 95% intervals.

Every figure is a count *net of* the coincidences the birthday problem
predicts (see :mod:`voterolls.stats.coincidence`) and carries the raw count it
came from, the expected coincidences inside that count, and an interval.

Estimators (formulas and assumptions in docs/METHODS.md):

* **rule net of coincidences** ("Crosscheck-net"): ``D = (M - E0) / (1 - qbar)``
  where ``M`` pairs agree on first + last + DOB (year for year-only pairs),
  ``E0 = N qbar`` is what ``N`` name(+year) agreements would produce by
  chance.  Counts only duplicates whose name and DOB were recorded identically.
* **Splink sum**: ``sum p_i`` over scored cross-state pairs, which is the
  expected number of same-person pairs if the probabilities are calibrated.
* **combined** (headline): the rule-net count for the exact-agreement stratum
  plus ``sum p_i`` over scored pairs that do *not* agree exactly (nicknames,
  typos, a changed DOB digit) and reach the linkage threshold, plus their
  mass below the threshold times the rate the exact full-DOB stratum shows
  for that band (:func:`low_band_calibration`): the birthday model where
  Splink is weakest (exact agreement of common names) and Splink where the
  rule is blind.
* **double votes**: the same, restricted to pairs where both registrations
  carry a vote in the election, then corrected for vote-record error.

Intervals are analytic (normal approximation): coincidences are a sum of
many rare, nearly independent events, so their count is close to Poisson
(variance = mean), times the over-dispersion measured on the year-model
check for the year level; model uncertainty in ``q`` adds ``(rho E)^2``, with
``rho`` for the year level a two-way cluster-robust jackknife over surname and
first-name blocks (:func:`year_calibration`); the Splink
stratum adds the Poisson-binomial variance ``sum p (1 - p)`` and a
calibration term measured on the exact stratum, where the birthday model
gives an independent answer.  Analytic rather than bootstrap because the
quantity of interest is a realised count in a fixed population (resampling
records would add population-sampling variance that is not there), and
because it is instant at national scale; a block bootstrap of the Splink sum
is reported beside it as a check.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass

import duckdb
import numpy as np
import pyarrow as pa

from voterolls.schema import counted_ballot_sql, live_status_sql
from voterolls.sql import literal
from voterolls.stats import coincidence as co
from voterolls.stats import vote_error
from voterolls.stats.defaults import DEFAULT_ERROR_RATE
from voterolls.stats.status import status_summary

Z95 = 1.959963984540054


#: Relative uncertainty of the full-DOB day model (births tables vs. the
#: registered population's birthdays; missing weekday effects for uncovered years).
RHO_FULL = 0.05
#: Relative uncertainty of the Splink sum over pairs that do not agree exactly,
#: used when the one-name-plus-DOB check (``relaxed_check``) has no evidence.
K_NON_EXACT_DEFAULT = 0.25

#: Floor for the relative uncertainty of the year-level model after calibration.
RHO_YEAR_MIN = 0.05

SENSITIVITY_RATES = (0.0, 0.005, 0.01, 0.02)


@dataclass
class Count:
    """An estimated count with its 95% interval and what it rests on."""

    estimate: float
    variance: float
    raw: float | None = None
    expected_coincidences: float | None = None
    #: one-sided widening: mass that may or may not be real (low-confidence
    #: linkage) moves the upper (lower) bound but not the estimate
    upper_extra: float = 0.0
    lower_extra: float = 0.0

    @property
    def se(self) -> float:
        return math.sqrt(max(self.variance, 0.0))

    def signed_interval(self) -> tuple[float, float]:
        """The normal interval before clipping at zero (can reach below zero)."""
        lo = self.estimate - Z95 * self.se - self.lower_extra
        hi = self.estimate + Z95 * self.se + self.upper_extra
        return lo, hi

    def interval(self) -> tuple[float, float]:
        """The interval for display: a count cannot be negative, so both ends are clipped at 0."""
        lo, hi = self.signed_interval()
        return max(lo, 0.0), max(hi, 0.0)

    def as_dict(self, **extra: object) -> dict:
        """JSON form: ``estimate`` stays signed (unbiased), ``ci95`` is clipped at 0,
        ``ci95_signed`` is the unclipped interval; ``truncated_at_zero`` says whether a
        display of this count (which shows 0 for a negative value) hides a negative number."""
        lo, hi = self.interval()
        slo, shi = self.signed_interval()
        d = {
            "estimate": round(self.estimate, 2),
            "ci95": [round(lo, 2), round(hi, 2)],
            "ci95_signed": [round(slo, 2), round(shi, 2)],
            "truncated_at_zero": bool(self.estimate < 0 or slo < 0),
            "se": round(self.se, 3),
        }
        if self.raw is not None:
            d["raw_rule_count"] = round(self.raw, 2)
        if self.expected_coincidences is not None:
            d["expected_coincidences"] = round(self.expected_coincidences, 2)
        if self.upper_extra or self.lower_extra:
            d["low_confidence_linkage_mass"] = {
                "added_to_upper_bound": round(self.upper_extra, 2),
                "subtracted_from_lower_bound": round(self.lower_extra, 2),
            }
        d.update(extra)
        return d

    def __add__(self, other: Count) -> Count:
        def _s(a: float | None, b: float | None) -> float | None:
            return None if a is None and b is None else (a or 0.0) + (b or 0.0)

        return Count(
            self.estimate + other.estimate,
            self.variance + other.variance,
            _s(self.raw, other.raw),
            _s(self.expected_coincidences, other.expected_coincidences),
            self.upper_extra + other.upper_extra,
            self.lower_extra + other.lower_extra,
        )


# ---------------------------------------------------------------------------
# Preparing the inputs
# ---------------------------------------------------------------------------


def pick_election(con: duckdb.DuckDBPyConnection) -> str | None:
    """The most recent general election in the vote history (else the most recent one)."""
    try:
        rows = con.execute(
            """
            SELECT election_date FROM vote_history
            ORDER BY (election_type = 'general') DESC NULLS LAST, election_date DESC LIMIT 1
            """
        ).fetchall()
    except duckdb.Error:
        return None
    return str(rows[0][0]) if rows else None


def prepare(con: duckdb.DuckDBPyConnection, election: str | None) -> list[str]:
    """Create ``_vr_regs`` (registrations + ``voted`` flag); return the states with vote history."""
    if election is None:
        con.execute(
            "CREATE OR REPLACE TEMP VIEW _vr_votes AS SELECT NULL::VARCHAR AS state, NULL::VARCHAR AS state_voter_id WHERE false"
        )
    else:
        con.execute(
            f"""
            CREATE OR REPLACE TEMP TABLE _vr_votes AS
            SELECT DISTINCT state, state_voter_id FROM vote_history
            WHERE election_date = DATE {literal(election)} AND {counted_ballot_sql()}
            """
        )
    cols = {r[0] for r in con.execute("DESCRIBE SELECT * FROM registrations").fetchall()}
    has_status = "status" in cols
    status = "coalesce(r.status, 'unknown')" if has_status else "'unknown'"
    middle = "r.middle_name" if "middle_name" in cols else "NULL::VARCHAR"
    # every record (``_vr_all``) and the live registrations the estimates rest on (``_vr_regs``)
    con.execute(
        f"""
        CREATE OR REPLACE TEMP TABLE _vr_all AS
        SELECT r.state, r.state_voter_id, r.first_name, r.last_name, r.dob, r.birth_year,
               r.dob_granularity, r.registration_date, (v.state_voter_id IS NOT NULL) AS voted,
               {middle} AS middle_name, {status} AS status, {live_status_sql(status)} AS live
        FROM registrations r LEFT JOIN _vr_votes v USING (state, state_voter_id)
        """
    )
    con.execute(
        "CREATE OR REPLACE TEMP TABLE _vr_regs AS SELECT * EXCLUDE (status, live) FROM _vr_all WHERE live"
    )
    return [r[0] for r in con.execute("SELECT DISTINCT state FROM _vr_votes ORDER BY 1").fetchall()]


# ---------------------------------------------------------------------------
# Rule net of coincidences
# ---------------------------------------------------------------------------


def _rows(tab: pa.Table | list[dict]) -> list[dict]:
    return tab if isinstance(tab, list) else tab.to_pylist()


def year_calibration(
    tab: pa.Table, cross: bool = True, blocks: pa.Table | list[dict] | None = None
) -> tuple[float, float, float]:
    """Calibrate the year-level model on full x full pairs, where coincidences can be counted.

    On full-DOB pairs, pairs agreeing on name + birth year whose dates are far
    apart (see :data:`voterolls.stats.coincidence.FAR_DAYS`) are different
    people; the year model predicts their number (``level = 'year_check'``
    rows).  ``kappa = observed / predicted`` corrects the year model for what
    it does not know (surnames and state age structures carry age too).

    Returns ``(kappa, rel_se, overdispersion)``.  With ``blocks`` (the same
    check per surname block, :func:`voterolls.stats.coincidence.check_blocks`)
    the uncertainty is measured on the data: ``rel_se`` is the two-way
    cluster-robust jackknife of the ratio over surname blocks and first-name
    blocks (never below the Poisson ``1/sqrt(observed)``), and
    ``overdispersion`` = the Pearson chi-square of the block counts around
    ``kappa x prediction`` per degree of freedom (at least 1): how much more
    the count of coincidental name + year agreements varies than a Poisson
    count, because pairs that share a record or a common name are not
    independent.  It multiplies the Poisson variance of the year-level
    coincidences (:func:`rule_net`).  Without blocks: ``max(1/sqrt(observed),
    RHO_YEAR_MIN)`` and no overdispersion.  With too little evidence (predicted
    < 30), no correction, 25% uncertainty, no overdispersion.
    """
    scope = [r for r in _rows(tab) if (r["state_l"] != r["state_r"]) == cross]
    rows = [r for r in scope if r["level"] == "year_check"]
    full = [r for r in scope if r["level"] == "full"]
    n = sum(r["N"] for r in rows)
    e0_raw = sum(r["E0"] for r in rows)
    m = sum(r["M"] for r in rows)
    # E0 treated every name-agreeing pair as two people; the same-person pairs among
    # them (estimated by the full-DOB rule) can never be "far apart": take them out
    nf, mf, ef = (sum(r[k] for r in full) for k in ("N", "M", "E0"))
    d_full = max((mf - ef) / (1 - ef / nf), 0.0) if nf else 0.0
    e0 = e0_raw - d_full * e0_raw / n if n > 0 else e0_raw
    if e0 < 30:
        return 1.0, 0.25, 1.0
    kappa = m / e0
    rel_poisson = 1.0 / math.sqrt(max(m, 1.0))
    if blocks is None:
        return kappa, max(rel_poisson, RHO_YEAR_MIN), 1.0
    b = [r for r in _rows(blocks) if bool(r["cross_state"]) == cross and r["E0"] > 0]
    if len(b) < 10:
        return kappa, max(rel_poisson, RHO_YEAR_MIN), 1.0
    scale = e0 / e0_raw if e0_raw > 0 else 1.0  # the same-person correction, spread evenly
    mb = np.array([r["M"] for r in b], dtype=float)
    eb = np.array([r["E0"] for r in b], dtype=float) * scale
    lb = np.array([r["block"] for r in b])
    fb = np.array([r.get("fblock", 0) for r in b])
    # two-way cluster-robust variance (Cameron, Gelbach and Miller 2011): surname
    # clusters + first-name clusters - their intersection, each by the jackknife
    v_l, phi_l = _jackknife_ratio(mb, eb, lb)
    v_f, phi_f = _jackknife_ratio(mb, eb, fb)
    v_lf, _ = _jackknife_ratio(mb, eb, lb * (int(fb.max()) + 1) + fb)
    var_jk = v_l + v_f - v_lf
    if var_jk < max(v_l, v_f):  # the two-way form can fall below a one-way one
        var_jk = max(v_l, v_f)
    phi = max(phi_l, phi_f)
    rel_jk = math.sqrt(var_jk) / kappa if kappa > 0 else 0.25
    return kappa, max(rel_jk, rel_poisson), max(phi, 1.0)


def _jackknife_ratio(m: np.ndarray, e: np.ndarray, group: np.ndarray) -> tuple[float, float]:
    """Delete-one-group jackknife variance of ``sum m / sum e``, and the Pearson
    dispersion of the group counts around ``ratio x e`` (per degree of freedom)."""
    _, inv = np.unique(group, return_inverse=True)
    mg, eg = np.bincount(inv, weights=m), np.bincount(inv, weights=e)
    g = mg.size
    if g < 2 or eg.sum() <= 0:
        return 0.0, 1.0
    loo = (mg.sum() - mg) / (eg.sum() - eg)
    var = (g - 1) / g * float(np.sum((loo - loo.mean()) ** 2))
    k = mg.sum() / eg.sum()
    ok = eg > 0
    phi = float(np.sum((mg[ok] - k * eg[ok]) ** 2 / (k * eg[ok])) / (g - 1)) if k > 0 else 1.0
    return var, phi


def rule_net(
    tab: pa.Table | list[dict],
    *,
    cross: bool = True,
    cls_pairs: tuple[str, ...] | None = None,
    states: list[str] | None = None,
    kappa: tuple[float, ...] = (1.0, 0.25),
) -> dict[str, Count]:
    """Rule count net of coincidences, per level (``full``, ``year``).

    ``kappa = (ratio, rel_se[, overdispersion])`` from :func:`year_calibration`:
    the year-level expected coincidences are multiplied by ``ratio``, their
    model uncertainty is ``rel_se`` and their Poisson variance is multiplied by
    ``overdispersion`` (1 when not given).
    """
    out: dict[str, Count] = {}
    all_rows = _rows(tab)
    for level in ("full", "year"):
        rows = [
            r
            for r in all_rows
            if r["level"] == level
            and (r["state_l"] != r["state_r"]) == cross
            and (cls_pairs is None or r["cls_pair"] in cls_pairs)
            and (states is None or (r["state_l"] in states and r["state_r"] in states))
        ]
        n = sum(r["N"] for r in rows)
        m = sum(r["M"] for r in rows)
        e0 = sum(r["E0"] for r in rows)
        rho, phi = RHO_FULL, 1.0
        if level == "year":
            e0 *= kappa[0]
            rho = kappa[1]
            phi = kappa[2] if len(kappa) > 2 else 1.0
        qbar = e0 / n if n else 0.0
        d = (m - e0) / (1.0 - qbar) if n else 0.0
        coinc = e0 - d * qbar
        var = (phi * max(coinc, 0.0) + (rho * max(coinc, 0.0)) ** 2) / (1.0 - qbar) ** 2
        out[level] = Count(d, var, raw=m, expected_coincidences=coinc)
    return out


# ---------------------------------------------------------------------------
# Splink pairs
# ---------------------------------------------------------------------------


def load_pairs(con: duckdb.DuckDBPyConnection, pairs: pa.Table | str | None) -> bool:
    """Join the scored pairs to ``_vr_regs`` as ``_vr_pairs`` (level, exact, votes)."""
    if pairs is None:
        return False
    if isinstance(pairs, str):
        con.execute(
            f"CREATE OR REPLACE TEMP VIEW _vr_pairs_in AS SELECT * FROM read_parquet({literal(pairs)})"
        )
    else:
        con.register("_vr_pairs_in", pairs)
    con.execute(
        """
        CREATE OR REPLACE TEMP TABLE _vr_pairs AS
        SELECT p.state_l, p.state_r, p.match_probability::DOUBLE AS p,
               CASE WHEN a.dob_granularity = 'full' AND b.dob_granularity = 'full'
                         AND a.dob IS NOT NULL AND b.dob IS NOT NULL THEN 'full'
                    WHEN a.birth_year IS NOT NULL AND b.birth_year IS NOT NULL
                         AND a.dob_granularity IN ('full', 'year')
                         AND b.dob_granularity IN ('full', 'year') THEN 'year'
                    ELSE 'none' END AS level,
               coalesce(a.first_name = b.first_name AND a.last_name = b.last_name AND
                 CASE WHEN a.dob_granularity = 'full' AND b.dob_granularity = 'full'
                           AND a.dob IS NOT NULL AND b.dob IS NOT NULL THEN a.dob = b.dob
                      ELSE a.birth_year = b.birth_year END, false) AS exact,
               (a.voted::INT + b.voted::INT) AS votes,
               coalesce(a.dob_granularity = 'full' AND b.dob_granularity = 'full' AND a.dob = b.dob
                        AND a.last_name = b.last_name AND a.first_name <> b.first_name, false) AS last_dob_only,
               coalesce(a.dob_granularity = 'full' AND b.dob_granularity = 'full' AND a.dob = b.dob
                        AND a.first_name = b.first_name AND a.last_name <> b.last_name, false) AS first_dob_only,
               coalesce(a.last_name <> b.last_name, false) AS last_differs,
               hash(least(a.last_name, b.last_name)) % 200 AS block
        FROM _vr_pairs_in p
        JOIN _vr_regs a ON a.state = p.state_l AND a.state_voter_id = p.state_voter_id_l
        JOIN _vr_regs b ON b.state = p.state_r AND b.state_voter_id = p.state_voter_id_r
        """
    )
    return True


def splink_sums(
    con: duckdb.DuckDBPyConnection,
    *,
    cross: bool = True,
    exact: bool | None = None,
    states: list[str] | None = None,
    min_p: float | None = None,
    below: bool = False,
    level: str | None = None,
    last_differs: bool | None = None,
) -> dict[int, tuple[float, float]]:
    """``{votes: (sum p, sum p(1-p))}`` over scored pairs (votes = 0, 1, 2 registrations voted).

    ``min_p``: only pairs with ``p >= min_p`` (or ``p < min_p`` with ``below``);
    ``level``: only pairs of that DOB level (``full`` or ``year``); ``last_differs``:
    only pairs whose surnames differ (or agree).
    """
    conds = ["state_l <> state_r" if cross else "state_l = state_r", "level <> 'none'"]
    if level is not None:
        conds.append(f"level = {literal(level)}")
    if last_differs is not None:
        conds.append("last_differs" if last_differs else "NOT last_differs")
    if min_p is not None:
        conds.append(f"p < {min_p!r}" if below else f"p >= {min_p!r}")
    if exact is not None:
        conds.append("exact" if exact else "NOT exact")
    if states is not None:
        lst = ", ".join(literal(s) for s in states) or "''"
        conds.append(f"state_l IN ({lst}) AND state_r IN ({lst})")
    rows = con.execute(
        f"SELECT votes, sum(p), sum(p * (1 - p)) FROM _vr_pairs WHERE {' AND '.join(conds)} GROUP BY 1"
    ).fetchall()
    return {int(v): (float(s or 0), float(w or 0)) for v, s, w in rows}


def relaxed_check(con: duckdb.DuckDBPyConnection, tab: pa.Table, relaxed: dict) -> dict | None:
    """Check Splink where the exact rule is blind: pairs agreeing on one name + full DOB only.

    Birthday-model estimate of same-person cross-state pairs that agree on last
    name + DOB but not first name, plus those agreeing on first name + DOB but
    not last name (``D_relaxed``), against ``sum p`` of the scored pairs in the
    same strata (``P_relaxed``).  Unscored true pairs count in ``D`` but not in
    ``P``, so the ratio also sees what blocking missed.  Returns the ratio and
    its standard error, or None without evidence.
    """
    full = rule_net(tab, cross=True)["full"]
    d_total = 0.0
    var = 0.0
    for key in ("last_dob", "first_dob"):
        r = relaxed[key]
        if r["N"] <= 0:
            continue
        qbar = r["E0"] / r["N"]
        d = (r["M"] - r["E0"]) / (1 - qbar)
        d_total += d - full.estimate
        var += r["E0"] * (1 + RHO_FULL**2 * r["E0"]) + full.variance
    p = con.execute(
        """
        SELECT coalesce(sum(p), 0) FROM _vr_pairs
        WHERE state_l <> state_r AND (last_dob_only OR first_dob_only)
        """
    ).fetchall()[0][0]
    if p < 5 or d_total <= 0:
        return None
    ratio = d_total / p
    # binomial-type noise of the realised stratum count plus the coincidence noise
    se = math.sqrt(var + d_total) / p
    return {
        "birthday_model_estimate": d_total,
        "splink_sum": float(p),
        "ratio": ratio,
        "ratio_se": se,
    }


#: The middle initial's code point (A-Z), 0 = none.
_MIDDLE_INITIAL = (
    "CASE WHEN regexp_full_match(left(middle_name, 1), '[A-Z]') THEN ascii(left(middle_name, 1)) "
    "ELSE 0 END"
)


def middle_initial_year_level(
    con: duckdb.DuckDBPyConnection,
    model: co.DobModel,
    tab: pa.Table,
    kappas: dict[bool, tuple[float, ...]],
) -> dict[bool, dict] | None:
    """The year-level duplicates again, with the middle initial as a further rule field.

    Where a record has the birth year only, first + last + year agreements of
    different people are so common at a national file's density that the
    year level's interval swamps the estimate.  Two different people also
    agree on a middle initial only by chance (about 1 in 12), one person
    almost always.  So the birthday accounting of §1.4 is repeated on pairs
    whose records both carry a middle initial and agree on it (the initial is
    appended to the first name, so the first name's birth-year distribution
    is estimated per first name + initial, shrunk as usual; the calibration
    ``kappa`` is the one measured without initials): ``D_mi``.  Same-person pairs lacking
    an initial on a side, or recorded with different initials, are missing
    from ``D_mi``; their share is measured at the full-DOB level, where both
    counts are precise: ``pi = D_full_mi / D_full``, and the year level is
    ``D_mi / pi`` (assumes middle names are recorded alike in full-DOB and
    year-only states).  Returns ``{cross: {"year": Count, "pi", "pi_se"}}``,
    or None without a middle name column or full-DOB evidence.
    """
    if con.execute("SELECT count(middle_name) FROM _vr_regs").fetchall()[0][0] == 0:
        return None
    # the initial joins the first name: pairs agreeing on "first name" then agree on both
    # (cheaper than a record class, which would count every pair of classes)
    con.execute(
        f"""
        CREATE OR REPLACE TEMP VIEW _vr_regs_mi AS
        SELECT * REPLACE (first_name || '|' || left(middle_name, 1) AS first_name)
        FROM _vr_regs WHERE {_MIDDLE_INITIAL} > 0
        """
    )
    cells = co.build_cells(con, "_vr_regs_mi", cls_sql="voted", name="_vr_cells_mi")
    tab_mi = co.coincidence_table(con, model, cells)
    out: dict[bool, dict] = {}
    for cross, kappa in kappas.items():
        base = rule_net(tab, cross=cross, kappa=kappa)["full"]
        mi = rule_net(tab_mi, cross=cross, kappa=kappa)
        if base.estimate < 30 or mi["full"].estimate <= 0:
            continue
        pi = min(mi["full"].estimate / base.estimate, 1.0)
        rel_var_pi = (1 - pi) / (pi * base.estimate) + mi["full"].variance / mi[
            "full"
        ].estimate ** 2
        out[cross] = {
            "year": scale_by_share(mi["year"], pi, rel_var_pi),
            "pi": pi,
            "pi_se": pi * math.sqrt(rel_var_pi),
            "rel_var_pi": rel_var_pi,
            "table": tab_mi,
        }
    return out or None


def scale_by_share(c: Count, pi: float, rel_var_pi: float) -> Count:
    """``c / pi`` for a share ``pi`` measured elsewhere, with its relative variance."""
    est = c.estimate / pi
    return Count(
        est,
        c.variance / pi**2 + est**2 * rel_var_pi,
        raw=c.raw,
        expected_coincidences=c.expected_coincidences,
    )


def non_exact_uncertainty(relaxed: dict | None) -> float:
    """Relative uncertainty of the Splink sum over pairs that do not agree exactly.

    The one-name-plus-DOB check measures Splink's miscalibration there as
    ``d = 1 - ratio`` with standard error ``s``; on small or coincidence-heavy
    data ``s`` can be huge (12 on a three-state nation) and, used as it is,
    swamps the interval.  The check is therefore combined with a prior
    ``d ~ N(0, tau^2)``, ``tau`` = :data:`K_NON_EXACT_DEFAULT` (normal-normal
    shrinkage): weight ``w = tau^2 / (tau^2 + s^2)``, posterior mean ``w d``,
    posterior variance ``w s^2``; the relative uncertainty is the root mean
    square ``sqrt((w d)^2 + w s^2)``.  With no evidence it is ``tau``; with
    precise evidence ``|d|``; it never exceeds ``max(|d|, tau)`` by much.
    """
    tau2 = K_NON_EXACT_DEFAULT**2
    if relaxed is None:
        return K_NON_EXACT_DEFAULT
    d, s2 = 1.0 - relaxed["ratio"], relaxed["ratio_se"] ** 2
    w = tau2 / (tau2 + s2)
    return math.sqrt((w * d) ** 2 + w * s2)


#: Below this much linkage mass in the exact full-DOB stratum's low band, the low band's
#: calibration is not measured: ``LOW_BAND_FALLBACK`` with 100% relative uncertainty.
MIN_LOW_BAND_MASS = 10.0
LOW_BAND_FALLBACK = 0.5


@dataclass(frozen=True)
class LowBandCalibration:
    """How many true matches one unit of linkage probability below the threshold holds.

    Measured without truth on the exact full-DOB stratum (:func:`low_band_calibration`):
    ``factor = (D_full - S_hi) / S_lo``, with ``D_full`` the rule-net estimate of
    same-person pairs agreeing on first + last + full DOB (precise: few coincidences),
    ``S_hi`` / ``S_lo`` the linkage mass of those pairs at / below the threshold.
    ``dfactor_dfull`` = ``1 / S_lo``: the factor moves with ``D_full``, which is also
    part of the exact stratum of the combined estimate (their covariance counts).
    """

    factor: float
    variance: float
    dfactor_dfull: float
    measured: bool

    def count(self, mass: float, mass_var: float, k_transfer: float, full: Count) -> Count:
        """``factor * mass`` for linkage ``mass`` below the threshold outside the stratum.

        Variance: the factor's (measured) variance times ``mass^2``, a transfer term
        ``(k_transfer * factor * mass)^2`` (non-exact pairs need not be calibrated like
        exact ones), the Poisson-binomial ``mass_var``, and twice the covariance with
        ``full`` (the full-DOB rule-net count the factor was measured from).
        """
        est = self.factor * mass
        var = (
            self.variance * mass**2
            + (k_transfer * est) ** 2
            + self.factor * mass_var
            + 2 * mass * self.dfactor_dfull * full.variance
        )
        return Count(est, max(var, 0.0))


def low_band_calibration(
    con: duckdb.DuckDBPyConnection, full: Count, link_threshold: float, *, cross: bool = True
) -> LowBandCalibration:
    """Calibrate linkage's low-confidence band (``p < link_threshold``) on the exact stratum.

    EM-trained probabilities are least reliable in the middle range, and in which
    direction depends on the data (over-confident on this project's generator,
    under-confident on an independent one).  On cross-state pairs that agree on
    first + last + full DOB the birthday model says how many are one person
    (``full``, the rule-net count; every such pair not written by linkage counts with
    ``p = 0``); the confident band is taken at its word (calibrated on every generator
    measured), so the rest of the true pairs belong to the low band:
    ``factor = (D_full - S_hi) / S_lo``, clipped at 0 (``cross``: cross-state or in-state
    pairs, as ``full`` was counted).  Without enough low-band mass
    to measure it (``MIN_LOW_BAND_MASS``) the factor is ``LOW_BAND_FALLBACK`` with
    100% relative uncertainty.
    """
    hi = sum(
        v[0]
        for v in splink_sums(
            con, cross=cross, exact=True, level="full", min_p=link_threshold
        ).values()
    )
    lo = sum(
        v[0]
        for v in splink_sums(
            con, cross=cross, exact=True, level="full", min_p=link_threshold, below=True
        ).values()
    )
    if lo < MIN_LOW_BAND_MASS:
        return LowBandCalibration(LOW_BAND_FALLBACK, LOW_BAND_FALLBACK**2, 0.0, False)
    raw = (full.estimate - hi) / lo
    factor = max(raw, 0.0)
    slope = 1.0 / lo if raw > 0 else 0.0
    return LowBandCalibration(factor, full.variance / lo**2, slope, True)


def block_bootstrap_se(con: duckdb.DuckDBPyConnection, *, b: int = 400, seed: int = 0) -> float:
    """SE of the cross-state ``sum p`` from a bootstrap over 200 surname blocks."""
    rows = con.execute(
        "SELECT block, sum(p) FROM _vr_pairs WHERE state_l <> state_r AND level <> 'none' GROUP BY 1"
    ).fetchall()
    if len(rows) < 2:
        return 0.0
    sums = np.array([r[1] for r in rows], dtype=float)
    rng = np.random.default_rng(seed)
    w = rng.multinomial(len(sums), np.full(len(sums), 1.0 / len(sums)), size=b)
    return float((w @ sums).std(ddof=1))


# ---------------------------------------------------------------------------
# Vote-record error
# ---------------------------------------------------------------------------


def error_probabilities(rate: float, votes: float, registrations: float) -> tuple[float, float]:
    """Per-registration miss and false-mark probabilities from the vote-record error rate.

    ``rate`` is the share of vote records credited to a registration that did
    not cast the ballot (a poll-book line slip or a scanning error, as in
    Goel et al.'s Philadelphia audit).  Each such record removes the mark from
    the registration that voted (``miss = rate``) and puts it on one that did
    not: with ``V`` marked and ``R`` registrations the chance that a
    non-voting registration carries a false mark is ``rate V / (R - V)``.
    """
    if rate <= 0 or registrations <= votes:
        return 0.0, 0.0
    return rate, min(rate * votes / (registrations - votes), 0.5)


def correct_vote_error(o2: Count, o1: Count, o0: Count, miss: float, false_mark: float) -> Count:
    """True double votes from observed same-person pairs by vote status.

    A same-person pair whose two registrations truly voted (``T2``), one
    voted (``T1``) or neither (``T0``) is observed with both / one / neither
    marked according to ``a = 1 - miss`` (a real vote keeps its mark) and
    ``b = false_mark`` (a non-voting registration gets a mark), independently:

        O2 = a^2 T2 + a b T1 + b^2 T0
        O1 = 2a(1-a) T2 + (a(1-b) + (1-a) b) T1 + 2b(1-b) T0
        O0 = (1-a)^2 T2 + (1-a)(1-b) T1 + (1-b)^2 T0

    solved for ``T`` (``T2`` is returned); its variance propagates the
    variances of ``O`` through the inverse matrix and adds the binomial noise
    of the error process itself (how many false pairs happened this time).
    """
    a, b = 1.0 - miss, false_mark
    if miss <= 0 and b <= 0:
        return Count(
            o2.estimate,
            o2.variance,
            o2.raw,
            o2.expected_coincidences,
            o2.upper_extra,
            o2.lower_extra,
        )
    m = np.array(
        [
            [a * a, a * b, b * b],
            [2 * a * (1 - a), a * (1 - b) + (1 - a) * b, 2 * b * (1 - b)],
            [(1 - a) ** 2, (1 - a) * (1 - b), (1 - b) ** 2],
        ]
    )
    inv = np.linalg.inv(m)
    obs = np.array([o2.estimate, o1.estimate, o0.estimate])
    var = np.array([o2.variance, o1.variance, o0.variance])
    t = inv @ obs
    # the number of false "both voted" pairs is itself random (binomial in T1, T0):
    # its variance is part of the uncertainty of T2 even with O known exactly
    t1, t0 = max(float(t[1]), 0.0), max(float(t[2]), 0.0)
    noise = (
        t1 * a * b * (1 - a * b)
        + t0 * b * b * (1 - b * b)
        + max(float(t[0]), 0.0) * a * a * (1 - a * a)
    )
    # one-sided (low-confidence linkage) mass: O_j may be up to upper_j higher / lower_j lower
    up = np.array([o2.upper_extra, o1.upper_extra, o0.upper_extra])
    dn = np.array([o2.lower_extra, o1.lower_extra, o0.lower_extra])
    pos, neg = np.clip(inv[0], 0, None), np.clip(-inv[0], 0, None)
    return Count(
        float(t[0]),
        float((inv[0] ** 2) @ var) + noise,
        o2.raw,
        o2.expected_coincidences,
        upper_extra=float(pos @ up + neg @ dn),
        lower_extra=float(pos @ dn + neg @ up),
    )


# ---------------------------------------------------------------------------
# Putting it together
# ---------------------------------------------------------------------------


def _fmt(c: Count, **extra: object) -> dict:
    return c.as_dict(**extra)


def estimate_tables(
    con: duckdb.DuckDBPyConnection,
    *,
    pairs: pa.Table | str | None = None,
    error_rate: float | None = None,
    election: str | None = None,
    model: co.DobModel | None = None,
    link_threshold: float = 0.9,
) -> dict:
    """All estimates from a connection with ``registrations`` (and ``vote_history``) views.

    Returns a JSON-ready dict; see :func:`voterolls.stats.commands.estimate`
    for the workspace wrapper that adds coverage.
    """
    election = election or pick_election(con)
    vote_states = prepare(con, election)
    model = model or co.fit_dob_model(con, "_vr_regs")
    cells = co.build_cells(con, "_vr_regs", cls_sql="voted")
    tab = co.coincidence_table(con, model, cells)
    blocks = co.check_blocks(con)
    kap_x = year_calibration(tab, cross=True, blocks=blocks)
    kap_w = year_calibration(tab, cross=False, blocks=blocks)
    has_pairs = load_pairs(con, pairs)
    relaxed = relaxed_check(con, tab, co.relaxed_table(con, model, cells)) if has_pairs else None
    # relative uncertainty of the Splink sum where the exact rule is blind
    k_ne = non_exact_uncertainty(relaxed)
    err = error_rate_for(con, vote_states, election, error_rate)

    res: dict = {
        "election": election,
        "vote_history_states": vote_states,
        "dob_model": {
            "source": model.source,
            "jan1_excess": round(model.jan1_excess, 6),
            "first_of_month_excess": round(model.first_of_month_excess, 6),
            "placeholder_years": {str(k): round(v, 3) for k, v in model.placeholder_years.items()},
            "p_same_dob_two_random_people": model.p_same_dob(),
            "rho_full": RHO_FULL,
        },
        "year_model_calibration": {
            "cross_state": {
                "kappa": round(kap_x[0], 4),
                "rel_se": round(kap_x[1], 4),
                "overdispersion": round(kap_x[2], 4),
            },
            "in_state": {
                "kappa": round(kap_w[0], 4),
                "rel_se": round(kap_w[1], 4),
                "overdispersion": round(kap_w[2], 4),
            },
            "uncertainty": f"two-way cluster-robust jackknife over {co.NAME_BLOCKS} surname x "
            f"{co.NAME_BLOCKS} first-name hash blocks (at least Poisson); "
            "overdispersion = Pearson chi-square of the block counts per degree of freedom",
        },
        "error_rate": err.rate,
        "error_rate_source": err.source,
        "vote_record_error": err.as_dict(),
        "registration_status": status_summary(con),
    }

    # --- duplicate registrations ----------------------------------------------
    mi_year = middle_initial_year_level(con, model, tab, {True: kap_x, False: kap_w})
    dups: dict = {}
    low_cross: LowBandCalibration | None = None
    gap_cross = None
    from voterolls.stats import surname_gap as sg

    for scope, cross, kap in (("cross_state", True, kap_x), ("in_state", False, kap_w)):
        rn = rule_net(tab, cross=cross, kappa=kap)
        exact = rn["full"] + rn["year"]
        rule_key = "rule_net_of_coincidences"
        mi = (mi_year or {}).get(cross)
        mi_entry = None
        if mi is not None:
            alt = rn["full"] + mi["year"]
            mi_entry = _fmt(
                alt,
                method="first+last+DOB rule at the full-DOB level; where a side has the birth year "
                "only, first+last+year+middle initial net of coincidences, scaled by the share of "
                "same-person pairs with agreeing middle initials measured at the full-DOB level",
                by_level={"full": _fmt(rn["full"]), "year": _fmt(mi["year"])},
                middle_initial_share=round(mi["pi"], 4),
                middle_initial_share_se=round(mi["pi_se"], 4),
            )
            if alt.se < exact.se:  # the more precise of two estimates of the same pairs
                exact, rule_key = alt, "rule_net_middle_initial"
        entry = {
            "unit": "pairs of registrations held by the same person",
            "rule_net_of_coincidences": _fmt(
                rn["full"] + rn["year"],
                method="first+last+DOB rule (first+last+birth year where a side has the year only), "
                "minus expected coincidences; counts only identically recorded duplicates",
                by_level={k: _fmt(v) for k, v in rn.items()},
            ),
        }
        if mi_entry is not None:
            entry["rule_net_middle_initial"] = mi_entry
        if has_pairs:
            tot = splink_sums(con, cross=cross)
            sp = sum(v[0] for v in tot.values())
            spv = sum(v[1] for v in tot.values())
            ex = splink_sums(con, cross=cross, exact=True)
            sp_ex = sum(v[0] for v in ex.values())
            ne = splink_sums(con, cross=cross, exact=False)
            sp_ne = sum(v[0] for v in ne.values())
            hi = splink_sums(con, cross=cross, exact=False, min_p=link_threshold)
            sp_hi = sum(v[0] for v in hi.values())
            sp_hi_var = sum(v[1] for v in hi.values())
            lo = splink_sums(con, cross=cross, exact=False, min_p=link_threshold, below=True)
            sp_lo = sum(v[0] for v in lo.values())
            sp_lo_var = sum(v[1] for v in lo.values())
            lowcal = low_band_calibration(con, rn["full"], link_threshold, cross=cross)
            low = lowcal.count(sp_lo, sp_lo_var, k_ne, rn["full"])
            if cross:
                low_cross = lowcal
            # calibration check on the exact stratum: birthday model vs Splink
            ratio = exact.estimate / sp_ex if sp_ex > 0 else float("nan")
            kcal = abs(1 - ratio) if math.isfinite(ratio) else 0.25
            boot = block_bootstrap_se(con) if cross else 0.0
            splink_c = Count(sp, spv + (kcal * sp_ex) ** 2 + (k_ne * sp_ne) ** 2)
            # non-exact pairs: the confident ones (p >= threshold) are counted with their
            # probabilities; the low-confidence mass (EM-trained probabilities are least
            # reliable in the middle range) with the calibration its band shows on the
            # exact full-DOB stratum, where the birthday model gives the truth
            comb = exact + Count(sp_hi, sp_hi_var + (k_ne * sp_hi) ** 2) + low
            # year-level pairs with a changed surname: no blocking rule pairs them
            year_part = mi["year"] if rule_key == "rule_net_middle_initial" else rn["year"]
            gap = sg.measure(con, rn["full"], lowcal, link_threshold, k_ne, cross=cross)
            gap_scored = sg.year_scored(con, lowcal, link_threshold, cross=cross)
            gap_added = gap.count(year_part, gap_scored, k_ne)
            comb = comb + gap_added
            if cross:
                gap_cross = gap
            entry["splink_sum_of_probabilities"] = _fmt(
                splink_c,
                method="sum of match probabilities over scored pairs",
                block_bootstrap_se=round(boot, 3),
                calibration_ratio_exact_stratum=None
                if not math.isfinite(ratio)
                else round(ratio, 4),
            )
            entry["combined"] = _fmt(
                comb,
                method="rule net of coincidences (exact stratum) + sum of match probabilities over "
                "scored pairs that do not agree exactly and reach the linkage threshold + the "
                "probability mass below the threshold times its calibration measured on the "
                "exact full-DOB stratum + year-level pairs with a changed surname, which no "
                "blocking rule pairs, extrapolated from the full-DOB level",
                exact_stratum=_fmt(exact),
                splink_non_exact=round(sp_hi, 2),
                splink_non_exact_below_threshold=round(sp_lo, 2),
                low_band_calibration={
                    "factor": round(lowcal.factor, 4),
                    "se": round(math.sqrt(lowcal.variance), 4),
                    "measured_on_exact_full_dob_stratum": lowcal.measured,
                    "counted": round(low.estimate, 2),
                },
                surname_change_gap=sg.describe(gap, gap_added, gap_scored),
                link_threshold=link_threshold,
                non_exact_check=None
                if relaxed is None
                else {k: round(v, 4) for k, v in relaxed.items()},
                non_exact_relative_uncertainty=round(k_ne, 4),
            )
            entry["headline"] = "combined"
            if cross:
                from voterolls.stats.calibration import exact_stratum_calibration

                res["linkage_calibration"] = exact_stratum_calibration(
                    con, model, rn["full"].estimate
                )
        else:
            entry["headline"] = rule_key
            entry["note"] = (
                "no linkage output: duplicates recorded with a different name or DOB are not counted"
            )
        dups[scope] = entry
    res["duplicate_registrations"] = dups

    # --- double votes -----------------------------------------------------------
    if election and len(vote_states) >= 2:
        res["double_votes"] = _double_votes(
            con, tab, vote_states, err, kap_x, has_pairs, k_ne, link_threshold, low_cross,
            (mi_year or {}).get(True), gap_cross,
        )  # fmt: skip
        mi_x = (mi_year or {}).get(True)
        if mi_x is not None:
            res["double_votes"]["rule_net_middle_initial_error_corrected"] = _double_votes_mi(
                con, tab, vote_states, err, kap_x, mi_x
            )
    else:
        res["double_votes"] = {
            "estimate": None,
            "note": "needs vote history from at least two states for the same election",
            "vote_history_states": vote_states,
        }
    res["crosscheck_purge"] = _purge(con, tab, vote_states, kap_x, err.rate) if election else None
    from voterolls.stats.crosscheck_compare import compare

    cross = dups["cross_state"]
    res["crosscheck_vs_estimate"] = compare(
        tab,
        vote_states=vote_states,
        kappa=kap_x,
        double_votes=res["double_votes"],
        duplicates_headline=cross[cross["headline"]],
    )
    res["coincidence_table"] = [
        {k: (round(v, 4) if isinstance(v, float) else v) for k, v in r.items()}
        for r in tab.to_pylist()
    ]
    return res


def _vote_strata(
    con: duckdb.DuckDBPyConnection,
    tab: pa.Table,
    vs: list[str],
    kap: tuple[float, ...],
    has_pairs: bool,
    k_ne: float = K_NON_EXACT_DEFAULT,
    link_threshold: float = 0.9,
    lowcal: LowBandCalibration | None = None,
    mi: dict | None = None,
) -> tuple[dict[str, Count], dict[str, Count]]:
    """Observed same-person pairs by vote status (key '2', '1', '0'): exact stratum and combined.

    The combined stratum counts non-exact pairs as the duplicate estimate does: the
    confident ones with their probabilities, the low-confidence mass times ``lowcal``
    (the calibration measured on the exact full-DOB stratum over all vote classes; its
    covariance with one class's exact count is not carried).  With ``mi``
    (:func:`middle_initial_year_level`) the combined stratum's year level is the one
    with the middle initial (far fewer coincidences), in both strata returned.
    """
    lowcal = lowcal or LowBandCalibration(LOW_BAND_FALLBACK, LOW_BAND_FALLBACK**2, 0.0, False)
    exact: dict[str, Count] = {}
    comb: dict[str, Count] = {}
    sums = (
        splink_sums(con, cross=True, exact=False, states=vs, min_p=link_threshold)
        if has_pairs
        else {}
    )
    low = (
        splink_sums(con, cross=True, exact=False, states=vs, min_p=link_threshold, below=True)
        if has_pairs
        else {}
    )
    for key, cls in (("2", ("11",)), ("1", ("01",)), ("0", ("00",))):
        rn = rule_net(tab, cross=True, cls_pairs=cls, states=vs, kappa=kap)
        exact[key] = rn["full"] + rn["year"]
        base = exact[key]
        if mi is not None:
            y = rule_net(mi["table"], cross=True, cls_pairs=cls, states=vs, kappa=kap)["year"]
            base = rn["full"] + scale_by_share(y, mi["pi"], mi["rel_var_pi"])
            exact[key] = base
        s, w = sums.get(int(key), (0.0, 0.0))
        lo_mass, lo_var = low.get(int(key), (0.0, 0.0))
        comb[key] = (
            base
            + Count(s, w + (k_ne * s) ** 2)
            + lowcal.count(lo_mass, lo_var, k_ne, Count(0.0, 0.0))
        )
    return exact, comb


def voters_and_registrations(con: duckdb.DuckDBPyConnection, vs: list[str]) -> tuple[int, int]:
    """Live registrations recorded voting, and all live registrations, in states ``vs``."""
    lst = ", ".join(repr(s) for s in vs) or "''"
    v, r = con.execute(
        f"SELECT count(*) FILTER (WHERE voted), count(*) FROM _vr_regs WHERE state IN ({lst})"
    ).fetchall()[0]
    return int(v), int(r)


def error_rate_for(
    con: duckdb.DuckDBPyConnection, vs: list[str], election: str | None, override: float | None
) -> vote_error.ErrorRate:
    """The vote-record error to use: the override if given, else learnt, else the default."""
    if override is not None:
        return vote_error.ErrorRate(override, 0.0, "override")
    if not election or len(vs) < 2:
        return vote_error.ErrorRate(DEFAULT_ERROR_RATE, 0.0, "default")
    voters, regs = voters_and_registrations(con, vs)
    return vote_error.learn(con, vs, election, voters, regs, DEFAULT_ERROR_RATE)


def corrected_with(
    o2: Count, o1: Count, o0: Count, err: vote_error.ErrorRate, voters: int, regs: int
) -> Count:
    """:func:`correct_vote_error` at ``err.rate``, with the uncertainty of a learnt rate
    carried into the variance (delta method: slope of the estimate in the rate, times se)."""
    c = correct_vote_error(o2, o1, o0, *error_probabilities(err.rate, voters, regs))
    if err.se <= 0:
        return c
    lo_r, hi_r = max(err.rate - err.se, 0.0), min(err.rate + err.se, 0.49)
    lo = correct_vote_error(o2, o1, o0, *error_probabilities(lo_r, voters, regs)).estimate
    hi = correct_vote_error(o2, o1, o0, *error_probabilities(hi_r, voters, regs)).estimate
    slope = (hi - lo) / (hi_r - lo_r) if hi_r > lo_r else 0.0
    return dataclasses.replace(c, variance=c.variance + (slope * err.se) ** 2)


def noise_floor(
    o2: Count,
    o1: Count,
    false_mark: float,
    estimate: Count,
    coincidence_var: float | None = None,
    scale: float = 1.0,
) -> dict:
    """The smallest standard error any estimator that sees name + DOB and vote marks can have.

    Which name + DOB pairs of different people both voted, and which stale
    registrations of one-time voters got a false mark, is not in the data: only
    their expected numbers are.  So the realised counts' own variance is a floor,
    ``sd^2 = E_c + O1 b (1 - b)``: ``E_c`` expected coincidences among pairs both
    recorded voting (Poisson), ``O1`` same-person pairs with one vote, each falsely
    marked on the other side with probability ``b`` (docs/METHODS.md §4.3).
    ``reached``: the reported se is within 25% of the floor.  ``coincidence_var``
    replaces ``E_c`` where the count was scaled after the coincidences were netted out
    (the middle-initial year level is divided by the share ``pi``: ``E_c / pi^2``);
    ``scale``: the estimate is the exact stratum's times this ratio (the linkage-scaled
    headline), and so is its floor.
    """
    e_c = o2.expected_coincidences if coincidence_var is None else coincidence_var
    sd = scale * math.sqrt(
        max(e_c or 0.0, 0.0) + max(o1.estimate, 0.0) * false_mark * (1 - false_mark)
    )
    return {
        "sd": round(sd, 3),
        "relative_to_estimate": round(sd / estimate.estimate, 4) if estimate.estimate > 0 else None,
        "reported_se_over_floor": round(estimate.se / sd, 3) if sd > 0 else None,
        "reached": bool(sd > 0 and estimate.se <= 1.25 * sd),
    }


def _double_votes_mi(
    con: duckdb.DuckDBPyConnection,
    tab: pa.Table,
    vs: list[str],
    err: vote_error.ErrorRate,
    kap: tuple[float, ...],
    mi: dict,
) -> dict:
    """The error-corrected rule-net double votes with the middle initial at the year level.

    The full-DOB level as in :func:`_double_votes`; the year level from pairs that
    also agree on the middle initial, scaled by the share ``pi`` of same-person
    pairs with agreeing initials (:func:`middle_initial_year_level`), per vote class.
    Far fewer coincidences among pairs both recorded voting: a lower noise floor.
    """
    voters, regs = voters_and_registrations(con, vs)
    _, fmark = error_probabilities(err.rate, voters, regs)
    by_level, strata, e_c = {}, {}, {}
    for level in ("full", "year"):
        o = {}
        for k, cls in (("2", "11"), ("1", "01"), ("0", "00")):
            if level == "full":
                o[k] = rule_net(tab, cross=True, cls_pairs=(cls,), states=vs, kappa=kap)["full"]
            else:
                y = rule_net(mi["table"], cross=True, cls_pairs=(cls,), states=vs, kappa=kap)
                o[k] = scale_by_share(y["year"], mi["pi"], mi["rel_var_pi"])
        strata[level] = o
        # coincidences in estimate units: the year level was divided by pi after netting
        e_c[level] = (o["2"].expected_coincidences or 0.0) / (
            mi["pi"] ** 2 if level == "year" else 1.0
        )
        c = corrected_with(o["2"], o["1"], o["0"], err, voters, regs)
        by_level[level] = _fmt(c, noise_floor=noise_floor(o["2"], o["1"], fmark, c, e_c[level]))
    tot = {k: strata["full"][k] + strata["year"][k] for k in ("2", "1", "0")}
    c = corrected_with(tot["2"], tot["1"], tot["0"], err, voters, regs)
    return _fmt(
        c,
        method="rule net of coincidences with the middle initial at the year level, corrected "
        f"for vote-record error {err.rate:.3%} ({err.source})",
        noise_floor=noise_floor(tot["2"], tot["1"], fmark, c, e_c["full"] + e_c["year"]),
        by_level=by_level,
    )


def _double_votes(
    con: duckdb.DuckDBPyConnection,
    tab: pa.Table,
    vs: list[str],
    err: vote_error.ErrorRate,
    kap: tuple[float, ...],
    has_pairs: bool,
    k_ne: float = K_NON_EXACT_DEFAULT,
    link_threshold: float = 0.9,
    lowcal: LowBandCalibration | None = None,
    mi: dict | None = None,
    gap: object | None = None,
) -> dict:
    """Double votes: the error-corrected rule net, scaled up by linkage where it is given.

    The headline rests on the exact stratum (first + last + DOB, or + birth year and
    middle initial where that is more precise), corrected for vote-record error.  With
    linkage output it is multiplied by ``C / E``: same-person pairs in the vote-history
    states as the combined duplicate estimate counts them (``C``) per pair in the exact
    stratum (``E``).  The linkage probabilities are not split by vote marks: a pair of
    different people with similar names, both voting, and the false 'voted' marks on
    stale records counted at their linkage probability put 20-35 apparent double votes
    into every seed of a 50,000-person national-density nation (docs/METHODS.md §4.6),
    and nothing in the data says which of the non-exact pairs are the coincidences.
    Assumes a double voter's records are recorded identically as often as any
    duplicate's (a typo or a changed surname has nothing to do with voting twice).
    """
    exact, comb = _vote_strata(con, tab, vs, kap, has_pairs, k_ne, link_threshold, lowcal)
    e = err.rate
    voters, regs = voters_and_registrations(con, vs)
    miss, fmark = error_probabilities(e, voters, regs)
    head_x = exact
    main_x = corrected_with(exact["2"], exact["1"], exact["0"], err, voters, regs)
    year_level = "first + last + birth year"
    floor_coinc = None
    if mi is not None:
        # the more precise of two estimates of the same pairs, as for duplicates
        base_mi, comb_mi = _vote_strata(
            con, tab, vs, kap, has_pairs, k_ne, link_threshold, lowcal, mi
        )
        alt = corrected_with(base_mi["2"], base_mi["1"], base_mi["0"], err, voters, regs)
        if alt.se < main_x.se:
            head_x, main_x, comb = base_mi, alt, comb_mi
            year_level = "first + last + birth year + middle initial"
            full2 = rule_net(tab, cross=True, cls_pairs=("11",), states=vs, kappa=kap)["full"]
            year2 = rule_net(mi["table"], cross=True, cls_pairs=("11",), states=vs, kappa=kap)
            floor_coinc = (full2.expected_coincidences or 0.0) + (
                year2["year"].expected_coincidences or 0.0
            ) / mi["pi"] ** 2
    ratio, ratio_var, scale = 1.0, 0.0, None
    if has_pairs:
        use_mi = mi if year_level.endswith("middle initial") else None
        ratio, ratio_var, scale = _linkage_scale(
            con, tab, head_x, comb, vs, kap, use_mi, lowcal, link_threshold, k_ne, gap
        )
    main = _scaled(main_x, ratio, ratio_var)
    sens = []
    for rate in sorted({*SENSITIVITY_RATES, e}):
        c = correct_vote_error(
            head_x["2"], head_x["1"], head_x["0"], *error_probabilities(rate, voters, regs)
        )
        sens.append({"error_rate": rate, **_fmt(_scaled(c, ratio, 0.0))})
    no_err = exact["2"]
    exact_corr = corrected_with(exact["2"], exact["1"], exact["0"], err, voters, regs)
    by_level = {}
    floors = {}
    for level in ("full", "year"):
        o = {
            k: rule_net(tab, cross=True, cls_pairs=(cls,), states=vs, kappa=kap)[level]
            for k, cls in (("2", "11"), ("1", "01"), ("0", "00"))
        }
        c = corrected_with(o["2"], o["1"], o["0"], err, voters, regs)
        floors[level] = noise_floor(o["2"], o["1"], fmark, c)
        by_level[level] = _fmt(c, noise_floor=floors[level])
    method = "rule net of coincidences" + (
        ", times the ratio of all same-person pairs (combined duplicate estimate) to the exact "
        "stratum's in these states"
        if has_pairs
        else ""
    )
    return {
        "unit": "people recorded as voting in two states in the same election",
        "states": vs,
        "votes_recorded_in_these_states": int(voters),
        "registrations_in_these_states": int(regs),
        "error_model": {
            "miss_per_vote": miss,
            "false_mark_per_non_voting_registration": round(fmark, 6),
            **err.as_dict(),
        },
        "headline": _fmt(
            main,
            method=method + f", corrected for vote-record error {e:.3%} ({err.source})",
            per_voter=(main.estimate / voters) if voters else None,
            year_level_rule=year_level,
            exact_stratum=_fmt(main_x),
            linkage_scale=scale,
            noise_floor=noise_floor(head_x["2"], head_x["1"], fmark, main, floor_coinc, ratio),
        ),
        "rule_net_of_coincidences_no_error_correction": _fmt(no_err),
        "rule_net_of_coincidences_error_corrected": _fmt(
            exact_corr,
            noise_floor=noise_floor(exact["2"], exact["1"], fmark, exact_corr),
            by_level=by_level,
            by_level_note="full: both records with a full DOB (the historical Crosscheck rule); "
            "year: a record with the birth year only (far more coincidences)",
        ),
        "same_person_pairs_by_votes": {k: _fmt(v) for k, v in head_x.items()},
        "error_rate_sensitivity": sens,
        "caveat": "a pair both recorded as voting is not proof of a double vote: "
        "clerical vote-record errors produce the same pattern",
    }


def _scaled(c: Count, ratio: float, ratio_var: float) -> Count:
    """``ratio * c`` with ``ratio``'s variance (delta method, independent parts).

    The rule matches and expected coincidences stay the exact stratum's: they are the
    data the scaled figure rests on, and the report prints them beside it.
    """
    return Count(
        ratio * c.estimate,
        ratio**2 * c.variance + c.estimate**2 * ratio_var,
        c.raw,
        c.expected_coincidences,
        upper_extra=ratio * c.upper_extra,
        lower_extra=ratio * c.lower_extra,
    )


def _linkage_scale(
    con: duckdb.DuckDBPyConnection,
    tab: pa.Table,
    exact: dict[str, Count],
    comb: dict[str, Count],
    vs: list[str],
    kap: tuple[float, ...],
    mi: dict | None,
    lowcal: LowBandCalibration | None,
    link_threshold: float,
    k_ne: float,
    gap: object | None,
) -> tuple[float, float, dict | None]:
    """``C / E`` in the vote-history states (see :func:`_double_votes`), with its variance.

    ``E``: the exact stratum's same-person pairs over the three vote classes; ``C``:
    the same plus the non-exact linkage mass counted as for duplicates and the
    changed-surname gap (:mod:`voterolls.stats.surname_gap`) of the year level.
    ``Var(C/E) = Var(N) / E^2 + N^2 Var(E) / E^4`` with ``N = C - E`` (independent
    parts).  ``mi``: the exact stratum's year level is the middle-initial one.
    Returns ``(ratio, its variance, the JSON description)``; ratio 1 (and None)
    where ``E`` has no pairs.
    """
    from voterolls.stats import surname_gap as sg

    e = sum((exact[k] for k in ("2", "1", "0")), Count(0.0, 0.0))
    if e.estimate <= 0:
        return 1.0, 0.0, None
    n_est = sum(comb[k].estimate - exact[k].estimate for k in ("2", "1", "0"))
    n_var = sum(max(comb[k].variance - exact[k].variance, 0.0) for k in ("2", "1", "0"))
    added = Count(0.0, 0.0)
    if gap is not None and lowcal is not None:
        if mi is not None:
            y = rule_net(mi["table"], cross=True, states=vs, kappa=kap)["year"]
            year = scale_by_share(y, mi["pi"], mi["rel_var_pi"])
        else:
            year = rule_net(tab, cross=True, states=vs, kappa=kap)["year"]
        added = gap.count(year, sg.year_scored(con, lowcal, link_threshold, states=vs), k_ne)
    n_est += added.estimate
    n_var += added.variance
    ratio = (e.estimate + n_est) / e.estimate
    var = n_var / e.estimate**2 + n_est**2 * e.variance / e.estimate**4
    return (
        ratio,
        var,
        {
            "ratio": round(ratio, 4),
            "ratio_se": round(math.sqrt(var), 4),
            "exact_stratum_pairs": round(e.estimate, 2),
            "non_exact_pairs": round(n_est, 2),
            "surname_change_gap": round(added.estimate, 2),
        },
    )


def _purge(
    con: duckdb.DuckDBPyConnection, tab: pa.Table, vs: list[str], kap: tuple[float, ...], e: float
) -> dict | None:
    """What removing the earlier-registered record of every Crosscheck match would do.

    The strategy Goel et al. (2020, Iowa Crosscheck data) evaluated: for each
    cross-state first + last + full DOB match, remove the registration with the
    earlier registration date.  Legitimate votes blocked = removed
    registrations that were used to vote, minus the double votes among them;
    double votes prevented = the rule-net, error-corrected estimate of
    same-person pairs both used to vote (each such pair loses one vote).
    """
    if len(vs) < 2:
        return None
    lst = ", ".join(repr(s) for s in vs)
    con.execute(
        f"""
        CREATE OR REPLACE TEMP TABLE _vr_rule_pairs AS
        SELECT a.state_voter_id AS ida, a.state AS sa, b.state_voter_id AS idb, b.state AS sb,
               a.voted AS va, b.voted AS vb,
               CASE WHEN coalesce(a.registration_date, DATE '1900-01-01')
                         <= coalesce(b.registration_date, DATE '1900-01-01') THEN 'a' ELSE 'b' END AS older
        FROM _vr_regs a JOIN _vr_regs b
          ON a.first_name = b.first_name AND a.last_name = b.last_name AND a.dob = b.dob
        WHERE a.state < b.state AND a.state IN ({lst}) AND b.state IN ({lst})
          AND a.dob_granularity = 'full' AND b.dob_granularity = 'full'
        """
    )
    removed, removed_voted, both_voted = con.execute(
        """
        WITH r AS (
            SELECT CASE WHEN older = 'a' THEN sa ELSE sb END AS s,
                   CASE WHEN older = 'a' THEN ida ELSE idb END AS id,
                   CASE WHEN older = 'a' THEN va ELSE vb END AS v
            FROM _vr_rule_pairs)
        SELECT (SELECT count(*) FROM (SELECT DISTINCT s, id FROM r)),
               (SELECT count(*) FROM (SELECT DISTINCT s, id FROM r WHERE v)),
               (SELECT count(*) FROM _vr_rule_pairs WHERE va AND vb)
        """
    ).fetchall()[0]
    strata = {
        k: es_rule_full(tab, cls, vs, kap) for k, cls in (("2", "11"), ("1", "01"), ("0", "00"))
    }
    voters, regs = con.execute(
        f"SELECT count(*) FILTER (WHERE voted), count(*) FROM _vr_regs WHERE state IN ({lst})"
    ).fetchall()[0]
    miss, fmark = error_probabilities(e, voters, regs)
    p = correct_vote_error(strata["2"], strata["1"], strata["0"], miss, fmark)
    lo, hi = p.interval()
    # removed registrations that really cast a ballot: the recorded marks include false
    # marks (expected fmark per removed registration) and miss real votes (miss per vote):
    # marked = (1 - miss) X + fmark (removed - X)  ->  X = (marked - fmark removed) / (1 - miss - fmark)
    denom = max(1.0 - miss - fmark, 1e-9)
    cast = (removed_voted - fmark * removed) / denom
    cast_var = (removed * fmark * (1 - fmark) + max(cast, 0.0) * miss * (1 - miss)) / denom**2
    legit_c = Count(cast - max(p.estimate, 0.0), cast_var + p.variance)
    legit = max(legit_c.estimate, 0.0)
    legit_lo, legit_hi = legit_c.interval()

    def ratio(x: float, blocked: float = legit) -> float | None:
        return None if x <= 0 else round(max(blocked, 0.0) / x, 1)

    return {
        "rule": "remove the earlier-registered record of each cross-state first + last + full DOB match "
        "(the Crosscheck purge strategy evaluated by Goel et al. 2020)",
        "states": vs,
        "registrations_removed": int(removed),
        "removed_registrations_used_to_vote": int(removed_voted),
        "rule_pairs_both_voted": int(both_voted),
        "double_votes_prevented_estimate": p.as_dict(),
        "removed_registrations_really_voting_estimate": round(cast, 2),
        "legitimate_votes_blocked_estimate": round(legit, 2),
        "legitimate_votes_blocked_signed": round(legit_c.estimate, 2),
        "legitimate_votes_blocked_ci95": [round(legit_lo, 2), round(legit_hi, 2)],
        "legitimate_votes_blocked_basis": "removed registrations recorded voting, net of expected "
        f"vote-record errors ({fmark:.3%} false marks per non-voting registration, {miss:.2%} of real "
        "votes unrecorded), minus the double votes prevented",
        "legitimate_votes_blocked_per_double_vote_prevented": ratio(p.estimate),
        "ratio_range_from_ci": [ratio(hi, legit_lo), ratio(lo, legit_hi)],
        "double_votes_prevented_basis": f"rule-net estimate of same-person pairs both used to vote, corrected "
        f"for vote-record error {e:.2%}; a ratio of null means no double vote is estimated to be prevented",
    }


def es_rule_full(tab: pa.Table, cls: str, vs: list[str], kap: tuple[float, ...]) -> Count:
    """Rule-net count at the full-DOB level for one vote-status class."""
    return rule_net(tab, cross=True, cls_pairs=(cls,), states=vs, kappa=kap)["full"]
