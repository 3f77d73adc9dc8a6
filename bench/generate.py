"""Benchmark ``voterolls.synth.generate_nation`` (and optionally ``write_nation``).

Usage::

    .venv/bin/python bench/generate.py --registrations 1000000
    .venv/bin/python bench/generate.py --registrations 200000 --write /tmp/nation

Prints registrations per second and peak memory (max RSS of this process),
and saves them to ``bench/results/generate.json``.  Figures are only what
this run measured on this machine; record the machine's load with them.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import resource
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import psutil
import pyarrow as pa
from rich.console import Console
from rich.table import Table

ROOT = Path(__file__).resolve().parent
sys.path.insert(0, str(ROOT.parent))

from voterolls.synth import SynthConfig, generate_nation  # noqa: E402
from voterolls.synth.writer import write_nation  # noqa: E402


def _peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux: KiB


def main(argv: list[str] | None = None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument(
        "--registrations", type=int, default=1_000_000, help="target number of registrations"
    )
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument(
        "--write", type=Path, default=None, help="also write the nation to this (empty) directory"
    )
    ap.add_argument("--write-tmp", action="store_true", help="also write to a temporary directory")
    ap.add_argument("--out", type=Path, default=ROOT / "results" / "generate.json")
    args = ap.parse_args(argv)

    cfg = SynthConfig()
    people = max(
        1,
        round(args.registrations / (1 + cfg.stale_cross_state_rate + cfg.in_state_duplicate_rate)),
    )
    rss_before = psutil.Process().memory_info().rss / 2**20
    t0, c0 = time.perf_counter(), time.process_time()
    nation = generate_nation(people, args.seed, cfg)
    gen_s, gen_cpu = time.perf_counter() - t0, time.process_time() - c0
    regs = nation.registrations.num_rows
    result = {
        "when_utc": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "people": people,
        "registrations": regs,
        "vote_records": nation.vote_history.num_rows,
        "generate_seconds": round(gen_s, 2),
        "registrations_per_second": round(regs / gen_s),
        "registrations_per_minute": round(60 * regs / gen_s),
        "generate_cpu_seconds": round(gen_cpu, 2),  # all threads; wall time suffers on a shared box
        "peak_rss_mb_after_generate": round(_peak_rss_mb(), 1),
        "rss_mb_before": round(rss_before, 1),
        "arrow_bytes_mb": round(
            sum(t.nbytes for t in (nation.registrations, nation.vote_history, nation.identifiers))
            / 2**20
            + sum(t.nbytes for t in nation.truth.values()) / 2**20,
            1,
        ),
        "machine": {
            "cpus": os.cpu_count(),
            "load_avg_1m_at_start": round(os.getloadavg()[0], 2),
            "python": platform.python_version(),
            "numpy": np.__version__,
            "pyarrow": pa.__version__,
        },
    }
    target = args.write
    tmp = None
    if target is None and args.write_tmp:
        tmp = tempfile.TemporaryDirectory()
        target = Path(tmp.name) / "nation"
    if target is not None:
        t1 = time.perf_counter()
        write_nation(nation, target)
        w_s = time.perf_counter() - t1
        result["write_seconds"] = round(w_s, 2)
        result["write_registrations_per_second"] = round(regs / w_s)
        result["peak_rss_mb_after_write"] = round(_peak_rss_mb(), 1)
    if tmp is not None:
        tmp.cleanup()

    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2, sort_keys=True) + "\n", encoding="utf-8")

    table = Table(title="voterolls generate benchmark")
    table.add_column("measure")
    table.add_column("value", justify="right")
    for key in (
        "people",
        "registrations",
        "generate_seconds",
        "registrations_per_second",
        "registrations_per_minute",
        "generate_cpu_seconds",
        "peak_rss_mb_after_generate",
        "write_seconds",
        "write_registrations_per_second",
        "peak_rss_mb_after_write",
    ):
        if key in result:
            v = result[key]
            table.add_row(key, f"{v:,}" if isinstance(v, int) else str(v))
    Console().print(table)
    Console().print(f"saved {args.out}")
    return result


if __name__ == "__main__":
    main()
