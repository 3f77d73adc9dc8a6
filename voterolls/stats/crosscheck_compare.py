"""What the Crosscheck rule flags, beside what is estimated to be real.

The Interstate Crosscheck rule flags two registrations in different states
when first name, last name and full date of birth agree.  This module puts
its counts next to the birthday-problem expectation and the estimates, the
comparison Goel et al. (2020) made for 2012 (about 97% of same-name,
same-birthday vote pairs were two different people).

Two rules are reported:

* ``crosscheck`` - exactly the historical rule: both records carry a full
  DOB (``level = 'full'`` rows of the coincidence table);
* ``extended_year_rule`` - first + last + birth year for pairs where a state
  publishes the year only, which is what a compiler would be tempted to do
  with such states (far more coincidences).
"""

from __future__ import annotations

import pyarrow as pa

from voterolls.stats import estimators as es


def _share(num: float, den: float) -> float | None:
    return round(num / den, 4) if den > 0 else None


def compare(
    tab: pa.Table,
    *,
    vote_states: list[str],
    kappa: tuple[float, ...],
    double_votes: dict,
    duplicates_headline: dict,
) -> dict:
    """Side-by-side figures for the rule(s) and the estimates (counts only)."""
    out: dict = {}
    for name, level in (("crosscheck", "full"), ("extended_year_rule", "year")):
        allp = es.rule_net(tab, cross=True, kappa=kappa)[level]
        lo, hi = allp.interval()
        entry = {
            "definition": "first + last name + full date of birth, both records with a full DOB"
            if level == "full"
            else "first + last name + birth year, where at least one record has the birth year only",
            "flagged_pairs": int(allp.raw or 0),
            "expected_coincidences": round(allp.expected_coincidences or 0.0, 2),
            "estimated_same_person_pairs": {
                "estimate": round(allp.estimate, 2),
                "ci95": [round(lo, 2), round(hi, 2)],
            },
            "share_of_flags_coincidental": _share(
                allp.expected_coincidences or 0.0, allp.raw or 0.0
            ),
        }
        if len(vote_states) >= 2:
            v = es.rule_net(tab, cross=True, cls_pairs=("11",), states=vote_states, kappa=kappa)[
                level
            ]
            entry["flagged_pairs_both_recorded_voting"] = int(v.raw or 0)
            entry["expected_coincidences_both_recorded_voting"] = round(
                v.expected_coincidences or 0.0, 2
            )
            entry["share_of_vote_pairs_coincidental"] = _share(
                v.expected_coincidences or 0.0, v.raw or 0.0
            )
        out[name] = entry
    flagged = sum(out[k]["flagged_pairs"] for k in out)
    head = duplicates_headline.get("estimate")
    out["flagged_per_estimated_duplicate"] = round(flagged / head, 3) if head and head > 0 else None
    dv = double_votes.get("headline") if isinstance(double_votes, dict) else None
    if dv and dv.get("estimate") is not None:
        flagged_v = sum(
            out[k].get("flagged_pairs_both_recorded_voting", 0)
            for k in ("crosscheck", "extended_year_rule")
        )
        out["vote_pairs_flagged"] = flagged_v
        out["estimated_double_votes"] = {"estimate": dv["estimate"], "ci95": dv["ci95"]}
        est = max(dv["estimate"], 0.0)
        out["share_of_flagged_vote_pairs_not_double_votes"] = (
            round(1 - est / flagged_v, 4) if flagged_v else None
        )
        out["goel_et_al_2020_reference"] = (
            "2012, national voter file: about 97% of same-name same-DOB vote pairs were different people; "
            "about 1 in 4,000 voters double-voted before allowing for vote-record error"
        )
    return out
