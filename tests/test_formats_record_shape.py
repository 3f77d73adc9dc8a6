"""One rule for a record's shape: the fast path and the line engine agree on awkward lines.

The fast path's line pass accepts the common shapes with RE2 patterns built
from the engine's field atoms (``engine.QUOTED_FIELD``, ``engine.bare_field``)
and leaves every other line to the line engine's own rule
(``engine.fields_expr``).  Reading a file with awkward lines both ways must
give the same rows and the same quarantine (line and reason).
"""

from __future__ import annotations

from pathlib import Path

import duckdb
import pytest

from voterolls.formats import fast, scan

FIX = Path(__file__).parent / "fixtures" / "formats"


def _read(path: Path, state: str) -> tuple[list[tuple], list[tuple]]:
    s = scan(duckdb.connect(), [path], state=state)
    regs = sorted((r["state_voter_id"], r["last_name"], r["first_name"], r["source_line"])
                  for r in s.registrations.to_arrow_table().to_pylist())
    q = sorted((r["line"], r["field"], r["reason"]) for r in s.finish().quarantine.to_pylist())
    return regs, q


def _nc_lines(good: str) -> list[str]:
    f = good.split("\t")
    doubled = f.copy()
    doubled[3], doubled[4] = '"GH000222"', '"O""BRIEN"'  # a doubled quote inside a quoted field
    odd = f.copy()
    odd[3], odd[4] = '"GH000333"', '"O"BRIEN"'  # a lone quote inside a field
    bare = f.copy()
    bare[3], bare[4] = '"GH000444"', "PLAIN"  # an unquoted field in an every-field-quoted layout
    return ["\t".join(doubled), "\t".join(odd), "\t".join(bare), "\t".join(f[:-1])]


def _tx_lines(good: str) -> list[str]:
    f = good.split(",")
    quoted = f.copy()
    quoted[2], quoted[3] = "1000000901", '"SMITH, JR"'  # a quoted delimiter
    doubled = f.copy()
    doubled[2], doubled[3] = "1000000902", '"THE ""BIG"" ONE"'
    stray = f.copy()
    stray[2], stray[3] = "1000000903", 'O"BRIEN'  # a stray quote in a bare field
    return [",".join(quoted), ",".join(doubled), ",".join(stray), ",".join(f + ["x"])]


@pytest.mark.parametrize(
    ("name", "state", "awkward"),
    [("nc/ncvoter_2024_bom_crlf.txt", "NC", _nc_lines), ("tx/tx_2025.csv", "TX", _tx_lines)],
)
def test_fast_path_and_line_engine_read_awkward_lines_alike(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, name: str, state: str, awkward
) -> None:
    text = (FIX / name).read_bytes().decode("utf-8-sig")
    eol = "\r\n" if "\r\n" in text else "\n"
    lines = text.split(eol)
    lines = lines[:-1] if lines[-1] == "" else lines
    path = tmp_path / Path(name).name
    path.write_text(eol.join(lines + awkward(lines[1])) + eol, encoding="utf-8")

    import importlib

    scan_mod = importlib.import_module("voterolls.formats.scan")
    monkeypatch.setattr(scan_mod, "SPLIT_MIN_LINES", 1)  # a small file is split like a long one
    monkeypatch.setattr(scan_mod, "SPLIT_MAX_BAD_SHARE", 0.5)
    real, found = fast.bad_lines, []
    monkeypatch.setattr(fast, "bad_lines", lambda *a, **kw: found.append(real(*a, **kw)) or found[-1])
    both = _read(path, state)
    assert found and found[0] is not None and len(found[0].lines) == 2  # the fast path's line pass judged it
    monkeypatch.setattr(fast, "eligible", lambda plan: False)  # every file through the line engine
    lines_only = _read(path, state)
    assert both == lines_only
    regs, q = both
    assert len(q) == 2 and len(regs) == len(lines) - 1 + 2
