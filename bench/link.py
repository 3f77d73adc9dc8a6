"""Linkage benchmark: wall time, CPU time, peak memory, comparisons per record, F1 vs truth.

Builds a synthetic nation (``voterolls.synth.generate_nation``), turns it into
lawful normalised registrations as ingest would (``bench.synthetic_registrations``),
links it on DuckDB and evaluates cross-state duplicates against the truth by
DOB granularity, with the Crosscheck rule beside it.

    .venv/bin/python bench/link.py --people 100000                 # ~100k registrations
    .venv/bin/python bench/link.py --people 1000000 --tokens all
    .venv/bin/python bench/link.py --people 5000000 --cache /tmp/vr_nation_5m
    .venv/bin/python bench/link.py --table                         # print the saved results

Timing covers ``link_registrations`` only (prepare, train, blocking analysis,
predict, prior, pairs, clusters); generation and evaluation are reported
apart.  Memory: ``link_peak_rss_mb`` is the largest resident set sampled
(psutil, every 0.2 s) while linking, including this process's share of the
registrations table; ``process_peak_rss_mb`` is the process's lifetime peak
(``getrusage``), which includes generating the nation unless ``--cache`` held
it already.  The load average (1, 5, 15 min) is recorded before and after,
because on a shared machine wall time tracks the load and CPU time does not.

``--cache DIR`` keeps the generated registrations (with sealed tokens for every
state; ``--tokens none`` nulls them, which is what ingest without tokens gives)
and the truth, so a second run at the same size and seed skips generation.

Results are merged into ``bench/results/link.json`` keyed by engine, size and
token scenario; a table of every saved run is printed at the end.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import sys
import tempfile
import threading
import time
from pathlib import Path

import duckdb
import pyarrow.parquet as pq

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.synthetic_registrations import load_nation_registrations  # noqa: E402
from voterolls.link.blocking import DEFAULT_BLOCK_CAP  # noqa: E402
from voterolls.link.evaluate import evaluate  # noqa: E402
from voterolls.link.run import LinkRequest, link_registrations  # noqa: E402

RESULTS = ROOT / "bench" / "results" / "link.json"


def _process_peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def _cpu_seconds() -> float:
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


def _load() -> list[float]:
    return [round(x, 2) for x in os.getloadavg()]


class RssSampler:
    """Largest resident set of this process while running (sampled; psutil)."""

    def __init__(self, interval: float = 0.2) -> None:
        import psutil

        self._proc = psutil.Process()
        self._interval = interval
        self.peak = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            self.peak = max(self.peak, self._proc.memory_info().rss)
            self._stop.wait(self._interval)

    def __enter__(self) -> RssSampler:
        self.peak = self._proc.memory_info().rss
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()
        self.peak = max(self.peak, self._proc.memory_info().rss)


def load_registrations(
    con: duckdb.DuckDBPyConnection,
    people: int,
    seed: int,
    tokens: str,
    cache: Path | None,
    truth_dir: Path,
) -> tuple[int, float, bool]:
    """Create table ``registrations`` in ``con`` and write the truth; return (rows, seconds, from_cache)."""
    t0 = time.perf_counter()
    regs = cache / "registrations.parquet" if cache else None
    pairs = cache / "duplicate_pairs.parquet" if cache else None
    meta = cache / "meta.json" if cache else None
    want = {"people": people, "seed": seed}
    hit = bool(
        cache
        and regs.is_file()
        and pairs.is_file()
        and meta.is_file()
        and json.loads(meta.read_text()) == want
    )
    if not hit:
        from voterolls.synth.nation import generate_nation

        nation = generate_nation(people, seed)
        states = nation.states() if (tokens == "all" or cache) else None
        load_nation_registrations(con, nation, token_states=states)
        truth = nation.truth["duplicate_pairs"]
        del nation
        if cache:
            cache.mkdir(parents=True, exist_ok=True)
            q = str(regs).replace("'", "''")
            con.execute(f"COPY registrations TO '{q}' (FORMAT PARQUET)").fetchall()
            pq.write_table(truth, pairs)
            meta.write_text(json.dumps(want))
        pq.write_table(truth, truth_dir / "duplicate_pairs.parquet")
    else:
        q = str(regs).replace("'", "''")
        con.execute(f"CREATE OR REPLACE TABLE registrations AS SELECT * FROM read_parquet('{q}')")
        pq.write_table(pq.read_table(pairs), truth_dir / "duplicate_pairs.parquet")
    if tokens == "none":
        con.execute("UPDATE registrations SET dob_token = NULL, ssn4_token = NULL").fetchall()
    n = int(con.execute("SELECT count(*) FROM registrations").fetchall()[0][0])
    return n, time.perf_counter() - t0, hit


def _fmt(v, spec: str = "") -> str:
    return "-" if v is None else format(v, spec)


def _label(r: dict) -> str:
    """Token scenario, +J for the joint name level, +cN for a non-default block cap."""
    cap = r.get("block_cap")
    return (
        r["tokens"]
        + ("+J" if r.get("joint_names") else "")
        + (f"+c{cap}" if cap not in (None, DEFAULT_BLOCK_CAP) else "")
    )


def print_table(results: dict) -> None:
    """One line per saved run, smallest first."""
    head = (
        f"{'registrations':>13} {'tokens':>6} {'wall s':>7} {'CPU s':>7} {'load 1m':>12} "
        f"{'link RSS MB':>11} {'cmp/rec':>7} {'F1 full':>7} {'F1 year':>7} {'F1 none':>7} {'F1 all':>6}"
    )
    print(head)
    print("-" * len(head))
    rows = sorted(
        results.values(), key=lambda r: (r.get("engine", ""), r["registrations"], r["tokens"])
    )
    for r in rows:
        f1 = r.get("f1_by_granularity", {})
        load = r.get("load_average_before_after")
        load_s = (
            "-" if not load else "-".join(f"{x[0] if isinstance(x, list) else x:.1f}" for x in load)
        )
        rss = r.get("link_peak_rss_mb", r.get("peak_rss_mb"))
        print(
            f"{r['registrations']:>13,} {_label(r):>6} {_fmt(r['link_seconds'], '.1f'):>7} "
            f"{_fmt(r.get('link_cpu_seconds'), '.1f'):>7} {load_s:>12} {_fmt(rss, ',.0f'):>11} "
            f"{_fmt(r['comparisons_per_record'], '.2f'):>7} {_fmt(f1.get('full'), '.4f'):>7} "
            f"{_fmt(f1.get('year'), '.4f'):>7} {_fmt(f1.get('none'), '.4f'):>7} {_fmt(f1.get('all'), '.4f'):>6}"
            + (f"  ({r['note']})" if r.get("note") else "")
        )


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
    ap.add_argument("--memory-limit", default=None, help="DuckDB memory_limit, e.g. 8GB")
    ap.add_argument(
        "--block-cap", type=int, default=None, help="capped block size (default: the library's)"
    )
    ap.add_argument(
        "--joint-names",
        action="store_true",
        help="experimental joint full-name level (see docs/LINKAGE.md, Known limits)",
    )
    ap.add_argument(
        "--cache", type=Path, default=None, help="keep / reuse generated registrations here"
    )
    ap.add_argument("--out", type=Path, default=RESULTS)
    ap.add_argument("--keep", type=Path, default=None, help="keep the link output here")
    ap.add_argument("--no-save", action="store_true", help="do not write the results JSON")
    ap.add_argument("--table", action="store_true", help="only print the saved results table")
    args = ap.parse_args(argv)

    if args.table:
        print_table(json.loads(args.out.read_text()) if args.out.is_file() else {})
        return 0

    work = Path(args.keep) if args.keep else Path(tempfile.mkdtemp(prefix="vr_link_bench_"))
    (work / "truth").mkdir(parents=True, exist_ok=True)
    con = duckdb.connect()
    n_regs, t_gen, cached = load_registrations(
        con, args.people, args.seed, args.tokens, args.cache, work / "truth"
    )

    kwargs: dict = {
        "threads": args.threads,
        "memory_limit": args.memory_limit,
        "joint_names": args.joint_names,
    }
    if args.threshold is not None:
        kwargs["threshold"] = args.threshold
    if args.block_cap is not None:
        kwargs["block_cap"] = args.block_cap
    load1 = _load()
    t1, c1 = time.perf_counter(), _cpu_seconds()
    with RssSampler() as rss:
        res = link_registrations(con, LinkRequest(work / "link", **kwargs))
    t_link, cpu_link = time.perf_counter() - t1, _cpu_seconds() - c1
    load2 = _load()

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
        "load_average_before_after": [load1, load2],
        "link_stage_seconds": res.seconds,
        "link_stage_cpu_seconds": res.cpu_seconds,
        "generate_and_load_seconds": round(t_gen, 1),
        "generated_from_cache": cached,
        "evaluate_seconds": round(t_eval, 1),
        "link_peak_rss_mb": round(rss.peak / 2**20, 0),
        "process_peak_rss_mb": round(_process_peak_rss_mb(), 0),
        "candidate_pairs": res.candidate_pairs,
        "comparisons_per_record": res.comparisons_per_record,
        "blocking_analysis": res.blocking,
        "prior": res.prior,
        "f1_by_granularity": {c: ev["model"][c]["f1"] for c in ("full", "year", "none", "all")},
        "model": ev["model"],
        "crosscheck": ev["crosscheck"],
        "scored_recall": ev["scored_recall"],
        "calibration": ev["calibration"],
        "calibration_by_granularity": ev.get("calibration_by_granularity"),
        "machine": {
            "cpus": os.cpu_count(),
            "python": platform.python_version(),
            "duckdb": duckdb.__version__,
            "note": "2-core machine shared with other engineers' jobs; wall times are upper bounds",
        },
        "command": "bench/link.py " + " ".join(argv if argv is not None else sys.argv[1:]),
    }
    results = {}
    if args.out.is_file():
        try:
            results = json.loads(args.out.read_text())
        except json.JSONDecodeError:
            results = {}
    record["joint_names"] = args.joint_names
    record["block_cap"] = res.blocking.get("block_cap") if res.blocking else args.block_cap
    key = f"duckdb_{args.people}_{args.tokens}" + ("_joint" if args.joint_names else "")
    results[key + (f"_cap{args.block_cap}" if args.block_cap is not None else "")] = record
    if not args.no_save:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(results, indent=2) + "\n")

    f1 = record["f1_by_granularity"]
    cc = ev["crosscheck"]["all"]
    print(
        f"{n_regs:,} registrations: link {t_link:.1f}s wall / {cpu_link:.1f}s CPU (load {load1} -> {load2}), "
        f"link peak RSS {record['link_peak_rss_mb']:.0f} MB (process {record['process_peak_rss_mb']:.0f} MB), "
        f"{res.comparisons_per_record:.2f} comparisons/record; F1 full {f1['full']} year {f1['year']} "
        f"none {f1['none']} all {f1['all']}; Crosscheck P {cc['precision']} R {cc['recall']}"
    )
    print(
        "stages wall / CPU s: "
        + ", ".join(
            f"{k} {v:.1f} / {res.cpu_seconds.get(k, 0):.1f}" for k, v in res.seconds.items()
        )
    )
    print(
        "calibration: "
        + "; ".join(
            f"{c['bin']}: {c['expected_true']:.0f} expected / {c['observed_true']} observed of {c['pairs']}"
            for c in ev["calibration"]
        )
    )
    print()
    print_table(results)
    if not args.no_save:
        print(f"-> {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
