"""Ingest: native files -> law-abiding, normalised Parquet snapshot, every row accounted for.

One call of :func:`ingest` (with one :class:`IngestRequest`) does, for one state::

    scan (voterolls.formats)            lazy relation of the native rows
      -> clean_dates                    placeholder DOBs removed *before* the law is applied
      -> enforce (voterolls.policy)     disallowed fields dropped / generalised
      -> normalize_registrations        names, suffixes, address, ZIP ... (one query with the read)
      -> line numbers, nicknames        per Arrow batch (clean files are read in parallel)
      -> sealed sidecar join            keyed tokens from ``voterolls seal``
      -> one streaming pass             Parquet (zstd) + per-file counts + issue counts
      -> vote history, quarantine, uniformity, manifest.json
      -> Workspace.commit               rename into place + catalog transaction

Design points (the "why"):

* **Law before storage.**  The relation that reaches Python and disk is the
  output of ``enforce``: plaintext DOB / phone / e-mail that a state does not
  make public never leave DuckDB's in-memory pipeline.  Protected
  (confidential) voters are excluded in the same pass; only their count and
  their ids (in memory, to withhold their vote history) are kept.
* **One pass.**  The native file is parsed once: the lawful, normalised rows
  stream out of DuckDB as Arrow record batches; each batch is written to
  Parquet and counted (rows per source file, protected rows, issue tags,
  values the law removed) with vectorised Arrow compute.  No per-row Python.
* **Nothing lost.**  Per file ``rows_read == loaded + quarantined +
  protected_excluded`` (registrations) or ``== loaded + quarantined +
  withheld`` (vote-history files) is checked; a mismatch is a bug and raises
  :class:`ReconciliationError` before anything is committed.
* **Memory bounded.**  DuckDB runs with a memory limit and spills to a scratch
  directory inside the staged snapshot (deleted on commit); Python holds one
  record batch at a time.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import importlib
import importlib.util
import json
import sys
import threading
import time
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any, final

import duckdb
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from voterolls.errors import UserError, require_file
from voterolls.ingest import archives, parts, uniformity, writer
from voterolls.ingest.delivery import STATE, DeliveryOptions
from voterolls.ingest.results import FileResult, IngestResult, ReconciliationError
from voterolls.ingest.sealed import sealed_view
from voterolls.ingest.writer import (
    BATCH_ROWS,
    PROTECTED,
    SEALED_MATCH,
    Counts,
    count_values,
    default_memory_limit,
    quiet,
    scratch_connection,
    with_canonical_first_names,
)
from voterolls.log import get_logger
from voterolls.normalize import clean_dates, normalize_registrations
from voterolls.schema import REGISTRATION_SCHEMA, VOTE_HISTORY_SCHEMA, sql_type
from voterolls.sql import identifier as _q
from voterolls.sql import literal as _lit
from voterolls.store import StagedSnapshot, Workspace, check_state, snapshot_damage

__all__ = ["FileResult", "IngestRequest", "IngestResult", "ReconciliationError", "history_only_format", "ingest"]

log = get_logger(__name__)

#: Bumped when normalisation changes what is stored, so re-ingesting the same
#: files after an upgrade makes a new snapshot instead of "unchanged".
NORMALIZE_VERSION = "1"

#: Policy-governed fields whose presence before ``enforce`` is recorded (as booleans).
GOVERNED = ("dob", "birth_year", "phone", "email", "party_code")

Progress = Callable[[str, int, int | None], None]


def _silent(phase: str, done: int, total: int | None) -> None:
    """The progress callback when nobody listens."""


# ---------------------------------------------------------------------------
# the request
# ---------------------------------------------------------------------------


@dataclass(frozen=True)
class IngestRequest:
    """Everything one ingest is asked to do: one state's delivery into one workspace.

    Built by the CLI, the service and the tests (with :meth:`of` from
    loosely typed arguments); :func:`ingest` carries it out.
    """

    workspace: Workspace
    state: str
    files: tuple[Path, ...]
    #: a format name or a user mapping file; None: detected from the files
    format: str | None = None
    #: the sealed sidecar (``voterolls seal``) joined to the rows by id
    sealed: Path | None = None
    #: a :class:`voterolls.policy.Override` (fields the law withholds, released on a legal basis)
    override: Any = None
    delivery: DeliveryOptions = field(default_factory=DeliveryOptions)
    memory_limit: str | None = None
    threads: int | None = None
    progress: Progress | None = None

    @classmethod
    def of(
        cls,
        workspace: Workspace | str | Path,
        state: str,
        paths: Sequence[str | Path] | str | Path,
        format: str | None = None,
        sealed: str | Path | None = None,
        override: Any = None,
        progress: Progress | None = None,
        *,
        memory_limit: str | None = None,
        threads: int | None = None,
        delivery: DeliveryOptions | None = None,
    ) -> IngestRequest:
        """The request from loosely typed arguments (a path or a list of them, a workspace or its path)."""
        ws = workspace if isinstance(workspace, Workspace) else Workspace(workspace)
        return cls(
            workspace=ws, state=check_state(state),
            files=tuple(Path(p) for p in ([paths] if isinstance(paths, (str, Path)) else paths)),
            format=format, sealed=Path(sealed) if sealed is not None else None, override=override,
            delivery=delivery or DeliveryOptions(), memory_limit=memory_limit, threads=threads, progress=progress,
        )  # fmt: skip

    def report(self, phase: str, done: int, total: int | None) -> None:
        (self.progress or _silent)(phase, done, total)


def ingest(request: IngestRequest) -> IngestResult:
    """Ingest a delivery of one state's native file(s) into the request's workspace as a new snapshot.

    The one way in: the CLI, the service and the tests build an
    :class:`IngestRequest` (:meth:`IngestRequest.of` from loosely typed
    arguments) and pass it here.

    Files may be plain or compressed (``.zip``, nested zips, ``.gz``:
    ``voterolls.ingest.archives``).  Each file has a scope (a county, a
    county range, the whole state; ``voterolls.ingest.delivery``) and
    replaces only its scope of the state's current snapshot; the rest is
    carried over (``voterolls.ingest.parts``).  ``request.delivery`` says how
    (explicit scope, ``replace_state``, ``allow_shrink``).

    Returns ``status="unchanged"`` (and writes nothing) when the same files,
    sealed sidecar, override and policy were already ingested as the state's
    current snapshot, or when every file given is already part of it.
    Raises :class:`UserError` for input mistakes (naming file, line, field).
    The steps: key the inputs, reuse the current snapshot if it is the same,
    else build one.
    """
    started = time.perf_counter()
    _import_pandas_early()
    keyed = _key_inputs(request)
    with request.workspace.state_lock(request.state):
        plan = _plan(request, keyed)
        if plan.reuse is not None:
            log.info("ingest %s: same inputs as snapshot %s; nothing to do", request.state, plan.reuse["snapshot_id"])
            return _unchanged(request.workspace, plan.reuse, started)
        return _build(request, keyed, plan, started)


def _import_pandas_early() -> None:
    """Start pyarrow's import of pandas in a background thread, beside the inputs' byte pass.

    pyarrow imports pandas (when installed) the first time a Python value or
    a numpy array becomes an Arrow one (``pa.array``, ``pa.scalar``,
    ``to_numpy``, ``pq.read_table``), which every ingest does in its first
    batch: 0.8 s of one core (a quarter of a 1M-row file's read).  Started
    here it runs while the inputs are hashed (hashing releases the GIL), and
    the first batch finds it done or nearly so.  The main thread holds no
    import lock when it needs pandas, so the two cannot deadlock.  Not a
    daemon: a process that ends first waits for the import rather than
    tearing it down half done at interpreter shutdown.
    """
    if "pandas" in sys.modules or importlib.util.find_spec("pandas") is None:
        return
    threading.Thread(target=importlib.import_module, args=("pandas",), name="voterolls-import-pandas").start()


# ---------------------------------------------------------------------------
# step 1: the ingest key (what makes two ingests "the same")
# ---------------------------------------------------------------------------


def sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as fh:
        while chunk := fh.read(1 << 22):
            h.update(chunk)
    return h.hexdigest()


@dataclass(frozen=True)
class _Keyed:
    """The inputs' bytes and the law, reduced to what decides whether this ingest is new."""

    #: byte-level facts (sha256, line counts) per plain file, reused by the reader; members join later
    facts: dict[str, Any]
    #: sha256 as sent, per given file (an archive is hashed whole)
    raw_sha: dict[str, str]
    packed: frozenset[str]
    shas: list[str]
    sealed_sha: str | None
    policy: Any
    fingerprint: str
    key: str


def _key_inputs(req: IngestRequest) -> _Keyed:
    """Check the files exist and differ; hash them, the sidecar and the policy into the ingest key."""
    plist = list(req.files)
    if not plist:
        raise UserError("no input files given")
    for p in plist:
        require_file(p)
    req.report("hash", 0, len(plist))
    # one byte pass per plain file: sha256 (the ingest key) and line counts, both reused by the
    # reader; an archive is hashed as sent (its members are counted once unpacked, in the stage)
    from voterolls.formats.sniff import facts as file_facts

    packed = frozenset(str(p) for p in plist if archives.is_compressed(p))
    facts = {str(p): file_facts(p) for p in plist if str(p) not in packed}
    raw_sha = {str(p): facts[str(p)].sha256 if str(p) in facts else sha256_file(p) for p in plist}
    shas = [raw_sha[str(p)] for p in plist]
    dups = [p for i, p in enumerate(plist) if shas[i] in shas[:i]]
    if dups:
        raise UserError("the same file content is given twice", file=dups[0])
    if req.sealed is not None:
        require_file(req.sealed, "sealed sidecar file")
    sealed_sha = sha256_file(req.sealed) if req.sealed is not None else None
    policy = _get_policy(req.state)
    fingerprint = _policy_fingerprint(policy)
    key = _ingest_key(shas, req.format, sealed_sha, req.override, fingerprint, req.delivery)
    return _Keyed(facts, raw_sha, packed, shas, sealed_sha, policy, fingerprint, key)


def _policy_fingerprint(policy: Any) -> str:
    keys = ("state", "dob_disclosure", "party_on_file", "vote_history_public", "phone_public", "email_public")
    data = {k: getattr(policy, k, None) for k in keys}
    data["normalize"] = NORMALIZE_VERSION
    return hashlib.sha256(json.dumps(data, sort_keys=True).encode()).hexdigest()[:16]


def _ingest_key(
    shas: list[str], fmt: str | None, sealed_sha: str | None, override: Any, fingerprint: str,
    options: DeliveryOptions | None = None,
) -> str:  # fmt: skip
    data: dict[str, Any] = {
        "files": sorted(shas),
        # a user mapping file counts by content: editing it must re-ingest
        "format": sha256_file(Path(fmt)) if fmt and Path(str(fmt)).is_file() else (str(fmt) if fmt else ""),
        "sealed": sealed_sha or "",
        "override": sorted(override.fields) if override is not None else [],
        "override_basis": override.legal_basis.strip() if override is not None else "",
        "policy": fingerprint,
    }
    if options is not None and (options.scope is not None or options.replace_state):
        data["scope"] = options.scope or ""  # only when given: keys of plain ingests stay as they were
        data["replace_state"] = options.replace_state
    return hashlib.sha256(json.dumps(data, sort_keys=True).encode()).hexdigest()


def _repair_key(key: str) -> str:
    """The twin of ``key`` used when a damaged snapshot of the same inputs is rebuilt."""
    return hashlib.sha256(("repair|" + key).encode()).hexdigest()


# ---------------------------------------------------------------------------
# step 2: reuse the current snapshot, or plan a new one
# ---------------------------------------------------------------------------


@dataclass(frozen=True)
class _Plan:
    """How the new snapshot is built: under which key, with which delivery options, on which base."""

    key: str
    options: DeliveryOptions
    base: dict[str, Any] | None  # the state's current snapshot record, or None
    #: the current snapshot, when it already holds these inputs whole (nothing to build)
    reuse: dict[str, Any] | None = None


def _plan(req: IngestRequest, keyed: _Keyed) -> _Plan:
    """Reuse the state's current snapshot when it already holds these inputs, whole; else how to build."""
    ws = req.workspace
    cur = ws.current_snapshot(req.state)
    if cur is None:
        return _Plan(keyed.key, req.delivery, None)
    same_key = cur["ingest_key"] in (keyed.key, _repair_key(keyed.key))
    if not (same_key or _already_in_view(ws, cur, req, keyed)):
        return _Plan(keyed.key, req.delivery, cur)
    snap_dir = ws.path / cur["path"] if cur.get("path") else ws.snapshot_dir(cur["state"], cur["snapshot_id"])
    damage = snapshot_damage(snap_dir, cur, complete=True)
    if damage is None:
        return _Plan(keyed.key, req.delivery, cur, reuse=cur)
    # same inputs, but the stored snapshot cannot be read: rebuild it.  The
    # catalog refuses a second snapshot with the current one's key, so the
    # rebuild alternates between the key and its repair twin (both mean
    # "these inputs"; the next run with the same inputs is "unchanged").
    log.warning("ingest %s: snapshot %s is damaged (%s); rebuilding it", req.state, cur["snapshot_id"], damage)
    key = _repair_key(keyed.key) if cur["ingest_key"] == keyed.key else keyed.key
    if same_key:
        return _Plan(key, req.delivery, None)
    # a part of a damaged view: rebuild from these files alone
    return _Plan(key, replace(req.delivery, replace_state=True, allow_shrink=True), cur)


def _already_in_view(ws: Workspace, cur: dict[str, Any], req: IngestRequest, keyed: _Keyed) -> bool:
    """Is every file given already a part of the state's current snapshot, read the same way?

    Then re-sending one of several submissions changes nothing (each file
    would replace its own scope with the same rows).
    """
    options = req.delivery
    if options.replace_state or options.scope is not None or keyed.sealed_sha is not None or req.override is not None:
        return False
    if cur.get("policy_fingerprint") != keyed.fingerprint or (req.format is not None and req.format != cur.get("format")):
        return False
    have: set[str] = set()
    for f in ws.file_manifests(cur["state"], cur["snapshot_id"]):
        have.add(f["sha256"])
        if f.get("container_sha256"):
            have.add(f["container_sha256"])
    return set(keyed.shas) <= have


def _unchanged(ws: Workspace, snap: dict[str, Any], started: float) -> IngestResult:
    files = [
        FileResult(
            file_name=f["file_name"], sha256=f["sha256"], role=f["role"], encoding=f["encoding"],
            rows_read=f["rows_read"], loaded=f["loaded"], quarantined=f["quarantined"],
            protected_excluded=f["protected_excluded"], vote_history_loaded=f["vote_history_loaded"],
            vote_history_withheld=f["vote_history_withheld"], scope=f.get("scope") or STATE,
            container_sha256=f.get("container_sha256"), part_snapshot=f.get("part_snapshot") or snap["snapshot_id"],
        )  # fmt: skip
        for f in ws.file_manifests(snap["state"], snap["snapshot_id"])
    ]
    return IngestResult(
        state=snap["state"], status="unchanged", snapshot_id=snap["snapshot_id"], format=snap["format"],
        files=files, rows_read=snap["rows_read"], loaded=snap["loaded"], quarantined=snap["quarantined"],
        protected_excluded=snap["protected_excluded"], vote_history_loaded=snap["vote_history_loaded"],
        vote_history_withheld=snap["vote_history_withheld"], sealed_matched=snap["sealed_matched"],
        elapsed_s=time.perf_counter() - started, path=snap["path"],
    )  # fmt: skip


# ---------------------------------------------------------------------------
# step 3: stage, unpack, build
# ---------------------------------------------------------------------------


@dataclass(frozen=True)
class _Job:
    """What one delivery's build works on: the unpacked inputs and everything decided before the stage."""

    inputs: list[archives.Input]
    keyed: _Keyed
    plan: _Plan


def _build(req: IngestRequest, keyed: _Keyed, plan: _Plan, started: float) -> IngestResult:
    """Stage a snapshot, unpack the inputs into its scratch space and build it; discard it on any failure."""
    ws = req.workspace
    staged = ws.stage(req.state)
    try:
        req.report("unpack", 0, len(keyed.packed) or None)
        with archives.unpacked(list(req.files), staged.tmp_dir, {p: keyed.raw_sha[p] for p in keyed.packed}) as inputs:
            _count_members(inputs, keyed.facts)
            try:
                return _Build(req, _Job(inputs, keyed, plan), staged, started).run()
            except UserError as exc:
                raise _named_for_people(exc, inputs) from None
            except duckdb.OutOfMemoryException:
                # the limit, not the input: one sentence instead of DuckDB's traceback
                raise UserError(
                    f"ingest of {req.state} ran out of memory under DuckDB's limit of "
                    f"{req.memory_limit or default_memory_limit()}; raise --memory-limit "
                    "(or VOTEROLLS_MEMORY_LIMIT) and ingest again; nothing was stored"
                ) from None
    except BaseException:
        ws.discard(staged)
        raise


def _count_members(inputs: list[archives.Input], facts: dict[str, Any]) -> None:
    """Byte facts of the unpacked members (plain files have theirs); refuse a content given twice."""
    from voterolls.formats.sniff import facts as file_facts

    for inp in inputs:
        if str(inp.path) not in facts:
            facts[str(inp.path)] = file_facts(inp.path)
    member_shas = [facts[str(inp.path)].sha256 for inp in inputs]
    twice = [inp for k, inp in enumerate(inputs) if member_shas[k] in member_shas[:k]]
    if twice:
        raise UserError("the same file content is given twice", file=twice[0].display)


def _named_for_people(exc: UserError, inputs: list[archives.Input]) -> UserError:
    """A reader's error names an unpacked member by its ``/proc/self/fd`` path: use its display name."""
    msg = str(exc)
    for inp in inputs:
        if inp.path != inp.source:
            msg = msg.replace(str(inp.path), inp.display)
    if msg == str(exc):
        return exc
    out = UserError(msg)
    out.line, out.field = exc.line, exc.field
    return out


@dataclass
class _Streamed:
    """What the one pass over the inputs produced (the Parquet files are in the stage)."""

    scan: Any  # the reader's scan (format, format_spec, files)
    report: Any  # the reader's final report (files, quarantine)
    reg: Counts
    vh: Counts
    written: int
    #: the uniformity report's counts of the rows written (``uniformity.RegistrationTally``)
    tally: uniformity.RegistrationTally


class _Build:
    """One new snapshot, built in small steps (:meth:`run` lists them in order).

    Holds only what every step reads (the request, the job, the stage); each
    step returns what the next needs.
    """

    def __init__(self, req: IngestRequest, job: _Job, staged: StagedSnapshot, started: float) -> None:
        self.req, self.job, self.staged, self.started = req, job, staged, started
        self.state = req.state
        self.paths = [inp.path for inp in job.inputs]
        shas = [job.keyed.facts[str(p)].sha256 for p in self.paths]
        self.input_of = {str(inp.path): inp for inp in job.inputs}
        self.sha_of = {str(p): sha for p, sha in zip(self.paths, shas, strict=True)}
        self.name_of = {sha: self.input_of[str(p)].display for p, sha in zip(self.paths, shas, strict=True)}
        self.reg_path = staged.dir / "registrations.parquet"
        self.vh_path = staged.dir / "vote_history.parquet"

    @final
    def run(self) -> IngestResult:
        streamed = self.stream()
        self.req.report("reconcile", 0, None)
        new_files = self.reconcile(streamed)
        self.write_quarantine(streamed)
        self.req.report("delivery", 0, None)
        parts.assign_scopes(new_files, self.job.plan.options, self.state, self.spec(streamed), self.reg_path, self.vh_path)
        retained = parts.carry_over(
            self.req.workspace, self.staged, self.state, new_files, self.job.plan.base, self.job.plan.options,
            _new_protected(streamed.reg),
        )  # fmt: skip
        files = retained + new_files
        issues, removed = _issue_totals(files, streamed.reg, carried=bool(retained))
        totals = _totals(files)
        rows = pq.ParquetFile(self.reg_path).metadata.num_rows
        if rows != totals["loaded"]:
            raise ReconciliationError(f"registrations in the snapshot {rows} != loaded {totals['loaded']}")
        self.req.report("uniformity", 0, None)
        # parts carried over from the last snapshot were not streamed: count the whole file then
        self.write_uniformity(streamed, issues, removed, tally=None if retained else streamed.tally)
        return self.commit(streamed, files, retained, totals, issues, removed)

    # -- the one pass: scan, registrations, vote history --------------------------------------

    def stream(self) -> _Streamed:
        """Read every input once: registrations and vote history streamed to Parquet, counted.

        Clean files are read once: the reader proves, while they stream, that
        every line is one record (``formats.fast.unverified``) instead of
        checking it in a pass of its own.  When the read refutes that (a
        damaged line, a record spanning lines, a missing voter id) what was
        written is discarded and the inputs are read again, checked first,
        which quarantines exactly what it always did.
        """
        streamed = self.stream_once(verify_first=False)
        if streamed is None:
            for path in (self.reg_path, self.vh_path):
                path.unlink(missing_ok=True)
            streamed = self.stream_once(verify_first=True)
        if streamed is None:  # cannot happen: a verified read is never refuted
            raise ReconciliationError("the inputs' shape was refuted after verification")
        return streamed

    def stream_once(self, *, verify_first: bool) -> _Streamed | None:
        """One read of the inputs; None when a read before verification was refuted."""
        con = scratch_connection(self.staged.tmp_dir, self.req.memory_limit, self.req.threads)
        s = None
        try:
            self.req.report("scan", 0, None)
            s = self.open_scan(con, verify_first=verify_first)
            _refuse_other_states_layout(s, self.state, self.req.format, self.job.inputs)
            tally = uniformity.RegistrationTally(getattr(s, "format_spec", None))
            try:
                reg_counts, written = self.write_registrations(con, s, tally)
            except Exception:
                if getattr(s, "shape_refuted", False):
                    return None
                raise
            vh_counts = self.write_vote_history(con, s, reg_counts)
            scan_report = s.finish()
        finally:
            if s is not None:  # the reader's temporary copies go even when ingest failed
                try:
                    s.finish()
                except Exception:  # noqa: BLE001 - already failing; the original error matters
                    log.debug("scan cleanup after failure raised")
            con.close()
        return _Streamed(s, scan_report, reg_counts, vh_counts, written, tally)

    def open_scan(self, con: duckdb.DuckDBPyConnection, *, verify_first: bool = True) -> Any:
        """The reader's scan; a delivery of history alone is read with the state's history layout."""
        facts, fmt, tmp = self.job.keyed.facts, self.req.format, self.staged.tmp_dir
        try:
            return _scan(con, self.paths, self.state, fmt, facts, tmp, verify_first=verify_first)
        except UserError:
            history_format = history_only_format(self.state, self.paths) if fmt is None else None
            if history_format is None:
                raise
            return _scan(con, self.paths, self.state, history_format, facts, tmp, verify_first=verify_first)

    def write_registrations(
        self, con: duckdb.DuckDBPyConnection, s: Any, tally: uniformity.RegistrationTally
    ) -> tuple[Counts, int]:
        """Flags, dates, law, normalisation, sealed tokens: one stream into ``registrations.parquet``.

        ``tally`` counts the written rows for the uniformity report as they go by.
        """
        total_rows = sum(f.rows_read for f in getattr(s, "_files", []) if f.role == "registrations") or None
        had_value: list[str] = []  # "__had_<field>" flags (the same for every part), filled by prepare
        prepare = _preparer(self.job.keyed.policy, self.req.override, had_value, tally.project)
        regs = with_canonical_first_names(s.registration_batches(BATCH_ROWS, prepare))
        extra_bool = list(had_value)
        if self.req.sealed is not None:
            regs = _join_sealed(con, regs, self.req.sealed)
            extra_bool.append(SEALED_MATCH)
        counts = Counts()
        done = 0

        def on_rows(n: int) -> None:
            nonlocal done
            done += n
            self.req.report("registrations", done, total_rows)

        written = writer.stream_write(
            regs, self.reg_path, REGISTRATION_SCHEMA, counts, flag=PROTECTED, extra_bool=extra_bool, progress=on_rows,
            observe=tally.add,
        )
        return counts, written

    def write_vote_history(self, con: duckdb.DuckDBPyConnection, s: Any, reg_counts: Counts) -> Counts:
        """``vote_history.parquet``: the history of voters not protected, or none where the law withholds it."""
        counts = Counts()
        vh = s.vote_history
        if vh is None:
            pq.write_table(VOTE_HISTORY_SCHEMA.empty_table(), self.vh_path, compression="zstd")
            return counts
        self.req.report("vote_history", 0, None)
        if not _vote_history_allowed(self.job.keyed.policy, self.req.override):
            for sha, n in vh.aggregate("source_file, count(*) AS n", "source_file").fetchall():
                counts.flagged[sha] += int(n)
            pq.write_table(VOTE_HISTORY_SCHEMA.empty_table(), self.vh_path, compression="zstd")
            return counts
        flagged = self.flag_protected_history(con, s, vh, reg_counts)
        writer.stream_write(flagged.to_arrow_reader(BATCH_ROWS), self.vh_path, VOTE_HISTORY_SCHEMA, counts, flag=PROTECTED)
        return counts

    def flag_protected_history(
        self, con: duckdb.DuckDBPyConnection, s: Any, vh: duckdb.DuckDBPyRelation, reg_counts: Counts
    ) -> duckdb.DuckDBPyRelation:
        """The history rows with a flag: is the voter protected (in these files or a part carried over)?"""
        ids = pa.concat_arrays(reg_counts.flagged_ids).unique() if reg_counts.flagged_ids else pa.array([], pa.string())
        cur = quiet(con.cursor())
        cur.register("_vr_prot_ids", pa.table({"state_voter_id": ids}))
        cur.from_arrow(vh.to_arrow_reader(BATCH_ROWS)).create_view("_vr_vh", replace=True)
        ws, plan = self.req.workspace, self.job.plan
        earlier = parts.base_protected(ws, plan.base, plan.options)
        still = parts.still_protecting(ws, plan.base, plan.options, self.job.inputs, s, self.state) if earlier is not None else set()
        if not still:
            return cur.sql(
                f"SELECT v.*, (p.state_voter_id IS NOT NULL) AS {PROTECTED} FROM _vr_vh v "
                f"LEFT JOIN _vr_prot_ids p ON p.state_voter_id = v.state_voter_id"
            )
        # protected voters of the parts carried over are known by digest only
        digest = parts.PROTECTED_DIGEST_SQL
        cur.register("_vr_still", pa.table({"sha": pa.array(sorted(still), pa.string())}))
        cur.execute(
            f"CREATE TEMP TABLE _vr_prot_d AS SELECT {digest.format(id='state_voter_id')} AS d "
            f"FROM _vr_prot_ids UNION SELECT d FROM read_parquet({_lit(str(earlier))}) "
            "WHERE source_file IN (SELECT sha FROM _vr_still)"
        )
        return cur.sql(
            f"SELECT v.*, (p.d IS NOT NULL) AS {PROTECTED} FROM _vr_vh v "
            f"LEFT JOIN _vr_prot_d p ON p.d = {digest.format(id='v.state_voter_id')}"
        )

    # -- every row accounted for --------------------------------------------------------------

    def reconcile(self, streamed: _Streamed) -> list[FileResult]:
        """Per file: rows read == loaded + quarantined + protected/withheld, else a bug is raised."""
        q_tbl = streamed.report.quarantine
        q_counts: Counter[str] = Counter()
        if q_tbl.num_rows:
            count_values(q_counts, q_tbl.column("file"))
        extra_q: Counter[str] = Counter()
        for t in streamed.reg.extra_quarantine:
            count_values(extra_q, t.column("sha256"))
        files = [self.file_result(f, streamed, q_counts, extra_q) for f in streamed.report.files]
        seen = {fr.sha256 for fr in files}
        reg, vh = streamed.reg, streamed.vh
        stray = (set(reg.kept) | set(reg.flagged) | set(vh.kept)) - seen
        if stray:
            raise ReconciliationError(f"rows carry a source_file that is none of the inputs ({len(stray)} value(s))")
        loaded = sum(fr.loaded for fr in files if fr.role == "registrations")
        if loaded != streamed.written or pq.ParquetFile(self.reg_path).metadata.num_rows != streamed.written:
            raise ReconciliationError(f"registrations written {streamed.written} != loaded {loaded}")
        return files

    def file_result(self, f: Any, streamed: _Streamed, q_counts: Counter[str], extra_q: Counter[str]) -> FileResult:
        """One input file's counts, checked to add up (and the file unchanged since it was hashed)."""
        sha = self.sha_of.get(str(f.path)) or self.sha_of.get(str(Path(f.path)))
        if sha is None:
            raise ReconciliationError(f"reader reported a file that was not given: {Path(f.path).name}")
        before = self.job.keyed.facts.get(str(f.path))
        st = Path(f.path).stat()
        if f.sha256 != sha or (before is not None and (st.st_size, st.st_mtime_ns) != (before.size, before.mtime_ns)):
            # the bytes were hashed once, before reading: a rewrite since then changes size or mtime
            raise UserError("the file changed while it was being ingested; run again", file=self.name_of[sha])
        listed = int(q_counts.get(str(f.path), 0))
        if getattr(f, "rows_quarantined", None) is not None and listed != int(f.rows_quarantined):
            raise ReconciliationError(
                f"{Path(f.path).name}: reader counted {f.rows_quarantined} quarantined rows but listed {listed}"
            )
        reg, vh = streamed.reg, streamed.vh
        inp = self.input_of.get(str(f.path))
        fr = FileResult(
            file_name=self.name_of[sha], sha256=sha, role=getattr(f, "role", "registrations"),
            encoding=getattr(f, "encoding", None), rows_read=int(f.rows_read), loaded=int(reg.kept.get(sha, 0)),
            quarantined=listed + int(extra_q.get(sha, 0)), protected_excluded=int(reg.flagged.get(sha, 0)),
            vote_history_loaded=int(vh.kept.get(sha, 0)), vote_history_withheld=int(vh.flagged.get(sha, 0)),
            container_sha256=inp.container_sha256 if inp is not None else None, part_snapshot=self.staged.snapshot_id,
            issues={k: n for (h, k), n in sorted(reg.issues_by_file.items()) if h == sha},
            values_removed={k: n for (h, k), n in sorted(reg.removed_by_file.items()) if h == sha},
        )  # fmt: skip
        _check_accounted(fr)
        return fr

    def write_quarantine(self, streamed: _Streamed) -> None:
        """``quarantine.parquet``: the reader's refused lines and the rows without a voter id."""
        q_tbl, state = streamed.report.quarantine, self.state
        q_parts = []
        if q_tbl.num_rows:
            fnames = pc.cast(q_tbl.column("file"), pa.string()).to_pylist()
            q_parts.append(
                pa.table({
                    "state": pa.array([state] * q_tbl.num_rows, pa.string()),
                    "file": pa.array([self.name_of.get(self.sha_of.get(x) or "", Path(x).name) if x else None for x in fnames], pa.string()),
                    "sha256": pa.array([self.sha_of.get(x) for x in fnames], pa.string()),
                    "line": pc.cast(q_tbl.column("line"), pa.int64()),
                    "field": pc.cast(q_tbl.column("field"), pa.string()),
                    "reason": pc.cast(q_tbl.column("reason"), pa.string()),
                })
            )  # fmt: skip
        for t in streamed.reg.extra_quarantine:
            shas_q = t.column("sha256").to_pylist()
            q_parts.append(
                pa.table({
                    "state": pa.array([state] * t.num_rows, pa.string()),
                    "file": pa.array([self.name_of.get(x) for x in shas_q], pa.string()),
                    "sha256": pa.array(shas_q, pa.string()),
                    "line": pc.cast(t.column("line"), pa.int64()),
                    "field": pa.array(["state_voter_id"] * t.num_rows, pa.string()),
                    "reason": pa.array(["missing voter id"] * t.num_rows, pa.string()),
                })
            )  # fmt: skip
        q_all = pa.concat_tables([p.cast(QUARANTINE_SCHEMA) for p in q_parts]) if q_parts else QUARANTINE_SCHEMA.empty_table()
        pq.write_table(q_all, self.staged.dir / "quarantine.parquet", compression="zstd")

    # -- derived files, manifest, commit ------------------------------------------------------

    @staticmethod
    def spec(streamed: _Streamed) -> Any:
        return getattr(streamed.scan, "format_spec", None)

    def write_uniformity(
        self, streamed: _Streamed, issues: Counter[str], removed: Counter[str], *, tally: uniformity.RegistrationTally | None
    ) -> None:
        uni = uniformity.compute(
            self.reg_path,
            self.vh_path,
            state=self.state,
            snapshot_id=self.staged.snapshot_id,
            spec=self.spec(streamed),
            policy=self.job.keyed.policy,
            override=self.req.override,
            issues=issues,
            policy_removed=removed,
            sealed_tokens=bool(self.req.sealed),
            memory_limit=self.req.memory_limit or default_memory_limit(),
            temp_dir=self.staged.tmp_dir,
            tally=tally,
        )
        pq.write_table(uni, self.staged.dir / "uniformity.parquet", compression="zstd")

    def policy_summary(self, files: list[FileResult], removed: Counter[str]) -> dict[str, Any]:
        from voterolls.policy import allowed_columns

        policy, override = self.job.keyed.policy, self.req.override
        allowed = allowed_columns(policy, override)
        return {
            "dob_disclosure": policy.dob_disclosure,
            "allowed": {k: bool(v) for k, v in allowed.items() if k in ("dob", "birth_year", "phone", "email", "party")},
            "vote_history_public": _vote_history_allowed(policy, override),
            "values_removed": dict(sorted(removed.items())),
            "protected_excluded": sum(fr.protected_excluded for fr in files),
            "override_fields": sorted(override.fields) if override is not None else [],
            "override_legal_basis": override.legal_basis.strip() if override is not None else None,
            "fingerprint": self.job.keyed.fingerprint,
        }

    def delivery_summary(self, files: list[FileResult], retained: list[FileResult]) -> dict[str, Any]:
        """The manifest's account of the delivery: its options, its base, the files new and carried over."""
        plan, sid = self.job.plan, self.staged.snapshot_id
        return {
            "scope": plan.options.scope, "replace_state": plan.options.replace_state,
            "allow_shrink": plan.options.allow_shrink, "based_on": plan.base["snapshot_id"] if plan.base else None,
            "new_files": [fr.file_name for fr in files if fr.part_snapshot == sid],
            "retained_files": [fr.file_name for fr in retained],
        }  # fmt: skip

    def commit(
        self, streamed: _Streamed, files: list[FileResult], retained: list[FileResult], totals: dict[str, int],
        issues: Counter[str], removed: Counter[str],
    ) -> IngestResult:  # fmt: skip
        """Write ``manifest.json``, then rename the stage into place and record it in the catalog."""
        keyed, plan, sid = self.job.keyed, self.job.plan, self.staged.snapshot_id
        fmt_name = getattr(streamed.scan, "format", self.req.format)
        policy_summary = self.policy_summary(files, removed)
        sealed_sha, matched = keyed.sealed_sha, streamed.reg.sealed_matched
        created = dt.datetime.now(dt.UTC)
        elapsed = time.perf_counter() - self.started
        manifest = {
            "state": self.state,
            "snapshot_id": sid,
            "created_at": created.isoformat(),
            "format": fmt_name,
            "ingest_key": plan.key,
            "normalize_version": NORMALIZE_VERSION,
            "files": [asdict(fr) for fr in files],
            "totals": totals,
            "history_quarantined": sum(fr.quarantined for fr in files if fr.role == "history"),
            "policy": policy_summary,
            "sealed": {"sha256": sealed_sha, "matched": matched} if sealed_sha else None,
            "issues": dict(sorted(issues.items())),
            "scopes": parts.scope_summary(files),
            "delivery": self.delivery_summary(files, retained),
            "elapsed_s": round(elapsed, 3),
        }
        (self.staged.dir / "manifest.json").write_text(json.dumps(manifest, indent=2, sort_keys=True) + "\n")
        record = {
            "created_at": created.replace(tzinfo=None),
            "format": fmt_name,
            "file_sha256s": [fr.sha256 for fr in files],
            "ingest_key": plan.key,
            **totals,
            "sealed_sha256": sealed_sha,
            "sealed_matched": matched if sealed_sha else None,
            "override_fields": policy_summary["override_fields"],
            "override_legal_basis": policy_summary["override_legal_basis"],
            "policy_fingerprint": keyed.fingerprint,
            "elapsed_s": elapsed,
        }
        self.req.report("commit", 0, None)
        ws = self.req.workspace
        final = ws.commit(self.staged, record, [asdict(fr) for fr in files])
        if final is None:  # the same inputs were committed by another process meanwhile
            cur = ws.current_snapshot(self.state)
            assert cur is not None
            return _unchanged(ws, cur, self.started)
        log.info(
            "ingest %s: snapshot %s, %d read, %d loaded, %d quarantined, %d protected excluded",
            self.state, sid, totals["rows_read"], totals["loaded"], totals["quarantined"], totals["protected_excluded"],
        )  # fmt: skip
        return IngestResult(
            state=self.state, status="new", snapshot_id=sid, format=fmt_name, files=files,
            sealed_matched=matched if sealed_sha else None, policy=policy_summary, issues=dict(issues),
            elapsed_s=time.perf_counter() - self.started, path=str(final), **totals,
        )  # fmt: skip


QUARANTINE_SCHEMA = pa.schema([
    ("state", pa.string()), ("file", pa.string()), ("sha256", pa.string()), ("line", pa.int64()),
    ("field", pa.string()), ("reason", pa.string()),
])  # fmt: skip


# ---------------------------------------------------------------------------
# the steps' small pieces
# ---------------------------------------------------------------------------


def _scan(
    con: duckdb.DuckDBPyConnection,
    paths: list[Path],
    state: str,
    format: str | None,
    facts: dict[str, Any] | None = None,
    temp_dir: Path | None = None,
    *,
    verify_first: bool = True,
) -> Any:
    """The reader (indirection so tests can substitute a scan shaped like the contract).

    ``facts`` are the byte-level facts (sha256, line counts) ingest gathered
    to compute its key: the reader reuses them instead of reading the file again.
    ``temp_dir``: the staged snapshot's scratch directory, for the reader's
    temporary copies of input files (removed with the stage, even after a kill).
    ``verify_first``: see ``formats.scan``.
    """
    from voterolls.formats import scan

    return scan(con, paths, state=state, format=format, facts=facts, temp_dir=temp_dir, verify_first=verify_first)


def _get_policy(state: str) -> Any:
    from voterolls.policy import get_policy

    return get_policy(state)


def _vote_history_allowed(policy: Any, override: Any) -> bool:
    # same rule as voterolls.policy.enforce_vote_history
    return bool(policy.vote_history_public) or (override is not None and "vote_history" in override.fields)


def _preparer(
    policy: Any,
    override: Any,
    had_value: list[str],
    tests: Callable[[duckdb.DuckDBPyRelation], duckdb.DuckDBPyRelation] | None = None,
) -> Callable[[duckdb.DuckDBPyConnection, duckdb.DuckDBPyRelation], duckdb.DuckDBPyRelation]:
    """The projection chain every registration row goes through: flags, dates, the law, normalisation.

    One row-for-row chain.  On a clean file it runs inside the reader's
    parallel query, before the rows' lines are numbered from their stream
    position; on any other part the reader's exact rows stream into a second
    cursor and the chain binds against that plain Arrow scan (the reader's
    SQL tree is bound once).  Nothing touches disk before ``enforce``.
    ``had_value`` receives the "__had_<field>" flag columns it adds; ``tests``
    (a projection of the normalised rows) adds the uniformity report's test
    columns (``uniformity.RegistrationTally.project``).  Every step is a
    row-for-row projection: the rows must leave in the order they came.
    """
    from voterolls.policy import enforce

    def prepare(c: duckdb.DuckDBPyConnection, rel: duckdb.DuckDBPyRelation) -> duckdb.DuckDBPyRelation:
        cols = set(rel.columns)
        if "_protected" in cols:
            prot = "(CASE WHEN _protected IS NULL THEN false ELSE coalesce(TRY_CAST(_protected AS BOOLEAN), true) END)"
            rel = rel.project(f"* EXCLUDE (_protected), {prot} AS {PROTECTED}")
        else:
            rel = rel.project(f"*, false AS {PROTECTED}")
        rel = clean_dates(rel)
        cols = set(rel.columns)
        had = [f'("{f}" IS NOT NULL) AS __had_{f}' for f in GOVERNED if f in cols]
        if had:
            rel = rel.project(f"*, {', '.join(had)}")
        had_value[:] = [f"__had_{f}" for f in GOVERNED if f in cols]
        lawful, _findings = enforce(rel, policy, override=override, count=False)
        normal = normalize_registrations(c, lawful, nicknames=False)
        missing = [f.name for f in REGISTRATION_SCHEMA if f.name not in normal.columns]
        if missing:
            normal = normal.project("*, " + ", ".join(f"NULL::{sql_type(REGISTRATION_SCHEMA.field(m).type)} AS {_q(m)}" for m in missing))
        return tests(normal) if tests else normal

    return prepare


def _join_sealed(con: duckdb.DuckDBPyConnection, regs: pa.RecordBatchReader, sealed: Path) -> pa.RecordBatchReader:
    """The lawful rows with the sidecar's tokens joined by voter id, and a flag: did the sidecar match?"""
    cur = quiet(con.cursor())
    view, tokens = sealed_view(cur, sealed)
    cur.from_arrow(regs).create_view("_vr_lawful", replace=True)
    lcols = [c for c in regs.schema.names if c not in tokens]
    sel = ", ".join(f"l.{_q(c)}" for c in lcols)
    toks = ", ".join(f"s.{_q(t)} AS {_q(t)}" for t in tokens)
    return cur.sql(
        f"SELECT {sel}, {toks}, (s.state_voter_id IS NOT NULL) AS {SEALED_MATCH} "
        f"FROM _vr_lawful l LEFT JOIN {view} s ON s.state_voter_id = l.state_voter_id"
    ).to_arrow_reader(BATCH_ROWS)


def _check_accounted(fr: FileResult) -> None:
    """Nothing lost: the file's rows are all loaded, quarantined or withheld (reference data: read)."""
    if fr.role == "registrations":
        accounted = fr.loaded + fr.quarantined + fr.protected_excluded
    elif fr.role == "history":
        accounted = fr.vote_history_loaded + fr.vote_history_withheld + fr.quarantined
    else:  # reference data (an election map): read, not stored as rows
        fr.loaded = fr.rows_read - fr.quarantined
        accounted = fr.rows_read
    if accounted != fr.rows_read:
        raise ReconciliationError(
            f"{fr.file_name}: rows_read {fr.rows_read} != loaded {fr.loaded} + quarantined {fr.quarantined} "
            f"+ protected/withheld {fr.protected_excluded + fr.vote_history_withheld} (+ history {fr.vote_history_loaded})"
        )


def _new_protected(reg: Counts) -> pa.Table:
    """(state_voter_id, source_file) of the protected voters of the new files."""
    ids = pa.concat_arrays(reg.flagged_ids) if reg.flagged_ids else pa.array([], pa.string())
    files = pa.concat_arrays(reg.flagged_files) if reg.flagged_files else pa.array([], pa.string())
    return pa.table({"state_voter_id": ids, "source_file": files})


def _issue_totals(files: list[FileResult], reg: Counts, *, carried: bool) -> tuple[Counter[str], Counter[str]]:
    """Issue tags and values removed over the new view (with no part carried over: the streamed totals)."""
    if not carried:  # a file's own counts are exact; keep the streamed totals (same numbers)
        return reg.issues, reg.policy_removed
    issues: Counter[str] = Counter()
    removed: Counter[str] = Counter()
    for fr in files:
        issues.update(fr.issues)
        removed.update(fr.values_removed)
    return issues, removed


def _totals(files: list[FileResult]) -> dict[str, int]:
    return {
        "rows_read": sum(fr.rows_read for fr in files if fr.role == "registrations"),
        "loaded": sum(fr.loaded for fr in files if fr.role == "registrations"),
        "quarantined": sum(fr.quarantined for fr in files if fr.role == "registrations"),
        "protected_excluded": sum(fr.protected_excluded for fr in files),
        "vote_history_loaded": sum(fr.vote_history_loaded for fr in files),
        "vote_history_withheld": sum(fr.vote_history_withheld for fr in files),
    }


def _refuse_other_states_layout(s: Any, state: str, format: str | None, inputs: list[archives.Input]) -> None:
    """A detected layout that belongs to another state is refused: it would replace this state's roll."""
    owner = getattr(getattr(s, "format_spec", None), "state", None)
    if format is None and owner and owner.upper() != state:
        # the sentence the service's upload check and ``inspect --state`` give too
        from voterolls.formats.inspect import wrong_state_message

        names = ", ".join(i.display for i in inputs[:3]) + (f" and {len(inputs) - 3} more" if len(inputs) > 3 else "")
        raise UserError(f"{names}: {wrong_state_message(s.format, owner, state)}")


def history_only_format(state: str, paths: list[Path]) -> str | None:
    """The named state's format whose history layout every file fits (a history-only delivery).

    Detection judges a delivery by its registration file; history may come
    apart, before or after it, and is then read with the named state's layout.
    """
    from voterolls.formats import formats
    from voterolls.formats.detect import classify

    for fmt in formats().values():
        if (fmt.state or "").upper() != state or fmt.history is None:
            continue
        try:
            if all(classify(fmt, p).role == "history" for p in paths):
                return fmt.name
        except UserError:
            continue
    return None
