"""Linkage engine options and the public prior API: memory limit, Spark shuffle partitions,
the prior fixed point, re-estimating the prior for a reused model, the compact scored table.

Small inputs only (a ~2,500-person synthetic nation, trained with small samples).
"""

from __future__ import annotations

import json

import duckdb
import numpy as np
import pyarrow.parquet as pq
import pytest

from voterolls.errors import UserError
from voterolls.link import log2_odds, prior_fixed_point
from voterolls.link.engines import make_engine
from voterolls.link.engines.duckdb import ConnectionQueries
from voterolls.link.engines.spark import PARTITIONS_ENV, ROWS_PER_PARTITION, shuffle_partitions


def test_shuffle_partitions_scale_with_the_data_and_obey_overrides(monkeypatch):
    monkeypatch.delenv(PARTITIONS_ENV, raising=False)
    assert shuffle_partitions(2) == 4  # at least two per core, at least 4
    assert shuffle_partitions(8, rows=1000) == 16
    assert shuffle_partitions(2, rows=50 * ROWS_PER_PARTITION) == 50
    assert shuffle_partitions(2, rows=10**10) == 4000  # capped
    assert shuffle_partitions(2, rows=10**6, given=7) == 7
    monkeypatch.setenv(PARTITIONS_ENV, "12")
    assert shuffle_partitions(2, rows=10**8) == 12
    assert shuffle_partitions(2, rows=10**8, given=3) == 3  # an explicit option beats the env
    monkeypatch.setenv(PARTITIONS_ENV, "many")
    with pytest.raises(UserError, match=PARTITIONS_ENV):
        shuffle_partitions(2)
    with pytest.raises(UserError):
        shuffle_partitions(2, given=0)


def test_duckdb_memory_limit_is_applied_and_checked(tmp_path):
    eng = make_engine("duckdb", tmp_path / "a", memory_limit="1GB", threads=1)
    try:
        limit = eng.scalar("SELECT current_setting('memory_limit')")
        assert limit.replace(" ", "").upper() in {"1.0GB", "1GB", "953.6MIB", "0.9GIB"}
        assert eng.scalar("SELECT current_setting('threads')") == 1
    finally:
        eng.close()
    with pytest.raises(UserError, match="memory size"):
        make_engine("duckdb", tmp_path / "b", memory_limit="lots")


def test_duckdb_memory_limit_defaults_to_a_share_of_ram_or_the_env(tmp_path, monkeypatch):
    from voterolls.link.engines.duckdb import MEMORY_ENV, default_memory_limit

    monkeypatch.delenv(MEMORY_ENV, raising=False)
    default = default_memory_limit()
    assert default is None or (default.endswith("MB") and int(default[:-2]) > 0)
    monkeypatch.setenv(MEMORY_ENV, "512MB")
    eng = make_engine("duckdb", tmp_path / "c")
    try:
        limit = eng.scalar("SELECT current_setting('memory_limit')").replace(" ", "").upper()
        assert limit in {"512.0MB", "512MB", "488.2MIB", "488.2MB"}
    finally:
        eng.close()


class _Table(ConnectionQueries):
    """A DuckDB engine over a hand-made scored table."""

    def __init__(self, weights: list[float]):
        super().__init__(duckdb.connect())
        self.con.execute("CREATE TABLE t (match_weight DOUBLE, gamma_dob INTEGER)")
        self.con.executemany("INSERT INTO t VALUES (?, 1)", [(w,) for w in weights])


def test_prior_fixed_point_solves_the_base_rate_from_any_start():
    # 50 pairs with overwhelming evidence (certain matches) and 1,000 with none:
    # the fixed point is lam = (50 + 1000 * lam / (1 - lam) ...) / pairs_total.
    shift = log2_odds(1e-6)
    eng = _Table([60.0 + shift] * 50 + [0.0 + shift] * 1000)
    total = 1e6
    a, it_a = prior_fixed_point(eng, "t", "gamma_dob >= 0", total, shift, 1e-9)
    b, _ = prior_fixed_point(eng, "t", "gamma_dob >= 0", total, shift, 0.2)
    assert it_a > 1 and abs(a - b) <= 1e-10 * a
    # posterior of an evidence-0 pair at prior lam is lam; so lam = (50 + 1000 lam) / 1e6
    assert a == pytest.approx(50 / (total - 1000), rel=1e-6)


@pytest.fixture(scope="module")
def linked(tmp_path_factory):
    from bench.synthetic_registrations import load_nation_registrations
    from voterolls.link.run import LinkRequest, link_registrations
    from voterolls.synth.nation import generate_nation

    base = tmp_path_factory.mktemp("link_opts")
    nation = generate_nation(2500, 11)
    con = duckdb.connect()
    load_nation_registrations(con, nation, token_states=["OH", "NC", "TX"])
    res = link_registrations(
        con, LinkRequest(base / "link", u_max_pairs=1e5, em_max_pairs=2e5, seed=3, blocking_analysis=False)
    )
    return {"con": con, "dir": base, "result": res}


def test_reused_model_gets_the_prior_of_the_new_data(linked, tmp_path):
    from voterolls.link.run import LinkRequest, link_registrations

    model = json.loads((linked["dir"] / "link" / "model.json").read_text())
    trained_prior = model["probability_two_random_records_match"]
    assert trained_prior == pytest.approx(linked["result"].prior)
    # A model saved on a data set with 100x the share of matches ...
    model["probability_two_random_records_match"] = trained_prior * 100
    other = tmp_path / "other_model.json"
    other.write_text(json.dumps(model))
    res = link_registrations(linked["con"], LinkRequest(tmp_path / "again", model=other, blocking_analysis=False))
    # ... is applied with this data's prior, not its own,
    assert not res.trained
    assert res.prior == pytest.approx(trained_prior, rel=1e-6)
    assert res.training["model_prior"] == pytest.approx(trained_prior * 100)
    a = pq.read_table(linked["dir"] / "link" / "pairs.parquet").to_pandas()
    b = pq.read_table(tmp_path / "again" / "pairs.parquet").to_pandas()
    assert len(a) == len(b)
    assert np.abs(a["match_probability"].to_numpy() - b["match_probability"].to_numpy()).max() < 1e-6
    # and W/link/model.json carries it for later stages (external lists).
    saved = json.loads((tmp_path / "again" / "model.json").read_text())
    assert saved["probability_two_random_records_match"] == pytest.approx(trained_prior, rel=1e-6)


def test_scored_table_is_compact_and_tokens_are_integers(tmp_path):
    """The engine's scored table keeps ids, retained columns, gammas and weights only."""
    import logging

    from splink import Linker

    from voterolls.link.predict import score_pairs
    from voterolls.link.prepare import prepare_input
    from voterolls.link.settings import settings_creator

    con = duckdb.connect()
    con.execute(
        """CREATE TABLE registrations AS SELECT * FROM (VALUES
           ('NC', '1', 'full', 'ANNA', 'ANNA', 'VOSS', DATE '1970-02-11', 1970, 'F', repeat('a', 64), repeat('b', 64)),
           ('OH', '1', 'full', 'ANNA', 'ANNA', 'VOSS', DATE '1970-02-11', 1970, 'F', repeat('a', 64), repeat('b', 64)),
           ('TX', '2', 'year', 'ANNA', 'ANNA', 'VOSS', NULL, 1970, 'F', NULL, NULL))
           t(state, state_voter_id, dob_granularity, first_name, first_name_canonical, last_name,
             dob, birth_year, gender, dob_token, ssn4_token)"""
    )
    prepare_input(con, "registrations", "li")
    types = dict(con.execute("SELECT column_name, column_type FROM (DESCRIBE li)").fetchall())
    assert types["dob_token"] == types["ssn4_token"] == types["residence_address"] == "BIGINT"
    assert "last_sx" not in types and "first_initial" not in types
    con.execute(f"COPY li TO '{tmp_path / 'in.parquet'}' (FORMAT PARQUET)")
    eng = make_engine("duckdb", tmp_path / "eng")
    try:
        sdf = eng.register_input(tmp_path / "in.parquet")
        linker = Linker(sdf, settings_creator(), log_level=logging.ERROR)
        scored = score_pairs(linker)
        cols = [r[0] for r in eng.con.execute(f"DESCRIBE {scored.physical_name}").fetchall()]
        rows = eng.con.execute(
            f"SELECT unique_id_l, unique_id_r, gamma_dob_token, gamma_ssn4_token FROM {scored.physical_name} "
            "ORDER BY 1, 2"
        ).fetchall()
    finally:
        eng.close()
    assert "first_name_l" not in cols and "dob_token_l" not in cols
    assert {"state_l", "state_voter_id_r", "dob_granularity_l", "match_weight"} <= set(cols)
    assert all(f"gamma_{c}" in cols for c in ("first_name", "dob", "birth_year", "address"))
    by_pair = {(a, b): (d, s) for a, b, d, s in rows}
    assert by_pair[("NC:1", "OH:1")] == (-1, 1)  # public dates compared instead; SSN4 tokens equal


@pytest.mark.spark
def test_spark_engine_survives_the_previous_linkages_work_dir_being_replaced(tmp_path):
    """The Spark session is process-wide; a second linkage must not shuffle into the first's deleted scratch."""
    import shutil

    from voterolls.link.engines import make_engine

    first = make_engine("spark", tmp_path / "one", threads=2, rows=10)
    df = first.spark.range(100)
    assert df.groupBy(df.id % 7).count().count() == 7
    shutil.rmtree(tmp_path / "one")  # what the next `voterolls link` does to W/link/_work
    second = make_engine("spark", tmp_path / "two", threads=2, rows=10)
    try:
        df = second.spark.range(1000)
        assert df.groupBy(df.id % 13).count().count() == 13  # a shuffle
    finally:
        second.stop()


def _unsorted_pairs(path, n=20_000):
    con = duckdb.connect()
    con.execute(
        f"""COPY (SELECT 'S' || (hash(i) % 7)::VARCHAR AS state, (hash(i * 31) % 100000)::VARCHAR AS v,
                   i AS payload FROM range({n}) t(i)) TO '{path}' (FORMAT PARQUET)"""
    )
    rows = con.execute(f"SELECT state, v, payload FROM read_parquet('{path}')").fetchall()
    con.close()
    return rows


def test_finalise_sorts_on_the_duckdb_engines_own_connection_within_its_limit(tmp_path):
    """The pairs and clusters files are sorted where the engine's memory limit applies
    (a connection of their own sorted every candidate pair of a 10M link in 80% of RAM)."""
    from voterolls.link.predict import finalise

    raw = tmp_path / "raw.parquet"
    rows = _unsorted_pairs(raw)
    eng = make_engine("duckdb", tmp_path / "work", memory_limit="300MB")
    try:
        assert eng.duckdb_connection() is eng.con
        n = finalise(str(raw), tmp_path / "out.parquet", ("state", "v", "payload"), order="state, v, payload",
                     engine=eng)  # fmt: skip
        # the engine keeps not preserving insertion order for its own work
        assert eng.scalar("SELECT current_setting('preserve_insertion_order')") is False
        assert eng.scalar("SELECT current_setting('memory_limit')").startswith("286")  # 300MB in MiB
    finally:
        eng.close()
    out = pq.read_table(tmp_path / "out.parquet").to_pylist()
    assert n == len(rows) == len(out)
    assert [(r["state"], r["v"], r["payload"]) for r in out] == sorted(rows)


def test_finalise_without_a_duckdb_engine_gets_a_bounded_spilling_connection(tmp_path, monkeypatch):
    from voterolls.link import predict

    class NotDuckDB:  # what Spark looks like to finalise: no DuckDB connection of its own
        memory_limit = "200MB"

        def duckdb_connection(self):
            return None

    seen = {}
    real = predict._bounded_connection

    def spy(engine, spill):
        con = real(engine, spill)
        seen["limit"] = con.execute("SELECT current_setting('memory_limit')").fetchall()[0][0]
        seen["temp"] = con.execute("SELECT current_setting('temp_directory')").fetchall()[0][0]
        return con

    monkeypatch.setattr(predict, "_bounded_connection", spy)
    raw = tmp_path / "raw.parquet"
    rows = _unsorted_pairs(raw, 5_000)
    out_path = tmp_path / "link" / "pairs.parquet"
    n = predict.finalise(str(raw), out_path, ("state", "v", "payload"), order="state, v, payload", engine=NotDuckDB())
    assert n == 5_000
    assert seen["limit"].startswith("190")  # 200MB in MiB
    assert seen["temp"].endswith("finalise_tmp") and str(tmp_path / "link" / "_work") in seen["temp"]
    out = pq.read_table(out_path).to_pylist()
    assert [(r["state"], r["v"], r["payload"]) for r in out] == sorted(rows)
