"""Shared helpers for the benchmark scripts: child processes, peak memory, JSON, tables, docs.

Every measured step runs in a fresh child process so that its peak memory is
its own (not the harness's) and a step that hangs or explodes can be killed
without losing the rest of the run.  :func:`run_child` samples the resident
set size of the child *and all its descendants* (the Spark JVM is a child of
the Python process that starts it) every 100 ms and collects the child's CPU
time with ``wait4``.

The synthetic data every method reads is prepared once per size by
``bench/peers.py prepare`` into a directory::

    D/registrations.parquet            lawful, normalised registrations (REGISTRATION_SCHEMA)
    D/truth/duplicate_pairs.parquet    the generator's truth
    D/prepare.json                     counts and timings

:func:`evaluate_pairs` scores a pairs file against that truth with
``voterolls.link.evaluate.evaluate`` - the one definition of precision,
recall and F1 (cross-state duplicate pairs) used for every method.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import platform
import re
import signal
import subprocess
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import psutil

ROOT = Path(__file__).resolve().parent.parent
BENCH = ROOT / "bench"
RESULTS = BENCH / "results"
DOC = ROOT / "docs" / "PERFORMANCE.md"
PYTHON = sys.executable

if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))


def people_for(registrations: int) -> int:
    """People to generate for about ``registrations`` registrations (as bench/generate.py does)."""
    from voterolls.synth import SynthConfig

    cfg = SynthConfig()
    return max(
        1, round(registrations / (1 + cfg.stale_cross_state_rate + cfg.in_state_duplicate_rate))
    )


def size_label(n: int) -> str:
    """100000 -> '100k', 1000000 -> '1M'."""
    if n >= 1_000_000 and n % 100_000 == 0:
        return f"{n / 1_000_000:g}M"
    if n >= 1_000 and n % 1_000 == 0:
        return f"{n // 1_000}k"
    return str(n)


def load_avg() -> list[float]:
    """``os.getloadavg()`` (1, 5, 15 min), rounded: recorded at the start and end of every step."""
    return [round(x, 2) for x in os.getloadavg()]


def machine() -> dict[str, Any]:
    """Machine facts and the current load; stored with every result."""
    vm = psutil.virtual_memory()
    return {
        "cpus": os.cpu_count(),
        "ram_gib": round(vm.total / 2**30, 1),
        "available_gib": round(vm.available / 2**30, 1),
        "load_avg_1_5_15": load_avg(),
        "python": platform.python_version(),
        "platform": platform.machine(),
    }


def now_utc() -> str:
    return dt.datetime.now(dt.UTC).isoformat(timespec="seconds")


@dataclass
class ChildResult:
    """What a child process cost: wall time, peak RSS of its process tree, CPU time."""

    ok: bool
    seconds: float
    peak_rss_mib: float
    cpu_seconds: float
    returncode: int | None
    timed_out: bool
    stdout: str
    stderr_tail: str
    load_before: float
    load_after: float

    def as_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d.pop("stdout")
        return d


def _tree_rss(proc: psutil.Process) -> int:
    total = 0
    try:
        total += proc.memory_info().rss
        for c in proc.children(recursive=True):
            try:
                total += c.memory_info().rss
            except psutil.Error:
                pass
    except psutil.Error:
        pass
    return total


def run_child(
    argv: list[str],
    *,
    timeout: float | None = None,
    env: dict[str, str] | None = None,
    interval: float = 0.1,
    echo: bool = True,
) -> ChildResult:
    """Run ``argv`` (a fresh process, own session); measure it; kill its group on timeout.

    stdout is captured (the child reports JSON on its last line); stderr goes
    to a temporary file whose tail is kept for the error message.
    """
    import tempfile

    full_env = {**os.environ, "PYTHONPATH": str(ROOT), **(env or {})}
    load_before = os.getloadavg()[0]
    with tempfile.TemporaryFile() as err, tempfile.TemporaryFile() as out:
        start = time.perf_counter()
        proc = subprocess.Popen(
            argv, stdout=out, stderr=err, env=full_env, cwd=ROOT, start_new_session=True
        )
        ps = psutil.Process(proc.pid)
        peak, timed_out, status, usage = 0, False, None, None
        while True:
            pid, st, ru = os.wait4(proc.pid, os.WNOHANG)
            if pid == proc.pid:
                status, usage = st, ru
                break
            peak = max(peak, _tree_rss(ps))
            if timeout is not None and time.perf_counter() - start > timeout:
                timed_out = True
                try:
                    os.killpg(proc.pid, signal.SIGTERM)
                    time.sleep(2)
                    os.killpg(proc.pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
            time.sleep(interval)
        elapsed = time.perf_counter() - start
        proc.returncode = os.waitstatus_to_exitcode(status)
        # Anything left in the child's session (e.g. an orphaned JVM) is ours: end it.
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass
        out.seek(0)
        err.seek(0)
        stdout = out.read().decode(errors="replace")
        stderr = err.read().decode(errors="replace")
    # ru_maxrss is the largest single process among the child and its waited-for
    # descendants (KiB on Linux); the sampled tree sum can only be larger.
    peak = max(peak, int(usage.ru_maxrss) * 1024 if usage else 0)
    res = ChildResult(
        ok=proc.returncode == 0 and not timed_out,
        seconds=round(elapsed, 2),
        peak_rss_mib=round(peak / 2**20, 1),
        cpu_seconds=round(usage.ru_utime + usage.ru_stime, 2) if usage else 0.0,
        returncode=proc.returncode,
        timed_out=timed_out,
        stdout=stdout,
        stderr_tail=stderr[-2500:],
        load_before=round(load_before, 2),
        load_after=round(os.getloadavg()[0], 2),
    )
    if echo and not res.ok:
        why = "timed out" if timed_out else f"exit {proc.returncode}"
        print(f"  ! {' '.join(argv[1:4])} {why}: {res.stderr_tail[-800:]}", file=sys.stderr)
    return res


def last_json(stdout: str) -> dict[str, Any] | None:
    """The JSON object a child printed on its last non-empty line (None if absent)."""
    for line in reversed(stdout.strip().splitlines()):
        line = line.strip()
        if line.startswith("{"):
            try:
                return json.loads(line)
            except json.JSONDecodeError:
                return None
    return None


def emit(obj: dict[str, Any]) -> None:
    """Print ``obj`` as the child's final JSON line (read back by :func:`last_json`)."""
    sys.stdout.flush()
    print(json.dumps(obj, default=str), flush=True)


class PeakRSS:
    """``with PeakRSS() as m: ...; m.peak_mib`` - the peak RSS of this process tree during a block.

    A thread samples the resident set size of this process and all its
    descendants every ``interval`` seconds (as :func:`run_child` does for a
    child), so a block run in-process - the link call of a bench that also
    generates and scores - gets a peak of its own: ``start_mib`` is what the
    process held when the block began (the generated nation, for instance),
    ``peak_mib`` the largest sample during it (the start included), and
    ``added_mib`` their difference.  Sampling can miss a spike shorter than
    ``interval``.
    """

    def __init__(self, interval: float = 0.1) -> None:
        self.interval = interval
        self.start_mib = self.peak_mib = self.added_mib = 0.0

    def __enter__(self) -> PeakRSS:
        import threading

        self._proc = psutil.Process()
        self._peak = self._start = _tree_rss(self._proc)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sample, name="peak-rss", daemon=True)
        self._thread.start()
        return self

    def _sample(self) -> None:
        while not self._stop.wait(self.interval):
            self._peak = max(self._peak, _tree_rss(self._proc))

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()
        self._peak = max(self._peak, _tree_rss(self._proc))
        self.start_mib = round(self._start / 2**20, 1)
        self.peak_mib = round(self._peak / 2**20, 1)
        self.added_mib = round(self.peak_mib - self.start_mib, 1)

    def as_dict(self) -> dict[str, float]:
        return {"start_mib": self.start_mib, "peak_mib": self.peak_mib, "added_mib": self.added_mib}


class Timer:
    """``with Timer() as t: ...; t.seconds`` - wall time of a block."""

    def __enter__(self) -> Timer:
        self.start = time.perf_counter()
        self.seconds = 0.0
        return self

    def __exit__(self, *exc: object) -> None:
        self.seconds = round(time.perf_counter() - self.start, 3)


def load_registrations(data_dir: Path, con=None):  # noqa: ANN001, ANN201
    """A DuckDB connection with table ``registrations`` from the prepared data (``data_dir``)."""
    import duckdb

    con = con or duckdb.connect()
    con.execute("SET lambda_syntax='ENABLE_SINGLE_ARROW'")
    con.execute("SET enable_progress_bar=false")  # keep children's stdout to their JSON line
    p = str(Path(data_dir) / "registrations.parquet").replace("'", "''")
    con.execute(f"CREATE OR REPLACE TABLE registrations AS SELECT * FROM read_parquet('{p}')")
    return con


def evaluate_pairs(data_dir: Path, pairs: Path, threshold: float) -> dict[str, Any]:
    """Precision, recall, F1 of ``pairs`` (>= ``threshold``) against the truth in ``data_dir``.

    Calls ``voterolls.link.evaluate.evaluate`` so every method is scored by one
    definition (cross-state duplicate pairs, split by DOB granularity).
    """
    import duckdb

    from voterolls.link.evaluate import evaluate

    con = duckdb.connect()
    try:
        load_registrations(data_dir, con)
        ev = evaluate(con, data_dir, pairs, threshold=threshold)
    finally:
        con.close()
    return {
        "threshold": threshold,
        "truth_pairs": ev["truth_pairs_in_workspace"],
        "all": ev["model"]["all"],
        "by_granularity": {k: ev["model"][k] for k in ("full", "year", "none")},
    }


def write_json(path: Path, obj: Any) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_text(json.dumps(obj, indent=2, default=str) + "\n", encoding="utf-8")
    tmp.replace(path)
    return path


def read_json(path: Path, default: Any = None) -> Any:
    try:
        return json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError):
        return default


def fmt(v: Any, nd: int = 1) -> str:
    """Table cell: thousands separators, fixed decimals, '-' for missing."""
    if v is None:
        return "-"
    if isinstance(v, bool):
        return "yes" if v else "no"
    if isinstance(v, int):
        return f"{v:,}"
    if isinstance(v, float):
        return f"{v:,.{nd}f}"
    return str(v)


def md_table(headers: list[str], rows: list[list[Any]], align: str | None = None) -> str:
    """A Markdown table; ``align`` is one char per column ('l' or 'r', default: first l, rest r)."""
    align = align or ("l" + "r" * (len(headers) - 1))
    sep = ["---:" if a == "r" else "---" for a in align]
    lines = ["| " + " | ".join(headers) + " |", "| " + " | ".join(sep) + " |"]
    lines += ["| " + " | ".join(str(c) for c in r) + " |" for r in rows]
    return "\n".join(lines)


def print_table(headers: list[str], rows: list[list[Any]], title: str | None = None) -> None:
    """Print a table to the terminal (rich if available)."""
    try:
        from rich.console import Console
        from rich.table import Table

        t = Table(title=title)
        for i, h in enumerate(headers):
            t.add_column(h, justify="left" if i == 0 else "right")
        for r in rows:
            t.add_row(*[str(c) for c in r])
        Console(width=None if sys.stdout.isatty() else 180).print(t)
    except ImportError:  # pragma: no cover - rich is a dependency
        print(md_table(headers, rows))


def replace_doc_block(name: str, body: str, heading: str, doc: Path = DOC) -> None:
    """Put ``body`` between ``<!-- bench/run_all.py:NAME:begin/end -->`` in ``doc``.

    A rerun replaces the block; the first run appends ``## heading`` and the
    block at the end of the file.  Text outside the markers (other owners'
    sections, hand-written notes) is never touched.
    """
    begin, end = f"<!-- bench/run_all.py:{name}:begin -->", f"<!-- bench/run_all.py:{name}:end -->"
    text = doc.read_text(encoding="utf-8") if doc.exists() else "# Performance\n"
    block = f"{begin}\n{body.strip()}\n{end}"
    if begin in text and end in text:
        text = re.sub(re.escape(begin) + ".*?" + re.escape(end), lambda _m: block, text, flags=re.S)
    else:
        text = text.rstrip() + f"\n\n## {heading}\n\n{block}\n"
    doc.write_text(text, encoding="utf-8")
