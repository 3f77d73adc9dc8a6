"""Pins what voterolls.link.splink_adapter reads and writes inside Splink (its private API), so a
Splink upgrade that moves an internal fails here rather than in a linkage run."""

from __future__ import annotations

import json
import logging

import duckdb
import pytest
from splink import Linker

from voterolls.link import splink_adapter as sa
from voterolls.link.comparisons import COMPARISON_NAMES
from voterolls.link.engines import make_engine
from voterolls.link.prepare import prepare_input
from voterolls.link.settings import settings_creator


@pytest.fixture()
def linker(tmp_path):
    con = duckdb.connect()
    con.execute(
        """CREATE TABLE registrations AS SELECT * FROM (VALUES
           ('NC', '1', 'full', 'ANNA', 'ANNA', 'VOSS', DATE '1970-02-11', 1970, 'F'),
           ('OH', '1', 'full', 'ANNA', 'ANNA', 'VOSS', DATE '1970-02-11', 1970, 'F'),
           ('TX', '2', 'full', 'ANNA', 'ANNA', 'VOSS', DATE '1971-02-11', 1971, 'F'),
           ('PA', '3', 'full', 'BERT', 'BERT', 'VOSS', DATE '1970-02-11', 1970, 'M'))
           t(state, state_voter_id, dob_granularity, first_name, first_name_canonical, last_name,
             dob, birth_year, gender)"""
    )
    prepare_input(con, "registrations", "li")
    con.execute(f"COPY li TO '{tmp_path / 'in.parquet'}' (FORMAT PARQUET)")
    eng = make_engine("duckdb", tmp_path / "eng")
    try:
        yield eng, Linker(eng.register_input(tmp_path / "in.parquet"), settings_creator(), log_level=logging.ERROR)
    finally:
        eng.close()


def test_prior_is_read_and_set_and_saved_with_the_model(linker, tmp_path):
    _, lk = linker
    before = sa.model_prior(lk)
    assert 0 < before < 1
    sa.set_model_prior(lk, 1e-5)
    assert sa.model_prior(lk) == 1e-5
    lk.misc.save_model_to_json(str(tmp_path / "model.json"), overwrite=True)
    saved = json.loads((tmp_path / "model.json").read_text())
    assert saved["probability_two_random_records_match"] == pytest.approx(1e-5)


def test_dialect_comparisons_and_trained_m_u(linker):
    _, lk = linker
    assert sa.sql_dialect(lk) == "duckdb"
    comparisons = sa.model_comparisons(lk)
    assert [c.output_column_name for c in comparisons] == list(COMPARISON_NAMES)
    level = next(lv for lv in comparisons[0].comparison_levels if not lv.is_null_level)
    level.m_probability = 0.7
    level.u_probability = 0.01
    assert sa.level_m(level) == 0.7 and sa.level_u(level) == 0.01
    from splink.internals.constants import LEVEL_NOT_OBSERVED_TEXT

    level.m_probability = LEVEL_NOT_OBSERVED_TEXT  # what EM leaves for a level it never saw
    assert sa.level_m(level) is None


def test_score_pairs_gives_splinks_own_weights_with_the_gammas(linker):
    eng, lk = linker
    scored = sa.score_pairs(lk)
    ours = dict(eng.con.execute(
        f"SELECT unique_id_l || '|' || unique_id_r, match_weight FROM {scored.physical_name}").fetchall())
    cols = {r[0] for r in eng.con.execute(f"DESCRIBE {scored.physical_name}").fetchall()}
    reference = lk.inference.predict(warning_mode="never")
    theirs = dict(eng.con.execute(
        f"SELECT unique_id_l || '|' || unique_id_r, match_weight FROM {reference.physical_name}").fetchall())
    assert ours and ours.keys() == theirs.keys()
    assert all(ours[k] == pytest.approx(theirs[k]) for k in ours)
    assert all(f"gamma_{c}" in cols for c in COMPARISON_NAMES)
    assert "first_name_l" not in cols  # compared values are not copied into the scored table


def test_a_model_snapshot_is_put_back_whole(linker):
    _, lk = linker
    level = next(lv for lv in sa.model_comparisons(lk)[0].comparison_levels if not lv.is_null_level)
    level.m_probability = 0.7
    saved = sa.model_snapshot(lk)
    next(lv for lv in sa.model_comparisons(lk)[0].comparison_levels if not lv.is_null_level).m_probability = 0.2
    sa.restore_model(lk, saved)
    restored = next(lv for lv in sa.model_comparisons(lk)[0].comparison_levels if not lv.is_null_level)
    assert sa.level_m(restored) == 0.7
