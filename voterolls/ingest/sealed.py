"""The sealed sidecar (``voterolls seal``): checked to hold tokens only, then joined to the rows by id."""

from __future__ import annotations

import csv
from pathlib import Path

import duckdb

from voterolls.errors import UserError, require_file
from voterolls.sql import identifier as _q
from voterolls.sql import literal as _lit

SEALED_COLUMNS = ("dob_token", "ssn4_token", "dl_token", "name_clk")

#: What a sealed column may hold (docs/PRIVACY.md): an HMAC-SHA256 token is 64
#: lower-case hex digits; a name CLK is the base64 of 1024 bits (or 512 when
#: XOR-folded).  Anything else may be plaintext and is refused.
TOKEN_PATTERN = "[0-9a-f]{64}"
CLK_PATTERN = "[A-Za-z0-9+/]{171}=|[A-Za-z0-9+/]{86}=="


def check_utf8(path: Path) -> None:
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


def sealed_view(con: duckdb.DuckDBPyConnection, sealed: Path) -> tuple[str, list[str]]:
    """Register the sealed sidecar CSV as a view; check encoding, header, id uniqueness, token shape.

    Token columns are checked with one vectorised DuckDB pass: a value that is
    not a token (64 hex digits; base64 for ``name_clk``) may be plaintext, so
    the sidecar is refused, naming file, line and column but never the value.
    """
    require_file(sealed, "sealed sidecar file")
    check_utf8(sealed)
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
