"""Disclosure policy: the data, the restrictive default, and enforcement before storage."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import duckdb
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from voterolls.errors import PolicyViolation
from voterolls.policy import (
    POLICY_FIELDS,
    Override,
    StatePolicy,
    all_policies,
    disallowed_columns,
    enforce,
    enforce_vote_history,
    get_policy,
)
from voterolls.schema import JURISDICTIONS, REGISTRATION_SCHEMA, conform

# --------------------------------------------------------------------------
# policy data
# --------------------------------------------------------------------------


def test_all_51_jurisdictions_on_file() -> None:
    policies = all_policies()
    assert sorted(policies) == sorted(JURISDICTIONS)
    for code, p in policies.items():
        assert p.on_file and p.state == code
        assert p.dob_disclosure in ("full", "year", "none")
        assert set(p.confidence) == set(POLICY_FIELDS)
        assert p.sources, f"{code} has no source keys"
        # No state releases SSN or licence numbers in the draft.
        assert p.ssn4_public is False and p.dl_public is False


def test_known_values_and_confidence() -> None:
    nc = get_policy("nc")
    assert nc.dob_disclosure == "year" and nc.party_on_file and nc.phone_public
    assert nc.email_public is False and not nc.is_known("email_public")
    assert nc.confidence_of("email_public") == "n/a"
    assert "REGGIE" in nc.source_keys("dob_disclosure")
    oh = get_policy("OH")
    assert oh.dob_disclosure == "full" and oh.confidence_of("dob_disclosure") == "high"
    assert oh.party_on_file is False


def test_unknown_cells_resolve_restrictively() -> None:
    al = get_policy("AL")  # dob_disclosure unknown in the draft
    assert al.raw["dob_disclosure"] == "unknown" and al.dob_disclosure == "none"
    fl = get_policy("FL")  # commercial use unknown -> assume prohibited
    assert fl.raw["commercial_use_prohibited"] == "unknown" and fl.commercial_use_prohibited is True


def test_unknown_state_gets_most_restrictive_policy() -> None:
    p = get_policy("ZZ")
    assert isinstance(p, StatePolicy) and not p.on_file
    assert p.dob_disclosure == "none"
    assert not any(
        [
            p.party_on_file,
            p.vote_history_public,
            p.phone_public,
            p.email_public,
            p.ssn4_public,
            p.dl_public,
        ]
    )
    assert p.commercial_use_prohibited is True
    assert get_policy("").dob_disclosure == "none"


def test_policy_is_frozen() -> None:
    with pytest.raises(AttributeError):
        get_policy("NC").dob_disclosure = "full"  # type: ignore[misc]


def test_disallowed_columns_by_name() -> None:
    cols = ["state_voter_id", "dob", "birth_year", "phone", "email", "ssn4", "dl_token", "party"]
    assert disallowed_columns(cols, get_policy("NC")) == ["dob", "email", "ssn4"]
    assert disallowed_columns(cols, get_policy("WI")) == [
        "dob",
        "birth_year",
        "phone",
        "email",
        "ssn4",
        "party",
    ]


# --------------------------------------------------------------------------
# enforcement
# --------------------------------------------------------------------------

DOBS = [dt.date(1961, 2, 13), dt.date(1984, 7, 29), dt.date(1999, 12, 31), dt.date(1975, 5, 5)]
PHONES = ["9195550142", "7045550199", None, "3365550111"]
EMAILS = ["alpha.voter@example.org", None, "gamma.q@example.net", "delta77@example.com"]


def _registrations(con: duckdb.DuckDBPyConnection) -> duckdb.DuckDBPyRelation:
    n = len(DOBS)
    t = pa.table(
        {
            "state": ["ZZ"] * n,
            "state_voter_id": [f"V{i}" for i in range(n)],
            "last_name": ["ALPHA", "BETA", "GAMMA", "DELTA"],
            "first_name": ["ANN", "BOB", "CARL", "DORA"],
            "dob": DOBS,
            "birth_year": [d.year for d in DOBS],
            "dob_granularity": ["full"] * n,
            "party": ["DEM", "REP", "UNA", "DEM"],
            "party_code": ["D", "R", "U", "D"],
            "phone": PHONES,
            "email": EMAILS,
            "ssn4_token": ["ab" * 32] * n,
        }
    )
    t = conform(t, REGISTRATION_SCHEMA).append_column(
        "_protected", pa.array([False, False, False, True])
    )
    return con.from_arrow(t)


def _year_only_policy() -> StatePolicy:
    # A year-only / no-phone / no-email state (NC-like but phone off too).
    base = get_policy("NC")
    from dataclasses import replace

    return replace(base, state="ZZ", dob_disclosure="year", phone_public=False, email_public=False)


def test_enforce_generalises_dob_and_drops_contact(tmp_path: Path) -> None:
    con = duckdb.connect()
    rel, findings = enforce(_registrations(con), _year_only_policy())
    out = rel.to_arrow_table()
    assert out.num_rows == 3  # the protected row is excluded
    assert "_protected" not in out.column_names
    assert out.column("dob").null_count == 3
    assert out.column("birth_year").to_pylist() == [1961, 1984, 1999]
    assert set(out.column("dob_granularity").to_pylist()) == {"year"}
    assert out.column("phone").null_count == 3 and out.column("email").null_count == 3
    assert out.column("ssn4_token").null_count == 0  # sealed tokens are always allowed
    assert findings.protected_excluded == 1 and findings.rows_in == 4 and findings.rows_out == 3
    assert findings.generalised == {"dob": 3}
    assert findings.dropped["phone"] == 2 and findings.dropped["email"] == 2

    # Written to Parquet: no byte of any file holds a DOB, phone or email.
    out_dir = tmp_path / "store"
    out_dir.mkdir()
    pq.write_table(rel.to_arrow_table(), out_dir / "registrations.parquet", compression="none")
    rel.to_parquet(str(out_dir / "registrations_duckdb.parquet"), compression="uncompressed")
    needles: list[bytes] = []
    for d in DOBS:
        needles += [
            d.isoformat().encode(),
            d.strftime("%m/%d/%Y").encode(),
            d.strftime("%Y%m%d").encode(),
        ]
        days = (d - dt.date(1970, 1, 1)).days  # date32 storage
        needles.append(days.to_bytes(4, "little", signed=True))
    needles += [p.encode() for p in PHONES if p] + [e.encode() for e in EMAILS if e]
    files = list(out_dir.rglob("*"))
    assert len(files) == 2
    for f in files:
        blob = f.read_bytes()
        for needle in needles:
            assert needle not in blob, f"{f.name} holds a value the policy forbids"


def test_enforce_none_removes_birth_year_and_party() -> None:
    con = duckdb.connect()
    rel, findings = enforce(_registrations(con), get_policy("WI"))  # none, no party, no phone
    out = rel.to_arrow_table()
    assert out.column("dob").null_count == out.num_rows
    assert out.column("birth_year").null_count == out.num_rows
    assert set(out.column("dob_granularity").to_pylist()) == {"none"}
    assert set(out.column("party").to_pylist()) == {"NPR"}
    assert out.column("party_code").null_count == out.num_rows
    assert findings.dropped["dob"] == 3 and findings.dropped["birth_year"] == 3


def test_enforce_full_dob_state_keeps_dob_and_schema_types() -> None:
    con = duckdb.connect()
    rel, _ = enforce(_registrations(con), get_policy("OH"))
    out = rel.to_arrow_table()
    assert out.column("dob").to_pylist() == DOBS[:3]
    assert out.schema.field("dob").type == pa.date32()
    assert out.schema.field("birth_year").type == pa.int16()
    assert out.column_names == [f.name for f in REGISTRATION_SCHEMA]


def test_enforce_removes_plaintext_identifiers_and_unreadable_protected_flag() -> None:
    con = duckdb.connect()
    rel = con.sql(
        "SELECT * FROM (VALUES ('1', '1234', 'D123', 'no'), ('2', '5678', 'D456', 'maybe'),"
        " ('3', NULL, NULL, NULL)) t(state_voter_id, ssn4, dl_number, _protected)"
    )
    out, findings = enforce(rel, get_policy("OH"))
    assert out.columns == ["state_voter_id"]
    assert [r[0] for r in out.fetchall()] == ["1", "3"]  # 'maybe' cannot be read -> protected
    assert findings.protected_excluded == 1
    assert findings.dropped == {"ssn4": 1, "dl_number": 1}


def test_override_needs_legal_basis_and_is_logged(caplog: pytest.LogCaptureFixture) -> None:
    with pytest.raises(PolicyViolation):
        Override(frozenset({"dob"}), legal_basis="")
    with pytest.raises(PolicyViolation):
        Override(frozenset({"ssn4"}), legal_basis="court order 2026-01 says so")
    con = duckdb.connect()
    o = Override(frozenset({"dob"}), legal_basis="qualified requester, approval ref 2026-014")
    with caplog.at_level("WARNING", logger="voterolls"):
        rel, findings = enforce(_registrations(con), get_policy("WI"), override=o)
    assert "POLICY OVERRIDE for WI" in caplog.text and "2026-014" in caplog.text
    assert rel.to_arrow_table().column("dob").null_count == 0
    assert findings.override_fields == ["dob"]


def test_vote_history_withheld_where_not_public() -> None:
    con = duckdb.connect()
    vh = con.sql(
        "SELECT * FROM (VALUES ('V0', DATE '2016-11-08'), ('V3', DATE '2016-11-08')) t(state_voter_id, election_date)"
    )
    out, findings = enforce_vote_history(vh, get_policy("HI"))  # vote history unknown -> withheld
    assert out.fetchall() == [] and out.columns == ["state_voter_id", "election_date"]
    assert findings.dropped == {"vote_history": 2}
    out, findings = enforce_vote_history(
        vh, get_policy("NC"), protected_ids=con.sql("SELECT 'V3' AS state_voter_id")
    )
    assert [r[0] for r in out.fetchall()] == ["V0"]
    assert findings.protected_excluded == 1


def test_reader_relation_enforced_before_parquet(tmp_path: Path) -> None:
    """A native full-DOB file read by voterolls.formats, enforced as year-only, leaves no DOB on disk."""
    import csv
    from dataclasses import replace

    from voterolls.formats import get_format, scan

    names = get_format("oh_swvf").registrations.names
    src = tmp_path / "in" / "SWVF_1_22.txt"
    src.parent.mkdir()
    dobs = ["1969-01-03", "1980-12-25", "1955-06-30"]
    with src.open("w", encoding="latin-1", newline="") as fh:
        w = csv.writer(fh, quoting=csv.QUOTE_ALL, lineterminator="\n")
        w.writerow(names)
        for i, dob in enumerate(dobs):
            row = [""] * len(names)
            for col, value in {
                "SOS_VOTERID": f"OH{i:010d}",
                "LAST_NAME": "ZETA",
                "FIRST_NAME": "ANN",
                "DATE_OF_BIRTH": dob,
                "COUNTY_NUMBER": "12",
                "VOTER_STATUS": "ACTIVE",
            }.items():
                row[names.index(col)] = value
            w.writerow(row)
    con = duckdb.connect()
    s = scan(con, [src], state="OH", format="oh_swvf")
    rel, findings = enforce(s.registrations, replace(get_policy("OH"), dob_disclosure="year"))
    out_dir = tmp_path / "store"
    out_dir.mkdir()
    rel.to_parquet(str(out_dir / "registrations.parquet"), compression="uncompressed")
    s.finish()
    assert findings.generalised == {"dob": 3} and findings.rows_out == 3
    back = pq.read_table(out_dir / "registrations.parquet")
    assert back.column("birth_year").to_pylist() == [1969, 1980, 1955]
    blob = (out_dir / "registrations.parquet").read_bytes()
    for d in dobs:
        assert d.encode() not in blob
        assert dt.date.fromisoformat(d).strftime("%m/%d/%Y").encode() not in blob
    meta = pq.ParquetFile(out_dir / "registrations.parquet").metadata
    i = back.column_names.index("dob")
    stats = meta.row_group(0).column(i).statistics
    assert stats is None or stats.null_count == 3  # no DOB value stored at all


def test_source_keys_are_described() -> None:
    from voterolls.policy.model import source_descriptions

    described = source_descriptions()
    keys = {k for p in all_policies().values() for k in p.sources}
    # CIVIC-DOC (cited for NC) has no entry in the draft's sources file: a known gap.
    assert keys - set(described) <= {"CIVIC-DOC"}
    assert "Voteshield" in described["REGGIE"]


def test_enforce_never_leaks_for_any_policy() -> None:
    """Property: whatever the policy, no disallowed value survives and row counts reconcile."""
    from dataclasses import replace

    from hypothesis import given, settings
    from hypothesis import strategies as st

    con = duckdb.connect()
    base = _registrations(con).to_arrow_table()

    @settings(max_examples=40, deadline=None)
    @given(
        dob=st.sampled_from(["full", "year", "none"]),
        phone=st.booleans(),
        email=st.booleans(),
        party=st.booleans(),
        protected=st.lists(st.booleans(), min_size=4, max_size=4),
    )
    def check(dob: str, phone: bool, email: bool, party: bool, protected: list[bool]) -> None:
        pol = replace(
            get_policy("NC"),
            dob_disclosure=dob,
            phone_public=phone,
            email_public=email,
            party_on_file=party,
        )
        t = base.set_column(
            base.column_names.index("_protected"), "_protected", pa.array(protected)
        )
        rel, f = enforce(con.from_arrow(t), pol)
        out = rel.to_arrow_table()
        assert out.num_rows == 4 - sum(protected) == f.rows_out
        assert f.rows_in == f.rows_out + f.protected_excluded
        kept = [i for i, p in enumerate(protected) if not p]
        if dob != "full":
            assert out.column("dob").null_count == out.num_rows
        if dob == "none":
            assert out.column("birth_year").null_count == out.num_rows
        else:
            assert out.column("birth_year").to_pylist() == [DOBS[i].year for i in kept]
        if not phone:
            assert out.column("phone").null_count == out.num_rows
        if not email:
            assert out.column("email").null_count == out.num_rows
        if not party:
            assert set(out.column("party").to_pylist()) <= {"NPR"}
        ids = out.column("state_voter_id").to_pylist()
        assert ids == [f"V{i}" for i in kept]  # protected rows never appear

    check()
