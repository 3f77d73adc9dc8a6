"""Peer baselines, run on the same prepared registrations as voterolls, one method per process.

    .venv/bin/python bench/peers.py prepare --registrations 100000 --out /tmp/d100k
    .venv/bin/python bench/peers.py run voterolls     --data /tmp/d100k --out /tmp/o
    .venv/bin/python bench/peers.py run crosscheck    --data /tmp/d100k --out /tmp/o
    .venv/bin/python bench/peers.py run splink_docs   --data /tmp/d100k --out /tmp/o
    .venv/bin/python bench/peers.py run recordlinkage --data /tmp/d100k --out /tmp/o
    .venv/bin/python bench/peers.py count splink_docs --data /tmp/d1M

``bench/run_all.py`` starts these as child processes (``bench.common.run_child``
measures wall time, the peak RSS of the process tree and CPU time) and scores
every pairs file with the same function (``bench.common.evaluate_pairs`` ->
``voterolls.link.evaluate.evaluate``).  Each ``run`` prints one JSON line:
the method's own linkage time (after reading the prepared Parquet into
DuckDB, which every method does the same way), its stages, candidate pairs
and the pairs files to score with their thresholds.

The methods
-----------

``voterolls``
    ``voterolls.link.run.link_registrations`` on DuckDB, defaults (threshold
    0.9): prepare, train (u sampling, EM), blocking analysis, predict, prior,
    pairs, clusters.

``crosscheck``
    The Interstate Crosscheck rule as an exact DuckDB join
    (``voterolls.link.crosscheck.crosscheck_sql``): same first name, last
    name and full DOB in two different states.

``splink_docs``
    Splink with the example model from Splink's own documentation: the
    "Quickstart" of the Splink 5.0.0 README (the PyPI project page,
    https://pypi.org/project/splink/5.0.0/, and
    https://github.com/moj-analytical-services/splink/blob/master/README.md):
    ``dedupe_only``; comparisons ``JaroWinklerAtThresholds("first_name",
    [0.9, 0.7])``, ``JaroAtThresholds("surname", [0.9, 0.7])``,
    ``DateOfBirthComparison("dob", input_is_string=False,
    datetime_metrics=["year", "month"], datetime_thresholds=[1, 1])``,
    ``ExactMatch("city")`` with term-frequency adjustment,
    ``EmailComparison("email")``; prediction blocking ``block_on("first_name")``
    and ``block_on("surname")``; training exactly as the example:
    ``estimate_probability_two_random_records_match([block_on("first_name",
    "surname")], recall=0.7)``, ``estimate_u_using_random_sampling(max_pairs=1e6)``,
    EM on ``block_on("first_name", "surname")`` and on ``block_on("dob")``;
    ``predict(threshold_match_weight=-10)``; clusters at 0.95.  Adapted only
    in column names: surname = ``last_name``, city = ``residence_city``,
    email = ``email``, unique_id = ``state:state_voter_id``.  Pairs are
    scored at the example's clustering threshold, 0.95.

``recordlinkage``
    The Python Record Linkage Toolkit's "Data deduplication" guide
    (https://recordlinkage.readthedocs.io/en/latest/guides/data_deduplication.html,
    docs/guides/data_deduplication.rst in J535D165/recordlinkage): block on
    ``given_name``; compare exact ``given_name``, Jaro-Winkler ``surname``
    (threshold 0.85), exact ``date_of_birth``, exact ``suburb``, exact
    ``state``, string ``address_1`` (threshold 0.85); match when the sum of
    the six features is > 3.  Column mapping: given_name = ``first_name``,
    surname = ``last_name``, date_of_birth = ``dob``, suburb =
    ``residence_city``, state = ``state``, address_1 = ``residence_address``.
    Besides the guide's rule, the toolkit's unsupervised ``ECMClassifier`` is
    fitted on the same features (reported as a second row).  Run at 100k
    only: candidate pairs live in pandas memory.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.common import Timer, emit, load_registrations, people_for  # noqa: E402

METHODS = ("voterolls", "crosscheck", "splink_docs", "recordlinkage")

#: Pairs file columns every method writes (what ``evaluate`` reads).
PAIR_COLUMNS = "state_l, state_voter_id_l, state_r, state_voter_id_r, match_probability"


def _lit(p: Path | str) -> str:
    return "'" + str(p).replace("'", "''") + "'"


# ---------------------------------------------------------------------------
# data
# ---------------------------------------------------------------------------


def prepare(registrations: int, seed: int, out: Path) -> dict[str, Any]:
    """Generate a nation of about ``registrations`` and write what every method reads."""
    import duckdb
    import pyarrow.parquet as pq

    from bench.synthetic_registrations import load_nation_registrations
    from voterolls.synth import generate_nation

    out.mkdir(parents=True, exist_ok=True)
    (out / "truth").mkdir(exist_ok=True)
    with Timer() as t_gen:
        nation = generate_nation(people_for(registrations), seed)
    with Timer() as t_load:
        con = duckdb.connect()
        n = load_nation_registrations(con, nation)
        con.execute(
            f"COPY registrations TO {_lit(out / 'registrations.parquet')} (FORMAT PARQUET, COMPRESSION ZSTD)"
        )
    pq.write_table(nation.truth["duplicate_pairs"], out / "truth" / "duplicate_pairs.parquet")
    info = {
        "target_registrations": registrations,
        "people": nation.people,
        "registrations": n,
        "seed": seed,
        "generate_seconds": t_gen.seconds,
        "lawful_normalise_seconds": t_load.seconds,
    }
    (out / "prepare.json").write_text(__import__("json").dumps(info, indent=2) + "\n")
    return info


# ---------------------------------------------------------------------------
# methods
# ---------------------------------------------------------------------------


def run_voterolls(data: Path, out: Path, threads: int | None) -> dict[str, Any]:
    from voterolls.link.run import LinkRequest, link_registrations

    con = load_registrations(data)
    with Timer() as t:
        res = link_registrations(con, LinkRequest(out / "link", threads=threads))
    return {
        "seconds": t.seconds,
        "stages": res.seconds,
        "registrations": res.registrations,
        "candidate_pairs": res.candidate_pairs,
        "comparisons_per_record": res.comparisons_per_record,
        "blocking": res.blocking,
        "model": str(out / "link" / "model.json"),
        "pairs": {"voterolls": [str(out / "link" / "pairs.parquet"), res.threshold]},
    }


def run_crosscheck(data: Path, out: Path, threads: int | None) -> dict[str, Any]:
    from voterolls.link.crosscheck import crosscheck_sql

    con = load_registrations(data)
    if threads:
        con.execute(f"SET threads={int(threads)}")
    n = int(con.execute("SELECT count(*) FROM registrations").fetchall()[0][0])
    out.mkdir(parents=True, exist_ok=True)
    path = out / "crosscheck_pairs.parquet"
    with Timer() as t:
        con.execute(
            f"COPY (SELECT *, 1.0::DOUBLE AS match_probability FROM ({crosscheck_sql('registrations')})) "
            f"TO {_lit(path)} (FORMAT PARQUET)"
        )
    k = int(con.execute(f"SELECT count(*) FROM read_parquet({_lit(path)})").fetchall()[0][0])
    return {
        "seconds": t.seconds,
        "stages": {"join": t.seconds},
        "registrations": n,
        "candidate_pairs": k,
        "comparisons_per_record": round(k / n, 3),
        "pairs": {"crosscheck": [str(path), 0.5]},
    }


SPLINK_DOCS_INPUT = """
SELECT state || ':' || state_voter_id AS unique_id,
       first_name, last_name AS surname, TRY_CAST(dob AS DATE) AS dob,
       residence_city AS city, email
FROM registrations
"""


def splink_docs_settings():  # noqa: ANN201
    """The Splink 5 README Quickstart model, column names adapted (see module docstring)."""
    import splink.comparison_library as cl
    from splink import SettingsCreator, block_on

    return SettingsCreator(
        link_type="dedupe_only",
        comparisons=[
            cl.JaroWinklerAtThresholds("first_name", [0.9, 0.7]),
            cl.JaroAtThresholds("surname", [0.9, 0.7]),
            cl.DateOfBirthComparison(
                "dob",
                input_is_string=False,
                datetime_metrics=["year", "month"],
                datetime_thresholds=[1, 1],
            ),
            cl.ExactMatch("city").configure(term_frequency_adjustments=True),
            cl.EmailComparison("email"),
        ],
        blocking_rules_to_generate_predictions=[block_on("first_name"), block_on("surname")],
    )


def splink_docs_comparisons(con) -> int:  # noqa: ANN001
    """Exact number of pairs the example's two prediction rules generate (union, nulls never join)."""
    q = f"""
    WITH i AS ({SPLINK_DOCS_INPUT}),
    f AS (SELECT count(*) AS n FROM i WHERE first_name IS NOT NULL GROUP BY first_name),
    s AS (SELECT count(*) AS n FROM i WHERE surname IS NOT NULL GROUP BY surname),
    fs AS (SELECT count(*) AS n FROM i WHERE first_name IS NOT NULL AND surname IS NOT NULL
           GROUP BY first_name, surname)
    SELECT (SELECT coalesce(sum(n * (n - 1) / 2), 0) FROM f)
         + (SELECT coalesce(sum(n * (n - 1) / 2), 0) FROM s)
         - (SELECT coalesce(sum(n * (n - 1) / 2), 0) FROM fs)
    """
    return int(con.execute(q).fetchall()[0][0])


def run_splink_docs(data: Path, out: Path, threads: int | None) -> dict[str, Any]:
    import logging

    import duckdb
    from splink import DuckDBAPI, Linker, block_on

    src = load_registrations(data)
    n = int(src.execute("SELECT count(*) FROM registrations").fetchall()[0][0])
    expected = splink_docs_comparisons(src)
    inp = src.execute(SPLINK_DOCS_INPUT).to_arrow_table()
    src.close()
    del src
    out.mkdir(parents=True, exist_ok=True)
    con = duckdb.connect()
    con.execute("SET lambda_syntax='ENABLE_SINGLE_ARROW'")
    con.execute(f"SET temp_directory={_lit(out / 'duckdb_tmp')}")
    if threads:
        con.execute(f"SET threads={int(threads)}")
    stages: dict[str, float] = {}
    with Timer() as total:
        with Timer() as t:
            db_api = DuckDBAPI(connection=con)
            df_sdf = db_api.register(inp, dataset_display_name="registrations")
            linker = Linker(df_sdf, splink_docs_settings(), log_level=logging.ERROR)
        stages["load"] = t.seconds
        with Timer() as t:
            linker.training.estimate_probability_two_random_records_match(
                [block_on("first_name", "surname")], recall=0.7
            )
            linker.training.estimate_u_using_random_sampling(max_pairs=1e6)
            linker.training.estimate_parameters_using_expectation_maximisation(
                block_on("first_name", "surname")
            )
            linker.training.estimate_parameters_using_expectation_maximisation(block_on("dob"))
        stages["train"] = t.seconds
        with Timer() as t:
            pred = linker.inference.predict(threshold_match_weight=-10)
        stages["predict"] = t.seconds
        with Timer() as t:
            clusters = linker.clustering.cluster_pairwise_predictions_at_threshold(pred, 0.95)
            n_clusters = int(
                con.execute(
                    f"SELECT count(DISTINCT cluster_id) FROM {clusters.physical_name}"
                ).fetchall()[0][0]
            )
        stages["cluster"] = t.seconds
        with Timer() as t:
            path = out / "splink_docs_pairs.parquet"
            con.execute(
                f"""COPY (SELECT split_part(unique_id_l, ':', 1) AS state_l,
                               substr(unique_id_l, strpos(unique_id_l, ':') + 1) AS state_voter_id_l,
                               split_part(unique_id_r, ':', 1) AS state_r,
                               substr(unique_id_r, strpos(unique_id_r, ':') + 1) AS state_voter_id_r,
                               match_probability
                        FROM {pred.physical_name}) TO {_lit(path)} (FORMAT PARQUET)"""
            )
        stages["write_pairs"] = t.seconds
    scored = int(con.execute(f"SELECT count(*) FROM {pred.physical_name}").fetchall()[0][0])
    return {
        "seconds": total.seconds,
        "stages": stages,
        "registrations": n,
        # the prediction rules' pairs (counted exactly); predict keeps those above weight -10
        "candidate_pairs": expected,
        "comparisons_per_record": round(expected / n, 3),
        "pairs_above_weight_minus_10": scored,
        "clusters": n_clusters,
        "pairs": {"splink_docs": [str(path), 0.95]},
    }


def run_recordlinkage(data: Path, out: Path, threads: int | None) -> dict[str, Any]:
    import numpy as np
    import pandas as pd
    import pyarrow as pa
    import pyarrow.parquet as pq
    import recordlinkage

    con = load_registrations(data)
    df = con.execute(
        """SELECT state || ':' || state_voter_id AS rec_id, first_name AS given_name,
                  last_name AS surname, CAST(dob AS VARCHAR) AS date_of_birth,
                  residence_city AS suburb, state, residence_address AS address_1
           FROM registrations"""
    ).df()
    con.close()
    n = len(df)
    dfA = df.set_index("rec_id")
    out.mkdir(parents=True, exist_ok=True)
    stages: dict[str, float] = {}
    with Timer() as total:
        with Timer() as t:
            indexer = recordlinkage.Index()
            indexer.block(left_on="given_name")
            candidate_links = indexer.index(dfA)
        stages["index"] = t.seconds
        with Timer() as t:
            compare_cl = recordlinkage.Compare()
            compare_cl.exact("given_name", "given_name", label="given_name")
            compare_cl.string(
                "surname", "surname", method="jarowinkler", threshold=0.85, label="surname"
            )
            compare_cl.exact("date_of_birth", "date_of_birth", label="date_of_birth")
            compare_cl.exact("suburb", "suburb", label="suburb")
            compare_cl.exact("state", "state", label="state")
            compare_cl.string("address_1", "address_1", threshold=0.85, label="address_1")
            features = compare_cl.compute(candidate_links, dfA)
        stages["compare"] = t.seconds
        with Timer() as t:
            matches = features[features.sum(axis=1) > 3].index
        stages["classify_guide"] = t.seconds
    with Timer() as t:
        ecm = recordlinkage.ECMClassifier(binarize=0.5)
        ecm_links = ecm.fit_predict(features)
    stages["classify_ecm"] = t.seconds

    def write(index: pd.MultiIndex, name: str) -> str:
        a = np.asarray(index.get_level_values(0), dtype=object)
        b = np.asarray(index.get_level_values(1), dtype=object)
        sa = pd.Series(a, dtype="string").str.split(":", n=1, expand=True)
        sb = pd.Series(b, dtype="string").str.split(":", n=1, expand=True)
        if len(index) == 0:
            sa = sb = pd.DataFrame(
                {0: pd.Series([], dtype="string"), 1: pd.Series([], dtype="string")}
            )
        tbl = pa.table(
            {
                "state_l": pa.array(sa[0], pa.string()),
                "state_voter_id_l": pa.array(sa[1], pa.string()),
                "state_r": pa.array(sb[0], pa.string()),
                "state_voter_id_r": pa.array(sb[1], pa.string()),
                "match_probability": pa.array(np.ones(len(index)), pa.float64()),
            }
        )
        path = out / f"{name}_pairs.parquet"
        pq.write_table(tbl, path)
        return str(path)

    return {
        "seconds": total.seconds,
        "seconds_ecm_variant": round(
            total.seconds - stages["classify_guide"] + stages["classify_ecm"], 3
        ),
        "stages": stages,
        "registrations": n,
        "candidate_pairs": len(candidate_links),
        "comparisons_per_record": round(len(candidate_links) / n, 3),
        "pairs": {
            "recordlinkage": [write(matches, "recordlinkage"), 0.5],
            "recordlinkage_ecm": [write(ecm_links, "recordlinkage_ecm"), 0.5],
        },
    }


RUNNERS = {
    "voterolls": run_voterolls,
    "crosscheck": run_crosscheck,
    "splink_docs": run_splink_docs,
    "recordlinkage": run_recordlinkage,
}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = ap.add_subparsers(dest="cmd", required=True)
    p = sub.add_parser("prepare", help="generate the synthetic registrations and truth")
    p.add_argument("--registrations", type=int, required=True)
    p.add_argument("--seed", type=int, default=7)
    p.add_argument("--out", type=Path, required=True)
    r = sub.add_parser("run", help="run one method on prepared data")
    r.add_argument("method", choices=METHODS)
    r.add_argument("--data", type=Path, required=True)
    r.add_argument("--out", type=Path, required=True)
    r.add_argument("--threads", type=int, default=None)
    c = sub.add_parser("count", help="count the Splink docs example's candidate pairs")
    c.add_argument("method", choices=("splink_docs",))
    c.add_argument("--data", type=Path, required=True)
    args = ap.parse_args(argv)
    if args.cmd == "prepare":
        emit(prepare(args.registrations, args.seed, args.out))
    elif args.cmd == "run":
        emit({"method": args.method} | RUNNERS[args.method](args.data, args.out, args.threads))
    else:
        con = load_registrations(args.data)
        n = int(con.execute("SELECT count(*) FROM registrations").fetchall()[0][0])
        k = splink_docs_comparisons(con)
        emit({"registrations": n, "candidate_pairs": k, "comparisons_per_record": round(k / n, 3)})
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
