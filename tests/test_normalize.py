"""Normalisation rules (names, suffixes, nicknames, dates, ZIP, address, contact), as SQL."""

from __future__ import annotations

import csv
import datetime as dt
from importlib import resources

import duckdb
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from voterolls.normalize import clean_dates, normalize_registrations
from voterolls.normalize.build_nicknames import build
from voterolls.normalize.names import canonical_first_name, canonical_first_names, nickname_table

COLS = (
    "state", "state_voter_id", "last_name", "first_name", "middle_name", "name_suffix",
    "residence_zip5", "residence_address", "residence_city", "phone", "email",
)  # fmt: skip


def _norm(rows: list[tuple], extra_sql: str = "") -> list[dict]:
    con = duckdb.connect()
    values = ", ".join(
        "(" + ", ".join("NULL" if v is None else "'" + str(v).replace("'", "''") + "'" for v in r) + ")" for r in rows
    )
    rel = con.sql(f"SELECT * FROM (VALUES {values}) t({', '.join(COLS)})")
    out = normalize_registrations(con, rel)
    cols = out.columns
    got = [dict(zip(cols, r, strict=True)) for r in out.fetchall()]
    return sorted(got, key=lambda d: d["state_voter_id"])


def _row(i: int, last=None, first=None, middle=None, suffix=None, zip_=None, addr=None, city=None, phone=None, email=None) -> tuple:
    return ("NC", f"{i:03d}", last, first, middle, suffix, zip_, addr, city, phone, email)


def test_suffixes_split_from_name_fields() -> None:
    got = _norm(
        [
            _row(1, last="Smith Jr.", first="John"),
            _row(2, last="SMITH, SR", first="Ann"),
            _row(3, last="Jones", first="Robert III"),
            _row(4, last="Lee", first="Mary", middle="Ann IV"),
            _row(5, last="Doe V", first="Jane", middle="V"),
            _row(6, last="Doe", first="John V"),  # a trailing V in a first name is an initial
            _row(7, last="Brown II", first="Al", suffix="Junior"),  # supplied suffix wins
            _row(8, last="JR", first="X"),  # a lone JR is a surname, not a suffix
        ]
    )
    by = {d["state_voter_id"]: d for d in got}
    assert (by["001"]["last_name"], by["001"]["name_suffix"]) == ("SMITH", "JR")
    assert (by["002"]["last_name"], by["002"]["name_suffix"]) == ("SMITH", "SR")
    assert (by["003"]["first_name"], by["003"]["name_suffix"]) == ("ROBERT", "III")
    assert (by["004"]["middle_name"], by["004"]["name_suffix"]) == ("ANN", "IV")
    assert (by["005"]["last_name"], by["005"]["middle_name"], by["005"]["name_suffix"]) == ("DOE", "V", "V")
    assert (by["006"]["first_name"], by["006"]["name_suffix"]) == ("JOHN V", None)
    assert (by["007"]["last_name"], by["007"]["name_suffix"]) == ("BROWN", "JR")
    assert (by["008"]["last_name"], by["008"]["name_suffix"]) == ("JR", None)
    assert "name_suffix:split" in by["001"]["_issues"]
    assert "name_suffix:split" not in by["007"]["_issues"]


def test_accents_and_punctuation_folded() -> None:
    got = _norm(
        [
            _row(1, last="Müller", first="Zoë"),
            _row(2, last="O'Brien", first="Ann - Marie"),
            _row(3, last="Østergaard", first="Łukasz"),
            _row(4, last="Straße", first="Æsa"),
            _row(5, last="  de   la  Cruz ", first="José"),
            _row(6, last="...", first="  "),
        ]
    )
    by = {d["state_voter_id"]: d for d in got}
    assert (by["001"]["last_name"], by["001"]["first_name"]) == ("MULLER", "ZOE")
    assert (by["002"]["last_name"], by["002"]["first_name"]) == ("OBRIEN", "ANN-MARIE")
    assert (by["003"]["last_name"], by["003"]["first_name"]) == ("OSTERGAARD", "LUKASZ")
    assert (by["004"]["last_name"], by["004"]["first_name"]) == ("STRASSE", "AESA")
    assert (by["005"]["last_name"], by["005"]["first_name"]) == ("DE LA CRUZ", "JOSE")
    assert (by["006"]["last_name"], by["006"]["first_name"]) == (None, None)


def test_nicknames_canonical() -> None:
    got = _norm([_row(1, first="Bob"), _row(2, first="bill"), _row(3, first="Zebediah"), _row(4, first="Robert"), _row(5, first=None)])
    canon = [d["first_name_canonical"] for d in got]
    assert canon == ["ROBERT", "WILLIAM", "ZEBEDIAH", "ROBERT", None]
    # the first name itself is kept as written (cleaned); only the canonical column maps
    assert got[0]["first_name"] == "BOB"


@settings(max_examples=60, deadline=None)
@given(
    st.lists(
        st.one_of(
            st.none(),
            st.sampled_from(nickname_table().column("nickname").to_pylist()),
            st.sampled_from(nickname_table().column("canonical").to_pylist()),
            st.text(alphabet="ABCDEJLMNORSTY -", max_size=8),
        ),
        min_size=1,
        max_size=40,
    )
)
def test_batch_nickname_mapping_equals_the_sql_join(names: list[str | None]) -> None:
    """Ingest maps nicknames per Arrow batch (row order kept); other callers use the SQL join."""
    import pyarrow as pa

    got = _norm([_row(i, first=n) for i, n in enumerate(names)])  # the SQL join
    batch = canonical_first_names(pa.array([d["first_name"] for d in got], pa.string()))
    assert batch.to_pylist() == [d["first_name_canonical"] for d in got]


def test_nickname_table_is_derived_deterministically_from_the_package() -> None:
    vendored = {r["nickname"]: r["canonical"] for r in csv.DictReader(
        (resources.files("voterolls.normalize") / "nicknames.csv").read_text().splitlines()
    )}  # fmt: skip
    assert vendored == build()
    assert len(vendored) > 500
    # resolved to a fixed point: no canonical name is itself mapped further
    assert not set(vendored.values()) & set(vendored)
    assert canonical_first_name(duckdb.connect(), ["JACK", "PEGGY", "ERIN"]) == ["JOHN", "MARGARET", "ERIN"]
    assert nickname_table().num_rows == len(vendored)


@pytest.mark.parametrize(
    ("raw", "zip5", "tag"),
    [
        ("27517", "27517", None),
        ("27517.0", "27517", "residence_zip5:repaired"),
        ("27517-1234", "27517", "residence_zip5:repaired"),
        ("275171234", "27517", "residence_zip5:repaired"),
        ("2134", "02134", "residence_zip5:repaired"),
        ("2134.0", "02134", "residence_zip5:repaired"),
        ("abc", None, "residence_zip5:nulled"),
        ("00000", None, "residence_zip5:nulled"),
        (None, None, None),
    ],
)
def test_zip5_repair(raw: str | None, zip5: str | None, tag: str | None) -> None:
    (d,) = _norm([_row(1, zip_=raw)])
    assert d["residence_zip5"] == zip5
    zip_tags = [t for t in d["_issues"] if t.startswith("residence_zip5")]
    assert zip_tags == ([tag] if tag else [])


def test_address_city_phone_email() -> None:
    got = _norm(
        [
            _row(1, addr="123 North Main Street, Apt. 4", city="chapel  hill", phone="(919) 555-1212", email=" Foo@Bar.COM "),
            _row(2, addr="5 s. oak avenue #4", city="Coeur d'Alene", phone="1-919-555-1212", email="not-an-email"),
            _row(3, addr="77 SOUTHWEST PARKWAY SUITE 100", city="DURHAM", phone="n/a", email=None),
            _row(4, addr="10 MAIN ST", city="SALEM", phone="9195551212", email="a@b.org"),
        ]
    )
    by = {d["state_voter_id"]: d for d in got}
    assert by["001"]["residence_address"] == "123 N MAIN ST APT 4"
    assert by["001"]["residence_city"] == "CHAPEL HILL"
    assert by["001"]["phone"] == "9195551212"
    assert by["001"]["email"] == "foo@bar.com"
    assert by["002"]["residence_address"] == "5 S OAK AVE # 4"
    assert by["002"]["residence_city"] == "COEUR DALENE"
    assert by["002"]["phone"] == "9195551212"
    assert by["002"]["email"] is None and "email:nulled" in by["002"]["_issues"]
    assert by["003"]["residence_address"] == "77 SW PKWY STE 100"
    assert by["003"]["phone"] is None and "phone:nulled" in by["003"]["_issues"]
    assert by["004"]["residence_address"] == "10 MAIN ST"  # already standard: fast path, unchanged


def test_placeholder_dob_nulled_before_policy() -> None:
    con = duckdb.connect()
    rel = con.sql(
        "SELECT * FROM (VALUES ('1', DATE '1900-01-01', 1900::SMALLINT, 'full'), ('2', DATE '1980-05-06', 1980::SMALLINT, 'full'),"
        " ('3', NULL, 1700::SMALLINT, 'year'), ('4', DATE '2999-01-01', 2999::SMALLINT, 'full'), ('5', NULL, 1975::SMALLINT, 'year'))"
        " t(state_voter_id, dob, birth_year, dob_granularity)"
    )
    got = {r[0]: r[1:] for r in clean_dates(rel).fetchall()}
    assert got["1"] == (None, None, "none", ["dob:nulled"])
    assert got["2"] == (dt.date(1980, 5, 6), 1980, "full", [])
    assert got["3"] == (None, None, "none", ["birth_year:nulled"])
    assert got["4"][:3] == (None, None, "none")
    assert got["5"] == (None, 1975, "year", [])


def test_normalisation_is_one_lazy_relation() -> None:
    """No Python per row: the result is a DuckDB relation built from SQL, evaluated lazily."""
    con = duckdb.connect()
    rel = con.sql("SELECT 'NC' AS state, i::VARCHAR AS state_voter_id, 'Smith Jr' AS last_name, 'Bob' AS first_name FROM range(200000) r(i)")
    out = normalize_registrations(con, rel)
    assert isinstance(out, duckdb.DuckDBPyRelation)
    row = out.aggregate("count(*), count(DISTINCT last_name), min(first_name_canonical), min(name_suffix)").fetchall()[0]
    assert row == (200000, 1, "ROBERT", "JR")
