"""The compiler side of a sealed-only delivery: check it holds no plaintext, store it as a snapshot.

``voterolls ingest-sealed XX DELIVERY`` takes the directory ``voterolls seal
--sealed-only`` wrote (:mod:`voterolls.policy.sealed_only`) and makes it the
state's current snapshot.  The delivery is refused, naming the file and
column (never a value), when

* a column is not one a sealed-only delivery may hold (an extra column could
  be plaintext),
* a token column holds anything but 64 lower-case hex digits, or an encoding
  column anything but base64 of the agreed filter length,
* ``state_voter_id`` is empty or repeated.

The snapshot's ``registrations.parquet`` has every national-schema column
(names, dates, address NULL) plus the delivery's token and encoding columns,
so the workspace views, estimates, lists and report read it like any other;
its format is recorded as ``sealed-only-v1`` so linkage can tell.
"""

from __future__ import annotations

import hashlib
import json
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated

import duckdb
import pyarrow as pa
import typer

from voterolls.errors import UserError
from voterolls.log import get_logger
from voterolls.policy.sealed_only import (
    DELIVERY_COLUMNS,
    ENCODING_COLUMNS,
    FILTER_BITS,
    TOKEN_NAMES,
    read_manifest,
)
from voterolls.schema import REGISTRATION_SCHEMA, VOTE_HISTORY_SCHEMA, sql_type
from voterolls.sql import literal
from voterolls.store import Workspace, check_state, workspace_option_default

log = get_logger(__name__)

#: The format name a sealed-only snapshot records (linkage checks it).
SEALED_FORMAT = "sealed-only-v1"

_HEX = "^[0-9a-f]{64}$"
_B64_LEN = 4 * ((FILTER_BITS // 8 + 2) // 3)


@dataclass(frozen=True)
class SealedIngestResult:
    state: str
    snapshot_id: str | None
    status: str
    loaded: int
    vote_history_loaded: int


def _check_registrations(con: duckdb.DuckDBPyConnection, path: Path) -> int:
    cols = [
        r[0]
        for r in con.execute(f"DESCRIBE SELECT * FROM read_parquet({literal(path)})").fetchall()
    ]
    extra = [c for c in cols if c not in DELIVERY_COLUMNS]
    if extra:
        raise UserError(
            f"column(s) {', '.join(extra)} are not part of a sealed-only delivery and may be "
            "plaintext; the delivery is refused",
            file=path,
            field=extra[0],
        )
    if "state_voter_id" not in cols:
        raise UserError(
            "the delivery has no state_voter_id column", file=path, field="state_voter_id"
        )
    src = f"read_parquet({literal(path)})"
    checks = ["count(*) FILTER (WHERE state_voter_id IS NULL OR state_voter_id = '')"]
    names = ["state_voter_id"]
    for c in cols:
        if c in TOKEN_NAMES:
            checks.append(
                f"count(*) FILTER (WHERE {c} IS NOT NULL AND NOT regexp_full_match({c}, '{_HEX}'))"
            )
            names.append(c)
        elif c in ENCODING_COLUMNS:
            checks.append(
                f"count(*) FILTER (WHERE {c} IS NOT NULL AND (length({c}) <> {_B64_LEN} "
                f"OR NOT regexp_full_match({c}, '^[A-Za-z0-9+/]+=*$')))"
            )
            names.append(c)
    bad = con.execute(f"SELECT {', '.join(checks)} FROM {src}").fetchall()[0]
    for name, n in zip(names, bad, strict=True):
        if n:
            what = (
                "empty"
                if name == "state_voter_id"
                else "64 lower-case hex digit tokens"
                if name in TOKEN_NAMES
                else f"base64 encodings of {FILTER_BITS} bits"
            )
            raise UserError(
                f"{n:,} value(s) of {name} are not {what}; the delivery may hold plaintext and is refused"
                if name != "state_voter_id"
                else f"{n:,} registration(s) have an empty state_voter_id",
                file=path,
                field=name,
            )
    n, distinct = con.execute(
        f"SELECT count(*), count(DISTINCT state_voter_id) FROM {src}"
    ).fetchall()[0]
    if n != distinct:
        raise UserError(
            f"{n - distinct:,} registration(s) repeat a state_voter_id",
            file=path,
            field="state_voter_id",
        )
    return int(n)


def _sha256(paths: list[Path]) -> str:
    h = hashlib.sha256()
    for p in paths:
        with open(p, "rb") as fh:
            for block in iter(lambda: fh.read(1 << 20), b""):
                h.update(block)
    return h.hexdigest()


def _columns(con: duckdb.DuckDBPyConnection, path: Path) -> set[str]:
    return {r[0] for r in con.execute(f"DESCRIBE SELECT * FROM read_parquet({literal(path)})").fetchall()}


def _national_columns(schema: pa.Schema, present: set[str], state: str, *, cast_strings: bool) -> list[str]:
    """SELECT items giving ``schema``'s columns in order: the state named, a column the delivery
    lacks as a typed NULL, text columns cast to VARCHAR where ``cast_strings``."""
    items = []
    for f in schema:
        if f.name == "state":
            items.append(f"{literal(state)} AS state")
        elif f.name not in present:
            items.append(f'NULL::{sql_type(f.type)} AS "{f.name}"')
        elif cast_strings and pa.types.is_string(f.type):
            items.append(f'CAST("{f.name}" AS VARCHAR) AS "{f.name}"')
        else:
            items.append(f'"{f.name}"')
    return items


#: The files of a sealed-only delivery directory (anything else in it is ignored by ingest).
DELIVERY_FILES = ("manifest.json", "registrations.parquet", "vote_history.parquet")


def _delivery_manifest(state: str, delivery: Path) -> dict:
    if not delivery.is_dir():
        raise UserError(
            "a sealed-only delivery is a directory written by `voterolls seal --sealed-only`",
            file=delivery,
        )
    manifest = read_manifest(delivery)
    if str(manifest.get("state", "")).upper() != state:
        raise UserError(
            f"the delivery was sealed for {manifest.get('state')!r}, not {state}",
            file=delivery / "manifest.json",
        )
    for name in DELIVERY_FILES[1:]:
        if not (delivery / name).is_file():
            raise UserError(f"the delivery lacks {name}", file=delivery / name)
    return manifest


def check_delivery(state: str, delivery: str | Path) -> int:
    """Check a sealed-only delivery for ``state`` without storing it; its registration count.

    The checks :func:`ingest_sealed` makes first (manifest, files, columns,
    token and encoding shapes, unique ids): the service runs them on arrival
    so a delivery with plaintext in it is refused before it is queued.
    """
    state = check_state(state)
    delivery = Path(delivery)
    _delivery_manifest(state, delivery)
    con = duckdb.connect()
    try:
        return _check_registrations(con, delivery / "registrations.parquet")
    finally:
        con.close()


def ingest_sealed(ws: Workspace, state: str, delivery: str | Path) -> SealedIngestResult:
    """Make a checked sealed-only delivery ``state``'s current snapshot (idempotent, atomic)."""
    t0 = time.perf_counter()
    state = check_state(state)
    delivery = Path(delivery)
    manifest = _delivery_manifest(state, delivery)
    reg_in = delivery / "registrations.parquet"
    vh_in = delivery / "vote_history.parquet"
    key = _sha256([reg_in, vh_in, delivery / "manifest.json"])
    con = duckdb.connect()
    staged = ws.stage(state)
    try:
        n = _check_registrations(con, reg_in)
        present = _columns(con, reg_in)
        national = _national_columns(REGISTRATION_SCHEMA, present, state, cast_strings=True)
        sealed = [
            c for c in DELIVERY_COLUMNS if c in present and c not in REGISTRATION_SCHEMA.names
        ]
        con.execute(
            f"COPY (SELECT {', '.join(national)}, {', '.join(sealed)} FROM read_parquet({literal(reg_in)})) "
            f"TO {literal(staged.dir / 'registrations.parquet')} (FORMAT PARQUET, COMPRESSION ZSTD)"
        ).fetchall()
        vh_sel = _national_columns(VOTE_HISTORY_SCHEMA, _columns(con, vh_in), state, cast_strings=False)
        ids = f"(SELECT state_voter_id FROM read_parquet({literal(reg_in)}))"
        con.execute(
            f"COPY (SELECT {', '.join(vh_sel)} FROM read_parquet({literal(vh_in)}) "
            f"WHERE state_voter_id IN {ids}) "
            f"TO {literal(staged.dir / 'vote_history.parquet')} (FORMAT PARQUET, COMPRESSION ZSTD)"
        ).fetchall()
        n_vh = int(
            con.execute(
                f"SELECT count(*) FROM read_parquet({literal(staged.dir / 'vote_history.parquet')})"
            ).fetchall()[0][0]
        )
        (staged.dir / "manifest.json").write_text(
            json.dumps({"format": SEALED_FORMAT, "delivery": manifest}, indent=2) + "\n",
            encoding="utf-8",
        )
        snapshot = {
            "created_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
            "format": SEALED_FORMAT,
            "file_sha256s": json.dumps([key]),
            "ingest_key": key,
            "rows_read": n + int(manifest.get("quarantined", 0)),
            "loaded": n,
            "quarantined": int(manifest.get("quarantined", 0)),
            "protected_excluded": 0,
            "vote_history_loaded": n_vh,
            "vote_history_withheld": 0,
            "sealed_sha256": key,
            "sealed_matched": n,
            "override_fields": None,
            "override_legal_basis": None,
            "policy_fingerprint": None,
            "elapsed_s": round(time.perf_counter() - t0, 3),
        }
        files = [
            {"file_name": p.name, "sha256": _sha256([p]), "role": role, "encoding": "parquet",
             "rows_read": rows, "loaded": rows, "quarantined": 0, "protected_excluded": 0,
             "vote_history_loaded": n_vh if role == "vote_history" else 0, "vote_history_withheld": 0}
            for p, role, rows in ((reg_in, "registrations", n), (vh_in, "vote_history", n_vh))
        ]  # fmt: skip
        final = ws.commit(staged, snapshot, files)
    except BaseException:
        ws.discard(staged)
        raise
    finally:
        con.close()
    if final is None:
        cur = ws.current_snapshot(state) or {}
        return SealedIngestResult(state, cur.get("snapshot_id"), "unchanged", n, n_vh)
    return SealedIngestResult(state, staged.snapshot_id, "ingested", n, n_vh)


def other_keys(ws: Workspace, state: str) -> dict[str, str]:
    """``{state: key id}`` of the other sealed-only states whose key id differs from ``state``'s.

    Tokens under two keys never agree, so such states do not link with each
    other: the sign of a partial key rotation (docs/PRIVACY.md, 2b).
    """
    mine = ws.manifest(state).get("delivery", {}).get("key_id")
    out = {}
    for s in sealed_states(ws):
        if s != state:
            theirs = ws.manifest(s).get("delivery", {}).get("key_id")
            if mine and theirs and theirs != mine:
                out[s] = theirs
    return out


def sealed_states(ws: Workspace) -> list[str]:
    """States whose current snapshot is a sealed-only delivery."""
    return [s for s in ws.states() if (ws.current_snapshot(s) or {}).get("format") == SEALED_FORMAT]


def ingest_sealed_command(
    state: Annotated[str, typer.Argument(help="USPS code of the state that sealed the delivery")],
    delivery: Annotated[
        Path, typer.Argument(help="directory written by `voterolls seal --sealed-only`")
    ],
    workspace: Annotated[
        Path | None,
        typer.Option(
            "--workspace",
            "-w",
            help="workspace directory (default: $VOTEROLLS_WORKSPACE or ./workspace)",
        ),
    ] = None,
) -> None:
    """Ingest a sealed-only delivery (tokens and name encodings only) as the state's new snapshot."""
    ws = Workspace(workspace or workspace_option_default())
    r = ingest_sealed(ws, state, delivery)
    what = (
        "same sealed-only delivery as the current snapshot, nothing changed"
        if r.status == "unchanged"
        else "sealed-only delivery ingested"
    )
    typer.echo(
        f"{r.state}: {what}: {r.loaded:,} registrations, "
        f"{r.vote_history_loaded:,} vote-history rows (snapshot {r.snapshot_id})"
    )
    others = other_keys(ws, r.state)
    if others:
        typer.echo(
            f"note: {r.state} was sealed under another key than {', '.join(sorted(others))}; "
            "their records cannot link until every state has re-sealed under the same key",
            err=True,
        )


def register(app: typer.Typer) -> None:
    app.command("ingest-sealed")(ingest_sealed_command)


__all__ = [
    "DELIVERY_FILES",
    "SEALED_FORMAT",
    "SealedIngestResult",
    "check_delivery",
    "ingest_sealed",
    "register",
    "sealed_states",
]
