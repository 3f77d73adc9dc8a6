"""Validate the estimators against the truth of many synthetic nations.

For each seed: ``voterolls.synth.generate_nation(people, seed)`` -> per state
the date cleaning, disclosure policy (``voterolls.policy.enforce``) and
normalisation (``voterolls.normalize``) that ingest applies, on the national
tables directly (``voterolls.link.synthetic.load_nation_registrations``) (the native-file round trip is skipped to keep the
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
  vote history is public.

Usage::

    .venv/bin/python bench/validate_estimates.py --seeds 20 --people 100000
    .venv/bin/python bench/validate_estimates.py --seeds 20 --people 100000 --double-vote-rate 0.004

Writes bench/results/validate_estimates.json (one entry per configuration)
and, with ``--write-methods``, the table into docs/METHODS.md between the
``<!-- validation:begin -->`` / ``<!-- validation:end -->`` markers.
"""

from __future__ import annotations

import argparse
import json
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
METHODS = ROOT / "docs" / "METHODS.md"


def ingest_like(con: duckdb.DuckDBPyConnection, nation) -> None:
    """Create ``registrations`` / ``vote_history`` tables as ingest would store them.

    Registrations: ``voterolls.link.synthetic.load_nation_registrations`` (the
    linkage owner's helper: ``clean_dates`` -> ``policy.enforce`` ->
    ``normalize_registrations``, the steps and order of ingest).  Vote history:
    ``policy.enforce_vote_history`` per state (withheld where not public,
    protected voters' rows removed).
    """
    from voterolls.link.synthetic import load_nation_registrations

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
    rule = """(a.first_name = b.first_name AND a.last_name = b.last_name AND a.birth_year = b.birth_year
               AND (a.dob = b.dob OR a.dob_granularity <> 'full' OR b.dob_granularity <> 'full'))"""
    visible = "(a.birth_year IS NOT NULL AND b.birth_year IS NOT NULL)"
    q = f"""
        SELECT count(*) FILTER (WHERE {visible}),
               count(*) FILTER (WHERE {visible} AND coalesce({rule}, false))
        FROM {{t}} t
        JOIN registrations a ON a.state = t.state_l AND a.state_voter_id = t.state_voter_id_l
        JOIN registrations b ON b.state = t.state_r AND b.state_voter_id = t.state_voter_id_r
        WHERE t.state_l <> t.state_r {{extra}}
    """
    dv, dx = con.execute(
        q.format(t="_t_dv", extra=f"AND t.state_l IN ({lst}) AND t.state_r IN ({lst})")
    ).fetchall()[0]
    dup_v, dup_x = con.execute(
        q.format(t="(SELECT * FROM _t_dup WHERE kind = 'cross_state')", extra="")
    ).fetchall()[0]
    return {"dup_visible": dup_v, "dup_exact": dup_x, "dv_visible": dv, "dv_exact": dx}


TOY_STATES = {"NC": "year", "OH": "full", "FL": "full", "NY": "full", "GA": "year", "TX": "full"}


def _pick(d: dict, raw: float | None = None) -> dict:
    out = {
        k: d.get(k) for k in ("estimate", "ci95", "se", "raw_rule_count", "expected_coincidences")
    }
    if out["raw_rule_count"] is None:
        out["raw_rule_count"] = raw
    return out


def run_seed(
    seed: int,
    people: int,
    cfg: SynthConfig,
    error_rate: float,
    toy: bool = False,
    model: Path | None = None,
    workdir: Path | None = None,
) -> dict:
    t0 = time.time()
    con = duckdb.connect()
    if toy:
        from voterolls.stats.toy import make_population

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
        from voterolls.link.run import link_registrations

        out = workdir / f"seed{seed}"
        link_registrations(con, out, model=model, blocking_analysis=False)
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
        "dv": _pick(dv["rule_net_of_coincidences_error_corrected"]),
        "dv_no_error_correction": dv["rule_net_of_coincidences_no_error_correction"]["estimate"],
        "votes": dv["votes_recorded_in_these_states"],
        "kappa": res["year_model_calibration"]["cross_state"]["kappa"],
        "purge_ratio": (res.get("crosscheck_purge") or {}).get(
            "legitimate_votes_blocked_per_double_vote_prevented"
        ),
    }
    if pairs is not None:
        row["dup_combined"] = _pick(cs["combined"])
        row["dup_splink"] = _pick(cs["splink_sum_of_probabilities"], raw=d["raw_rule_count"])
        row["calibration_ratio"] = cs["splink_sum_of_probabilities"][
            "calibration_ratio_exact_stratum"
        ]
        row["dv_combined"] = _pick(dv["headline"])
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
        "raw_rule_count_mean": float(raw.mean()),
        "raw_overcount_vs_truth": float(raw.sum() / tru.sum()) if tru.sum() else None,
        "seeds": len(rows),
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
        "--toy",
        action="store_true",
        help="use voterolls.stats.toy (6 states, concentrated names: a coincidence-heavy regime) instead of synth",
    )
    ap.add_argument("--write-methods", action="store_true")
    ap.add_argument(
        "--render-only",
        action="store_true",
        help="only re-render the saved results into docs/METHODS.md (no runs)",
    )
    args = ap.parse_args()
    if args.render_only:
        write_methods(json.loads(RESULTS.read_text())["configurations"])
        return
    cfg = (
        SynthConfig()
        if args.double_vote_rate is None
        else SynthConfig(double_vote_rate=args.double_vote_rate)
    )
    e = cfg.vote_record_error_rate if args.error_rate is None else args.error_rate
    label = args.label or (
        ("toy (coincidence-heavy), " if args.toy else "synth, ")
        + f"{args.people:,} people, double-vote rate {cfg.double_vote_rate:.5f}, "
        f"vote-record error {cfg.vote_record_error_rate:.1%} (assumed {e:.1%}), rule-based estimators"
    )
    linkage = args.linkage and not args.toy
    model = workdir = None
    if linkage:
        import tempfile

        from voterolls.link.run import link_registrations

        workdir = Path(tempfile.mkdtemp(prefix="validate_estimates_"))
    if linkage and args.model is not None:
        model = args.model
        label = label.replace("rule-based estimators", "rule-based + linkage estimators")
    elif linkage:
        con = duckdb.connect()
        ingest_like(con, generate_nation(args.people, 10_000, cfg))  # training nation, not scored
        t = time.time()
        link_registrations(con, workdir / "train", blocking_analysis=False)
        model = workdir / "train" / "model.json"
        print(f"trained the linkage model on seed 10000 in {time.time() - t:.0f}s", flush=True)
        label = label.replace("rule-based estimators", "rule-based + linkage estimators")
    rows = []
    for seed in range(args.seeds):
        r = run_seed(seed, args.people, cfg, e, toy=args.toy, model=model, workdir=workdir)
        rows.append(r)
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
    entry = {
        "label": label,
        "people": args.people,
        "seeds": args.seeds,
        "config": {
            "double_vote_rate": cfg.double_vote_rate,
            "vote_record_error_rate": cfg.vote_record_error_rate,
        },
        "assumed_error_rate": e,
        "command": "bench/validate_estimates.py " + " ".join(sys.argv[1:]),
        "summary": summary,
        "rows": rows,
    }
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    existing = json.loads(RESULTS.read_text()) if RESULTS.exists() else {"configurations": []}
    existing["configurations"] = [c for c in existing["configurations"] if c["label"] != label] + [
        entry
    ]
    RESULTS.write_text(json.dumps(existing, indent=1) + "\n")
    md = table_md(existing["configurations"])
    print(md)
    if args.write_methods:
        write_methods(existing["configurations"])


def write_methods(configurations: list[dict]) -> None:
    """Put the validation table between the markers in docs/METHODS.md."""
    if not METHODS.exists():
        return
    md = table_md(configurations)
    cmds = "\n".join(f"    .venv/bin/python {c['command']}" for c in configurations)
    text = METHODS.read_text()
    a, b = "<!-- validation:begin -->", "<!-- validation:end -->"
    if a in text and b in text:
        head, rest = text.split(a, 1)
        _, tail = rest.split(b, 1)
        METHODS.write_text(head + a + "\nCommands:\n\n" + cmds + "\n\n" + md + "\n" + b + tail)


if __name__ == "__main__":
    main()
