"""One linkage run: prepare -> (train) -> predict -> prior -> pairs, clusters, model, report.

:func:`link_registrations` is what ``voterolls link`` and the benchmark call.
It reads a ``registrations`` relation from a DuckDB connection (the
workspace's, or a test's) and writes into ``out_dir``::

    model.json          the trained Splink model (or the one given with --model,
                        with the prior re-estimated on this data)
    pairs.parquet       scored candidate pairs (contract columns)
    clusters.parquet    state, state_voter_id, cluster_id
    link_report.json    counts, timings, blocking analysis, training summary

Only counts, timings and parameters are logged or reported - never a name,
date of birth or address.
"""

from __future__ import annotations

import json
import logging
import shutil
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import duckdb
from splink import Linker

from voterolls.errors import UserError
from voterolls.link.blocking import DEFAULT_BLOCK_CAP, blocking_report
from voterolls.link.calibration import recalibrate_predictions
from voterolls.link.cluster import export_clusters
from voterolls.link.comparisons import is_joint_model
from voterolls.link.engines import make_engine
from voterolls.link.fields import profile_input
from voterolls.link.predict import export_pairs, score_pairs, weight_expr
from voterolls.link.prepare import prepare_input
from voterolls.link.settings import (
    DEFAULT_MIN_PROBABILITY,
    DEFAULT_RECALIBRATE,
    DEFAULT_SEED,
    DEFAULT_THRESHOLD,
    EM_MAX_PAIRS,
    U_MAX_PAIRS,
    load_model,
    settings_creator,
    transfer_parameters,
)
from voterolls.link.splink_adapter import model_prior, set_model_prior
from voterolls.link.train import estimate_prior, log2_odds, register_full_name_tf, train
from voterolls.log import get_logger
from voterolls.sql import identifier, literal

log = get_logger(__name__)

Step = Callable[[str], None]

#: Above this many registrations the blocking analysis samples records
#: (Splink scales the sampled count back up; the report says it is an estimate).
EXACT_BLOCKING_ANALYSIS_MAX = 300_000


@dataclass
class LinkResult:
    engine: str
    registrations: int
    candidate_pairs: int
    comparisons_per_record: float
    pairs_written: int
    pairs_at_threshold: int
    cross_state_pairs_at_threshold: int
    clusters: int
    registrations_in_multi_clusters: int
    threshold: float
    min_probability: float
    probability_mass_below_min: float
    prior: float
    trained: bool
    model_path: str
    seconds: dict[str, float] = field(default_factory=dict)
    cpu_seconds: dict[str, float] = field(default_factory=dict)
    blocking: dict[str, Any] | None = None
    training: dict[str, Any] | None = None

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def _cpu() -> float:
    """CPU seconds of this process so far (user + system, all threads)."""
    import resource

    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


def _check_probability(name: str, value: float, *, allow_zero: bool = False) -> None:
    ok = (0.0 <= value < 1.0) if allow_zero else (0.0 < value < 1.0)
    if not ok:
        raise UserError(
            f"{name} must be a probability strictly between 0 and 1, got {value}", field=name
        )


def link_registrations(
    con: duckdb.DuckDBPyConnection,
    out_dir: str | Path,
    *,
    source: str = "registrations",
    engine: str = "duckdb",
    threshold: float = DEFAULT_THRESHOLD,
    model: str | Path | None = None,
    min_probability: float = DEFAULT_MIN_PROBABILITY,
    seed: int = DEFAULT_SEED,
    block_cap: int = DEFAULT_BLOCK_CAP,
    u_max_pairs: float = U_MAX_PAIRS,
    em_max_pairs: float = EM_MAX_PAIRS,
    blocking_analysis: bool = True,
    threads: int | None = None,
    memory_limit: str | None = None,
    shuffle_partitions: int | None = None,
    joint_names: bool = False,
    sealed_only: bool = False,
    recalibrate: bool = DEFAULT_RECALIBRATE,
    step: Step | None = None,
) -> LinkResult:
    """Link every registration in ``source`` with every other (dedupe_only: across and within states).

    With ``model`` the saved m and u are reused and training is skipped, but
    the prior is always re-estimated on this data (:func:`estimate_prior`):
    the share of matches among all pairs is a property of the data set, not
    of the model.  ``memory_limit`` (DuckDB, e.g. ``"8GB"``; it spills beyond)
    and ``shuffle_partitions`` (Spark; default scaled to the input) tune the
    engine.  ``sealed_only``: the registrations are sealed-only deliveries
    (tokens and name encodings, :mod:`voterolls.link.sealed`); same pipeline,
    sealed input and comparisons, DuckDB only.  ``recalibrate``: map the
    year-only and no-DOB classes' probabilities with the map learnt from the
    full-DOB pairs (:mod:`voterolls.link.calibration`).
    """
    _check_probability("threshold", threshold)
    _check_probability("min_probability", min_probability, allow_zero=True)
    if min_probability > threshold:
        raise UserError("min_probability must not exceed the threshold", field="min_probability")
    if sealed_only and engine != "duckdb":
        raise UserError("--sealed-only runs on the duckdb engine only", field="engine")
    if sealed_only and joint_names:
        raise UserError("--sealed-only has no joint full-name model", field="joint_names")
    out = Path(out_dir)
    work = out / "_work"
    if work.exists():
        shutil.rmtree(work)
    work.mkdir(parents=True)
    say = step or (lambda _msg: None)
    seconds: dict[str, float] = {}
    cpu_seconds: dict[str, float] = {}
    t0 = time.perf_counter()
    cpu0 = cpu_last = _cpu()

    def lap(name: str, since: float) -> float:
        # Wall and CPU seconds per stage: on a shared machine wall time tracks
        # the load, CPU time (this process; DuckDB's threads included) does not.
        nonlocal cpu_last
        now, c = time.perf_counter(), _cpu()
        seconds[name] = round(now - since, 3)
        cpu_seconds[name] = round(c - cpu_last, 3)
        cpu_last = c
        return now

    given = load_model(model) if model is not None else None

    say("preparing registrations")
    if engine == "spark":
        n, capped_dropped, profile, input_path, eng = _prepare_on_spark(
            con, source, work, block_cap=block_cap, threads=threads,
            memory_limit=memory_limit, shuffle_partitions=shuffle_partitions,
        )
    else:
        capped_dropped = {}
        prepare = prepare_input
        if sealed_only:
            from voterolls.link.sealed import prepare_sealed_input as prepare
        n = prepare(
            con, source, "_vr_link_input", block_cap=block_cap, capped_dropped=capped_dropped
        )
        profile = profile_input(con, "_vr_link_input")
        input_path = work / "input.parquet"
        if n >= 2:
            con.execute(
                f"COPY _vr_link_input TO {literal(input_path)} (FORMAT PARQUET)"
            ).fetchall()
        # The engine reads the Parquet; the caller's copy would only hold memory.
        con.execute("DROP TABLE IF EXISTS _vr_link_input").fetchall()
        eng = None
    n_full = profile.present["dob"]
    if n < 2:
        if eng is not None:
            eng.close()
        raise UserError(f"linkage needs at least 2 registrations; the workspace has {n}")
    t = lap("prepare", t0)

    if eng is None:
        eng = make_engine(
            engine,
            work,
            threads=threads,
            rows=n,
            memory_limit=memory_limit,
            shuffle_partitions=shuffle_partitions,
        )
    try:
        say(f"loading into {eng.NAME}")
        sdf = eng.register_input(input_path)
        if given is not None:
            if given.get("sql_dialect") == eng.SQL_DIALECT:
                settings: Any = given
            else:
                fresh = settings_creator(is_joint_model(given)).create_settings_dict(
                    eng.SQL_DIALECT
                )
                settings = transfer_parameters(given, fresh, source=str(model))
        elif sealed_only:
            from voterolls.link.sealed import sealed_settings_creator

            settings = sealed_settings_creator()
        else:
            settings = settings_creator(joint_names, profile)
        linker = Linker(sdf, settings, log_level=logging.ERROR)
        if (joint_names if given is None else is_joint_model(given)):
            register_full_name_tf(linker, eng)
        t = lap("load", t)

        training = None
        if given is None:
            report = train(
                linker,
                seed=seed,
                u_max_pairs=u_max_pairs,
                em_max_pairs=em_max_pairs,
                step=say,
                profile=profile,
                engine=eng,
            )
            training = report.as_dict()
            t = lap("train", t)

        blocking = None
        if blocking_analysis:
            say("blocking analysis")
            sample = (
                1.0
                if n <= EXACT_BLOCKING_ANALYSIS_MAX
                else max(0.05, EXACT_BLOCKING_ANALYSIS_MAX / n)
            )
            br = blocking_report(linker, n, block_cap, capped_dropped, sample=sample)
            blocking = br.as_dict() | {
                "record_sample_proportion": sample,
                "is_estimate": sample < 1.0,
            }
            t = lap("blocking_analysis", t)

        say("scoring candidate pairs")
        df_predict = score_pairs(linker)
        t = lap("predict", t)

        scoring_prior = model_prior(linker)
        candidates = int(eng.scalar(f"SELECT count(*) FROM {df_predict.physical_name}"))
        say("estimating the prior")
        est = estimate_prior(
            eng,
            df_predict.physical_name,
            n_records=n,
            n_full=n_full,
            scoring_prior=scoring_prior,
        )
        prior = est.prior
        if training is None:
            training = {"model_reused": str(model), "model_prior": scoring_prior}
        training["prior"] = asdict(est)
        shift = log2_odds(prior) - log2_odds(scoring_prior)
        set_model_prior(linker, prior)
        t = lap("prior", t)
        if recalibrate and not sealed_only:
            say("recalibrating the year-only and no-DOB classes")
            df_predict, training["recalibration"] = recalibrate_predictions(eng, linker, df_predict, shift)
            t = lap("recalibrate", t)

        # Always written, also with --model: W/link/model.json is what later
        # stages read (external lists), and it must carry this data's prior.
        model_path = out / "model.json"
        tmp = model_path.with_suffix(".json.tmp")
        linker.misc.save_model_to_json(str(tmp), overwrite=True)
        tmp.replace(model_path)

        say("writing pairs")
        pairs_written = export_pairs(
            eng, df_predict, out / "pairs.parquet", shift=shift, min_probability=min_probability
        )
        w = weight_expr(shift)
        mass_below = float(
            eng.scalar(
                f"SELECT coalesce(sum(1.0 / (1.0 + pow(2.0, -{w}))), 0) FROM {df_predict.physical_name} "
                f"WHERE {w} < {log2_odds(min_probability) if min_probability > 0 else -1e308!r}"
            )
        )
        t = lap("write_pairs", t)

        say("clustering")
        rows, n_clusters = export_clusters(
            eng, linker, df_predict, out / "clusters.parquet", threshold=threshold, shift=shift
        )
        t = lap("cluster", t)
    finally:
        eng.close()
    con.execute("DROP TABLE IF EXISTS _vr_link_input").fetchall()

    summary = _summarise(out, threshold)
    seconds["total"] = round(time.perf_counter() - t0, 3)
    cpu_seconds["total"] = round(_cpu() - cpu0, 3)
    result = LinkResult(
        engine=eng.NAME,
        registrations=n,
        candidate_pairs=candidates,
        comparisons_per_record=round(candidates / n, 3),
        pairs_written=pairs_written,
        pairs_at_threshold=summary["at"],
        cross_state_pairs_at_threshold=summary["cross"],
        clusters=n_clusters,
        registrations_in_multi_clusters=summary["in_multi"],
        threshold=threshold,
        min_probability=min_probability,
        probability_mass_below_min=round(mass_below, 3),
        prior=prior,
        trained=given is None,
        model_path=str(model_path),
        seconds=seconds,
        cpu_seconds=cpu_seconds,
        blocking=blocking,
        training=training,
    )
    (out / "link_report.json").write_text(
        json.dumps(result.as_dict(), indent=2) + "\n", encoding="utf-8"
    )
    # the estimate stage's calibration check described the previous probabilities
    (out / "calibration.json").unlink(missing_ok=True)
    shutil.rmtree(work, ignore_errors=True)
    log.info(
        "link done: registrations=%s candidates=%s seconds=%s", n, candidates, seconds["total"]
    )
    return result


def _prepare_on_spark(
    con: duckdb.DuckDBPyConnection,
    source: str,
    work: Path,
    *,
    block_cap: int,
    threads: int | None,
    memory_limit: str | None,
    shuffle_partitions: int | None,
):
    """Prepare the link input with Spark SQL (:mod:`voterolls.link.prepare_spark`).

    The registrations are handed over as Parquet (only the columns linkage
    reads; on a cluster this is the workspace's own Parquet on shared
    storage), so the whole-input work - cleaning, Soundex, the capped keys'
    block counts - runs on the executors, not on this machine.
    """
    from voterolls.link.prepare import OPTIONAL_COLUMNS, REQUIRED_COLUMNS
    from voterolls.link.prepare_spark import prepare_spark

    present = {r[0] for r in con.execute(f"DESCRIBE SELECT * FROM {source}").fetchall()}
    cols = [c for c in (*REQUIRED_COLUMNS, *OPTIONAL_COLUMNS) if c in present]
    rows = int(con.execute(f"SELECT count(*) FROM {source}").fetchall()[0][0])
    regs = work / "registrations.parquet"
    quoted = ", ".join(identifier(c) for c in cols) if cols else "*"
    con.execute(f"COPY (SELECT {quoted} FROM {source}) TO {literal(regs)} (FORMAT PARQUET)").fetchall()
    eng = make_engine(
        "spark",
        work,
        threads=threads,
        rows=rows,
        memory_limit=memory_limit,
        shuffle_partitions=shuffle_partitions,
    )
    try:
        input_path = work / "input.parquet"
        n, dropped, profile = prepare_spark(eng.spark, regs, input_path, block_cap=block_cap)
    except BaseException:
        eng.close()
        raise
    return n, dropped, profile, input_path, eng


def _summarise(out: Path, threshold: float) -> dict[str, int]:
    con = duckdb.connect()
    try:
        p = literal(out / "pairs.parquet")
        c = literal(out / "clusters.parquet")
        at, cross = con.execute(
            f"SELECT count(*), count(*) FILTER (WHERE state_l <> state_r) FROM read_parquet({p}) "
            f"WHERE match_probability >= {threshold!r}"
        ).fetchall()[0]
        in_multi = con.execute(
            f"SELECT coalesce(sum(k), 0) FROM (SELECT count(*) AS k FROM read_parquet({c}) "
            "GROUP BY cluster_id HAVING count(*) > 1)"
        ).fetchall()[0][0]
    finally:
        con.close()
    return {"at": int(at), "cross": int(cross), "in_multi": int(in_multi)}
