"""Readers on hand-written files in the states' header-less layouts (not made by the project's writer).

Every fixture under tests/fixtures/layouts/<state>/ was typed from the state's
published layout documentation (the source is named in each layout TOML and in
docs/FORMATS.md), with made-up people.  Several vintages per state: other years,
CRLF and LF, latin-1 and UTF-8, 45- and 47-field New York files.  The tests
assert field values (names, DOB granularity, codes mapped AND the original code
kept, history methods), not only row counts, so a wrong layout fact fails here
even when the reader and the writer agree with each other.
"""

from __future__ import annotations

from pathlib import Path

import duckdb
import pyarrow as pa
import pytest

from voterolls.formats import scan
from voterolls.schema import COUNTED_BALLOT_METHODS, VOTE_METHOD, counted_ballot_sql
from voterolls.stats import estimators as es

FIX = Path(__file__).parent / "fixtures" / "layouts"


def read(state: str, fmt: str, *names: str) -> tuple[dict[str, dict], list[dict], object]:
    """Scan fixture files; return (registrations by voter id, history rows, report)."""
    d = FIX / state.lower()
    con = duckdb.connect()
    s = scan(con, [d / n for n in names], state=state, format=fmt)
    regs = s.registrations.to_arrow_table().to_pylist()
    vh = s.vote_history.to_arrow_table().to_pylist() if s.vote_history is not None else []
    rep = s.finish()
    for f in rep.files:
        assert f.rows_read == f.rows_loaded + f.rows_quarantined
    return {r["state_voter_id"]: r for r in regs}, vh, rep


def methods(vh: list[dict]) -> dict[tuple[str, str], tuple[str, str]]:
    """(voter id, election date) -> (vote_method, vote_method_code)."""
    return {
        (h["state_voter_id"], str(h["election_date"])): (h["vote_method"], h["vote_method_code"])
        for h in vh
    }


# ---------------------------------------------------------------------------
# Florida: Voter Extract Disk (38 tab fields, no header) + 5-field history
# ---------------------------------------------------------------------------


def test_fl_2016_county_extract_crlf_with_a_protected_voter() -> None:
    regs, vh, rep = read("FL", "fl_extract", "ALA_20161010.txt", "ALA_H_20161010.txt")
    assert rep.quarantine.num_rows == 0 and len(regs) == 5
    a = regs["100000001"]
    assert (a["last_name"], a["first_name"], a["middle_name"]) == ("ZELLWEGER", "AMARA", "JUNE")
    assert str(a["dob"]) == "1961-03-14" and a["dob_granularity"] == "full"
    assert (a["party"], a["party_code"], a["race"], a["race_code"]) == ("DEM", "DEM", "white", "5")
    assert a["phone"] == "3525550101" and a["county"] == "ALA" and a["residence_zip5"] == "32601"
    b = regs["100000002"]
    assert (b["name_suffix"], b["party"], b["party_code"], b["residence_zip5"]) == ("JR", "UNA", "NPA", "32608")
    # exemption Y + '*' in the personal fields: flagged, nothing personal read
    p = regs["100000003"]
    assert p["_protected"] is True
    assert p["last_name"] is None and p["residence_address"] is None and p["dob_granularity"] == "none"
    assert (regs["100000004"]["status"], regs["100000004"]["status_code"]) == ("inactive", "INA")
    assert (regs["100000005"]["status"], regs["100000005"]["status_code"]) == ("pending", "PRE")
    assert (regs["100000005"]["party"], regs["100000005"]["party_code"]) == ("OTH", "XYZ")
    m = methods(vh)
    assert m[("100000001", "2016-11-08")] == ("in_person", "Y")
    assert m[("100000001", "2016-08-30")] == ("mail", "A")
    assert m[("100000003", "2016-11-08")] == ("early", "E")
    # the codes that are NOT a counted vote (FL DOS layout)
    assert m[("100000002", "2016-11-08")] == ("mail_not_counted", "B")
    assert m[("100000004", "2016-11-08")] == ("did_not_vote", "N")
    assert m[("100000005", "2016-11-08")] == ("provisional_not_counted", "P")
    assert m[("100000002", "2016-08-30")] == ("mail_not_counted", "L")
    # older county code table: provisional ballots that were counted
    assert m[("100000005", "2016-03-15")] == ("provisional", "Z")
    assert m[("100000004", "2016-03-15")] == ("provisional", "F")
    # a code no layout documents: kept, method unknown
    assert m[("100000001", "2016-04-12")] == ("unknown", "Q")
    types = {(h["state_voter_id"], str(h["election_date"])): h["election_type"] for h in vh}
    assert types[("100000005", "2016-03-15")] == "primary"  # PPP
    assert types[("100000001", "2016-04-12")] == "other"  # OTH


def test_fl_2020_extract_with_lf_line_ends() -> None:
    regs, _, rep = read("FL", "fl_extract", "BRO_20201110.txt")
    assert rep.quarantine.num_rows == 0
    e = regs["200000011"]
    assert (e["first_name"], e["race"], e["race_code"], e["party"], e["party_code"]) == (
        "EFUA", "asian", "2", "GRN", "GRE",
    )  # fmt: skip
    assert e["phone"] == "9545550144"  # area code + number; the extension is not part of it
    h = regs["200000012"]
    assert (h["name_suffix"], h["party"], h["party_code"], str(h["dob"])) == ("SR", "CST", "CPF", "1938-08-08")


def test_fl_2024_extract_utf8_names_and_an_impossible_dob() -> None:
    regs, _, rep = read("FL", "fl_extract", "DAD_20240109.txt")
    assert rep.quarantine.num_rows == 0
    j = regs["300000021"]
    assert (j["last_name"], j["first_name"], j["middle_name"]) == ("MUÑOZ-ÁLVAREZ", "JOSÉ", "ÍÑIGO")
    assert j["county"] == "DAD"
    f = regs["300000022"]  # 13/45/1980: the field is nulled and named, the row kept
    assert f["dob"] is None and f["dob_granularity"] == "none" and f["_issues"] == ["dob"]
    assert (f["party"], f["party_code"]) == ("OTH", "IND")


def _estimator_votes(regs: dict[str, dict], vh: list[dict], election: str, state: str = "FL") -> dict[str, bool]:
    """Which records the estimators count as having voted in ``election``.

    Read from ``_vr_all`` (every record, live or not), so a denied or removed record's
    history rows are checked too; the estimates themselves rest on the live ones.
    """
    con = duckdb.connect()
    con.register("_r", pa.Table.from_pylist(list(regs.values())))
    con.register("_h", pa.Table.from_pylist(vh))
    con.execute("CREATE VIEW registrations AS SELECT * FROM _r")
    con.execute("CREATE VIEW vote_history AS SELECT * FROM _h")
    states = es.prepare(con, election)
    assert states == [state]
    return dict(con.execute("SELECT state_voter_id, voted FROM _vr_all").fetchall())


def test_fl_history_rows_that_are_not_ballots_are_not_counted_as_votes() -> None:
    """FL N (did not vote), B (mail ballot not counted), P (provisional not counted): no vote."""
    regs, vh, _ = read("FL", "fl_extract", "ALA_20161010.txt", "ALA_H_20161010.txt")
    voted = _estimator_votes(regs, vh, "2016-11-08")
    assert voted == {
        "100000001": True,  # Y
        "100000002": False,  # B
        "100000003": True,  # E (the protected voter's history row is still a vote)
        "100000004": False,  # N
        "100000005": False,  # P
    }
    # the primary: A counted, L (late mail ballot) not
    voted = _estimator_votes(regs, vh, "2016-08-30")
    assert voted["100000001"] is True and voted["100000002"] is False


def test_counted_ballot_rule_is_one_definition_over_the_vocabulary() -> None:
    assert set(COUNTED_BALLOT_METHODS) < set(VOTE_METHOD)
    con = duckdb.connect()
    got = {
        m: con.execute(f"SELECT {counted_ballot_sql('m')} FROM (SELECT ? AS m)", [m]).fetchone()[0]
        for m in VOTE_METHOD
    }
    assert {m for m, ok in got.items() if ok} == set(COUNTED_BALLOT_METHODS)
    assert con.execute(f"SELECT {counted_ballot_sql('NULL')}").fetchone()[0] is True


# ---------------------------------------------------------------------------
# New York: statewide FOIL file (quoted CSV, latin-1, no header, history last)
# ---------------------------------------------------------------------------


def test_ny_47_field_file_2023_latin1_crlf() -> None:
    regs, vh, rep = read("NY", "ny_statewide", "AllNYSVoters_20230109.txt")
    assert rep.quarantine.num_rows == 0 and len(regs) == 4
    r = regs["NY000000000000000101"]
    assert (r["last_name"], r["first_name"], r["middle_name"]) == ("DELACROIX", "RENÉE", "B")
    assert str(r["dob"]) == "1972-05-23" and r["dob_granularity"] == "full"
    assert (r["status"], r["status_code"], r["party"], r["party_code"]) == ("active", "A", "DEM", "DEM")
    assert r["residence_address"] == "41 PEARL ST" and r["residence_zip5"] == "12207"
    # "General Election, 2016" is a county spelling without a readable date: named, not loaded
    assert r["_issues"] == ["vote_history"]
    p = regs["NY000000000000000102"]
    assert (p["last_name"], p["name_suffix"], p["party"], p["party_code"]) == ("O'SHAUGHNESSY", "JR", "UNA", "BLK")
    assert (p["status"], p["status_code"], str(p["dob"])) == ("pending", "17", "2004-02-29")
    v = regs["NY000000000000000103"]
    assert (v["gender"], v["party"], v["party_code"], v["status"], v["status_reason"]) == (
        "X", "WFP", "WOR", "inactive", "MAIL CHECK",
    )  # fmt: skip
    h = regs["NY000000000000000104"]
    assert h["dob"] is None and h["_issues"] == ["dob"] and (h["status"], h["status_code"]) == ("cancelled", "P")
    got = sorted((x["state_voter_id"][-3:], str(x["election_date"]), x["election_type"]) for x in vh)
    assert got == [
        ("101", "2020-11-03", "general"),
        ("101", "2022-06-28", "primary"),
        ("101", "2022-11-08", "general"),
        ("103", "2018-11-06", "general"),
        ("104", "2016-11-08", "general"),
    ]


def test_ny_45_field_file_before_december_2021() -> None:
    regs, vh, rep = read("NY", "ny_statewide_pre2021", "AllNYSVoters_20190102.txt")
    assert rep.quarantine.num_rows == 0 and len(regs) == 3
    k = regs["NY000000000000000201"]
    assert (k["last_name"], k["first_name"], str(k["dob"])) == ("KOWALCZYK", "JADWIGA", "1945-08-17")
    assert k["residence_address"] == "88 LOVEJOY ST" and k["residence_city"] == "BUFFALO"
    assert (k["status"], k["status_code"]) == ("active", "ACTIVE")
    n = regs["NY000000000000000202"]
    assert (n["party"], n["party_code"], n["status"], n["status_reason"]) == ("OTH", "WEP", "inactive", "NCOA")
    z = regs["NY000000000000000203"]
    assert (z["first_name"], z["status"], z["status_code"]) == ("LUCÍA", "pending", "PREREG")
    assert sorted(str(x["election_date"]) for x in vh if x["state_voter_id"].endswith("201")) == [
        "2016-11-08", "2018-09-13", "2018-11-06",
    ]  # fmt: skip


def test_ny_47_field_copy_with_lf_line_ends() -> None:
    regs, vh, rep = read("NY", "ny_statewide", "AllNYSVoters_20240805_lf.txt")
    assert rep.quarantine.num_rows == 0
    t = regs["NY000000000000000301"]
    assert (t["first_name"], t["status"], t["status_code"], t["party_code"]) == ("ÉTIENNE", "active", "AM", "CON")
    assert [(str(h["election_date"]), h["election_type"]) for h in vh] == [("2023-11-07", "general")]


# ---------------------------------------------------------------------------
# Pennsylvania: Full Voter Export per county + election map
# ---------------------------------------------------------------------------


def test_pa_fve_2016_crlf_slots_decoded_by_the_election_map() -> None:
    regs, vh, rep = read(
        "PA", "pa_fve", "ADAMS FVE 20161201.txt", "ADAMS Election Map 20161201.txt"
    )
    assert rep.quarantine.num_rows == 0 and len(regs) == 3
    a = regs["012345678"]
    assert (a["last_name"], a["first_name"], a["middle_name"], str(a["dob"])) == (
        "HERSHBERGER", "ADA", "L", "1950-06-01",
    )  # fmt: skip
    assert (a["party"], a["party_code"], a["county"], a["phone"]) == ("REP", "R", "ADAMS", "7175550100")
    y = regs["012345679"]
    assert (y["party"], y["party_code"], y["status"], y["status_code"]) == ("UNA", "NF", "inactive", "I")
    assert y["residence_zip5"] == "17325" and y["residence_address"] == "3 CARLISLE ST"
    s = regs["012345680"]
    assert s["dob"] is None and s["_issues"] == ["dob"]  # 02/30/1970
    got = {
        (h["state_voter_id"], str(h["election_date"])): (h["election_type"], h["vote_method"], h["vote_method_code"], h["party_ballot"])
        for h in vh
    }  # fmt: skip
    assert got == {
        ("012345678", "2016-04-26"): ("primary", "in_person", "AP", "R"),
        ("012345678", "2016-11-08"): ("general", "absentee", "AB", "R"),
        ("012345678", "2015-11-03"): ("municipal", "in_person", "AP", None),
        ("012345679", "2016-11-08"): ("general", "provisional", "P", None),
    }


def test_pa_fve_2020_lf_mail_in_ballots() -> None:
    regs, vh, rep = read(
        "PA", "pa_fve", "LEHIGH FVE 20201201.txt", "LEHIGH Election Map 20201201.txt"
    )
    assert rep.quarantine.num_rows == 0
    assert (regs["112233446"]["party"], regs["112233446"]["party_code"]) == ("GRN", "GR")
    assert (regs["112233447"]["party"], regs["112233447"]["party_code"]) == ("LIB", "L")
    m = methods(vh)
    assert m[("112233445", "2020-06-02")] == ("mail", "MB")
    assert m[("112233445", "2020-11-03")] == ("mail", "MB")
    assert m[("112233447", "2020-11-03")] == ("absentee", "AB")
    assert m[("112233446", "2020-11-03")] == ("in_person", "AP")


def test_pa_fve_2024_crlf_zip_plus4_mail_country_and_a_slot_without_a_map_entry() -> None:
    regs, vh, rep = read("PA", "pa_fve", "ERIE FVE 20241215.txt", "ERIE Election Map 20241215.txt")
    assert rep.quarantine.num_rows == 0
    z = regs["223344556"]
    assert (z["last_name"], z["residence_zip5"], z["party"], z["party_code"]) == ("ZIELINSKI", "16501", "REP", "R")
    assert regs["223344557"]["last_name"] == "O'ROURKE"
    # slot 40 decodes through the map; slot 5 has a method but the county's map has no
    # election 5, so no date can be given to it and no row is made
    assert methods(vh) == {("223344556", "2024-11-05"): ("mail", "MB"), ("223344557", "2024-11-05"): ("in_person", "AP")}


# ---------------------------------------------------------------------------
# Texas: per-county fixed width (field order documented; widths approximate)
# ---------------------------------------------------------------------------


def test_tx_fixed_2016_crlf() -> None:
    regs, _, rep = read("TX", "tx_fixed", "227_VR_20161101.txt")
    assert rep.quarantine.num_rows == 0 and len(regs) == 2
    g = regs["1000000001"]
    assert (g["county"], g["last_name"], g["first_name"], g["middle_name"]) == ("227", "GARZA", "ROSALINDA", "MARIA")
    assert str(g["dob"]) == "1967-03-15" and g["dob_granularity"] == "full"
    assert (g["status"], g["status_code"], g["party"]) == ("active", "V", "NPR")
    assert g["residence_zip5"] == "78701" and g["residence_address"] == "1100 CONGRESS"
    o = regs["1000000002"]
    assert (o["name_suffix"], o["status"], o["status_code"], str(o["dob"])) == ("JR", "inactive", "S", "2000-02-29")


def test_tx_fixed_2020_lf_impossible_dob_and_2024_trimmed_record() -> None:
    regs, _, rep = read("TX", "tx_fixed", "101_VR_20201101.txt")
    n = regs["1000000003"]
    assert n["dob"] is None and n["_issues"] == ["dob"] and (n["status"], n["status_code"]) == ("cancelled", "C")
    # a copy whose trailing blanks were stripped still reads every field that is there
    regs, _, rep = read("TX", "tx_fixed", "227_VR_20240101_trimmed.txt")
    assert rep.quarantine.num_rows == 0
    assert regs["1000000001"]["first_name"] == "ROSALINDA" and regs["1000000001"]["status_code"] == "V"


# ---------------------------------------------------------------------------
# Michigan: QVF entire-state file (.lst, fixed width, 520-character records)
# ---------------------------------------------------------------------------


def test_mi_lst_2016_crlf_birth_year_and_uocava() -> None:
    regs, _, rep = read("MI", "mi_qvf_lst", "entire_state_v_2016.lst")
    assert rep.quarantine.num_rows == 0
    k = regs["0000012345678"]
    assert (k["last_name"], k["first_name"], k["middle_name"]) == ("KOWALSKI", "BRONISLAWA", "T")
    assert k["birth_year"] == 1958 and k["dob"] is None and k["dob_granularity"] == "year"
    assert str(k["registration_date"]) == "1976-06-15" and k["county"] == "33"
    assert (k["status"], k["status_code"], k["uocava"], k["party"]) == ("active", "A", "none", "NPR")
    a = regs["0000012345679"]
    assert (a["name_suffix"], a["status"], a["status_code"], a["uocava"]) == ("II", "inactive", "V", "military")


def test_mi_lst_2019_lf_rejected_is_denied_and_a_bad_registration_date() -> None:
    regs, _, _ = read("MI", "mi_qvf_lst", "entire_state_v_2019.lst")
    v = regs["0000012345680"]
    assert v["registration_date"] is None and v["_issues"] == ["registration_date"]  # 13011966
    assert (v["uocava"], v["status"], v["status_code"]) == ("overseas", "pending", "CH")
    r = regs["0000012345681"]
    assert (r["status"], r["status_code"]) == ("denied", "R")


def test_mi_lst_2020_copy_with_trailing_blanks_stripped() -> None:
    regs, _, rep = read("MI", "mi_qvf_lst", "entire_state_v_2020_trimmed.lst")
    assert rep.quarantine.num_rows == 0 and len(regs) == 2
    assert regs["0000012345678"]["residence_city"] == "LANSING"


# ---------------------------------------------------------------------------
# North Carolina: status D, the REMOVED placeholder, ncvhis methods
# ---------------------------------------------------------------------------


def test_nc_denied_status_removed_placeholder_and_history_methods() -> None:
    regs, vh, rep = read("NC", "nc_ncvoter_2022", "ncvoter92.txt", "ncvhis92.txt")
    assert rep.quarantine.num_rows == 0
    d = regs["ZZ100002"]
    assert (d["status"], d["status_code"], d["status_reason"]) == ("denied", "D", "DN")
    r = regs["ZZ100003"]  # removed voter: the word REMOVED is not an address
    assert r["residence_address"] is None and "residence_address" in r["_issues"]
    assert (r["status"], r["status_code"]) == ("cancelled", "R")
    assert regs["ZZ100001"]["residence_address"] == "14  OAK HOLLOW DR" and regs["ZZ100001"]["_issues"] == []
    assert (regs["ZZ100004"]["status"], regs["ZZ100004"]["status_code"]) == ("active", "S")
    m = methods(vh)
    assert m[("ZZ100001", "2024-11-05")] == ("early", "EARLY VOTING IN-PERSON")
    assert m[("ZZ100001", "2024-03-05")] == ("in_person", "ELECTION DAY IN-PERSON")
    assert m[("ZZ100004", "2024-11-05")] == ("did_not_vote", "ELIGIBLE DID NOT VOTE")
    assert m[("ZZ100003", "2016-11-08")] == ("mail", "ABSENTEE BY MAIL")
    assert m[("ZZ100003", "2008-11-04")] == ("early", "ABSENTEE CURBSIDE")
    voted = _estimator_votes(regs, vh, "2024-11-05", "NC")
    assert voted == {"ZZ100001": True, "ZZ100002": False, "ZZ100003": False, "ZZ100004": False}


def test_ny_45_field_file_is_never_read_as_virginia() -> None:
    """45 quoted fields have the shape of NY's pre-2021 layout and of VA's 45-column CSV.

    The shape alone cannot tell them apart; the sample's values can (NY's
    status and date codes, VA's none), so detection names NY by a clear
    margin, and VA's layout named explicitly refuses the file.
    """
    import duckdb

    from voterolls.errors import UserError
    from voterolls.formats import scan
    from voterolls.formats.detect import MARGIN, detect

    path = FIX / "ny" / "AllNYSVoters_20190102.txt"
    found = detect([path])
    assert found.format == "ny_statewide_pre2021"
    va = next(c for c in found.candidates if c.format == "va_csv")
    assert found.score - va.score >= MARGIN
    with pytest.raises(UserError) as err:
        scan(duckdb.connect(), [path], state="NY", format="va_csv").finish()
    assert "va_csv" in str(err.value)


# ---------------------------------------------------------------------------
# States without a layout before issue 15: DE, NJ, NV, VT, WV
# ---------------------------------------------------------------------------


def test_de_tab_file_party_words_and_birth_year_only() -> None:
    regs, vh, rep = read("DE", "de_voter_reg", "de_voter_reg.txt")
    assert rep.quarantine.num_rows == 0 and vh == []
    w = regs["900000101"]
    assert (w["first_name"], w["middle_name"], w["last_name"], w["county"]) == ("WINIFRED", "O", "BRANDYWINE", "NEW CASTLE")
    assert (w["birth_year"], w["dob"], w["dob_granularity"]) == (1962, None, "year")
    assert (w["party"], w["party_code"], w["status"], w["status_code"]) == ("DEM", "DEMOCRATIC", "active", "A")
    assert str(w["registration_date"]) == "1984-04-07"  # written 4/7/1984, no zero padding
    assert w["residence_address"] == "1201 MARKET" and w["residence_zip5"] == "19801"
    c = regs["900000102"]
    assert (c["party"], c["party_code"], c["status"], c["name_suffix"]) == ("OTH", "IND PTY OF DE", "inactive", "JR")
    p = regs["900000103"]  # a letter O in the year: nulled and named
    assert p["birth_year"] is None and p["_issues"] == ["birth_year"] and (p["party"], p["party_code"]) == ("UNA", "NO PARTY")


def test_nj_headerless_csv_statuses_and_ballot_types() -> None:
    regs, vh, rep = read("NJ", "nj_svrs", "NJ_voters_20231101.csv", "NJ_history_20231101.csv")
    assert rep.quarantine.num_rows == 0
    d = regs["100200300"]
    assert (d["last_name"], d["first_name"], str(d["dob"]), d["dob_granularity"]) == ("DEMAREST", "CORNELIA", "1971-12-25", "full")
    assert (d["status"], d["status_code"], d["county"]) == ("active", "Active Need ID", "ESSEX")
    t = regs["100200301"]  # a minor pre-registered; a ZIP that lost its leading zero
    assert (t["status"], t["status_code"], t["residence_zip5"]) == ("pending", "Pending", "07712")
    v = regs["100200302"]
    assert (v["party"], v["party_code"], v["status"], v["status_code"]) == ("OTH", "CNV", "inactive", "Inactive Confirmation")
    got = {(h["state_voter_id"], str(h["election_date"])): (h["election_type"], h["vote_method"], h["vote_method_code"]) for h in vh}
    assert got == {
        ("100200300", "2023-11-07"): ("general", "mail", "Mail In"),
        ("100200300", "2023-06-06"): ("primary", "in_person", "Machine"),
        ("100200302", "2023-11-07"): ("general", "provisional", "Provisional"),
    }


def test_nv_headerless_csv_and_history_vote_codes() -> None:
    regs, vh, rep = read(
        "NV", "nv_voterlist", "VoterList.ElgbVtr.38593.20241201.csv", "VoterList.VtHst.38593.20241201.csv"
    )
    assert rep.quarantine.num_rows == 0
    m = regs["3100001"]
    assert (m["first_name"], m["last_name"], str(m["dob"]), m["phone"]) == ("DESIREE", "MONTOYA", "1983-07-19", "7025550199")
    assert (m["party"], m["party_code"], m["status"]) == ("DEM", "Democrat", "active")
    w = regs["3100002"]
    assert w["residence_address"] == "1 VIRGINIA ST, APT 5"  # a quoted comma inside the field
    assert (w["party"], w["party_code"], w["name_suffix"]) == ("CST", "Independent American Party", "III")
    assert (regs["3100003"]["status"], regs["3100003"]["status_code"]) == ("pending", "P-17")
    assert methods(vh) == {
        ("3100001", "2024-11-05"): ("mail", "MB"),
        ("3100001", "2024-06-11"): ("early", "EV"),
        ("3100002", "2024-11-05"): ("provisional", "PV"),
        ("3100002", "2022-11-08"): ("absentee", "FW"),
        ("3100003", "2024-11-05"): ("in_person", "PP"),
        ("3100001", "2022-11-08"): ("unknown", "XX"),
    }


def test_vt_pipe_file_no_party_and_year_of_birth() -> None:
    regs, vh, rep = read("VT", "vt_statewide", "September 2019 VT Statewide Voter File.txt")
    assert rep.quarantine.num_rows == 0 and vh == []
    t = regs["004512345"]
    assert (t["last_name"], t["first_name"], t["birth_year"], t["dob_granularity"]) == ("THIBODEAU", "MARGUERITE", 1955, "year")
    assert (t["party"], t["status"], t["status_code"], t["county"]) == ("NPR", "active", "ACTIVE", "CHITTENDEN")
    o = regs["004512346"]
    assert (o["status"], o["status_code"], o["residence_zip5"]) == ("pending", "N18", "05602")
    g = regs["004512347"]
    assert (g["status"], g["status_code"], g["residence_zip5"], g["_issues"]) == ("inactive", "Challenged", "05701", ["residence_zip5"])


def test_wv_pipe_file_dates_with_times_and_history_without_method() -> None:
    regs, vh, rep = read("WV", "wv_statewide", "Statewide_VR120124.txt", "SV PStatewide_VH.txt")
    assert rep.quarantine.num_rows == 0
    h = regs["5400001"]
    assert (h["first_name"], h["last_name"], str(h["dob"]), str(h["registration_date"])) == ("OPAL", "HATFIELD", "1942-02-16", "1960-10-01")
    assert (h["party"], h["party_code"], h["gender"], h["gender_code"]) == ("DEM", "Democrat", "F", "F")
    m = regs["5400002"]
    assert (m["party"], m["party_code"], m["gender"], m["gender_code"], m["status"]) == ("GRN", "Mountain", "U", "N", "inactive")
    assert regs["5400003"]["dob_granularity"] == "none" and regs["5400003"]["_issues"] == []
    got = {(x["state_voter_id"], str(x["election_date"])): (x["election_type"], x["vote_method"]) for x in vh}
    assert got == {("5400001", "2024-11-05"): ("general", "unknown"), ("5400002", "2024-05-14"): ("primary", "unknown")}


def test_ri_pipe_file_status_codes_phone_and_email() -> None:
    regs, _, rep = read("RI", "ri_voter", "Voter.txt")
    assert rep.quarantine.num_rows == 0
    c = regs["RI0000101"]
    assert (c["first_name"], c["last_name"], c["birth_year"], c["dob_granularity"]) == ("ISABEL", "CARDOSO", 1970, "year")
    assert (c["party"], c["party_code"], c["phone"], c["email"]) == ("DEM", "D", "4015550133", "icardoso@example.net")
    p = regs["RI0000102"]  # AC = active with an NCOA address change
    assert (p["status"], p["status_code"], p["party"], p["residence_zip5"]) == ("active", "AC", "UNA", "02840")
    o = regs["RI0000103"]
    assert (o["party"], o["party_code"], o["status"], o["status_reason"]) == ("OTH", "L", "inactive", "NCOA")
    assert o["registration_date"] is None and o["_issues"] == ["registration_date"]


def test_mn_csv_without_status_or_party_and_history_methods() -> None:
    regs, vh, rep = read("MN", "mn_voter", "election_mn_01.csv", "election_history_mn.csv")
    assert rep.quarantine.num_rows == 0
    s = regs["MN1000001"]
    assert (s["first_name"], s["last_name"], s["birth_year"], s["dob_granularity"]) == ("SOLVEIG", "LUNDQUIST", 1981, "year")
    assert (s["party"], s["status"], s["status_code"], str(s["registration_date"])) == ("NPR", "unknown", None, "2004-10-12")
    assert regs["MN1000002"]["name_suffix"] == "JR" and regs["MN1000002"]["county"] == "62"
    assert methods(vh) == {
        ("MN1000001", "2022-11-08"): ("absentee", "A"),
        ("MN1000001", "2024-11-05"): ("unknown", "P"),
        ("MN1000002", "2024-11-05"): ("unknown", None),
    }


def test_or_tab_file_birth_year_in_birth_date_and_protected_voters() -> None:
    regs, _, rep = read("OR", "or_voters", "Ex-RegisteredVoters-2019-02-07.txt")
    assert rep.quarantine.num_rows == 0
    w = regs["300111222"]
    assert (w["first_name"], w["last_name"], w["birth_year"], w["dob"], w["dob_granularity"]) == ("WILLAMETTE", "FALLS", 1979, None, "year")
    assert (w["party"], w["party_code"], str(w["registration_date"]), w["phone"]) == ("GRN", "PGP", "1998-05-20", "5035550123")
    assert (regs["300111223"]["party"], regs["300111223"]["party_code"], regs["300111223"]["status"]) == ("UNA", "NAV", "inactive")
    p = regs["300111224"]  # Active But Protected: flagged, nothing personal
    assert p["_protected"] is True and (p["status"], p["status_code"], p["party"], p["party_code"]) == ("active", "ACP", "UNK", "ACP")


def test_ar_headerless_csv_statuses_and_a_phone_in_three_parts() -> None:
    regs, _, rep = read("AR", "ar_voters", "AR_voters_20241001.csv")
    assert rep.quarantine.num_rows == 0
    o = regs["AR000123"]
    assert (o["last_name"], o["first_name"], str(o["dob"]), o["dob_granularity"]) == ("RIVERBEND", "ORVAL", "1946-08-19", "full")
    assert o["phone"] == "5015550142"  # area + exchange + last four, in that order
    assert (o["status"], o["status_code"], o["status_reason"], o["party"]) == ("active", "A", "REG", "DEM")
    m = regs["AR000124"]  # suspense: held for verification
    assert (m["status"], m["status_code"], m["party"]) == ("pending", "S", "NPR")
    d = regs["AR000125"]  # not eligible: never a registration
    assert (d["status"], d["status_code"], d["status_reason"]) == ("denied", "N", "NUC")
    assert d["residence_address"] == "1 DICKSON ST, UNIT B"


@pytest.mark.parametrize(
    ("state", "fmt", "files"),
    [
        ("OR", "or_voters", ["Ex-RegisteredVoters-2019-02-07.txt"]),
        ("AR", "ar_voters", ["AR_voters_20241001.csv"]),
        ("RI", "ri_voter", ["Voter.txt"]),
        ("MN", "mn_voter", ["election_mn_01.csv", "election_history_mn.csv"]),
        ("DE", "de_voter_reg", ["de_voter_reg.txt"]),
        ("NJ", "nj_svrs", ["NJ_voters_20231101.csv", "NJ_history_20231101.csv"]),
        ("NV", "nv_voterlist", ["VoterList.ElgbVtr.38593.20241201.csv", "VoterList.VtHst.38593.20241201.csv"]),
        ("VT", "vt_statewide", ["September 2019 VT Statewide Voter File.txt"]),
        ("WV", "wv_statewide", ["Statewide_VR120124.txt", "SV PStatewide_VH.txt"]),
        ("FL", "fl_extract", ["ALA_20161010.txt", "ALA_H_20161010.txt"]),
        ("PA", "pa_fve", ["ADAMS FVE 20161201.txt", "ADAMS Election Map 20161201.txt"]),
        ("MI", "mi_qvf_lst", ["entire_state_v_2016.lst"]),
        ("TX", "tx_fixed", ["227_VR_20161101.txt"]),
        ("NC", "nc_ncvoter_2022", ["ncvoter92.txt", "ncvhis92.txt"]),
    ],
)
def test_each_fixture_is_detected_as_its_own_layout(state: str, fmt: str, files: list[str]) -> None:
    from voterolls.formats import detect_format
    from voterolls.policy import get_policy

    assert detect_format([FIX / state.lower() / f for f in files]) == fmt
    assert get_policy(state).sources  # a sourced policy row, not the most-restrictive fallback
