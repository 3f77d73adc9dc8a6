"""Sealing columns of a native file in place: tokens in, every other byte kept."""

from __future__ import annotations

import csv
from pathlib import Path

import pytest

from voterolls.errors import UserError
from voterolls.formats import get_format
from voterolls.seal import seal_native, seal_value

KEY = b"native-sealing-test-key-0123456789abcdef"


def _oh_file(tmp_path: Path) -> tuple[Path, list[str]]:
    names = get_format("oh_swvf").registrations.names
    rows = []
    for i, (last, dob) in enumerate(
        [("MÜLLER", "1969-01-03"), ("SMITH", "1980-12-25"), ("DOE", "")]
    ):
        row = [""] * len(names)
        row[names.index("SOS_VOTERID")] = f"OH{i:010d}"
        row[names.index("LAST_NAME")] = last
        row[names.index("DATE_OF_BIRTH")] = dob
        row[names.index("RESIDENTIAL_ZIP")] = "04321"
        rows.append(row)
    p = tmp_path / "SWVF_1_22.txt"
    with p.open("w", encoding="latin-1", newline="") as fh:
        w = csv.writer(fh, quoting=csv.QUOTE_ALL, lineterminator="\n")
        w.writerow(names + ["GENERAL-11/08/2016"])  # one wide-history column beyond the layout
        for r in rows:
            w.writerow(r + ["X"])
    return p, names


def test_seal_native_keeps_format_and_replaces_only_the_column(tmp_path: Path) -> None:
    src, names = _oh_file(tmp_path)
    out = tmp_path / "sealed.txt"
    report = seal_native(src, out, KEY, format="oh_swvf", columns=["DATE_OF_BIRTH"])
    assert report.rows == 3 and report.tokens == {"DATE_OF_BIRTH": 2}
    a = src.read_bytes()
    b = out.read_bytes()
    assert b"1969-01-03" not in b and b"1980-12-25" not in b
    assert "MÜLLER".encode("latin-1") in b  # encoding kept
    assert a.splitlines()[0] == b.splitlines()[0]  # header byte-identical
    ra = list(csv.reader(a.decode("latin-1").splitlines()))
    rb = list(csv.reader(b.decode("latin-1").splitlines()))
    i = names.index("DATE_OF_BIRTH")
    for x, y in zip(ra[1:], rb[1:], strict=True):
        assert x[:i] + x[i + 1 :] == y[:i] + y[i + 1 :]  # every other field unchanged ("04321" too)
    assert rb[1][i] == seal_value("1969-01-03", KEY, "dob")
    assert rb[3][i] == ""  # empty stays empty
    # Every field still double-quoted, as Ohio publishes it.
    assert b.splitlines()[1].startswith(b'"OH0000000000","')


def test_seal_native_headerless_crlf_florida(tmp_path: Path) -> None:
    names = get_format("fl_extract").registrations.names
    row = [""] * len(names)
    row[names.index("Birth_Date")] = "03/07/1980"
    p = tmp_path / "FL_extract.txt"
    p.write_bytes(("\t".join(row) + "\r\n").encode())
    out = tmp_path / "FL_sealed.txt"
    seal_native(p, out, KEY, format="fl_extract", columns=["Birth_Date"])
    data = out.read_bytes()
    assert data.endswith(b"\r\n") and data.count(b"\t") == len(names) - 1
    assert seal_value("1980-03-07", KEY, "dob").encode() in data


def test_seal_native_errors(tmp_path: Path) -> None:
    src, _ = _oh_file(tmp_path)
    with pytest.raises(UserError, match="not in the layout"):
        seal_native(src, tmp_path / "o.txt", KEY, format="oh_swvf", columns=["NOPE"])
    with pytest.raises(UserError, match="cannot tell"):
        seal_native(src, tmp_path / "o.txt", KEY, format="oh_swvf", columns=["LAST_NAME"])
    # An explicit domain is accepted for any column.
    seal_native(src, tmp_path / "o.txt", KEY, format="oh_swvf", columns=["RESIDENTIAL_ZIP=dl"])
    assert b"04321" not in (tmp_path / "o.txt").read_bytes()
