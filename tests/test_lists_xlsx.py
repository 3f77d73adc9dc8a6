"""Lists as .xlsx: opened with openpyxl, ZIPs / ids / county codes stay text, NVRA dates as columns."""

from __future__ import annotations

import datetime as dt

import duckdb
import pytest

openpyxl = pytest.importorskip("openpyxl")

from voterolls.lists import ActionPolicy, movers_and_duplicates  # noqa: E402
from voterolls.lists.actions import HOLD, SEND_NOTICE, notice_window  # noqa: E402
from voterolls.lists.xlsx import NVRA_COLUMNS, PROBABILITY_DECIMALS, display_probability  # noqa: E402


def _con() -> duckdb.DuckDBPyConnection:
    """NJ (ZIPs with a leading zero, zero-padded ids and county codes) and a newer PA record."""
    con = duckdb.connect()
    con.execute(
        """
        CREATE TABLE registrations AS SELECT * FROM (VALUES
          ('NJ','000123','01','DOE','JANE',NULL,NULL,1980::SMALLINT,DATE '1980-03-07','1 A ST','OCEAN CITY','08320',DATE '2010-01-01','active'),
          ('PA','PA9','51','DOE','JANE',NULL,NULL,1980::SMALLINT,DATE '1980-03-07','2 B AVE','PHILADELPHIA','19104',DATE '2020-05-01','active'),
          ('NJ','000456','05','ROE','RICHARD',NULL,NULL,1975::SMALLINT,DATE '1975-06-01','3 C RD','CAMDEN','08101',DATE '2012-01-01','active'),
          ('PA','PA7','51','ROE','RICHARD',NULL,NULL,1975::SMALLINT,DATE '1975-06-01','4 D LN','PHILADELPHIA','19103',DATE '2021-01-01','active')
        ) t(state, state_voter_id, county, last_name, first_name, middle_name, name_suffix, birth_year, dob,
            residence_address, residence_city, residence_zip5, registration_date, status)
        """
    )
    con.execute(
        """
        CREATE TABLE pairs AS SELECT * FROM (VALUES
          ('NJ','000123','PA','PA9',0.987654321012345,'full','full',2),
          ('PA','PA7','NJ','000456',0.612345678901234,'full','full',1)
        ) t(state_l, state_voter_id_l, state_r, state_voter_id_r, match_probability,
            dob_granularity_l, dob_granularity_r, gamma_first_name)
        """
    )
    return con


def _rows(path) -> list[dict]:
    sheet = openpyxl.load_workbook(path)["list"]
    header = [c.value for c in sheet[1]]
    return [dict(zip(header, row, strict=True)) for row in sheet.iter_rows(min_row=2)]


@pytest.mark.parametrize("as_of", [dt.date(2026, 1, 15), dt.date(2026, 9, 15)])
def test_movers_xlsx_keeps_text_codes_and_gives_nvra_dates(tmp_path, as_of) -> None:
    policy = ActionPolicy(as_of=as_of)
    summaries = movers_and_duplicates(_con(), "NJ", "pairs", tmp_path, policy)
    movers = next(s for s in summaries if s.name == "cross_state_movers")
    path = tmp_path / "cross_state_movers.xlsx"
    assert str(path) in movers.files
    rows = _rows(path)
    assert len(rows) == movers.rows == 2
    by_id = {r["this_state_voter_id"].value: r for r in rows}
    assert set(by_id) == {"000123", "000456"}  # zero-padded ids stay as written
    jane = by_id["000123"]
    for col, expected in (("this_residence_zip5", "08320"), ("this_county", "01")):
        assert jane[col].value == expected and jane[col].data_type == "s", col
    assert "other_county" not in jane  # another state's registration: state, date and status only
    assert jane["this_residence_zip5"].number_format == "@"  # stays text when edited
    assert jane["match_probability"].value == 0.9876  # cut to PROBABILITY_DECIMALS places
    assert jane["this_dob"].is_date and jane["this_dob"].value.date() == dt.date(1980, 3, 7)

    window = notice_window(policy)
    for row in rows:
        action = row["recommended_action"].value
        dates = [row[c].value for c in NVRA_COLUMNS]
        if action in (SEND_NOTICE, HOLD):
            assert [d.date() for d in dates] == [window.notice_from, window.notice_by, window.earliest_removal]
        else:
            assert dates == [None, None, None], action
    assert jane["recommended_action"].value == (SEND_NOTICE if as_of.month == 1 else HOLD)
    about = {r[0].value: r[1].value for r in openpyxl.load_workbook(path)["about"].iter_rows()}
    assert "20507(d)(1)(B)" in about["nvra_earliest_removal"]


def test_display_probability_never_shows_a_near_certain_match_as_certain() -> None:
    assert PROBABILITY_DECIMALS == 4
    assert display_probability(0.99997) == 0.9999
    assert display_probability(1.0) == 1.0
    assert display_probability(0.123456) == 0.1234
    assert display_probability(0.29) == 0.29  # not 0.2899 from binary floating point


def test_notice_window_follows_the_federal_calendar() -> None:
    # 2026 general: Nov 3 (quiet period from Aug 5); 2028: Nov 7; 2030: Nov 5.
    before = notice_window(ActionPolicy(as_of=dt.date(2026, 3, 1)))
    assert (before.notice_from, before.notice_by) == (dt.date(2026, 3, 1), dt.date(2026, 8, 4))
    assert before.earliest_removal == dt.date(2028, 11, 8)  # the day after the second election
    held = notice_window(ActionPolicy(as_of=dt.date(2026, 9, 1)))
    assert (held.notice_from, held.notice_by) == (dt.date(2026, 11, 4), dt.date(2028, 8, 8))
    assert held.earliest_removal == dt.date(2030, 11, 6)
