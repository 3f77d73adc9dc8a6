"""Exit codes as the shell sees them: the installed ``voterolls`` script, in a subprocess.

Issue 17: ``audit verify`` printed "audit log broken" and exited 0, because
``cli.main`` ran click with ``standalone_mode=False`` and dropped the exit
code it returned.  CliRunner never saw it.  Here every command's failure paths
run as a user runs them, and both the exit code and the one-line message are
checked.  Processes run four at a time (each costs a Python start-up).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from voterolls.service.audit import AuditLog, entry_hash

ROOT = Path(__file__).resolve().parents[1]
EXE = Path(sys.executable).with_name("voterolls")


def _run(args: list[str], cwd: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(ROOT), "COLUMNS": "80"}
    env.pop("VOTEROLLS_WORKSPACE", None)
    return subprocess.run([str(EXE), *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=180)


def _run_all(cases: list[list[str]], cwd: Path) -> list[subprocess.CompletedProcess]:
    with ThreadPoolExecutor(4) as pool:
        return list(pool.map(lambda a: _run(a, cwd), cases))


def _check(res: subprocess.CompletedProcess, code: int, message: str, label: str) -> None:
    out = res.stdout + res.stderr
    assert res.returncode == code, f"{label}: exit {res.returncode}, expected {code}\n{out[-1500:]}"
    assert "Traceback" not in out, f"{label}: traceback\n{out[-1500:]}"
    assert message in out, f"{label}: {message!r} not in\n{out[-1500:]}"


# (arguments, exit code, message); the working directory holds `adir/`, `a.txt`, `key.bin`
FAILURES = [
    (["ingest", "NC", "missing.txt"], 2, "error: missing.txt: file not found"),
    (["ingest", "NC", "adir"], 2, "error: adir: is a directory; give the file itself (a file inside it)"),
    (["ingest", "ZZ", "a.txt"], 2, "unknown state code 'ZZ'"),
    (["ingest", "NC", "a.txt", "--sealed", "adir"], 2, "adir: is a directory; give the sealed sidecar file itself"),
    (["ingest"], 2, "Missing argument 'state'"),
    (["ingest-dir", "missing"], 2, "not a generated directory"),
    (["diff", "NC", "--workspace", "ws"], 2, "no snapshot of NC"),
    (["uniformity", "--workspace", "nows"], 2, "nows: workspace does not exist"),
    (["link", "--workspace", "nows"], 2, "nows: workspace does not exist"),
    (["evaluate", "--truth", "missing", "--workspace", "nows"], 2, "workspace does not exist"),
    (["estimate", "--workspace", "nows"], 2, "nows: workspace not found"),
    (["lists", "NC", "--workspace", "nows", "--out", "o"], 2, "nows: workspace does not exist"),
    (["report", "--workspace", "nows", "--out", "r.html"], 2, "workspace directory not found"),
    (["generate", "--people", "0", "--out", "g"], 2, "--people must be at least 1"),
    (["seal", "--key-file", "nokey", "a.txt", "out.csv"], 2, "nokey: cannot read the key file"),
    (["seal-key", "key.bin"], 2, "refusing to overwrite an existing key file"),
    (["policy", "show", "ZZ"], 2, "unknown state code 'ZZ'"),
    (["serve", "--host", "0.0.0.0", "--workspace", "ws"], 2, "refusing to serve voter files over plain HTTP on 0.0.0.0"),
    (["serve", "--ssl-certfile", "a.txt", "--workspace", "ws"], 2, "give both --ssl-certfile and --ssl-keyfile"),
    (["accounts", "create", "X!", "--role", "admin", "--workspace", "ws"], 2, "account names are 2-48 characters"),
    (["accounts", "create", "ok-name", "--role", "king", "--workspace", "ws"], 2, "role"),
    (["accounts", "revoke", "nobody", "--workspace", "ws"], 2, "no account 'nobody'"),
    (["accounts", "token", "nobody", "--workspace", "ws"], 2, "no active account 'nobody'"),
    (["audit", "verify", "--anchor", "bad", "--workspace", "ws"], 2, "write the anchor as SEQ:HASH"),
    (["audit", "repair", "--workspace", "nows"], 2, "no audit log here"),
    (["demo", "--people", "0", "--out", "d"], 2, "--people must be at least 1"),
    (["no-such-command"], 2, "No such command 'no-such-command'"),
    (["version"], 0, "."),
]


def test_every_commands_failure_reaches_the_shell(tmp_path: Path) -> None:
    (tmp_path / "adir").mkdir()
    (tmp_path / "a.txt").write_text("x\n")
    (tmp_path / "key.bin").write_bytes(b"k" * 32)
    (tmp_path / "ws").mkdir()
    results = _run_all([args for args, _, _ in FAILURES], tmp_path)
    for (args, code, message), res in zip(FAILURES, results, strict=True):
        _check(res, code, message, " ".join(args))
        errors = [ln for ln in res.stderr.splitlines() if ln.startswith("error:")]
        assert len(errors) <= 1, errors
        if errors:  # one sentence, one line, whatever the terminal width
            assert message in errors[0] or code != 2 or "Missing" in message or "No such" in message


# ------------------------------------------------------------------ audit verify
N = 8


def _log(folder: Path) -> AuditLog:
    log = AuditLog(folder / "service" / "audit.log")
    for i in range(N):
        log.append(actor=f"user{i % 3}", role="state", action=f"GET /api/x/{i}", target="NC", status=200)
    return log


def _rechain(entries: list[dict]) -> list[dict]:
    prev = "0" * 64
    for e in entries:
        e["prev_hash"] = prev
        e["hash"] = entry_hash(e)
        prev = e["hash"]
    return entries


def _tamper(kind: str, log: AuditLog) -> None:
    lines = log.path.read_text().splitlines(keepends=True)
    if kind == "edited":
        lines[3] = lines[3].replace("user0", "userX")
    elif kind == "deleted":
        del lines[3]
    elif kind == "cut tail":
        del lines[-1]
    elif kind == "swapped":
        lines[2], lines[3] = lines[3], lines[2]
    elif kind in ("rewritten", "torn"):
        pass
    if kind == "rewritten":  # a consistent forgery of log and head: only the anchor catches it
        entries = [json.loads(x) for x in lines]
        entries[4]["actor"] = "someone-else"
        entries = _rechain(entries)
        lines = [json.dumps(e, sort_keys=True, separators=(",", ":")) + "\n" for e in entries]
        log.head_path.write_text(json.dumps({"seq": entries[-1]["seq"], "hash": entries[-1]["hash"]}))
    log.path.write_text("".join(lines))
    if kind == "torn":
        with open(log.path, "ab") as f:
            f.write(b'{"seq":9,"ti')


TAMPERING = {
    "intact": (0, "audit log intact: 8 entries"),
    "edited": (1, "audit log broken at seq 4: seq 4 (line 4) was edited"),
    "deleted": (1, "audit log broken at seq 4: seq 4 is missing"),
    "cut tail": (1, "audit log broken at seq 8: seq 8 from your anchor is missing: the log was cut short"),
    "swapped": (1, "audit log broken at seq 3"),
    "rewritten": (1, "audit log broken at seq 8: seq 8 differs from the anchor you recorded: the log was rewritten"),
    "torn": (1, "line 9 is not valid JSON (edited or truncated); if the service crashed while writing it, "
                "run `voterolls audit repair --workspace"),
}


def test_audit_verify_exits_1_for_every_kind_of_tampering(tmp_path: Path) -> None:
    template = tmp_path / "template"
    head = _log(template).verify()
    anchor = f"{head.head_seq}:{head.head_hash}"
    cases = []
    for kind in TAMPERING:
        ws = tmp_path / kind.replace(" ", "_")
        shutil.copytree(template, ws)
        _tamper(kind, AuditLog(ws / "service" / "audit.log"))
        cases.append(["audit", "verify", "--workspace", str(ws), "--anchor", anchor])
    cases.append(["audit", "verify", "--workspace", str(tmp_path / "cut_tail")])  # audit.head alone catches it
    results = _run_all(cases, tmp_path)
    for (kind, (code, message)), res in zip(TAMPERING.items(), results, strict=False):
        _check(res, code, message, kind)
    _check(results[-1], 1, "the log ends at seq 7 but audit.head records seq 8", "cut tail, no anchor")


# ------------------------------------------------------------------ torn tail
def test_torn_tail_serve_refuses_repair_cuts_it_and_verify_shows_the_repair(tmp_path: Path) -> None:
    ws = tmp_path / "ws"
    log = _log(ws)
    with open(log.path, "ab") as f:
        f.write(b'{"seq":9,"time":"2026-12-07T06:4')  # a crash in the middle of an append
    torn = log.path.read_bytes()
    repair_hint = f"run `voterolls audit repair --workspace {ws}` and try again"
    serve, create, verify = _run_all([
        ["serve", "--workspace", str(ws), "--port", "1"],
        ["accounts", "create", "first-admin", "--role", "admin", "--workspace", str(ws)],
        ["audit", "verify", "--workspace", str(ws)],
    ], tmp_path)
    _check(serve, 2, f"ends in a torn entry (a crash while it was being written); {repair_hint}", "serve")
    assert len(serve.stderr.strip().splitlines()) == 1, serve.stderr
    _check(create, 2, repair_hint, "accounts create")
    assert "vr_" not in create.stdout and not (ws / "service" / "accounts.json").exists()
    _check(verify, 1, "voterolls audit repair", "verify")
    assert log.path.read_bytes() == torn, "a refused command wrote to the torn log"

    res = _run(["audit", "repair", "--workspace", str(ws)], tmp_path)
    _check(res, 0, "cut a torn entry of 32 bytes after seq 8; copy kept as audit.log.torn-", "repair")
    copies = list((ws / "service").glob("audit.log.torn-*"))
    assert len(copies) == 1 and copies[0].read_bytes() == torn
    # one after another: `accounts create` appends an entry, which a concurrent verify could count
    verify, again, create = (
        _run(args, tmp_path)
        for args in (
            ["audit", "verify", "--workspace", str(ws)],
            ["audit", "repair", "--workspace", str(ws)],
            ["accounts", "create", "first-admin", "--role", "admin", "--workspace", str(ws)],
        )
    )
    _check(verify, 0, "audit log intact: 9 entries (repaired at seq 9: a torn entry was cut", "verify after repair")
    _check(again, 0, "nothing to repair: audit log intact", "repair again")
    _check(create, 0, "created first-admin (admin)", "accounts create after repair")
    assert create.stdout.strip().splitlines()[-1].startswith("vr_")
    entries = list(AuditLog(log.path).entries())
    assert [e["action"] for e in entries[-2:]] == ["audit repair", "create account"]
    assert AuditLog(log.path).verify().ok


def test_repair_refuses_a_log_broken_before_its_last_line(tmp_path: Path) -> None:
    ws = tmp_path / "ws"
    log = _log(ws)
    _tamper("edited", log)
    with open(log.path, "ab") as f:
        f.write(b'{"seq":9')
    before = log.path.read_bytes()
    res = _run(["audit", "repair", "--workspace", str(ws)], tmp_path)
    _check(res, 2, "is broken before its last line", "repair of an edited log")
    assert "restore the log from a backup" in res.stderr
    assert log.path.read_bytes() == before and not list((ws / "service").glob("audit.log.torn-*"))


@pytest.mark.parametrize("code", [0, 1, 2, 3])
def test_cli_run_returns_typer_exit_codes(code: int) -> None:
    """``voterolls.cli.run`` (used by ``main`` and the demo) returns what a command exits with."""
    import typer

    from voterolls.cli import run

    app = typer.Typer()

    @app.command()
    def fail() -> None:
        raise typer.Exit(code)

    @app.command()
    def other() -> int:
        return 7  # a return value is not an exit code

    assert run(["fail"], app) == code
    assert run(["other"], app) == 0


def test_a_memory_limit_too_small_is_one_sentence_and_stores_nothing(tmp_path: Path) -> None:
    from voterolls.formats.sample import national_sample
    from voterolls.synth.native import write_native

    regs, _ = national_sample("WA", 3000, seed=3)
    src = write_native("WA", regs, None, tmp_path / "in", format="wa_vrdb_2016")[0]
    ws = tmp_path / "ws"
    res = _run(["ingest", "WA", str(src), "--workspace", str(ws), "--memory-limit", "1MB"], tmp_path)
    _check(res, 2, "ran out of memory under DuckDB's limit of 1MB; raise --memory-limit", "ingest at 1MB")
    assert len(res.stderr.strip().splitlines()) == 1, res.stderr
    assert not list((ws / "states").glob("WA/*")), "a failed ingest left a snapshot"


def test_an_ingest_and_its_repeat_exit_0_with_nothing_on_stderr(tmp_path: Path) -> None:
    """Ingest starts pyarrow's import of pandas in a thread of its own; a short ingest (and the
    repeat that changes nothing) must end cleanly, never with that import torn down at exit."""
    from voterolls.formats.sample import national_sample
    from voterolls.synth.native import write_native

    regs, _ = national_sample("NC", 200, seed=5)
    src = next(p for p in write_native("NC", regs, None, tmp_path / "in") if p.name.startswith("ncvoter"))
    ws = tmp_path / "ws"
    for label in ("first", "repeat"):
        res = _run(["ingest", "NC", str(src), "--workspace", str(ws)], tmp_path)
        assert res.returncode == 0, f"{label}: exit {res.returncode}\n{res.stdout[-800:]}{res.stderr[-800:]}"
        assert res.stderr.strip() == "", f"{label}: {res.stderr[-800:]}"
    assert "unchanged" in res.stdout.lower() or "nothing to do" in res.stdout.lower(), res.stdout[-800:]


def test_link_memory_limits_reach_the_shell_as_one_sentence(tmp_path: Path) -> None:
    """`voterolls link --memory-limit` bounds the workspace connection (prepare, recalibration)
    as well as the engine's: a size DuckDB cannot read and a limit too small to link in are
    each one sentence and exit 2, never DuckDB's or Splink's traceback."""
    from voterolls.formats.sample import national_sample
    from voterolls.synth.native import write_native

    regs, _ = national_sample("NC", 300, seed=5)
    src = next(p for p in write_native("NC", regs, None, tmp_path / "in") if p.name.startswith("ncvoter"))
    ws = tmp_path / "ws"
    assert _run(["ingest", "NC", str(src), "--workspace", str(ws)], tmp_path).returncode == 0
    bad, tiny = _run_all(
        [["link", "--workspace", str(ws), "--memory-limit", m] for m in ("lots", "1MB")], tmp_path
    )
    _check(bad, 2, "not a memory size: 'lots' (e.g. 8GB, 512MB)", "link --memory-limit lots")
    _check(tiny, 2, "linkage ran out of memory under DuckDB's limit of 1MB; raise --memory-limit", "link at 1MB")
    for res in (bad, tiny):
        assert len(res.stderr.strip().splitlines()) == 1, res.stderr
