"""Validate the estimators against the truth of many synthetic nations.

For each seed: ``voterolls.synth.generate_nation(people, seed)`` -> per state
the date cleaning, disclosure policy (``voterolls.policy.enforce``) and
normalisation (``voterolls.normalize``) that ingest applies, on the national
tables directly (``bench.synthetic_registrations.load_nation_registrations``) (the native-file round trip is skipped to keep the
run to minutes; readers are validated elsewhere) -> ``estimate_tables``.
Linkage probabilities are used when ``--linkage`` is given and the linkage
stage offers a table-level entry point; otherwise the rule-based estimators
are validated alone (and the report says so).

Truth targets, among ingested registrations (protected voters excluded):

* ``dup_exact``: cross-state same-person pairs that agree on the rule
  (first + last + DOB, or + birth year where a side has the year only): what
  the rule-net estimator estimates;
* ``dup_visible``: all cross-state same-person pairs where both records carry
  at least a birth year (what the combined estimator estimates);
* ``dv_exact`` / ``dv_visible``: the same for double votes, among states whose
  vote history is public; ``dv_exact_full``: the part of ``dv_exact`` where
  both records carry a full DOB (the historical Crosscheck rule).

Per seed, after the estimate is made (the truth never reaches the estimator):

* ``decompose_double_votes``: the double-vote error split into coincidence,
  vote-record-error and unobserved-truth parts, and the noise floor;
* ``national_check``: drop ``--national-drop`` states, extrapolate, compare
  with the whole nation's truth;
* ``purge_check``: the Crosscheck-purge figures against the truth.

Usage::

    .venv/bin/python bench/validate_estimates.py --seeds 20 --people 100000
    .venv/bin/python bench/validate_estimates.py --seeds 20 --people 100000 --double-vote-rate 0.004
    .venv/bin/python bench/validate_estimates.py --seeds 20 --people 400000 --double-vote-rate 0.002 \
        --national-drop 0

Writes bench/results/validate_estimates.json (one entry per configuration)
and, with ``--write-methods``, the table into docs/METHODS.md between the
``<!-- validation:begin -->`` / ``<!-- validation:end -->`` markers.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
import time
from pathlib import Path

import duckdb
import numpy as np
import pyarrow as pa

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from voterolls.policy import get_policy  # noqa: E402
from voterolls.policy.enforce import enforce_vote_history  # noqa: E402
from voterolls.stats import estimators as es  # noqa: E402
from voterolls.synth import SynthConfig, generate_nation  # noqa: E402

RESULTS = ROOT / "bench" / "results" / "validate_estimates.json"
MECHANISM_RESULTS = ROOT / "bench" / "results" / "validate_mechanisms.json"

#: Every alternative process keeps cancelled and denied records in the files and has
#: registrations made after the election, as real lists do (so the vote-record error
#: can be learnt from records that cannot have voted).
KEPT_RECORDS = {"cancelled_kept_rate": 0.2, "denied_kept_rate": 0.3, "late_registration_rate": 0.02}

#: Alternative data-generating processes: SynthConfig options (docs/SYNTH.md) and what they mean.
MECHANISMS: dict[str, tuple[dict, str]] = {
    "wrong_registration": (
        {},
        "1% of ballots credited to a wrong registration (real voter loses the mark)",
    ),
    "false_mark": (
        {"vote_error_mechanism": "false_mark", "vote_record_error_rate": 0.02},
        "2% false 'voted' marks on non-voters' records (real voters keep theirs)",
    ),
    "turnout": (
        {
            "turnout_age_weights": {24: 0.5, 34: 0.7, 44: 0.9, 64: 1.1, 200: 1.3},
            "mover_turnout_ratio": 0.6,
        },
        "turnout rising steeply with age; movers vote 0.6 times as often",
    ),
    "movers": (
        {
            "stale_cross_state_rate": 0.05,
            "marriage_surname_change_rate": 0.3,
            "in_state_duplicate_rate": 0.01,
        },
        "5% cross-state movers, 30% of women's stale records under another surname, 1% in-state duplicates",
    ),
}
METHODS = ROOT / "docs" / "METHODS.md"


def ingest_like(con: duckdb.DuckDBPyConnection, nation) -> None:
    """Create ``registrations`` / ``vote_history`` tables as ingest would store them.

    Registrations: ``bench.synthetic_registrations.load_nation_registrations`` (the
    linkage owner's helper: ``clean_dates`` -> ``policy.enforce`` ->
    ``normalize_registrations``, the steps and order of ingest).  Vote history:
    ``policy.enforce_vote_history`` per state (withheld where not public,
    protected voters' rows removed).
    """
    from bench.synthetic_registrations import load_nation_registrations

    load_nation_registrations(con, nation, target="registrations")
    con.register("_nat_regs", nation.registrations.select(["state", "state_voter_id", "protected"]))
    con.register("_nat_vh", nation.vote_history)
    vhs = []
    for state in nation.states():
        pol = get_policy(state)
        prot = con.sql(
            f"SELECT state_voter_id FROM _nat_regs WHERE state = '{state}' AND protected"
        )
        vrel = con.sql(f"SELECT * FROM _nat_vh WHERE state = '{state}'")
        vlaw, _ = enforce_vote_history(vrel, pol, count=False, protected_ids=prot)
        vhs.append(vlaw.to_arrow_table())
    con.register("_v", pa.concat_tables(vhs, promote_options="permissive"))
    con.execute("CREATE OR REPLACE TABLE vote_history AS SELECT * FROM _v")


def truth_counts(con: duckdb.DuckDBPyConnection, nation, vote_states: list[str]) -> dict[str, int]:
    if isinstance(nation, dict):  # toy population: tables given directly
        con.register("_t_dup", nation["duplicate_pairs"])
        con.register("_t_dv", nation["double_votes"])
    else:
        con.register("_t_dup", nation.truth["duplicate_pairs"])
        con.register("_t_dv", nation.truth["double_votes"])
    lst = ", ".join(f"'{s}'" for s in vote_states) or "''"
    # duplicates are pairs of live registrations (a cancelled / denied record is not one)
    live = "live" if "live" in con.sql("SELECT * FROM _t_dup").columns else "true"
    rule = """(a.first_name = b.first_name AND a.last_name = b.last_name AND a.birth_year = b.birth_year
               AND (a.dob = b.dob OR a.dob_granularity <> 'full' OR b.dob_granularity <> 'full'))"""
    visible = "(a.birth_year IS NOT NULL AND b.birth_year IS NOT NULL)"
    q = f"""
        SELECT count(*) FILTER (WHERE {visible}),
               count(*) FILTER (WHERE {visible} AND coalesce({rule}, false)),
               count(*) FILTER (WHERE {visible} AND coalesce({rule}, false)
                                AND a.dob_granularity = 'full' AND b.dob_granularity = 'full')
        FROM {{t}} t
        JOIN registrations a ON a.state = t.state_l AND a.state_voter_id = t.state_voter_id_l
        JOIN registrations b ON b.state = t.state_r AND b.state_voter_id = t.state_voter_id_r
        WHERE t.state_l <> t.state_r {{extra}}
    """
    dv, dx, _ = con.execute(
        q.format(t="_t_dv", extra=f"AND t.state_l IN ({lst}) AND t.state_r IN ({lst})")
    ).fetchall()[0]
    dup_v, dup_x, dup_xf = con.execute(
        q.format(t=f"(SELECT * FROM _t_dup WHERE kind = 'cross_state' AND {live})", extra="")
    ).fetchall()[0]
    return {
        "dup_visible": dup_v,
        "dup_exact": dup_x,
        "dup_exact_full": dup_xf,
        "dup_exact_year": dup_x - dup_xf,
        "dv_visible": dv,
        "dv_exact": dx,
    }


TOY_STATES = {"NC": "year", "OH": "full", "FL": "full", "NY": "full", "GA": "year", "TX": "full"}


def decompose_double_votes(
    con: duckdb.DuckDBPyConnection, nation, res: dict, error_rate: float
) -> dict:
    """Where the error of the rule-net, error-corrected double-vote estimate comes from.

    Uses the truth (who each registration is, who really cast a vote) *after*
    the estimate is made, only to split ``estimate - truth`` into additive parts:

    * ``coincidence``: realised different-person pairs both recorded voting
      (``C2``) minus the coincidences the estimator subtracted;
    * ``vote_record_error``: realised same-person pairs both *recorded* voting
      without both having cast a ballot (``F2``, false marks) minus what the
      error correction subtracted (``S_hat``);
    * ``truth_not_observed``: true double votes the rule can see whose pair is
      not recorded as both voting (a vote record missed), ``D2 - truth``.

    ``estimate - truth = coincidence + vote_record_error + truth_not_observed``
    exactly.  ``floor_sd``: the standard deviation any estimator that sees only
    the rule counts and the vote marks must have, ``sqrt(E_c + sum b(1-b))``
    over the same-person pairs with exactly one real vote (which of their
    false marks happened, and which name + DOB pairs of different people both
    voted, is not in the data: only their expectation is).
    """
    vs = res["vote_history_states"]
    lst = ", ".join(f"'{s}'" for s in vs) or "''"
    con.register(
        "_t_rec", nation.truth["records"].select(["state", "state_voter_id", "person_id", "voted"])
    )
    rows = con.execute(
        f"""
        WITH r AS (
            SELECT v.state, v.first_name AS f, v.last_name AS l, v.birth_year AS y,
                   CASE WHEN v.dob_granularity = 'full' AND v.dob IS NOT NULL THEN v.dob END AS d,
                   v.voted AS marked, t.voted AS cast_, t.person_id
            FROM _vr_regs v JOIN _t_rec t USING (state, state_voter_id)
            WHERE v.state IN ({lst}) AND v.first_name IS NOT NULL AND v.last_name IS NOT NULL
              AND v.birth_year IS NOT NULL AND v.dob_granularity IN ('full', 'year'))
        SELECT CASE WHEN a.d IS NOT NULL AND b.d IS NOT NULL THEN 'full' ELSE 'year' END AS level,
               count(*) FILTER (WHERE a.marked AND b.marked AND a.person_id <> b.person_id) AS c2,
               count(*) FILTER (WHERE a.marked AND b.marked AND a.person_id = b.person_id
                                AND a.cast_ AND b.cast_) AS d2,
               count(*) FILTER (WHERE a.marked AND b.marked AND a.person_id = b.person_id
                                AND NOT (a.cast_ AND b.cast_)) AS f2,
               count(*) FILTER (WHERE a.person_id = b.person_id AND a.cast_ AND b.cast_) AS t2,
               count(*) FILTER (WHERE a.person_id = b.person_id AND a.cast_ <> b.cast_) AS t1,
               count(*) FILTER (WHERE a.person_id = b.person_id AND NOT a.cast_ AND NOT b.cast_) AS t0
        FROM r a JOIN r b ON a.f = b.f AND a.l = b.l AND a.y = b.y AND a.state < b.state
        WHERE a.d IS NULL OR b.d IS NULL OR a.d = b.d
        GROUP BY 1
        """
    ).fetchall()
    lv = {
        r[0]: dict(zip(("c2", "d2", "f2", "t2", "t1", "t0"), map(int, r[1:]), strict=True))
        for r in rows
    }
    for k in ("full", "year"):
        lv.setdefault(k, dict.fromkeys(("c2", "d2", "f2", "t2", "t1", "t0"), 0))
    cal = res["year_model_calibration"]["cross_state"]
    kap = (cal["kappa"], cal["rel_se"], cal.get("overdispersion", 1.0))
    tab = pa.Table.from_pylist(res["coincidence_table"])
    rn = es.rule_net(tab, cross=True, cls_pairs=("11",), states=vs, kappa=kap)
    dv = res["double_votes"]
    est = dv["rule_net_of_coincidences_error_corrected"]["estimate"]
    o2 = sum(rn[k].raw or 0.0 for k in rn)
    o2_net = sum(rn[k].estimate for k in rn)
    coinc_sub = o2 - o2_net
    s_hat = o2_net - est
    truth = sum(lv[k]["t2"] for k in lv)
    c2 = sum(lv[k]["c2"] for k in lv)
    f2 = sum(lv[k]["f2"] for k in lv)
    d2 = sum(lv[k]["d2"] for k in lv)
    miss, b = es.error_probabilities(
        error_rate, dv["votes_recorded_in_these_states"], dv["registrations_in_these_states"]
    )
    t1 = sum(lv[k]["t1"] for k in lv)
    e_c = {k: max(rn[k].expected_coincidences or 0.0, 0.0) for k in rn}
    floor_var = sum(e_c.values()) + t1 * b * (1 - b)
    return {
        "truth": truth,
        "estimate": est,
        "raw": o2,
        "coincidence": c2 - coinc_sub,
        "vote_record_error": f2 - s_hat,
        "truth_not_observed": d2 - truth,
        "realised": {"coincidences": c2, "false_mark_pairs": f2, "double_votes_observed": d2},
        "subtracted": {"coincidences": coinc_sub, "vote_record_error": s_hat},
        "by_level": lv,
        "expected_coincidences_by_level": e_c,
        "false_mark_probability": b,
        "floor_sd": floor_var**0.5,
        "floor_sd_parts": {
            "coincidence": sum(e_c.values()) ** 0.5,
            "vote_record_error": (t1 * b * (1 - b)) ** 0.5,
        },
        "reported_se": dv["rule_net_of_coincidences_error_corrected"]["se"],
    }


def national_check(
    con: duckdb.DuckDBPyConnection,
    res: dict,
    truth: dict[str, int],
    seed: int,
    error_rate: float,
    drop: int,
) -> dict:
    """Drop ``drop`` states, estimate, extrapolate, and compare with the whole nation's truth.

    "Nation" here = the states that publish a date of birth or birth year (the
    rule sees no pair in a state without one, so its truth is defined there);
    the extrapolation is the one ``voterolls estimate`` uses
    (``coverage.extrapolate_cross``: ratio estimator on registrant-pair mass,
    interval widened by between-state-pair heterogeneity), with the registrant
    weights restricted to those states.  Targets: ``dup_exact`` and
    ``dv_exact`` of the full nation (already computed on ``con``).
    """
    from voterolls.stats import coverage as cov
    from voterolls.stats.api import per_pair_estimates

    weights, _ = cov.registrant_weights()
    covered = [
        r[0]
        for r in con.execute(
            "SELECT state FROM registrations GROUP BY state "
            "HAVING avg((birth_year IS NOT NULL)::INT) >= 0.5 ORDER BY state"
        ).fetchall()
    ]
    rng = np.random.default_rng(10_000 + seed)
    dropped = sorted(rng.choice(covered, size=min(drop, len(covered) - 3), replace=False).tolist())
    kept = [s for s in covered if s not in dropped]
    lst = ", ".join(f"'{s}'" for s in kept)
    sub = duckdb.connect()
    sub.register(
        "_r", con.sql(f"SELECT * FROM registrations WHERE state IN ({lst})").to_arrow_table()
    )
    sub.register(
        "_v", con.sql(f"SELECT * FROM vote_history WHERE state IN ({lst})").to_arrow_table()
    )
    sub.execute("CREATE TABLE registrations AS SELECT * FROM _r")
    sub.execute("CREATE TABLE vote_history AS SELECT * FROM _v")
    r2 = es.estimate_tables(sub, error_rate=error_rate)
    tab = pa.Table.from_pylist(r2["coincidence_table"])
    cal = r2["year_model_calibration"]["cross_state"]
    kap = (cal["kappa"], cal["rel_se"])
    head = r2["duplicate_registrations"]["cross_state"]["rule_net_of_coincidences"]
    w_cov = {s: weights[s] for s in covered if s in weights}
    dup = cov.extrapolate_cross(
        head["estimate"], head["se"] ** 2, per_pair_estimates(tab, kap, True), kept, w_cov
    )
    vs_full = res["vote_history_states"]
    vs = [s for s in r2["vote_history_states"] if s in kept]
    dvh = r2["double_votes"]["rule_net_of_coincidences_error_corrected"]
    per = {
        k: v
        for k, v in per_pair_estimates(tab, kap, True, cls_pairs=("11",)).items()
        if k[0] in vs and k[1] in vs
    }
    w_vs = {s: weights[s] for s in vs_full if s in weights and s in covered}
    dv = cov.extrapolate_cross(dvh["estimate"], dvh["se"] ** 2, per, vs, w_vs)

    def entry(nat: dict, covered_est: float, target: int) -> dict:
        return {
            "covered_estimate": covered_est,
            "estimate": nat.get("national"),
            "ci95": nat.get("ci95"),
            "truth": target,
            "share": nat.get("pair_mass_share_covered"),
        }

    return {
        "dropped": dropped,
        "dup": entry(dup, head["estimate"], truth["dup_exact"]),
        "dv": entry(dv, dvh["estimate"], truth["dv_exact"]),
    }


def purge_check(con: duckdb.DuckDBPyConnection, nation, res: dict) -> dict | None:
    """The Crosscheck-purge figures of the estimate against the truth.

    Truth, over the rule pairs the estimator's purge used (``_vr_rule_pairs``):
    double votes prevented = rule pairs that are one person who cast both
    ballots; legitimate votes blocked = removed registrations whose holder
    really cast a ballot on them and is not one of those double voters.
    """
    p = res.get("crosscheck_purge")
    if not p:
        return None
    con.register(
        "_t_rec2", nation.truth["records"].select(["state", "state_voter_id", "person_id", "voted"])
    )
    dv_true, legit_true, removed_cast = con.execute(
        """
        WITH x AS (
            SELECT r.*, ta.person_id = tb.person_id AND ta.voted AND tb.voted AS double_vote,
                   CASE WHEN older = 'a' THEN ta.voted ELSE tb.voted END AS removed_cast,
                   CASE WHEN older = 'a' THEN sa ELSE sb END AS rs,
                   CASE WHEN older = 'a' THEN ida ELSE idb END AS rid
            FROM _vr_rule_pairs r
            JOIN _t_rec2 ta ON ta.state = r.sa AND ta.state_voter_id = r.ida
            JOIN _t_rec2 tb ON tb.state = r.sb AND tb.state_voter_id = r.idb),
        removed AS (
            SELECT rs, rid, bool_or(removed_cast) AS c, bool_or(double_vote) AS dv FROM x GROUP BY ALL)
        SELECT (SELECT count(*) FROM x WHERE double_vote),
               (SELECT count(*) FROM removed WHERE c AND NOT dv),
               (SELECT count(*) FROM removed WHERE c)
        """
    ).fetchall()[0]
    pv = p["double_votes_prevented_estimate"]
    return {
        "registrations_removed": p["registrations_removed"],
        "removed_registrations_used_to_vote": p["removed_registrations_used_to_vote"],
        "removed_registrations_really_cast": int(removed_cast),
        "dv_prevented": {
            "estimate": pv["estimate"],
            "ci95": pv["ci95"],
            "raw_rule_count": p["rule_pairs_both_voted"],
            "truth": int(dv_true),
        },
        "legit_blocked": {
            "estimate": p["legitimate_votes_blocked_estimate"],
            "ci95": p.get("legitimate_votes_blocked_ci95"),
            "truth": int(legit_true),
        },
        "ratio": {
            "estimate": p["legitimate_votes_blocked_per_double_vote_prevented"],
            "ci95": p["ratio_range_from_ci"],
            "truth": None if not dv_true else round(legit_true / dv_true, 1),
        },
    }


def _pick(d: dict, raw: float | None = None) -> dict:
    out = {
        k: d.get(k)
        for k in (
            "estimate",
            "ci95",
            "ci95_signed",
            "se",
            "raw_rule_count",
            "expected_coincidences",
        )
    }
    if out["raw_rule_count"] is None:
        out["raw_rule_count"] = raw
    return out


def run_seed(
    seed: int,
    people: int,
    cfg: SynthConfig,
    error_rate: float | None,
    toy: bool = False,
    model: Path | None = None,
    workdir: Path | None = None,
    national_drop: int = 0,
) -> dict:
    t0 = time.time()
    con = duckdb.connect()
    if toy:
        from bench.toy_population import make_population

        pop = make_population(
            people, seed=seed, states=TOY_STATES, top_first=300, top_last=1000, dup_rate=0.03,
            double_vote_rate=cfg.double_vote_rate, vote_error=cfg.vote_record_error_rate,
        )  # fmt: skip
        con.register("_r", pop.registrations)
        con.register("_v", pop.vote_history)
        con.execute("CREATE TABLE registrations AS SELECT * FROM _r")
        con.execute("CREATE TABLE vote_history AS SELECT * FROM _v")
        kinds = pop.truth_pairs
        nation = {"duplicate_pairs": kinds, "double_votes": pop.truth_double_vote_pairs}
    else:
        nation = generate_nation(people, seed, cfg)
        ingest_like(con, nation)
    pairs = None
    if model is not None and workdir is not None:
        from voterolls.link.run import LinkRequest, link_registrations

        out = workdir / f"seed{seed}"
        if not (out / "pairs.parquet").exists():  # --link-dir: a seed linked before is reused
            link_registrations(con, LinkRequest(out, model=model, blocking_analysis=False))
        pairs = str(out / "pairs.parquet")
    res = es.estimate_tables(con, pairs=pairs, error_rate=error_rate)
    truth = truth_counts(con, nation, res["vote_history_states"])
    cs = res["duplicate_registrations"]["cross_state"]
    d = cs["rule_net_of_coincidences"]
    dv = res["double_votes"]
    row = {
        "seed": seed,
        "seconds": round(time.time() - t0, 1),
        "truth": truth,
        "dup": _pick(d),
        # the headline ``voterolls estimate`` gives without linkage: the more precise rule net
        "dup_headline": _pick(
            min(
                (cs[k] for k in ("rule_net_of_coincidences", "rule_net_middle_initial") if k in cs),
                key=lambda c: c["se"],
            )
        ),
        **(
            {
                "dv_mi": _pick(dv["rule_net_middle_initial_error_corrected"]),
                "dv_mi_floor_sd": dv["rule_net_middle_initial_error_corrected"]["noise_floor"][
                    "sd"
                ],
            }
            if "rule_net_middle_initial_error_corrected" in dv
            else {}
        ),
        "dup_full": _pick(d["by_level"]["full"]),
        "dup_year": _pick(d["by_level"]["year"]),
        "dv": _pick(dv["rule_net_of_coincidences_error_corrected"]),
        "dv_no_error_correction": dv["rule_net_of_coincidences_no_error_correction"]["estimate"],
        "votes": dv["votes_recorded_in_these_states"],
        "error_rate_used": res["error_rate"],
        "error_rate_se": res["vote_record_error"]["error_rate_se"],
        "error_rate_source": res["error_rate_source"],
        "kappa": res["year_model_calibration"]["cross_state"]["kappa"],
        "kappa_rel_se": res["year_model_calibration"]["cross_state"]["rel_se"],
        "overdispersion": res["year_model_calibration"]["cross_state"].get("overdispersion"),
        "purge_ratio": (res.get("crosscheck_purge") or {}).get(
            "legitimate_votes_blocked_per_double_vote_prevented"
        ),
    }
    if not toy:
        dec = decompose_double_votes(con, nation, res, res["error_rate"])
        row["dv_decomposition"] = dec
        row["truth"]["dv_exact_full"] = dec["by_level"]["full"]["t2"]
        row["dv_full"] = _pick(
            dv["rule_net_of_coincidences_error_corrected"]["by_level"]["full"],
            raw=dec["by_level"]["full"]["c2"]
            + dec["by_level"]["full"]["d2"]
            + dec["by_level"]["full"]["f2"],
        )
        row["purge"] = purge_check(con, nation, res)
        if national_drop:
            row["national"] = national_check(con, res, truth, seed, error_rate, national_drop)
    if pairs is not None:
        row["dup_combined"] = _pick(cs["combined"])
        row["dup_combined_parts"] = {
            k: cs["combined"].get(k)
            for k in (
                "splink_non_exact",
                "splink_non_exact_below_threshold",
                "non_exact_check",
                "non_exact_relative_uncertainty",
                "exact_stratum",
                "non_exact",
                "surname_change_gap",
            )
        }
        row["dup_splink"] = _pick(cs["splink_sum_of_probabilities"], raw=d["raw_rule_count"])
        row["calibration_ratio"] = cs["splink_sum_of_probabilities"][
            "calibration_ratio_exact_stratum"
        ]
        row["dv_combined"] = _pick(dv["headline"])
        row["dv_combined_floor_sd"] = dv["headline"]["noise_floor"]["sd"]
        row["dv_combined_year_level_rule"] = dv["headline"].get("year_level_rule")
        row["dv_linkage_scale"] = dv["headline"].get("linkage_scale")
        row["linkage_calibration"] = res.get("linkage_calibration")
        row["dup_full_rule_net"] = d["by_level"]["full"]["estimate"]
    return row


def summarise(rows: list[dict], key: str, target: str) -> dict:
    est = np.array([r[key]["estimate"] for r in rows], dtype=float)
    lo = np.array([r[key]["ci95"][0] for r in rows], dtype=float)
    hi = np.array([r[key]["ci95"][1] for r in rows], dtype=float)
    raw = np.array([r[key]["raw_rule_count"] for r in rows], dtype=float)
    tru = np.array([r["truth"][target] for r in rows], dtype=float)
    ok = tru > 0
    return {
        "target": target,
        "truth_mean": float(tru.mean()),
        "estimate_mean": float(est.mean()),
        "mean_relative_error": float(np.mean(np.abs(est[ok] - tru[ok]) / tru[ok]))
        if ok.any()
        else None,
        "mean_signed_relative_error": float(np.mean((est[ok] - tru[ok]) / tru[ok]))
        if ok.any()
        else None,
        "ci95_coverage": float(np.mean((lo <= tru) & (tru <= hi))),
        "mean_relative_half_width": _half_width(rows, key),
        "raw_rule_count_mean": float(raw.mean()),
        "raw_overcount_vs_truth": float(raw.sum() / tru.sum()) if tru.sum() else None,
        "seeds": len(rows),
    }


def floor_summary(rows: list[dict]) -> dict:
    """The headline double-vote interval against its noise floor (absolute units).

    Relative widths mean nothing when the truth is a handful: the comparison is the
    reported standard error with the floor's (``noise_floor`` of the estimate), and
    the interval half-width with ``1.96 x`` the floor, over seeds.
    """
    se = np.array([r["dv_combined"]["se"] for r in rows], dtype=float)
    fl = np.array([r["dv_combined_floor_sd"] for r in rows], dtype=float)
    half = np.array(
        [
            (r["dv_combined"]["ci95_signed"][1] - r["dv_combined"]["ci95_signed"][0]) / 2
            for r in rows
        ],
        dtype=float,
    )
    tru = np.array([r["truth"]["dv_visible"] for r in rows], dtype=float)
    est = np.array([r["dv_combined"]["estimate"] for r in rows], dtype=float)
    return {
        # bias: mean error over seeds and its standard error (between-seed sd / sqrt(seeds))
        "mean_error": float(np.mean(est - tru)),
        "mean_error_se": float(np.std(est - tru, ddof=1) / np.sqrt(len(rows)))
        if len(rows) > 1
        else None,
        "between_seed_sd": float(np.std(est, ddof=1)) if len(rows) > 1 else None,
        "reported_se_mean": float(se.mean()),
        "floor_sd_mean": float(fl.mean()),
        "reported_se_over_floor_mean": float(np.mean(se / np.where(fl > 0, fl, np.nan))),
        "half_width_mean": float(half.mean()),
        "floor_half_width_mean": float(es.Z95 * fl.mean()),
        "truth_over_floor_sd_mean": float(np.mean(tru / np.where(fl > 0, fl, np.nan))),
        "year_level_rules": sorted({str(r.get("dv_combined_year_level_rule")) for r in rows}),
    }


def _half_width(rows: list[dict], key: str) -> float | None:
    """Mean of (95% interval half-width / estimate), from the signed interval."""
    out = []
    for r in rows:
        d = r[key]
        lo, hi = d.get("ci95_signed") or d["ci95"]
        if d["estimate"] > 0:
            out.append((hi - lo) / 2 / d["estimate"])
    return float(np.mean(out)) if out else None


def summarise_decomposition(rows: list[dict]) -> dict | None:
    """Error budget of the rule-net double-vote estimate over seeds (see ``decompose_double_votes``)."""
    dec = [r["dv_decomposition"] for r in rows if "dv_decomposition" in r]
    if not dec:
        return None
    tru = np.array([d["truth"] for d in dec], dtype=float)
    err = np.array([d["estimate"] - d["truth"] for d in dec], dtype=float)
    floor = np.array([d["floor_sd"] for d in dec], dtype=float)
    ok = tru > 0
    half_normal = math.sqrt(2 / math.pi)  # E|Z| for a standard normal

    def rms(x: np.ndarray) -> float:
        return float(np.sqrt(np.mean(np.square(x))))

    parts = {
        k: np.array([d[k] for d in dec], dtype=float)
        for k in ("coincidence", "vote_record_error", "truth_not_observed")
    }
    return {
        "seeds": len(dec),
        "truth_mean": float(tru.mean()),
        "truth_sd": float(tru.std(ddof=1)) if len(tru) > 1 else 0.0,
        "raw_mean": float(np.mean([d["raw"] for d in dec])),
        "realised_coincidences_mean": float(np.mean([d["realised"]["coincidences"] for d in dec])),
        "realised_false_mark_pairs_mean": float(
            np.mean([d["realised"]["false_mark_pairs"] for d in dec])
        ),
        "error_mean": float(err.mean()),
        "error_rms": rms(err),
        "parts_mean": {k: float(v.mean()) for k, v in parts.items()},
        "parts_rms": {k: rms(v) for k, v in parts.items()},
        "floor_sd_rms": rms(floor),
        "floor_sd_parts_rms": {
            k: rms(np.array([d["floor_sd_parts"][k] for d in dec], dtype=float))
            for k in ("coincidence", "vote_record_error")
        },
        "reported_se_rms": rms(np.array([d["reported_se"] for d in dec], dtype=float)),
        "mean_relative_error": float(np.mean(np.abs(err[ok]) / tru[ok])) if ok.any() else None,
        # what an estimator at the floor would score on the same seeds (normal approximation),
        # and what it would score if the truth did not vary between seeds
        "floor_mean_relative_error": float(np.mean(half_normal * floor[ok] / tru[ok]))
        if ok.any()
        else None,
        "floor_mean_relative_error_at_mean_truth": float(half_normal * rms(floor) / tru.mean())
        if tru.mean() > 0
        else None,
    }


def _accuracy(items: list[dict]) -> dict | None:
    """Mean abs./signed relative error and interval coverage of ``{estimate, ci95, truth}`` items."""
    items = [i for i in items if i and i.get("estimate") is not None]
    if not items:
        return None
    est = np.array([i["estimate"] for i in items], dtype=float)
    tru = np.array([i["truth"] for i in items], dtype=float)
    ok = tru > 0
    cov_ = [i["ci95"][0] <= i["truth"] <= i["ci95"][1] for i in items if i.get("ci95")]
    return {
        "seeds": len(items),
        "truth_mean": float(tru.mean()),
        "estimate_mean": float(est.mean()),
        "mean_abs_error": float(np.mean(np.abs(est - tru))),
        "mean_relative_error": float(np.mean(np.abs(est[ok] - tru[ok]) / tru[ok]))
        if ok.any()
        else None,
        "mean_signed_relative_error": float(np.mean((est[ok] - tru[ok]) / tru[ok]))
        if ok.any()
        else None,
        "ci95_coverage": float(np.mean(cov_)) if cov_ else None,
    }


def summarise_national(rows: list[dict]) -> dict | None:
    nat = [r["national"] for r in rows if r.get("national")]
    if not nat:
        return None
    return {
        "states_dropped_per_seed": len(nat[0]["dropped"]),
        "pair_mass_share_covered_mean": float(np.mean([n["dup"]["share"] or 0 for n in nat])),
        "duplicates": _accuracy([n["dup"] for n in nat]),
        "double_votes": _accuracy([n["dv"] for n in nat]),
    }


def summarise_purge(rows: list[dict]) -> dict | None:
    pur = [r["purge"] for r in rows if r.get("purge")]
    if not pur:
        return None
    ratio_t = [p["ratio"]["truth"] for p in pur if p["ratio"]["truth"] is not None]
    ratio_e = [p["ratio"]["estimate"] for p in pur if p["ratio"]["estimate"] is not None]
    tot_legit = sum(p["legit_blocked"]["truth"] for p in pur)
    tot_dv = sum(p["dv_prevented"]["truth"] for p in pur)
    tot_legit_e = sum(p["legit_blocked"]["estimate"] for p in pur)
    tot_dv_e = sum(max(p["dv_prevented"]["estimate"], 0.0) for p in pur)
    return {
        "registrations_removed_mean": float(np.mean([p["registrations_removed"] for p in pur])),
        "removed_used_to_vote_mean": float(
            np.mean([p["removed_registrations_used_to_vote"] for p in pur])
        ),
        "legitimate_votes_blocked": _accuracy([p["legit_blocked"] for p in pur]),
        "double_votes_prevented": _accuracy([p["dv_prevented"] for p in pur]),
        "double_votes_prevented_raw_mean": float(
            np.mean([p["dv_prevented"]["raw_rule_count"] for p in pur])
        ),
        "ratio_pooled_truth": tot_legit / tot_dv if tot_dv else None,
        "ratio_pooled_estimate": tot_legit_e / tot_dv_e if tot_dv_e else None,
        "ratio_seeds_with_truth": len(ratio_t),
        "ratio_seeds_with_estimate": len(ratio_e),
        "ratio_median_truth": float(np.median(ratio_t)) if ratio_t else None,
        "ratio_median_estimate": float(np.median(ratio_e)) if ratio_e else None,
    }


#: Summary names used by earlier versions of this script -> current names.
RENAMED = {
    "duplicate registrations (rule net of coincidences)": "duplicate registrations, rule net of coincidences",
    "duplicate registrations vs all visible duplicates": "duplicate registrations, rule net vs all visible duplicates",
    "double votes (rule net, error-corrected)": "double votes, rule net, error-corrected",
    "double votes vs all visible double votes": "double votes, rule net vs all visible double votes",
}


def table_md(cfgs: list[dict]) -> str:
    lines = [
        "| configuration | figure | truth target | truth (mean) | estimate (mean) | mean abs. rel. error | mean signed rel. error | 95% CI coverage | raw rule count (mean) | raw / truth |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for c in cfgs:
        for name0, s in c["summary"].items():
            name = RENAMED.get(name0, name0)
            mre = "n/a" if s["mean_relative_error"] is None else f"{s['mean_relative_error']:.1%}"
            msr = (
                "n/a"
                if s["mean_signed_relative_error"] is None
                else f"{s['mean_signed_relative_error']:+.1%}"
            )
            ratio = (
                "n/a"
                if s["raw_overcount_vs_truth"] is None
                else f"{s['raw_overcount_vs_truth']:.2f}"
            )
            lines.append(
                f"| {c['label']} | {name} | {s['target']} | {s['truth_mean']:.1f} | {s['estimate_mean']:.1f} | {mre} | {msr} "
                f"| {s['ci95_coverage']:.0%} ({s['seeds']} seeds) | {s['raw_rule_count_mean']:.1f} | {ratio} |"
            )
    return "\n".join(lines)


def _md(header: list[str], rows: list[list[str]]) -> str:
    """A Markdown table from header cells and rows of cells."""
    out = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    out += ["| " + " | ".join(r) + " |" for r in rows]
    return "\n".join(out)


def _pct(x: float | None, signed: bool = False) -> str:
    if x is None:
        return "n/a"
    return f"{x:+.1%}" if signed else f"{x:.1%}"


def _f(x: float | None, fmt: str = ".1f") -> str:
    return "n/a" if x is None else format(x, fmt)


def budget_md(cfgs: list[dict]) -> str:
    """Error budget of the rule-net double-vote estimate, per configuration."""
    rows = []
    for c in cfgs:
        b = c.get("double_vote_error_budget")
        if not b:
            continue
        fp, pr = b["floor_sd_parts_rms"], b["parts_rms"]
        rows.append(
            [
                c["label"],
                str(b["seeds"]),
                f"{b['truth_mean']:.1f} ({b['truth_sd']:.1f})",
                f"{b['raw_mean']:.1f}",
                f"{b['realised_coincidences_mean']:.1f}",
                f"{b['realised_false_mark_pairs_mean']:.1f}",
                f"{b['error_rms']:.2f}",
                f"{pr['coincidence']:.2f}",
                f"{pr['vote_record_error']:.2f}",
                f"{b['error_mean']:+.2f}",
                f"{b['floor_sd_rms']:.2f} ({fp['coincidence']:.2f} / {fp['vote_record_error']:.2f})",
                f"{b['reported_se_rms']:.2f}",
                _pct(b["mean_relative_error"]),
                _pct(b["floor_mean_relative_error"]),
            ]
        )
    head = [
        "configuration", "seeds", "truth mean (sd)", "raw", "realised coincidences",
        "realised false-mark pairs", "RMS error", "RMS coincidence part",
        "RMS vote-record-error part", "mean error (bias)", "noise floor sd (coinc. / vote err.)",
        "reported se", "mean rel. error", "at the floor",
    ]  # fmt: skip
    return _md(head, rows)


def national_md(cfgs: list[dict]) -> str:
    rows = []
    for c in cfgs:
        n = c.get("national_extrapolation")
        for name, key in (
            ("duplicate registrations", "duplicates"),
            ("double votes", "double_votes"),
        ):
            a = n and n[key]
            if not a:
                continue
            rows.append(
                [
                    c["label"],
                    f"{name} (rule net)",
                    str(n["states_dropped_per_seed"]),
                    f"{n['pair_mass_share_covered_mean']:.2f}",
                    f"{a['truth_mean']:.1f}",
                    f"{a['estimate_mean']:.1f}",
                    _pct(a["mean_relative_error"]),
                    _pct(a["mean_signed_relative_error"], True),
                    f"{_pct(a['ci95_coverage'])} ({a['seeds']} seeds)",
                ]
            )
    head = [
        "configuration", "figure", "states dropped", "covered pair-mass share",
        "truth, whole nation (mean)", "national estimate (mean)", "mean abs. rel. error",
        "mean signed rel. error", "95% CI coverage",
    ]  # fmt: skip
    return _md(head, rows)


def purge_md(cfgs: list[dict]) -> str:
    rows = []
    for c in cfgs:
        p = c.get("purge")
        if not p:
            continue
        lb, dv = p["legitimate_votes_blocked"], p["double_votes_prevented"]
        lb_cov = lb.get("ci95_coverage")
        rows.append(
            [
                c["label"],
                f"{p['registrations_removed_mean']:.1f}",
                f"{p['removed_used_to_vote_mean']:.1f}",
                f"{lb['truth_mean']:.1f} / {lb['estimate_mean']:.1f} ({lb['mean_abs_error']:.1f}"
                + (f"; CI coverage {lb_cov:.0%}" if lb_cov is not None else "")
                + ")",
                f"{dv['truth_mean']:.2f} / {dv['estimate_mean']:.2f} / "
                f"{p['double_votes_prevented_raw_mean']:.2f} ({_pct(dv['ci95_coverage'])}, "
                f"{dv['seeds']} seeds)",
                f"{_f(p['ratio_pooled_truth'])} / {_f(p['ratio_pooled_estimate'])}",
            ]
        )
    head = [
        "configuration", "registrations removed (mean)", "removed, recorded voting",
        "legitimate votes blocked: truth / estimate (mean abs. error)",
        "double votes prevented: truth / estimate / raw (95% CI coverage)",
        "blocked per prevented, pooled: truth / estimate",
    ]  # fmt: skip
    return _md(head, rows)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--seeds", type=int, default=20)
    ap.add_argument("--people", type=int, default=100_000)
    ap.add_argument(
        "--double-vote-rate", type=float, default=None, help="override SynthConfig.double_vote_rate"
    )
    ap.add_argument(
        "--error-rate",
        type=float,
        default=None,
        help="assumed vote-record error (default: the synth's)",
    )
    ap.add_argument("--label", default=None)
    ap.add_argument(
        "--linkage",
        action="store_true",
        help="also run voterolls.link (model trained once on a separate seed, reused) and validate the "
        "combined and Splink-sum estimators",
    )
    ap.add_argument(
        "--model",
        type=Path,
        default=None,
        help="with --linkage: reuse this trained model.json instead of training on seed 10000",
    )
    ap.add_argument(
        "--link-dir",
        type=Path,
        default=None,
        help="with --linkage: keep the trained model and each seed's pairs here and reuse those "
        "already there (same process and people only: the linkage is deterministic per seed), "
        "so that a change to the estimators alone is re-validated without re-linking",
    )
    ap.add_argument(
        "--toy",
        action="store_true",
        help="use bench/toy_population.py (6 states, concentrated names: a coincidence-heavy regime) instead of synth",
    )
    ap.add_argument(
        "--national-drop",
        type=int,
        default=8,
        help="validate the national extrapolation by dropping this many DOB-publishing states per "
        "seed (0: skip)",
    )
    ap.add_argument(
        "--mechanism",
        choices=sorted(MECHANISMS),
        default=None,
        help="an alternative data-generating process (MECHANISMS); results go to "
        "bench/results/validate_mechanisms.json and the mechanisms table of docs/METHODS.md",
    )
    ap.add_argument(
        "--namesake-density",
        default="sample",
        help="SynthConfig.namesake_density: sample, national or a number of people",
    )
    ap.add_argument("--write-methods", action="store_true")
    ap.add_argument(
        "--resume-partial",
        action="store_true",
        help="start from the seeds an interrupted run of the same configuration left in its "
        ".partial.json (with --model for linkage runs); --seeds N with N seeds already there "
        "only summarises them",
    )
    ap.add_argument(
        "--results", type=Path, default=RESULTS, help="results JSON (default: %(default)s)"
    )
    ap.add_argument(
        "--render-only",
        action="store_true",
        help="only re-render the saved results into docs/METHODS.md (no runs)",
    )
    args = ap.parse_args()
    density = args.namesake_density
    density = float(density) if density not in ("sample", "national") else density
    if args.mechanism is not None and args.results == RESULTS:
        args.results = MECHANISM_RESULTS
    if args.render_only:
        configurations = json.loads(args.results.read_text())["configurations"]
        if any(c.get("mechanism") for c in configurations):
            write_mechanisms(configurations)
        else:
            write_methods(configurations)
        return
    over = {} if args.double_vote_rate is None else {"double_vote_rate": args.double_vote_rate}
    if args.mechanism is not None:
        cfg = SynthConfig(
            **KEPT_RECORDS, **MECHANISMS[args.mechanism][0], **over, namesake_density=density
        )
    else:
        cfg = SynthConfig(**over, namesake_density=density)
    # None: the estimator learns the vote-record error from the data
    e = args.error_rate
    assumed = "learnt from the data" if e is None else f"assumed {e:.1%}"
    label = args.label or (
        (f"{args.mechanism}, {density} namesake density, " if args.mechanism else "")
        + ("toy (coincidence-heavy), " if args.toy else "synth, ")
        + f"{args.people:,} people, double-vote rate {cfg.double_vote_rate:.5f}, "
        f"vote-record error {cfg.vote_record_error_rate:.1%} ({assumed}), rule-based estimators"
    )
    linkage = args.linkage and not args.toy
    model = workdir = None
    rows = []
    resumed_from = None
    partial = args.results.with_name(
        args.results.stem + (f".{args.mechanism}" if args.mechanism else "") + ".partial.json"
    )
    if args.resume_partial and partial.exists():
        resumed = json.loads(partial.read_text())
        rows = resumed["rows"][: args.seeds]
        resumed_from = "bench/validate_estimates.py " + " ".join(resumed["command"])
        print(f"resumed {len(rows)} seeds from {partial}", flush=True)
    if linkage:
        import tempfile

        from voterolls.link.run import LinkRequest, link_registrations

        if args.link_dir is not None:
            workdir = args.link_dir
            workdir.mkdir(parents=True, exist_ok=True)
            if args.model is None and (workdir / "train" / "model.json").exists():
                args.model = workdir / "train" / "model.json"
        else:
            workdir = Path(tempfile.mkdtemp(prefix="validate_estimates_"))
    if linkage and args.model is not None:
        model = args.model
        label = label.replace("rule-based estimators", "rule-based + linkage estimators")
    elif linkage and len(rows) >= args.seeds:  # only summarising resumed seeds
        label = label.replace("rule-based estimators", "rule-based + linkage estimators")
    elif linkage:
        con = duckdb.connect()
        ingest_like(con, generate_nation(args.people, 10_000, cfg))  # training nation, not scored
        t = time.time()
        link_registrations(con, LinkRequest(workdir / "train", blocking_analysis=False))
        model = workdir / "train" / "model.json"
        print(f"trained the linkage model on seed 10000 in {time.time() - t:.0f}s", flush=True)
        label = label.replace("rule-based estimators", "rule-based + linkage estimators")
    t_start = time.time() - sum(r["seconds"] for r in rows)
    for seed in range(len(rows), args.seeds):
        r = run_seed(
            seed, args.people, cfg, e, toy=args.toy, model=model, workdir=workdir,
            national_drop=args.national_drop,
        )  # fmt: skip
        r["load_1min"] = os.getloadavg()[0]
        rows.append(r)
        # rows so far, so that an interrupted long run still leaves its seeds behind
        partial.write_text(json.dumps({"command": sys.argv[1:], "rows": rows}, indent=1) + "\n")
        print(
            f"seed {seed:2d}: dup est {r['dup']['estimate']:8.1f} truth(exact) {r['truth']['dup_exact']:6d} "
            f"(visible {r['truth']['dup_visible']:6d}) raw {r['dup']['raw_rule_count']:7.0f} | "
            f"dv est {r['dv']['estimate']:7.1f} [{r['dv']['ci95'][0]:.1f}, {r['dv']['ci95'][1]:.1f}] "
            f"truth(exact) {r['truth']['dv_exact']:4d} (visible {r['truth']['dv_visible']:4d}) raw {r['dv']['raw_rule_count']:5.0f} "
            + (
                f" | combined dup {r['dup_combined']['estimate']:.1f} dv {r['dv_combined']['estimate']:.1f}"
                if "dup_combined" in r
                else ""
            )
            + f" | {r['seconds']}s",
            flush=True,
        )
    summary = {
        "duplicate registrations, rule net of coincidences": summarise(rows, "dup", "dup_exact"),
        "duplicate registrations, rule net vs all visible duplicates": summarise(
            rows, "dup", "dup_visible"
        ),
        "double votes, rule net, error-corrected": summarise(rows, "dv", "dv_exact"),
        "double votes, rule net vs all visible double votes": summarise(rows, "dv", "dv_visible"),
    }
    if not args.toy:
        summary[
            "duplicate registrations, headline without linkage (middle initial at the year level)"
        ] = summarise(rows, "dup_headline", "dup_exact")
        summary["duplicate registrations, full-DOB stratum, rule net"] = summarise(
            rows, "dup_full", "dup_exact_full"
        )
        summary["duplicate registrations, year-only stratum, rule net"] = summarise(
            rows, "dup_year", "dup_exact_year"
        )
        if all("dv_mi" in r for r in rows):
            summary[
                "double votes, rule net with middle initial at the year level, error-corrected"
            ] = summarise(rows, "dv_mi", "dv_exact")
            tru = np.array([r["truth"]["dv_exact"] for r in rows], dtype=float)
            fl = np.array([r["dv_mi_floor_sd"] for r in rows], dtype=float)
            ok = tru > 0
            summary[
                "double votes, rule net with middle initial at the year level, error-corrected"
            ]["floor_mean_relative_error"] = (
                float(np.mean(np.sqrt(2 / np.pi) * fl[ok] / tru[ok])) if ok.any() else None
            )
        summary["double votes, full-DOB stratum (Crosscheck rule), error-corrected"] = summarise(
            rows, "dv_full", "dv_exact_full"
        )
    if linkage:
        summary["duplicate registrations, combined (rule net + Splink non-exact)"] = summarise(
            rows, "dup_combined", "dup_visible"
        )
        summary["duplicate registrations, Splink sum of probabilities"] = summarise(
            rows, "dup_splink", "dup_visible"
        )
        summary["double votes, combined, error-corrected"] = summarise(
            rows, "dv_combined", "dv_visible"
        )
        summary["double votes, combined, error-corrected"].update(floor_summary(rows))
    entry = {
        "label": label,
        "people": args.people,
        "seeds": args.seeds,
        "mechanism": args.mechanism,
        "mechanism_description": MECHANISMS[args.mechanism][1] if args.mechanism else None,
        "namesake_density": density,
        "config": {
            "double_vote_rate": cfg.double_vote_rate,
            "vote_record_error_rate": cfg.vote_record_error_rate,
            "vote_error_mechanism": cfg.vote_error_mechanism,
        },
        "error_rate_used": _mean_sd([r["error_rate_used"] for r in rows]),
        "error_rate_se_mean": float(np.mean([r["error_rate_se"] for r in rows])),
        "assumed_error_rate": e,
        "command": "bench/validate_estimates.py " + " ".join(sys.argv[1:]),
        "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
        # seeds resumed from an interrupted run: the command that computed them
        "resumed_from": resumed_from,
        "minutes": round((time.time() - t_start) / 60, 1),
        # the machine is shared: the 1-minute load average after each seed (uptime's first figure)
        "load_1min": _mean_sd([r["load_1min"] for r in rows]) | {"cores": os.cpu_count()},
        "summary": summary,
        "double_vote_error_budget": summarise_decomposition(rows),
        "national_extrapolation": summarise_national(rows),
        "purge": summarise_purge(rows),
        "rows": rows,
    }
    results = args.results
    results.parent.mkdir(parents=True, exist_ok=True)
    existing = json.loads(results.read_text()) if results.exists() else {"configurations": []}
    existing["configurations"] = [c for c in existing["configurations"] if c["label"] != label] + [
        entry
    ]
    results.write_text(json.dumps(existing, indent=1) + "\n")
    print(table_md([entry]))
    for f in (budget_md, national_md, purge_md):
        print(f([entry]))
    if args.write_methods:
        if args.mechanism is not None:
            write_mechanisms(existing["configurations"])
        else:
            write_methods(existing["configurations"])


def _mean_sd(x: list[float]) -> dict:
    a = np.asarray(x, dtype=float)
    return {"mean": float(a.mean()), "sd": float(a.std(ddof=1)) if a.size > 1 else 0.0}


def mechanisms_md(cfgs: list[dict]) -> str:
    """One row per (process, figure): error, coverage, interval width, and for double votes
    the noise floor; the vote-record error the estimator learnt against the generator's."""
    figures = (
        (
            "duplicate registrations, combined (rule net + Splink non-exact)",
            "duplicates, headline with linkage (combined), vs all visible",
        ),
        (
            "duplicate registrations, Splink sum of probabilities",
            "duplicates, Splink sum, vs all visible",
        ),
        ("duplicate registrations, rule net of coincidences", "duplicates (rule net)"),
        (
            "duplicate registrations, headline without linkage (middle initial at the year level)",
            "duplicates, headline (rule net + middle initial)",
        ),
        ("duplicate registrations, full-DOB stratum, rule net", "duplicates, full-DOB stratum"),
        ("duplicate registrations, year-only stratum, rule net", "duplicates, year-only stratum"),
        (
            "double votes, combined, error-corrected",
            "double votes, headline with linkage, vs all visible",
        ),
        ("double votes, rule net, error-corrected", "double votes (rule net, error-corrected)"),
        (
            "double votes, rule net with middle initial at the year level, error-corrected",
            "double votes (rule net + middle initial, error-corrected)",
        ),
        (
            "double votes, full-DOB stratum (Crosscheck rule), error-corrected",
            "double votes, full-DOB stratum",
        ),
    )
    rows = []
    for c in cfgs:
        floor = (c.get("double_vote_error_budget") or {}).get("floor_mean_relative_error")
        err = c.get("error_rate_used") or {}
        for key, name in figures:
            s = c["summary"].get(key)
            if not s:
                continue
            rows.append(
                [
                    c.get("mechanism") or "default",
                    str(c.get("namesake_density", "sample")),
                    f"{c['people']:,}",
                    name,
                    f"{s['truth_mean']:.1f}",
                    f"{s['estimate_mean']:.1f}",
                    _pct(s["mean_relative_error"]),
                    _pct(s["mean_signed_relative_error"], signed=True),
                    f"{s['ci95_coverage']:.0%} ({s['seeds']})",
                    _pct(s.get("mean_relative_half_width")),
                    _pct(s.get("floor_mean_relative_error", floor))
                    if key.startswith("double votes, rule net")
                    else "",
                    f"{err.get('mean', 0):.2%} ± {err.get('sd', 0):.2%} "
                    f"(generator {c['config']['vote_record_error_rate']:.0%}, "
                    f"{c['config'].get('vote_error_mechanism', 'wrong_registration')})"
                    if key.startswith("double votes, rule net")
                    else "",
                ]
            )
    return _md(
        [
            "process",
            "namesake density",
            "people",
            "figure",
            "truth (mean)",
            "estimate (mean)",
            "mean abs. rel. error",
            "mean signed rel. error",
            "95% coverage (seeds)",
            "half-width / estimate",
            "noise floor (mean rel. error)",
            "vote-record error learnt (mean ± sd over seeds)",
        ],
        rows,
    )


#: Targets for the headline duplicate estimate at national namesake density (issue 19).
TARGETS = {"mean_relative_error": 0.10, "ci95_coverage": 0.90, "mean_relative_half_width": 0.25}
HEADLINE_DUP = "duplicate registrations, combined (rule net + Splink non-exact)"
HEADLINE_DV = "double votes, combined, error-corrected"


def targets_md(cfgs: list[dict]) -> str:
    """The headline duplicate estimate (with linkage) against the three targets, per process."""
    rows = []
    for c in cfgs:
        s = c["summary"].get(HEADLINE_DUP)
        if not s:
            continue
        ok = (
            s["mean_relative_error"] <= TARGETS["mean_relative_error"],
            s["ci95_coverage"] >= TARGETS["ci95_coverage"],
            (s.get("mean_relative_half_width") or 9.9) <= TARGETS["mean_relative_half_width"],
        )
        load = c.get("load_1min") or {}
        rows.append(
            [
                c.get("mechanism") or "default",
                f"{c['people']:,}",
                str(s["seeds"]),
                f"{s['truth_mean']:.1f}",
                f"{s['estimate_mean']:.1f}",
                _pct(s["mean_relative_error"]) + (" met" if ok[0] else " NOT met"),
                f"{s['ci95_coverage']:.0%}" + (" met" if ok[1] else " NOT met"),
                _pct(s.get("mean_relative_half_width")) + (" met" if ok[2] else " NOT met"),
                _pct(s["mean_signed_relative_error"], signed=True),
                f"{load.get('mean', float('nan')):.1f}",
                _run_date(c),
            ]
        )
    head = [
        "process", "people", "seeds", "truth, all visible (mean)", "estimate (mean)",
        "mean abs. rel. error (<= 10%)", "95% coverage (>= 90%)", "half-width / estimate (<= 25%)",
        "mean signed rel. error", "load (1 min, mean)", "run",
    ]  # fmt: skip
    return _md(head, rows)


def floor_md(cfgs: list[dict]) -> str:
    """The headline double-vote interval against its noise floor, per process."""
    rows = []
    for c in cfgs:
        s = c["summary"].get(HEADLINE_DV)
        if not s or "floor_sd_mean" not in s:
            continue
        rows.append(
            [
                c.get("mechanism") or "default",
                f"{c['people']:,}",
                str(s["seeds"]),
                f"{s['truth_mean']:.1f}",
                f"{s['estimate_mean']:.1f}",
                f"{s['ci95_coverage']:.0%}",
                f"{s['reported_se_mean']:.1f}",
                f"{s['floor_sd_mean']:.1f}",
                f"{s['reported_se_over_floor_mean']:.2f}",
                f"{s['half_width_mean']:.1f} / {s['floor_half_width_mean']:.1f}",
                f"{s['truth_over_floor_sd_mean']:.2f}",
                _mean_error(s),
                _f(s.get("between_seed_sd")),
                "; ".join(s.get("year_level_rules", [])),
                _run_date(c),
            ]
        )
    head = [
        "process", "people", "seeds", "truth, all visible (mean)", "estimate (mean)",
        "95% coverage", "reported se (mean)", "noise floor sd (mean)", "se / floor (mean)",
        "half-width: reported / at the floor (mean)", "truth / floor sd",
        "mean error ± its se", "sd of the estimate over seeds", "year-level rule", "run",
    ]  # fmt: skip
    return _md(head, rows)


def _run_date(c: dict) -> str:
    """When a configuration was run (entries from before dates were recorded: the code
    before the changed-surname gap and the linkage-scaled double-vote headline)."""
    return c.get("date") or "2026-12-07, earlier code"


def _mean_error(s: dict) -> str:
    """Mean error over seeds ± its standard error (the bias test), blank when not recorded."""
    if s.get("mean_error") is None:
        return ""
    return f"{s['mean_error']:+.1f} ± {_f(s.get('mean_error_se'))}"


def _run_note(c: dict) -> str:
    """Seeds, wall time and the machine's load during a run (the machine is shared)."""
    load = c.get("load_1min")
    return (
        (
            f"seeds computed by `{c['resumed_from']}` (interrupted), "
            if c.get("resumed_from")
            else ""
        )
        + f"run {_run_date(c)}, {c['seeds']} seeds, "
        + (f"{c['minutes']} min" if "minutes" in c else "runtime not recorded")
        + (
            f", load {load['mean']:.1f} (1 min, mean over seeds, {load['cores']} cores)"
            if load
            else ""
        )
    )


def write_mechanisms(configurations: list[dict]) -> None:
    """Put the table across data-generating processes between its markers in docs/METHODS.md."""
    if not METHODS.exists():
        return
    cmds = "\n".join(
        f"    .venv/bin/python {c['command']}  # {_run_note(c)}" for c in configurations
    )
    desc = "\n".join(
        f"* `{c['mechanism']}`: {c['mechanism_description']}"
        for c in {c["mechanism"]: c for c in configurations if c.get("mechanism")}.values()
    )
    text = METHODS.read_text()
    a, b = "<!-- mechanisms:begin -->", "<!-- mechanisms:end -->"
    if a in text and b in text:
        head, rest = text.split(a, 1)
        _, tail = rest.split(b, 1)
        body = (
            f"\nCommands:\n\n{cmds}\n\nProcesses:\n\n{desc}\n\n"
            "The headline duplicate estimate with linkage against the targets:\n\n"
            f"{targets_md(configurations)}\n\n"
            "The headline double-vote interval against its noise floor:\n\n"
            f"{floor_md(configurations)}\n\nEvery figure:\n\n{mechanisms_md(configurations)}\n"
        )
        METHODS.write_text(head + a + body + b + tail)


def write_methods(configurations: list[dict]) -> None:
    """Put the validation table between the markers in docs/METHODS.md."""
    if not METHODS.exists():
        return
    md = (
        table_md(configurations)
        + "\n\nError budget of the double-vote estimate (rule net, error-corrected, target "
        "`dv_exact`; parts add up to the error, see `decompose_double_votes`):\n\n"
        + budget_md(configurations)
        + "\n\nNational extrapolation (states dropped at random per seed, estimate extrapolated "
        "with the model of §3, compared with the whole nation's truth):\n\n"
        + national_md(configurations)
        + "\n\nA purge on the Crosscheck rule (§2.3) against the truth:\n\n"
        + purge_md(configurations)
    )
    cmds = "\n".join(
        f"    .venv/bin/python {c['command']}  # {_run_note(c)}" for c in configurations
    )
    text = METHODS.read_text()
    a, b = "<!-- validation:begin -->", "<!-- validation:end -->"
    if a in text and b in text:
        head, rest = text.split(a, 1)
        _, tail = rest.split(b, 1)
        METHODS.write_text(head + a + "\nCommands:\n\n" + cmds + "\n\n" + md + "\n" + b + tail)


if __name__ == "__main__":
    main()
