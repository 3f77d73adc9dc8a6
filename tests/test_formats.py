"""voterolls.formats: every layout round-trips; malformed input is quarantined or a clear UserError."""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from types import SimpleNamespace

import duckdb
import pyarrow as pa
import pyarrow.compute as pc
import pytest

from voterolls.errors import UserError
from voterolls.formats import (
    FORMATS,
    STATE_FORMATS,
    detect_format,
    get_format,
    load_user_format,
    scan,
)
from voterolls.formats.sample import ELECTIONS, national_sample
from voterolls.synth.native import write_native

FULL = SimpleNamespace(
    dob_disclosure="full",
    phone_public=True,
    email_public=True,
    party_on_file=True,
    vote_history_public=True,
)
YEAR = SimpleNamespace(
    dob_disclosure="year",
    phone_public=False,
    email_public=False,
    party_on_file=False,
    vote_history_public=True,
)
NONE = SimpleNamespace(
    dob_disclosure="none",
    phone_public=False,
    email_public=False,
    party_on_file=True,
    vote_history_public=False,
)

ROUND_TRIP = [
    ("NC", None),
    ("OH", None),
    ("FL", None),
    ("WA", None),
    ("NY", None),
    ("PA", None),
    ("CO", None),
    ("TX", None),
    ("VT", "generic"),
    ("NC", "nc_ncvoter_pre2022"),
    ("NC", "nc_vr_snapshot"),
    ("WA", "wa_vrdb_2016"),
    ("GA", "ga_pipe"),
    ("GA", "ga_csv"),
    ("MI", "mi_qvf_csv"),
    ("MI", "mi_qvf_lst"),
    ("TX", "tx_fixed"),
    ("OK", "ok_csv"),
    ("VA", "va_csv"),
    ("WI", "wi_csv"),
    ("DE", "de_voter_reg"),
    ("NJ", "nj_svrs"),
    ("NV", "nv_voterlist"),
    ("VT", "vt_statewide"),
    ("WV", "wv_statewide"),
    ("RI", "ri_voter"),
    ("MN", "mn_voter"),
    ("OR", "or_voters"),
    ("AR", "ar_voters"),
]


def _scan(paths, state, fmt=None):
    con = duckdb.connect()
    s = scan(con, paths, state=state, format=fmt)
    regs = s.registrations.to_arrow_table()
    vh = s.vote_history.to_arrow_table() if s.vote_history is not None else None
    rep = s.finish()
    return s, regs, vh, rep


def _reconciled(rep) -> None:
    for f in rep.files:
        assert f.rows_read == f.rows_loaded + f.rows_quarantined, f
        n_q = pc.sum(pc.equal(rep.quarantine["file"], f.path)).as_py() or 0
        assert n_q == f.rows_quarantined


def _by_id(t: pa.Table) -> dict[str, dict]:
    return {r["state_voter_id"]: r for r in t.to_pylist()}


@pytest.mark.parametrize(("state", "fmt"), ROUND_TRIP)
def test_round_trip(tmp_path: Path, state: str, fmt: str | None) -> None:
    regs, vh = national_sample(state, 60, protected_every=10)
    paths = write_native(state, regs, vh, tmp_path, policy=FULL, format=fmt)
    assert detect_format(paths) == (fmt or STATE_FORMATS[state])
    s, out, out_vh, rep = _scan(paths, state)
    _reconciled(rep)
    assert rep.quarantine.num_rows == 0
    layout = s.format_spec.registrations
    masked = layout.protected.mode == "mask"
    n_prot = sum(regs["protected"].to_pylist())
    assert out.num_rows == (60 if masked else 60 - n_prot)
    assert sum(out["_protected"].to_pylist()) == (n_prot if masked else 0)
    src = _by_id(regs)
    names = set(layout.names)
    for row in out.to_pylist():
        orig = src[row["state_voter_id"]]
        assert row["state"] == state
        assert len(row["source_file"]) == 64 and row["source_line"] >= 1
        if row["_protected"]:
            assert row["last_name"] is None and row["dob"] is None
            continue
        expect_last = (
            orig["last_name"]
            if layout.quoting != "none"
            else orig["last_name"].replace(layout.delimiter, " ")
        )
        assert row["last_name"] == expect_last.strip()
        if layout.by_target("dob") and layout.by_target("dob")[0].date_format != "%Y":
            assert row["dob"] == orig["dob"] and row["dob_granularity"] == "full"
        elif layout.by_target("dob") or layout.by_target("birth_year"):
            assert row["birth_year"] == orig["dob"].year and row["dob_granularity"] == "year"
        else:
            assert row["dob_granularity"] == "none"
        assert row["residence_zip5"] == orig["residence_zip5"]
        if layout.by_target("residence_address"):
            assert row["residence_address"] == orig["residence_address"]
        pmap = layout.code_map(layout.by_target("party")[0]) if layout.by_target("party") else None
        if pmap and orig["party"] in ("DEM", "REP", "LIB") and orig["party"] in pmap.map.values():
            assert row["party"] == orig["party"]
        if layout.by_target("status") and "status_cd" in names | {
            "STATUS",
            "VOTER_STATUS",
            "voter_status",
            "StatusCode",
            "status",
        }:
            assert row["status"] == orig["status"]
    # vote history: every election of every written voter comes back
    if s.format_spec.history is None and not (
        layout.wide_history or layout.embedded_history or layout.slot_history
    ):
        assert out_vh is None
        return
    written = set(out["state_voter_id"].to_pylist())
    expect_vh = [r for r in vh.to_pylist() if r["state_voter_id"] in written]
    assert out_vh is not None
    assert out_vh.num_rows == len(expect_vh)
    got = {(r["state_voter_id"], r["election_date"]) for r in out_vh.to_pylist()}
    assert got == {(r["state_voter_id"], r["election_date"]) for r in expect_vh}
    # WA's history extract records no election type (null = not recorded)
    assert set(out_vh["election_type"].to_pylist()) <= {
        "general",
        "primary",
        "special",
        "runoff",
        "municipal",
        "other",
        None,
    }


def test_writer_is_deterministic(tmp_path: Path) -> None:
    regs, vh = national_sample("OH", 80)
    a = write_native("OH", regs, vh, tmp_path / "a", policy=FULL)
    b = write_native("OH", regs, vh, tmp_path / "b", policy=FULL)
    assert [p.name for p in a] == [p.name for p in b]
    assert all(pa_.read_bytes() == pb.read_bytes() for pa_, pb in zip(a, b, strict=True))


def test_policy_limits_what_is_written(tmp_path: Path) -> None:
    regs, vh = national_sample("OH", 40)
    paths = write_native("OH", regs, vh, tmp_path / "year", policy=YEAR)
    _, out, out_vh, _ = _scan(paths, "OH")
    # OH's file carries a full date only; under a year-only policy nothing is written
    assert out["dob"].null_count == out.num_rows
    assert set(out["party"].to_pylist()) == {"NPR"}  # party_on_file false -> blank -> NPR
    paths = write_native("NC", *national_sample("NC", 40), tmp_path / "nc", policy=NONE)
    assert not any("ncvhis" in p.name for p in paths)  # history not public
    _, out, out_vh, _ = _scan(paths, "NC")
    assert set(out["dob_granularity"].to_pylist()) == {"none"} and out_vh is None
    assert out["phone"].null_count == out.num_rows
    paths = write_native("NC", *national_sample("NC", 40), tmp_path / "nc2", policy=YEAR)
    _, out, _, _ = _scan(paths, "NC")
    assert set(out["dob_granularity"].to_pylist()) == {"year"}


def test_generic_writes_year_only_when_policy_says_year(tmp_path: Path) -> None:
    regs, vh = national_sample("VT", 30)
    paths = write_native("VT", regs, vh, tmp_path, policy=YEAR)
    _, out, _, _ = _scan(paths, "VT")
    assert out["dob"].null_count == out.num_rows
    assert out["birth_year"].to_pylist() == [d.year for d in regs["dob"].to_pylist()]


def test_zip_float_mess_is_repaired_and_flagged(tmp_path: Path) -> None:
    regs, vh = national_sample("OH", 400)
    paths = write_native("OH", regs, vh, tmp_path, policy=FULL)
    text = "".join(p.read_text("latin-1") for p in paths)
    assert '.0"' in text  # the float-exported county
    _, out, _, _ = _scan(paths, "OH")
    flagged = [r for r in out.to_pylist() if "residence_zip5" in r["_issues"]]
    assert flagged and all(len(r["residence_zip5"]) == 5 for r in flagged)
    src = _by_id(regs)
    assert all(
        r["residence_zip5"] == src[r["state_voter_id"]]["residence_zip5"] for r in out.to_pylist()
    )


# ---------------------------------------------------------------------------
# malformed input, per format family
# ---------------------------------------------------------------------------


def _nc_file(tmp_path: Path) -> Path:
    regs, vh = national_sample("NC", 20)
    paths = write_native("NC", regs, vh, tmp_path / "nc", policy=FULL)
    return next(p for p in paths if p.name.startswith("ncvoter"))


def test_quoted_tab_family_malformed_lines(tmp_path: Path) -> None:
    path = _nc_file(tmp_path)
    lines = path.read_bytes().split(b"\n")
    lines[3] = lines[3].replace(b'"\t"', b'"\t', 1)  # stray quote structure
    lines[5] = b"\t".join(lines[5].split(b"\t")[:-2])  # two fields short
    lines[7] = lines[7][:-1] + b'\xff"'  # an invalid UTF-8 byte in the last field
    fields = lines[9].split(b"\t")
    fields[25] = b'"13/45/2020"'  # registr_dt unparseable -> field nulled, row kept
    lines[9] = b"\t".join(fields)
    path.write_bytes(b"\n".join(lines))
    _, out, _, rep = _scan([path], "NC", "nc_ncvoter_2022")
    _reconciled(rep)
    q = {r["line"]: r for r in rep.quarantine.to_pylist()}
    assert set(q) >= {4, 6}
    assert "quote" in q[4]["reason"]
    assert "expected 67 fields" in q[6]["reason"]
    assert q[8]["reason"] == "invalid byte sequence for utf-8"  # quarantined, never loaded
    row = next(r for r in out.to_pylist() if r["source_line"] == 10)
    assert row["registration_date"] is None and "registration_date" in row["_issues"]
    assert rep.files[0].rows_read == 20


def test_invalid_bytes_are_quarantined_with_line(tmp_path: Path) -> None:
    regs, vh = national_sample("VT", 10)
    paths = write_native("VT", regs, vh, tmp_path, policy=FULL)
    voters = next(p for p in paths if p.name.endswith("voters.csv"))
    lines = voters.read_bytes().split(b"\n")
    lines[4] = lines[4] + b"\xff\xfe"
    voters.write_bytes(b"\n".join(lines))
    _, out, _, rep = _scan([voters], "VT", "generic")
    _reconciled(rep)
    assert rep.quarantine.to_pylist() == [
        {"file": str(voters), "line": 5, "field": None, "reason": "invalid byte sequence for utf-8"}
    ]
    assert out.num_rows == 9
    # line numbers of rows after the rejected line stay physical
    assert sorted(out["source_line"].to_pylist()) == [2, 3, 4, 6, 7, 8, 9, 10, 11]


def test_unquoted_tab_family(tmp_path: Path) -> None:
    regs, vh = national_sample("FL", 12)
    paths = write_native("FL", regs, vh, tmp_path, policy=FULL)
    f = next(p for p in paths if "_H_" not in p.name)
    data = f.read_bytes().split(b"\r\n")
    data[2] = data[2] + b"\textra"  # 39 fields
    cols = data[1].split(b"\t")
    cols[21] = b"02/30/1980"  # impossible DOB
    data[1] = b"\t".join(cols)
    f.write_bytes(b"\r\n".join(data))
    _, out, _, rep = _scan([f], "FL", "fl_extract")
    _reconciled(rep)
    assert rep.quarantine.to_pylist()[0]["line"] == 3
    assert "expected 38 fields" in rep.quarantine.to_pylist()[0]["reason"]
    row = next(r for r in out.to_pylist() if r["source_line"] == 2)
    assert row["dob"] is None and "dob" in row["_issues"] and row["dob_granularity"] == "none"


def test_minimal_quoting_embedded_quotes_and_delimiters(tmp_path: Path) -> None:
    regs, vh = national_sample("VT", 10)
    paths = write_native("VT", regs, vh, tmp_path, policy=FULL)
    voters = next(p for p in paths if p.name.endswith("voters.csv"))
    _, out, _, rep = _scan([voters], "VT", "generic")
    assert rep.quarantine.num_rows == 0
    assert 'SMITH "SMITTY", JR' in out["last_name"].to_pylist()
    # an unterminated quote quarantines that line only
    lines = voters.read_text().split("\n")
    lines[6] = lines[6].replace(",", ',"', 1)
    voters.write_text("\n".join(lines))
    _, out, _, rep = _scan([voters], "VT", "generic")
    _reconciled(rep)
    assert [r["line"] for r in rep.quarantine.to_pylist()] == [7]
    assert out.num_rows == 9


def test_mixed_line_endings_reconcile(tmp_path: Path) -> None:
    regs, vh = national_sample("WA", 15)
    paths = write_native("WA", regs, vh, tmp_path, policy=FULL)
    f = next(p for p in paths if "VRDB" in p.name)
    raw = f.read_bytes().split(b"\n")
    f.write_bytes(b"\r\n".join(raw[:5]) + b"\r\n\n" + b"\n".join(raw[5:]))
    _, out, _, rep = _scan([f], "WA", "wa_vrdb_2024")
    _reconciled(rep)
    assert out.num_rows == 15
    assert [r["reason"] for r in rep.quarantine.to_pylist()] == ["blank line"]


def test_empty_and_header_only(tmp_path: Path) -> None:
    empty = tmp_path / "empty.txt"
    empty.write_bytes(b"")
    with pytest.raises(UserError, match="empty"):
        _scan([empty], "NC", "nc_ncvoter_2022")
    with pytest.raises(UserError, match="empty"):
        detect_format([empty])
    path = _nc_file(tmp_path)
    header_only = tmp_path / "header.txt"
    header_only.write_bytes(path.read_bytes().split(b"\n")[0] + b"\n")
    _, out, _, rep = _scan([header_only], "NC")
    assert out.num_rows == 0 and rep.files[0].rows_read == 0 and rep.quarantine.num_rows == 0


def test_wrong_state_format_is_a_clear_error(tmp_path: Path) -> None:
    path = _nc_file(tmp_path)
    with pytest.raises(UserError) as err:
        _scan([path], "FL", "fl_extract")
    msg = str(err.value)
    assert str(path) in msg and "line 1" in msg and "38" in msg
    regs, vh = national_sample("FL", 5)
    fl = write_native("FL", regs, vh, tmp_path / "fl", policy=FULL)
    with pytest.raises(UserError, match="header"):
        _scan([fl[0]], "NC", "nc_ncvoter_2022")
    missing = tmp_path / "nope.txt"
    with pytest.raises(UserError, match="not found"):
        _scan([missing], "NC")


def test_unknown_shape_is_not_guessed(tmp_path: Path) -> None:
    f = tmp_path / "x.txt"
    f.write_text("a;b;c\n1;2;3\n")
    with pytest.raises(UserError, match="no known layout"):
        detect_format([f])


def test_error_messages_never_echo_row_content(tmp_path: Path) -> None:
    regs, vh = national_sample("FL", 5)
    fl = write_native("FL", regs, vh, tmp_path, policy=FULL)
    with pytest.raises(UserError) as err:
        _scan([fl[0]], "NY", "ny_statewide")
    for name in regs["last_name"].to_pylist():
        assert name not in str(err.value)


def test_user_mapping_file_utf16(tmp_path: Path) -> None:
    """A user-written mapping (UTF-16, pipe, no header) drives both writer and reader."""
    toml = tmp_path / "vendor.toml"
    toml.write_text(
        """
description = "a vendor extract"
[registrations]
filename = "vendor.txt"
delimiter = "|"
quoting = "none"
header = false
encoding = "utf-16"
bom = true
line_terminator = "\\r\\n"
columns = [
  {name="ID", target="state_voter_id"}, {name="SURNAME", target="last_name"}, {name="GIVEN", target="first_name"},
  {name="BORN", target="dob", date_format="%d.%m.%Y"}, "PRECINCT", {name="AFFIL", target="party"},
]
[registrations.codes.party]
map = {D="DEM", R="REP", U="UNA"}
default = "OTH"
"""
    )
    regs, vh = national_sample("AK", 25)
    paths = write_native("AK", regs, vh, tmp_path / "out", policy=FULL, format=toml)
    assert paths[0].read_bytes()[:2] == b"\xff\xfe"
    _, out, _, rep = _scan(paths, "AK", toml)
    _reconciled(rep)
    assert out.num_rows == 25
    assert out["dob"].to_pylist() == regs["dob"].to_pylist()
    assert "GARCÍA" in out["last_name"].to_pylist() or "MÜLLER" in out["last_name"].to_pylist()


def test_bad_mapping_file_is_user_error(tmp_path: Path) -> None:
    toml = tmp_path / "bad.toml"
    toml.write_text(
        'description = "x"\n[registrations]\nfilename = "a"\ncolumns = [{name="A", target="dob"}]\n'
    )
    with pytest.raises(UserError, match="date_format"):
        load_user_format(toml)
    with pytest.raises(UserError, match="date_format"):
        scan(duckdb.connect(), [toml], state="VT", format=toml)


def test_every_shipped_layout_is_valid() -> None:
    assert {
        "nc_ncvoter_2022",
        "oh_swvf",
        "fl_extract",
        "wa_vrdb_2024",
        "ny_statewide",
        "pa_fve",
        "generic",
    } <= set(FORMATS)
    assert len(get_format("nc_ncvoter_2022").registrations.columns) == 67
    assert len(get_format("nc_ncvoter_2022").history.columns) == 15
    assert len(get_format("fl_extract").registrations.columns) == 38
    assert len(get_format("fl_extract").history.columns) == 5
    assert len(get_format("wa_vrdb_2024").registrations.columns) == 33
    assert len(get_format("ny_statewide").registrations.columns) == 47
    assert len(get_format("pa_fve").registrations.columns) == 153


def test_pa_history_decoded_through_election_map(tmp_path: Path) -> None:
    regs, vh = national_sample("PA", 30)
    paths = write_native("PA", regs, vh, tmp_path, policy=FULL)
    maps = [p for p in paths if "Election Map" in p.name]
    assert maps
    _, _, out_vh, _ = _scan([p for p in paths if p not in maps], "PA", "pa_fve")
    assert out_vh is None or out_vh.num_rows == 0  # without the map the slots cannot be decoded
    _, _, out_vh, _ = _scan(paths, "PA")
    assert set(out_vh["election_date"].to_pylist()) == {d for d, _ in ELECTIONS}
    assert dt.date(2024, 11, 5) in set(out_vh["election_date"].to_pylist())


def test_ga_pipe_header_is_optional(tmp_path: Path) -> None:
    regs, vh = national_sample("GA", 20)
    paths = write_native("GA", regs, vh, tmp_path / "h", policy=FULL, format="ga_pipe")
    voters = next(p for p in paths if "VoterBase" in p.name)
    _, with_header, _, rep = _scan([voters], "GA")
    assert rep.files[0].rows_read == 20 and with_header.num_rows == 20
    headless = tmp_path / "headless.txt"
    headless.write_bytes(voters.read_bytes().split(b"\n", 1)[1])
    assert detect_format([headless]) == "ga_pipe"
    _, out, _, rep = _scan([headless], "GA")
    _reconciled(rep)
    assert out.num_rows == 20 and sorted(out["source_line"].to_pylist()) == list(range(1, 21))


def test_fixed_width_malformed_record(tmp_path: Path) -> None:
    regs, vh = national_sample("MI", 10)
    paths = write_native("MI", regs, vh, tmp_path, policy=FULL, format="mi_qvf_lst")
    lst = paths[0]
    lines = lst.read_text().split("\n")
    assert all(len(x) == 520 for x in lines if x)
    lines[2] = lines[2] + "X" * 30  # too long
    lines[4] = lines[4][:100]  # cut before the voter id
    reg = list(lines[6])
    reg[83:91] = "13452020"  # registration date MMDDYYYY: month 13
    lines[6] = "".join(reg)
    lst.write_text("\n".join(lines))
    _, out, _, rep = _scan([lst], "MI", "mi_qvf_lst")
    _reconciled(rep)
    assert [r["line"] for r in rep.quarantine.to_pylist()] == [3, 5]
    assert all("characters" in r["reason"] for r in rep.quarantine.to_pylist())
    row = next(r for r in out.to_pylist() if r["source_line"] == 7)
    assert row["registration_date"] is None and row["_issues"] == ["registration_date"]


def test_utf16_snapshot_with_bad_line(tmp_path: Path) -> None:
    regs, vh = national_sample("NC", 12)
    paths = write_native("NC", regs, vh, tmp_path, policy=FULL, format="nc_vr_snapshot")
    snap = paths[0]
    raw = snap.read_bytes()
    assert raw[:2] == b"\xff\xfe"
    text = raw[2:].decode("utf-16-le").split("\r\n")
    text[3] = text[3].replace("\t", " ", 5)  # five fields short
    snap.write_bytes(b"\xff\xfe" + "\r\n".join(text).encode("utf-16-le"))
    assert detect_format([snap]) == "nc_vr_snapshot"
    _, out, _, rep = _scan([snap], "NC")
    _reconciled(rep)
    assert rep.quarantine.to_pylist()[0]["line"] == 4
    assert out.num_rows == 11
    src = _by_id(regs)
    for r in out.to_pylist():  # UTF-16 text (accents included) comes back as written
        assert r["first_name"] == src[r["state_voter_id"]]["first_name"]
    assert any(ord(c) > 127 for r in out.to_pylist() for c in r["first_name"] + r["last_name"])


def test_ny_history_field_and_bad_entries(tmp_path: Path) -> None:
    regs, vh = national_sample("NY", 10)
    paths = write_native("NY", regs, vh, tmp_path, policy=FULL)
    f = paths[0]
    lines = f.read_bytes().decode("latin-1").split("\r\n")
    lines[0] = lines[0][: lines[0].rfind(',"')] + ',"20241105 GE;General Election 2016;20221108 GE"'
    f.write_bytes("\r\n".join(lines).encode("latin-1"))
    _, out, out_vh, rep = _scan([f], "NY")
    first = next(r for r in out.to_pylist() if r["source_line"] == 1)
    assert "vote_history" in first["_issues"]  # the entry without a readable date
    mine = [r for r in out_vh.to_pylist() if r["state_voter_id"] == first["state_voter_id"]]
    assert sorted(r["election_date"] for r in mine) == [dt.date(2022, 11, 8), dt.date(2024, 11, 5)]
    assert {r["election_type"] for r in mine} == {"general"}


def test_oh_primary_party_letter(tmp_path: Path) -> None:
    regs, vh = national_sample("OH", 30)
    paths = write_native("OH", regs, vh, tmp_path, policy=FULL)
    header = paths[0].read_text("latin-1").split("\n")[0]
    assert '"PRIMARY-05/17/2022"' in header and '"GENERAL-11/05/2024"' in header
    _, _, out_vh, _ = _scan(paths, "OH")
    prim = [r for r in out_vh.to_pylist() if r["election_type"] == "primary"]
    assert prim and {r["party_ballot"] for r in prim} <= {"D", "R", "L", "G", "C", "N", "S", None}
    assert any(r["party_ballot"] == "D" for r in prim)


def test_scan_files_known_before_finish(tmp_path: Path) -> None:
    regs, vh = national_sample("WA", 8)
    paths = write_native("WA", regs, vh, tmp_path, policy=FULL)
    s = scan(duckdb.connect(), paths, state="WA")
    assert sorted(f.role for f in s.files) == ["history", "registrations"]
    assert all(f.rows_read == f.rows_loaded + f.rows_quarantined for f in s.files)
    s.finish()


@pytest.mark.parametrize("state", ["NY", "PA", "FL", "NC", "OH"])
def test_no_vote_history_given(tmp_path: Path, state: str) -> None:
    regs, _ = national_sample(state, 12)
    paths = write_native(state, regs, None, tmp_path, policy=FULL)
    assert all(p.stat().st_size > 0 for p in paths)
    _, out, out_vh, rep = _scan(paths, state)
    _reconciled(rep)
    assert out.num_rows == 12
    assert out_vh is None or out_vh.num_rows == 0
