"""Benchmark: voterolls ingest vs DuckDB's plain CSV -> Parquet copy of the same NC file.

    .venv/bin/python bench/ingest.py [--rows 1000000] [--threads N] [--memory-limit 1GB] [--no-docs] [--no-zipped]

1. Builds a synthetic NC ``ncvoter`` file (tab, all fields quoted, 67
   columns) of ``--rows`` rows: a block of made-up registrations written by
   ``voterolls.synth.native.write_native`` (``voterolls.formats.sample``, no real
   voter data) is replicated with distinct ``ncid`` values (bytes replace, so
   building 1M rows takes seconds).
2. (a) ``COPY (SELECT * FROM read_csv(file)) TO 'x.parquet' (zstd)`` in a
   fresh process: the floor of what any CSV->Parquet loader on this machine
   can do.  (b) ``voterolls.ingest.pipeline.ingest`` of the same file into a
   fresh workspace, in a fresh process.
3. Peak memory is the child process's RSS, sampled every 50 ms with psutil
   (max over the process and its children); CPU seconds are the child's
   user + system time (``getrusage``), and the load average is recorded
   before (a) and after (b): the machine is shared.
   (c) unless ``--no-zipped``: the same file as states ship it, in a ZIP
   (deflate, Python's default level), ingested the same way: the member is
   streamed into an anonymous scratch file and read from there
   (``voterolls.ingest.archives``).  (b) and (c) run ``--pairs`` times in
   alternating order (b c, c b, ...) so a change in the machine's load hits
   both; the medians are compared.
4. Prints a table, writes ``bench/results/ingest.json`` and replaces the
   table in docs/PERFORMANCE.md ("Ingest" section) unless ``--no-docs``.

Both sides read the same bytes and write zstd Parquet; the ingest side also
parses every field, maps codes, applies the NC disclosure policy, normalises
names / addresses / ZIPs, counts every row per file and writes the
uniformity report.  The machine is shared; figures are single runs.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import psutil

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "bench" / "results" / "ingest.json"
DOC = ROOT / "docs" / "PERFORMANCE.md"
BLOCK = 50_000


def build_nc_file(rows: int, out_dir: Path) -> Path:
    """A native NC ncvoter file with ``rows`` registrations (replicated blocks, unique ncid)."""
    from voterolls.formats.sample import national_sample
    from voterolls.synth.native import write_native

    block = min(BLOCK, rows)
    regs, _vh = national_sample("NC", block, seed=11)
    tmp = out_dir / "block"
    paths = write_native("NC", regs, None, tmp)
    reg_file = next(p for p in paths if p.name.startswith("ncvoter"))
    data = reg_file.read_bytes()
    header, _, body = data.partition(b"\n")
    lines = body.split(b"\n")
    if lines and lines[-1] == b"":
        lines.pop()
    body = b"\n".join(lines) + b"\n"
    out = out_dir / "ncvoter_Statewide.txt"
    copies = -(-rows // block)
    with out.open("wb") as fh:
        fh.write(header + b"\n")
        written = 0
        for k in range(copies):
            # sample ids are "NC00100000"...; a 2-digit copy number keeps them unique
            chunk = body.replace(b'"NC00', b'"N%03d' % k)
            need = rows - written
            if need < block:
                chunk = b"\n".join(chunk.split(b"\n")[:need]) + b"\n"
            fh.write(chunk)
            written += min(block, need)
    shutil.rmtree(tmp, ignore_errors=True)
    return out


def damage(path: Path, n: int) -> None:
    """Damage ``n`` evenly spaced data lines in place: a line cut short, a stray quote, an invalid byte.

    Real county files carry such lines; ingest quarantines them and must not
    fall off its fast path for the rest of the file.
    """
    lines = path.read_bytes().split(b"\n")
    body = len(lines) - 2  # header and the empty string after the last newline
    for k in range(n):
        i = 1 + (k + 1) * body // (n + 1)
        kind = k % 3
        if kind == 0:
            lines[i] = lines[i][: len(lines[i]) // 2]
        elif kind == 1:
            lines[i] = lines[i].replace(b'"\t"', b'"x"\t"', 1)
        else:
            lines[i] = lines[i][:20] + b"\xff" + lines[i][20:]
    path.write_bytes(b"\n".join(lines))


def zip_file(src: Path) -> Path:
    """``src`` in a ZIP next to it (deflate, default level: how NC ships its files)."""
    import zipfile

    out = src.with_suffix(".zip")
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as zf:
        zf.write(src, src.name)
    return out


def _median_run(runs: list[tuple[float, int, str, float]]) -> tuple[float, int, str, float]:
    """The run with the median wall time (lower median), its RSS and output; CPU: the median too."""
    by_wall = sorted(runs, key=lambda r: r[0])
    mid = by_wall[(len(by_wall) - 1) // 2]
    cpus = sorted(r[3] for r in runs)
    return mid[0], max(r[1] for r in runs), mid[2], cpus[(len(cpus) - 1) // 2]


def _run_child(code: str, env: dict[str, str]) -> tuple[float, int, str, float]:
    """Run ``code`` in a fresh Python; return (seconds, peak RSS bytes, stdout, CPU seconds).

    CPU seconds (user + system, from ``getrusage(RUSAGE_CHILDREN)``) barely move with
    the machine's load, unlike wall time, so they are reported beside it.
    """
    import resource

    ru0 = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    proc = subprocess.Popen(
        [sys.executable, "-c", code],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env=env,
        cwd=ROOT,
    )
    ps = psutil.Process(proc.pid)
    peak = 0
    while proc.poll() is None:
        try:
            rss = ps.memory_info().rss + sum(
                c.memory_info().rss for c in ps.children(recursive=True)
            )
            peak = max(peak, rss)
        except psutil.Error:
            pass
        time.sleep(0.05)
    out, err = proc.communicate()
    elapsed = time.perf_counter() - start
    if proc.returncode != 0:
        raise SystemExit(f"child failed ({proc.returncode}):\n{err.decode()[-3000:]}")
    ru1 = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (ru1.ru_utime - ru0.ru_utime) + (ru1.ru_stime - ru0.ru_stime)
    return elapsed, peak, out.decode(), cpu


PLAIN = """
import duckdb, sys, time
con = duckdb.connect(config={{'memory_limit': '{mem}', 'temp_directory': '{tmp}'{threads}}})
t = time.perf_counter()
con.execute("COPY (SELECT * FROM read_csv('{src}', delim='\\t', header=true, quote='\\"', all_varchar=true{lenient})) TO '{dst}' (FORMAT parquet, COMPRESSION zstd)")
print(time.perf_counter() - t)
"""

INGEST = """
import time
from voterolls.ingest.pipeline import IngestRequest, ingest
t = time.perf_counter()
r = ingest(IngestRequest.of('{ws}', 'NC', ['{src}'], memory_limit='{mem}'{threads_kw}))
print(time.perf_counter() - t)
print(r.rows_read, r.loaded, r.quarantined, r.protected_excluded)
"""


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--rows", type=int, default=1_000_000)
    ap.add_argument(
        "--threads", type=int, default=0, help="DuckDB threads for both sides (0 = DuckDB default)"
    )
    ap.add_argument("--memory-limit", default="1GB")
    ap.add_argument("--no-zipped", action="store_true", help="skip (c), the zipped copy of the file")
    ap.add_argument("--pairs", type=int, default=2, help="rounds: each runs (a), (b) and (c) once, in rotating order")
    ap.add_argument("--keep", action="store_true", help="keep the temporary directory")
    ap.add_argument("--no-docs", action="store_true", help="do not rewrite docs/PERFORMANCE.md")
    ap.add_argument(
        "--bad-lines",
        type=int,
        default=0,
        help="damage this many evenly spaced lines (messy-file run: results to ingest_bad_lines.json, no docs)",
    )
    args = ap.parse_args()
    results = RESULTS.with_name("ingest_bad_lines.json") if args.bad_lines else RESULTS

    work = Path(tempfile.mkdtemp(prefix="vr-bench-ingest-"))
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    try:
        t = time.perf_counter()
        src = build_nc_file(args.rows, work)
        if args.bad_lines:
            damage(src, args.bad_lines)
        build_s = time.perf_counter() - t
        size = src.stat().st_size
        print(f"built {src.name}: {args.rows:,} rows, {size / 1e6:.0f} MB in {build_s:.1f} s")
        threads = f", 'threads': {args.threads}" if args.threads else ""
        threads_kw = f", threads={args.threads}" if args.threads else ""
        (work / "tmp").mkdir()
        load_start = os.getloadavg()
        copy_code = PLAIN.format(
            src=src,
            dst=work / "plain.parquet",
            mem=args.memory_limit,
            tmp=work / "tmp",
            threads=threads,
            lenient=", ignore_errors=true" if args.bad_lines else "",
        )
        zipped = None if args.no_zipped or args.bad_lines else zip_file(src)
        # every round runs the copy too, in rotating order: a moment of load on the shared
        # machine then falls on one run of each kind in turn, not on the one copy of the ratio
        kinds = ["copy", "plain", "zipped"] if zipped else ["copy", "plain"]
        runs: dict[str, list[tuple[float, int, str, float]]] = {k: [] for k in kinds}
        for k in range(max(1, args.pairs)):
            for kind in kinds[k % len(kinds):] + kinds[: k % len(kinds)]:
                if kind == "copy":
                    runs[kind].append(_run_child(copy_code, env))
                    continue
                ws = work / f"ws-{kind}-{k}"
                runs[kind].append(
                    _run_child(
                        INGEST.format(src=zipped if kind == "zipped" else src, ws=ws, mem=args.memory_limit, threads_kw=threads_kw),
                        env,
                    )
                )
        plain_s, plain_rss, _, plain_cpu = _median_run(runs["copy"])
        ing_s, ing_rss, out, ing_cpu = _median_run(runs["plain"])
        load_end = os.getloadavg()
        counts = out.strip().splitlines()[-1].split()
        reg = next(work.glob("ws-plain-0/states/NC/*/registrations.parquet"))
        result = {
            "date": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
            "rows": args.rows,
            "file_bytes": size,
            "machine": f"{platform.machine()}, {psutil.cpu_count()} cores, {psutil.virtual_memory().total / 2**30:.0f} GiB RAM (shared with other work)",
            "threads": args.threads or "duckdb default",
            "memory_limit": args.memory_limit,
            # the machine is shared: the 1/5/15-minute load averages before (a) and after (b)
            "load_avg_start": [round(x, 2) for x in load_start],
            "load_avg_end": [round(x, 2) for x in load_end],
            "plain_copy": {
                "seconds": round(plain_s, 2),
                "cpu_s": round(plain_cpu, 2),
                "rows_per_s": round(args.rows / plain_s),
                "peak_rss_mib": round(plain_rss / 2**20),
            },
            "ingest": {
                "seconds": round(ing_s, 2),
                "cpu_s": round(ing_cpu, 2),
                "rows_per_s": round(args.rows / ing_s),
                "peak_rss_mib": round(ing_rss / 2**20),
                "rows_read": int(counts[0]),
                "loaded": int(counts[1]),
                "quarantined": int(counts[2]),
                "protected_excluded": int(counts[3]),
                "parquet_bytes": reg.stat().st_size,
            },
            "throughput_ratio": round(plain_s / ing_s, 3),
            "cpu_ratio": round(plain_cpu / ing_cpu, 3),
            "ingest_runs_s": [round(r[0], 2) for r in runs["plain"]],
            "copy_runs_s": [round(r[0], 2) for r in runs["copy"]],
        }
        if zipped is not None:
            z_s, z_rss, z_out, z_cpu = _median_run(runs["zipped"])
            z_counts = z_out.strip().splitlines()[-1].split()
            if z_counts != counts:
                raise SystemExit(f"zipped ingest counted {z_counts}, plain {counts}")
            result["zipped"] = {
                "zip_bytes": zipped.stat().st_size,
                "seconds": round(z_s, 2),
                "cpu_s": round(z_cpu, 2),
                "rows_per_s": round(args.rows / z_s),
                "peak_rss_mib": round(z_rss / 2**20),
                "runs_s": [round(r[0], 2) for r in runs["zipped"]],
                # > 1: the zipped ingest is slower; the target is at most 1.25
                "slowdown_vs_plain": round(z_s / ing_s, 3),
                "cpu_slowdown_vs_plain": round(z_cpu / ing_cpu, 3),
            }
        result["bad_lines"] = args.bad_lines
        results.parent.mkdir(parents=True, exist_ok=True)
        results.write_text(json.dumps(result, indent=2) + "\n")
        table = render(result)
        print(table)
        if not args.no_docs and not args.bad_lines:
            write_doc(table)
    finally:
        if not args.keep:
            shutil.rmtree(work, ignore_errors=True)
        else:
            print(f"kept {work}")


def _runs_said(r: dict) -> str:
    """How many runs each figure is the median of (older results ran the copy once)."""
    n = len(r["ingest_runs_s"])
    if "copy_runs_s" not in r:
        return "one run" + (f", (b) and (c) the median of {n} each in alternating order" if r.get("zipped") else "")
    kinds = "(a), (b) and (c)" if r.get("zipped") else "(a) and (b)"
    return f"{kinds} the median of {n} each, in rotating order" if n > 1 else "one run each"


def render(r: dict) -> str:
    p, i = r["plain_copy"], r["ingest"]
    return "\n".join(
        [
            f"Measured {r['date']} with `.venv/bin/python bench/ingest.py --rows {r['rows']}"
            + (f" --bad-lines {r['bad_lines']}" if r.get("bad_lines") else "")
            + "` "
            f"({r['rows']:,} rows, {r['file_bytes'] / 1e6:.0f} MB NC ncvoter file; {r['machine']}; "
            f"DuckDB threads: {r['threads']}, memory limit {r['memory_limit']}; "
            + _runs_said(r)
            + "; load average "
            f"(1/5/15 min) {' / '.join(map(str, r['load_avg_start']))} before, {' / '.join(map(str, r['load_avg_end']))} after).",
            "",
            "| run | seconds | rows/s | CPU s (user+sys) | peak RSS (MiB) |",
            "|---|---:|---:|---:|---:|",
            f"| (a) DuckDB plain CSV -> Parquet COPY | {p['seconds']} | {p['rows_per_s']:,} | {p['cpu_s']} | {p['peak_rss_mib']} |",
            f"| (b) voterolls ingest (scan, policy, normalise, Parquet, counts, uniformity) | {i['seconds']} | {i['rows_per_s']:,} | {i['cpu_s']} | {i['peak_rss_mib']} |",
            f"| ratio (b)/(a): throughput (wall) / CPU | {r['throughput_ratio']} | | {r['cpu_ratio']} | |",
            *(
                [
                    f"| (c) voterolls ingest of the same file zipped ({r['zipped']['zip_bytes'] / 1e6:.0f} MB .zip) | "
                    f"{r['zipped']['seconds']} | {r['zipped']['rows_per_s']:,} | {r['zipped']['cpu_s']} | {r['zipped']['peak_rss_mib']} |",
                    f"| ratio (c)/(b): zipped vs plain, wall / CPU (target at most 1.25) | {r['zipped']['slowdown_vs_plain']} | | "
                    f"{r['zipped']['cpu_slowdown_vs_plain']} | |",
                ]
                if r.get("zipped")
                else []
            ),
            "",
            f"Ingest counts: {i['rows_read']:,} read = {i['loaded']:,} loaded + {i['quarantined']:,} quarantined "
            f"+ {i['protected_excluded']:,} protected excluded.",
        ]
    )


BEGIN, END = "<!-- bench/ingest.py:begin -->", "<!-- bench/ingest.py:end -->"


def write_doc(table: str) -> None:
    text = DOC.read_text() if DOC.exists() else "# Performance\n"
    block = f"{BEGIN}\n{table}\n{END}"
    if BEGIN in text and END in text:
        text = re.sub(re.escape(BEGIN) + ".*?" + re.escape(END), lambda _m: block, text, flags=re.S)
    elif "## Ingest" in text:
        text = text.replace("## Ingest\n", "## Ingest\n\n" + block + "\n", 1)
    else:
        text = text.rstrip() + "\n\n## Ingest\n\n" + block + "\n"
    DOC.write_text(text)


if __name__ == "__main__":
    main()
