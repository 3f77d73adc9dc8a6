"""Sealing: deterministic keyed tokens, no plaintext out, CLK similarity, key handling."""

from __future__ import annotations

import base64
import csv
import logging
from pathlib import Path

import pyarrow as pa
import pytest
from typer.testing import CliRunner

from voterolls.cli import app
from voterolls.errors import UserError
from voterolls.seal import (
    CLK_BITS,
    KEY_ENV,
    SIDECAR_COLUMNS,
    clk_encode,
    clk_similarity,
    load_key,
    read_sidecar,
    seal_file,
    seal_table,
    seal_value,
    tokens,
    write_new_key,
)

KEY_A = b"consortium-key-A-0123456789abcdef0123456789"
KEY_B = b"consortium-key-B-0123456789abcdef0123456789"

IDS = [
    # state_voter_id, dob, ssn4, dl_number, first, last
    ("NC000001", "1961-02-13", "0412", "NC12345678", "JONATHAN", "SMITH"),
    ("NC000002", "1984-07-29", "9921", "NC87654321", "MARIA", "GONZALEZ"),
    ("NC000003", "1999-12-31", "5555", "", "ANNE", "O'BRIEN"),
    ("NC000004", "", "", "NC11112222", "", ""),
]


def _write_ids(path: Path, rows=IDS, names: bool = True) -> Path:
    with path.open("w", newline="") as fh:
        w = csv.writer(fh)
        header = ["state_voter_id", "dob", "ssn4", "dl_number"] + (
            ["first_name", "last_name"] if names else []
        )
        w.writerow(header)
        for r in rows:
            w.writerow(r if names else r[:4])
    return path


def test_same_plaintext_same_key_same_token_other_key_other_token() -> None:
    vals = pa.array(["1980-03-07", "1980-03-07", None, "1975-01-01"])
    a = tokens(vals, KEY_A, "dob").to_pylist()
    b = tokens(vals, KEY_B, "dob").to_pylist()
    assert a[0] == a[1] and a[2] is None and a[0] != a[3]
    assert len(a[0]) == 64 and all(c in "0123456789abcdef" for c in a[0])
    assert b[0] != a[0] and b[3] != a[3]
    # Domain separation: the same characters as SSN4 and as DOB give different tokens.
    assert (
        tokens(pa.array(["1980"]), KEY_A, "ssn4")[0] != tokens(pa.array(["1980"]), KEY_A, "dob")[0]
    )


def test_normalisation_makes_spellings_seal_alike() -> None:
    iso = seal_value("1980-03-07", KEY_A, "dob")
    assert iso == seal_value("03/07/1980", KEY_A, "dob") == seal_value("19800307", KEY_A, "dob")
    assert seal_value("2001-02-30", KEY_A, "dob") is None  # not a real date
    assert seal_value("412", KEY_A, "ssn4") == seal_value("0412", KEY_A, "ssn4")
    assert seal_value("nc-1234 5678", KEY_A, "dl") == seal_value("NC12345678", KEY_A, "dl")


def test_seal_file_writes_sidecar_contract_without_plaintext(tmp_path: Path) -> None:
    src = _write_ids(tmp_path / "NC_identifiers.csv")
    out = tmp_path / "NC_sealed.csv"
    report = seal_file(src, out, KEY_A, clk=True)
    assert report.rows == 4
    assert report.tokens == {"dob_token": 3, "ssn4_token": 3, "dl_token": 3, "name_clk": 3}
    side = read_sidecar(out)
    assert side.column_names == [*SIDECAR_COLUMNS, "name_clk"]
    assert side.column("state_voter_id").to_pylist() == [r[0] for r in IDS]
    assert side.column("dl_token").to_pylist()[2] is None  # empty input -> empty token
    assert side.column("name_clk").to_pylist()[3] is None
    blob = out.read_bytes()
    for r in IDS:
        for plain in r[1:]:
            if plain:
                assert plain.encode() not in blob
    assert b"1961" not in blob and b"0412" not in blob
    assert KEY_A not in blob
    # Re-sealing with the same key is byte-identical; another key differs.
    out2 = tmp_path / "again.csv"
    seal_file(src, out2, KEY_A, clk=True)
    assert out2.read_bytes() == blob
    out3 = tmp_path / "other.csv"
    seal_file(src, out3, KEY_B, clk=True)
    assert read_sidecar(out3).column("dob_token")[0] != side.column("dob_token")[0]


def test_sidecar_without_clk_has_exact_header(tmp_path: Path) -> None:
    src = _write_ids(tmp_path / "ids.csv", names=False)
    out = tmp_path / "sealed.csv"
    seal_file(src, out, KEY_A)
    header = out.read_text().splitlines()[0].replace('"', "")
    assert header == "state_voter_id,dob_token,ssn4_token,dl_token"


def test_invalid_values_counted_not_printed(tmp_path: Path) -> None:
    rows = [
        ("V1", "1980-13-45", "12345", "X1", "A", "B"),
        ("V2", "1980-01-01", "1234", "X2", "A", "B"),
    ]
    src = _write_ids(tmp_path / "ids.csv", rows)
    report = seal_file(src, tmp_path / "out.csv", KEY_A)
    assert report.invalid == {"dob": 1, "ssn4": 1}
    assert report.first_invalid_line == {"dob": 2, "ssn4": 2}


def test_missing_state_voter_id_is_user_error(tmp_path: Path) -> None:
    p = tmp_path / "bad.csv"
    p.write_text("id,dob\n1,1980-01-01\n")
    with pytest.raises(UserError, match="state_voter_id"):
        seal_file(p, tmp_path / "out.csv", KEY_A)
    t = pa.table({"state_voter_id": ["1", None], "dob": ["1980-01-01", "1980-01-02"]})
    with pytest.raises(UserError, match="line 3"):
        seal_table(t, KEY_A)


# --------------------------------------------------------------------------
# keys
# --------------------------------------------------------------------------


def test_key_file_env_and_short_key(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    kf = write_new_key(tmp_path / "consortium.key")
    assert (kf.stat().st_mode & 0o777) == 0o600
    key = load_key(kf)
    assert len(key) == 64
    with pytest.raises(UserError, match="overwrite"):
        write_new_key(kf)
    monkeypatch.setenv(KEY_ENV, key.decode())
    assert load_key(None) == key  # same text in env and file seals alike
    short = tmp_path / "short.key"
    short.write_text("tooshort-secret")
    with pytest.raises(UserError) as exc:
        load_key(short)
    assert "tooshort" not in str(exc.value) and "too short" in str(exc.value)
    monkeypatch.delenv(KEY_ENV)
    with pytest.raises(UserError, match=KEY_ENV):
        load_key(None)
    with pytest.raises(UserError, match="cannot read"):
        load_key(tmp_path / "absent.key")


def test_cli_seal_never_shows_key(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    src = _write_ids(tmp_path / "ids.csv")
    kf = tmp_path / "k"
    kf.write_bytes(KEY_A)
    out = tmp_path / "sealed.csv"
    runner = CliRunner()
    with caplog.at_level(logging.DEBUG, logger="voterolls"):
        res = runner.invoke(app, ["seal", "--key-file", str(kf), "--clk", str(src), str(out)])
    assert res.exit_code == 0, res.output
    assert "sealed 4 rows" in res.output
    assert KEY_A.decode() not in res.output and KEY_A.decode() not in caplog.text
    for r in IDS:
        for plain in r[1:4]:
            if plain:
                assert plain not in res.output and plain not in caplog.text
    kf.write_text("short")
    res = runner.invoke(app, ["seal", "--key-file", str(kf), str(src), str(out)])
    assert res.exit_code != 0 and "short" in str(res.exception)


# --------------------------------------------------------------------------
# CLKs
# --------------------------------------------------------------------------


def _clk(first: str, last: str, key: bytes = KEY_A, **kw) -> str:
    return clk_encode({"first_name": pa.array([first]), "last_name": pa.array([last])}, key, **kw)[
        0
    ].as_py()


def test_clk_one_typo_high_similarity_different_names_low() -> None:
    a = _clk("JONATHAN", "SMITH")
    assert len(base64.b64decode(a)) == CLK_BITS // 8
    assert clk_similarity(a, a) == 1.0
    typo = clk_similarity(a, _clk("JONATHON", "SMITH"))
    assert typo > 0.8
    assert clk_similarity(_clk("KATHERINE", "MCDONALD"), _clk("KATHERINE", "MACDONALD")) > 0.8
    assert clk_similarity(a, _clk("Jonathan", "Smith")) == 1.0  # case-folded
    assert clk_similarity(_clk("José", "Núñez"), _clk("JOSE", "NUNEZ")) == 1.0  # accents folded
    different = clk_similarity(a, _clk("MARIA", "GONZALEZ"))
    assert different < 0.5 < typo
    # Other key: unrelated bits even for the same name.
    assert clk_similarity(a, _clk("JONATHAN", "SMITH", key=KEY_B)) < 0.5


def test_clk_xor_fold_halves_length_and_keeps_order() -> None:
    a = _clk("JONATHAN", "SMITH", harden="xor_fold")
    assert len(base64.b64decode(a)) == CLK_BITS // 16
    same = clk_similarity(a, _clk("JONATHON", "SMITH", harden="xor_fold"))
    diff = clk_similarity(a, _clk("MARIA", "GONZALEZ", harden="xor_fold"))
    assert same > diff


def test_clk_vectorised_matches_single() -> None:
    firsts = pa.array(["ANN", "BOB", None, "ANN"])
    lasts = pa.array(["LEE", "RAY", None, "LEE"])
    clks = clk_encode({"first_name": firsts, "last_name": lasts}, KEY_A).to_pylist()
    assert clks[0] == clks[3] == _clk("ANN", "LEE")
    assert clks[2] is None


def test_ragged_line_names_line_not_content(tmp_path: Path) -> None:
    p = tmp_path / "ids.csv"
    p.write_text("state_voter_id,dob,ssn4\nV1,1980-01-01,1234\nV2,1980-01-02,4321,EXTRA\n")
    with pytest.raises(UserError) as exc:
        seal_file(p, tmp_path / "out.csv", KEY_A)
    msg = str(exc.value)
    assert "line 3" in msg and "1980-01-02" not in msg and "4321" not in msg
    assert not (tmp_path / "out.csv").exists() and not (tmp_path / "out.csv.partial").exists()
