"""List-maintenance outputs: actions within the law, policy-limited fields, the 90-day hold."""

from __future__ import annotations

import datetime as dt
import json

import duckdb
import pytest

from voterolls.lists import (
    ACTIONS,
    ActionPolicy,
    movers_and_duplicates,
    next_federal_general_election,
)
from voterolls.lists.build import shared_dob_granularity
from voterolls.lists.evidence import levels_from_model

MODEL = {
    "comparisons": [
        {
            "output_column_name": "first_name",
            "comparison_levels": [
                {"sql_condition": "a IS NULL", "label_for_charts": "null", "is_null_level": True},
                {"sql_condition": "exact", "label_for_charts": "exact match"},
                {"sql_condition": "jw", "label_for_charts": "Jaro-Winkler >= 0.9"},
                {"sql_condition": "ELSE", "label_for_charts": "all other"},
            ],
        }
    ]
}


def _con() -> duckdb.DuckDBPyConnection:
    con = duckdb.connect()
    con.execute(
        """
        CREATE TABLE registrations AS SELECT * FROM (VALUES
          ('OH','OH1','FRANKLIN','DOE','JANE',NULL,NULL,1980::SMALLINT,DATE '1980-03-07','1 A ST','COLUMBUS','43004',DATE '2010-01-01','active'),
          ('NY','NY1','KINGS','DOE','JANE',NULL,NULL,1980::SMALLINT,DATE '1980-03-07','2 B AVE','BROOKLYN','11201',DATE '2020-05-01','active'),
          ('NC','NC1','WAKE','ROE','RICHARD',NULL,NULL,1975::SMALLINT,NULL,'3 C RD','CARY','27517',DATE '2012-01-01','active'),
          ('OH','OH2','FRANKLIN','ROE','RICHARD',NULL,NULL,1975::SMALLINT,DATE '1975-06-01','4 D LN','COLUMBUS','43004',DATE '2021-01-01','active'),
          ('OH','OH3','FRANKLIN','ROE','RICK',NULL,NULL,1975::SMALLINT,DATE '1975-06-01','4 D LN','COLUMBUS','43004',DATE '2021-02-01','active'),
          ('AK','AK1','ANCH','DOE','JANE',NULL,NULL,NULL,NULL,'5 E ST','ANCHORAGE','99501',DATE '2022-01-01','active')
        ) t(state, state_voter_id, county, last_name, first_name, middle_name, name_suffix, birth_year, dob,
            residence_address, residence_city, residence_zip5, registration_date, status)
        """
    )
    con.execute(
        """
        CREATE TABLE pairs AS SELECT * FROM (VALUES
          ('OH','OH1','NY','NY1',0.99,'full','full',2),
          ('NC','NC1','OH','OH2',0.97,'year','full',2),
          ('OH','OH2','OH','OH3',0.80,'full','full',1),
          ('AK','AK1','OH','OH1',0.30,'none','full',0)
        ) t(state_l, state_voter_id_l, state_r, state_voter_id_r, match_probability,
            dob_granularity_l, dob_granularity_r, gamma_first_name)
        """
    )
    return con


def test_federal_election_dates() -> None:
    assert next_federal_general_election(dt.date(2026, 1, 1)) == dt.date(2026, 11, 3)
    assert next_federal_general_election(dt.date(2024, 11, 6)) == dt.date(2026, 11, 3)
    assert next_federal_general_election(dt.date(2027, 3, 1)) == dt.date(2028, 11, 7)


def test_shared_granularity_is_the_coarser_policy() -> None:
    assert shared_dob_granularity("OH", "NY") == "full"
    assert shared_dob_granularity("NC", "OH") == "year"
    assert shared_dob_granularity("OH", "AK") == "none"


def test_movers_list_actions_and_policy_limits(tmp_path) -> None:
    con = _con()
    policy = ActionPolicy(as_of=dt.date(2026, 1, 15), federal_election=dt.date(2026, 11, 3))
    summaries = movers_and_duplicates(con, "OH", "pairs", tmp_path, policy, levels_from_model(MODEL))
    movers = duckdb.sql(f"SELECT * FROM read_parquet('{tmp_path}/cross_state_movers.parquet')").fetchall()
    cols = [d[0] for d in duckdb.sql(f"DESCRIBE SELECT * FROM read_parquet('{tmp_path}/cross_state_movers.parquet')").fetchall()]
    rows = [dict(zip(cols, r, strict=True)) for r in movers]
    # OH1 moved to NY (NY newer): on OH's list. OH2 is newer than NC1: belongs on NC's list, not OH's.
    # AK1 is newer than OH1 but the probability is low: kept, labelled no action.
    ids = sorted((r["this_state_voter_id"], r["other_state"]) for r in rows)
    assert ids == [("OH1", "AK"), ("OH1", "NY")]
    ny = next(r for r in rows if r["other_state"] == "NY")
    assert ny["recommended_action"] == "send confirmation notice"
    assert "other_dob" not in ny and "other_state_voter_id" not in ny  # docs/PRIVACY.md: never
    assert ny["evidence"] == "first_name: exact match"  # the fixture model has no m/u: no weight
    ak = next(r for r in rows if r["other_state"] == "AK")
    assert ak["recommended_action"] == "no action (probable different person)"
    assert ak["other_registration_date"] == dt.date(2022, 1, 1) and ak["other_status"] == "active"
    assert "phone" not in " ".join(cols) and "email" not in " ".join(cols)
    by_name = {s.name: s for s in summaries}
    assert by_name["cross_state_movers"].rows == 2
    assert by_name["cross_state_movers"].expected_false_positives_at_notice == pytest.approx(0.01)
    assert by_name["in_state_duplicates"].rows == 1
    assert (tmp_path / "cross_state_movers.csv").read_text().count("\n") == 3


def test_evidence_lists_weights_strongest_first_without_neutral_comparisons(tmp_path) -> None:
    model = {
        "comparisons": [
            {
                "output_column_name": "first_name",
                "comparison_levels": [
                    {"sql_condition": "n", "label_for_charts": "null", "is_null_level": True},
                    {"sql_condition": "e", "label_for_charts": "exact", "m_probability": 0.9, "u_probability": 0.01},
                    {"sql_condition": "ELSE", "label_for_charts": "other", "m_probability": 0.1, "u_probability": 0.99},
                ],
            },
            {
                "output_column_name": "dob",
                "comparison_levels": [
                    {"sql_condition": "n", "label_for_charts": "null", "is_null_level": True},
                    {"sql_condition": "e", "label_for_charts": "exact", "m_probability": 0.95, "u_probability": 0.0001},
                    {"sql_condition": "ELSE", "label_for_charts": "other", "m_probability": 0.05, "u_probability": 0.9999},
                ],
            },
        ]
    }
    from voterolls.lists.evidence import evidence_sql

    levels = levels_from_model(model)
    sql = evidence_sql(levels, {"gamma_first_name", "gamma_dob"})
    rows = duckdb.sql(
        f"SELECT {sql} FROM (VALUES (1, 1), (0, -1), (-1, -1)) t(gamma_first_name, gamma_dob)"
    ).fetchall()
    assert rows[0][0] == "dob: exact (+13.2); first_name: exact (+6.5)"  # ordered by contribution
    assert rows[1][0] == "first_name: other (-3.3)"  # the DOB was not compared: left out
    assert rows[2][0] == ""


def test_quiet_period_holds_residence_rows(tmp_path) -> None:
    con = _con()
    policy = ActionPolicy(as_of=dt.date(2026, 9, 1), federal_election=dt.date(2026, 11, 3))
    assert policy.in_quiet_period and "90 days" in policy.hold_reason
    summaries = movers_and_duplicates(con, "OH", "pairs", tmp_path, policy, [])
    actions = dict(
        duckdb.sql(f"SELECT other_state, recommended_action FROM read_parquet('{tmp_path}/cross_state_movers.parquet')").fetchall()
    )
    assert actions["NY"] == "hold: NVRA 90-day quiet period"
    assert summaries[0].held_reason is not None
    # in-state duplicates are not residence based: still 'review'
    dup = duckdb.sql(f"SELECT recommended_action FROM read_parquet('{tmp_path}/in_state_duplicates.parquet')").fetchall()[0]
    assert dup == ("review",)


def test_no_list_ever_recommends_removal(tmp_path) -> None:
    con = _con()
    for as_of in (dt.date(2026, 1, 1), dt.date(2026, 10, 1)):
        out = tmp_path / as_of.isoformat()
        out.mkdir()
        for state in ("OH", "NC", "NY", "AK"):
            movers_and_duplicates(con, state, "pairs", out, ActionPolicy(as_of=as_of, federal_election=dt.date(2026, 11, 3)), [])
            for name in ("cross_state_movers", "in_state_duplicates"):
                acts = {r[0] for r in duckdb.sql(f"SELECT recommended_action FROM read_parquet('{out}/{name}.parquet')").fetchall()}
                assert acts <= set(ACTIONS)
                assert not any("remov" in a for a in acts)


def test_thresholds_validated() -> None:
    with pytest.raises(ValueError):
        ActionPolicy(notice_threshold=0.4, review_threshold=0.5)
    assert json.dumps(ACTIONS)


def test_evidence_uses_the_models_own_words_for_not_compared() -> None:
    """A DOB-token level that was not used because public dates were compared is not 'missing'."""
    model = {"comparisons": [
        {"output_column_name": "dob_token", "comparison_levels": [
            {"sql_condition": "x", "label_for_charts": "public dates compared instead, or no token", "is_null_level": True},
            {"sql_condition": "a = b", "label_for_charts": "sealed DOB token exact"},
            {"sql_condition": "ELSE", "label_for_charts": "different"}]},
        {"output_column_name": "gender", "comparison_levels": [
            {"sql_condition": "g IS NULL", "label_for_charts": "gender is NULL", "is_null_level": True},
            {"sql_condition": "g_l = g_r", "label_for_charts": "same"},
            {"sql_condition": "ELSE", "label_for_charts": "different"}]},
    ]}  # fmt: skip
    tok, sex = levels_from_model(model)
    assert tok.labels == {-1: "public dates compared instead, or no token", 1: "sealed DOB token exact", 0: "different"}
    assert sex.labels[-1] == "missing on one side"
