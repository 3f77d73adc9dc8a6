"""Ingest: native files -> law-abiding, normalised Parquet snapshot, every row accounted for.

One call of :func:`ingest` does, for one state::

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

import csv
import dataclasses
import datetime as dt
import hashlib
import json
import os
import queue
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import duckdb
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from voterolls.errors import UserError, require_file
from voterolls.ingest import archives, uniformity
from voterolls.ingest.delivery import (
    STATE,
    DeliveryOptions,
    PartFile,
    check_guards,
    normalise_scope,
    plan_retained,
    scope_from_name,
)
from voterolls.log import get_logger
from voterolls.normalize import (
    ISSUES_COLUMN,
    canonical_first_names,
    clean_dates,
    normalize_registrations,
)
from voterolls.schema import REGISTRATION_SCHEMA, VOTE_HISTORY_SCHEMA, sql_type
from voterolls.sql import identifier as _q
from voterolls.sql import literal as _lit
from voterolls.store import StagedSnapshot, Workspace, check_state

log = get_logger(__name__)

#: Bumped when normalisation changes what is stored, so re-ingesting the same
#: files after an upgrade makes a new snapshot instead of "unchanged".
NORMALIZE_VERSION = "1"

PROTECTED = "__vr_protected"
SEALED_MATCH = "__vr_sealed"
#: Policy-governed fields whose presence before ``enforce`` is recorded (as booleans).
GOVERNED = ("dob", "birth_year", "phone", "email", "party_code")
SEALED_COLUMNS = ("dob_token", "ssn4_token", "dl_token", "name_clk")
BATCH_ROWS = 131_072
#: Columns (nearly) unique per row: a dictionary page is built and then abandoned,
#: so they are written plain (measured: about a quarter of the Parquet CPU at 1M rows).
NO_DICTIONARY = frozenset({"state_voter_id", "source_line", "residence_address", "registration_date", "dob"})
#: Free-text columns nobody filters on by range: their min/max statistics cost string
#: comparisons on every value and prune nothing.  Codes, dates, ids and provenance keep theirs.
NO_STATISTICS = frozenset({
    "last_name", "first_name", "middle_name", "first_name_canonical", "name_suffix", "status_reason",
    "residence_address", "residence_city", "phone", "email", "ssn4_token", "dl_token", "dob_token", "name_clk",
})  # fmt: skip

Progress = Callable[[str, int, int | None], None]


class ReconciliationError(RuntimeError):
    """Counts did not add up: a bug in a reader or in ingest, never a user mistake."""


@dataclass
class FileResult:
    file_name: str
    sha256: str
    role: str
    encoding: str | None
    rows_read: int
    loaded: int
    quarantined: int
    protected_excluded: int
    vote_history_loaded: int = 0
    vote_history_withheld: int = 0
    #: the part of the state the file covers (voterolls.ingest.delivery): state, county:X, range:a-b
    scope: str = "state"
    #: sha256 of the archive the file was unpacked from (None: given as a plain file)
    container_sha256: str | None = None
    #: the snapshot that first ingested the file (later snapshots carry its rows over)
    part_snapshot: str | None = None
    #: issue tags and values the law removed, counted over this file's loaded rows
    issues: dict[str, int] = field(default_factory=dict)
    values_removed: dict[str, int] = field(default_factory=dict)


@dataclass
class IngestResult:
    state: str
    status: str  # "new" | "unchanged"
    snapshot_id: str
    format: str | None
    files: list[FileResult] = field(default_factory=list)
    rows_read: int = 0
    loaded: int = 0
    quarantined: int = 0
    protected_excluded: int = 0
    vote_history_loaded: int = 0
    vote_history_withheld: int = 0
    sealed_matched: int | None = None
    policy: dict[str, Any] = field(default_factory=dict)
    issues: dict[str, int] = field(default_factory=dict)
    elapsed_s: float = 0.0
    path: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


# ---------------------------------------------------------------------------
# helpers
# ---------------------------------------------------------------------------


def sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as fh:
        while chunk := fh.read(1 << 22):
            h.update(chunk)
    return h.hexdigest()


def _policy_fingerprint(policy: Any) -> str:
    keys = ("state", "dob_disclosure", "party_on_file", "vote_history_public", "phone_public", "email_public")
    data = {k: getattr(policy, k, None) for k in keys}
    data["normalize"] = NORMALIZE_VERSION
    return hashlib.sha256(json.dumps(data, sort_keys=True).encode()).hexdigest()[:16]


def _scan(con: duckdb.DuckDBPyConnection, paths: list[Path], state: str, format: str | None, facts: dict[str, Any] | None = None, temp_dir: Path | None = None) -> Any:
    """The reader (indirection so tests can substitute a scan shaped like the contract).

    ``facts`` are the byte-level facts (sha256, line counts) ingest gathered
    to compute its key: the reader reuses them instead of reading the file again.
    ``temp_dir``: the staged snapshot's scratch directory, for the reader's
    temporary copies of input files (removed with the stage, even after a kill).
    """
    from voterolls.formats import scan

    return scan(con, paths, state=state, format=format, facts=facts, temp_dir=temp_dir)


def _get_policy(state: str) -> Any:
    from voterolls.policy import get_policy

    return get_policy(state)


def _vote_history_allowed(policy: Any, override: Any) -> bool:
    # same rule as voterolls.policy.enforce_vote_history
    return bool(policy.vote_history_public) or (override is not None and "vote_history" in override.fields)


def _default_memory_limit() -> str:
    return os.environ.get("VOTEROLLS_MEMORY_LIMIT", "1GB")


def _connect(staged: StagedSnapshot, memory_limit: str | None, threads: int | None) -> duckdb.DuckDBPyConnection:
    cfg: dict[str, Any] = {
        "memory_limit": memory_limit or _default_memory_limit(),
        "temp_directory": str(staged.tmp_dir),
        # keep insertion order: the readers number lines with row_number() OVER ()
    }
    if threads:
        cfg["threads"] = int(threads)
    con = duckdb.connect(config=cfg)
    _quiet(con)
    return con


def _quiet(con: duckdb.DuckDBPyConnection) -> duckdb.DuckDBPyConnection:
    """No DuckDB progress bar: ingest reports progress itself, and the bar writes to stdout."""
    con.execute("SET enable_progress_bar = false")
    return con


# ---------------------------------------------------------------------------
# sealed sidecar
# ---------------------------------------------------------------------------


#: What a sealed column may hold (docs/PRIVACY.md): an HMAC-SHA256 token is 64
#: lower-case hex digits; a name CLK is the base64 of 1024 bits (or 512 when
#: XOR-folded).  Anything else may be plaintext and is refused.
TOKEN_PATTERN = "[0-9a-f]{64}"
CLK_PATTERN = "[A-Za-z0-9+/]{171}=|[A-Za-z0-9+/]{86}=="


def _check_utf8(path: Path) -> None:
    """Refuse a sidecar that is not UTF-8 text, naming file and line (streaming, C-speed decode)."""
    import codecs

    dec = codecs.getincrementaldecoder("utf-8")("strict")
    offset = 0
    newlines = 0
    with path.open("rb") as fh:
        while True:
            chunk = fh.read(1 << 22)
            try:
                dec.decode(chunk, final=not chunk)
            except UnicodeDecodeError as exc:
                # the error offset is relative to what the decoder held (a few carried bytes + chunk)
                pos = max(0, exc.start - (len(exc.object) - len(chunk)))
                line = newlines + chunk.count(b"\n", 0, pos) + 1
                utf16 = offset == 0 and chunk.startswith((b"\xff\xfe", b"\xfe\xff"))
                what = "it looks like UTF-16" if utf16 else "invalid byte sequence"
                raise UserError(
                    f"sealed sidecar is not UTF-8 text ({what}); `voterolls seal` writes UTF-8 CSV",
                    file=path,
                    line=line,
                ) from None
            if not chunk:
                return
            newlines += chunk.count(b"\n")
            offset += len(chunk)


def _sealed_view(con: duckdb.DuckDBPyConnection, sealed: Path) -> tuple[str, list[str]]:
    """Register the sealed sidecar CSV as a view; check encoding, header, id uniqueness, token shape.

    Token columns are checked with one vectorised DuckDB pass: a value that is
    not a token (64 hex digits; base64 for ``name_clk``) may be plaintext, so
    the sidecar is refused, naming file, line and column but never the value.
    """
    require_file(sealed, "sealed sidecar file")
    _check_utf8(sealed)
    with sealed.open(newline="", encoding="utf-8") as fh:
        try:
            header = next(csv.reader(fh), [])
        except csv.Error as exc:
            raise UserError(f"sealed sidecar header cannot be read as CSV ({exc})", file=sealed, line=1) from None
    header = [h.strip() for h in header]
    if not header or header[0] != "state_voter_id":
        raise UserError(
            "sealed sidecar must start with the header state_voter_id,dob_token,ssn4_token,dl_token[,name_clk]",
            file=sealed,
            line=1,
        )
    unknown = [h for h in header[1:] if h not in SEALED_COLUMNS]
    if unknown:
        raise UserError(f"unexpected column {unknown[0]!r} (allowed: {', '.join(SEALED_COLUMNS)})", file=sealed, line=1, field=unknown[0])
    tokens = header[1:]
    cols = ", ".join(f"{_lit(h)}: 'VARCHAR'" for h in header)
    read = f"read_csv({_lit(str(sealed))}, header=true, columns={{{cols}}}, auto_detect=false, quote='\"')"

    def bad(t: str) -> str:
        pattern = CLK_PATTERN if t == "name_clk" else TOKEN_PATTERN
        return f"({_q(t)} <> '' AND NOT regexp_full_match({_q(t)}, {_lit(pattern)}))"

    checks = "".join(f", count(*) FILTER (WHERE {bad(t)}) AS {_q('bad_' + t)}" for t in tokens)
    try:
        rel = con.sql(f"SELECT * FROM {read}")
        agg = rel.aggregate(
            "count(*) - count(DISTINCT state_voter_id) AS d, count(*) FILTER (WHERE state_voter_id IS NULL) AS n" + checks
        ).fetchall()[0]
    except duckdb.Error as exc:
        raise UserError(f"sealed sidecar cannot be read as CSV ({type(exc).__name__})", file=sealed) from None
    if agg[1]:
        raise UserError("a row has no state_voter_id", file=sealed, field="state_voter_id")
    if agg[0]:
        raise UserError(f"{agg[0]} duplicate state_voter_id value(s): each voter must appear once", file=sealed, field="state_voter_id")
    for t, n_bad in zip(tokens, agg[2:], strict=True):
        if n_bad:
            # rare (a refusal): number the records to name the first offending line (header = line 1)
            first = con.sql(
                f"SELECT min(k) FROM (SELECT row_number() OVER () AS k, {_q(t)} FROM {read}) WHERE {bad(t)}"
            ).fetchall()[0][0]
            shape = "base64 CLKs" if t == "name_clk" else "64 lower-case hex digit HMAC-SHA256 tokens"
            raise UserError(
                f"{n_bad} value(s) in column {t} are not sealed tokens (expected {shape} or empty); "
                "the sidecar may hold plaintext and is refused",
                file=sealed,
                line=int(first) + 1 if first is not None else None,
                field=t,
            )
    rel.create_view("_vr_sealed", replace=True)
    return "_vr_sealed", tokens


# ---------------------------------------------------------------------------
# streaming writer
# ---------------------------------------------------------------------------


class _Counts:
    """Accumulators filled batch by batch (vectorised, per batch)."""

    def __init__(self) -> None:
        self.kept: Counter[str] = Counter()
        self.flagged: Counter[str] = Counter()
        self.issues: Counter[str] = Counter()
        self.policy_removed: Counter[str] = Counter()
        #: (source_file sha256, issue tag / field) -> count: what each file contributed
        self.issues_by_file: Counter[tuple[str, str]] = Counter()
        self.removed_by_file: Counter[tuple[str, str]] = Counter()
        self.sealed_matched = 0
        self.flagged_ids: list[pa.Array] = []
        self.flagged_files: list[pa.Array] = []  # the source_file of each flagged id
        self.extra_quarantine: list[pa.Table] = []
        self.rows = 0

    @staticmethod
    def _add(counter: Counter[str], col: pa.ChunkedArray | pa.Array) -> None:
        vc = pc.value_counts(col)
        for v, n in zip(vc.field("values").to_pylist(), vc.field("counts").to_pylist(), strict=True):
            counter[v] += n


def _overlapped(batches: Iterable[pa.RecordBatch], consume: Callable[[pa.RecordBatch], None], depth: int = 2) -> None:
    """``consume`` every batch in a worker thread while this thread pulls the next ones.

    Pulling a batch runs DuckDB (which releases the GIL and uses its own
    threads); consuming it is Arrow compute and Parquet encoding (which also
    release the GIL).  Done one after the other, DuckDB waits while a batch is
    encoded; overlapped, both can run at once (a paired A/B at 1M rows on two
    cores: median 7.9 s vs 8.4 s, within the machine's noise; kept because it
    cannot be slower and bounds memory the same).  At most ``depth`` batches wait in between, so
    memory stays bounded.  The first error on either side stops both and is
    raised here.
    """
    box: queue.Queue[pa.RecordBatch | None] = queue.Queue(maxsize=depth)
    failed: list[BaseException] = []
    stop = threading.Event()

    def work() -> None:
        try:
            while (batch := box.get()) is not None:
                if not stop.is_set():
                    consume(batch)
        except BaseException as exc:  # noqa: BLE001 - handed to the caller's thread
            failed.append(exc)
            stop.set()
            while box.get() is not None:  # drain so the producer never blocks
                pass

    worker = threading.Thread(target=work, name="voterolls-ingest-writer", daemon=True)
    worker.start()
    try:
        for batch in batches:
            if stop.is_set():
                break
            box.put(batch)
    except BaseException:
        stop.set()  # the worker skips what is still queued
        raise
    finally:
        box.put(None)
        worker.join()
    if failed:
        raise failed[0]


def _count_pairs(counter: Counter[tuple[str, str]], files: pa.Array | pa.ChunkedArray, values: pa.Array) -> None:
    """Add (file, value) pair counts (one Arrow group-by per batch)."""
    grouped = pa.table({"f": files, "v": values}).group_by(["f", "v"]).aggregate([([], "count_all")])
    for f, v, n in zip(
        grouped.column("f").to_pylist(), grouped.column("v").to_pylist(), grouped.column("count_all").to_pylist(), strict=True
    ):
        counter[(f, v)] += n


def _with_canonical_first_names(batches: pa.RecordBatchReader) -> pa.RecordBatchReader:
    """``first_name_canonical`` mapped through the nickname table, batch by batch (order kept)."""
    schema = batches.schema
    if "first_name_canonical" not in schema.names:
        return batches
    i = schema.get_field_index("first_name_canonical")

    def gen() -> Iterator[pa.RecordBatch]:
        for b in batches:
            yield b.set_column(i, schema.field(i), canonical_first_names(b.column(i)))

    return pa.RecordBatchReader.from_batches(schema, gen())


def _parquet_writer(out: Path, schema: pa.Schema) -> pq.ParquetWriter:
    # zstd level 1: about 40% less CPU than level 3 for a slightly larger file (ingest is
    # CPU-bound on the Parquet encoding of a 1M-row state; measured 0.32 s vs 0.52 s per 200k rows)
    return pq.ParquetWriter(
        out,
        schema,
        compression="zstd",
        compression_level=1,
        use_dictionary=[n for n in schema.names if n not in NO_DICTIONARY] or False,
        write_statistics=[n for n in schema.names if n not in NO_STATISTICS] or False,
    )


def _stream_write(
    batches: Iterable[pa.RecordBatch],
    out: Path,
    schema: pa.Schema,
    counts: _Counts,
    *,
    flag: str | None,
    extra_bool: Sequence[str] = (),
    progress: Callable[[int], None] | None = None,
) -> int:
    """Write rows where ``flag`` is false to ``out``; count everything; return rows written."""
    # zstd level 1: about 40% less CPU than level 3 for a slightly larger file (ingest is
    # CPU-bound on the Parquet encoding of a 1M-row state; measured 0.32 s vs 0.52 s per 200k rows)
    writer = _parquet_writer(out, schema)
    written = 0
    pending: list[pa.Table] = []  # small batches (one per county file) gathered into one row group
    pending_rows = 0

    def flush() -> None:
        nonlocal pending, pending_rows
        if pending:
            t = pa.concat_tables(pending)
            writer.write_table(t, row_group_size=max(1, t.num_rows))
            pending, pending_rows = [], 0

    def consume(batch: pa.RecordBatch) -> None:
        nonlocal written, pending_rows
        n = batch.num_rows
        if n == 0:
            return
        counts.rows += n
        if flag is not None:
            flagged = pc.fill_null(batch.column(flag), False)
            keep = pc.invert(flagged)
        else:
            flagged = None
            keep = None
        ids = batch.column("state_voter_id")
        missing_id = pc.is_null(ids)
        if keep is None:
            keep = pc.invert(missing_id)
            bad = missing_id
        else:
            bad = pc.and_(keep, missing_id)
            keep = pc.and_(keep, pc.invert(missing_id))
        tbl = pa.Table.from_batches([batch])
        if flagged is not None and pc.any(flagged).as_py():
            fl = tbl.filter(flagged)
            counts._add(counts.flagged, fl.column("source_file"))
            counts.flagged_ids.append(fl.column("state_voter_id").combine_chunks())
            counts.flagged_files.append(fl.column("source_file").combine_chunks())
        if pc.any(bad).as_py():
            b = tbl.filter(bad)
            counts.extra_quarantine.append(
                pa.table({"sha256": b.column("source_file"), "line": b.column("source_line")})
            )
        kept = tbl.filter(keep)
        counts._add(counts.kept, kept.column("source_file"))
        if ISSUES_COLUMN in kept.column_names:
            lists = kept.column(ISSUES_COLUMN).combine_chunks()
            flat = pc.list_flatten(lists)
            if len(flat):
                counts._add(counts.issues, flat)
                src = pc.take(kept.column("source_file"), pc.list_parent_indices(lists))
                _count_pairs(counts.issues_by_file, src, flat)
        for name in extra_bool:
            if name == SEALED_MATCH:
                counts.sealed_matched += int(pc.sum(kept.column(name)).as_py() or 0)
            else:  # "__had_<field>": a value before the policy and none after
                fld = name.removeprefix("__had_")
                removed = pc.and_(pc.fill_null(kept.column(name), False), pc.is_null(kept.column(fld)))
                n_removed = int(pc.sum(removed).as_py() or 0)
                counts.policy_removed[fld] += n_removed
                if n_removed:
                    vc = pc.value_counts(kept.column("source_file").filter(removed))
                    for sha, k in zip(vc.field("values").to_pylist(), vc.field("counts").to_pylist(), strict=True):
                        counts.removed_by_file[(sha, fld)] += k
        out_tbl = kept.select(schema.names).cast(schema)
        if out_tbl.num_rows:
            pending.append(out_tbl)
            pending_rows += out_tbl.num_rows
            if pending_rows >= BATCH_ROWS:
                flush()
        written += out_tbl.num_rows
        if progress:
            progress(n)

    try:
        # DuckDB computes the next batch while this one is counted and encoded
        _overlapped(batches, consume)
        flush()
    finally:
        writer.close()
    return written


# ---------------------------------------------------------------------------
# the pipeline
# ---------------------------------------------------------------------------


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


SNAPSHOT_FILES = ("registrations.parquet", "vote_history.parquet", "quarantine.parquet", "uniformity.parquet")


def _snapshot_damage(ws: Workspace, snap: dict[str, Any]) -> str | None:
    """Why the snapshot's files cannot be trusted (missing, unreadable, wrong row count), or None.

    Reads only Parquet footers and the manifest: cheap, so it runs on every
    "unchanged" ingest.
    """
    d = ws.path / snap["path"] if snap.get("path") else ws.snapshot_dir(snap["state"], snap["snapshot_id"])
    expected = {"registrations.parquet": snap.get("loaded"), "vote_history.parquet": snap.get("vote_history_loaded")}
    for name in SNAPSHOT_FILES:
        p = d / name
        if not p.is_file():
            return f"{name} missing"
        try:
            rows = pq.ParquetFile(p).metadata.num_rows
        except Exception:  # noqa: BLE001 - any failure to read the footer means damaged
            return f"{name} unreadable"
        if expected.get(name) is not None and rows != int(expected[name]):
            return f"{name} has {rows} rows, the catalog {expected[name]}"
    try:
        json.loads((d / "manifest.json").read_text())
    except (OSError, ValueError):
        return "manifest.json missing or unreadable"
    return None


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


def ingest(
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
) -> IngestResult:
    """Ingest a delivery of one state's native file(s) into ``workspace`` as a new snapshot.

    Files may be plain or compressed (``.zip``, nested zips, ``.gz``:
    ``voterolls.ingest.archives``).  Each file has a scope (a county, a
    county range, the whole state; ``voterolls.ingest.delivery``) and
    replaces only its scope of the state's current snapshot; the rest is
    carried over.  ``delivery`` says how (explicit scope, ``replace_state``,
    ``allow_shrink``).

    Returns ``status="unchanged"`` (and writes nothing) when the same files,
    sealed sidecar, override and policy were already ingested as the state's
    current snapshot, or when every file given is already part of it.
    ``override`` is a :class:`voterolls.policy.Override`.
    Raises :class:`UserError` for input mistakes (naming file, line, field).
    """
    started = time.perf_counter()
    ws = workspace if isinstance(workspace, Workspace) else Workspace(workspace)
    state = check_state(state)
    options = delivery or DeliveryOptions()
    plist = [Path(p) for p in ([paths] if isinstance(paths, (str, Path)) else paths)]
    if not plist:
        raise UserError("no input files given")
    for p in plist:
        require_file(p)
    report = progress or (lambda phase, done, total: None)

    report("hash", 0, len(plist))
    # one byte pass per plain file: sha256 (the ingest key) and line counts, both reused by the
    # reader; an archive is hashed as sent (its members are counted once unpacked, in the stage)
    from voterolls.formats.sniff import facts as file_facts

    packed = {str(p) for p in plist if archives.is_compressed(p)}
    facts = {str(p): file_facts(p) for p in plist if str(p) not in packed}
    raw_sha = {str(p): facts[str(p)].sha256 if str(p) in facts else sha256_file(p) for p in plist}
    shas = [raw_sha[str(p)] for p in plist]
    dups = [p for i, p in enumerate(plist) if shas[i] in shas[:i]]
    if dups:
        raise UserError("the same file content is given twice", file=dups[0])
    sealed_path = Path(sealed) if sealed is not None else None
    if sealed_path is not None:
        require_file(sealed_path, "sealed sidecar file")
    sealed_sha = sha256_file(sealed_path) if sealed_path is not None else None
    policy = _get_policy(state)
    fingerprint = _policy_fingerprint(policy)
    key = _ingest_key(shas, format, sealed_sha, override, fingerprint, options)
    with ws.state_lock(state):
        cur = ws.current_snapshot(state)
        if cur is not None:
            same_key = cur["ingest_key"] in (key, _repair_key(key))
            if same_key or _already_in_view(ws, cur, shas, format, sealed_sha, override, fingerprint, options):
                damage = _snapshot_damage(ws, cur)
                if damage is None:
                    log.info("ingest %s: same inputs as snapshot %s; nothing to do", state, cur["snapshot_id"])
                    return _unchanged(ws, cur, started)
                # same inputs, but the stored snapshot cannot be read: rebuild it.  The
                # catalog refuses a second snapshot with the current one's key, so the
                # rebuild alternates between the key and its repair twin (both mean
                # "these inputs"; the next run with the same inputs is "unchanged").
                log.warning("ingest %s: snapshot %s is damaged (%s); rebuilding it", state, cur["snapshot_id"], damage)
                key = _repair_key(key) if cur["ingest_key"] == key else key
                if not same_key:  # a part of a damaged view: rebuild from these files alone
                    options = dataclasses.replace(options, replace_state=True, allow_shrink=True)
                cur = None if same_key else cur

        staged = ws.stage(state)
        try:
            report("unpack", 0, len(packed) or None)
            with archives.unpacked(plist, staged.tmp_dir, {p: raw_sha[p] for p in packed}) as inputs:
                for inp in inputs:
                    if str(inp.path) not in facts:
                        facts[str(inp.path)] = file_facts(inp.path)
                member_shas = [facts[str(inp.path)].sha256 for inp in inputs]
                twice = [inp for k, inp in enumerate(inputs) if member_shas[k] in member_shas[:k]]
                if twice:
                    raise UserError("the same file content is given twice", file=twice[0].display)
                job = _Job(
                    inputs=inputs, facts=facts, format=format, sealed_path=sealed_path, sealed_sha=sealed_sha,
                    override=override, policy=policy, fingerprint=fingerprint, key=key, options=options, base=cur,
                )  # fmt: skip
                try:
                    result = _run(ws, staged, state, job, report, memory_limit, threads, started)
                except UserError as exc:
                    raise _named_for_people(exc, inputs) from None
        except BaseException:
            ws.discard(staged)
            raise
    return result


@dataclass(frozen=True)
class _Job:
    """What one delivery's ingest works on (gathered before the stage, read by ``_run``)."""

    inputs: list[archives.Input]
    facts: dict[str, Any]
    format: str | None
    sealed_path: Path | None
    sealed_sha: str | None
    override: Any
    policy: Any
    fingerprint: str
    key: str
    options: DeliveryOptions
    base: dict[str, Any] | None  # the state's current snapshot record, or None


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


def _already_in_view(
    ws: Workspace, cur: dict[str, Any], shas: list[str], format: str | None, sealed_sha: str | None,
    override: Any, fingerprint: str, options: DeliveryOptions,
) -> bool:  # fmt: skip
    """Is every file given already a part of the state's current snapshot, read the same way?

    Then re-sending one of several submissions changes nothing (each file
    would replace its own scope with the same rows).
    """
    if options.replace_state or options.scope is not None or sealed_sha is not None or override is not None:
        return False
    if cur.get("policy_fingerprint") != fingerprint or (format is not None and format != cur.get("format")):
        return False
    have: set[str] = set()
    for f in ws.file_manifests(cur["state"], cur["snapshot_id"]):
        have.add(f["sha256"])
        if f.get("container_sha256"):
            have.add(f["container_sha256"])
    return set(shas) <= have


def _run(
    ws: Workspace,
    staged: StagedSnapshot,
    state: str,
    job: _Job,
    report: Progress,
    memory_limit: str | None,
    threads: int | None,
    started: float,
) -> IngestResult:
    from voterolls.policy import enforce

    facts, format, sealed_path, sealed_sha = job.facts, job.format, job.sealed_path, job.sealed_sha
    override, policy, fingerprint, key = job.override, job.policy, job.fingerprint, job.key
    plist = [inp.path for inp in job.inputs]
    shas = [facts[str(p)].sha256 for p in plist]
    input_of = {str(inp.path): inp for inp in job.inputs}
    con = _connect(staged, memory_limit, threads)
    s = None
    try:
        report("scan", 0, None)
        try:
            s = _scan(con, plist, state, format, facts, staged.tmp_dir)
        except UserError:
            history_format = history_only_format(state, plist) if format is None else None
            if history_format is None:
                raise
            s = _scan(con, plist, state, history_format, facts, staged.tmp_dir)
        _refuse_other_states_layout(s, state, format, job.inputs)
        total_rows = sum(f.rows_read for f in getattr(s, "_files", []) if f.role == "registrations") or None

        # -- registrations: flags, dates, law, normalisation, tokens ---------------------------
        # ``prepare`` is one row-for-row projection chain (flags, dates, law,
        # normalisation).  On a clean file it runs inside the reader's parallel
        # query, before the rows' lines are numbered from their stream position;
        # on any other part the reader's exact rows stream into a second cursor
        # and the chain binds against that plain Arrow scan (the reader's SQL
        # tree is bound once).  Nothing touches disk before ``enforce``.
        had_value: list[str] = []  # "__had_<field>" flags (the same for every part)

        def prepare(c: duckdb.DuckDBPyConnection, rel: duckdb.DuckDBPyRelation) -> duckdb.DuckDBPyRelation:
            cols = set(rel.columns)
            if "_protected" in cols:
                prot = "(CASE WHEN _protected IS NULL THEN false ELSE coalesce(TRY_CAST(_protected AS BOOLEAN), true) END)"
                rel = rel.project(f"* EXCLUDE (_protected), {prot} AS {PROTECTED}")
            else:
                rel = rel.project(f"*, false AS {PROTECTED}")
            rel = clean_dates(c, rel)
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
            return normal

        regs = _with_canonical_first_names(s.registration_batches(BATCH_ROWS, prepare))
        extra_bool = list(had_value)
        if sealed_path is not None:
            cur = _quiet(con.cursor())
            view, tokens = _sealed_view(cur, sealed_path)
            cur.from_arrow(regs).create_view("_vr_lawful", replace=True)
            lcols = [c for c in regs.schema.names if c not in tokens]
            sel = ", ".join(f"l.{_q(c)}" for c in lcols)
            toks = ", ".join(f"s.{_q(t)} AS {_q(t)}" for t in tokens)
            regs = cur.sql(
                f"SELECT {sel}, {toks}, (s.state_voter_id IS NOT NULL) AS {SEALED_MATCH} "
                f"FROM _vr_lawful l LEFT JOIN {view} s ON s.state_voter_id = l.state_voter_id"
            ).to_arrow_reader(BATCH_ROWS)
            extra_bool.append(SEALED_MATCH)

        reg_counts = _Counts()
        done = 0

        def on_rows(n: int) -> None:
            nonlocal done
            done += n
            report("registrations", done, total_rows)

        reg_path = staged.dir / "registrations.parquet"
        written = _stream_write(regs, reg_path, REGISTRATION_SCHEMA, reg_counts, flag=PROTECTED, extra_bool=extra_bool, progress=on_rows)

        # -- vote history -------------------------------------------------------------------
        vh_counts = _Counts()
        vh_path = staged.dir / "vote_history.parquet"
        vh = s.vote_history
        if vh is None:
            pq.write_table(VOTE_HISTORY_SCHEMA.empty_table(), vh_path, compression="zstd")
        elif _vote_history_allowed(policy, override):
            report("vote_history", 0, None)
            ids = (
                pa.concat_arrays(reg_counts.flagged_ids).unique()
                if reg_counts.flagged_ids
                else pa.array([], pa.string())
            )
            cur2 = _quiet(con.cursor())
            cur2.register("_vr_prot_ids", pa.table({"state_voter_id": ids}))
            cur2.from_arrow(vh.to_arrow_reader(BATCH_ROWS)).create_view("_vr_vh", replace=True)
            earlier = _base_protected(ws, job)
            still = _still_protecting(ws, job, s, state) if earlier is not None else set()
            if not still:
                vh_flagged = cur2.sql(
                    f"SELECT v.*, (p.state_voter_id IS NOT NULL) AS {PROTECTED} FROM _vr_vh v "
                    f"LEFT JOIN _vr_prot_ids p ON p.state_voter_id = v.state_voter_id"
                )
            else:  # protected voters of the parts carried over are known by digest only
                cur2.register("_vr_still", pa.table({"sha": pa.array(sorted(still), pa.string())}))
                cur2.execute(
                    f"CREATE TEMP TABLE _vr_prot_d AS SELECT {PROTECTED_DIGEST_SQL.format(id='state_voter_id')} AS d "
                    f"FROM _vr_prot_ids UNION SELECT d FROM read_parquet({_lit(str(earlier))}) "
                    "WHERE source_file IN (SELECT sha FROM _vr_still)"
                )
                vh_flagged = cur2.sql(
                    f"SELECT v.*, (p.d IS NOT NULL) AS {PROTECTED} FROM _vr_vh v "
                    f"LEFT JOIN _vr_prot_d p ON p.d = {PROTECTED_DIGEST_SQL.format(id='v.state_voter_id')}"
                )
            _stream_write(vh_flagged.to_arrow_reader(BATCH_ROWS), vh_path, VOTE_HISTORY_SCHEMA, vh_counts, flag=PROTECTED)
        else:
            report("vote_history", 0, None)
            for sha, n in vh.aggregate("source_file, count(*) AS n", "source_file").fetchall():
                vh_counts.flagged[sha] += int(n)
            pq.write_table(VOTE_HISTORY_SCHEMA.empty_table(), vh_path, compression="zstd")

        scan_report = s.finish()
    finally:
        if s is not None:  # the reader's temporary copies go even when ingest failed
            try:
                s.finish()
            except Exception:  # noqa: BLE001 - already failing; the original error matters
                log.debug("scan cleanup after failure raised")
        con.close()

    # -- reconcile, per file ------------------------------------------------------------------
    report("reconcile", 0, None)
    fmt_name = getattr(s, "format", format)
    by_path = {str(p): sha for p, sha in zip(plist, shas, strict=True)}
    name_of = {sha: input_of[str(p)].display for p, sha in zip(plist, shas, strict=True)}
    q_tbl = scan_report.quarantine
    q_counts: Counter[str] = Counter()
    if q_tbl.num_rows:
        _Counts._add(q_counts, q_tbl.column("file"))
    extra_q = Counter()
    for t in reg_counts.extra_quarantine:
        _Counts._add(extra_q, t.column("sha256"))
    files: list[FileResult] = []
    for f in scan_report.files:
        sha = by_path.get(str(f.path)) or by_path.get(str(Path(f.path)))
        if sha is None:
            raise ReconciliationError(f"reader reported a file that was not given: {Path(f.path).name}")
        before = facts.get(str(f.path))
        st = Path(f.path).stat()
        if f.sha256 != sha or (before is not None and (st.st_size, st.st_mtime_ns) != (before.size, before.mtime_ns)):
            # the bytes were hashed once, before reading: a rewrite since then changes size or mtime
            raise UserError("the file changed while it was being ingested; run again", file=name_of[sha])
        quarantined = int(q_counts.get(str(f.path), 0)) + int(extra_q.get(sha, 0))
        if getattr(f, "rows_quarantined", None) is not None and int(q_counts.get(str(f.path), 0)) != int(f.rows_quarantined):
            raise ReconciliationError(
                f"{Path(f.path).name}: reader counted {f.rows_quarantined} quarantined rows but listed {q_counts.get(str(f.path), 0)}"
            )
        role = getattr(f, "role", "registrations")
        inp = input_of.get(str(f.path))
        fr = FileResult(
            file_name=name_of[sha], sha256=sha, role=role, encoding=getattr(f, "encoding", None),
            rows_read=int(f.rows_read), loaded=int(reg_counts.kept.get(sha, 0)), quarantined=quarantined,
            protected_excluded=int(reg_counts.flagged.get(sha, 0)),
            vote_history_loaded=int(vh_counts.kept.get(sha, 0)), vote_history_withheld=int(vh_counts.flagged.get(sha, 0)),
            container_sha256=inp.container_sha256 if inp is not None else None, part_snapshot=staged.snapshot_id,
            issues={k: n for (h, k), n in sorted(reg_counts.issues_by_file.items()) if h == sha},
            values_removed={k: n for (h, k), n in sorted(reg_counts.removed_by_file.items()) if h == sha},
        )  # fmt: skip
        if role == "registrations":
            accounted = fr.loaded + fr.quarantined + fr.protected_excluded
        elif role == "history":
            accounted = fr.vote_history_loaded + fr.vote_history_withheld + fr.quarantined
        else:  # reference data (an election map): read, not stored as rows
            fr.loaded = fr.rows_read - fr.quarantined
            accounted = fr.rows_read
        if accounted != fr.rows_read:
            raise ReconciliationError(
                f"{fr.file_name}: rows_read {fr.rows_read} != loaded {fr.loaded} + quarantined {fr.quarantined} "
                f"+ protected/withheld {fr.protected_excluded + fr.vote_history_withheld} (+ history {fr.vote_history_loaded})"
            )
        files.append(fr)
    seen = {fr.sha256 for fr in files}
    stray = (set(reg_counts.kept) | set(reg_counts.flagged) | set(vh_counts.kept)) - seen
    if stray:
        raise ReconciliationError(f"rows carry a source_file that is none of the inputs ({len(stray)} value(s))")
    loaded = sum(fr.loaded for fr in files if fr.role == "registrations")
    if loaded != written or pq.ParquetFile(reg_path).metadata.num_rows != written:
        raise ReconciliationError(f"registrations written {written} != loaded {loaded}")

    # -- quarantine ---------------------------------------------------------------------------
    q_parts = []
    if q_tbl.num_rows:
        fnames = pc.cast(q_tbl.column("file"), pa.string()).to_pylist()
        q_parts.append(
            pa.table(
                {
                    "state": pa.array([state] * q_tbl.num_rows, pa.string()),
                    "file": pa.array([name_of.get(by_path.get(x) or "", Path(x).name) if x else None for x in fnames], pa.string()),
                    "sha256": pa.array([by_path.get(x) for x in fnames], pa.string()),
                    "line": pc.cast(q_tbl.column("line"), pa.int64()),
                    "field": pc.cast(q_tbl.column("field"), pa.string()),
                    "reason": pc.cast(q_tbl.column("reason"), pa.string()),
                }
            )
        )
    for t in reg_counts.extra_quarantine:
        shas_q = t.column("sha256").to_pylist()
        q_parts.append(
            pa.table(
                {
                    "state": pa.array([state] * t.num_rows, pa.string()),
                    "file": pa.array([name_of.get(x) for x in shas_q], pa.string()),
                    "sha256": pa.array(shas_q, pa.string()),
                    "line": pc.cast(t.column("line"), pa.int64()),
                    "field": pa.array(["state_voter_id"] * t.num_rows, pa.string()),
                    "reason": pa.array(["missing voter id"] * t.num_rows, pa.string()),
                }
            )
        )
    q_schema = pa.schema([("state", pa.string()), ("file", pa.string()), ("sha256", pa.string()), ("line", pa.int64()), ("field", pa.string()), ("reason", pa.string())])
    q_all = pa.concat_tables([p.cast(q_schema) for p in q_parts]) if q_parts else q_schema.empty_table()
    pq.write_table(q_all, staged.dir / "quarantine.parquet", compression="zstd")

    # -- the delivery: scopes, guards, the parts carried over ----------------------------------
    report("delivery", 0, None)
    spec = getattr(s, "format_spec", None)
    _assign_scopes(files, job, state, spec, reg_path, vh_path, input_of)
    retained = _carry_over(ws, staged, state, files, job, reg_counts)
    files = retained + files
    loaded = sum(fr.loaded for fr in files if fr.role == "registrations")
    issues_all: Counter[str] = Counter()
    removed_all: Counter[str] = Counter()
    for fr in files:
        issues_all.update(fr.issues)
        removed_all.update(fr.values_removed)
    if not retained:  # a file's own counts are exact; keep the streamed totals (same numbers)
        issues_all, removed_all = reg_counts.issues, reg_counts.policy_removed
    if pq.ParquetFile(reg_path).metadata.num_rows != loaded:
        raise ReconciliationError(f"registrations in the snapshot {pq.ParquetFile(reg_path).metadata.num_rows} != loaded {loaded}")

    # -- uniformity ------------------------------------------------------------------------------
    report("uniformity", 0, None)
    uni = uniformity.compute(
        reg_path,
        vh_path,
        state=state,
        snapshot_id=staged.snapshot_id,
        spec=spec,
        policy=policy,
        override=override,
        issues=issues_all,
        policy_removed=removed_all,
        sealed_tokens=bool(sealed_path),
        memory_limit=memory_limit or _default_memory_limit(),
        temp_dir=staged.tmp_dir,
    )
    pq.write_table(uni, staged.dir / "uniformity.parquet", compression="zstd")

    # -- manifest + commit -----------------------------------------------------------------------
    from voterolls.policy import allowed_columns

    allowed = allowed_columns(policy, override)
    policy_summary = {
        "dob_disclosure": policy.dob_disclosure,
        "allowed": {k: bool(v) for k, v in allowed.items() if k in ("dob", "birth_year", "phone", "email", "party")},
        "vote_history_public": _vote_history_allowed(policy, override),
        "values_removed": dict(sorted(removed_all.items())),
        "protected_excluded": sum(fr.protected_excluded for fr in files),
        "override_fields": sorted(override.fields) if override is not None else [],
        "override_legal_basis": override.legal_basis.strip() if override is not None else None,
        "fingerprint": fingerprint,
    }
    totals = {
        "rows_read": sum(fr.rows_read for fr in files if fr.role == "registrations"),
        "loaded": loaded,
        "quarantined": sum(fr.quarantined for fr in files if fr.role == "registrations"),
        "protected_excluded": sum(fr.protected_excluded for fr in files),
        "vote_history_loaded": sum(fr.vote_history_loaded for fr in files),
        "vote_history_withheld": sum(fr.vote_history_withheld for fr in files),
    }
    created = dt.datetime.now(dt.UTC)
    elapsed = time.perf_counter() - started
    manifest = {
        "state": state,
        "snapshot_id": staged.snapshot_id,
        "created_at": created.isoformat(),
        "format": fmt_name,
        "ingest_key": key,
        "normalize_version": NORMALIZE_VERSION,
        "files": [asdict(fr) for fr in files],
        "totals": totals,
        "history_quarantined": sum(fr.quarantined for fr in files if fr.role == "history"),
        "policy": policy_summary,
        "sealed": {"sha256": sealed_sha, "matched": reg_counts.sealed_matched} if sealed_sha else None,
        "issues": dict(sorted(issues_all.items())),
        "scopes": _scope_summary(files),
        "delivery": {
            "scope": job.options.scope, "replace_state": job.options.replace_state,
            "allow_shrink": job.options.allow_shrink, "based_on": job.base["snapshot_id"] if job.base else None,
            "new_files": [fr.file_name for fr in files if fr.part_snapshot == staged.snapshot_id],
            "retained_files": [fr.file_name for fr in retained],
        },
        "elapsed_s": round(elapsed, 3),
    }
    (staged.dir / "manifest.json").write_text(json.dumps(manifest, indent=2, sort_keys=True) + "\n")
    record = {
        "created_at": created.replace(tzinfo=None),
        "format": fmt_name,
        "file_sha256s": [fr.sha256 for fr in files],
        "ingest_key": key,
        **totals,
        "sealed_sha256": sealed_sha,
        "sealed_matched": reg_counts.sealed_matched if sealed_sha else None,
        "override_fields": policy_summary["override_fields"],
        "override_legal_basis": policy_summary["override_legal_basis"],
        "policy_fingerprint": fingerprint,
        "elapsed_s": elapsed,
    }
    report("commit", 0, None)
    final = ws.commit(staged, record, [asdict(fr) for fr in files])
    if final is None:  # the same inputs were committed by another process meanwhile
        cur = ws.current_snapshot(state)
        assert cur is not None
        return _unchanged(ws, cur, started)
    log.info(
        "ingest %s: snapshot %s, %d read, %d loaded, %d quarantined, %d protected excluded",
        state, staged.snapshot_id, totals["rows_read"], loaded, totals["quarantined"], totals["protected_excluded"],
    )  # fmt: skip
    return IngestResult(
        state=state,
        status="new",
        snapshot_id=staged.snapshot_id,
        format=fmt_name,
        files=files,
        sealed_matched=reg_counts.sealed_matched if sealed_sha else None,
        policy=policy_summary,
        issues=dict(issues_all),
        elapsed_s=time.perf_counter() - started,
        path=str(final),
        **totals,
    )


# ---------------------------------------------------------------------------
# deliveries: wrong state, scopes, the parts carried over
# ---------------------------------------------------------------------------

#: Protected voters' ids are never stored; their digests are, so that vote history arriving in
#: a later part is withheld too (``protected.parquet``).  A digest of an id is not a secret to
#: someone holding the state's roll; it keeps the ids out of plain view, nothing more.
PROTECTED_DIGEST_SQL = "sha256(CAST({id} AS VARCHAR))"
PROTECTED_FILE = "protected.parquet"


def _refuse_other_states_layout(s: Any, state: str, format: str | None, inputs: list[archives.Input]) -> None:
    """A detected layout that belongs to another state is refused: it would replace this state's roll."""
    owner = getattr(getattr(s, "format_spec", None), "state", None)
    if format is None and owner and owner.upper() != state:
        names = ", ".join(i.display for i in inputs[:3]) + (f" and {len(inputs) - 3} more" if len(inputs) > 3 else "")
        raise UserError(
            f"{names}: the layout is {owner.upper()}'s ({s.format}), not {state}'s, so it was not ingested as {state}; "
            f"ingest it as {owner.upper()}, or pass --format {s.format} to read it as {state}'s file anyway"
        )


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


def _assign_scopes(
    files: list[FileResult], job: _Job, state: str, spec: Any, reg_path: Path, vh_path: Path,
    input_of: dict[str, archives.Input],
) -> None:  # fmt: skip
    """Each new file's scope: as given, else from its name, else from its rows' one county, else the state."""
    layouts = spec.layouts() if spec is not None and hasattr(spec, "layouts") else {}
    by_data: list[FileResult] = []
    for fr in files:
        if job.options.scope is not None:
            fr.scope = job.options.scope
            continue
        member = fr.file_name.rsplit("!", 1)[-1].rsplit("/", 1)[-1]
        found = scope_from_name(member, fr.role, state, layouts)
        lay = layouts.get(fr.role)
        if found is None and lay is not None and getattr(lay, "per_county", False):
            by_data.append(fr)
        fr.scope = found or STATE
    if not by_data:
        return
    con = _quiet(duckdb.connect())
    try:
        for path, role in ((reg_path, "registrations"), (vh_path, "history")):
            want = [fr for fr in by_data if fr.role == role]
            if not want:
                continue
            rows = con.execute(
                f"SELECT source_file, count(DISTINCT county), any_value(county) FROM read_parquet({_lit(str(path))}) "
                "WHERE source_file IN (SELECT unnest(?)) GROUP BY source_file",
                [[fr.sha256 for fr in want]],
            ).fetchall()
            one = {sha: value for sha, n, value in rows if n == 1 and value}
            for fr in want:
                if fr.sha256 in one:
                    try:
                        fr.scope = normalise_scope("county:" + str(one[fr.sha256]))
                    except UserError:
                        fr.scope = STATE  # a county value that is no scope name: the file stays statewide
    finally:
        con.close()


def _base_protected(ws: Workspace, job: _Job) -> Path | None:
    """The digests of protected voters known from the parts the new snapshot builds on."""
    if job.base is None or job.options.replace_state:
        return None
    p = ws.path / job.base["path"] / PROTECTED_FILE
    return p if p.is_file() else None


def _still_protecting(ws: Workspace, job: _Job, s: Any, state: str) -> set[str]:
    """The current snapshot's registration files whose protected voters still count for new history.

    Those this delivery does not replace: judged by the new registration
    files' names (a file whose scope only its rows tell counts as replacing
    nothing, so more history is withheld, never less).
    """
    if job.base is None or job.options.replace_state:
        return set()
    spec = getattr(s, "format_spec", None)
    layouts = spec.layouts() if spec is not None and hasattr(spec, "layouts") else {}
    new_scopes = set()
    for f in getattr(s, "files", []):
        if f.role != "registrations":
            continue
        name = next((i.display for i in job.inputs if str(i.path) == str(f.path)), Path(f.path).name)
        member = name.rsplit("!", 1)[-1].rsplit("/", 1)[-1]
        found = job.options.scope or scope_from_name(member, "registrations", state, layouts)
        if found is not None:
            new_scopes.add(found)
    if STATE in new_scopes:
        return set()
    return {
        fr.sha256 for fr in _base_files(ws, job.base) if fr.role == "registrations" and fr.scope not in new_scopes
    }


def _base_files(ws: Workspace, base: dict[str, Any]) -> list[FileResult]:
    """The current snapshot's files, with their scopes and per-file counts (older manifests: defaults)."""
    manifest = json.loads((ws.path / base["path"] / "manifest.json").read_text())
    names = {f.name for f in dataclasses.fields(FileResult)}
    out = []
    for entry in manifest.get("files", []):
        fr = FileResult(**{k: v for k, v in entry.items() if k in names})
        fr.scope = fr.scope or STATE
        fr.part_snapshot = fr.part_snapshot or base["snapshot_id"]
        out.append(fr)
    return out


def _part(fr: FileResult) -> PartFile:
    return PartFile(
        file_name=fr.file_name, sha256=fr.sha256, role=fr.role, scope=fr.scope, loaded=fr.loaded,
        vote_history_loaded=fr.vote_history_loaded, rows_read=fr.rows_read,
    )  # fmt: skip


def _carry_over(
    ws: Workspace, staged: StagedSnapshot, state: str, files: list[FileResult], job: _Job, reg_counts: _Counts
) -> list[FileResult]:
    """Apply the guards, then carry the parts this delivery does not replace into the new snapshot.

    Returns the retained files (their counts as in the snapshot they come
    from, less vote-history rows of voters this delivery marks protected).
    Rows are copied by ``source_file`` from the current snapshot's Parquet
    (DuckDB filter, Arrow batches; the new part's rows follow them).
    """
    base = job.base
    old = _base_files(ws, base) if base is not None else []
    new_parts = [_part(fr) for fr in files]
    old_parts = [_part(fr) for fr in old]
    new_shas = {fr.sha256 for fr in files}
    kept = [k for k in plan_retained(new_parts, old_parts, job.options, state) if k.sha256 not in new_shas]
    check_guards(state, new_parts, old_parts, kept, job.options)
    con = _quiet(duckdb.connect(config={"memory_limit": _default_memory_limit(), "temp_directory": str(staged.tmp_dir)}))
    try:
        new_ids = pa.concat_arrays(reg_counts.flagged_ids) if reg_counts.flagged_ids else pa.array([], pa.string())
        new_files = pa.concat_arrays(reg_counts.flagged_files) if reg_counts.flagged_files else pa.array([], pa.string())
        con.register("_vr_new_prot", pa.table({"state_voter_id": new_ids, "source_file": new_files}))
        keep_shas = {k.sha256 for k in kept}
        con.register("_vr_keep", pa.table({"sha": pa.array(sorted(keep_shas), pa.string())}))
        _write_protected(con, staged, _base_protected(ws, job))
        if not kept:
            return []
        retained = [fr for fr in old if fr.sha256 in keep_shas]
        old_dir = ws.path / base["path"]
        keep = "source_file IN (SELECT sha FROM _vr_keep)"
        _merge(con, old_dir, staged, "registrations.parquet", REGISTRATION_SCHEMA, keep)
        # vote history of voters this delivery marks protected is withheld from the retained parts too
        newly = "state_voter_id IN (SELECT state_voter_id FROM _vr_new_prot)"
        withheld = dict(
            con.execute(
                f"SELECT source_file, count(*) FROM read_parquet({_lit(str(old_dir / 'vote_history.parquet'))}) "
                f"WHERE {keep} AND {newly} GROUP BY source_file"
            ).fetchall()
        ) if len(new_ids) else {}  # fmt: skip
        _merge(con, old_dir, staged, "vote_history.parquet", VOTE_HISTORY_SCHEMA, f"{keep} AND NOT ({newly})")
        _merge(con, old_dir, staged, "quarantine.parquet", None, "sha256 IN (SELECT sha FROM _vr_keep)")
    finally:
        con.close()
    for fr in retained:
        n = int(withheld.get(fr.sha256, 0))
        fr.vote_history_loaded -= n
        fr.vote_history_withheld += n
    return retained


def _write_protected(con: duckdb.DuckDBPyConnection, staged: StagedSnapshot, earlier: Path | None) -> None:
    """``protected.parquet``: (digest, registration file) of every protected voter of the new view.

    A voter's protection comes with the registrations part that says so: the
    digests of a replaced part go with it, those of a carried-over part stay.
    """
    sql = f"SELECT DISTINCT {PROTECTED_DIGEST_SQL.format(id='state_voter_id')} AS d, source_file FROM _vr_new_prot"
    if earlier is not None:
        sql += (
            f" UNION SELECT d, source_file FROM read_parquet({_lit(str(earlier))}) "
            "WHERE source_file IN (SELECT sha FROM _vr_keep)"
        )
    table = con.sql(sql).to_arrow_table()
    if table.num_rows:
        pq.write_table(table.sort_by([("d", "ascending"), ("source_file", "ascending")]), staged.dir / PROTECTED_FILE, compression="zstd")


def _merge(
    con: duckdb.DuckDBPyConnection, old_dir: Path, staged: StagedSnapshot, name: str, schema: pa.Schema | None, where: str
) -> None:
    """``staged/name`` becomes the old snapshot's rows matching ``where`` followed by the new part's rows."""
    new = staged.dir / name
    part = staged.tmp_dir / f"part_{name}"
    os.replace(new, part)
    old = old_dir / name
    out_schema = schema if schema is not None else pq.read_schema(part)
    writer = _parquet_writer(new, out_schema) if schema is not None else pq.ParquetWriter(new, out_schema, compression="zstd")
    try:
        sources: list[Iterable[pa.RecordBatch]] = []
        if old.is_file():
            sources.append(con.sql(f"SELECT * FROM read_parquet({_lit(str(old))}) WHERE {where}").to_arrow_reader(BATCH_ROWS))
        sources.append(pq.ParquetFile(part).iter_batches(BATCH_ROWS))
        for batches in sources:
            for b in batches:
                if b.num_rows:
                    t = pa.Table.from_batches([b]).select(out_schema.names).cast(out_schema)
                    writer.write_table(t, row_group_size=max(1, t.num_rows))
    finally:
        writer.close()
    part.unlink(missing_ok=True)


def _scope_summary(files: list[FileResult]) -> list[dict[str, Any]]:
    """Per (role, scope): files, rows and the snapshot(s) the rows were first ingested in."""
    out: dict[tuple[str, str], dict[str, Any]] = {}
    for fr in files:
        e = out.setdefault(
            (fr.role, fr.scope),
            {"role": fr.role, "scope": fr.scope, "files": 0, "loaded": 0, "vote_history_loaded": 0, "part_snapshots": []},
        )
        e["files"] += 1
        e["loaded"] += fr.loaded
        e["vote_history_loaded"] += fr.vote_history_loaded
        if fr.part_snapshot and fr.part_snapshot not in e["part_snapshots"]:
            e["part_snapshots"].append(fr.part_snapshot)
    return [out[k] for k in sorted(out)]
