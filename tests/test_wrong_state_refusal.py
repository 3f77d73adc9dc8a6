"""Another state's file is refused with one explanation, whether sent to ingest, inspect or the service.

The sentence comes from one function (``voterolls.formats.inspect.wrong_state_message``);
these tests take it from each place a user meets it and compare.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

from service_fakes import Env

from voterolls.formats.inspect import wrong_state_message
from voterolls.service.jobs import real_detect

ROOT = Path(__file__).resolve().parents[1]
TX_FILE = ROOT / "tests" / "fixtures" / "formats" / "tx" / "tx_2025.csv"
#: What every refusal of a TX file named as OK's explains (the remedy after ";" differs).
WHY = "the layout is TX's (tx_csv), not OK's"


def _voterolls(*args: str) -> subprocess.CompletedProcess[str]:
    exe = shutil.which("voterolls", path=str(Path(sys.executable).parent)) or "voterolls"
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    return subprocess.run([exe, *args], capture_output=True, text=True, env=env, timeout=300)


def _explanation(said: str) -> str:
    """The explanation clause of a refusal: after the file name, before the remedy."""
    said = " ".join(said.split())
    start = said.index("the layout is ")
    return said[start : said.index(";", start)]


def test_the_function_explains_then_says_what_to_do() -> None:
    msg = wrong_state_message("tx_csv", "TX", "ok")
    assert msg == f"{WHY}; name TX as the state, or pass --format tx_csv to read it as OK's file anyway"
    assert wrong_state_message("tx_csv", "TX", "OK", remedy="ask TX") == f"{WHY}; ask TX"


def test_ingest_inspect_and_service_give_the_same_explanation(tmp_path: Path) -> None:
    ws = tmp_path / "ws"
    ingest = _voterolls("ingest", "OK", str(TX_FILE), "--workspace", str(ws))
    assert ingest.returncode == 2, ingest.stdout + ingest.stderr
    assert "Traceback" not in ingest.stderr
    said = " ".join(ingest.stderr.split())
    assert "tx_2025.csv" in said and "pass --format tx_csv" in said
    assert not (ws / "states" / "OK").exists() or not any((ws / "states" / "OK").iterdir())  # nothing stored

    inspect = _voterolls("inspect", str(TX_FILE), "--state", "OK")
    assert inspect.returncode == 2 and "Traceback" not in inspect.stderr

    env = Env(tmp_path / "svc")
    env.svc.detect = real_detect  # the real detector, not the test double
    r = env.upload("NC", TX_FILE.read_bytes(), name="tx_2025.csv")
    assert r.status_code == 422, r.text
    service = r.json()["error"]
    assert "your account uploads for NC" in service

    nc_why = WHY.replace("OK's", "NC's")
    assert _explanation(ingest.stderr) == WHY == _explanation(inspect.stderr)
    assert _explanation(service) == nc_why
    assert service == wrong_state_message(
        "tx_csv", "TX", "NC", remedy="your account uploads for NC, so TX's files are not accepted here"
    )


def test_forcing_the_layout_on_the_command_line_reads_it(tmp_path: Path) -> None:
    res = _voterolls("ingest", "OK", str(TX_FILE), "--format", "tx_csv", "--workspace", str(tmp_path / "ws"), "--json")
    assert res.returncode == 0, res.stderr


def test_the_files_own_state_is_not_refused(tmp_path: Path) -> None:
    res = _voterolls("ingest", "TX", str(TX_FILE), "--workspace", str(tmp_path / "ws"), "--json")
    assert res.returncode == 0, res.stderr
