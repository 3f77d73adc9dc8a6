"""The experimental joint full-name levels (``joint_names``): structure, derived m, saved-model detection.

Hand-made registrations only; the accuracy / calibration experiment is in
docs/LINKAGE.md ("Known limits") and is not asserted here.
"""

from __future__ import annotations

import logging

import duckdb
from splink import Linker

from voterolls.link.comparisons import (
    FULL_NAME_LABEL,
    FULL_NAME_NEUTRAL_LABEL,
    LEVELS,
    is_joint_model,
)
from voterolls.link.engines import make_engine
from voterolls.link.prepare import prepare_input
from voterolls.link.settings import settings_creator
from voterolls.link.train import _levels, derive_joint_name_m, floor_m


def test_joint_levels_sit_on_top_and_plain_models_are_not_joint():
    joint = settings_creator(joint_names=True).create_settings_dict("duckdb")
    plain = settings_creator().create_settings_dict("duckdb")
    assert is_joint_model(joint) and not is_joint_model(plain)
    first = [lv for lv in joint["comparisons"][0]["comparison_levels"] if not lv.get("is_null_level")]
    last = [lv for lv in joint["comparisons"][1]["comparison_levels"] if not lv.get("is_null_level")]
    assert first[0]["label_for_charts"] == FULL_NAME_LABEL
    assert first[0]["tf_adjustment_column"] == "full_name"
    assert last[0]["label_for_charts"] == FULL_NAME_NEUTRAL_LABEL
    plain_first = [lv for lv in plain["comparisons"][0]["comparison_levels"] if not lv.get("is_null_level")]
    assert len(first) == len(plain_first) + 1
    settings_creator()  # LEVELS describes the default (plain) model again
    assert LEVELS["first_name"][5] == "exact"


def test_derived_m_weighs_the_full_name_once(tmp_path):
    con = duckdb.connect()
    con.execute(
        """CREATE TABLE r AS SELECT * FROM (VALUES
           ('NC', '1', 'full', 'JOSE', 'GARCIA', DATE '1970-02-11'),
           ('OH', '1', 'full', 'JOSE', 'GARCIA', DATE '1970-02-11'))
           t(state, state_voter_id, dob_granularity, first_name, last_name, dob)"""
    )
    prepare_input(con, "r", "li")
    assert con.execute("SELECT DISTINCT full_name FROM li").fetchall() == [("JOSE GARCIA",)]
    con.execute(f"COPY li TO '{tmp_path / 'in.parquet'}' (FORMAT PARQUET)")
    eng = make_engine("duckdb", tmp_path / "eng")
    try:
        linker = Linker(eng.register_input(tmp_path / "in.parquet"), settings_creator(True), log_level=logging.ERROR)
        first, last = _levels(linker, "first_name"), _levels(linker, "last_name")
        # as EM would leave them: (DOB, last) session -> P(first exact | match) on the full-name level;
        # (DOB, first) session splits exact surnames over the two top levels.
        first[0].m_probability, first[0].u_probability = 0.88, 3e-6
        last[0].m_probability, last[0].u_probability = 0.80, 3e-6
        last[1].m_probability, last[1].u_probability = 0.13, 7e-4
        changed = derive_joint_name_m(linker)
        floor_m(linker)
    finally:
        eng.close()
    assert len(changed) == 3
    assert first[1].m_probability == 0.88  # first exact, surname differs: same m as first exact
    assert abs(last[1].m_probability - 0.93) < 1e-12  # P(last exact | match)
    # the surname's own factor on a full-name match is P(last exact | match), not m/u of a rare event
    assert abs(last[0].m_probability / last[0].u_probability - 0.93) < 1e-9
