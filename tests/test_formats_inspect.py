"""``voterolls inspect`` as users run it: the installed script in a subprocess, exit code and message."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import duckdb
import pytest

from voterolls.formats import scan

FIXTURES = Path(__file__).parent / "fixtures" / "formats"
ROOT = Path(__file__).resolve().parents[1]


def _voterolls(*args: str) -> subprocess.CompletedProcess[str]:
    exe = shutil.which("voterolls", path=str(Path(sys.executable).parent)) or "voterolls"
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    return subprocess.run([exe, *args], capture_output=True, text=True, env=env, timeout=300)


def test_inspect_reports_layout_mapping_and_shares_that_match_the_data() -> None:
    path = FIXTURES / "co" / "CE-VR011_2017_mail_addr_latin1.txt"
    res = _voterolls("inspect", str(path), "--json")
    assert res.returncode == 0, res.stderr
    rep = json.loads(res.stdout)
    assert (rep["format"], rep["state"], rep["detected"]) == ("co_csv", "CO", True)
    f = rep["files"][0]
    assert (f["encoding"], f["delimiter"], f["quoting"], f["header"]) == ("latin-1", ",", "minimal", True)
    assert ["VOTER_ID", "state_voter_id"] in f["mapping"] and ["BIRTH_YEAR", "birth_year"] in f["mapping"]
    assert f["unmapped"] == [] and f["missing"] == []
    assert "MAIL_ADDR1" in f["not_read"]
    # every share equals what the reader produces
    s = scan(duckdb.connect(), [path], state="CO")
    rows = s.registrations.to_arrow_table().to_pylist()
    s.finish()
    assert rep["sample_rows"] == rep["rows_read"] == len(rows) == 3
    shares = {x["field"]: x for x in rep["fields"]}
    for field, share in shares.items():
        assert share["non_null"] == round(sum(r[field] is not None for r in rows) / len(rows), 4), field
    assert shares["middle_name"]["non_null"] == 0.6667 and shares["dob"]["non_null"] == 0.0
    # the text form prints the same figures, and never a value
    text = _voterolls("inspect", str(path))
    assert text.returncode == 0
    assert "layout co_csv (CO), detected" in text.stdout
    assert "latin-1, comma-separated, quoting minimal, header" in text.stdout
    assert "middle_name              66.7%    100.0%" in text.stdout
    for value in ("ZIMMERLI", "CASSIA", "1982", "80202", "LARIMER"):
        assert value not in text.stdout and value not in res.stdout


def test_inspect_lists_unknown_and_missing_columns() -> None:
    res = _voterolls("inspect", str(FIXTURES / "wa" / "vrdb_2016_dflag.txt"))
    assert res.returncode == 0, res.stderr
    assert "layout wa_vrdb_2016 (WA), detected" in res.stdout
    assert "unknown (ignored): Dflag" in res.stdout and "missing (read as NULL): LastDateChanged" in res.stdout


def test_inspect_generic_for_a_state_without_a_layout(tmp_path: Path) -> None:
    de = tmp_path / "de_voters.csv"
    de.write_text(
        "UNIQUE-ID,LAST-NAME,FIRST-NAME,MID-INIT,DATE-OF-BIRTH,HOME-NO,HOME-STREET,HOME-CITY,HOME-ZIPCODE,PARTY,ELECTION-DISTRICT\n"
        "100000017,PLIMSOLL,HENRIETTA,A,03/14/1961,12,ORCHARD LN,DOVER,19901,D,31-04\n"
        "100000018,MARCHBANKS,OSWIN,,11/30/1979,4,BAYSIDE DR,LEWES,19958,R,20-01\n"
    )
    res = _voterolls("inspect", str(de), "--json")
    assert res.returncode == 0, res.stderr
    rep = json.loads(res.stdout)
    assert rep["format"] == "generic" and rep["state"] is None
    mapping = dict(map(tuple, rep["files"][0]["mapping"]))
    assert mapping["UNIQUE-ID"] == "state_voter_id" and mapping["DATE-OF-BIRTH"] == "dob"
    shares = {x["field"]: x for x in rep["fields"]}
    assert shares["dob"] == {"field": "dob", "non_null": 1.0, "parsed": 1.0}  # the MM/DD/YYYY dates were recognised
    ingest = _voterolls("ingest", "DE", str(de), "--workspace", str(tmp_path / "ws"))
    assert ingest.returncode == 0, ingest.stderr


def test_inspect_refuses_another_states_file_and_an_unknown_shape(tmp_path: Path) -> None:
    res = _voterolls("inspect", str(FIXTURES / "tx" / "tx_2025.csv"), "--state", "OK")
    assert res.returncode == 2
    assert "the layout is TX's (tx_csv), not OK's" in " ".join(res.stderr.split())
    odd = tmp_path / "odd.txt"
    odd.write_text("alpha;beta;gamma\n1;2;3\n")
    res = _voterolls("inspect", str(odd))
    assert res.returncode == 2 and "no known layout matches" in " ".join(res.stderr.split())
    assert "Traceback" not in res.stderr


@pytest.mark.parametrize("fmt", ["fl_extract", "ny_statewide"])
def test_named_layout_that_does_not_fit_is_refused_with_reason(fmt: str) -> None:
    res = _voterolls("inspect", str(FIXTURES / "wa" / "vrdb_2016_dflag.txt"), "--format", fmt)
    assert res.returncode == 2
    assert "line 1 is a header" in " ".join(res.stderr.split())


def test_ingest_reads_a_drifted_file_through_the_installed_script(tmp_path: Path) -> None:
    """An OH file re-saved by pandas (index column, fewer columns and elections) ingests as OH."""
    ws = tmp_path / "ws"
    res = _voterolls("ingest", "OH", str(FIXTURES / "oh" / "swvf_pandas_resave.csv"), "--workspace", str(ws))
    assert res.returncode == 0, res.stderr
    assert "oh_swvf" in res.stdout
    import pyarrow.parquet as pq

    regs = pq.read_table(next(ws.glob("states/OH/*/registrations.parquet")))
    assert regs.num_rows == 3
    assert sorted(regs.column("state_voter_id").to_pylist()) == ["OH0000000042", "OH0012345678", "OH0098765432"]


def test_ambiguous_file_is_refused_by_inspect_and_ingest_with_the_candidates(tmp_path: Path) -> None:
    """GA's header saved with semicolons fits GA's comma and pipe layouts alike: refused, both named, no guess."""
    import csv

    with (FIXTURES / "ga" / "ga_2023.csv").open(encoding="utf-8", newline="") as fh:
        rows = list(csv.reader(fh))
    semi = tmp_path / "ga_semicolon.txt"
    semi.write_text("".join(";".join(r) + "\n" for r in rows), encoding="utf-8")
    ws = tmp_path / "ws"
    for args in (("inspect", str(semi)), ("ingest", "GA", str(semi), "--workspace", str(ws))):
        res = _voterolls(*args)
        msg = " ".join(res.stderr.split())
        assert res.returncode == 2, (args, res.stderr)
        assert "ambiguous layout: ga_csv (score" in msg and "ga_pipe (score" in msg and "pass --format" in msg
        assert "Traceback" not in res.stderr
    assert not list(ws.glob("states/GA/*/registrations.parquet"))
    # the user decides: --format reads it
    res = _voterolls("ingest", "GA", str(semi), "--format", "ga_csv", "--workspace", str(ws))
    assert res.returncode == 0, res.stderr
    import pyarrow.parquet as pq

    assert pq.read_table(next(ws.glob("states/GA/*/registrations.parquet"))).num_rows == len(rows) - 1


def test_history_file_alone_is_refused_with_that_reason() -> None:
    hist = FIXTURES.parent / "layouts" / "nc" / "ncvhis92.txt"
    res = _voterolls("inspect", str(hist))
    msg = " ".join(res.stderr.split())
    assert res.returncode == 2
    assert "only vote-history files given" in msg and "nc_ncvoter_2022" in msg and "registration file" in msg
