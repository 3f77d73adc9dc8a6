"""`make bench`: every benchmark from scratch, side by side, in one run on one machine.

    .venv/bin/python bench/run_all.py --plan                           # the plan and its predicted time
    .venv/bin/python bench/run_all.py                                  # the default (~35-45 min on 2 cores)
    .venv/bin/python bench/run_all.py --sizes 20000,50000 --scaling-sizes "" --optional-sizes "" \
        --spark-sizes 20000 --optional-spark-sizes "" --ingest-rows 50000 \
        --results /tmp/r --no-docs                                     # a quick smoke run

The run is a list of **steps**, each a fresh child process measured by
``bench.common.run_child`` (wall time, peak RSS of the process tree, CPU),
with the load average (``os.getloadavg``, 1/5/15 min) recorded at its start
and end.  In order (defaults in brackets):

1. for each comparison size N (``--sizes`` [100k, 1M, 5M]), ascending:
   ``prepare`` (``bench/peers.py prepare``: the synthetic nation of about N
   registrations, policy + normalisation as ingest would, and its truth -
   generated once per size and read by every method), then on the *same*
   registrations ``voterolls`` (our linkage, DuckDB), ``crosscheck`` (the
   Crosscheck rule as an exact DuckDB join), ``splink_docs_count`` (the exact
   number of pairs the Splink docs example's blocking makes; cheap) and
   ``splink_docs`` (that example, run only when the count is at most
   ``--splink-docs-max-pairs``; above it the row says so, with the exact
   count and a projected time), ``recordlinkage`` (N <= ``--recordlinkage-max``
   only; plus its ECM classifier).  Every pairs file is scored by
   ``voterolls.link.evaluate`` (precision, recall, F1 of cross-state
   duplicate pairs against the truth), in this process, timed;
2. ``spark`` at each of ``--spark-sizes`` [1M], right after that size's
   block: voterolls on Spark ``local[N]`` (``bench/spark.py``) scoring with
   the model DuckDB trained on the same registrations (same F1 expected);
3. ``ingest`` (``bench/ingest.py --rows R``, as its owner wrote it) before
   the largest comparison size;
4. optional steps, last: the extra scaling sizes (``--scaling-sizes``
   [20k, 300k], voterolls only), ``--optional-spark-sizes`` [100k, 5M] (a
   second Spark point for the marginal rates, and Spark local at the national
   job's 5M test size, prepare included, when the budget and memory allow)
   and ``--optional-sizes`` [10M]
   ("10M if it fits");
5. writes ``bench/results/{run_all,peers,scaling,spark}.json``,
   ``bench/results/scaling.png``, the Peers / Scaling / Spark / "Benchmark
   run" blocks of docs/PERFORMANCE.md and the snapshot block of
   docs/SCALE.md (between ``<!-- bench/run_all.py:... -->`` markers).

Generated data is reused: one ``prepare`` per size serves every method and
the Spark step at that size; a size's directory is deleted as soon as no
pending step needs it.  Smaller sizes are generated separately rather than
subset from the largest: generating them costs ~30 s in all (measured), a
subset of a larger nation would be a different population from a nation of
that size, and a separately generated nation's truth is exact by construction.

**Budget.**  Before each step its time and peak memory are *predicted*
(:class:`CostModel`): from this run's own measurements of the same kind of
step when there are any (scaled by N, by candidate pairs for the pair-bound
stages), else from the previous run's ``bench/results/run_all.json``, else
from the figures in :data:`FALLBACK_POINTS`.  A required step always runs
unless it cannot finish before ``--hard-limit-minutes``; an optional step
runs only if it, the rest of its size's steps and every required step still
pending fit in ``--budget-minutes``, and only if its projected peak RSS fits
in ``--memory-fraction`` of RAM.  Every skip is recorded with its reason and
appears in the tables and the final summary; nothing is dropped silently.
``--plan`` prints the plan with the predictions and what the budget would
skip, without running anything.  Figures are single runs on a 2-core
machine shared with other work: read them with the load averages recorded.
"""

from __future__ import annotations

import argparse
import math
import shutil
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psutil

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
    load_avg,
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
from bench.spark import pair_agreement  # noqa: E402

SCALE_DOC = ROOT / "docs" / "SCALE.md"

METHOD_LABELS = {
    "voterolls": "voterolls (Splink model, DuckDB)",
    "crosscheck": "Crosscheck rule (exact DuckDB join)",
    "splink_docs": "Splink docs example (README quickstart)",
    "recordlinkage": "recordlinkage guide (block first name, sum > 3)",
    "recordlinkage_ecm": "recordlinkage + ECM classifier",
    "spark": "voterolls on Spark local[2] (DuckDB-trained model)",
}

#: Step kinds that are a linkage method (a row in the Peers / Spark tables).
METHOD_KINDS = ("voterolls", "crosscheck", "splink_docs", "recordlinkage", "spark")

#: Seconds kept free before the hard limit for scoring the last pairs file,
#: the plot and the docs.
FINAL_RESERVE_S = 90.0

#: Scoring a pairs file against the truth (``evaluate_pairs``, in this
#: process) costs about this per registration: 20.4 s at 5,000,436
#: registrations, 2026-11-24 19:29 UTC, load average ~6.  Used only to
#: convert an old-format results file, whose step times leave it out.
EVAL_SECONDS_PER_REGISTRATION = 4.1e-6

#: Measured points used when neither this run nor the previous results file
#: has one for a kind of step (same format as a step record).  Measured on
#: this machine on 2026-11-24 (bench/peers.py as run_all starts it,
#: ``/usr/bin/time -v``): 5M ``prepare`` at 19:26-19:29 UTC (load average 0.4
#: rising to 6.4 from other work; 108 s CPU: generate 76.0 s, policy +
#: normalise 84.0 s), ``crosscheck`` (18.9 s child + 20.4 s scoring) and
#: ``splink_docs_count`` at 19:29 UTC (load ~6); the 100k / 1M points are the
#: 17:56-18:09 UTC run (``bench/results/run_all.json`` of that time).
FALLBACK_POINTS: list[dict[str, Any]] = [
    {"kind": "prepare", "n": 100_011, "seconds": 4.2, "peak_rss_mib": 453},
    {"kind": "prepare", "n": 1_000_060, "seconds": 16.3, "peak_rss_mib": 1552},
    {"kind": "prepare", "n": 5_000_436, "seconds": 161.8, "peak_rss_mib": 5105},
    {"kind": "crosscheck", "n": 100_011, "seconds": 1.3, "peak_rss_mib": 188},
    {"kind": "crosscheck", "n": 1_000_060, "seconds": 6.5, "peak_rss_mib": 516},
    {"kind": "crosscheck", "n": 5_000_436, "seconds": 39.3, "peak_rss_mib": 1829},
    {"kind": "splink_docs_count", "n": 5_000_436, "seconds": 8.8, "peak_rss_mib": 1688},
    {
        "kind": "splink_docs",
        "n": 100_011,
        "seconds": 16.3,
        "peak_rss_mib": 705,
        "candidate_pairs": 10_871_671,
    },
    {"kind": "recordlinkage", "n": 100_011, "seconds": 178.6, "peak_rss_mib": 3098},
    {
        "kind": "voterolls",
        "n": 100_011,
        "seconds": 12.0,
        "peak_rss_mib": 458,
        "candidate_pairs": 29_839,
        "stages": {
            "prepare": 2.074,
            "load": 0.588,
            "train": 5.781,
            "blocking_analysis": 0.482,
            "predict": 0.674,
            "prior": 0.009,
            "write_pairs": 0.072,
            "cluster": 0.656,
        },
    },
    {
        "kind": "voterolls",
        "n": 1_000_060,
        "seconds": 61.5,
        "peak_rss_mib": 3351,
        "candidate_pairs": 2_699_409,
        "stages": {
            "prepare": 19.652,
            "load": 1.841,
            "train": 8.623,
            "blocking_analysis": 1.111,
            "predict": 17.445,
            "prior": 0.449,
            "write_pairs": 0.95,
            "cluster": 4.984,
        },
    },
    # Spark (bench/spark.py --model, local[2], driver memory 6g): the 2026-11-24 22:49 UTC
    # `make bench` run (bench/results/spark.json of that time, load average 1.4-1.6 at start)
    {"kind": "spark", "n": 100_011, "seconds": 49.0, "peak_rss_mib": 2142},
    {"kind": "spark", "n": 1_000_060, "seconds": 143.8, "peak_rss_mib": 8210},
    {"kind": "ingest", "n": 1_000_000, "seconds": 27.8, "peak_rss_mib": 1512},
]


def _sizes(text: str) -> list[int]:
    return sorted({int(float(x)) for x in text.split(",") if x.strip()})


# ---------------------------------------------------------------------------
# the plan
# ---------------------------------------------------------------------------


@dataclass
class Step:
    """One measured child process of the run (or a step decided not to run)."""

    kind: str
    size: int
    required: bool
    group: str
    skip_reason: str | None = None  # decided when planning (e.g. recordlinkage above its max)
    status: str = "pending"
    record: dict[str, Any] = field(default_factory=dict)

    @property
    def name(self) -> str:
        return f"{self.kind} {size_label(self.size)}"


def build_plan(args: argparse.Namespace) -> list[Step]:
    """The ordered steps of a run: required first (ascending sizes), optional last."""
    sizes = _sizes(args.sizes)
    spark_req = _sizes(args.spark_sizes)
    opt_sizes = [s for s in _sizes(args.optional_sizes) if s not in sizes]
    scale_sizes = [s for s in _sizes(args.scaling_sizes) if s not in sizes and s not in opt_sizes]
    spark_opt = [s for s in _sizes(args.optional_spark_sizes) if s not in spark_req]
    steps: list[Step] = []
    have_data: set[int] = set()

    def data(size: int, required: bool, group: str) -> None:
        if size not in have_data:
            steps.append(Step("prepare", size, required, group))
            steps.append(Step("voterolls", size, required, group))
            have_data.add(size)

    def comparison(size: int, required: bool) -> None:
        g = f"size {size_label(size)}"
        data(size, required, g)
        steps.append(Step("crosscheck", size, required, g))
        steps.append(Step("splink_docs_count", size, required, g))
        steps.append(Step("splink_docs", size, required, g))
        rl = Step("recordlinkage", size, required, g)
        if size > args.recordlinkage_max:
            rl.skip_reason = (
                f"not run: N above --recordlinkage-max {args.recordlinkage_max:,} (the toolkit "
                "holds every candidate pair in pandas memory; it is run at 100k only)"
            )
        steps.append(rl)

    def spark(size: int, required: bool) -> None:
        g = f"spark {size_label(size)}"
        data(size, required, g)
        steps.append(Step("spark", size, required, g))

    ingest_done = args.no_ingest
    for i, size in enumerate(sizes):
        if not ingest_done and len(sizes) > 1 and i == len(sizes) - 1:
            steps.append(Step("ingest", args.ingest_rows, True, "ingest"))
            ingest_done = True
        comparison(size, True)
        if size in spark_req:
            spark(size, True)
    for size in spark_req:
        if size not in sizes:
            spark(size, True)
    if not ingest_done:
        steps.append(Step("ingest", args.ingest_rows, True, "ingest"))
    for size in scale_sizes:
        data(size, False, f"size {size_label(size)}")
    for size in spark_opt:
        spark(size, False)
    for size in opt_sizes:
        comparison(size, False)
    return steps


# ---------------------------------------------------------------------------
# predictions
# ---------------------------------------------------------------------------


@dataclass
class Prediction:
    seconds: float
    peak_rss_mib: float
    basis: str
    candidate_pairs: float | None = None


#: What a step record keeps for the cost model.
POINT_KEYS = ("kind", "n", "seconds", "peak_rss_mib", "candidate_pairs", "stages", "blocking")


def history_points(res: dict[str, Any] | None) -> list[dict[str, Any]]:
    """Step records of an earlier run (``run_all.json``), any format, ok steps only."""
    if not res:
        return []
    if res.get("steps"):
        return [
            {k: s.get(k) for k in POINT_KEYS}
            for s in res["steps"]
            if s.get("status") == "ok" and s.get("n") and s.get("seconds")
        ]
    # the format before steps were recorded: method rows, prepare children, ingest child
    pts: list[dict[str, Any]] = []
    for k, d in (res.get("data") or {}).items():
        c = d.get("child") or {}
        if c.get("seconds"):
            pts.append(
                {
                    "kind": "prepare",
                    "n": d.get("registrations", int(k)),
                    "seconds": c["seconds"],
                    "peak_rss_mib": c.get("peak_rss_mib"),
                }
            )
    for r in res.get("runs") or []:
        if r.get("status") != "ok" or r.get("method") == "recordlinkage_ecm":
            continue
        n = r.get("registrations", r["size"])
        files = 2 if r["method"] == "recordlinkage" else 1
        pts.append(
            {
                "kind": r["method"],
                "n": n,
                "seconds": r["child_seconds"] + files * EVAL_SECONDS_PER_REGISTRATION * n,
                "peak_rss_mib": r.get("peak_rss_mib"),
                "candidate_pairs": r.get("candidate_pairs"),
                "stages": r.get("stages"),
                "blocking": r.get("blocking"),
            }
        )
    ing = (res.get("ingest") or {}).get("child") or {}
    if ing.get("ok"):
        rows = (res.get("args") or {}).get("ingest_rows", 1_000_000)
        pts.append(
            {
                "kind": "ingest",
                "n": rows,
                "seconds": ing["seconds"],
                "peak_rss_mib": ing["peak_rss_mib"],
            }
        )
    return pts


def _near(pts: list[dict[str, Any]], n: float) -> dict[str, Any]:
    """The measured point closest to ``n`` on a log scale."""
    return min(pts, key=lambda p: abs(math.log(max(p["n"], 1) / max(n, 1))))


def _slope(pts: list[dict[str, Any]], key: str) -> float:
    """Marginal cost of ``key`` per registration (least squares; one point: the ratio)."""
    return scaling.fit_linear([float(p["n"]) for p in pts], [float(p[key] or 0) for p in pts])[1]


class CostModel:
    """Predicts a step's wall time and peak RSS from measured steps of the same kind.

    Points measured in *this* run win over the previous run's, which win over
    :data:`FALLBACK_POINTS`: the same machine under the same load is the
    better guide.  Scaling from the nearest measured size: linear in N
    (``prepare``, ``crosscheck``, ``splink_docs_count``, ``spark``,
    ``ingest``); voterolls as record-stage cost x N + pair-stage cost x
    candidate pairs, with the pairs from the comparisons-per-record curve
    (``bench/scaling.py``: power law, bounded by the blocking caps); the
    Splink docs example in proportion to its (counted) candidate pairs; the
    recordlinkage guide (block on first name: pairs ~ N^2) as N^2.  Peak
    memory scales linearly too, except Spark's: its heap is bounded by
    ``--spark-driver-memory``, so the largest measured peak is the prediction.
    """

    def __init__(self, history: list[dict[str, Any]]) -> None:
        self.history = history
        self.fallback = FALLBACK_POINTS
        self.current: list[dict[str, Any]] = []
        self.splink_docs_counts: dict[int, int] = {}
        self.paces: list[float] = []

    def observe(self, point: dict[str, Any]) -> None:
        self.current.append(point)

    def points(self, kind: str) -> list[dict[str, Any]]:
        """Measured points of ``kind``, one per size: this run's, else the previous run's, else fallback."""
        chosen: list[dict[str, Any]] = []
        for source, pts in (
            ("this run", self.current),
            ("previous run", self.history),
            ("fallback figures", self.fallback),
        ):
            for p in pts:
                if p.get("kind") != kind or not p.get("n") or not p.get("seconds"):
                    continue
                if any(abs(q["n"] - p["n"]) <= 0.02 * p["n"] for q in chosen):
                    continue
                chosen.append(p | {"source": source})
        return sorted(chosen, key=lambda p: p["n"])

    def _linear(self, pts: list[dict[str, Any]], n: int, key: str) -> float:
        near = _near(pts, n)
        return max(
            0.5 * float(near[key] or 0), float(near[key] or 0) + _slope(pts, key) * (n - near["n"])
        )

    def voterolls_pairs(self, n: int) -> float:
        pts = [p for p in self.points("voterolls") if p.get("candidate_pairs")]
        if not pts:
            return 3.0 * n
        exact = next((p for p in pts if abs(p["n"] - n) <= 0.01 * n), None)
        if exact:
            return float(exact["candidate_pairs"])
        fit = scaling.fit_power([p["n"] for p in pts], [p["candidate_pairs"] / p["n"] for p in pts])
        big = pts[-1]
        cpr = fit[0] * n ** fit[1] if fit else big["candidate_pairs"] / big["n"] * n / big["n"]
        if n > big["n"]:
            bound = scaling.cpr_bound(big, n)
            if bound is not None:
                cpr = min(cpr, bound)
        return cpr * n

    def pace(self) -> float:
        """This run's speed against the stored figures: median of measured / predicted seconds.

        Steps predicted from this run's own points already carry today's load;
        the others (from the previous run or the fallback figures) are scaled by
        this, clamped to [0.5, 4], so a busy machine's budget is not planned
        with a quiet machine's times.
        """
        if not self.paces:
            return 1.0
        xs = sorted(self.paces)
        return min(4.0, max(0.5, xs[len(xs) // 2]))

    def predict(self, step: Step) -> Prediction:
        p = self._predict(step)
        f = self.pace()
        if p.basis.startswith("this run") or abs(f - 1.0) < 0.05:
            return p
        return Prediction(
            p.seconds * f,
            p.peak_rss_mib,
            p.basis + f", x{f:.2f} (this run's pace)",
            p.candidate_pairs,
        )

    def _predict(self, step: Step) -> Prediction:
        kind, n = step.kind, step.size
        pts = self.points(kind)
        if not pts:
            return Prediction(60.0, 1000.0, "no measurement: assumed 60 s")
        near = _near(pts, n)
        mem = self._linear(pts, n, "peak_rss_mib")
        if kind == "spark":
            # the local JVM's heap is bounded by --spark-driver-memory: Spark spills beyond it
            # rather than grow, so its peak does not scale with N; the largest measured one
            mem = max(float(p["peak_rss_mib"] or 0) for p in pts)
        basis = f"{near['source']} at {near['n']:,}"
        pts_st = [p for p in pts if p.get("stages") and p.get("candidate_pairs")]
        if kind == "voterolls" and pts_st:
            pts, near = pts_st, _near(pts_st, n)
            basis = f"{near['source']} at {near['n']:,}"
            rates = scaling._rates(
                [
                    {
                        "registrations": p["n"],
                        "candidate_pairs": p["candidate_pairs"] or 1,
                        "stages": p["stages"],
                    }
                    for p in pts
                ],
                1.0,
            )
            pairs = self.voterolls_pairs(n)
            secs = (
                near["seconds"]
                + rates["alpha"] * (n - near["n"])
                + rates["beta"] * (pairs - (near["candidate_pairs"] or 0))
            )
            return Prediction(
                max(0.5 * pts[0]["seconds"], secs),
                mem,
                basis + f", {pairs / n:.2f} comparisons / record",
                pairs,
            )
        if kind == "splink_docs":
            ref = max(pts, key=lambda p: p["n"])
            pairs = self.splink_docs_counts.get(n)
            if pairs is None:
                pairs = (ref.get("candidate_pairs") or ref["n"]) * (n / ref["n"]) ** 2
                basis += ", pairs ~ N^2"
            else:
                basis += ", counted pairs"
            ratio = pairs / max(1, ref.get("candidate_pairs") or 1)
            # training and start-up do not shrink with the pairs: half the measured time as a floor
            secs = max(0.5 * ref["seconds"], ref["seconds"] * ratio)
            return Prediction(secs, ref["peak_rss_mib"] * max(1.0, ratio), basis, pairs)
        if kind == "recordlinkage":
            ratio = (n / near["n"]) ** 2
            return Prediction(
                max(0.5 * near["seconds"], near["seconds"] * ratio),
                near["peak_rss_mib"] * max(0.5, ratio),
                basis + ", ~ N^2",
            )
        return Prediction(self._linear(pts, n, "seconds"), mem, basis + ", linear in N")


def dependency_block(step: Step, steps: list[Step]) -> str | None:
    """Why ``step`` cannot run because a step it needs did not succeed (None: it can)."""
    if step.kind in ("prepare", "ingest"):
        return None
    prep = next((s for s in steps if s.kind == "prepare" and s.size == step.size), None)
    if prep is not None and prep.status != "ok":
        return f"not run: needs prepare {size_label(step.size)} ({prep.status.split(':')[0]})"
    if step.kind == "spark":
        vr = next((s for s in steps if s.kind == "voterolls" and s.size == step.size), None)
        if vr is None or vr.status != "ok":
            return "not run: needs the model voterolls (DuckDB) trained at this size"
    if step.kind == "splink_docs":
        cnt = next(
            (s for s in steps if s.kind == "splink_docs_count" and s.size == step.size), None
        )
        if cnt is None or cnt.status != "ok":
            return "not run: its candidate pairs were not counted"
    return None


def expected_seconds(step: Step, model: CostModel, splink_docs_max_pairs: float) -> float:
    """Predicted seconds of a pending step, 0 for one that will not run (its pairs over the cap)."""
    pred = model.predict(step)
    if step.kind == "splink_docs" and (pred.candidate_pairs or 0) > splink_docs_max_pairs:
        return 0.0
    return pred.seconds


def budget_decision(
    i: int,
    steps: list[Step],
    model: CostModel,
    *,
    elapsed: float,
    budget_s: float,
    hard_s: float,
    memory_cap_mib: float,
    splink_docs_max_pairs: float,
) -> tuple[str | None, Prediction]:
    """(skip reason or None, prediction) for ``steps[i]`` at ``elapsed`` seconds into the run."""
    step = steps[i]
    pred = model.predict(step)
    if step.kind == "splink_docs" and (pred.candidate_pairs or 0) > splink_docs_max_pairs:
        return (
            f"not run: {pred.candidate_pairs:,.0f} candidate pairs (> --splink-docs-max-pairs "
            f"{splink_docs_max_pairs:,.0f}), projected {pred.seconds:,.0f} s",
            pred,
        )
    pending = [s for s in steps[i + 1 :] if s.status == "pending" and s.skip_reason is None]
    required_left = sum(
        expected_seconds(s, model, splink_docs_max_pairs) for s in pending if s.required
    )
    if not step.required:
        group_left = sum(
            expected_seconds(s, model, splink_docs_max_pairs)
            for s in pending
            if s.group == step.group and not s.required
        )
        end = elapsed + pred.seconds + group_left + required_left
        group_peak = max(
            [pred.peak_rss_mib]
            + [
                model.predict(s).peak_rss_mib
                for s in pending
                if s.group == step.group and expected_seconds(s, model, splink_docs_max_pairs) > 0
            ]
        )
        why = []
        if end > budget_s:
            why.append(
                f"projected {pred.seconds + group_left:,.0f} s for this and the rest of "
                f"'{step.group}' would end the run at {end / 60:.1f} min (> --budget-minutes "
                f"{budget_s / 60:g})"
            )
        if group_peak > memory_cap_mib:
            why.append(
                f"projected peak RSS {group_peak:,.0f} MiB in '{step.group}' > "
                f"{memory_cap_mib:,.0f} MiB (--memory-fraction of RAM)"
            )
        if why:
            return "skipped: " + "; ".join(why), pred
    if pred.peak_rss_mib > memory_cap_mib:
        return (
            f"skipped: projected peak RSS {pred.peak_rss_mib:,.0f} MiB > {memory_cap_mib:,.0f} MiB "
            "(--memory-fraction of RAM)",
            pred,
        )
    left = hard_s - elapsed - FINAL_RESERVE_S
    if left < 30 or pred.seconds > 1.5 * left:
        return (
            f"skipped: projected {pred.seconds:,.0f} s, {max(0.0, left):,.0f} s left before "
            f"--hard-limit-minutes {hard_s / 60:g}",
            pred,
        )
    return None, pred


def simulate(steps: list[Step], model: CostModel, args: argparse.Namespace) -> list[dict[str, Any]]:
    """Walk the plan with predicted times only (``--plan``; the tests): what would run, when."""
    elapsed, rows = 0.0, []
    cap = memory_cap_mib(args)
    for i, step in enumerate(steps):
        reason = step.skip_reason or dependency_block(step, steps)
        pred: Prediction | None = None
        if reason is None:
            reason, pred = budget_decision(
                i,
                steps,
                model,
                elapsed=elapsed,
                budget_s=args.budget_minutes * 60,
                hard_s=args.hard_limit_minutes * 60,
                memory_cap_mib=cap,
                splink_docs_max_pairs=args.splink_docs_max_pairs,
            )
        if reason is None and pred is not None:
            step.status = "ok"
            elapsed += pred.seconds
        else:
            step.status = str(reason)
        rows.append(
            {
                "step": step.name,
                "required": step.required,
                "predicted_seconds": round(pred.seconds, 1) if pred else None,
                "predicted_peak_rss_mib": round(pred.peak_rss_mib) if pred else None,
                "basis": pred.basis if pred else "-",
                "status": "run" if reason is None else reason,
                "cumulative_minutes": round(elapsed / 60, 1),
            }
        )
    return rows


def memory_cap_mib(args: argparse.Namespace) -> float:
    return args.memory_fraction * psutil.virtual_memory().total / 2**20


# ---------------------------------------------------------------------------
# running the plan
# ---------------------------------------------------------------------------


class Runner:
    """Carries the plan, the budget, the work directory and the results of one ``run_all``."""

    def __init__(self, args: argparse.Namespace, model: CostModel) -> None:
        self.args = args
        self.model = model
        self.t0 = time.monotonic()
        self.work = Path(args.work) if args.work else Path(tempfile.mkdtemp(prefix="vr-bench-all-"))
        self.work.mkdir(parents=True, exist_ok=True)
        self.steps = build_plan(args)
        self.runs: list[dict[str, Any]] = []
        self.data: dict[int, dict[str, Any]] = {}
        self.ingest: dict[str, Any] | None = None

    def elapsed(self) -> float:
        return time.monotonic() - self.t0

    @property
    def skipped(self) -> list[str]:
        return [f"{s.name}: {s.status}" for s in self.steps if s.status not in ("ok", "pending")]

    # -- the loop ---------------------------------------------------------------
    def run(self) -> None:
        cap = memory_cap_mib(self.args)
        for i, step in enumerate(self.steps):
            reason = step.skip_reason or dependency_block(step, self.steps)
            pred = None
            if reason is None:
                reason, pred = budget_decision(
                    i,
                    self.steps,
                    self.model,
                    elapsed=self.elapsed(),
                    budget_s=self.args.budget_minutes * 60,
                    hard_s=self.args.hard_limit_minutes * 60,
                    memory_cap_mib=cap,
                    splink_docs_max_pairs=self.args.splink_docs_max_pairs,
                )
            step.record = {
                "step": step.name,
                "kind": step.kind,
                "size": step.size,
                "required": step.required,
                "predicted_seconds": round(pred.seconds, 1) if pred else None,
                "predicted_peak_rss_mib": round(pred.peak_rss_mib) if pred else None,
                "prediction_basis": pred.basis if pred else None,
                "started_minute": round(self.elapsed() / 60, 2),
            }
            if reason is not None:
                self.skip(step, reason, pred)
            else:
                self.execute(step)
            self.cleanup()

    def skip(self, step: Step, reason: str, pred: Prediction | None) -> None:
        step.status = reason
        step.record["status"] = reason
        print(f"- {step.name}: {reason}", flush=True)
        if step.kind in METHOD_KINDS:
            row = self._record(step.size, step.kind, reason)
            if step.kind == "splink_docs":
                cnt = self.model.splink_docs_counts.get(step.size)
                n = self.data.get(step.size, {}).get("registrations")
                if cnt is not None and n:
                    row.update(
                        registrations=n,
                        candidate_pairs=cnt,
                        comparisons_per_record=round(cnt / n, 3),
                    )
                if pred is not None and "candidate pairs" in reason:
                    row["projected_seconds"] = round(pred.seconds, 0)
                    row["projection_basis"] = pred.basis

    def execute(self, step: Step) -> None:
        label = (
            f"{step.name} ({'required' if step.required else 'optional'}; predicted "
            f"{step.record['predicted_seconds']:,.0f} s, {step.record['predicted_peak_rss_mib']:,} MiB; "
            f"load {load_avg()[0]})"
        )
        print(f"- {label}", flush=True)
        step.record["load_start"] = load_avg()
        step.record["available_gib_start"] = round(psutil.virtual_memory().available / 2**30, 1)
        t = time.monotonic()
        try:
            res, point = {
                "prepare": self.do_prepare,
                "splink_docs_count": self.do_count,
                "ingest": self.do_ingest,
            }.get(step.kind, self.do_method)(step)
        except Exception as exc:  # noqa: BLE001 - one broken step must not lose the run
            step.status = step.record["status"] = f"error: {type(exc).__name__}: {str(exc)[:300]}"
            step.record["seconds"] = round(time.monotonic() - t, 2)
            step.record["load_end"] = load_avg()
            print(f"  ! {step.name}: {step.status}", flush=True)
            if step.kind in METHOD_KINDS and not any(
                r["size"] == step.size and r["method"] == step.kind for r in self.runs
            ):
                self._record(step.size, step.kind, step.status)
            return
        step.record["seconds"] = round(time.monotonic() - t, 2)
        step.record["load_end"] = load_avg()
        step.record["child"] = res.as_dict()
        if point is None:
            why = "timed out" if res.timed_out else f"failed (exit {res.returncode})"
            step.status = step.record["status"] = why
            step.record["stderr_tail"] = res.stderr_tail[-1500:]
            if step.kind in METHOD_KINDS:
                self._record(step.size, step.kind, why, child=res)
            print(f"  ! {step.name} {why}", flush=True)
            return
        step.status = step.record["status"] = "ok"
        point = {
            "kind": step.kind,
            "seconds": step.record["seconds"],
            "peak_rss_mib": res.peak_rss_mib,
        } | point
        step.record.update(
            {k: v for k, v in point.items() if k not in ("kind", "seconds", "peak_rss_mib")}
        )
        step.record["peak_rss_mib"] = res.peak_rss_mib
        basis = step.record.get("prediction_basis") or ""
        if step.record.get("predicted_seconds") and not basis.startswith("this run"):
            # measured / predicted without the pace factor already applied
            raw = self.model._predict(step).seconds
            if raw >= 5:  # a few seconds of start-up noise would swamp shorter steps
                self.model.paces.append(step.record["seconds"] / raw)
        self.model.observe(point)
        print(
            f"  {step.name}: {step.record['seconds']:,.1f} s (predicted "
            f"{step.record['predicted_seconds']:,.0f}), peak {res.peak_rss_mib:,.0f} MiB, "
            f"load {step.record['load_start'][0]} -> {step.record['load_end'][0]}",
            flush=True,
        )

    def timeout(self) -> float:
        left = self.args.hard_limit_minutes * 60 - self.elapsed() - FINAL_RESERVE_S
        return max(30.0, min(self.args.step_timeout, left))

    def child(self, argv: list[str]) -> ChildResult:
        return run_child([PYTHON, *argv], timeout=self.timeout())

    # -- steps ----------------------------------------------------------------
    def data_dir(self, size: int) -> Path:
        return self.work / f"data_{size}"

    def do_prepare(self, step: Step) -> tuple[ChildResult, dict[str, Any] | None]:
        d = self.data_dir(step.size)
        res = self.child(
            [
                str(BENCH / "peers.py"),
                "prepare",
                "--registrations",
                str(step.size),
                "--seed",
                str(self.args.seed),
                "--out",
                str(d),
            ]
        )
        info = last_json(res.stdout) if res.ok else None
        if info is None:
            return res, None
        info["child"] = res.as_dict()
        info["parquet_bytes"] = (d / "registrations.parquet").stat().st_size
        self.data[step.size] = info
        return res, {"n": info["registrations"]}

    def do_count(self, step: Step) -> tuple[ChildResult, dict[str, Any] | None]:
        res = self.child(
            [
                str(BENCH / "peers.py"),
                "count",
                "splink_docs",
                "--data",
                str(self.data_dir(step.size)),
            ]
        )
        rep = last_json(res.stdout) if res.ok else None
        if rep is None:
            return res, None
        self.model.splink_docs_counts[step.size] = rep["candidate_pairs"]
        return res, {"n": rep["registrations"], "candidate_pairs": rep["candidate_pairs"]}

    def do_ingest(self, step: Step) -> tuple[ChildResult, dict[str, Any] | None]:
        argv = [str(BENCH / "ingest.py"), "--rows", str(step.size)]
        if self.args.no_docs:
            argv.append("--no-docs")
        res = self.child(argv)
        self.ingest = {
            "child": res.as_dict(),
            "result": read_json(RESULTS / "ingest.json") if res.ok else None,
        }
        return res, ({"n": step.size} if res.ok else None)

    def do_method(self, step: Step) -> tuple[ChildResult, dict[str, Any] | None]:
        size, method, data = step.size, step.kind, self.data_dir(step.size)
        out = self.work / f"out_{size}" / method
        if method == "spark":
            vr = self.voterolls_row(size)
            argv = [str(BENCH / "spark.py"), "--data", str(data), "--out", str(out)]
            argv += ["--model", str(vr["model"])] if vr else []
            argv += ["--driver-memory", self.args.spark_driver_memory]
        else:
            argv = [str(BENCH / "peers.py"), "run", method, "--data", str(data), "--out", str(out)]
            if self.args.threads:
                argv += ["--threads", str(self.args.threads)]
        res = self.child(argv)
        rep = last_json(res.stdout) if res.ok else None
        if rep is None:
            return res, None
        t_eval = time.monotonic()
        for name, (path, threshold) in rep["pairs"].items():
            ev = evaluate_pairs(data, Path(path), threshold)
            row = self._record(size, name, "ok", child=res, report=rep, evaluation=ev)
            if name == "recordlinkage_ecm":
                row["seconds"] = rep.get("seconds_ecm_variant", rep["seconds"])
            if name == "voterolls":
                row["model"] = rep.get("model")
                row["pairs_file"] = path
            if name == "spark":
                for k in ("driver_memory", "shuffle_partitions"):
                    row[k] = rep.get(k)
                vr = self.voterolls_row(size)
                if vr and vr.get("pairs_file"):
                    row["pair_agreement"] = pair_agreement(
                        Path(vr["pairs_file"]),
                        Path(path),
                        threshold,
                        data / "registrations.parquet",
                    )
        step.record["evaluate_seconds"] = round(time.monotonic() - t_eval, 2)
        print(
            "  "
            + ", ".join(
                f"{r['method']}: {r['seconds']} s, {r['peak_rss_mib']:.0f} MiB, F1 {r.get('f1')}"
                for r in self.runs
                if r["size"] == size and r["method"] in rep["pairs"]
            ),
            flush=True,
        )
        return res, {
            "n": rep.get("registrations"),
            "candidate_pairs": rep.get("candidate_pairs"),
            "stages": rep.get("stages") if method == "voterolls" else None,
            "blocking": rep.get("blocking") if method == "voterolls" else None,
        }

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

    def cleanup(self) -> None:
        """Delete a size's data and outputs once no pending step needs them."""
        if self.args.keep:
            return
        for size in list({s.size for s in self.steps if s.kind == "prepare"}):
            if any(
                s.size == size and s.status == "pending" and s.kind != "ingest" for s in self.steps
            ):
                continue
            shutil.rmtree(self.data_dir(size), ignore_errors=True)
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
        if not any(r["status"] == "ok" for r in rows_here):
            why = sorted({r["status"] for r in rows_here})
            parts.append(
                f"**N ≈ {size_label(size)} registrations**: not measured - " + "; ".join(why)
            )
            parts.append("")
            continue
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


def _agreement(a: dict[str, Any] | None) -> str:
    """Pairs at the threshold in both engines / DuckDB's only / Spark's only (Jaccard)."""
    if not a:
        return "-"
    t = a["at_threshold"]
    return f"{t['both']:,} / {t['duckdb_only']:,} / {t['spark_only']:,} ({t['jaccard']:.4f})"


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
                _agreement(sp.get("pair_agreement")) if ok else "-",
                f"{sp.get('driver_memory') or '-'} / {sp.get('shuffle_partitions') or '-'}",
                fmt(sp.get("load_before")),
            ]
        )
    if not rows:
        return "Spark was not run."
    return (
        spark_notes(runs)
        + "\n\n"
        + md_table(
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
                "links in both / DuckDB only / Spark only (Jaccard)",
                "driver memory / shuffle partitions",
                "load avg",
            ],
            rows,
        )
    )


def header(res: dict[str, Any]) -> str:
    m = res["machine_start"]
    return (
        f"Measured {res['when']} - {res['finished']} UTC with `{res['command']}` "
        f"({m['platform']}, {m['cpus']} cores, {m['ram_gib']} GiB RAM; load average at start "
        f"{m['load_avg_1_5_15'][0]} / {m['load_avg_1_5_15'][1]} / {m['load_avg_1_5_15'][2]} (1/5/15 min), "
        f"at the end {res['machine_end']['load_avg_1_5_15'][0]}; "
        + (f"whole run {res['total_minutes']:.1f} min; " if res.get("total_minutes") else "")
        + "one run, not repeated"
        + ('; each step\'s load is in "Benchmark run" below).' if res.get("steps") else ").")
    )


def spark_notes(runs: list[dict[str, Any]]) -> str:
    """Where Spark's time goes, stage by stage beside DuckDB's, from this run's reports."""
    lines = [
        "Spark `local[2]` scores with the model DuckDB trained on the same registrations "
        "(`bench/spark.py --model`), so its F1 must equal DuckDB's; the DuckDB column is the "
        "same stages (total minus training and blocking analysis).  Stage seconds (wall):",
        "",
    ]
    for sp in [r for r in runs if r["method"] == "spark" and r["status"] == "ok"]:
        vr = next(
            (
                r
                for r in runs
                if r["size"] == sp["size"] and r["method"] == "voterolls" and r["status"] == "ok"
            ),
            None,
        )
        st = {k: v for k, v in (sp.get("stages") or {}).items() if k != "total"}
        dst = (vr or {}).get("stages") or {}
        lines.append(
            f"* {sp['registrations']:,}: "
            + ", ".join(
                f"{k} {v:.1f}" + (f" (DuckDB {dst[k]:.1f})" if k in dst else "")
                for k, v in st.items()
            )
        )
    ratios = []
    for sp in [r for r in runs if r["method"] == "spark" and r["status"] == "ok"]:
        st = next(
            (
                r.get("stages") or {}
                for r in runs
                if r["size"] == sp["size"] and r["method"] == "voterolls" and r["status"] == "ok"
            ),
            None,
        )
        if st:
            duck = st.get("total", 0) - st.get("train", 0) - st.get("blocking_analysis", 0)
            if duck > 0:
                ratios.append(sp["seconds"] / duck)
    span = (
        (f"{min(ratios):.1f}x" if len(ratios) == 1 else f"{min(ratios):.1f}x-{max(ratios):.1f}x")
        if ratios
        else ""
    )
    if ratios and min(ratios) > 1:
        verdict = (
            "DuckDB on the same 2 cores is faster at every size measured here "
            f"(Spark took {span} as long)"
        )
    elif ratios:
        verdict = f"Spark took {span} DuckDB's time on the same 2 cores"
    else:
        verdict = "no Spark run to compare in this run"
    lines += [
        "",
        "What a cluster changes (docs/SCALE.md): in local mode one JVM on 2 cores is driver and "
        "executor at once, so Spark's fixed costs (JVM start, query planning, a job per "
        "stage, Parquet between stages to break lineage) are paid without any parallelism to "
        f"amortise them; {verdict}.  On a cluster the pair-bound stages (predict, clusters) spread "
        "over the executors' cores and memory, the input is read in splits from shared "
        "storage, and no single machine has to hold the national input or its pairs; the "
        "fixed costs stay, so Spark pays off only where one machine cannot do the job "
        "(the one-machine projection in the Scaling section).",
    ]
    return "\n".join(lines)


def steps_table(steps: list[dict[str, Any]]) -> str:
    """Every step of the run with its time, prediction, memory, load and status."""
    if not steps:
        return "This results file predates per-step records (the tables above list its runs)."
    rows = []
    for s in steps:
        ls, le = s.get("load_start"), s.get("load_end")
        rows.append(
            [
                s["step"],
                "required" if s["required"] else "optional",
                s["status"] if s["status"] == "ok" else s["status"][:160],
                fmt(s.get("seconds")),
                fmt(s.get("predicted_seconds"), 0),
                fmt(s.get("peak_rss_mib"), 0),
                "/".join(f"{x:g}" for x in ls) if ls else "-",
                "/".join(f"{x:g}" for x in le) if le else "-",
                fmt(s.get("started_minute"), 1),
            ]
        )
    return md_table(
        [
            "step",
            "",
            "status",
            "seconds",
            "predicted s",
            "peak RSS MiB",
            "load at start (1/5/15 min)",
            "load at end",
            "started at min",
        ],
        rows,
        align="lllrrrllr",
    )


def write_docs(res: dict[str, Any]) -> None:
    head = header(res)
    skipped = "\n".join(f"* {s}" for s in res.get("skipped") or []) or "* none"
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
            'Steps not run (with the reason; every step is listed under "Benchmark run"):\n\n'
            + skipped,
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
        "steps",
        "\n\n".join(
            [
                head,
                "Every step of the run, in order: wall seconds (the child process plus scoring "
                "its pairs), the time predicted before it started (`bench/run_all.py`, "
                "CostModel), peak RSS of its process tree, and the machine's load average "
                "(`os.getloadavg`) at its start and end.  A step run while the load was well "
                "above 2 (two cores) shared the machine with other work: its time is an upper "
                "bound.",
                steps_table(res.get("steps") or []),
            ]
        ),
        "Benchmark run (make bench)",
    )
    replace_doc_block(
        "scale-snapshot",
        scaling.snapshot_table(res),
        "Measured here versus projected",
        doc=SCALE_DOC,
    )


# ---------------------------------------------------------------------------
# main
# ---------------------------------------------------------------------------


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument(
        "--sizes", default="100000,1000000,5000000", help="comparison sizes (required steps)"
    )
    ap.add_argument(
        "--scaling-sizes", default="20000,300000", help="extra voterolls-only sizes (optional)"
    )
    ap.add_argument(
        "--spark-sizes",
        default="1000000,5000000",
        help="Spark sizes (required; 5M is the national job's test size, prepare included)",
    )
    ap.add_argument(
        "--optional-spark-sizes",
        default="100000",
        help="Spark sizes (optional: a third point for the marginal rates)",
    )
    ap.add_argument(
        "--spark-driver-memory",
        default="6g",
        help="spark.driver.memory of the Spark steps: bounds the local JVM's heap at every size",
    )
    ap.add_argument(
        "--optional-sizes", default="10000000", help="comparison sizes run only if they fit"
    )
    ap.add_argument("--recordlinkage-max", type=int, default=100_000)
    ap.add_argument("--splink-docs-max-pairs", type=float, default=6e7)
    ap.add_argument("--ingest-rows", type=int, default=1_000_000)
    ap.add_argument("--no-ingest", action="store_true")
    ap.add_argument(
        "--budget-minutes",
        type=float,
        default=45,
        help="optional steps start only if the projected run fits in this",
    )
    ap.add_argument(
        "--hard-limit-minutes",
        type=float,
        default=57,
        help="no step may run past this (required ones included): `make bench` < 60 min",
    )
    ap.add_argument(
        "--memory-fraction", type=float, default=0.85, help="of RAM, for projected peaks"
    )
    ap.add_argument("--step-timeout", type=float, default=1800, help="seconds per step")
    ap.add_argument("--seed", type=int, default=7)
    ap.add_argument("--threads", type=int, default=None, help="DuckDB threads (default: all)")
    ap.add_argument("--work", default=None, help="work directory (default: a temporary one)")
    ap.add_argument("--keep", action="store_true", help="keep generated data and outputs")
    ap.add_argument("--no-docs", action="store_true", help="do not rewrite docs/*.md")
    ap.add_argument("--results", type=Path, default=RESULTS)
    ap.add_argument(
        "--history",
        type=Path,
        default=RESULTS / "run_all.json",
        help="earlier run whose step times seed the predictions",
    )
    ap.add_argument(
        "--plan", action="store_true", help="print the plan and predictions, run nothing"
    )
    return ap.parse_args(argv)


def print_plan(args: argparse.Namespace, model: CostModel) -> float:
    """The plan as a Markdown table: each step's prediction, its basis and the budget's decision."""
    rows = simulate(build_plan(args), model, args)
    print(
        f"bench/run_all.py plan: budget {args.budget_minutes:g} min for optional steps, hard limit "
        f"{args.hard_limit_minutes:g} min, memory cap {memory_cap_mib(args):,.0f} MiB\n"
    )
    print(
        md_table(
            ["step", "", "predicted s", "peak MiB", "basis", "decision", "cum. min"],
            [
                [
                    r["step"],
                    "required" if r["required"] else "optional",
                    fmt(r["predicted_seconds"], 0),
                    fmt(r["predicted_peak_rss_mib"]),
                    r["basis"],
                    r["status"],
                    r["cumulative_minutes"],
                ]
                for r in rows
            ],
            align="llrrllr",
        )
    )
    total = rows[-1]["cumulative_minutes"] if rows else 0.0
    print(f"\npredicted total: {total:.1f} min of steps (scoring output, plot, docs: ~1 min more)")
    return total


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    model = CostModel(history_points(read_json(args.history)))
    if args.plan:
        print_plan(args, model)
        return 0
    given = sys.argv[1:] if argv is None else argv
    command = " ".join([".venv/bin/python bench/run_all.py", *given])
    run = Runner(args, model)
    res: dict[str, Any] = {
        "when": now_utc(),
        "command": command,
        "machine_start": machine(),
        "args": vars(args) | {"results": str(args.results), "history": str(args.history)},
    }
    print(
        f"bench: work dir {run.work}; budget {args.budget_minutes:g} min, hard limit "
        f"{args.hard_limit_minutes:g} min; load {res['machine_start']['load_avg_1_5_15']}",
        flush=True,
    )
    try:
        run.run()
    finally:
        if not args.keep:
            shutil.rmtree(run.work, ignore_errors=True)

    res["finished"] = now_utc()
    res["machine_end"] = machine()
    res["total_minutes"] = round(run.elapsed() / 60, 2)
    res["steps"] = [s.record for s in run.steps]
    res["runs"] = run.runs
    res["data"] = {str(k): v for k, v in run.data.items()}
    res["skipped"] = run.skipped
    res["ingest"] = run.ingest
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
        {
            "when": res["when"],
            "command": res["command"],
            "curve": scaling.curve(run.runs),
            "projection": res["projection"],
        },
    )
    write_json(
        out / "spark.json",
        {
            "when": res["when"],
            "runs": [r for r in run.runs if r["method"] in ("spark", "voterolls")],
        },
    )
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
        title="bench/run_all.py: methods",
    )
    print(scaling.projection_text(res["projection"]))
    if not args.no_docs:
        write_docs(res)
        print("updated docs/PERFORMANCE.md (Peers, Scaling, Spark, Benchmark run), docs/SCALE.md")
    print_table(
        ["step", "", "status", "s", "predicted s", "peak MiB", "load start", "load end"],
        [
            [
                s["step"],
                "req" if s["required"] else "opt",
                s["status"][:60],
                s.get("seconds", "-"),
                s.get("predicted_seconds", "-"),
                s.get("peak_rss_mib", "-"),
                "/".join(f"{x:g}" for x in s["load_start"]) if s.get("load_start") else "-",
                "/".join(f"{x:g}" for x in s["load_end"]) if s.get("load_end") else "-",
            ]
            for s in res["steps"]
        ],
        title=f"bench/run_all.py: every step ({res['total_minutes']:.1f} min in all)",
    )
    print(f"wrote {out}/run_all.json, peers.json, scaling.json, spark.json, scaling.png")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
