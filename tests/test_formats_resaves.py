"""Header-less layouts (FL, NY, PA) re-saved: detected as their own layout and read to the same values.

The hand-written fixtures under ``tests/fixtures/layouts/`` give each of these
states three published years (``test_layout_fixtures.py``).  A county or a
campaign rarely passes the file on untouched: a spreadsheet's "Unicode text"
export writes UTF-16 with a byte-order mark, another tool UTF-8 with a BOM and
CRLF line ends.  The copies are made here from the fixtures with plain Python
(never with the project's writer); each must be detected, not named, and
read to exactly the fixture's values.
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import duckdb
import pytest

from voterolls.formats import detect_format, scan

FIX = Path(__file__).parent / "fixtures" / "layouts"

#: (state, layout, files, voter id -> fields typed from the fixture).
CASES = [
    ("FL", "fl_extract", ["fl/DAD_20240109.txt"], {
        "300000021": {"last_name": "MUÑOZ-ÁLVAREZ", "first_name": "JOSÉ", "middle_name": "ÍÑIGO", "county": "DAD"},
        "300000022": {"dob": None, "party": "OTH", "party_code": "IND"},
    }),
    ("FL", "fl_extract", ["fl/BRO_20201110.txt"], {
        "200000011": {"first_name": "EFUA", "race": "asian", "party": "GRN", "phone": "9545550144"},
        "200000012": {"name_suffix": "SR", "party_code": "CPF", "dob": dt.date(1938, 8, 8)},
    }),
    ("NY", "ny_statewide", ["ny/AllNYSVoters_20230109.txt"], {
        "NY000000000000000101": {"last_name": "DELACROIX", "first_name": "RENÉE", "dob": dt.date(1972, 5, 23),
                                 "residence_address": "41 PEARL ST", "residence_zip5": "12207"},
        "NY000000000000000102": {"last_name": "O'SHAUGHNESSY", "name_suffix": "JR", "status": "pending"},
    }),
    ("NY", "ny_statewide_pre2021", ["ny/AllNYSVoters_20190102.txt"], {
        "NY000000000000000201": {"last_name": "KOWALCZYK", "dob": dt.date(1945, 8, 17), "residence_city": "BUFFALO"},
        "NY000000000000000203": {"first_name": "LUCÍA", "status": "pending"},
    }),
    ("PA", "pa_fve", ["pa/LEHIGH FVE 20201201.txt", "pa/LEHIGH Election Map 20201201.txt"], {
        "112233446": {"party": "GRN", "party_code": "GR"},
        "112233447": {"party": "LIB", "party_code": "L"},
    }),
]  # fmt: skip

#: How a re-save writes the text back: (encoding, line end).
RESAVES = {"utf16_bom_crlf": ("utf-16", "\r\n"), "utf8_bom_crlf": ("utf-8-sig", "\r\n"), "utf8_lf": ("utf-8", "\n")}


def _resave(src: Path, out: Path, how: str) -> Path:
    raw = src.read_bytes()
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError:
        text = raw.decode("latin-1")  # the NY 2023 fixture is latin-1, as published
    encoding, eol = RESAVES[how]
    dest = out / src.name
    dest.write_bytes(text.replace("\r\n", "\n").replace("\n", eol).encode(encoding))
    return dest


def _read(paths: list[Path], state: str) -> tuple[list[dict], list[dict]]:
    s = scan(duckdb.connect(), paths, state=state)
    regs = s.registrations.to_arrow_table().to_pylist()
    vh = s.vote_history.to_arrow_table().to_pylist() if s.vote_history is not None else []
    rep = s.finish()
    assert rep.quarantine.num_rows == 0
    return regs, vh


def _comparable(rows: list[dict]) -> list[dict]:
    """Rows without where they came from (file name and line differ between the copies), in an order
    of their own values: a voter's several vote-history rows can come back in either order from a
    parallel read, so sorting by voter id alone left ties in read order and the test flaky."""
    drop = {"source_file", "source_line"}
    kept = ({k: v for k, v in r.items() if k not in drop} for r in rows)
    return sorted(kept, key=lambda r: [str(r.get("state_voter_id"))] + [str(r[k]) for k in sorted(r)])


@pytest.mark.parametrize("how", sorted(RESAVES))
@pytest.mark.parametrize(("state", "fmt", "files", "expected"), CASES, ids=[c[2][0] for c in CASES])
def test_resaved_header_less_file_is_detected_and_reads_the_same(
    tmp_path: Path, state: str, fmt: str, files: list[str], expected: dict, how: str
) -> None:
    originals = [FIX / f for f in files]
    copies = [_resave(p, tmp_path, how) for p in originals]
    assert detect_format(copies) == fmt
    regs, vh = _read(copies, state)
    by_id = {r["state_voter_id"]: r for r in regs}
    for vid, want in expected.items():
        for field, value in want.items():
            assert by_id[vid][field] == value, (vid, field)
    orig_regs, orig_vh = _read(originals, state)
    assert _comparable(regs) == _comparable(orig_regs)
    assert _comparable(vh) == _comparable(orig_vh)
