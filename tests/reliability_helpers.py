"""Shared pieces of the reliability tests (tests/test_reliability_*.py).

Why a helper module: the property tests, fault injection, concurrency and PII
tests all need the same few things (a small native file per format, an
independent line count, a content hash of a state's stored registrations,
bounded hypothesis settings), and each must compute them *independently* of
the code under test, so a bug in the reader cannot hide behind the same bug
in the check.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import os
import re
import subprocess
import sys
from functools import cache
from pathlib import Path
from types import SimpleNamespace

import duckdb
from hypothesis import HealthCheck, settings

ROOT = Path(__file__).resolve().parents[1]
PYTHON = sys.executable

#: A policy that lets the writer put every field in the file (format tests only).
FULL = SimpleNamespace(
    dob_disclosure="full",
    phone_public=True,
    email_public=True,
    party_on_file=True,
    vote_history_public=True,
)

#: The state each shipped format is read as (format name -> state).
FORMAT_STATE = {
    "co_csv": "CO",
    "fl_extract": "FL",
    "ga_csv": "GA",
    "ga_pipe": "GA",
    "generic": "VT",
    "mi_qvf_csv": "MI",
    "mi_qvf_lst": "MI",
    "nc_ncvoter_2022": "NC",
    "nc_ncvoter_pre2022": "NC",
    "nc_vr_snapshot": "NC",
    "ny_statewide": "NY",
    "oh_swvf": "OH",
    "pa_fve": "PA",
    "tx_csv": "TX",
    "wa_vrdb_2016": "WA",
    "wa_vrdb_2024": "WA",
}

#: Names the format sample (voterolls.formats.sample) puts in files; none may reach a message.
SAMPLE_NAMES = (
    "SMITH", "O'BRIEN", "NGUYEN", "JOHNSON", "WASHINGTON", "BROWN",
    "MARY", "ROBERT", "ANN-MARIE", "JAMES", "DAVID", "LINDA", "KWAME",
    "SPRINGFIELD", "RIVERTON", "FAIRVIEW", "GREENVILLE",
)  # fmt: skip


def fuzz_settings(n: int, **kw) -> settings:
    """Bounded hypothesis settings.

    Deterministic by default (``derandomize``) so the suite is not flaky; set
    ``VOTEROLLS_FUZZ=<factor>`` to explore with random seeds and ``factor``
    times the examples (docs/RELIABILITY.md records the counts tried).
    """
    factor = os.environ.get("VOTEROLLS_FUZZ")
    return settings(
        max_examples=n * int(factor) if factor else n,
        deadline=None,
        derandomize=not factor,
        database=None,
        suppress_health_check=[
            HealthCheck.too_slow,
            HealthCheck.function_scoped_fixture,
            HealthCheck.data_too_large,
            HealthCheck.filter_too_much,
        ],
        print_blob=True,
        **kw,
    )


# ---------------------------------------------------------------------------
# native sample files
# ---------------------------------------------------------------------------


@cache
def native_bytes(fmt: str, n: int = 8) -> tuple[tuple[str, bytes], ...]:
    """(file name, bytes) of ``fmt``'s native file(s) for ``n`` sample voters (cached)."""
    import tempfile

    from voterolls.formats.sample import national_sample
    from voterolls.synth.native import write_native

    state = FORMAT_STATE[fmt]
    regs, vh = national_sample(state, n, protected_every=4)
    with tempfile.TemporaryDirectory(prefix="vr_rel_") as d:
        paths = write_native(state, regs, vh, Path(d), policy=FULL, format=fmt)
        return tuple((p.name, p.read_bytes()) for p in paths)


def count_lines(data: bytes, utf16: bool) -> int:
    """Physical lines (LF, CRLF, lone CR each end one; a final unterminated line counts).

    Written independently of ``voterolls.formats.sniff`` on purpose.
    """
    if utf16:
        body = data[2:] if data.startswith(b"\xff\xfe") else data
        units = [body[i] | (body[i + 1] << 8) for i in range(0, len(body) - 1, 2)]
        text = "".join("\n" if u == 10 else "\r" if u == 13 else "x" for u in units)
    else:
        text = data.decode("latin-1")
    n = len(re.findall(r"\r\n|\r|\n", text))
    if text and text[-1] not in "\r\n":
        n += 1
    return n


# ---------------------------------------------------------------------------
# reader invariants
# ---------------------------------------------------------------------------


def check_no_echo(message: str, injected: list[bytes]) -> None:
    for name in SAMPLE_NAMES:
        assert name not in message, f"message echoes a value: {message!r}"
    for b in injected:
        s = b.decode("latin-1")
        for piece in s.split():
            if len(piece) >= 6 and piece.isprintable():
                assert piece not in message, f"message echoes injected content {piece!r}: {message!r}"


def check_scan(
    paths: list[Path], state: str, fmt: str | Path, injected: list[bytes], *, may_refuse: bool = True
) -> str:
    """Scan and check every invariant; return "refused" or "read" (for the statistics).

    ``may_refuse=False``: the file's first line is intact, so refusing the
    whole file (instead of quarantining its bad lines) is a failure.
    """
    from voterolls.errors import UserError
    from voterolls.formats import get_format, load_user_format, scan

    spec = load_user_format(fmt) if str(fmt).endswith(".toml") else get_format(str(fmt))
    con = duckdb.connect()
    try:
        try:
            s = scan(con, paths, state=state, format=fmt)
            regs = s.registrations.to_arrow_table()
            vh = s.vote_history.to_arrow_table() if s.vote_history is not None else None
            rep = s.finish()
        except UserError as exc:
            check_no_echo(str(exc), injected)
            assert may_refuse, f"whole file refused although only lines after line 1 were damaged: {exc}"
            return "refused"
    finally:
        con.close()
    by_sha_lines: dict[str, list[int]] = {}
    for sha, line in zip(regs["source_file"].to_pylist(), regs["source_line"].to_pylist(), strict=True):
        by_sha_lines.setdefault(("registrations", sha), []).append(line)
    if vh is not None:
        for sha, line in zip(vh["source_file"].to_pylist(), vh["source_line"].to_pylist(), strict=True):
            by_sha_lines.setdefault(("history", sha), []).append(line)
    q = rep.quarantine.to_pylist()
    for r in q:
        check_no_echo(r["reason"] or "", injected)
        assert r["reason"], r
    assert {f.path for f in rep.files} == {str(p) for p in paths}
    for f in rep.files:
        data = Path(f.path).read_bytes()
        layout = spec.layouts()[f.role]
        physical = count_lines(data, layout.encoding == "utf-16")
        header = physical - f.rows_read
        assert header in (0, 1), (f, physical)
        if layout.header is True:
            assert header == (1 if physical else 0), (f, physical)
        elif layout.header is False:
            assert header == 0, (f, physical)
        record_lines = set(range(header + 1, physical + 1))
        qlines = [r["line"] for r in q if r["file"] == f.path]
        assert len(qlines) == len(set(qlines)), f"a line quarantined twice in {f.path}"
        assert set(qlines) <= record_lines, (sorted(set(qlines) - record_lines), f)
        assert f.rows_quarantined == len(qlines)
        assert f.rows_read == f.rows_loaded + f.rows_quarantined
        if f.role == "election_map":
            continue
        loaded = by_sha_lines.get((f.role, f.sha256), [])
        if f.role == "registrations":
            assert len(loaded) == len(set(loaded)), "one physical line loaded as two registrations"
            assert len(loaded) == f.rows_loaded, (len(loaded), f)
        else:
            assert len(set(loaded)) == f.rows_loaded, (len(set(loaded)), f)
        assert not set(loaded) & set(qlines), "a line both loaded and quarantined"
        assert set(loaded) | set(qlines) == record_lines, (
            f"lines neither loaded nor quarantined: {sorted(record_lines - set(loaded) - set(qlines))[:10]}"
        )
    # loaded values are sane, whatever the bytes were
    has_id = bool(spec.registrations.by_target("state_voter_id"))
    for row in regs.to_pylist():
        assert row["state"] == state
        assert row["state_voter_id"] or not has_id, "a row without a voter id was loaded"
        if row["dob"] is not None:
            assert dt.date(1850, 1, 1) <= row["dob"] <= dt.date(2100, 12, 31)
        if row["birth_year"] is not None:
            assert 1850 <= row["birth_year"] <= 2100
        assert row["dob_granularity"] == ("full" if row["dob"] else "year" if row["birth_year"] else "none")
        assert isinstance(row["_issues"], list)
        if row["residence_zip5"] is not None:
            assert len(row["residence_zip5"]) == 5 and row["residence_zip5"].isdigit()
    if vh is not None:
        for row in vh.to_pylist():
            assert row["state_voter_id"] and row["election_date"] is not None
    return "read"


# ---------------------------------------------------------------------------
# workspace content
# ---------------------------------------------------------------------------


def table_hash(con: duckdb.DuckDBPyConnection, sql: str) -> str:
    """Order-independent SHA-256 of a query's rows (each row rendered as text, sorted)."""
    rows = con.execute(f"SELECT CAST(q AS VARCHAR) AS r FROM ({sql}) q ORDER BY r").fetchall()
    h = hashlib.sha256()
    for (r,) in rows:
        h.update(r.encode("utf-8", "surrogatepass"))
        h.update(b"\n")
    return h.hexdigest()


def state_fingerprint(workspace: Path, state: str) -> dict | None:
    """Row counts and content hashes of ``state``'s current snapshot, read straight from Parquet.

    Reads the catalog and files itself (not only through ``Workspace``) so a
    damaged catalog or half-written snapshot shows up as a difference.
    """
    from voterolls.store import Workspace

    ws = Workspace(workspace)
    snap = ws.current_snapshot(state)
    if snap is None:
        return None
    return {**snap_counts(snap), **snapshot_fingerprint(ws.path / snap["path"])}


def snap_counts(snap: dict) -> dict:
    return {k: snap[k] for k in ("snapshot_id", "rows_read", "loaded", "quarantined")}


def snapshot_fingerprint(d: Path) -> dict:
    """Row counts and content hashes of one snapshot directory's Parquet files."""
    con = duckdb.connect()
    try:
        reg = f"SELECT * EXCLUDE (source_file) FROM read_parquet('{d / 'registrations.parquet'}')"
        vh = f"SELECT * EXCLUDE (source_file) FROM read_parquet('{d / 'vote_history.parquet'}')"
        q = f"SELECT * FROM read_parquet('{d / 'quarantine.parquet'}')"
        return {
            "registrations": con.execute(f"SELECT count(*) FROM ({reg})").fetchone()[0],
            "vote_history": con.execute(f"SELECT count(*) FROM ({vh})").fetchone()[0],
            "registrations_hash": table_hash(con, reg),
            "vote_history_hash": table_hash(con, vh),
            "quarantine_hash": table_hash(con, q),
        }
    finally:
        con.close()


def without_id(fp: dict | None) -> dict | None:
    return None if fp is None else {k: v for k, v in fp.items() if k != "snapshot_id"}


def run_py(code: str, *, env: dict | None = None, timeout: float = 120) -> subprocess.CompletedProcess:
    """Run ``python -c code`` in the repo with the venv's interpreter; capture everything."""
    full_env = {**os.environ, **(env or {})}
    return subprocess.run(
        [PYTHON, "-c", code], cwd=ROOT, env=full_env, capture_output=True, text=True, timeout=timeout
    )


#: Hooks that make a process SIGKILL itself at a chosen point of an ingest (``VR_KILL_AT``).
KILL_HOOKS = r"""
import contextlib, os, signal
from voterolls import store

def die():
    os.kill(os.getpid(), signal.SIGKILL)

def install_kill_hook(kill_at):
    # Return a progress callback (or None) and patch the store so the process dies at kill_at.
    if os.environ.get("VR_SPLIT_MIN_LINES"):  # let small files take the split path
        import importlib
        scan_mod = importlib.import_module("voterolls.formats.scan")  # the package exports a function `scan`
        scan_mod.SPLIT_MIN_LINES = int(os.environ["VR_SPLIT_MIN_LINES"])
        scan_mod.SPLIT_MAX_BAD_SHARE = 0.5
    if kill_at.startswith("scratch:"):  # just after the reader wrote a copy of its input
        from voterolls.formats import sniff
        name = kill_at.split(":", 1)[1]
        real = getattr(sniff, name)
        def wrote_copy(*a, **k):
            real(*a, **k)
            die()
        setattr(sniff, name, wrote_copy)
        return None
    if kill_at.startswith("phase:"):
        phase = kill_at.split(":", 1)[1]
        def progress(name, done, total):
            if name == phase:
                die()
        return progress
    if kill_at == "after_rename":
        real_rename = os.rename
        def rename(a, b):
            real_rename(a, b)
            if "/states/" in str(b):
                die()
        store.os.rename = rename
    elif kill_at in ("before_commit", "after_insert"):
        real_catalog = store.Workspace._catalog
        class Proxy:
            def __init__(self, con): self._con = con
            def __getattr__(self, name): return getattr(self._con, name)
            def execute(self, sql, *a, **k):
                if kill_at == "before_commit" and sql == "COMMIT":
                    die()
                out = self._con.execute(sql, *a, **k)
                if kill_at == "after_insert" and sql.startswith("INSERT INTO snapshots"):
                    die()
                return out
        @contextlib.contextmanager
        def catalog(self, write=False):
            with real_catalog(self, write) as con:
                yield Proxy(con) if write else con
        store.Workspace._catalog = catalog
    return None
"""

INGEST_CHILD = KILL_HOOKS + r"""
import json, sys
from pathlib import Path
from voterolls.ingest.pipeline import IngestRequest, ingest

ws, state = sys.argv[1], sys.argv[2]
paths = [Path(p) for p in sys.argv[3:]]
progress = install_kill_hook(os.environ.get("VR_KILL_AT", ""))
print("ready", flush=True)
if os.environ.get("VR_WAIT_GO"):
    sys.stdin.readline()  # a barrier: the parent releases several children at once
r = ingest(IngestRequest.of(ws, state, paths, progress=progress))
print(json.dumps({"status": r.status, "snapshot_id": r.snapshot_id, "loaded": r.loaded,
                  "quarantined": r.quarantined, "rows_read": r.rows_read}), flush=True)
"""

#: A process that imports the pipeline once and forks one child per ingest job, so each
#: fault-injection run pays for an ingest, not for Python and DuckDB start-up.  It never
#: opens a DuckDB connection itself, so forking it is safe.
FORK_SERVER = KILL_HOOKS + r"""
import json, sys, traceback
from pathlib import Path
import voterolls.ingest.pipeline as pipeline

print("ready", flush=True)
for line in sys.stdin:
    job = json.loads(line)
    pid = os.fork()
    if pid == 0:
        try:
            null = os.open(os.devnull, os.O_WRONLY)
            os.dup2(null, 1)
            progress = install_kill_hook(job.get("kill_at", ""))
            from voterolls.ingest.delivery import DeliveryOptions

            delivery = DeliveryOptions(allow_shrink=job.get("allow_shrink", False))
            pipeline.ingest(pipeline.IngestRequest.of(job["ws"], job["state"], [Path(p) for p in job["paths"]], progress=progress, delivery=delivery))
            os._exit(0)
        except BaseException:
            traceback.print_exc()
            os._exit(1)
    print(json.dumps({"pid": pid}), flush=True)
    _, status = os.waitpid(pid, 0)
    sig = os.WTERMSIG(status) if os.WIFSIGNALED(status) else 0
    rc = os.WEXITSTATUS(status) if os.WIFEXITED(status) else None
    print(json.dumps({"pid": pid, "signal": sig, "rc": rc}), flush=True)
"""


def ingest_cmd(workspace: Path, state: str, paths: list[Path]) -> list[str]:
    """argv of a child process that ingests ``paths`` (prints ``ready`` after imports)."""
    return [PYTHON, "-c", INGEST_CHILD, str(workspace), state, *map(str, paths)]


class ForkServer:
    """Drive FORK_SERVER: ``start`` a job, optionally kill its pid, ``wait`` for its end."""

    def __init__(self, stderr_path: Path) -> None:
        self._err = open(stderr_path, "w")  # noqa: SIM115 - closed in close()
        self.stderr_path = stderr_path
        self.proc = subprocess.Popen(
            [PYTHON, "-c", FORK_SERVER], cwd=ROOT, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
            stderr=self._err, text=True,
        )  # fmt: skip
        assert self.proc.stdout.readline().strip() == "ready", stderr_path.read_text()[-2000:]

    def start(self, workspace: Path, state: str, paths: list[Path], kill_at: str = "", *, allow_shrink: bool = False) -> int:
        """``allow_shrink``: the versions a fault test alternates between may differ in size by more
        than the delivery guard's 10% (voterolls.ingest.delivery)."""
        job = {"ws": str(workspace), "state": state, "paths": [str(p) for p in paths], "kill_at": kill_at,
               "allow_shrink": allow_shrink}
        self.proc.stdin.write(json.dumps(job) + "\n")
        self.proc.stdin.flush()
        return json.loads(self.proc.stdout.readline())["pid"]

    def wait(self) -> dict:
        line = self.proc.stdout.readline()
        if not line:
            raise AssertionError("fork server died: " + self.stderr_path.read_text()[-2000:])
        return json.loads(line)

    def close(self) -> None:
        self.proc.stdin.close()
        self.proc.wait(timeout=30)
        self._err.close()
