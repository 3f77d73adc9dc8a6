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
candidate pairs, the Spark settings and the pairs file.  ``bench/run_all.py``
runs it as a child process, so the peak memory reported includes the JVM, and
then compares its pairs with DuckDB's (:func:`pair_agreement`).  With
``--compare DUCKDB_PAIRS`` this script does that comparison itself.

Memory.  In local mode the one JVM is driver and executor, so
``--driver-memory`` (``spark.driver.memory``, default 6g) bounds Spark's heap
at every size: Spark spills shuffles and sorts to ``spark.local.dir`` beyond
it instead of growing.  The process's peak RSS is that heap plus the JVM's
own overhead (~1-2 GB: metaspace, direct buffers, Parquet) plus this Python
process (a DuckDB table of the registrations).  Shuffle partitions:
``--shuffle-partitions``, else ``voterolls.link.engines.spark.shuffle_partitions``
(one per 100,000 registrations, at least two per core).
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.common import Timer, emit, load_registrations  # noqa: E402

#: The pair key, oriented (a < b) so that two engines' orientation cannot matter.
_KEY = (
    "least(state_l || ':' || state_voter_id_l, state_r || ':' || state_voter_id_r) AS a, "
    "greatest(state_l || ':' || state_voter_id_l, state_r || ':' || state_voter_id_r) AS b"
)


def _parquet(path: Path) -> str:
    """A read_parquet argument for a pairs file or a directory of part files."""
    p = Path(path)
    return str(p / "*.parquet") if p.is_dir() else str(p)


def pair_agreement(
    duckdb_pairs: Path, spark_pairs: Path, threshold: float, registrations: Path | None = None
) -> dict[str, Any]:
    """How far Spark's written pairs are DuckDB's (same model, same registrations).

    ``written``: every pair each engine wrote (p >= min_probability);
    ``at_threshold``: pairs with p >= ``threshold`` - the links.  Each gives
    both engines' counts, the pairs in both, in one only, and ``jaccard`` =
    both / union (1.0 = the same set).  On the pairs both wrote:
    ``max_abs_probability_difference``, ``share_probability_within_1e-3`` and
    ``share_gammas_equal`` (every comparison at the same level: the same
    prepared input, blocking and comparisons).  Jaro-Winkler in the JVM and in
    DuckDB differ in the last digits, which can move the odd pair across a
    level boundary.  With ``registrations`` (a Parquet with ``state``,
    ``state_voter_id``, ``dob_granularity``) the same figures per DOB class
    (``by_class``: full on both sides / a year-only side / a side without
    DOB), which separates what the engines compute alike from what only one
    engine applies (the year and no-DOB recalibration is DuckDB SQL).
    """
    import duckdb

    from voterolls.link.evaluate import GRANULARITY_CLASSES, granularity_class_sql

    con = duckdb.connect()
    try:
        con.execute("SET enable_progress_bar=false")
        gammas = None
        for name, path in (("d", duckdb_pairs), ("s", spark_pairs)):
            src = _parquet(path).replace("'", "''")
            con.execute(f"CREATE TEMP VIEW {name}_raw AS SELECT * FROM read_parquet('{src}')")
            cols = {r[0] for r in con.execute(f"DESCRIBE {name}_raw").fetchall()}
            here = {c for c in cols if c.startswith("gamma_")}
            gammas = here if gammas is None else gammas & here
        g = "[" + ", ".join(f'CAST("{c}" AS INTEGER)' for c in sorted(gammas or ())) + "]"
        if registrations is not None:
            reg = str(registrations).replace("'", "''")
            con.execute(
                "CREATE TEMP TABLE gran AS SELECT state || ':' || state_voter_id AS k, "
                f"dob_granularity AS g FROM read_parquet('{reg}')"
            )
        else:
            con.execute("CREATE TEMP TABLE gran (k VARCHAR, g VARCHAR)")
        cls = granularity_class_sql("ga.g", "gb.g")
        for name in ("d", "s"):
            con.execute(
                f"""CREATE TEMP TABLE {name} AS SELECT k.*, {cls} AS cls
                    FROM (SELECT {_KEY}, match_probability AS p, {g} AS g FROM {name}_raw) k
                    LEFT JOIN gran ga ON ga.k = k.a LEFT JOIN gran gb ON gb.k = k.b"""
            )
        out = _agreement(con, threshold, "TRUE")
        if registrations is not None:
            out["by_class"] = {
                c: _agreement(con, threshold, f"cls = '{c}'") for c in GRANULARITY_CLASSES
            }
        return out
    finally:
        con.close()


def _agreement(con: Any, threshold: float, where: str) -> dict[str, Any]:
    """pair_agreement's figures over the pairs (of tables d and s) that satisfy ``where``."""
    out: dict[str, Any] = {"threshold": threshold}
    for label, cond in (("written", "TRUE"), ("at_threshold", f"p >= {float(threshold)!r}")):
        nd, ns, both = con.execute(
            f"""WITH d1 AS (SELECT a, b FROM d WHERE {where} AND {cond}),
                     s1 AS (SELECT a, b FROM s WHERE {where} AND {cond})
                SELECT (SELECT count(*) FROM d1), (SELECT count(*) FROM s1),
                       (SELECT count(*) FROM d1 JOIN s1 USING (a, b))"""
        ).fetchall()[0]
        union = nd + ns - both
        out[label] = {
            "duckdb": nd, "spark": ns, "both": both,
            "duckdb_only": nd - both, "spark_only": ns - both,
            "jaccard": round(both / union, 6) if union else 1.0,
        }  # fmt: skip
    on = "TRUE" if where == "TRUE" else f"d.{where}"
    dmax, close, same, n = con.execute(
        f"""SELECT max(abs(d.p - s.p)), avg(CAST(abs(d.p - s.p) < 1e-3 AS DOUBLE)),
                   avg(CAST(d.g = s.g AS DOUBLE)), count(*)
            FROM d JOIN s USING (a, b) WHERE {on}"""
    ).fetchall()[0]
    out["common_written_pairs"] = n
    out["max_abs_probability_difference"] = None if dmax is None else round(dmax, 6)
    out["share_probability_within_1e-3"] = None if close is None else round(close, 6)
    out["share_gammas_equal"] = None if same is None else round(same, 6)
    return out


def run_spark(
    data: Path,
    out: Path,
    *,
    model: Path | None,
    threads: int | None,
    driver_memory: str,
    shuffle_partitions: int | None = None,
) -> dict[str, Any]:
    os.environ["VOTEROLLS_SPARK_DRIVER_MEMORY"] = driver_memory
    from voterolls.link.engines.spark import shuffle_partitions as default_partitions
    from voterolls.link.run import LinkRequest, link_registrations

    con = load_registrations(data)
    n_threads = threads or os.cpu_count() or 2
    rows = int(con.execute("SELECT count(*) FROM registrations").fetchall()[0][0])
    partitions = default_partitions(n_threads, rows, shuffle_partitions)
    with Timer() as t:
        res = link_registrations(
            con,
            LinkRequest(
                out / "link",
                engine="spark",
                model=model,
                blocking_analysis=False,
                threads=n_threads,
                shuffle_partitions=partitions,
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
        "driver_memory": driver_memory,
        "shuffle_partitions": partitions,
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
    ap.add_argument("--driver-memory", default="6g", help="spark.driver.memory: the JVM heap bound")
    ap.add_argument(
        "--shuffle-partitions",
        type=int,
        default=None,
        help="spark.sql.shuffle.partitions "
        "(default: one per 100,000 registrations, at least two per core)",
    )
    ap.add_argument(
        "--compare",
        type=Path,
        default=None,
        help="DuckDB's pairs.parquet of the same "
        "registrations and model: add the pair agreement to the JSON line",
    )
    args = ap.parse_args(argv)
    rec = run_spark(
        args.data,
        args.out,
        model=None if args.train else args.model,
        threads=args.threads,
        driver_memory=args.driver_memory,
        shuffle_partitions=args.shuffle_partitions,
    )
    if args.compare:
        path, threshold = rec["pairs"]["spark"]
        regs = args.data / "registrations.parquet"
        rec["pair_agreement"] = pair_agreement(args.compare, Path(path), threshold, regs)
    emit({"method": "spark"} | rec)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
