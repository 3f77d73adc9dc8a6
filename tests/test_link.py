"""Linkage: comparisons, blocking caps, training -> predict -> clusters, model JSON, Crosscheck, evaluate.

Small inputs only: hand-made registrations for behaviour, a ~3,000-person
synthetic nation for the end-to-end run (trained with small samples).
"""

from __future__ import annotations

import datetime as dt
import json
import logging
from pathlib import Path

import duckdb
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from splink import Linker

from voterolls.errors import UserError
from voterolls.link.blocking import CAPPED_KEYS, blocking_keys_sql
from voterolls.link.comparisons import COMPARISON_NAMES, LEVELS, all_comparisons
from voterolls.link.crosscheck import crosscheck_count, crosscheck_pairs
from voterolls.link.engines import make_engine
from voterolls.link.engines.duckdb import DuckDBEngine
from voterolls.link.evaluate import Scores, evaluate
from voterolls.link.predict import PAIR_COLUMNS
from voterolls.link.prepare import prepare_input, soundex_sql
from voterolls.link.settings import load_model, settings_creator, transfer_parameters
from voterolls.schema import REGISTRATION_SCHEMA, conform

# ---------------------------------------------------------------------------
# helpers
# ---------------------------------------------------------------------------

_BASE = {
    "county": "001",
    "gender": "M",
    "residence_zip5": "27601",
    "residence_address": "1 MAIN ST",
}


def _reg(
    state: str,
    vid: str,
    first: str,
    last: str,
    *,
    dob: str | None = None,
    year: int | None = None,
    **kw,
) -> dict:
    d = dict(_BASE)
    d.update(
        state=state,
        state_voter_id=vid,
        first_name=first,
        last_name=last,
        first_name_canonical=first,
    )
    if dob:
        d["dob"] = dt.date.fromisoformat(dob)
        d["birth_year"] = d["dob"].year
        d["dob_granularity"] = "full"
    elif year:
        d["birth_year"] = year
        d["dob_granularity"] = "year"
    else:
        d["dob_granularity"] = "none"
    d.update(kw)
    return d


def _table(rows: list[dict]) -> pa.Table:
    cols = {f.name: [r.get(f.name) for r in rows] for f in REGISTRATION_SCHEMA}
    return conform(
        pa.table({k: pa.array(v, REGISTRATION_SCHEMA.field(k).type) for k, v in cols.items()}),
        REGISTRATION_SCHEMA,
    )


def _fixed_model() -> dict:
    """The real model structure with hand-set parameters: best level strong, else level against."""
    model = settings_creator().create_settings_dict("duckdb")
    for comp in model["comparisons"]:
        levels = [lv for lv in comp["comparison_levels"] if not lv.get("is_null_level")]
        k = len(levels)
        for i, lv in enumerate(levels):
            if i == k - 1:
                lv["m_probability"], lv["u_probability"] = 0.01, 0.95
            else:
                lv["m_probability"], lv["u_probability"] = 0.9 / (k - 1) * (0.9**i), 0.01 / (i + 1)
    model["probability_two_random_records_match"] = 1e-3
    return model


def _score(rows: list[dict], tmp: Path) -> dict[tuple[str, str], dict]:
    """Score every blocked pair of ``rows`` with the fixed model; key (unique_id_l, unique_id_r)."""
    con = duckdb.connect()
    con.register("_rows", _table(rows))
    con.execute("CREATE TABLE registrations AS SELECT * FROM _rows").fetchall()
    prepare_input(con, "registrations", "link_input")
    con.execute(f"COPY link_input TO '{tmp / 'in.parquet'}' (FORMAT PARQUET)").fetchall()
    eng = DuckDBEngine(tmp / "eng")
    sdf = eng.register_input(tmp / "in.parquet")
    linker = Linker(sdf, _fixed_model(), log_level=logging.ERROR)
    p = linker.inference.predict(warning_mode="never")
    out = {}
    cur = eng.con.execute(f"SELECT * FROM {p.physical_name}")
    names = [d[0] for d in cur.description]
    for row in cur.fetchall():
        r = dict(zip(names, row, strict=True))
        out[(r["unique_id_l"], r["unique_id_r"])] = r
    eng.close()
    return out


# ---------------------------------------------------------------------------
# comparisons
# ---------------------------------------------------------------------------


def test_every_comparison_has_documented_levels():
    comps = all_comparisons()
    assert [c.create_output_column_name() for c in comps] == list(COMPARISON_NAMES)
    for comp in settings_creator().create_settings_dict("duckdb")["comparisons"]:
        name = comp["output_column_name"]
        non_null = [lv for lv in comp["comparison_levels"] if not lv.get("is_null_level")]
        assert set(LEVELS[name]) == {-1, *range(len(non_null))}, name


#: Hand-made pairs, scored once by the fixed model (each pair shares names and a
#: blocking key, nothing else links the groups).
_SCORED_ROWS = [
    # suffixes
    _reg("NC", "1", "ROBERT", "HALE", dob="1960-03-04", name_suffix="JR"),
    _reg("OH", "1", "ROBERT", "HALE", dob="1960-03-04", name_suffix="SR"),
    _reg("NC", "2", "DAVID", "ROSS", dob="1961-05-06", name_suffix="JR"),
    _reg("OH", "2", "DAVID", "ROSS", dob="1961-05-06", name_suffix="JR"),
    _reg("NC", "3", "PAUL", "KING", dob="1962-07-08", name_suffix="JR"),
    _reg("OH", "3", "PAUL", "KING", dob="1962-07-08"),
    # full vs year only: scored on birth_year, not on dob
    _reg("NC", "11", "ANNA", "VOSS", year=1970),
    _reg("OH", "11", "ANNA", "VOSS", dob="1970-02-11"),
    # transposed day and month
    _reg("FL", "12", "MARK", "LUND", dob="1980-03-07"),
    _reg("TX", "12", "MARK", "LUND", dob="1980-07-03"),
    # no DOB on one side: nothing comparable
    _reg("IL", "13", "JOAN", "PRYOR"),
    _reg("TX", "13", "JOAN", "PRYOR", dob="1955-01-20"),
    # sealed token on both sides, year-only publicly
    _reg("NC", "14", "LEON", "BARR", year=1966, dob_token="t" * 64),
    _reg("MI", "14", "LEON", "BARR", year=1966, dob_token="t" * 64),
    # address: same person, same state, different street
    _reg("NC", "21", "IRIS", "TODD", dob="1975-02-11"),
    _reg("OH", "21", "IRIS", "TODD", dob="1975-02-11"),
    _reg("NC", "22", "IRIS", "TODD", dob="1975-02-11", residence_address="9 ELM ST"),
]


@pytest.fixture(scope="module")
def scored(tmp_path_factory):
    return _score(_SCORED_ROWS, tmp_path_factory.mktemp("scored"))


def test_jr_vs_sr_counts_against_and_missing_suffix_is_neutral(scored):
    jr_sr, jr_jr, jr_none = (
        scored[("NC:1", "OH:1")],
        scored[("NC:2", "OH:2")],
        scored[("NC:3", "OH:3")],
    )
    assert jr_sr["gamma_name_suffix"] == 0  # the "different suffix" level
    assert jr_jr["gamma_name_suffix"] == 1
    assert jr_none["gamma_name_suffix"] == -1  # neutral
    assert jr_sr["match_weight"] < jr_none["match_weight"] < jr_jr["match_weight"]


def test_dob_levels_by_granularity(scored):
    year_pair = scored[("NC:11", "OH:11")]
    assert year_pair["gamma_dob"] == -1 and year_pair["gamma_birth_year"] == 1
    transposed = scored[("FL:12", "TX:12")]
    assert LEVELS["dob"][transposed["gamma_dob"]] == "day and month transposed"
    none_pair = scored[("IL:13", "TX:13")]
    assert (
        none_pair["gamma_dob"]
        == none_pair["gamma_birth_year"]
        == none_pair["gamma_dob_token"]
        == -1
    )
    token = scored[("MI:14", "NC:14")]
    assert (
        token["gamma_dob_token"] == 1 and token["gamma_birth_year"] == -1
    )  # the year is not counted twice


def test_address_is_not_evidence_across_states(scored):
    assert scored[("NC:21", "OH:21")]["gamma_address"] == -1
    assert scored[("NC:21", "NC:22")]["gamma_address"] >= 0


def test_placeholder_dob_is_not_a_date(tmp_path):
    con = duckdb.connect()
    con.register(
        "r",
        _table(
            [
                _reg("NC", "1", "A", "B", dob="1900-01-01"),
                _reg("NC", "2", "A", "B", dob="1971-01-01"),
            ]
        ),
    )
    prepare_input(con, "r", "li")
    got = dict(con.execute("SELECT unique_id, dob FROM li").fetchall())
    assert got["NC:1"] is None and got["NC:2"] == dt.date(1971, 1, 1)


def test_soundex_codes():
    con = duckdb.connect()
    for name, code in [
        ("ROBERT", "R163"),
        ("RUPERT", "R163"),
        ("TYMCZAK", "T522"),
        ("PFISTER", "P236"),
        ("LEE", "L000"),
    ]:
        assert con.execute(f"SELECT {soundex_sql(repr(name))}").fetchall()[0][0] == code, name


# ---------------------------------------------------------------------------
# blocking
# ---------------------------------------------------------------------------


def test_capped_keys_bound_every_block(tmp_path):
    rows = [_reg("NY", f"s{i}", "JOHN", "SMITH") for i in range(150)]  # no DOB: only the name key
    rows += [
        _reg("CA", f"y{i}", "MARY", "JONES", year=1950 + i % 3) for i in range(240)
    ]  # refinable by year
    rows += [_reg("TX", f"r{i}", f"RARE{i}", "ZYLSTRA", dob="1990-01-02") for i in range(20)]
    con = duckdb.connect()
    con.register("r", _table(rows))
    cap = 100
    prepare_input(con, "r", "li", block_cap=cap)
    for key in CAPPED_KEYS:
        biggest = con.execute(
            f"SELECT coalesce(max(n), 0) FROM (SELECT count(*) n FROM li WHERE {key} IS NOT NULL GROUP BY {key})"
        ).fetchall()[0][0]
        assert biggest <= cap, key
    # the JOHN SMITH block (150, no year to refine with) is dropped ...
    assert (
        con.execute("SELECT count(bk_name) FROM li WHERE first_name = 'JOHN'").fetchall()[0][0] == 0
    )
    # ... while MARY JONES (240) is refined by birth year into blocks of 80 and kept
    assert (
        con.execute("SELECT count(DISTINCT bk_name) FROM li WHERE first_name = 'MARY'").fetchall()[
            0
        ][0]
        == 3
    )
    # rare names keep the base key
    assert (
        con.execute("SELECT count(bk_name) FROM li WHERE last_name = 'ZYLSTRA'").fetchall()[0][0]
        == 20
    )


def test_blocking_keys_sql_rejects_tiny_cap():
    with pytest.raises(ValueError):
        blocking_keys_sql("x", 1)


# ---------------------------------------------------------------------------
# end to end: train, predict, cluster, model round trip
# ---------------------------------------------------------------------------


@pytest.fixture(scope="module")
def linked(tmp_path_factory):
    from bench.synthetic_registrations import load_nation_registrations
    from voterolls.link.run import LinkRequest, link_registrations
    from voterolls.synth.nation import generate_nation

    base = tmp_path_factory.mktemp("link")
    nation = generate_nation(2500, 11)
    con = duckdb.connect()
    n = load_nation_registrations(con, nation, token_states=["OH", "NC", "TX"])
    (base / "truth").mkdir()
    pq.write_table(nation.truth["duplicate_pairs"], base / "truth" / "duplicate_pairs.parquet")
    res = link_registrations(con, LinkRequest(base / "link", u_max_pairs=1e5, em_max_pairs=2e5, seed=3))
    return {"con": con, "dir": base, "result": res, "n": n}


def test_end_to_end_outputs_follow_the_contract(linked):
    out = linked["dir"] / "link"
    pairs = pq.read_table(out / "pairs.parquet")
    assert tuple(pairs.column_names) == PAIR_COLUMNS
    assert pairs.num_rows == linked["result"].pairs_written > 0
    p = pairs["match_probability"].to_numpy()
    assert ((p >= linked["result"].min_probability) & (p <= 1)).all()
    clusters = pq.read_table(out / "clusters.parquet")
    assert clusters.column_names == ["state", "state_voter_id", "cluster_id"]
    assert clusters.num_rows == linked["n"]  # every registration, singletons included
    assert (out / "model.json").is_file() and (out / "link_report.json").is_file()
    assert not (out / "_work").exists()
    rep = json.loads((out / "link_report.json").read_text())
    assert rep["blocking"]["comparisons_per_record"] > 0
    # the stranger-corrected m and the recalibration maps are reported (counts, no values)
    corrected = {r["comparison"]: r for r in rep["training"]["m_stranger_corrected"]}
    # the DOB token's too where the workspace has sealed tokens
    assert {"first_name", "last_name", "middle_name", "dob"} <= set(corrected)
    assert set(corrected) <= {"first_name", "last_name", "middle_name", "dob", "dob_token"}
    for r in corrected.values():
        assert r["pairs"] >= r["strangers_expected"] >= 0
        assert r["applied"] == (r["matches_expected"] >= 50 and r["strangers_expected"] <= 0.8 * r["pairs"])
        assert abs(sum(r["m"]) - 1) < 1e-3 or not r["applied"]
    recal = rep["training"]["recalibration"]
    # the full class on the birthday model, the others masked (the token map with trained token m)
    assert {"full", "year", "none"} <= set(recal["classes"]) <= {"full", "year", "none", "token"}
    for mp in recal["classes"].values():
        odds = [b["log2_odds"] for b in mp["bins"]]
        assert odds == sorted(odds)  # the map is monotone
    # no names or dates in the report
    text = (out / "link_report.json").read_text()
    assert 'dob":' not in text and 'first_name":' not in text


def test_end_to_end_accuracy_beats_crosscheck(linked):
    ev = evaluate(
        linked["con"], linked["dir"], linked["dir"] / "link" / "pairs.parquet", threshold=0.9
    )
    assert ev["model"]["full"]["f1"] >= 0.9
    assert ev["model"]["year"]["recall"] > 0.6 and ev["crosscheck"]["year"]["recall"] == 0.0
    assert ev["model"]["all"]["recall"] > ev["crosscheck"]["all"]["recall"]


def test_trained_model_sets_suffix_mismatch_against(linked):
    model = load_model(linked["dir"] / "link" / "model.json")
    suffix = next(c for c in model["comparisons"] if c["output_column_name"] == "name_suffix")
    same, diff = (lv for lv in suffix["comparison_levels"] if not lv.get("is_null_level"))
    bf_diff = diff["m_probability"] / diff["u_probability"]
    assert bf_diff < 1 and bf_diff < same["m_probability"] / same["u_probability"]


def test_model_round_trip_reproduces_pairs(linked, tmp_path):
    from voterolls.link.run import LinkRequest, link_registrations

    model = linked["dir"] / "link" / "model.json"
    res = link_registrations(
        linked["con"], LinkRequest(tmp_path / "again", model=model, blocking_analysis=False)
    )
    assert not res.trained
    a = pq.read_table(linked["dir"] / "link" / "pairs.parquet").to_pandas()
    b = pq.read_table(tmp_path / "again" / "pairs.parquet").to_pandas()
    assert len(a) == len(b)
    assert (a["match_probability"] - b["match_probability"]).abs().max() < 1e-9


def test_transfer_parameters_to_another_dialect(linked):
    model = load_model(linked["dir"] / "link" / "model.json")
    spark = settings_creator().create_settings_dict("spark")
    moved = transfer_parameters(model, spark)
    assert (
        moved["probability_two_random_records_match"]
        == model["probability_two_random_records_match"]
    )
    for a, b in zip(model["comparisons"], moved["comparisons"], strict=True):
        for la, lb in zip(a["comparison_levels"], b["comparison_levels"], strict=True):
            assert la.get("m_probability") == lb.get("m_probability")
    broken = json.loads(json.dumps(model))
    broken["comparisons"][0]["comparison_levels"].pop()
    with pytest.raises(UserError):
        transfer_parameters(broken, spark)


def test_bad_model_file_is_a_user_error(tmp_path):
    with pytest.raises(UserError):
        load_model(tmp_path / "missing.json")
    bad = tmp_path / "bad.json"
    bad.write_text("{not json")
    with pytest.raises(UserError):
        load_model(bad)


def test_unknown_engine_is_a_user_error(tmp_path):
    with pytest.raises(UserError):
        make_engine("oracle", tmp_path)


# ---------------------------------------------------------------------------
# Crosscheck and evaluate
# ---------------------------------------------------------------------------


def _cc_rows() -> list[dict]:
    return [
        _reg("NC", "1", "JOHN", "SMITH", dob="1970-01-01"),
        _reg("OH", "1", "JOHN", "SMITH", dob="1970-01-01"),  # flagged
        _reg("OH", "2", "JOHN", "SMITH", dob="1970-01-02"),  # different day: not flagged
        _reg(
            "NC", "2", "JOHN", "SMITH", dob="1970-01-01"
        ),  # same state as NC:1: not a cross-state pair
        _reg("TX", "3", "JON", "SMITH", dob="1970-01-01"),  # nickname: missed by the rule
        _reg("MI", "4", "JOHN", "SMITH", year=1970),  # year only: cannot be flagged
    ]


def test_crosscheck_rule():
    con = duckdb.connect()
    con.register("registrations", _table(_cc_rows()))
    pairs = crosscheck_pairs(con)
    got = set(zip(pairs["state_voter_id_l"].to_pylist(), pairs["state_r"].to_pylist(), strict=True))
    assert pairs.num_rows == 2 == crosscheck_count(con)  # NC:1-OH:1 and NC:2-OH:1
    assert got == {("1", "OH"), ("2", "OH")}
    assert (pa.compute.less(pairs["state_l"], pairs["state_r"])).to_pylist() == [True, True]


def test_scores():
    s = Scores(tp=8, fp=2, fn=8)
    assert s.precision == 0.8 and s.recall == 0.5 and abs(s.f1 - 2 * 0.4 / 1.3) < 1e-12
    assert Scores(0, 0, 0).precision is None and Scores(0, 0, 3).recall == 0.0


def test_evaluate_on_hand_made_truth(tmp_path):
    rows = _cc_rows() + [
        _reg("FL", "9", "ANNA", "VOSS", dob="1980-05-05"),
        _reg("GA", "9", "ANNA", "VOSS", year=1980),
        _reg("IL", "9", "ANNA", "VOSS"),
    ]
    con = duckdb.connect()
    con.register("registrations", _table(rows))
    truth = pa.table(
        {
            "state_l": ["NC", "TX", "FL", "IL", "OH", "ZZ"],
            "state_voter_id_l": ["1", "3", "9", "9", "2", "0"],
            "state_r": ["OH", "NC", "GA", "FL", "NC", "NC"],
            "state_voter_id_r": ["1", "1", "9", "9", "2", "1"],
            "kind": ["cross_state"] * 5 + ["cross_state"],  # the last one is not in the workspace
        }
    )
    (tmp_path / "truth").mkdir()
    pq.write_table(truth, tmp_path / "truth" / "duplicate_pairs.parquet")
    pred = pa.table(
        {
            "state_l": ["NC", "FL", "NC", "FL", "FL"],
            "state_voter_id_l": ["1", "9", "1", "9", "9"],
            "state_r": ["OH", "GA", "MI", "IL", "IL"],
            "state_voter_id_r": ["1", "9", "4", "9", "9"],
            "match_probability": [0.99, 0.95, 0.97, 0.5, 0.5],
        }
    )
    pq.write_table(pred.slice(0, 4), tmp_path / "pairs.parquet")
    ev = evaluate(con, tmp_path, tmp_path / "pairs.parquet", threshold=0.9)
    assert ev["truth_pairs_in_workspace"] == 5 and ev["truth_cross_state_pairs"] == 6
    m = ev["model"]
    # full: NC1-OH1 (tp), TX3-NC1 (fn), OH2-NC2 (fn)
    assert (m["full"]["tp"], m["full"]["fp"], m["full"]["fn"]) == (1, 0, 2)
    # year: FL9-GA9 (tp), NC1-MI4 (fp)
    assert (m["year"]["tp"], m["year"]["fp"], m["year"]["fn"]) == (1, 1, 0)
    # none: IL9-FL9 scored 0.5 < threshold (fn), but it was scored
    assert (m["none"]["tp"], m["none"]["fn"]) == (0, 1) and ev["scored_recall"]["none"] == 1.0
    cc = ev["crosscheck"]
    assert (cc["full"]["tp"], cc["full"]["fp"], cc["full"]["fn"]) == (
        1,
        1,
        2,
    )  # NC2-OH1 is a false flag
    assert cc["year"]["recall"] == 0.0
    with pytest.raises(UserError):
        evaluate(con, tmp_path / "nowhere", tmp_path / "pairs.parquet", threshold=0.9)


# ---------------------------------------------------------------------------
# Spark gives the same pairs as DuckDB
# ---------------------------------------------------------------------------


@pytest.mark.spark
def test_spark_matches_duckdb(linked, tmp_path):
    from voterolls.link.run import LinkRequest, link_registrations

    model = linked["dir"] / "link" / "model.json"
    res = link_registrations(
        linked["con"],
        LinkRequest(
            tmp_path / "spark",
            engine="spark",
            model=model,
            blocking_analysis=False,
            threads=2,
        ),
    )
    assert res.engine == "spark"
    a = pq.read_table(linked["dir"] / "link" / "pairs.parquet").to_pandas()
    b = pq.read_table(tmp_path / "spark" / "pairs.parquet").to_pandas()
    key = ["state_l", "state_voter_id_l", "state_r", "state_voter_id_r"]
    j = a.merge(b, on=key, how="outer", suffixes=("_d", "_s"), indicator=True)
    # Jaro-Winkler implementations differ in the last digits; allow a handful of boundary pairs
    assert (j["_merge"] != "both").sum() <= max(2, 0.01 * len(a))
    both = j[j["_merge"] == "both"]
    close = (both["match_probability_d"] - both["match_probability_s"]).abs() < 1e-3
    assert close.mean() > 0.98
    for c in COMPARISON_NAMES:
        assert (both[f"gamma_{c}_d"] == both[f"gamma_{c}_s"]).mean() > 0.98, c


def test_cli_reports_a_missing_workspace_as_a_user_error(tmp_path):
    from voterolls.link.commands import evaluate_command, link_command

    with pytest.raises(UserError, match="workspace does not exist"):
        link_command(workspace=tmp_path / "missing")
    with pytest.raises(UserError, match="workspace does not exist"):
        evaluate_command(truth=tmp_path, workspace=tmp_path / "missing")
