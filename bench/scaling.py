"""The scaling curve (time, memory, comparisons per record against N) and the 200M projection.

    .venv/bin/python bench/scaling.py                       # re-derive from bench/results/run_all.json
    .venv/bin/python bench/scaling.py --run 20000,100000    # measure voterolls at these sizes first

The curve is the ``voterolls`` rows of ``bench/run_all.py`` (DuckDB engine,
one child process per size, same generator and seed).  The projection to a
national file of ~200 million registrations uses only measured per-record
costs and says so for every number:

* **comparisons per record** grow with N (more strangers share a date of
  birth and a surname).  A power law ``cpr = a * N^k`` is fitted to the
  measured points and extrapolated; the capped blocking keys bound the
  capped rules' share (a capped block holds at most ``cap`` registrations), so
  the power law is an upper-side guess for them.
* **time** is split by what it is proportional to, using the stage times
  ``link_registrations`` reports: *record* stages (prepare, load, blocking
  analysis, prior, clusters) cost ``alpha`` core-seconds per registration,
  *pair* stages (predict, write pairs) ``beta`` core-seconds per candidate
  pair, and training is a fixed cost (Splink samples at most ``u_max_pairs``
  / ``em_max_pairs`` pairs whatever N is).  Core-seconds are wall seconds
  times the cores the engine used (2 here), the conservative reading on a
  shared machine.  ``alpha`` and ``beta`` are least-squares slopes over the
  measured sizes (marginal costs: the fixed overheads fall into the
  intercept); with one size, the ratio at that size (an upper side).
* **memory**: peak RSS per registration at the largest N, for the
  one-machine reading; for Spark the input bytes per registration on disk.

Nothing here is a measurement at 200M: docs/SCALE.md states which numbers
are measured and which projected.  The projection is a pure function of the
run's results: ``bench/run_all.py`` stores it in ``bench/results/scaling.json``
(``projection``: the per-record and per-pair costs, the comparisons-per-record
fit, the totals) and ``bench/scaling.py`` re-derives it from
``bench/results/run_all.json``; ``--write-docs`` rewrites the generated blocks
of docs/PERFORMANCE.md and docs/SCALE.md from that file without measuring
anything.
"""

from __future__ import annotations

import argparse
import math
import sys
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.common import RESULTS, fmt, md_table, print_table, read_json, size_label  # noqa: E402

NATIONAL = 200_000_000
RECORD_STAGES = ("prepare", "load", "blocking_analysis", "prior", "cluster")
PAIR_STAGES = ("predict", "write_pairs")
FIXED_STAGES = ("train",)


def curve(runs: list[dict[str, Any]], method: str = "voterolls") -> list[dict[str, Any]]:
    """One point per size for ``method`` (ok runs only), sorted by N."""
    pts = [
        r
        for r in runs
        if r.get("method") == method and r.get("status") == "ok" and r.get("registrations")
    ]
    return sorted(pts, key=lambda r: r["registrations"])


def fit_power(xs: list[float], ys: list[float]) -> tuple[float, float] | None:
    """Least-squares ``y = a * x^k`` in log-log space; None with fewer than two usable points."""
    pts = [(math.log(x), math.log(y)) for x, y in zip(xs, ys, strict=True) if x > 0 and y > 0]
    if len(pts) < 2:
        return None
    mx = sum(p[0] for p in pts) / len(pts)
    my = sum(p[1] for p in pts) / len(pts)
    sxx = sum((p[0] - mx) ** 2 for p in pts)
    if sxx == 0:
        return None
    k = sum((p[0] - mx) * (p[1] - my) for p in pts) / sxx
    return math.exp(my - k * mx), k


def cpr_bound(run: dict[str, Any], target: int) -> float | None:
    """Upper-side comparisons per record at ``target`` from one run's per-rule blocking counts.

    A rule on a capped key (``bk_*``) contributes at most ``(cap - 1) / 2``
    comparisons per record however large N gets; any other rule (full DOB +
    name, tokens, name + ZIP) is charged as growing linearly with N (strangers
    sharing a date of birth and a name grow with N; true pairs only with the
    share of movers, which is constant), which overstates it.
    """
    b = run.get("blocking") or {}
    rules, n, cap = b.get("rules"), b.get("registrations"), b.get("block_cap")
    if not rules or not n or not cap:
        return None
    total = 0.0
    for r in rules:
        per = r["comparisons"] / n
        grown = per * target / n
        total += min(grown, (cap - 1) / 2) if '"bk_' in r["rule"] else grown
    return total


def _stage_sum(stages: dict[str, float], names: tuple[str, ...]) -> float:
    return float(sum(stages.get(s, 0.0) for s in names))


def fit_linear(xs: list[float], ys: list[float]) -> tuple[float, float]:
    """Least-squares ``y = c + s * x`` (intercept = fixed overhead, slope = marginal cost).

    With one point, or when noise makes the slope non-positive, falls back to
    the ratio at the largest x (no intercept) - the conservative reading.
    """
    if len(xs) >= 2:
        mx, my = sum(xs) / len(xs), sum(ys) / len(ys)
        sxx = sum((x - mx) ** 2 for x in xs)
        if sxx > 0:
            slope = sum((x - mx) * (y - my) for x, y in zip(xs, ys, strict=True)) / sxx
            if slope > 0:
                return my - slope * mx, slope
    i = max(range(len(xs)), key=lambda j: xs[j])
    return 0.0, ys[i] / xs[i] if xs[i] else 0.0


def _rates(pts: list[dict[str, Any]], cores: float) -> dict[str, float]:
    """Marginal core-seconds per registration (record stages) and per candidate pair."""
    ns = [float(p["registrations"]) for p in pts]
    cs = [float(p["candidate_pairs"]) for p in pts]
    rec = [_stage_sum(p.get("stages") or {}, RECORD_STAGES) * cores for p in pts]
    pair = [_stage_sum(p.get("stages") or {}, PAIR_STAGES) * cores for p in pts]
    rc, rs = fit_linear(ns, rec)
    pc, ps = fit_linear(cs, pair)
    return {"alpha": rs, "alpha_fixed": rc, "beta": ps, "beta_fixed": pc, "points": len(pts)}


def project(
    runs: list[dict[str, Any]],
    *,
    target: int = NATIONAL,
    cores_here: int = 2,
    cluster_cores: int = 256,
    spark_runs: list[dict[str, Any]] | None = None,
    input_bytes_per_record: float | None = None,
) -> dict[str, Any] | None:
    """Projection of the national job from the measured voterolls curve (see module docstring)."""
    pts = curve(runs)
    if not pts:
        return None
    big = pts[-1]
    n, c, st = big["registrations"], big["candidate_pairs"], big.get("stages") or {}
    fit = fit_power([p["registrations"] for p in pts], [p["comparisons_per_record"] for p in pts])
    cpr_here = c / n
    bound = cpr_bound(big, target)
    # one measured size gives no growth rate: fall back to the cap bound (upper side)
    cpr_power = fit[0] * target ** fit[1] if fit else (bound if bound is not None else cpr_here)
    cpr_target = min(cpr_power, bound) if bound is not None else cpr_power
    rates = _rates(pts, cores_here)
    fixed_s = _stage_sum(st, FIXED_STAGES)
    pairs_target = cpr_target * target
    core_s = rates["alpha"] * target + rates["beta"] * pairs_target + fixed_s * cores_here
    mem_c, mem_s = fit_linear(
        [float(p["registrations"]) for p in pts], [p["peak_rss_mib"] * 2**20 for p in pts]
    )
    out: dict[str, Any] = {
        "target_registrations": target,
        "basis_registrations": n,
        "basis_sizes": [p["registrations"] for p in pts],
        "basis": "duckdb",
        "cpr_points": [[p["registrations"], p["comparisons_per_record"]] for p in pts],
        "cpr_fit": {"a": fit[0], "k": round(fit[1], 4)} if fit else None,
        "cpr_measured_at_basis": round(cpr_here, 3),
        "cpr_power_law": round(cpr_power, 2),
        "cpr_cap_bound": round(bound, 2) if bound is not None else None,
        "cpr_projected": round(cpr_target, 2),
        "candidate_pairs_projected": round(pairs_target),
        "core_seconds_per_registration_record_stages": rates["alpha"],
        "core_seconds_per_pair": rates["beta"],
        "rate_fit_points": rates["points"],
        "train_seconds_fixed": fixed_s,
        "core_hours_projected_duckdb_rates": round(core_s / 3600, 1),
        "peak_rss_bytes_per_registration_marginal": round(mem_s, 1),
        "one_machine_peak_rss_gib_projected": round((mem_c + mem_s * target) / 2**30, 1),
        "cluster_cores_assumed": cluster_cores,
        "cluster_wall_hours_at_duckdb_rates": round(core_s / 3600 / cluster_cores, 2),
    }
    if input_bytes_per_record:
        out["input_bytes_per_registration"] = round(input_bytes_per_record, 1)
        out["input_gib_projected"] = round(input_bytes_per_record * target / 2**30, 1)
    sp = sorted(
        (r for r in (spark_runs or []) if r.get("status") == "ok"),
        key=lambda r: r["registrations"],
    )
    if sp:
        threads = sp[-1].get("local_threads") or cores_here
        s_rates = _rates(sp, threads)
        s_core = s_rates["alpha"] * target + s_rates["beta"] * pairs_target
        out["spark"] = {
            "basis_sizes": [r["registrations"] for r in sp],
            "core_seconds_per_registration_record_stages": s_rates["alpha"],
            "core_seconds_per_pair": s_rates["beta"],
            "core_hours_projected": round(s_core / 3600, 1),
            "cluster_wall_hours": round(s_core / 3600 / cluster_cores, 2),
            "note": "scoring with a model trained once; "
            + (
                "marginal rates fitted over the measured sizes"
                if s_rates["points"] > 1
                else "one size measured, so its fixed local-mode overheads (JVM start, per-job "
                "scheduling) are charged per record: an upper bound"
            ),
        }
    return out


def scaling_table(runs: list[dict[str, Any]]) -> str:
    rows = []
    for p in curve(runs):
        n = p["registrations"]
        rows.append(
            [
                f"{n:,}",
                fmt(p["seconds"]),
                fmt(1000 * p["seconds"] / n, 2),
                fmt(p["peak_rss_mib"], 0),
                fmt(p["comparisons_per_record"], 2),
                fmt(p.get("f1"), 3),
                fmt(p.get("load_before")),
            ]
        )
    return md_table(
        [
            "registrations",
            "voterolls link s",
            "ms per registration",
            "peak RSS MiB",
            "comparisons / record",
            "F1",
            "load avg at start",
        ],
        rows,
    )


def stages_text(runs: list[dict[str, Any]]) -> str:
    """voterolls stage seconds per size (wall), from ``link_registrations``'s report."""
    lines = ["voterolls stage seconds (wall):", ""]
    for p in curve(runs):
        st = {k: v for k, v in (p.get("stages") or {}).items() if k != "total"}
        lines.append(
            f"* {p['registrations']:,}: " + ", ".join(f"{k} {v:.1f}" for k, v in st.items())
        )
    return "\n".join(lines)


def projection_text(pr: dict[str, Any] | None) -> str:
    if not pr:
        return "No projection: no voterolls run succeeded."
    fit = pr.get("cpr_fit")
    lines = [
        f"Projection to {pr['target_registrations']:,} registrations from the measured run at "
        f"{pr['basis_registrations']:,} (projected, not measured):",
        "",
        f"* comparisons per record: {pr['cpr_measured_at_basis']} measured at "
        f"{size_label(pr['basis_registrations'])}; power-law fit over the measured sizes "
        + (f"cpr ∝ N^{fit['k']}" if fit else "(one point: held constant)")
        + f" gives {pr['cpr_power_law']} at 200M; the blocking caps bound it at "
        + f"{pr['cpr_cap_bound']} (capped rules at most (cap-1)/2 per record, the others grown "
        + "linearly with N); the projection takes the smaller, "
        + f"{pr['cpr_projected']}, i.e. {pr['candidate_pairs_projected']:,} candidate pairs.",
        f"* marginal cost rates (2 cores, wall x cores, least-squares slope over "
        f"{pr['rate_fit_points']} measured size(s)): "
        f"{pr['core_seconds_per_registration_record_stages'] * 1e6:.1f} core-µs per registration "
        f"(prepare, load, blocking analysis, prior, clusters), "
        f"{pr['core_seconds_per_pair'] * 1e6:.1f} core-µs per candidate pair (predict, write), "
        f"training {pr['train_seconds_fixed']:.0f} s (sampled, fixed).",
        f"* at DuckDB rates: {pr['core_hours_projected_duckdb_rates']:,} core-hours; on "
        f"{pr['cluster_cores_assumed']} cores with perfect scaling "
        f"{pr['cluster_wall_hours_at_duckdb_rates']} h.",
        f"* one machine: peak RSS grows by {pr['peak_rss_bytes_per_registration_marginal']:.0f} bytes "
        f"per registration (slope over the measured sizes), ~{pr['one_machine_peak_rss_gib_projected']:,} "
        "GiB at 200M if DuckDB did not spill - hence the Spark path (docs/SCALE.md).",
    ]
    if pr.get("input_gib_projected"):
        lines.append(
            f"* lawful registrations on disk (zstd Parquet, the linkage's source): "
            f"{pr['input_bytes_per_registration']:.0f} bytes per registration, "
            f"~{pr['input_gib_projected']} GiB at 200M."
        )
    sp = pr.get("spark")
    if sp:
        lines.append(
            f"* at Spark local-mode rates (measured at {', '.join(f'{x:,}' for x in sp['basis_sizes'])}): "
            f"{sp['core_hours_projected']:,} core-hours, {sp['cluster_wall_hours']} h on "
            f"{pr['cluster_cores_assumed']} cores ({sp['note']})."
        )
    return "\n".join(lines)


def snapshot_table(res: dict[str, Any]) -> str:
    """docs/SCALE.md "Measured here versus projected": every figure with its status."""
    runs, pr = res.get("runs", []), res.get("projection") or {}
    rows: list[list[str]] = []
    for p in curve(runs):
        rows.append(
            [
                f"voterolls link (DuckDB), {p['registrations']:,} registrations",
                f"{p['seconds']:,.1f} s wall, peak {p['peak_rss_mib']:,.0f} MiB, "
                f"{p['comparisons_per_record']:.2f} comparisons / record, F1 {fmt(p.get('f1'), 3)}",
                "measured",
            ]
        )
    for r in runs:
        if r.get("method") != "spark":
            continue
        if r.get("status") == "ok":
            rows.append(
                [
                    f"voterolls link (Spark local[{r.get('local_threads', 2)}]), "
                    f"{r['registrations']:,} registrations",
                    f"{r['seconds']:,.1f} s wall, peak {r['peak_rss_mib']:,.0f} MiB (with JVM), "
                    f"F1 {fmt(r.get('f1'), 3)}",
                    "measured",
                ]
            )
        else:
            rows.append([f"voterolls on Spark, ~{r['size']:,}", r["status"], "not measured"])
    for r in runs:
        if r.get("method") == "splink_docs" and r.get("candidate_pairs"):
            state = "measured" if r.get("status") == "ok" else "pair count measured, time projected"
            t = (
                f"{r['seconds']:,.1f} s"
                if r.get("status") == "ok"
                else f"~{fmt(r.get('projected_seconds'), 0)} s projected"
            )
            rows.append(
                [
                    f"Splink docs example blocking, {r.get('registrations', r['size']):,} registrations",
                    f"{r['candidate_pairs']:,} candidate pairs ({r['comparisons_per_record']:.1f} / record), {t}",
                    state,
                ]
            )
    for st in res.get("steps") or []:
        if st.get("kind") in ("crosscheck", "prepare") and st.get("status") == "ok":
            what = {
                "prepare": "synthetic nation + policy + normalisation (bench/peers.py prepare)",
                "crosscheck": "Crosscheck rule, exact DuckDB join (child process, incl. scoring)",
            }[st["kind"]]
            rows.append(
                [
                    f"{what}, {st.get('n') or st['size']:,} registrations",
                    f"{st['seconds']:,.1f} s wall, peak {st['peak_rss_mib']:,.0f} MiB, load "
                    f"{st['load_start'][0]:g} -> {st['load_end'][0]:g}",
                    "measured",
                ]
            )
    ing = (res.get("ingest") or {}).get("result") or read_json(RESULTS / "ingest.json")
    if ing and ing.get("ingest"):
        rps = ing["ingest"]["rows_per_s"]
        rows.append(
            [
                f"ingest (bench/ingest.py), {ing['rows']:,} NC rows",
                f"{rps:,} rows/s on 2 cores ({ing['date']})",
                "measured (by bench/ingest.py)",
            ]
        )
        rows.append(
            [
                "ingest of 200M registrations",
                f"{NATIONAL / rps / 3600:,.1f} h on one such machine; ~{NATIONAL / rps * 2 / 3600:,.0f} "
                "core-hours, spread over states",
                "projected (linear in rows)",
            ]
        )
    if pr:
        rows += [
            [
                "marginal cost, record stages",
                f"{pr['core_seconds_per_registration_record_stages'] * 1e6:,.1f} core-µs / registration",
                f"derived from {pr['rate_fit_points']} measured sizes",
            ],
            [
                "marginal cost, pair stages",
                f"{pr['core_seconds_per_pair'] * 1e6:,.1f} core-µs / candidate pair",
                f"derived from {pr['rate_fit_points']} measured sizes",
            ],
            [
                "comparisons per record at 200M",
                f"{pr['cpr_projected']} (power law {pr['cpr_power_law']}, cap bound {pr['cpr_cap_bound']})",
                "projected",
            ],
            [
                "candidate pairs at 200M",
                f"{pr['candidate_pairs_projected']:,}",
                "projected",
            ],
            [
                "linkage at 200M, DuckDB rates",
                f"{pr['core_hours_projected_duckdb_rates']:,} core-hours; "
                f"{pr['cluster_wall_hours_at_duckdb_rates']} h on {pr['cluster_cores_assumed']} cores "
                "(perfect scaling: a floor)",
                "projected",
            ],
            [
                "one machine, peak memory at 200M (no spilling)",
                f"~{pr['one_machine_peak_rss_gib_projected']:,} GiB",
                "projected",
            ],
        ]
        if pr.get("spark"):
            sp = pr["spark"]
            rows.append(
                [
                    "linkage at 200M, Spark local-mode rates",
                    f"{sp['core_hours_projected']:,} core-hours; {sp['cluster_wall_hours']} h on "
                    f"{pr['cluster_cores_assumed']} cores",
                    "projected (" + sp["note"] + ")",
                ]
            )
    m = res.get("machine_start", {})
    head = (
        f"Run of {res.get('when', '?')} (`{res.get('command', '?')}`), {m.get('cpus')} cores, "
        f"load average at start {m.get('load_avg_1_5_15', ['?'])[0]}"
        + (f", {res['total_minutes']:.1f} min in all" if res.get("total_minutes") else "")
        + ".  Per-record costs and the projection are read from this run's "
        "`bench/results/scaling.json` (`projection`); `bench/scaling.py --write-docs` "
        "re-renders this block from `bench/results/run_all.json`."
    )
    return "\n\n".join(
        [head, md_table(["quantity", "value", "status"], rows, align="lll"), conditions(res)]
    )


def conditions(res: dict[str, Any]) -> str:
    """The machine's load while the measured steps ran (``os.getloadavg`` at each step's start/end)."""
    steps = [s for s in res.get("steps") or [] if s.get("load_start")]
    if not steps:  # a results file from before steps were recorded: the method rows' loads
        steps = [
            {
                "step": f"{r['method']} {size_label(r['size'])}",
                "load_start": [r["load_before"]],
                "load_end": [r.get("load_after", r["load_before"])],
            }
            for r in res.get("runs") or []
            if r.get("load_before") is not None and r.get("method") != "recordlinkage_ecm"
        ]
    if not steps:
        return "Load during the steps: not recorded by this run."
    loads = [x for s in steps for x in (s["load_start"][0], (s.get("load_end") or [0])[0])]
    busy = [
        f"{s['step']} ({s['load_start'][0]:g} -> {(s.get('load_end') or ['?'])[0]})"
        for s in steps
        if max(s["load_start"][0], (s.get("load_end") or [0])[0])
        > (res.get("machine_start") or {}).get("cpus", 2)
    ]
    text = (
        f"Conditions: 1-minute load average between {min(loads):g} and {max(loads):g} at the "
        "starts and ends of the measured steps (2 cores; every step's figures are in "
        'docs/PERFORMANCE.md, "Benchmark run").'
    )
    if busy:
        text += (
            "  Steps that started or ended with more runnable work than cores, whose times are "
            "therefore upper bounds for this machine: " + ", ".join(busy) + "."
        )
    else:
        text += "  No step saw a load above the number of cores."
    return text


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--results", type=Path, default=RESULTS / "run_all.json")
    ap.add_argument(
        "--run",
        default=None,
        help="comma-separated sizes: measure voterolls only at these (results in "
        "bench/results/scaling_only/, docs untouched)",
    )
    ap.add_argument("--cluster-cores", type=int, default=256)
    ap.add_argument(
        "--write-docs",
        action="store_true",
        help="rewrite the generated blocks of docs/PERFORMANCE.md and docs/SCALE.md from --results",
    )
    args = ap.parse_args(argv)
    if args.run:
        from bench import run_all

        # a voterolls-only run: its own results directory, docs untouched
        return run_all.main(
            [
                "--sizes",
                "",
                "--scaling-sizes",
                args.run,
                "--spark-sizes",
                "",
                "--optional-sizes",
                "",
                "--optional-spark-sizes",
                "",
                "--no-ingest",
                "--no-docs",
                "--results",
                str(args.results.parent / "scaling_only"),
            ]
        )
    res = read_json(args.results, {})
    runs = res.get("runs", [])
    pr = project(
        runs,
        cluster_cores=args.cluster_cores,
        spark_runs=[r for r in runs if r.get("method") == "spark"],
        input_bytes_per_record=res.get("input_bytes_per_registration"),
    )
    pts = curve(runs)
    print_table(
        ["N", "s", "peak MiB", "cpr", "F1"],
        [
            [
                f"{p['registrations']:,}",
                p["seconds"],
                p["peak_rss_mib"],
                p["comparisons_per_record"],
                p.get("f1"),
            ]
            for p in pts
        ],
        title="voterolls scaling",
    )
    print(projection_text(pr))
    if args.write_docs:
        from bench import run_all

        run_all.write_docs(res | {"projection": pr})
        print("rewrote the generated blocks of docs/PERFORMANCE.md and docs/SCALE.md")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
