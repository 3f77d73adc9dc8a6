"""Linkage benchmark: wall time, peak memory, comparisons per record, F1 vs truth.

Builds a synthetic nation (``voterolls.synth.generate_nation``), turns it into
lawful normalised registrations as ingest would (``voterolls.link.synthetic``),
links it on DuckDB and evaluates cross-state duplicates against the truth by
DOB granularity, with the Crosscheck rule beside it.

    .venv/bin/python bench/link.py --people 100000            # ~100k registrations
    .venv/bin/python bench/link.py --people 1000000 --tokens all

Timing covers ``link_registrations`` only (prepare, train, blocking analysis,
predict, prior, pairs, clusters); generation and evaluation are reported
apart.  Peak memory is the process's peak RSS (``resource.getrusage``), which
includes generating the nation.  Results are appended to
``bench/results/link.json`` keyed by size and token scenario.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import sys
import tempfile
import time
from pathlib import Path

import duckdb
import pyarrow.parquet as pq

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from voterolls.link.evaluate import evaluate  # noqa: E402
from voterolls.link.run import link_registrations  # noqa: E402
from voterolls.link.synthetic import load_nation_registrations  # noqa: E402
from voterolls.synth.nation import generate_nation  # noqa: E402


def _peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def _cpu_seconds() -> float:
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--people", type=int, default=100_000)
    ap.add_argument("--seed", type=int, default=7)
    ap.add_argument(
        "--tokens",
        choices=("none", "all"),
        default="none",
        help="states that send sealed DOB/SSN4 tokens: none, or all (ERIC-style)",
    )
    ap.add_argument("--threshold", type=float, default=None)
    ap.add_argument("--threads", type=int, default=None)
    ap.add_argument("--out", type=Path, default=ROOT / "bench" / "results" / "link.json")
    ap.add_argument("--keep", type=Path, default=None, help="keep the link output here")
    args = ap.parse_args(argv)

    t0 = time.perf_counter()
    nation = generate_nation(args.people, args.seed)
    con = duckdb.connect()
    states = nation.states() if args.tokens == "all" else None
    n_regs = load_nation_registrations(con, nation, token_states=states)
    t_gen = time.perf_counter() - t0

    work = Path(args.keep) if args.keep else Path(tempfile.mkdtemp(prefix="vr_link_bench_"))
    (work / "truth").mkdir(parents=True, exist_ok=True)
    pq.write_table(nation.truth["duplicate_pairs"], work / "truth" / "duplicate_pairs.parquet")
    del nation

    kwargs = {"threads": args.threads}
    if args.threshold is not None:
        kwargs["threshold"] = args.threshold
    t1, c1 = time.perf_counter(), _cpu_seconds()
    load1 = os.getloadavg()[0]
    res = link_registrations(con, work / "link", **kwargs)
    t_link, cpu_link = time.perf_counter() - t1, _cpu_seconds() - c1
    load2 = os.getloadavg()[0]

    t2 = time.perf_counter()
    ev = evaluate(con, work, work / "link" / "pairs.parquet", threshold=res.threshold)
    t_eval = time.perf_counter() - t2

    record = {
        "people": args.people,
        "registrations": n_regs,
        "tokens": args.tokens,
        "engine": res.engine,
        "threshold": res.threshold,
        "link_seconds": round(t_link, 1),
        "link_cpu_seconds": round(cpu_link, 1),
        "load_average_before_after": [round(load1, 1), round(load2, 1)],
        "link_stage_seconds": res.seconds,
        "generate_and_load_seconds": round(t_gen, 1),
        "evaluate_seconds": round(t_eval, 1),
        "peak_rss_mb": round(_peak_rss_mb(), 0),
        "candidate_pairs": res.candidate_pairs,
        "comparisons_per_record": res.comparisons_per_record,
        "blocking_analysis": res.blocking,
        "prior": res.prior,
        "f1_by_granularity": {c: ev["model"][c]["f1"] for c in ("full", "year", "none", "all")},
        "model": ev["model"],
        "crosscheck": ev["crosscheck"],
        "scored_recall": ev["scored_recall"],
        "calibration": ev["calibration"],
        "machine": {
            "cpus": os.cpu_count(),
            "python": platform.python_version(),
            "duckdb": duckdb.__version__,
            "note": "2-core machine shared with other engineers' jobs; wall times are upper bounds",
        },
    }
    results = {}
    if args.out.is_file():
        try:
            results = json.loads(args.out.read_text())
        except json.JSONDecodeError:
            results = {}
    results[f"duckdb_{args.people}_{args.tokens}"] = record
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(results, indent=2) + "\n")

    f1 = record["f1_by_granularity"]
    cc = ev["crosscheck"]["all"]
    print(
        f"{n_regs:,} registrations: link {t_link:.1f}s wall / {cpu_link:.1f}s CPU, peak {record['peak_rss_mb']:.0f} MB, "
        f"{res.comparisons_per_record:.2f} comparisons/record; F1 full {f1['full']} year {f1['year']} "
        f"none {f1['none']} all {f1['all']}; Crosscheck P {cc['precision']} R {cc['recall']} -> {args.out}"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
