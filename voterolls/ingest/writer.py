"""The streaming writer: Arrow batches from DuckDB -> Parquet, counted as they pass.

Counting (rows per source file, protected rows, issue tags, values the law
removed) is vectorised Arrow compute per batch; Python holds one batch (or a
row group's worth) at a time.  Also the DuckDB connection settings ingest uses.
"""

from __future__ import annotations

import os
import queue
import threading
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Sequence
from pathlib import Path
from typing import Any

import duckdb
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from voterolls.normalize import ISSUES_COLUMN, canonical_first_names

#: The flag column of rows excluded as protected (confidential) voters.
PROTECTED = "__vr_protected"
#: The flag column of rows the sealed sidecar matched.
SEALED_MATCH = "__vr_sealed"
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


def default_memory_limit() -> str:
    return os.environ.get("VOTEROLLS_MEMORY_LIMIT", "1GB")


def quiet(con: duckdb.DuckDBPyConnection) -> duckdb.DuckDBPyConnection:
    """No DuckDB progress bar: ingest reports progress itself, and the bar writes to stdout."""
    con.execute("SET enable_progress_bar = false")
    return con


def scratch_connection(tmp_dir: Path, memory_limit: str | None = None, threads: int | None = None) -> duckdb.DuckDBPyConnection:
    """A DuckDB connection with a memory limit that spills into ``tmp_dir`` (the staged snapshot's scratch)."""
    cfg: dict[str, Any] = {"memory_limit": memory_limit or default_memory_limit(), "temp_directory": str(tmp_dir)}
    if threads:
        cfg["threads"] = int(threads)
    return quiet(duckdb.connect(config=cfg))


def count_values(counter: Counter[str], col: pa.ChunkedArray | pa.Array) -> None:
    """Add the value counts of ``col`` to ``counter`` (one Arrow pass)."""
    vc = pc.value_counts(col)
    for v, n in zip(vc.field("values").to_pylist(), vc.field("counts").to_pylist(), strict=True):
        counter[v] += n


class Counts:
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



def overlapped(batches: Iterable[pa.RecordBatch], consume: Callable[[pa.RecordBatch], None], depth: int = 2) -> None:
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


def count_pairs(counter: Counter[tuple[str, str]], files: pa.Array | pa.ChunkedArray, values: pa.Array) -> None:
    """Add (file, value) pair counts (one Arrow group-by per batch)."""
    grouped = pa.table({"f": files, "v": values}).group_by(["f", "v"]).aggregate([([], "count_all")])
    for f, v, n in zip(
        grouped.column("f").to_pylist(), grouped.column("v").to_pylist(), grouped.column("count_all").to_pylist(), strict=True
    ):
        counter[(f, v)] += n


def with_canonical_first_names(batches: pa.RecordBatchReader) -> pa.RecordBatchReader:
    """``first_name_canonical`` mapped through the nickname table, batch by batch (order kept)."""
    schema = batches.schema
    if "first_name_canonical" not in schema.names:
        return batches
    i = schema.get_field_index("first_name_canonical")

    def gen() -> Iterator[pa.RecordBatch]:
        for b in batches:
            yield b.set_column(i, schema.field(i), canonical_first_names(b.column(i)))

    return pa.RecordBatchReader.from_batches(schema, gen())


def parquet_writer(out: Path, schema: pa.Schema) -> pq.ParquetWriter:
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


def stream_write(
    batches: Iterable[pa.RecordBatch],
    out: Path,
    schema: pa.Schema,
    counts: Counts,
    *,
    flag: str | None,
    extra_bool: Sequence[str] = (),
    progress: Callable[[int], None] | None = None,
    observe: Callable[[pa.Table], None] | None = None,
) -> int:
    """Write rows where ``flag`` is false to ``out``; count everything; return rows written.

    ``observe``: called with each table of rows written (before ``schema``'s columns are
    selected: with any extra columns the batches carry), in order.
    """
    writer = parquet_writer(out, schema)
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
            count_values(counts.flagged, fl.column("source_file"))
            counts.flagged_ids.append(fl.column("state_voter_id").combine_chunks())
            counts.flagged_files.append(fl.column("source_file").combine_chunks())
        if pc.any(bad).as_py():
            b = tbl.filter(bad)
            counts.extra_quarantine.append(
                pa.table({"sha256": b.column("source_file"), "line": b.column("source_line")})
            )
        kept = tbl.filter(keep)
        count_values(counts.kept, kept.column("source_file"))
        if ISSUES_COLUMN in kept.column_names:
            lists = kept.column(ISSUES_COLUMN).combine_chunks()
            flat = pc.list_flatten(lists)
            if len(flat):
                count_values(counts.issues, flat)
                src = pc.take(kept.column("source_file"), pc.list_parent_indices(lists))
                count_pairs(counts.issues_by_file, src, flat)
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
            if observe is not None:
                observe(kept)
            pending.append(out_tbl)
            pending_rows += out_tbl.num_rows
            if pending_rows >= BATCH_ROWS:
                flush()
        written += out_tbl.num_rows
        if progress:
            progress(n)

    try:
        # DuckDB computes the next batch while this one is counted and encoded
        overlapped(batches, consume)
        flush()
    finally:
        writer.close()
    return written
