"""`make bench`: every benchmark from scratch, side by side, in one run on one machine.

    .venv/bin/python bench/run_all.py                                  # defaults fit ~60 min on 2 cores
    .venv/bin/python bench/run_all.py --sizes 100000,1000000,5000000 --budget-minutes 120
    .venv/bin/python bench/run_all.py --sizes 20000 --scaling-sizes 50000 --spark-sizes 20000 \
        --ingest-rows 50000 --no-docs                                  # a quick smoke run

What it does, in this order (each step a fresh child process, measured by
``bench.common.run_child``: wall time, peak RSS of the process tree, CPU):

1. for each comparison size N (``--sizes``, registrations): generate the
   synthetic nation once (``bench/peers.py prepare``: ``generate_nation``,
   then policy + normalisation as ingest would), then run on the *same*
   registrations

   * ``voterolls``      - our linkage (DuckDB engine, defaults)
   * ``crosscheck``     - the Crosscheck rule as an exact DuckDB join
   * ``splink_docs``    - Splink with the example model of its own docs
                          (run only while its blocking produces at most
                          ``--splink-docs-max-pairs`` candidate pairs; above
                          that the exact pair count is reported with a
                          projected time, marked as such)
   * ``recordlinkage``  - the recordlinkage toolkit's deduplication guide
                          (N <= ``--recordlinkage-max`` only; plus its ECM
                          classifier on the same features)
   and scores every pairs file with ``voterolls.link.evaluate.evaluate``
   (precision, recall, F1 of cross-state duplicate pairs against the truth);
2. ``voterolls`` alone at the extra ``--scaling-sizes`` (the scaling curve);
3. ``spark`` - voterolls on Spark ``local[N]`` (``bench/spark.py``) at each
   of ``--spark-sizes``, scoring with the model DuckDB trained on the same
   registrations, so its F1 must equal DuckDB's; run last because it is the
   slowest step on one small machine;
4. ``bench/ingest.py --rows R`` as its owner wrote it (it writes its own
   JSON and its own table in docs/PERFORMANCE.md);
5. writes ``bench/results/{run_all,peers,scaling,spark}.json``,
   ``bench/results/scaling.png`` and the Peers / Scaling / Spark tables of
   docs/PERFORMANCE.md (between ``<!-- bench/run_all.py:... -->`` markers).

A global ``--budget-minutes`` stops starting new steps once spent (skipped
steps are listed as skipped, never silently dropped); ``--step-timeout``
kills one step that runs too long.  Figures are single runs on a 2-core
machine; the load average at each step's start is recorded with it.
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench import plot as plot_mod  # noqa: E402
from bench import scaling  # noqa: E402
from bench.common import (  # noqa: E402
    BENCH,
    PYTHON,
    RESULTS,
    ROOT,
    ChildResult,
    evaluate_pairs,
    fmt,
    last_json,
    machine,
    md_table,
    now_utc,
    print_table,
    read_json,
    replace_doc_block,
    run_child,
    size_label,
    write_json,
)

SCALE_DOC = ROOT / "docs" / "SCALE.md"

METHOD_LABELS = {
    "voterolls": "voterolls (Splink model, DuckDB)",
    "crosscheck": "Crosscheck rule (exact DuckDB join)",
    "splink_docs": "Splink docs example (README quickstart)",
    "recordlinkage": "recordlinkage guide (block first name, sum > 3)",
    "recordlinkage_ecm": "recordlinkage + ECM classifier",
    "spark": "voterolls on Spark local[2] (DuckDB-trained model)",
}


def _sizes(text: str) -> list[int]:
    return sorted({int(float(x)) for x in text.split(",") if x.strip()})


class Runner:
    """Carries the budget, the work directory and the results of one ``run_all``."""

    def __init__(self, args: argparse.Namespace) -> None:
        self.args = args
        self.t0 = time.monotonic()
        self.deadline = self.t0 + args.budget_minutes * 60
        self.work = Path(args.work) if args.work else Path(tempfile.mkdtemp(prefix="vr-bench-all-"))
        self.work.mkdir(parents=True, exist_ok=True)
        self.runs: list[dict[str, Any]] = []
        self.data: dict[int, dict[str, Any]] = {}
        self.skipped: list[str] = []

    # -- budget ---------------------------------------------------------------
    def remaining(self) -> float:
        return self.deadline - time.monotonic()

    def timeout(self) -> float:
        return max(30.0, min(self.args.step_timeout, self.remaining()))

    def can_start(self, what: str) -> bool:
        if self.remaining() <= 0:
            self.skipped.append(f"{what}: time budget spent")
            print(f"- skip {what}: time budget spent", flush=True)
            return False
        return True

    # -- steps ----------------------------------------------------------------
    def child(self, argv: list[str]) -> ChildResult:
        return run_child([PYTHON, *argv], timeout=self.timeout())

    def prepare(self, size: int) -> Path | None:
        d = self.work / f"data_{size}"
        if size in self.data:
            return d
        if not self.can_start(f"prepare {size_label(size)}"):
            return None
        print(f"- prepare {size_label(size)} registrations", flush=True)
        res = self.child(
            [
                str(BENCH / "peers.py"),
                "prepare",
                "--registrations",
                str(size),
                "--seed",
                str(self.args.seed),
                "--out",
                str(d),
            ]
        )
        info = last_json(res.stdout) if res.ok else None
        if info is None:
            self.skipped.append(f"prepare {size_label(size)}: failed ({res.stderr_tail[-300:]})")
            return None
        info["child"] = res.as_dict()
        info["parquet_bytes"] = (d / "registrations.parquet").stat().st_size
        self.data[size] = info
        return d

    def method(self, size: int, method: str, data: Path, extra: list[str] | None = None) -> None:
        if not self.can_start(f"{method} {size_label(size)}"):
            self._record(size, method, "skipped: time budget spent")
            return
        out = self.work / f"out_{size}" / method
        print(
            f"- {method} at {size_label(size)} (load {machine()['load_avg_1_5_15'][0]})", flush=True
        )
        if method == "spark":
            argv = [str(BENCH / "spark.py"), "--data", str(data), "--out", str(out)] + (extra or [])
        else:
            argv = [str(BENCH / "peers.py"), "run", method, "--data", str(data), "--out", str(out)]
            if self.args.threads:
                argv += ["--threads", str(self.args.threads)]
        res = self.child(argv)
        rep = last_json(res.stdout) if res.ok else None
        if rep is None:
            status = "timed out" if res.timed_out else f"failed (exit {res.returncode})"
            self._record(size, method, status, child=res)
            return
        for name, (path, threshold) in rep["pairs"].items():
            ev = evaluate_pairs(data, Path(path), threshold)
            row = self._record(size, name, "ok", child=res, report=rep, evaluation=ev)
            if name == "recordlinkage_ecm":
                row["seconds"] = rep.get("seconds_ecm_variant", rep["seconds"])
            if name == "voterolls":
                row["model"] = rep.get("model")
        print(
            "  "
            + ", ".join(
                f"{r['method']}: {r['seconds']} s, {r['peak_rss_mib']:.0f} MiB, F1 {r.get('f1')}"
                for r in self.runs
                if r["size"] == size and r["method"] in rep["pairs"]
            ),
            flush=True,
        )

    def count_splink_docs(self, size: int, data: Path) -> None:
        """Report the docs example's exact pair count and a projected time instead of running it."""
        res = self.child([str(BENCH / "peers.py"), "count", "splink_docs", "--data", str(data)])
        rep = last_json(res.stdout) if res.ok else None
        row = self._record(size, "splink_docs", "not run: too many candidate pairs", child=None)
        if rep:
            row.update(
                registrations=rep["registrations"],
                candidate_pairs=rep["candidate_pairs"],
                comparisons_per_record=rep["comparisons_per_record"],
            )
            ref = [r for r in self.runs if r["method"] == "splink_docs" and r["status"] == "ok"]
            if ref:
                r0 = max(ref, key=lambda r: r["candidate_pairs"])
                row["projected_seconds"] = round(
                    r0["seconds"] * rep["candidate_pairs"] / max(1, r0["candidate_pairs"]), 0
                )
                row["projection_basis"] = (
                    f"seconds per candidate pair measured at {size_label(r0['size'])}"
                )
            row["status"] = (
                f"not run: {rep['candidate_pairs']:,} candidate pairs "
                f"(> --splink-docs-max-pairs {self.args.splink_docs_max_pairs:,.0f})"
            )

    def _record(
        self,
        size: int,
        method: str,
        status: str,
        *,
        child: ChildResult | None = None,
        report: dict[str, Any] | None = None,
        evaluation: dict[str, Any] | None = None,
    ) -> dict[str, Any]:
        row: dict[str, Any] = {"size": size, "method": method, "status": status}
        if child is not None:
            row.update(
                child_seconds=child.seconds,
                peak_rss_mib=child.peak_rss_mib,
                cpu_seconds=child.cpu_seconds,
                load_before=child.load_before,
                load_after=child.load_after,
            )
            if status != "ok":
                row["stderr_tail"] = child.stderr_tail[-1500:]
        if report:
            for k in (
                "seconds",
                "stages",
                "registrations",
                "candidate_pairs",
                "comparisons_per_record",
                "local_threads",
                "trained_on_spark",
                "blocking",
            ):
                if k in report:
                    row[k] = report[k]
        if evaluation:
            a = evaluation["all"]
            row.update(
                threshold=evaluation["threshold"],
                true_pairs=a["true_pairs"],
                predicted_pairs=a["predicted_pairs"],
                tp=a["tp"],
                fp=a["fp"],
                fn=a["fn"],
                precision=a["precision"],
                recall=a["recall"],
                # no pair predicted: F1 is 0 (no true pair found), precision undefined
                f1=a["f1"] if a["f1"] is not None else (0.0 if a["true_pairs"] else None),
                f1_by_granularity={k: v["f1"] for k, v in evaluation["by_granularity"].items()},
            )
        self.runs.append(row)
        return row

    def voterolls_row(self, size: int) -> dict[str, Any] | None:
        return next(
            (
                r
                for r in self.runs
                if r["size"] == size and r["method"] == "voterolls" and r["status"] == "ok"
            ),
            None,
        )

    def cleanup(self, size: int) -> None:
        if not self.args.keep:
            shutil.rmtree(self.work / f"data_{size}", ignore_errors=True)
            shutil.rmtree(self.work / f"out_{size}", ignore_errors=True)


# ---------------------------------------------------------------------------
# tables
# ---------------------------------------------------------------------------


def _ratio(a: float | None, b: float | None) -> str:
    """``a / b`` to three significant figures ('-' when undefined)."""
    if a is None or not b:
        return "-"
    return f"{a / b:.3g}"


def _secs(v: float | None) -> str:
    if v is None:
        return "-"
    return f"{v:,.3f}" if v < 1 else f"{v:,.1f}"


PEER_NOTES = """Configurations (details and sources in the docstring of `bench/peers.py`):

* **voterolls**: `voterolls.link.run.link_registrations`, DuckDB, defaults (threshold 0.9):
  prepare, train (u sampling, EM), Splink blocking analysis, predict, prior, pairs, clusters.
* **Crosscheck rule**: exact first + last name + full DOB in two different states
  (`voterolls.link.crosscheck`), one DuckDB join.
* **Splink docs example**: the Quickstart of Splink 5.0.0's README
  (https://pypi.org/project/splink/5.0.0/), column names adapted only (surname = last_name,
  city = residence_city); scored at the example's clustering threshold 0.95.  Its blocking
  (`block_on("first_name")`, `block_on("surname")`) grows quadratically with N; where it is
  "not run" the exact pair count is given with a time projected from its measured rate.
* **recordlinkage guide**: the toolkit's "Data deduplication" guide (block on first name,
  six comparisons, match when more than 3 agree), column names adapted only; its `state`
  comparison is exact, and a cross-state duplicate by definition disagrees on it (and usually
  on city and address: the person moved), so the guide's rule finds almost none.  The
  toolkit's own unsupervised `ECMClassifier` on the same features is the second row (same
  process: same peak memory; its time adds the ECM fit).
"""


def peers_beat_us(runs: list[dict[str, Any]]) -> str:
    """Every figure on which a peer did better than voterolls in this run, spelled out."""
    lines = []
    for r in runs:
        if r["method"] in ("voterolls", "spark") or r["status"] != "ok":
            continue
        vr = next(
            (
                v
                for v in runs
                if v["size"] == r["size"] and v["method"] == "voterolls" and v["status"] == "ok"
            ),
            None,
        )
        if vr is None:
            continue
        wins = []
        if r["seconds"] < vr["seconds"]:
            wins.append(f"time {_secs(r['seconds'])} s vs {_secs(vr['seconds'])} s")
        if r["peak_rss_mib"] < vr["peak_rss_mib"]:
            wins.append(f"peak memory {r['peak_rss_mib']:,.0f} vs {vr['peak_rss_mib']:,.0f} MiB")
        for k in ("precision", "recall", "f1"):
            a, b = r.get(k), vr.get(k)
            if a is not None and b is not None and a > b:
                wins.append(f"{k} {a:.4f} vs {b:.4f}")
        if wins:
            lines.append(
                f"* {METHOD_LABELS[r['method']]} at N = {r.get('registrations', r['size']):,}: "
                + "; ".join(wins)
            )
    return "Where a peer beat voterolls in this run:\n\n" + ("\n".join(lines) or "* nowhere")


def peers_tables(runs: list[dict[str, Any]], data: dict[int, dict[str, Any]]) -> str:
    parts = []
    peer_sizes = {r["size"] for r in runs if r["method"] not in ("voterolls", "spark")}
    for size in sorted(peer_sizes):
        rows_here = [r for r in runs if r["size"] == size and r["method"] != "spark"]
        vr = next(
            (r for r in rows_here if r["method"] == "voterolls" and r["status"] == "ok"), None
        )
        n = data.get(size, {}).get("registrations", size)
        truth = next((r.get("true_pairs") for r in rows_here if r.get("true_pairs")), None)
        rows = []
        for r in sorted(rows_here, key=lambda r: list(METHOD_LABELS).index(r["method"])):
            ok = r["status"] == "ok"
            t_ratio = _ratio(r["seconds"], vr["seconds"]) if ok and vr else "-"
            m_ratio = _ratio(r["peak_rss_mib"], vr["peak_rss_mib"]) if ok and vr else "-"
            secs = (
                _secs(r.get("seconds"))
                if ok
                else (
                    f"({fmt(r['projected_seconds'], 0)} projected)"
                    if r.get("projected_seconds")
                    else "-"
                )
            )
            rows.append(
                [
                    METHOD_LABELS[r["method"]],
                    secs,
                    t_ratio,
                    fmt(r.get("peak_rss_mib"), 0) if ok else "-",
                    m_ratio,
                    fmt(r.get("comparisons_per_record"), 2),
                    fmt(r.get("precision"), 4) if ok else "-",
                    fmt(r.get("recall"), 4) if ok else "-",
                    fmt(r.get("f1"), 4) if ok else "-",
                    fmt(r.get("load_before")) if ok else "-",
                    "" if ok else r["status"],
                ]
            )
        parts.append(
            f"**N = {n:,} registrations** ({truth:,} true cross-state duplicate pairs)"
            if truth
            else f"**N = {n:,} registrations**"
        )
        parts.append("")
        parts.append(
            md_table(
                [
                    "method",
                    "linkage s",
                    "time vs voterolls",
                    "peak RSS MiB",
                    "memory vs voterolls",
                    "comparisons / record",
                    "precision",
                    "recall",
                    "F1",
                    "load avg",
                    "note",
                ],
                rows,
                align="lrrrrrrrrrl",
            )
        )
        parts.append("")
    return "\n".join(parts)


def spark_table(runs: list[dict[str, Any]]) -> str:
    rows = []
    for sp in [r for r in runs if r["method"] == "spark"]:
        vr = next(
            (
                r
                for r in runs
                if r["size"] == sp["size"] and r["method"] == "voterolls" and r["status"] == "ok"
            ),
            None,
        )
        ok = sp["status"] == "ok"
        duck_scoring = None
        if vr:
            st = vr.get("stages") or {}
            duck_scoring = round(
                st.get("total", vr["seconds"])
                - st.get("train", 0)
                - st.get("blocking_analysis", 0),
                1,
            )
        rows.append(
            [
                f"{sp.get('registrations', sp['size']):,}",
                fmt(duck_scoring),
                fmt(sp.get("seconds")) if ok else sp["status"],
                fmt(sp["seconds"] / duck_scoring, 2) if ok and duck_scoring else "-",
                fmt(vr.get("peak_rss_mib"), 0) if vr else "-",
                fmt(sp.get("peak_rss_mib"), 0) if ok else "-",
                fmt(vr.get("f1"), 4) if vr else "-",
                fmt(sp.get("f1"), 4) if ok else "-",
                f"{vr['predicted_pairs']:,} / {sp['predicted_pairs']:,}" if ok and vr else "-",
                fmt(sp.get("load_before")),
            ]
        )
    if not rows:
        return "Spark was not run."
    return md_table(
        [
            "registrations",
            "DuckDB s (same stages)",
            "Spark s",
            "Spark / DuckDB time",
            "DuckDB peak MiB",
            "Spark peak MiB (incl. JVM)",
            "F1 DuckDB",
            "F1 Spark",
            "predicted pairs DuckDB / Spark",
            "load avg",
        ],
        rows,
    )


def header(res: dict[str, Any]) -> str:
    m = res["machine_start"]
    return (
        f"Measured {res['when']} - {res['finished']} UTC with `{res['command']}` "
        f"({m['platform']}, {m['cpus']} cores, {m['ram_gib']} GiB RAM; load average at start "
        f"{m['load_avg_1_5_15'][0]} / {m['load_avg_1_5_15'][1]} / {m['load_avg_1_5_15'][2]} (1/5/15 min), "
        f"at the end {res['machine_end']['load_avg_1_5_15'][0]}; one run, not repeated)."
    )


def write_docs(res: dict[str, Any]) -> None:
    head = header(res)
    skipped = "\n".join(f"* {s}" for s in res["skipped"]) or "* none"
    peers = "\n\n".join(
        [
            head,
            "Linkage seconds are the method's own time after reading the same prepared "
            "registrations into DuckDB (generation and evaluation excluded); peak RSS is the "
            "child process tree sampled every 100 ms; ratios are against voterolls in the same "
            "run on the same data.  Precision, recall and F1 are for cross-state duplicate "
            "pairs against the generator's truth, all scored by `voterolls.link.evaluate`. "
            "A peer that is faster, leaner or more precise than voterolls shows it in these "
            "columns; nothing is left out.",
            peers_tables(res["runs"], {int(k): v for k, v in res["data"].items()}),
            peers_beat_us(res["runs"]),
            PEER_NOTES,
            "Steps skipped in this run:\n\n" + skipped,
        ]
    )
    replace_doc_block("peers", peers, "Peers")
    scale = "\n\n".join(
        [
            head,
            scaling.scaling_table(res["runs"]),
            scaling.stages_text(res["runs"]),
            "![time and memory vs N, F1 per method](../bench/results/scaling.png)",
            scaling.projection_text(res.get("projection")),
            "How to run the national job, and which steps are measured versus projected: "
            "[docs/SCALE.md](SCALE.md).",
        ]
    )
    replace_doc_block("scaling", scale, "Scaling")
    replace_doc_block("spark", head + "\n\n" + spark_table(res["runs"]), "Spark")
    replace_doc_block(
        "scale-snapshot",
        scaling.snapshot_table(res),
        "Measured here versus projected",
        doc=SCALE_DOC,
    )


# ---------------------------------------------------------------------------
# main
# ---------------------------------------------------------------------------


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sizes", default="100000,1000000", help="comparison sizes (registrations)")
    ap.add_argument("--scaling-sizes", default="20000,300000", help="extra voterolls-only sizes")
    ap.add_argument("--spark-sizes", default="1000000", help="sizes for the Spark engine")
    ap.add_argument("--recordlinkage-max", type=int, default=100_000)
    ap.add_argument("--splink-docs-max-pairs", type=float, default=6e7)
    ap.add_argument("--ingest-rows", type=int, default=1_000_000)
    ap.add_argument("--no-ingest", action="store_true")
    ap.add_argument("--budget-minutes", type=float, default=60)
    ap.add_argument("--step-timeout", type=float, default=1500, help="seconds per step")
    ap.add_argument("--seed", type=int, default=7)
    ap.add_argument("--threads", type=int, default=None, help="DuckDB threads (default: all)")
    ap.add_argument("--work", default=None, help="work directory (default: a temporary one)")
    ap.add_argument("--keep", action="store_true", help="keep generated data and outputs")
    ap.add_argument("--no-docs", action="store_true", help="do not rewrite docs/PERFORMANCE.md")
    ap.add_argument("--results", type=Path, default=RESULTS)
    args = ap.parse_args(argv)
    sizes, extra, spark_sizes = (
        _sizes(args.sizes),
        _sizes(args.scaling_sizes),
        _sizes(args.spark_sizes),
    )
    given = sys.argv[1:] if argv is None else argv
    command = " ".join([".venv/bin/python bench/run_all.py", *given])
    run = Runner(args)
    res: dict[str, Any] = {
        "when": now_utc(),
        "command": command,
        "machine_start": machine(),
        "args": vars(args) | {"results": str(args.results)},
    }
    print(
        f"bench: work dir {run.work}; budget {args.budget_minutes} min; load {res['machine_start']['load_avg_1_5_15']}"
    )
    try:
        # 1. side by side at each comparison size
        for size in sizes:
            data = run.prepare(size)
            if data is None:
                continue
            run.method(size, "voterolls", data)
            run.method(size, "crosscheck", data)
            n_docs = None
            if run.can_start(f"splink_docs {size_label(size)}"):
                res_c = run_child(
                    [PYTHON, str(BENCH / "peers.py"), "count", "splink_docs", "--data", str(data)],
                    timeout=run.timeout(),
                )
                c = last_json(res_c.stdout) if res_c.ok else None
                n_docs = c["candidate_pairs"] if c else None
            if n_docs is not None and n_docs <= args.splink_docs_max_pairs:
                run.method(size, "splink_docs", data)
            elif n_docs is not None:
                run.count_splink_docs(size, data)
            if size <= args.recordlinkage_max:
                run.method(size, "recordlinkage", data)
            if size not in spark_sizes:
                run.cleanup(size)
        # 2. the rest of the scaling curve (voterolls alone)
        for size in sorted(set(extra) | (set(spark_sizes) - set(sizes))):
            data = run.prepare(size)
            if data is None:
                continue
            if run.voterolls_row(size) is None:
                run.method(size, "voterolls", data)
            if size not in spark_sizes:
                run.cleanup(size)
        # 3. Spark, scoring with the model DuckDB trained on the same registrations
        for size in spark_sizes:
            data = run.prepare(size)
            vr = run.voterolls_row(size)
            if data is not None and vr and vr.get("model"):
                run.method(size, "spark", data, ["--model", vr["model"]])
            elif data is not None:
                run._record(size, "spark", "not run: no DuckDB model at this size")
            run.cleanup(size)
        # 4. ingest, as its owner wrote it
        ingest = None
        if not args.no_ingest and run.can_start(f"ingest {args.ingest_rows}"):
            print(f"- bench/ingest.py --rows {args.ingest_rows}", flush=True)
            argv_i = [str(BENCH / "ingest.py"), "--rows", str(args.ingest_rows)]
            if args.no_docs:
                argv_i.append("--no-docs")
            r = run.child(argv_i)
            ingest = {
                "child": r.as_dict(),
                "result": read_json(RESULTS / "ingest.json") if r.ok else None,
            }
    finally:
        if not args.keep:
            shutil.rmtree(run.work, ignore_errors=True)

    res["finished"] = now_utc()
    res["machine_end"] = machine()
    res["runs"] = run.runs
    res["data"] = {str(k): v for k, v in run.data.items()}
    res["skipped"] = run.skipped
    res["ingest"] = ingest
    biggest = max(run.data) if run.data else None
    if biggest:
        res["input_bytes_per_registration"] = (
            run.data[biggest]["parquet_bytes"] / run.data[biggest]["registrations"]
        )
    res["projection"] = scaling.project(
        run.runs,
        spark_runs=[r for r in run.runs if r["method"] == "spark"],
        input_bytes_per_record=res.get("input_bytes_per_registration"),
    )
    res["title"] = (
        f"voterolls bench {res['when']} ({res['machine_start']['cpus']} cores, "
        f"load {res['machine_start']['load_avg_1_5_15'][0]} at start)"
    )
    out = args.results
    write_json(out / "run_all.json", res)
    write_json(
        out / "peers.json",
        {k: res[k] for k in ("when", "command", "machine_start", "data")}
        | {"runs": [r for r in run.runs if r["method"] != "spark"]},
    )
    write_json(
        out / "scaling.json",
        {"when": res["when"], "curve": scaling.curve(run.runs), "projection": res["projection"]},
    )
    write_json(
        out / "spark.json",
        {
            "when": res["when"],
            "runs": [r for r in run.runs if r["method"] in ("spark", "voterolls")],
        },
    )
    if run.runs:
        plot_mod.plot(run.runs, out / "scaling.png", res["title"])
    print_table(
        ["size", "method", "status", "s", "peak MiB", "cpr", "P", "R", "F1", "load"],
        [
            [
                size_label(r["size"]),
                r["method"],
                r["status"][:40],
                r.get("seconds", r.get("projected_seconds")),
                r.get("peak_rss_mib"),
                r.get("comparisons_per_record"),
                r.get("precision"),
                r.get("recall"),
                r.get("f1"),
                r.get("load_before"),
            ]
            for r in run.runs
        ],
        title="bench/run_all.py",
    )
    print(scaling.projection_text(res["projection"]))
    if not args.no_docs:
        write_docs(res)
        print("updated docs/PERFORMANCE.md (Peers, Scaling, Spark)")
    print(f"wrote {out}/run_all.json, peers.json, scaling.json, spark.json, scaling.png")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
