"""The model adapts to the fields the input carries (issue 20): no middle names,
middle initials only, no DOB anywhere, tokens only - never a traceback."""

from __future__ import annotations

import csv
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import duckdb
import pytest

from voterolls.errors import UserError
from voterolls.link.blocking import prediction_rule_columns, training_rule_columns
from voterolls.link.fields import PROFILED, FieldProfile

sys.path.insert(0, str(Path(__file__).parent))
from febrl_like import write_febrl_like  # noqa: E402

VOTEROLLS = str(Path(sys.executable).with_name("voterolls"))


def _profile(**share: float) -> FieldProfile:
    n = 1000
    return FieldProfile(n, {f: int(share.get(f, 0.0) * n) for f in PROFILED})


NAMES = dict(first_name=1, first_name_canonical=1, last_name=1)


def test_default_profile_keeps_the_documented_sessions():
    full = _profile(**dict.fromkeys(PROFILED, 1.0))
    public = _profile(**(dict.fromkeys(PROFILED, 1.0) | dict(dob_token=0, ssn4_token=0)))
    assert training_rule_columns(public) == training_rule_columns(None)
    assert prediction_rule_columns(full) == prediction_rule_columns(None)
    # with sealed DOB tokens the previous sessions stay (measured better there)
    assert training_rule_columns(full) == [
        ("dob", "last_name"),
        ("dob", "first_name_canonical", "middle_name"),
        ("first_name_canonical", "last_name", "middle_name", "birth_year"),
    ]


@pytest.mark.parametrize(
    ("share", "sessions"),
    [
        (  # FEBRL-like: no middle name, no gender: (DOB, surname) would leave one field free
            NAMES | dict(dob=1, birth_year=1, residence_zip5=1),
            [("dob",), ("last_name",), ("first_name_canonical",)],
        ),
        (  # middle initials only: still the middle name (an initial is a refinement too)
            NAMES | dict(dob=1, birth_year=1, middle_name=0.8, gender=1),
            [("dob", "last_name"), ("dob", "middle_name"),
             ("last_name", "middle_name", "birth_year")],
        ),
        (  # no DOB anywhere, in-state ZIP: a (first, last, middle) block would leave nothing free
            NAMES | dict(middle_name=0.9, residence_zip5=1),
            [("last_name",), ("first_name_canonical",)],
        ),
        (  # sealed tokens instead of public dates; SSN4 refines the name session
            NAMES | dict(dob_token=1, ssn4_token=1, birth_year=1, gender=1),
            [("dob_token", "last_name"), ("dob_token", "first_name_canonical"),
             ("first_name_canonical", "last_name", "ssn4_token", "birth_year")],
        ),
        (dict(dob_token=1, ssn4_token=1), [("dob_token",), ("ssn4_token",)]),  # tokens only
    ],
)
def test_training_sessions_follow_the_fields(share, sessions):
    assert training_rule_columns(_profile(**share)) == sessions


def test_every_default_session_leaves_two_independent_fields_free():
    """Gender follows the first name and the address differs across states for
    matches too, so neither counts: each session must leave two of the names,
    the middle name and the date unblocked, or EM cannot identify the classes."""
    independent = {"first_name_canonical", "last_name", "middle_name", "dob"}
    for rule in training_rule_columns(None):
        assert len(independent - set(rule)) >= 2, rule


def test_prediction_rules_use_only_present_fields():
    febrl = prediction_rule_columns(_profile(**NAMES, dob=1, birth_year=1, residence_zip5=1))
    assert ("bk_last_year_sex",) not in febrl  # no gender
    assert ("dob", "last_name") in febrl and ("bk_name",) in febrl
    tokens = prediction_rule_columns(_profile(dob_token=1, ssn4_token=1))
    assert tokens == [("dob_token", "ssn4_token")]


# ---------------------------------------------------------------------------
# FEBRL-like data through the installed command, as a user runs it
# ---------------------------------------------------------------------------


def _run(*args: str, ws: Path) -> subprocess.CompletedProcess:
    env = os.environ | {"VOTEROLLS_WORKSPACE": str(ws), "PYTHONPATH": str(Path(__file__).parents[1])}
    return subprocess.run([VOTEROLLS, *args], capture_output=True, text=True, env=env, timeout=300)


def _truth_scores(pairs: Path, threshold: float) -> tuple[int, int]:
    """(true positives, predicted) among cross-source pairs at ``threshold``; truth = shared rec-<k>."""
    con = duckdb.connect()
    tp, n = con.execute(
        "SELECT count(*) FILTER (WHERE split_part(state_voter_id_l, '-', 2) = split_part(state_voter_id_r, '-', 2)), "
        f"count(*) FROM read_parquet('{pairs}') WHERE state_l <> state_r AND match_probability >= {threshold}"
    ).fetchall()[0]
    return int(tp), int(n)


def test_febrl_like_without_middle_names_links_through_the_cli(tmp_path):
    files = write_febrl_like(tmp_path / "in", people=600, seed=4)
    ws = tmp_path / "ws"
    for state, key in (("OH", "a"), ("FL", "b")):
        r = _run("ingest", state, str(files[key]), "--format", str(files["mapping"]), ws=ws)
        assert r.returncode == 0, r.stderr
    r = _run("link", ws=ws)
    assert r.returncode == 0, r.stderr
    assert "Traceback" not in r.stderr
    report = json.loads((ws / "link" / "link_report.json").read_text())
    assert report["training"]["fields"]["middle_name"] == "none"
    assert report["training"]["em_skipped"] == []
    assert not any("middle_name" in rule for rule in report["training"]["em_rules"])
    # names and DOB only: each session blocks on one field, leaving the others free
    assert report["training"]["em_rules"][0] == 'l."dob" = r."dob"'
    assert all(" AND " not in rule for rule in report["training"]["em_rules"])
    # the printed summary is the data's
    m = re.search(r"linked ([\d,]+) registrations .* ([\d,]+) at p >= 0\.9 \(([\d,]+) cross-state\)", r.stdout)
    assert m, r.stdout
    assert int(m.group(1).replace(",", "")) == 1200
    tp, predicted = _truth_scores(ws / "link" / "pairs.parquet", 0.9)
    assert int(m.group(3).replace(",", "")) == predicted
    assert tp / predicted >= 0.98  # precision
    assert tp / 600 >= 0.85  # recall (the generator blanks or mistypes 1-2 fields per duplicate)


# ---------------------------------------------------------------------------
# other field sets, through link_registrations (no CLI round trip needed)
# ---------------------------------------------------------------------------


def _registrations(tmp_path: Path, select: str) -> duckdb.DuckDBPyConnection:
    files = write_febrl_like(tmp_path / "in", people=400, seed=9)
    con = duckdb.connect()
    for state, key in (("OH", "a"), ("FL", "b")):
        with files[key].open(encoding="utf-8") as fh:
            rows = list(csv.DictReader(fh))
        con.execute(
            "CREATE TABLE IF NOT EXISTS raw (state VARCHAR, rec_id VARCHAR, given VARCHAR, surname VARCHAR, "
            "dob VARCHAR, zip VARCHAR)"
        )
        con.executemany(
            "INSERT INTO raw VALUES (?, ?, ?, ?, ?, ?)",
            [(state, r["rec_id"], r["given_name"], r["surname"], r["date_of_birth"], r["postcode"]) for r in rows],
        )
    con.execute(f"CREATE TABLE registrations AS SELECT state, rec_id AS state_voter_id, {select} FROM raw")
    return con


@pytest.mark.parametrize(
    "select",
    [
        # no DOB anywhere: names, middle initial, ZIP
        "'none' AS dob_granularity, given AS first_name, surname AS last_name, "
        "substr(surname, 2, 1) AS middle_name, zip AS residence_zip5",
        # tokens only: sealed DOB and SSN4 stand-ins, no names
        "'none' AS dob_granularity, 'T' || dob AS dob_token, 'S' || split_part(rec_id, '-', 2) AS ssn4_token",
    ],
    ids=["no-dob-middle-initials", "tokens-only"],
)
def test_other_field_sets_link_without_error(tmp_path, select):
    from voterolls.link.run import LinkRequest, link_registrations

    con = _registrations(tmp_path, select)
    res = link_registrations(con, LinkRequest(tmp_path / "out", blocking_analysis=False))
    assert res.trained and res.training["em_rules"]
    tp, predicted = _truth_scores(tmp_path / "out" / "pairs.parquet", 0.5)
    assert predicted > 0 and tp / predicted >= 0.9


def test_nothing_to_train_on_is_one_sentence(tmp_path):
    from voterolls.link.run import LinkRequest, link_registrations

    con = duckdb.connect()
    con.execute(
        "CREATE TABLE registrations AS SELECT * FROM (VALUES ('OH', '1', 'none', 'ANA', 'ROE'), "
        "('FL', '2', 'none', 'BEN', 'DOE')) t(state, state_voter_id, dob_granularity, first_name, last_name)"
    )
    with pytest.raises(UserError, match="linkage cannot be trained"):
        link_registrations(con, LinkRequest(tmp_path / "out", blocking_analysis=False))


# ---------------------------------------------------------------------------
# prepare on Spark: the same input table as DuckDB's
# ---------------------------------------------------------------------------


@pytest.mark.spark
def test_spark_prepare_matches_duckdb(tmp_path):
    import pyarrow.parquet as pq

    from bench.synthetic_registrations import load_nation_registrations
    from voterolls.link.engines import make_engine
    from voterolls.link.fields import profile_input
    from voterolls.link.prepare import prepare_input
    from voterolls.link.prepare_spark import prepare_spark
    from voterolls.synth.nation import generate_nation

    con = duckdb.connect()
    load_nation_registrations(con, generate_nation(3000, 5), token_states=["OH", "NC"])
    con.execute(f"COPY registrations TO '{tmp_path / 'regs.parquet'}' (FORMAT PARQUET)")
    dropped_d: dict[str, int] = {}
    n_d = prepare_input(con, "registrations", "prep", block_cap=2, capped_dropped=dropped_d)
    profile_d = profile_input(con, "prep")
    duck = con.sql("SELECT * FROM prep ORDER BY unique_id").to_arrow_table()

    eng = make_engine("spark", tmp_path / "work", threads=2, rows=n_d)
    try:
        n_s, dropped_s, profile_s = prepare_spark(
            eng.spark, tmp_path / "regs.parquet", tmp_path / "input.parquet", block_cap=2
        )
    finally:
        eng.close()
    spark = pq.read_table(tmp_path / "input.parquet").sort_by("unique_id")
    assert (n_s, dropped_s, profile_s) == (n_d, dropped_d, profile_d)
    assert sum(dropped_d.values()) > 0  # the cap of 2 did bite
    assert sorted(spark.column_names) == sorted(duck.column_names)
    hashed = {"residence_address", "ssn4_token", "dob_token"}
    for c in duck.column_names:
        d, sp = duck[c].to_pylist(), spark[c].to_pylist()
        if c in hashed:  # engine-specific 63-bit ids: equal values must stay equal, and only they
            assert [v is None for v in d] == [v is None for v in sp], c
            pairs = {(x, y) for x, y in zip(d, sp, strict=True) if x is not None}
            assert len(pairs) == len({x for x, _ in pairs}) == len({y for _, y in pairs}), c
        else:
            assert d == sp, c
