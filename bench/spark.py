"""The Spark path: voterolls linkage on Apache Spark in local mode, on the same prepared data.

    .venv/bin/python bench/spark.py --data /tmp/d1M --out /tmp/o --model /tmp/o/voterolls/link/model.json
    .venv/bin/python bench/spark.py --data /tmp/d100k --out /tmp/o --train   # train on Spark too

``voterolls.link.run.link_registrations(engine="spark")`` runs Splink's SQL
on a ``local[N]`` Spark session (Splink's similarity jar for Jaro-Winkler;
``VOTEROLLS_SPARK_MASTER`` points it at a cluster instead, see docs/SCALE.md).

Two modes:

* ``--model M`` (what ``bench/run_all.py`` uses): score with the model the
  DuckDB engine trained on the same registrations.  Same parameters, so the
  F1 must equal DuckDB's up to Jaro-Winkler implementation differences at
  level boundaries; the time is Spark's cost for prepare, predict, pairs and
  clusters - the part that runs on a cluster at national scale, where the
  model is trained once on a sample.
* ``--train``: train on Spark as well (u sampling and EM in Spark SQL).

Prints one JSON line (bench/common.emit) with the time, stage times,
candidate pairs and the pairs file.  ``bench/run_all.py`` runs it as a
child process, so the peak memory reported includes the JVM.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.common import Timer, emit, load_registrations  # noqa: E402


def run_spark(
    data: Path, out: Path, *, model: Path | None, threads: int | None, driver_memory: str
) -> dict[str, Any]:
    os.environ.setdefault("VOTEROLLS_SPARK_DRIVER_MEMORY", driver_memory)
    from voterolls.link.run import LinkRequest, link_registrations

    con = load_registrations(data)
    n_threads = threads or os.cpu_count() or 2
    with Timer() as t:
        res = link_registrations(
            con,
            LinkRequest(
                out / "link",
                engine="spark",
                model=model,
                blocking_analysis=False,
                threads=n_threads,
            ),
        )
    return {
        "seconds": t.seconds,
        "stages": res.seconds,
        "registrations": res.registrations,
        "candidate_pairs": res.candidate_pairs,
        "comparisons_per_record": res.comparisons_per_record,
        "trained_on_spark": model is None,
        "local_threads": n_threads,
        "driver_memory": os.environ["VOTEROLLS_SPARK_DRIVER_MEMORY"],
        "pairs": {"spark": [str(out / "link" / "pairs.parquet"), res.threshold]},
    }


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", type=Path, required=True, help="bench/peers.py prepare output")
    ap.add_argument("--out", type=Path, required=True)
    g = ap.add_mutually_exclusive_group(required=True)
    g.add_argument("--model", type=Path, help="score with this (DuckDB-trained) model")
    g.add_argument("--train", action="store_true", help="train on Spark as well")
    ap.add_argument("--threads", type=int, default=None, help="local[N] (default: all cores)")
    ap.add_argument("--driver-memory", default="6g")
    args = ap.parse_args(argv)
    emit(
        {"method": "spark"}
        | run_spark(
            args.data,
            args.out,
            model=None if args.train else args.model,
            threads=args.threads,
            driver_memory=args.driver_memory,
        )
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
