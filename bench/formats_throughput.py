"""Measure write and scan throughput for one format at a modest size.

    python bench/formats_throughput.py --rows 200000 --state NC

Writes the sample national table as the state's native file(s) into a temp
dir, scans them and consumes the registration relation (counting rows and
issues in DuckDB), and prints rows per second for each step.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path
from types import SimpleNamespace

import duckdb
import numpy as np
import pyarrow as pa

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from voterolls.formats import scan  # noqa: E402
from voterolls.formats.sample import national_sample  # noqa: E402
from voterolls.synth.native import write_native  # noqa: E402

FULL = SimpleNamespace(
    dob_disclosure="full",
    phone_public=True,
    email_public=True,
    party_on_file=True,
    vote_history_public=True,
)


def _tile(t: pa.Table, rows: int, state: str) -> pa.Table:
    reps = -(-rows // t.num_rows)
    big = pa.concat_tables([t] * reps).slice(0, rows)
    ids = pa.array([f"{state}{i:09d}" for i in np.arange(rows)])
    return big.set_column(big.schema.get_field_index("state_voter_id"), "state_voter_id", ids)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--rows", type=int, default=200_000)
    ap.add_argument("--state", default="NC")
    ap.add_argument("--format", default=None)
    a = ap.parse_args()
    regs, _ = national_sample(a.state, 5_000)
    regs = _tile(regs, a.rows, a.state)
    empty_vh = national_sample(a.state, 1)[1].slice(0, 0)
    with tempfile.TemporaryDirectory() as d:
        t0 = time.perf_counter()
        c0 = time.process_time()
        paths = write_native(a.state, regs, empty_vh, Path(d), policy=FULL, format=a.format)
        t1 = time.perf_counter()
        c1 = time.process_time()
        size = sum(p.stat().st_size for p in paths)
        con = duckdb.connect()
        con.execute("SET enable_progress_bar = false")
        s = scan(con, paths, state=a.state, format=a.format)
        t2 = time.perf_counter()
        n, n_issues = s.registrations.aggregate("count(*), sum(len(_issues))").fetchall()[0]
        t3 = time.perf_counter()
        c3 = time.process_time()
        rep = s.finish()
    print(f"format {s.format}: {a.rows} rows, {size / 1e6:.1f} MB")
    print(
        f"write_native: {t1 - t0:.2f} s wall, {c1 - c0:.2f} s CPU ({a.rows / (t1 - t0):,.0f} rows/s wall)"
    )
    print(
        f"scan + consume: {t3 - t1:.2f} s wall, {c3 - c1:.2f} s CPU (all threads; {a.rows / (c3 - c1):,.0f} rows per CPU-second)"
    )
    print(f"scan (prepass: hash, count, rejects, quarantine): {t2 - t1:.2f} s")
    print(
        f"consume registrations: {t3 - t2:.2f} s; scan total {a.rows / (t3 - t1):,.0f} rows/s "
        f"({size / 1e6 / (t3 - t1):.1f} MB/s); loaded {n}, field issues {n_issues}, quarantined {rep.quarantine.num_rows}"
    )


if __name__ == "__main__":
    main()
