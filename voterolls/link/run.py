"""One linkage run: prepare -> (train) -> predict -> prior -> pairs, clusters, model, report.

:func:`link_registrations` is what ``voterolls link`` and the benchmark call,
with one :class:`LinkRequest`.  It reads a ``registrations`` relation from a
DuckDB connection (the workspace's, or a test's) and writes into
``request.out_dir``::

    model.json          the trained Splink model (or the one given with --model,
                        with the prior re-estimated on this data)
    pairs.parquet       scored candidate pairs (contract columns)
    clusters.parquet    state, state_voter_id, cluster_id
    link_report.json    counts, timings, blocking analysis, training summary

The run is a sequence of small named steps (:meth:`_Run.run` lists them),
in the manner of Splink's own linker components: each step reads the request
and what the previous steps produced, and returns what the next needs.

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
from typing import Any, final

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

__all__ = ["EXACT_BLOCKING_ANALYSIS_MAX", "LinkRequest", "LinkResult", "link_registrations"]

log = get_logger(__name__)

Step = Callable[[str], None]

#: Above this many registrations the blocking analysis samples records
#: (Splink scales the sampled count back up; the report says it is an estimate).
EXACT_BLOCKING_ANALYSIS_MAX = 300_000

#: The DuckDB table the prepared input is built in before it is copied to Parquet.
_INPUT_TABLE = "_vr_link_input"


def _check_probability(name: str, value: float, *, allow_zero: bool = False) -> None:
    ok = (0.0 <= value < 1.0) if allow_zero else (0.0 < value < 1.0)
    if not ok:
        raise UserError(
            f"{name} must be a probability strictly between 0 and 1, got {value}", field=name
        )


@dataclass(frozen=True)
class LinkRequest:
    """Everything one linkage run is asked to do; checked when made, so a request that exists is valid.

    With ``model`` the saved m and u are reused and training is skipped, but
    the prior is always re-estimated on this data (:func:`estimate_prior`):
    the share of matches among all pairs is a property of the data set, not
    of the model.  ``memory_limit`` (DuckDB, e.g. ``"8GB"``; it spills beyond)
    and ``shuffle_partitions`` (Spark; default scaled to the input) tune the
    engine.  ``sealed_only``: the registrations are sealed-only deliveries
    (tokens and name encodings, :mod:`voterolls.link.sealed`); same pipeline,
    sealed input and comparisons, DuckDB only.
    """

    #: where model.json, pairs.parquet, clusters.parquet and link_report.json go
    out_dir: Path
    #: the relation (table or view) on the caller's connection holding the registrations
    source: str = "registrations"
    engine: str = "duckdb"
    threshold: float = DEFAULT_THRESHOLD
    #: a saved model.json to reuse (training skipped, prior re-estimated)
    model: Path | None = None
    min_probability: float = DEFAULT_MIN_PROBABILITY
    seed: int = DEFAULT_SEED
    block_cap: int = DEFAULT_BLOCK_CAP
    u_max_pairs: float = U_MAX_PAIRS
    em_max_pairs: float = EM_MAX_PAIRS
    blocking_analysis: bool = True
    threads: int | None = None
    memory_limit: str | None = None
    shuffle_partitions: int | None = None
    joint_names: bool = False
    sealed_only: bool = False
    #: map each DOB class's probabilities with the maps learnt without truth (full DOB: the
    #: birthday model; the others: masked full-DOB pairs; :mod:`voterolls.link.calibration`);
    #: plaintext input only
    recalibrate: bool = DEFAULT_RECALIBRATE
    #: told the name of each stage as it starts (a progress display)
    step: Step | None = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "out_dir", Path(self.out_dir))
        if self.model is not None:
            object.__setattr__(self, "model", Path(self.model))
        _check_probability("threshold", self.threshold)
        _check_probability("min_probability", self.min_probability, allow_zero=True)
        if self.min_probability > self.threshold:
            raise UserError(
                "min_probability must not exceed the threshold", field="min_probability"
            )
        if self.sealed_only and self.engine != "duckdb":
            raise UserError("--sealed-only runs on the duckdb engine only", field="engine")
        if self.sealed_only and self.joint_names:
            raise UserError("--sealed-only has no joint full-name model", field="joint_names")

    def say(self, message: str) -> None:
        if self.step is not None:
            self.step(message)


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


def link_registrations(con: duckdb.DuckDBPyConnection, request: LinkRequest) -> LinkResult:
    """Link every registration in ``request.source`` with every other (dedupe_only: across and within states)."""
    return _Run(con, request).run()


# ---------------------------------------------------------------------------
# timing
# ---------------------------------------------------------------------------


def _cpu() -> float:
    """CPU seconds of this process so far (user + system, all threads)."""
    import resource

    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


class _Clock:
    """Wall and CPU seconds per stage.

    On a shared machine wall time tracks the load; CPU time (this process,
    DuckDB's threads included) does not, so both are reported.
    """

    def __init__(self) -> None:
        self.seconds: dict[str, float] = {}
        self.cpu_seconds: dict[str, float] = {}
        self.start = self.last = time.perf_counter()
        self.cpu_start = self.cpu_last = _cpu()

    def lap(self, name: str) -> None:
        now, c = time.perf_counter(), _cpu()
        self.seconds[name] = round(now - self.last, 3)
        self.cpu_seconds[name] = round(c - self.cpu_last, 3)
        self.last, self.cpu_last = now, c

    def total(self) -> None:
        self.seconds["total"] = round(time.perf_counter() - self.start, 3)
        self.cpu_seconds["total"] = round(_cpu() - self.cpu_start, 3)


# ---------------------------------------------------------------------------
# what the steps hand on
# ---------------------------------------------------------------------------


@dataclass
class _Prepared:
    """The link input, prepared (cleaned, keyed, capped) and written as Parquet for the engine."""

    registrations: int
    #: registrations with a full date of birth (the prior's denominator)
    with_full_dob: int
    capped_dropped: dict[str, Any]
    profile: Any
    input_path: Path
    #: the engine, when preparing already started it (Spark); else None
    engine: Any = None


@dataclass(frozen=True)
class _Prior:
    """The prior re-estimated on this data, and the shift of every pair's weight it implies."""

    prior: float
    shift: float
    training: dict[str, Any]


@dataclass(frozen=True)
class _Written:
    """What was written from the scored pairs."""

    candidates: int
    pairs_written: int
    mass_below: float
    clusters: int


class _Run:
    """One linkage run in small steps (:meth:`run` lists them in order)."""

    def __init__(self, con: duckdb.DuckDBPyConnection, req: LinkRequest) -> None:
        self.con, self.req = con, req
        self.out = req.out_dir
        self.work = self.out / "_work"
        self.clock = _Clock()
        self.given = load_model(req.model) if req.model is not None else None

    @final
    def run(self) -> LinkResult:
        self.fresh_work_dir()
        prepared = self.prepare()
        eng = prepared.engine or self.start_engine(prepared.registrations)
        try:
            linker = self.load(eng, prepared)
            training = self.train(eng, linker, prepared)
            blocking = self.blocking(linker, prepared)
            self.req.say("scoring candidate pairs")
            df_predict = score_pairs(linker)
            self.clock.lap("predict")
            prior = self.prior(eng, linker, df_predict, prepared, training)
            df_predict = self.recalibrate(eng, linker, df_predict, prior)
            model_path = self.save_model(linker)
            written = self.write(eng, linker, df_predict, prior)
        finally:
            eng.close()
        self.con.execute(f"DROP TABLE IF EXISTS {_INPUT_TABLE}").fetchall()
        result = self.result(eng.NAME, prepared, prior, written, model_path, blocking)
        self.write_report(result)
        return result

    def fresh_work_dir(self) -> None:
        if self.work.exists():
            shutil.rmtree(self.work)
        self.work.mkdir(parents=True)

    # -- prepare and load -----------------------------------------------------------------------

    def prepare(self) -> _Prepared:
        """Clean and key the registrations (on Spark, or in the caller's DuckDB) into input.parquet."""
        self.req.say("preparing registrations")
        if self.req.engine == "spark":
            prepared = _prepare_on_spark(self.con, self.req, self.work)
        else:
            prepared = self.prepare_in_duckdb()
        if prepared.registrations < 2:
            if prepared.engine is not None:
                prepared.engine.close()
            raise UserError(
                f"linkage needs at least 2 registrations; the workspace has {prepared.registrations}"
            )
        self.clock.lap("prepare")
        return prepared

    def prepare_in_duckdb(self) -> _Prepared:
        capped_dropped: dict[str, Any] = {}
        prepare = prepare_input
        if self.req.sealed_only:
            from voterolls.link.sealed import prepare_sealed_input as prepare
        n = prepare(
            self.con, self.req.source, _INPUT_TABLE,
            block_cap=self.req.block_cap, capped_dropped=capped_dropped,
        )  # fmt: skip
        profile = profile_input(self.con, _INPUT_TABLE)
        input_path = self.work / "input.parquet"
        if n >= 2:
            self.con.execute(
                f"COPY {_INPUT_TABLE} TO {literal(input_path)} (FORMAT PARQUET)"
            ).fetchall()
        # The engine reads the Parquet; the caller's copy would only hold memory.
        self.con.execute(f"DROP TABLE IF EXISTS {_INPUT_TABLE}").fetchall()
        return _Prepared(n, profile.present["dob"], capped_dropped, profile, input_path)

    def start_engine(self, rows: int) -> Any:
        r = self.req
        return make_engine(
            r.engine, self.work, threads=r.threads, rows=rows,
            memory_limit=r.memory_limit, shuffle_partitions=r.shuffle_partitions,
        )  # fmt: skip

    def settings(self, eng: Any, profile: Any) -> Any:
        """The given model (in this engine's dialect), the sealed-only settings, or fresh ones."""
        given = self.given
        if given is not None:
            if given.get("sql_dialect") == eng.SQL_DIALECT:
                return given
            fresh = settings_creator(is_joint_model(given)).create_settings_dict(eng.SQL_DIALECT)
            return transfer_parameters(given, fresh, source=str(self.req.model))
        if self.req.sealed_only:
            from voterolls.link.sealed import sealed_settings_creator

            return sealed_settings_creator()
        return settings_creator(self.req.joint_names, profile)

    def load(self, eng: Any, prepared: _Prepared) -> Linker:
        """Register the prepared input with the engine and build Splink's linker on it."""
        self.req.say(f"loading into {eng.NAME}")
        sdf = eng.register_input(prepared.input_path)
        linker = Linker(sdf, self.settings(eng, prepared.profile), log_level=logging.ERROR)
        joint = self.req.joint_names if self.given is None else is_joint_model(self.given)
        if joint:
            register_full_name_tf(linker, eng)
        self.clock.lap("load")
        return linker

    # -- train, blocking analysis, prior ------------------------------------------------------------

    def train(self, eng: Any, linker: Linker, prepared: _Prepared) -> dict[str, Any] | None:
        """Estimate u and m (skipped with a given model)."""
        if self.given is not None:
            return None
        r = self.req
        report = train(
            linker, seed=r.seed, u_max_pairs=r.u_max_pairs, em_max_pairs=r.em_max_pairs,
            step=r.say, profile=prepared.profile, engine=eng,
        )  # fmt: skip
        self.clock.lap("train")
        return report.as_dict()

    def blocking(self, linker: Linker, prepared: _Prepared) -> dict[str, Any] | None:
        """How many pairs each blocking rule makes (sampled above :data:`EXACT_BLOCKING_ANALYSIS_MAX`)."""
        if not self.req.blocking_analysis:
            return None
        self.req.say("blocking analysis")
        n = prepared.registrations
        sample = 1.0 if n <= EXACT_BLOCKING_ANALYSIS_MAX else max(0.05, EXACT_BLOCKING_ANALYSIS_MAX / n)
        br = blocking_report(linker, n, self.req.block_cap, prepared.capped_dropped, sample=sample)
        self.clock.lap("blocking_analysis")
        return br.as_dict() | {"record_sample_proportion": sample, "is_estimate": sample < 1.0}

    def prior(
        self, eng: Any, linker: Linker, df_predict: Any, prepared: _Prepared,
        training: dict[str, Any] | None,
    ) -> _Prior:  # fmt: skip
        """Re-estimate the prior on this data's scored pairs and set it on the model."""
        scoring_prior = model_prior(linker)
        self.req.say("estimating the prior")
        est = estimate_prior(
            eng, df_predict.physical_name, n_records=prepared.registrations,
            n_full=prepared.with_full_dob, scoring_prior=scoring_prior,
        )  # fmt: skip
        if training is None:
            training = {"model_reused": str(self.req.model), "model_prior": scoring_prior}
        training["prior"] = asdict(est)
        set_model_prior(linker, est.prior)
        self.clock.lap("prior")
        return _Prior(est.prior, log2_odds(est.prior) - log2_odds(scoring_prior), training)

    def recalibrate(self, eng: Any, linker: Linker, df_predict: Any, prior: _Prior) -> Any:
        """Map every DOB class's probabilities (the request's ``recalibrate``; voterolls.link.calibration)."""
        if not self.req.recalibrate or self.req.sealed_only:
            return df_predict
        self.req.say("recalibrating the probabilities of each DOB class")
        df_predict, prior.training["recalibration"] = recalibrate_predictions(
            eng, linker, df_predict, prior.shift
        )
        self.clock.lap("recalibrate")
        return df_predict

    # -- outputs --------------------------------------------------------------------------------

    def save_model(self, linker: Linker) -> Path:
        """Always written, also with --model: W/link/model.json is what later stages read
        (external lists), and it must carry this data's prior."""
        model_path = self.out / "model.json"
        tmp = model_path.with_suffix(".json.tmp")
        linker.misc.save_model_to_json(str(tmp), overwrite=True)
        tmp.replace(model_path)
        return model_path

    def write(self, eng: Any, linker: Linker, df_predict: Any, prior: _Prior) -> _Written:
        """pairs.parquet (above min_probability), the probability mass left out, clusters.parquet."""
        r = self.req
        table = df_predict.physical_name
        candidates = int(eng.scalar(f"SELECT count(*) FROM {table}"))
        r.say("writing pairs")
        pairs_written = export_pairs(
            eng, df_predict, self.out / "pairs.parquet", shift=prior.shift, min_probability=r.min_probability
        )
        w = weight_expr(prior.shift)
        floor = log2_odds(r.min_probability) if r.min_probability > 0 else -1e308
        mass_below = float(
            eng.scalar(
                f"SELECT coalesce(sum(1.0 / (1.0 + pow(2.0, -{w}))), 0) FROM {table} WHERE {w} < {floor!r}"
            )
        )
        self.clock.lap("write_pairs")
        r.say("clustering")
        _rows, n_clusters = export_clusters(
            eng, linker, df_predict, self.out / "clusters.parquet", threshold=r.threshold, shift=prior.shift
        )
        self.clock.lap("cluster")
        return _Written(candidates, pairs_written, mass_below, n_clusters)

    def result(
        self, engine: str, prepared: _Prepared, prior: _Prior, written: _Written, model_path: Path,
        blocking: dict[str, Any] | None,
    ) -> LinkResult:  # fmt: skip
        r, n = self.req, prepared.registrations
        summary = _summarise(self.out, r.threshold)
        self.clock.total()
        return LinkResult(
            engine=engine, registrations=n, candidate_pairs=written.candidates,
            comparisons_per_record=round(written.candidates / n, 3), pairs_written=written.pairs_written,
            pairs_at_threshold=summary["at"], cross_state_pairs_at_threshold=summary["cross"],
            clusters=written.clusters, registrations_in_multi_clusters=summary["in_multi"],
            threshold=r.threshold, min_probability=r.min_probability,
            probability_mass_below_min=round(written.mass_below, 3), prior=prior.prior,
            trained=self.given is None, model_path=str(model_path), seconds=self.clock.seconds,
            cpu_seconds=self.clock.cpu_seconds, blocking=blocking, training=prior.training,
        )  # fmt: skip

    def write_report(self, result: LinkResult) -> None:
        (self.out / "link_report.json").write_text(
            json.dumps(result.as_dict(), indent=2) + "\n", encoding="utf-8"
        )
        # the estimate stage's calibration check described the previous probabilities
        (self.out / "calibration.json").unlink(missing_ok=True)
        shutil.rmtree(self.work, ignore_errors=True)
        log.info(
            "link done: registrations=%s candidates=%s seconds=%s",
            result.registrations, result.candidate_pairs, result.seconds["total"],
        )  # fmt: skip


def _prepare_on_spark(con: duckdb.DuckDBPyConnection, req: LinkRequest, work: Path) -> _Prepared:
    """Prepare the link input with Spark SQL (:mod:`voterolls.link.prepare_spark`).

    The registrations are handed over as Parquet (only the columns linkage
    reads; on a cluster this is the workspace's own Parquet on shared
    storage), so the whole-input work - cleaning, Soundex, the capped keys'
    block counts - runs on the executors, not on this machine.
    """
    from voterolls.link.prepare import OPTIONAL_COLUMNS, REQUIRED_COLUMNS
    from voterolls.link.prepare_spark import prepare_spark

    source = req.source
    present = {r[0] for r in con.execute(f"DESCRIBE SELECT * FROM {source}").fetchall()}
    cols = [c for c in (*REQUIRED_COLUMNS, *OPTIONAL_COLUMNS) if c in present]
    rows = int(con.execute(f"SELECT count(*) FROM {source}").fetchall()[0][0])
    regs = work / "registrations.parquet"
    quoted = ", ".join(identifier(c) for c in cols) if cols else "*"
    con.execute(f"COPY (SELECT {quoted} FROM {source}) TO {literal(regs)} (FORMAT PARQUET)").fetchall()
    eng = make_engine(
        "spark", work, threads=req.threads, rows=rows,
        memory_limit=req.memory_limit, shuffle_partitions=req.shuffle_partitions,
    )  # fmt: skip
    try:
        input_path = work / "input.parquet"
        n, dropped, profile = prepare_spark(eng.spark, regs, input_path, block_cap=req.block_cap)
    except BaseException:
        eng.close()
        raise
    return _Prepared(n, profile.present["dob"], dropped, profile, input_path, eng)


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
