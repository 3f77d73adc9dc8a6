"""What a figure covers, and a national figure only with an explicit model.

A count from the states that sent data is a count *for those states*.  It
becomes a national figure only through an extrapolation model, and this
module makes that model explicit:

* **cross-state pairs** (duplicate registrations, double votes): a pair is
  seen only when *both* of its states are covered.  Under the working model
  that the number of same-person pairs between states A and B is
  proportional to ``R_A * R_B`` (registrants), the covered share of the
  national pair mass is ``pm(covered) / pm(all)`` with
  ``pm(S) = ((sum_S R)^2 - sum_S R^2) / 2``.  The national figure is the
  covered figure divided by that share (a ratio estimator).
* **in-state figures**: proportional to ``R``: divided by the covered
  registrant share.

Between-state heterogeneity widens the interval: the per-state-pair rates
``D_AB / (R_A R_B)`` observed in covered pairs are treated as a sample of the
rates of uncovered pairs, so the uncovered part adds variance
``sum_uncovered m_p^2 V_r + U^2 V_r / n_pairs`` (``m_p`` pair mass, ``U`` total
uncovered mass, ``V_r`` the between-pair variance of the rates).  With fewer
than :data:`MIN_PAIRS` covered state pairs there is no national figure; the
number is labelled "covered states only".
"""

from __future__ import annotations

import math
from typing import Any

from voterolls.log import get_logger
from voterolls.schema import JURISDICTIONS

log = get_logger(__name__)

MIN_PAIRS = 3
Z95 = 1.959963984540054


def registrant_weights() -> tuple[dict[str, int], str]:
    """State -> registrants (from the request tracker's table), and what it measures."""
    try:
        from voterolls.requests import registrant_weights as rw

        return rw()
    except Exception as exc:  # noqa: BLE001 - missing table: no national scaling
        log.warning("no registrant weights available (%s)", type(exc).__name__)
        return {}, "unavailable"


def share_of(states: list[str], weights: dict[str, int]) -> float | None:
    """Registrant share of ``states`` (None without weights)."""
    total = sum(weights.values())
    return sum(weights.get(s, 0) for s in states) / total if total else None


def field_coverage(con) -> dict[str, Any]:
    """Per state: rows ingested, and which matching fields are present (counts only)."""
    rows = con.execute(
        """
        SELECT state, count(*) AS n,
               count(*) FILTER (WHERE first_name IS NOT NULL AND last_name IS NOT NULL) AS names,
               count(*) FILTER (WHERE dob_granularity = 'full' AND dob IS NOT NULL) AS dob_full,
               count(*) FILTER (WHERE birth_year IS NOT NULL) AS birth_year
        FROM registrations GROUP BY state ORDER BY state
        """
    ).fetchall()
    out = {}
    for s, n, names, full, year in rows:
        out[s] = {
            "registrations": int(n),
            "share_with_name": names / n if n else 0.0,
            "share_with_full_dob": full / n if n else 0.0,
            "share_with_birth_year": year / n if n else 0.0,
        }
    return out


def summarise(con, vote_states: list[str], tracker: Any = None) -> dict[str, Any]:
    """Coverage behind the estimates: states and fields in, states and fields missing."""
    weights, note = registrant_weights()
    fc = field_coverage(con)
    covered = sorted(fc)
    total = sum(weights.values())
    cov_r = sum(weights.get(s, 0) for s in covered)

    def share(states: list[str], pred=lambda s: True) -> float | None:
        if not total:
            return None
        return sum(weights.get(s, 0) for s in states if pred(s)) / total

    full_states = [s for s in covered if fc[s]["share_with_full_dob"] >= 0.5]
    year_states = [
        s for s in covered if s not in full_states and fc[s]["share_with_birth_year"] >= 0.5
    ]
    tracker_info = None
    try:
        from voterolls import requests as rq

        cov = rq.coverage(con, tracker=tracker)
        tracker_info = {
            "request": cov["request"].get("request_id"),
            "status_counts": cov["national"]["status_counts"],
            "registrants_share_responding": cov["national"]["registrants_share_responding"],
            "delivered_field_share": cov["national"]["delivered_field_share"],
            "fields_never_delivered": [
                f
                for f in cov["requested_fields"]
                if not any(
                    (st["delivered_detail"] or {}).get(f) in ("yes", "year only", "sealed")
                    for st in cov["states"]
                )
            ],
        }
    except Exception as exc:  # noqa: BLE001 - the tracker is optional for the statistics
        log.warning("request tracker unavailable for coverage (%s)", type(exc).__name__)
    return {
        "registrants_measure": note,
        "states_covered": covered,
        "states_missing": [s for s in JURISDICTIONS if s not in covered],
        "registrant_share_covered": share(covered),
        "registrants_covered": cov_r,
        "registrants_national": total,
        "states_with_full_dob": full_states,
        "states_with_birth_year_only": year_states,
        "states_without_dob": [s for s in covered if s not in full_states and s not in year_states],
        "registrant_share_full_dob": share(full_states),
        "vote_history_states": vote_states,
        "vote_history_states_missing": [s for s in covered if s not in vote_states],
        "registrant_share_vote_history": share(vote_states),
        "per_state": fc,
        "tracker": tracker_info,
    }


def _heterogeneity(rates: list[float], mass: list[float]) -> float:
    """Mass-weighted between-unit variance of the rates (unbiased for the number of units)."""
    rbar = sum(r * m for r, m in zip(rates, mass, strict=True)) / sum(mass)
    n = len(rates)
    return (
        sum(m * (r - rbar) ** 2 for r, m in zip(rates, mass, strict=True))
        / sum(mass)
        * n
        / max(n - 1, 1)
    )


def _national(
    estimate: float,
    variance: float,
    share: float,
    m_unc: list[float],
    vr: float,
    n_units: int,
    **info: Any,
) -> dict[str, Any]:
    """Ratio estimate ``estimate / share`` with the heterogeneity-widened interval.

    The uncovered part adds ``sum m^2 V_r + U^2 V_r / n`` (``m`` uncovered unit
    masses, ``U`` their sum, ``V_r`` the between-unit variance of the rates).
    ``national`` stays signed; ``ci95`` is clipped at 0, ``ci95_signed`` is not.
    """
    U = sum(m_unc)
    national = estimate / share
    var = variance / share**2 + sum(m * m for m in m_unc) * vr + U * U * vr / n_units
    half = Z95 * math.sqrt(var)
    return {
        "national": round(national, 2),
        "ci95": [round(max(national - half, 0.0), 2), round(max(national + half, 0.0), 2)],
        "ci95_signed": [round(national - half, 2), round(national + half, 2)],
        "truncated_at_zero": bool(national - half < 0),
        "label": "national, extrapolated",
        **info,
    }


def _extrapolate(
    estimate: float,
    variance: float,
    per_unit: dict,
    covered: list[str],
    weights: dict[str, int],
    *,
    cross: bool,
) -> dict[str, Any]:
    """The ratio estimator over units: state pairs (``cross``, mass ``R_A R_B``) or states (mass ``R``)."""
    if not weights:
        return {"national": None, "label": "covered states only", "reason": "no registrant weights"}
    everyone = [s for s in JURISDICTIONS if s in weights]
    missing = [s for s in everyone if s not in covered]
    share_key = "pair_mass_share_covered" if cross else "registrant_share_covered"
    if not missing:
        out = _national(estimate, variance, 1.0, [], 0.0, 1, **{share_key: 1.0})
        out["label"] = "all states covered"
        return out
    cov = set(covered)
    if cross:
        all_units: list = [(a, b) for i, a in enumerate(everyone) for b in everyone[i + 1 :]]
        units = [(a, b) for (a, b) in per_unit if a != b and a in weights and b in weights]

        def mass(u: tuple[str, str]) -> float:
            return float(weights[u[0]]) * weights[u[1]]

        def is_cov(u: tuple[str, str]) -> bool:
            return u[0] in cov and u[1] in cov

        what = "covered state pairs: no basis for an extrapolation model"
        model = (
            "ratio estimator: covered count / covered share of state-pair mass R_A*R_B; "
            "interval widened by between-state-pair heterogeneity of rates"
        )
    else:
        all_units = everyone
        units = [s for s in per_unit if s in weights]

        def mass(u: str) -> float:  # type: ignore[misc]
            return float(weights[u])

        def is_cov(u: str) -> bool:  # type: ignore[misc]
            return u in cov

        what = "covered states"
        model = (
            "ratio estimator: covered count / covered registrant share; interval widened by "
            "between-state heterogeneity"
        )
    total = sum(mass(u) for u in all_units)
    cov_mass = sum(mass(u) for u in all_units if is_cov(u))
    if len(units) < MIN_PAIRS or cov_mass <= 0:
        out = {
            "national": None,
            "label": "covered states only",
            "reason": f"fewer than {MIN_PAIRS} {what}",
        }
        if cross:
            out[share_key] = cov_mass / total if total else None
        return out
    share = cov_mass / total
    vr = _heterogeneity([per_unit[u] / mass(u) for u in units], [mass(u) for u in units])
    return _national(
        estimate,
        variance,
        share,
        [mass(u) for u in all_units if not is_cov(u)],
        vr,
        len(units),
        model=model,
        states_missing=missing,
        **{share_key: round(share, 6)},
    )


def extrapolate_cross(
    estimate: float,
    variance: float,
    per_pair: dict[tuple[str, str], float],
    covered: list[str],
    weights: dict[str, int],
) -> dict[str, Any]:
    """National figure for a cross-state count, or the reason there is none."""
    return _extrapolate(estimate, variance, per_pair, covered, weights, cross=True)


def extrapolate_in_state(
    estimate: float,
    variance: float,
    per_state: dict[str, float],
    covered: list[str],
    weights: dict[str, int],
) -> dict[str, Any]:
    """National figure for an in-state count (proportional to registrants)."""
    return _extrapolate(estimate, variance, per_state, covered, weights, cross=False)
