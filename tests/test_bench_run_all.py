"""bench/run_all.py: the plan, the predictions and the budget - without running a benchmark.

These tests never start a child process: they check that the default `make
bench` plan contains what issue #8 asks for (5M for voterolls and the
Crosscheck rule, Spark at 1M, recordlinkage at 100k only), that the budget
skips only optional steps and always says why, and that the predicted time of
the default plan stays under the hour.
"""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from bench import run_all  # noqa: E402

#: A small measured history in the results-file format (the 2026-11-24 17:56 run, rounded).
HISTORY = [
    {"kind": "prepare", "n": 100_000, "seconds": 4.0, "peak_rss_mib": 450},
    {"kind": "prepare", "n": 1_000_000, "seconds": 16.0, "peak_rss_mib": 1550},
    {
        "kind": "voterolls",
        "n": 100_000,
        "seconds": 12.0,
        "peak_rss_mib": 460,
        "candidate_pairs": 30_000,
        "stages": {"prepare": 2.0, "load": 0.6, "train": 5.8, "predict": 0.7, "cluster": 0.7},
    },
    {
        "kind": "voterolls",
        "n": 1_000_000,
        "seconds": 60.0,
        "peak_rss_mib": 3350,
        "candidate_pairs": 2_700_000,
        "stages": {"prepare": 19.7, "load": 1.8, "train": 8.6, "predict": 17.4, "cluster": 5.0},
    },
    {
        "kind": "splink_docs",
        "n": 100_000,
        "seconds": 16.0,
        "peak_rss_mib": 700,
        "candidate_pairs": 10_900_000,
    },
]


def args(*extra: str):
    return run_all.parse_args(["--history", "/nonexistent/run_all.json", *extra])


def names(steps):
    return [s.name for s in steps]


def test_default_plan_covers_the_issue():
    steps = run_all.build_plan(args())
    n = names(steps)
    for required in (
        "prepare 5M",
        "voterolls 5M",
        "crosscheck 5M",
        "splink_docs_count 5M",
        "spark 1M",
        "spark 5M",
        "recordlinkage 100k",
        "splink_docs 100k",
        "ingest 1M",
    ):
        assert required in n
        assert next(s for s in steps if s.name == required).required
    # one prepare per size: generated data is reused by every method at that size
    assert n.count("prepare 1M") == 1 and n.count("prepare 100k") == 1
    # recordlinkage above 100k is planned as not run, with the reason
    rl = next(s for s in steps if s.name == "recordlinkage 1M")
    assert rl.skip_reason and "--recordlinkage-max" in rl.skip_reason
    # optional steps come after every required one
    first_optional = next(i for i, s in enumerate(steps) if not s.required)
    assert all(not s.required for s in steps[first_optional:])
    assert {"voterolls 20k", "voterolls 300k", "spark 100k", "voterolls 10M"} <= set(
        names(steps[first_optional:])
    )
    # Spark right after its size's block (its data and model still there), ingest before 5M
    assert n.index("spark 1M") < n.index("prepare 5M")
    assert n.index("voterolls 5M") < n.index("spark 5M") < n.index("prepare 20k")
    assert n.index("ingest 1M") < n.index("prepare 5M")


def test_default_plan_predicted_under_the_hour(monkeypatch):
    """With the figures stored in the code, the default plan runs its required steps well inside 60 min."""
    # the benchmark machine: 24 GiB (the cap is a fraction of the RAM of whatever runs the test)
    monkeypatch.setattr(run_all, "memory_cap_mib", lambda a: a.memory_fraction * 24 * 1024)
    a = args()
    rows = run_all.simulate(run_all.build_plan(a), run_all.CostModel([]), a)
    total = rows[-1]["cumulative_minutes"]
    assert total <= a.budget_minutes < a.hard_limit_minutes < 60
    run = {r["step"]: r["status"] for r in rows}
    assert run["voterolls 5M"] == "run" and run["crosscheck 5M"] == "run"
    assert run["spark 1M"] == "run" and run["spark 5M"] == "run"
    assert (
        run["splink_docs 1M"].startswith("not run:") and "candidate pairs" in run["splink_docs 1M"]
    )
    # 10M does not fit this machine: skipped, and the reason says why
    assert run["prepare 10M"].startswith("skipped:")
    assert run["voterolls 10M"].startswith("not run: needs prepare 10M")


def test_spark_memory_is_bounded_by_the_driver_heap_not_linear_in_n():
    """Local Spark spills beyond spark.driver.memory: its predicted peak is the largest measured."""
    m = run_all.CostModel(
        [
            {"kind": "spark", "n": 100_000, "seconds": 50.0, "peak_rss_mib": 2_100},
            {"kind": "spark", "n": 1_000_000, "seconds": 140.0, "peak_rss_mib": 8_200},
        ]
    )
    pred = m.predict(run_all.Step("spark", 5_000_000, True, "spark 5M"))
    assert pred.peak_rss_mib == 8_200
    assert pred.seconds > 140.0  # time still grows with N


def test_budget_skips_optional_steps_only_and_says_why():
    a = args("--budget-minutes", "1", "--sizes", "100000,1000000", "--spark-sizes", "")
    rows = run_all.simulate(run_all.build_plan(a), run_all.CostModel(HISTORY), a)
    by = {r["step"]: r for r in rows}
    assert by["voterolls 1M"]["status"] == "run"  # required: the plan budget does not stop it
    for opt in ("prepare 20k", "prepare 300k"):
        assert by[opt]["required"] is False
    skipped = [r for r in rows if not r["required"] and r["status"] != "run"]
    assert skipped, "a 1-minute budget must skip optional steps"
    for r in skipped:
        assert r["status"].startswith(("skipped:", "not run:"))
        assert (
            "--budget-minutes" in r["status"]
            or "needs prepare" in r["status"]
            or ("--recordlinkage-max" in r["status"])
        )


def test_hard_limit_skips_a_required_step_it_cannot_finish():
    a = args("--hard-limit-minutes", "2", "--sizes", "1000000", "--spark-sizes", "")
    a.no_ingest = True
    rows = run_all.simulate(run_all.build_plan(a), run_all.CostModel(HISTORY), a)
    vr = next(r for r in rows if r["step"] == "voterolls 1M")
    assert vr["status"].startswith("skipped:") and "--hard-limit-minutes" in vr["status"]


def test_memory_cap_skips_with_reason():
    a = args("--memory-fraction", "0.00001", "--sizes", "100000", "--spark-sizes", "")
    rows = run_all.simulate(run_all.build_plan(a), run_all.CostModel(HISTORY), a)
    by = {r["step"]: r["status"] for r in rows}
    assert by["prepare 100k"].startswith("skipped:") and "peak RSS" in by["prepare 100k"]
    assert by["voterolls 100k"] == "not run: needs prepare 100k (skipped)"


def test_cost_model_prefers_this_run_and_scales_pairs():
    model = run_all.CostModel(HISTORY)
    step = run_all.Step("voterolls", 5_000_000, True, "size 5M")
    before = model.predict(step)
    assert "previous run" in before.basis
    # comparisons per record grow with N (power law over 100k and 1M), so pairs grow faster than N
    assert before.candidate_pairs > 5 * 2_700_000
    assert before.seconds > 5 * 30  # more than linear in the record stages alone
    model.observe({**HISTORY[3], "seconds": 120.0, "n": 1_000_000})  # this run: twice as slow
    after = model.predict(step)
    assert "this run" in after.basis and after.seconds > before.seconds
    # the Splink docs example is predicted from its counted pairs once they are known
    docs = run_all.Step("splink_docs", 1_000_000, True, "size 1M")
    model.splink_docs_counts[1_000_000] = 21_800_000
    assert model.predict(docs).seconds == pytest.approx(16.0 * 2, rel=0.01)


def test_pace_scales_stored_figures_but_not_this_runs_own():
    model = run_all.CostModel(HISTORY)
    step = run_all.Step("prepare", 1_000_000, True, "size 1M")
    quiet = model.predict(step).seconds
    model.paces = [2.0, 2.5, 3.0]  # this run is running 2.5x slower than the stored figures
    busy = model.predict(step)
    assert busy.seconds == pytest.approx(2.5 * quiet) and "pace" in busy.basis
    model.observe({"kind": "prepare", "n": 1_000_000, "seconds": 30.0, "peak_rss_mib": 1500})
    assert model.predict(step).seconds == pytest.approx(30.0)  # measured today: no factor


def test_history_points_reads_the_old_results_format():
    old = {
        "data": {
            "100000": {"registrations": 100_011, "child": {"seconds": 4.2, "peak_rss_mib": 453}}
        },
        "runs": [
            {
                "size": 100_000,
                "method": "voterolls",
                "status": "ok",
                "registrations": 100_011,
                "child_seconds": 11.6,
                "peak_rss_mib": 458,
                "candidate_pairs": 29_839,
                "stages": {"prepare": 2.0},
            },
            {"size": 1_000_000, "method": "splink_docs", "status": "not run: too many pairs"},
        ],
        "ingest": {"child": {"ok": True, "seconds": 27.8, "peak_rss_mib": 1512}},
        "args": {"ingest_rows": 1_000_000},
    }
    pts = run_all.history_points(old)
    kinds = sorted(p["kind"] for p in pts)
    assert kinds == ["ingest", "prepare", "voterolls"]
    vr = next(p for p in pts if p["kind"] == "voterolls")
    assert vr["seconds"] > 11.6  # scoring the pairs file is added


def test_runner_records_every_step(tmp_path, monkeypatch):
    """Run the loop with a stand-in executor: every step ends with a status; none is silent."""
    a = args(
        "--sizes",
        "20000",
        "--spark-sizes",
        "20000",
        "--scaling-sizes",
        "50000",
        "--optional-spark-sizes",
        "",
        "--optional-sizes",
        "",
        "--no-ingest",
        "--work",
        str(tmp_path),
    )
    runner = run_all.Runner(a, run_all.CostModel(HISTORY))

    def fake_execute(step):
        step.record["load_start"] = run_all.load_avg()
        if step.kind == "voterolls":
            step.status = step.record["status"] = "failed (exit 1)"  # spark must then say why
        else:
            step.status = step.record["status"] = "ok"

    monkeypatch.setattr(runner, "execute", fake_execute)
    runner.run()
    assert all(s.status != "pending" for s in runner.steps)
    spark = next(s for s in runner.steps if s.kind == "spark")
    assert spark.status.startswith("not run:") and "model" in spark.status
    assert any(r["method"] == "spark" and r["status"].startswith("not run") for r in runner.runs)
    assert any("spark 20k" in s for s in runner.skipped)
    for s in runner.steps:
        assert s.record["status"] == s.status and "predicted_seconds" in s.record


def test_write_docs_from_results(tmp_path, monkeypatch):
    """The generated blocks (including the list of steps) render from a results dict."""
    perf, scale = tmp_path / "PERFORMANCE.md", tmp_path / "SCALE.md"
    perf.write_text("# Performance\n\n## Ingest\n\nhand-written, kept\n")
    scale.write_text("# Scale\n")
    real = run_all.replace_doc_block

    def to_tmp(name, body, heading, doc=None):
        real(name, body, heading, doc=scale if doc is not None else perf)

    monkeypatch.setattr(run_all, "replace_doc_block", to_tmp)
    m = {"platform": "x86_64", "cpus": 2, "ram_gib": 23.5, "load_avg_1_5_15": [0.5, 0.6, 0.7]}
    res = {
        "when": "2026-11-24T20:00:00+00:00",
        "finished": "2026-11-24T20:30:00+00:00",
        "command": ".venv/bin/python bench/run_all.py",
        "machine_start": m,
        "machine_end": m,
        "total_minutes": 30.0,
        "runs": [],
        "data": {},
        "skipped": ["splink_docs 5M: not run: 27,666,343,800 candidate pairs"],
        "steps": [
            {
                "step": "prepare 5M",
                "required": True,
                "status": "ok",
                "seconds": 120.0,
                "predicted_seconds": 160.0,
                "peak_rss_mib": 5100,
                "load_start": [1.0, 1.1, 1.2],
                "load_end": [2.0, 1.5, 1.3],
                "started_minute": 10.0,
            }
        ],
        "projection": None,
    }
    run_all.write_docs(res)
    text = perf.read_text()
    assert "hand-written, kept" in text
    assert "<!-- bench/run_all.py:steps:begin -->" in text and "prepare 5M" in text
    assert "1/1.1/1.2" in text and "27,666,343,800" in text
    assert "bench/run_all.py:scale-snapshot:begin" in scale.read_text()
    assert "Conditions: 1-minute load average between 1 and 2" in scale.read_text()
