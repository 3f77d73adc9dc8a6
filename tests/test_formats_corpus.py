"""Readers on files the project's writer did not make: hand-written fixtures and drifted copies.

``tests/fixtures/formats/<st>/`` holds small files typed from each state's
published layouts of several years (other header spellings, column orders,
quoting, encodings, a pandas re-save with its index column, a UTF-16 export
re-encoded to UTF-8), with made-up people.  Each test asserts the values read
back, not only counts.  The generated drifts (shuffled columns, alias renames,
dropped optional columns, UTF-16 re-encodings) are made here from those
fixtures with plain ``csv``, never with ``write_native``.
"""

from __future__ import annotations

import csv
import datetime as dt
import io
import random
from pathlib import Path

import duckdb
import pytest

from voterolls.errors import UserError
from voterolls.formats import scan
from voterolls.formats.detect import detect
from voterolls.formats.headers import norm

FIXTURES = Path(__file__).parent / "fixtures" / "formats"

#: What every fixture of a state must read as: voter id -> national fields.
EXPECTED: dict[str, dict[str, dict[str, object]]] = {
    "NC": {
        "AB123456": {"last_name": "QUILLFEATHER", "first_name": "MARISOL", "middle_name": "ANNE", "residence_zip5": "27511",
                     "residence_address": "102 LANTERN RIDGE RD", "status": "active", "party": "DEM", "gender": "F",
                     "registration_date": dt.date(1990, 3, 14)},
        "CD765432": {"last_name": "FEATHERSTONE", "first_name": "LORCAN", "middle_name": "PIKE", "residence_zip5": "28202",
                     "status": "inactive", "party": "REP", "gender": "M", "registration_date": dt.date(2008, 10, 2)},
        "EF000111": {"last_name": "OSTRANDER", "first_name": "QUENBY", "middle_name": None, "residence_zip5": "27601",
                     "residence_address": "77 WILLOWBROOK LN APT 4", "status": "active", "party": "UNA"},
    },
    "OH": {
        "OH0012345678": {"last_name": "BRÉVILLE", "first_name": "ODALYS", "dob": dt.date(1958, 2, 27), "residence_zip5": "44109",
                         "residence_address": "4410 MAPLEHURST AVE", "status": "active", "party": "DEM"},
        "OH0098765432": {"last_name": "HOLLOWAY-PRUITT", "first_name": "TAMSIN", "middle_name": None, "dob": dt.date(1990, 12, 1),
                         "status": "inactive", "party": "NPR", "registration_date": dt.date(2008, 10, 6)},
        "OH0000000042": {"last_name": "ABERNATHY", "first_name": "CORWIN", "name_suffix": "JR", "dob": dt.date(1944, 7, 4),
                         "residence_city": "DAYTON", "party": "REP"},
    },
    "WA": {
        "WA000123456": {"last_name": "SANDOVAL-KRIEG", "first_name": "PERPETUA", "middle_name": "L", "birth_year": 1972,
                        "residence_address": "815 HEMLOCK", "residence_zip5": "98402", "status": "active", "gender": "F",
                        "registration_date": dt.date(1994, 6, 1)},
        "WA009876543": {"last_name": "WREN", "first_name": "ANSEL", "middle_name": None, "birth_year": 1988, "status": "inactive"},
        "WA000000777": {"last_name": "OKONKWO", "first_name": "DELPHINE", "birth_year": 2001, "residence_city": "SEATTLE"},
    },
    "GA": {
        "08812345": {"last_name": "MCALLISTER", "first_name": "JUNIPER", "middle_name": "ROSE", "birth_year": 1979,
                     "residence_address": "41 PEACHTREE WALK", "residence_zip5": "30303", "status": "active",
                     "registration_date": dt.date(2001, 11, 5), "gender": "F"},
        "00400017": {"last_name": "DÉSROSIERS", "first_name": "THADDEUS", "name_suffix": "III", "birth_year": 1951, "status": "inactive"},
        "12000999": {"last_name": "NAKASHIMA", "first_name": "IVY", "birth_year": 2003, "residence_city": "DALTON"},
    },
    "MI": {
        "100200300": {"last_name": "KOWALCZYK", "first_name": "AURELIA", "birth_year": 1967, "residence_address": "2750 GRATIOT",
                      "residence_zip5": "48207", "status": "active", "registration_date": dt.date(1985, 5, 5)},
        "9876543": {"last_name": "VANDERMOLEN", "first_name": "EMERY", "middle_name": None, "birth_year": 1993, "status": "inactive"},
        "55500011": {"last_name": "ST. CLAIR", "first_name": "NOOR", "birth_year": 1940, "residence_city": "MARQUETTE"},
    },
    "TX": {
        "1012345678": {"last_name": "GUTIÉRREZ", "first_name": "XIMENA", "dob": dt.date(1983, 6, 11), "residence_zip5": "78701",
                       "residence_address": "500 CONGRESS", "status": "active", "registration_date": dt.date(2001, 10, 17)},
        "1098765432": {"last_name": "BLACKWOOD", "first_name": "RHETT", "name_suffix": "SR", "dob": dt.date(1949, 1, 22), "status": "inactive"},
        "1000000555": {"last_name": "AL-FARSI", "first_name": "YUSRA", "dob": dt.date(2004, 2, 29), "residence_city": "EL PASO"},
    },
    "CO": {
        "600123456": {"last_name": "ZIMMERLI", "first_name": "CASSIA", "birth_year": 1982, "residence_address": "1450 LARIMER",
                      "residence_zip5": "80202", "status": "active", "party": "UNA", "gender": "F", "phone": "3035550142"},
        "601000777": {"last_name": "NÚÑEZ", "first_name": "ARLO", "middle_name": None, "birth_year": 1997, "status": "inactive", "party": "DEM"},
        "2345678": {"last_name": "HARTWELL", "first_name": "BEATRIX", "birth_year": 1950, "registration_date": dt.date(1975, 6, 30)},
    },
}  # fmt: skip

#: Which layout each fixture is read as (detected, not named).
DETECTED = {
    "nc/ncvoter_2024_bom_crlf.txt": "nc_ncvoter_2022",
    "nc/ncvoter_2012_age_only.txt": "nc_ncvoter_pre2022",
    "nc/ncvoter_pandas_resave.csv": "nc_ncvoter_2022",
    "nc/vr_snapshot_utf8_bom.txt": "nc_vr_snapshot",
    "oh/SWVF_1_22_2024_latin1.txt": "oh_swvf",
    "oh/SWVF_23_44_2016_unquoted.txt": "oh_swvf",
    "oh/swvf_pandas_resave.csv": "oh_swvf",
    "wa/vrdb_2016_dflag.txt": "wa_vrdb_2016",
    "wa/vrdb_2024.txt": "wa_vrdb_2024",
    "wa/vrdb_2020_resave.csv": "wa_vrdb_2024",
    "ga/ga_2023.csv": "ga_csv",
    "ga/ga_2024_titlecase_shuffled.csv": "ga_csv",
    "ga/ga_2023_latin1_slim.csv": "ga_csv",
    "mi/EntireStateVoters_2023.csv": "mi_qvf_csv",
    "mi/EntireStateVoters_2024_quoted_crlf.csv": "mi_qvf_csv",
    "mi/qvf_pandas_resave.csv": "mi_qvf_csv",
    "tx/tx_2025.csv": "tx_csv",
    "tx/tx_2025_renamed_shuffled.csv": "tx_csv",
    "tx/tx_2025_from_utf16.csv": "tx_csv",
    "co/CE-VR011_2024.txt": "co_csv",
    "co/CE-VR011_2017_mail_addr_latin1.txt": "co_csv",
    "co/co_pandas_resave.csv": "co_csv",
}

#: Birth years the full-DOB states must also carry (derived from the date).
_YEAR_FROM_DOB = {"OH", "TX"}


def _read(paths: list[Path], state: str, fmt: str | None = None) -> tuple[list[dict], list[dict], object]:
    con = duckdb.connect()
    s = scan(con, paths, state=state, format=fmt)
    regs = s.registrations.to_arrow_table().to_pylist()
    vh = s.vote_history.to_arrow_table().to_pylist() if s.vote_history is not None else []
    rep = s.finish()
    for f in rep.files:
        assert f.rows_read == f.rows_loaded + f.rows_quarantined
    return regs, vh, rep


def _assert_values(state: str, rows: list[dict]) -> None:
    by_id = {r["state_voter_id"]: r for r in rows}
    assert set(by_id) == set(EXPECTED[state])
    for vid, want in EXPECTED[state].items():
        got = by_id[vid]
        for k, v in want.items():
            assert got[k] == v, (state, vid, k)
        assert got["state"] == state
        assert got["_issues"] == [], (vid, got["_issues"])
        if state in _YEAR_FROM_DOB:
            assert got["birth_year"] == got["dob"].year and got["dob_granularity"] == "full"


@pytest.mark.parametrize("name", sorted(DETECTED))
def test_hand_written_fixture_detected_and_read(name: str) -> None:
    path = FIXTURES / name
    state = name.split("/")[0].upper()
    d = detect([path])
    assert (d.format, d.state) == (DETECTED[name], state)
    regs, _, rep = _read([path], state)
    assert rep.quarantine.num_rows == 0
    _assert_values(state, regs)


def test_nc_age_only_file_has_no_birth_year_but_reads() -> None:
    regs, _, _ = _read([FIXTURES / "nc/ncvoter_2012_age_only.txt"], "NC")
    assert {r["birth_year"] for r in regs} == {None}
    assert {r["dob_granularity"] for r in regs} == {"none"}


def test_nc_2022_birth_years() -> None:
    for name in ("nc/ncvoter_2024_bom_crlf.txt", "nc/ncvoter_pandas_resave.csv"):
        regs, _, _ = _read([FIXTURES / name], "NC")
        assert {r["state_voter_id"]: r["birth_year"] for r in regs} == {"AB123456": 1961, "CD765432": 1985, "EF000111": 1999}


@pytest.mark.parametrize(
    "name, votes",
    [
        ("oh/SWVF_1_22_2024_latin1.txt", {("OH0012345678", dt.date(2000, 3, 7), "primary", "D"),
                                          ("OH0012345678", dt.date(2000, 11, 7), "general", None),
                                          ("OH0012345678", dt.date(2016, 11, 8), "general", None),
                                          ("OH0098765432", dt.date(2016, 11, 8), "general", None),
                                          ("OH0000000042", dt.date(2000, 3, 7), "primary", "R"),
                                          ("OH0000000042", dt.date(2000, 11, 7), "general", None)}),
        ("oh/swvf_pandas_resave.csv", {("OH0012345678", dt.date(2016, 11, 8), "general", None),
                                       ("OH0098765432", dt.date(2016, 11, 8), "general", None)}),
    ],
)  # fmt: skip
def test_oh_election_columns_any_number_any_place(name: str, votes: set) -> None:
    _, vh, _ = _read([FIXTURES / name], "OH")
    assert {(v["state_voter_id"], v["election_date"], v["election_type"], v["party_ballot"]) for v in vh} == votes


def test_oh_more_election_columns_than_the_layout_knows() -> None:
    _, vh, _ = _read([FIXTURES / "oh/SWVF_23_44_2016_unquoted.txt"], "OH")
    dates = {v["election_date"] for v in vh}
    assert dates == {dt.date(2000, 3, 7), dt.date(2000, 11, 7), dt.date(2016, 11, 8)}  # blank columns: no vote


def test_encoding_and_dialect_detected_from_bytes() -> None:
    cases = {
        "oh/SWVF_1_22_2024_latin1.txt": ("latin-1", ",", "all"),
        "oh/SWVF_23_44_2016_unquoted.txt": ("utf-8", ",", "minimal"),
        "nc/ncvoter_2024_bom_crlf.txt": ("utf-8", "\t", "all"),
        "nc/vr_snapshot_utf8_bom.txt": ("utf-8", "\t", "none"),
        "co/CE-VR011_2017_mail_addr_latin1.txt": ("latin-1", ",", "minimal"),
        "wa/vrdb_2024.txt": ("utf-8", "|", "none"),
        "ga/ga_2023_latin1_slim.csv": ("latin-1", ",", "minimal"),
    }
    for name, (enc, delim, quoting) in cases.items():
        m = detect([FIXTURES / name]).matches[0]
        assert (m.dialect.encoding, m.dialect.delimiter, m.dialect.quoting) == (enc, delim, quoting), name


def test_header_mapping_lists_extra_and_missing_columns() -> None:
    m = detect([FIXTURES / "wa/vrdb_2016_dflag.txt"]).matches[0].mapping
    assert m.unmapped == ("Dflag",) and m.missing == ("LastDateChanged",)
    m = detect([FIXTURES / "co/CE-VR011_2017_mail_addr_latin1.txt"]).matches[0].mapping
    assert ("MAIL_ADDR1", "MAILING_ADDRESS_1", None) in m.mapped and not m.unmapped
    m = detect([FIXTURES / "oh/swvf_pandas_resave.csv"]).matches[0].mapping
    assert m.index_column and m.election_columns == ("GENERAL-11/08/2016",)
    assert "MAILING_CITY" in m.missing


# ---------------------------------------------------------------------------
# generated drifts (plain csv, from the hand-written fixtures)
# ---------------------------------------------------------------------------

HEADER_FIXTURES = [n for n in sorted(DETECTED) if not n.startswith("nc/vr_snapshot")]


def _table(path: Path) -> tuple[list[str], list[list[str]], str]:
    d = detect([path]).matches[0].dialect
    text = path.read_bytes().decode("latin-1" if d.encoding == "latin-1" else "utf-8-sig")
    rows = list(csv.reader(io.StringIO(text), delimiter=d.delimiter, quotechar='"' if d.quoting != "none" else "\x00"))
    return rows[0], rows[1:], d.delimiter


def _write(path: Path, header: list[str], rows: list[list[str]], delimiter: str = ",", encoding: str = "utf-8") -> Path:
    buf = io.StringIO()
    w = csv.writer(buf, delimiter=delimiter, lineterminator="\n")
    w.writerow(header)
    w.writerows(rows)
    path.write_bytes(buf.getvalue().encode(encoding))
    return path


_RENAMES = {
    "last_name": "Surname", "first_name": "Given Name", "middle_name": "Middle Name",
    "residence_zip5": "Zip", "residence_city": "City",
}  # fmt: skip


@pytest.mark.parametrize("name", HEADER_FIXTURES)
def test_drift_shuffled_renamed_and_dropped_columns(tmp_path: Path, name: str) -> None:
    """Columns shuffled, a quarter of the untargeted ones dropped, name columns renamed to other
    spellings the national alias lists know: the same state, the same values."""
    header, rows, delim = _table(FIXTURES / name)
    state = name.split("/")[0].upper()
    rnd = random.Random(name)
    m = detect([FIXTURES / name]).matches[0]
    target_of = {c.name: c.target for c in m.layout.columns}
    # drop a quarter of the columns no national field is read from (never the index or election columns)
    keep = list(range(len(header)))
    droppable = [i for i, h in enumerate(header) if target_of.get(h) is None and "/" not in h and i > 0]
    for i in rnd.sample(droppable, len(droppable) // 4):
        keep.remove(i)
    rnd.shuffle(keep)
    taken = {norm(h) for h in header}
    # a rename onto another column's spelling (OH has a district column CITY) would be a different file
    renamed = [
        new if (new := _RENAMES.get(target_of.get(h) or "", h)) == h or norm(new) not in taken else h
        for h in header
    ]
    assert renamed != header
    out = _write(tmp_path / f"drift_{Path(name).name}", [renamed[i] for i in keep], [[r[i] for i in keep] for r in rows], delim)
    assert detect([out]).state == state
    regs, _, rep = _read([out], state)
    assert rep.quarantine.num_rows == 0
    _assert_values(state, regs)


@pytest.mark.parametrize("name", ["nc/ncvoter_2024_bom_crlf.txt", "tx/tx_2025.csv", "mi/EntireStateVoters_2023.csv"])
@pytest.mark.parametrize("encoding", ["utf-16-le", "utf-16-be"])
def test_utf16_reencoded_copies_read_the_same(tmp_path: Path, name: str, encoding: str) -> None:
    text = (FIXTURES / name).read_bytes().decode("utf-8-sig")
    bom = "\ufeff".encode(encoding)
    out = tmp_path / Path(name).name
    out.write_bytes(bom + text.encode(encoding))
    state = name.split("/")[0].upper()
    assert detect([out]).format == DETECTED[name]
    regs, _, rep = _read([out], state)
    assert rep.files[0].rows_read == 3 and rep.quarantine.num_rows == 0
    _assert_values(state, regs)


def test_nc_snapshot_read_as_utf16_or_utf8(tmp_path: Path) -> None:
    """The same VR_Snapshot as published (UTF-16LE) and re-saved (UTF-8 with BOM) reads the same."""
    text = (FIXTURES / "nc/vr_snapshot_utf8_bom.txt").read_bytes().decode("utf-8-sig")
    out = tmp_path / "VR_Snapshot.txt"
    out.write_bytes(b"\xff\xfe" + text.encode("utf-16-le"))
    a, _, _ = _read([out], "NC")
    b, _, _ = _read([FIXTURES / "nc/vr_snapshot_utf8_bom.txt"], "NC")
    _assert_values("NC", a)
    _assert_values("NC", b)


def test_missing_required_column_names_it_and_the_closest_header(tmp_path: Path) -> None:
    header, rows, delim = _table(FIXTURES / "tx/tx_2025.csv")
    header = ["VOTER_UID" if h == "VUID" else ("Last_Nm" if h == "Last_Name" else h) for h in header]
    out = _write(tmp_path / "tx.csv", header, rows, delim)
    with pytest.raises(UserError) as err:
        _read([out], "TX", "tx_csv")
    msg = str(err.value)
    assert "'VUID' (closest header: 'VOTER_UID')" in msg and "'Last_Name' (closest header: 'Last_Nm')" in msg
    assert "GUTI" not in msg and "1012345678" not in msg  # names columns, never values
