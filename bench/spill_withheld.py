"""Probe: does a memory-starved ingest leave withheld values in DuckDB's spill files?

    .venv/bin/python bench/spill_withheld.py [--rows 400000] [--limits 60MB 35MB 20MB]

Scratch copies of an input are anonymous files (``voterolls.scratch``), but
DuckDB names its own spill files in the stage's ``temp_directory``.  This
probe ingests a synthetic WA file in the 2016 layout (full dates of birth;
WA's policy publishes the birth year only) under shrinking memory limits
with one thread, polls the workspace every 50 ms for DuckDB temp files and
searches each for the sample's full dates of birth.  A control query (a
sort larger than the limit) first shows that the poller sees spill files
when DuckDB writes them.  Results go to ``bench/results/spill_withheld.json``.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import tempfile
import threading
import time
from pathlib import Path

import duckdb

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
from reliability_helpers import FULL  # noqa: E402

from voterolls.errors import UserError  # noqa: E402
from voterolls.formats.sample import national_sample  # noqa: E402
from voterolls.ingest.pipeline import IngestRequest, ingest  # noqa: E402
from voterolls.synth.native import write_native  # noqa: E402

RESULTS = Path(__file__).resolve().parent / "results" / "spill_withheld.json"


class SpillWatch:
    """Polls ``root`` for DuckDB temp files; records each one's largest size and DOB hits."""

    def __init__(self, root: Path, needles: list[bytes]) -> None:
        self.root, self.needles, self.seen, self._stop = root, needles, {}, threading.Event()
        self._thread = threading.Thread(target=self._poll, daemon=True)

    def __enter__(self) -> SpillWatch:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()

    def _poll(self) -> None:
        while not self._stop.is_set():
            for p in list(self.root.rglob("duckdb_temp*")) if self.root.exists() else []:
                try:
                    data = p.read_bytes()
                except OSError:
                    continue
                size, hits = self.seen.get(p.name, (0, 0))
                self.seen[p.name] = (max(size, len(data)), max(hits, sum(n in data for n in self.needles)))
            time.sleep(0.05)


def control(tmp: Path) -> dict:
    """A sort larger than the memory limit: the watcher must see DuckDB's spill files."""
    d = tmp / "control"
    d.mkdir()
    with SpillWatch(d, []) as watch:
        con = duckdb.connect(config={"memory_limit": "60MB", "temp_directory": str(d), "threads": 1})
        con.execute("SELECT count(*) FROM (SELECT 'x' || i AS s FROM range(3000000) r(i) ORDER BY s DESC)").fetchall()
        con.close()
    return {"spill_files_seen": len(watch.seen), "largest_bytes": max((s for s, _ in watch.seen.values()), default=0)}


def probe(tmp: Path, rows: int, limit: str) -> dict:
    regs, _ = national_sample("WA", rows, seed=3)
    src = write_native("WA", regs, None, tmp / f"in-{limit}", format="wa_vrdb_2016", policy=FULL)[0]
    dobs = sorted({d.strftime(f).encode() for d in regs.column("dob").to_pylist()[:2000] for f in ("%m/%d/%Y", "%Y-%m-%d")})
    ws = tmp / f"ws-{limit}"
    t0 = time.monotonic()
    with SpillWatch(ws, dobs) as watch:
        try:
            r = ingest(IngestRequest.of(ws, "WA", [src], memory_limit=limit, threads=1))
            outcome = f"loaded {r.loaded} of {r.rows_read}"
        except UserError as exc:
            outcome = f"refused: {str(exc).split(': ', 1)[-1]}"
    return {
        "memory_limit": limit,
        "outcome": outcome,
        "seconds": round(time.monotonic() - t0, 1),
        "spill_files": len(watch.seen),
        "spill_files_with_a_full_dob": sum(1 for _, h in watch.seen.values() if h),
        "dob_strings_searched": len(dobs),
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rows", type=int, default=400_000)
    ap.add_argument("--limits", nargs="+", default=["60MB", "35MB", "20MB"])
    args = ap.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="vr_spill_"))
    try:
        out = {"rows": args.rows, "control": control(tmp), "runs": [probe(tmp, args.rows, lim) for lim in args.limits]}
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    out["load_average_1min"] = round(__import__("os").getloadavg()[0], 1)
    RESULTS.write_text(json.dumps(out, indent=2) + "\n")
    print(json.dumps(out, indent=2))


if __name__ == "__main__":
    main()
