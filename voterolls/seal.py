"""Sealing: turn a state's sensitive identifiers into keyed tokens before they leave the state.

``voterolls seal`` is the command a *state* runs on its own machine.  It reads
the state's internal identifiers file and writes a sidecar CSV of tokens, so
the compiler only ever receives tokens, never an SSN, licence number or (where
the law forbids disclosure) a full date of birth.

Tokens are ``HMAC-SHA256(key, b"<domain>|<normalised value>")`` in hex, under a
key the contributing states share and the compiler does not hold (the ERIC
model).  Same value + same key -> same token in every state, so records link;
another key -> unrelated tokens.  The domain prefix keeps an SSN4 ``1980`` and a
birth year ``1980`` from sharing a token.  Normalisation happens first so that
``03/07/1980`` and ``1980-03-07`` seal alike.

Optional name CLKs (``--clk``) are Bloom-filter encodings for fuzzy matching
without plaintext (Schnell et al. 2009): padded bigrams of each name part, each
set ``k`` positions in a 1024-bit filter by keyed double hashing.  See
docs/PRIVACY.md for parameters, hardening and the known attacks.

The sidecar format (the contract ingest reads): UTF-8, comma-separated,
unquoted, ``\n`` line ends, header exactly::

    state_voter_id,dob_token,ssn4_token,dl_token[,name_clk]

one row per input row, in input order, empty where the input had no valid
value.  Tokens are 64 lower-case hex digits; ``name_clk`` is base64.

Hot path: values are normalised with Arrow compute kernels, de-duplicated with
``dictionary_encode`` (there are only ~36k distinct birth dates and 10k SSN4s),
HMAC'd once per distinct value in a tight comprehension and mapped back with
``take``.  The key never appears in a log, error or output.
"""

from __future__ import annotations

import base64
import hmac
import os
import secrets
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv

from voterolls.errors import UserError
from voterolls.log import get_logger

log = get_logger(__name__)

KEY_ENV = "VOTEROLLS_SEAL_KEY"
#: Minimum key material in bytes (256 bits, the HMAC-SHA256 block-safe minimum we accept).
MIN_KEY_BYTES = 32

#: Sidecar columns, in order (``name_clk`` only with ``--clk``).
SIDECAR_COLUMNS = ("state_voter_id", "dob_token", "ssn4_token", "dl_token")
CLK_COLUMN = "name_clk"

#: input column -> (token column, domain)
TOKEN_SOURCES = {
    "dob": ("dob_token", "dob"),
    "ssn4": ("ssn4_token", "ssn4"),
    "dl_number": ("dl_token", "dl"),
}
NAME_COLUMNS = ("first_name", "last_name")

# CLK parameters (documented in docs/PRIVACY.md; change only with a version bump:
# every state must encode with the same ones).
CLK_BITS = 1024
CLK_K = 20  # positions set per bigram
CLK_VERSION = 1

Harden = Literal["none", "xor_fold"]


# --------------------------------------------------------------------------
# keys
# --------------------------------------------------------------------------


def _check_key(material: bytes, where: str) -> bytes:
    material = material.strip()
    if not material:
        raise UserError(f"the sealing key from {where} is empty")
    if len(material) < MIN_KEY_BYTES:
        raise UserError(
            f"the sealing key from {where} is too short ({len(material)} bytes; at least "
            f"{MIN_KEY_BYTES} needed). Create one with `voterolls seal-key FILE`."
        )
    return material


def load_key(key_file: str | Path | None = None) -> bytes:
    """Key material from ``key_file`` or, failing that, ``$VOTEROLLS_SEAL_KEY``.

    The file's bytes (surrounding whitespace stripped) are the key, so a key
    file and the same text in the environment variable seal alike.  Errors
    name where the key was looked for, never its content.
    """
    if key_file is not None:
        path = Path(key_file)
        try:
            data = path.read_bytes()
        except OSError as exc:
            raise UserError(f"cannot read the key file ({exc.strerror})", file=path) from None
        return _check_key(data, f"key file {path}")
    env = os.environ.get(KEY_ENV)
    if env is None:
        raise UserError(f"no sealing key: pass --key-file or set {KEY_ENV}")
    return _check_key(env.encode("utf-8"), f"environment variable {KEY_ENV}")


def new_key() -> str:
    """A fresh random key: 64 hex characters (256 bits)."""
    return secrets.token_hex(32)


def write_new_key(path: str | Path) -> Path:
    """Write a new key to ``path`` (mode 0600); refuses to overwrite an existing file."""
    path = Path(path)
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        raise UserError("refusing to overwrite an existing key file", file=path) from None
    with os.fdopen(fd, "w") as fh:
        fh.write(new_key() + "\n")
    return path


# --------------------------------------------------------------------------
# normalisation (Arrow kernels, no row loops)
# --------------------------------------------------------------------------


def _as_string(arr: pa.Array | pa.ChunkedArray) -> pa.Array:
    if isinstance(arr, pa.ChunkedArray):
        arr = arr.combine_chunks()
    if not pa.types.is_string(arr.type) and not pa.types.is_large_string(arr.type):
        arr = pc.cast(arr, pa.string())
    arr = pc.utf8_trim_whitespace(arr)
    return pc.if_else(pc.equal(arr, ""), pa.scalar(None, arr.type), arr)


def normalise_dob(arr: pa.Array) -> pa.Array:
    """ISO ``YYYY-MM-DD`` from ISO, ``YYYYMMDD`` or ``MM/DD/YYYY``; null when not a real date."""
    s = _as_string(arr)
    iso = pc.replace_substring_regex(s, r"^(\d{4})(\d{2})(\d{2})$", r"\1-\2-\3")
    iso = pc.replace_substring_regex(iso, r"^(\d{1,2})/(\d{1,2})/(\d{4})$", r"\3-0\1-0\2")
    iso = pc.replace_substring_regex(iso, r"^(\d{4})-0?(\d{2})-0?(\d{2})$", r"\1-\2-\3")
    iso = pc.if_else(
        pc.match_substring_regex(iso, r"^\d{4}-\d{2}-\d{2}$"), iso, pa.scalar(None, iso.type)
    )
    # Reject impossible dates (2001-02-30) by a round trip through date32.
    parsed = pc.strptime(iso, format="%Y-%m-%d", unit="s", error_is_null=True)
    back = pc.strftime(parsed, format="%Y-%m-%d")
    return pc.if_else(pc.equal(back, iso), iso, pa.scalar(None, pa.string()))


def normalise_ssn4(arr: pa.Array) -> pa.Array:
    """Exactly four digits (dashes / spaces removed, left-padded if a reader dropped zeros)."""
    s = pc.replace_substring_regex(_as_string(arr), r"[\s-]", "")
    s = pc.if_else(
        pc.match_substring_regex(s, r"^\d{1,4}$"), pc.utf8_lpad(s, 4, "0"), pa.scalar(None, s.type)
    )
    return s


def normalise_dl(arr: pa.Array) -> pa.Array:
    """Upper case, letters and digits only."""
    s = pc.utf8_upper(_as_string(arr))
    s = pc.replace_substring_regex(s, r"[^A-Z0-9]", "")
    return pc.if_else(pc.equal(s, ""), pa.scalar(None, s.type), s)


def normalise_name(arr: pa.Array) -> pa.Array:
    """Accents folded, upper case, letters only (spaces, hyphens, apostrophes removed)."""
    s = _as_string(arr)
    s = pc.utf8_normalize(s, form="NFKD")
    s = pc.replace_substring_regex(s, r"\p{Mn}", "")
    s = pc.replace_substring_regex(pc.utf8_upper(s), r"[^A-Z]", "")
    return pc.if_else(pc.equal(s, ""), pa.scalar(None, s.type), s)


_NORMALISERS = {"dob": normalise_dob, "ssn4": normalise_ssn4, "dl": normalise_dl}


# --------------------------------------------------------------------------
# tokens
# --------------------------------------------------------------------------


def _per_distinct(values: pa.Array, fn) -> pa.Array:
    """Apply ``fn(list[str]) -> list`` once per distinct non-null value, then map back."""
    if len(values) == 0:
        return pa.array([], pa.string())
    enc = pc.dictionary_encode(values)
    dictionary = enc.dictionary.to_pylist()
    mapped = pa.array(fn(dictionary), pa.string())
    return mapped.take(enc.indices)


def tokens(values: pa.Array, key: bytes, domain: str) -> pa.Array:
    """HMAC-SHA256 hex tokens of already-normalised ``values`` (nulls stay null)."""
    prefix = domain.encode("ascii") + b"|"
    digest = hmac.digest
    return _per_distinct(
        values, lambda vs: [digest(key, prefix + v.encode("utf-8"), "sha256").hex() for v in vs]
    )


def seal_value(value: str, key: bytes, domain: str) -> str | None:
    """Token of one raw value (normalised first); for tests and spot checks, not bulk work."""
    norm = _NORMALISERS.get(domain, _as_string)(pa.array([value], pa.string()))[0].as_py()
    if norm is None:
        return None
    return hmac.digest(key, domain.encode() + b"|" + norm.encode(), "sha256").hex()


# --------------------------------------------------------------------------
# CLKs
# --------------------------------------------------------------------------


def _bigrams(name: str) -> list[str]:
    padded = f" {name} "
    return [padded[i : i + 2] for i in range(len(padded) - 1)]


def _positions(subkey: bytes, gram: str, k: int, bits: int) -> np.ndarray:
    d = hmac.digest(subkey, gram.encode("ascii"), "sha256")
    h1 = int.from_bytes(d[:8], "big")
    h2 = (
        int.from_bytes(d[8:16], "big") | 1
    )  # odd step: k distinct positions when bits is a power of 2
    return np.array([(h1 + i * h2) % bits for i in range(k)], dtype=np.int64)


def _part_filters(names: list[str], subkey: bytes, k: int, bits: int) -> np.ndarray:
    """Bit matrix (len(names) x bits, bool) for one name part; bigram positions cached."""
    cache: dict[str, np.ndarray] = {}
    out = np.zeros((len(names), bits), dtype=bool)
    for row, name in enumerate(names):  # one row per *distinct* name, not per record
        for gram in _bigrams(name):
            pos = cache.get(gram)
            if pos is None:
                pos = cache[gram] = _positions(subkey, gram, k, bits)
            out[row, pos] = True
    return out


def clk_bits(
    parts: dict[str, pa.Array],
    key: bytes,
    *,
    k: int = CLK_K,
    bits: int = CLK_BITS,
    harden: Harden = "none",
) -> tuple[np.ndarray, np.ndarray]:
    """Packed CLK bytes per row (n x bits/8 uint8) and a validity mask (any name part present).

    Each part (e.g. first_name, last_name) hashes its padded bigrams under its
    own HMAC sub-key, so "ANN" as a first name and as a surname set different
    bits.  Filters are computed per distinct name and combined with numpy.
    """
    n = len(next(iter(parts.values())))
    acc = np.zeros((n, bits), dtype=bool)
    valid = np.zeros(n, dtype=bool)
    for part, arr in parts.items():
        norm = normalise_name(arr)
        enc = pc.dictionary_encode(norm)
        subkey = hmac.digest(key, f"clk-v{CLK_VERSION}|{part}".encode(), "sha256")
        filt = _part_filters(enc.dictionary.to_pylist(), subkey, k, bits)
        idx = enc.indices.to_numpy(zero_copy_only=False)
        present = ~np.asarray(enc.indices.is_null().to_numpy(zero_copy_only=False), dtype=bool)
        if present.any():
            acc[present] |= filt[idx[present].astype(np.int64)]
        valid |= present
    if harden == "xor_fold":
        acc = acc[:, : bits // 2] ^ acc[:, bits // 2 :]
    elif harden != "none":
        raise UserError(f"unknown CLK hardening {harden!r} (use none or xor_fold)")
    return np.packbits(acc, axis=1), valid


def clk_encode(
    parts: dict[str, pa.Array],
    key: bytes,
    *,
    k: int = CLK_K,
    bits: int = CLK_BITS,
    harden: Harden = "none",
) -> pa.Array:
    """Base64 CLKs per row (null where every name part is missing)."""
    packed, valid = clk_bits(parts, key, k=k, bits=bits, harden=harden)
    b64 = base64.b64encode
    vals = [
        b64(row.tobytes()).decode("ascii") if ok else None
        for row, ok in zip(packed, valid, strict=True)
    ]
    return pa.array(vals, pa.string())


def clk_similarity(a: str | bytes, b: str | bytes) -> float:
    """Dice coefficient of two CLKs (base64 strings or raw bytes): 2|A&B| / (|A|+|B|)."""
    ba = np.frombuffer(base64.b64decode(a) if isinstance(a, str) else a, dtype=np.uint8)
    bb = np.frombuffer(base64.b64decode(b) if isinstance(b, str) else b, dtype=np.uint8)
    if ba.shape != bb.shape:
        raise ValueError("CLKs of different lengths cannot be compared")
    na = int(np.unpackbits(ba).sum())
    nb = int(np.unpackbits(bb).sum())
    if na + nb == 0:
        return 0.0
    return 2.0 * int(np.unpackbits(ba & bb).sum()) / (na + nb)


# --------------------------------------------------------------------------
# tables and files
# --------------------------------------------------------------------------


@dataclass
class SealReport:
    """Counts only: rows sealed, tokens per field, values that could not be normalised."""

    rows: int = 0
    tokens: dict[str, int] = field(default_factory=dict)
    invalid: dict[str, int] = field(default_factory=dict)
    first_invalid_line: dict[str, int] = field(default_factory=dict)
    ignored_columns: list[str] = field(default_factory=list)
    seconds: float = 0.0

    @property
    def tokens_total(self) -> int:
        return sum(self.tokens.values())

    @property
    def tokens_per_second(self) -> float:
        return self.tokens_total / self.seconds if self.seconds > 0 else float("nan")


def seal_table(
    table: pa.Table,
    key: bytes,
    *,
    clk: bool = False,
    harden: Harden = "none",
    report: SealReport | None = None,
    first_line: int = 2,
) -> pa.Table:
    """Sidecar table from an identifiers table (plaintext in, tokens out).

    ``first_line`` is the physical line of the table's first row (for error
    positions in the report).  No plaintext column is carried to the output.
    """
    report = report if report is not None else SealReport()
    if "state_voter_id" not in table.column_names:
        raise UserError("the identifiers file has no state_voter_id column", field="state_voter_id")
    n = table.num_rows
    ids = _as_string(table.column("state_voter_id"))
    if ids.null_count:
        where = pc.index(pc.is_null(ids), True).as_py()
        raise UserError("state_voter_id is empty", line=first_line + where, field="state_voter_id")
    awkward = pc.match_substring_regex(ids, r'[,"\r\n]')
    if pc.any(awkward).as_py():
        where = pc.index(awkward, True).as_py()
        raise UserError(
            "state_voter_id holds a comma, quote or line break (the sidecar is unquoted CSV)",
            line=first_line + where,
            field="state_voter_id",
        )
    cols: dict[str, pa.Array] = {"state_voter_id": ids}
    for src, (out_name, domain) in TOKEN_SOURCES.items():
        if src not in table.column_names:
            cols[out_name] = pa.nulls(n, pa.string())
            continue
        raw = _as_string(table.column(src))
        norm = _NORMALISERS[domain](raw)
        bad = pc.and_(pc.is_valid(raw), pc.is_null(norm))
        n_bad = pc.sum(bad).as_py() or 0
        if n_bad:
            report.invalid[src] = report.invalid.get(src, 0) + n_bad
            report.first_invalid_line.setdefault(src, first_line + pc.index(bad, True).as_py())
        tok = tokens(norm, key, domain)
        report.tokens[out_name] = report.tokens.get(out_name, 0) + (n - tok.null_count)
        cols[out_name] = tok
    if clk:
        parts = {p: table.column(p) for p in NAME_COLUMNS if p in table.column_names}
        if not parts:
            raise UserError("--clk needs first_name and/or last_name columns", field="first_name")
        enc = clk_encode(parts, key, harden=harden)
        report.tokens[CLK_COLUMN] = report.tokens.get(CLK_COLUMN, 0) + (n - enc.null_count)
        cols[CLK_COLUMN] = enc
    known = {"state_voter_id", *TOKEN_SOURCES, *NAME_COLUMNS}
    for c in table.column_names:
        if c not in known and c not in report.ignored_columns:
            report.ignored_columns.append(c)
    report.rows += n
    return pa.table(cols)


def _read_options(path: Path) -> tuple[pacsv.ReadOptions, pacsv.ConvertOptions, list[str]]:
    with open(path, "rb") as fh:
        head = fh.readline()
    try:
        header = head.decode("utf-8-sig").strip().split(",")
    except UnicodeDecodeError:
        raise UserError("the identifiers file header is not UTF-8", file=path, line=1) from None
    header = [h.strip().strip('"').strip().lower() for h in header]
    if "state_voter_id" not in header:
        raise UserError(
            "the identifiers file needs a header with state_voter_id (and any of dob, ssn4, dl_number, "
            "first_name, last_name)",
            file=path,
            line=1,
            field="state_voter_id",
        )
    ro = pacsv.ReadOptions(column_names=header, skip_rows=1, block_size=1 << 22, encoding="utf8")
    co = pacsv.ConvertOptions(
        column_types=dict.fromkeys(header, pa.string()), strings_can_be_null=False
    )
    return ro, co, header


def seal_file(
    in_path: str | Path,
    out_path: str | Path,
    key: bytes,
    *,
    clk: bool = False,
    harden: Harden = "none",
) -> SealReport:
    """Seal a state's identifiers CSV into the sidecar CSV, streaming in blocks.

    The output is written to a temporary name and renamed, so a failed run
    never leaves a half sidecar behind.
    """
    in_path, out_path = Path(in_path), Path(out_path)
    if not in_path.is_file():
        raise UserError("input file not found", file=in_path)
    if in_path.resolve() == out_path.resolve():
        raise UserError("output must differ from the input", file=out_path)
    ro, co, _ = _read_options(in_path)
    report = SealReport()
    out_cols = [*SIDECAR_COLUMNS, *([CLK_COLUMN] if clk else [])]
    schema = pa.schema([(c, pa.string()) for c in out_cols])
    tmp = out_path.with_name(out_path.name + ".partial")
    t0 = time.perf_counter()
    line = 2
    try:
        reader = pacsv.open_csv(in_path, read_options=ro, convert_options=co)
        with pacsv.CSVWriter(
            tmp,
            schema,
            write_options=pacsv.WriteOptions(quoting_style="none", quoting_header="none"),
        ) as w:
            for batch in reader:
                sealed = seal_table(
                    pa.Table.from_batches([batch]),
                    key,
                    clk=clk,
                    harden=harden,
                    report=report,
                    first_line=line,
                )
                w.write_table(sealed.select(out_cols).cast(schema))
                line += batch.num_rows
        os.replace(tmp, out_path)
    except pa.ArrowInvalid as exc:
        tmp.unlink(missing_ok=True)
        # Arrow's message quotes the row: never show it, find the line ourselves.
        raise _parse_error(in_path, str(exc), ",", "utf-8") from None
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    report.seconds = time.perf_counter() - t0
    log.info(
        "sealed %d rows (%d tokens) in %.2fs; invalid values per field: %s",
        report.rows,
        report.tokens_total,
        report.seconds,
        report.invalid,
    )
    return report


_DOMAIN_ALIASES = {"dob": "dob", "ssn4": "ssn4", "ssn": "ssn4", "dl": "dl", "dl_number": "dl"}


def _native_domains(columns: list[str], layout) -> dict[str, str]:  # noqa: ANN001 - FileLayout
    """native column -> token domain, from ``COL=domain`` or the layout target / column name."""
    from voterolls.policy.check import guess_field

    out: dict[str, str] = {}
    targets = {c.name: c.target for c in layout.columns}
    for spec in columns:
        name, _, dom = spec.partition("=")
        name = name.strip()
        if name not in targets:
            raise UserError(f"column {name!r} is not in the layout", field="--columns")
        guess = dom.strip().lower() or targets[name] or guess_field(name) or ""
        domain = _DOMAIN_ALIASES.get(guess)
        if domain is None:
            raise UserError(
                f"cannot tell what column {name!r} holds; write it as {name}=dob|ssn4|dl",
                field="--columns",
            )
        out[name] = domain
    return out


def seal_native(
    in_path: str | Path,
    out_path: str | Path,
    key: bytes,
    *,
    format: str,
    columns: list[str],
) -> SealReport:
    """Seal named columns of a native delimited file in place, keeping its format.

    Each named column's values become tokens (normalised as for the sidecar);
    every other byte-level convention of the layout is kept: delimiter,
    header, encoding, quoting style and line ends.  Fixed-width layouts are
    refused (a 64-character token does not fit their columns).
    """
    from voterolls.formats import get_format

    in_path, out_path = Path(in_path), Path(out_path)
    if not in_path.is_file():
        raise UserError("input file not found", file=in_path)
    if in_path.resolve() == out_path.resolve():
        raise UserError("output must differ from the input", file=out_path)
    layout = get_format(format).registrations
    if layout.kind != "delimited":
        raise UserError(
            f"format {format!r} is fixed width; seal to a sidecar instead", field="--format"
        )
    domains = _native_domains(columns, layout)
    names = layout.names
    # A file with a header is read by its own header (Ohio's has one column per election
    # beyond the layout's fixed ones); a headerless file by the layout's names.
    if layout.header:
        names = _native_header(in_path, layout)
    missing = [c for c in domains if c not in names]
    if missing:
        raise UserError(
            f"column(s) {', '.join(missing)} not in the file's header", file=in_path, line=1
        )
    ro = pacsv.ReadOptions(
        column_names=names,
        skip_rows=1 if layout.header else 0,
        encoding={"utf-8": "utf8", "latin-1": "latin1", "utf-16": "utf16"}[layout.encoding],
        block_size=1 << 22,
    )
    po = pacsv.ParseOptions(
        delimiter=layout.delimiter, quote_char='"' if layout.quoting != "none" else False
    )
    co = pacsv.ConvertOptions(
        column_types=dict.fromkeys(names, pa.string()), strings_can_be_null=False
    )
    quoting = "all_valid" if layout.quoting == "all" else "none"
    eol = layout.line_terminator
    report = SealReport()
    tmp = out_path.with_name(out_path.name + ".partial")
    t0 = time.perf_counter()
    line = 2 if layout.header else 1
    try:
        reader = pacsv.open_csv(in_path, read_options=ro, parse_options=po, convert_options=co)
        with open(tmp, "wb") as fh:
            first = True
            for batch in reader:
                t = pa.Table.from_batches([batch])
                for col, domain in domains.items():
                    raw = _as_string(t.column(col))
                    norm = _NORMALISERS[domain](raw)
                    bad = pc.and_(pc.is_valid(raw), pc.is_null(norm))
                    n_bad = pc.sum(bad).as_py() or 0
                    if n_bad:
                        report.invalid[col] = report.invalid.get(col, 0) + n_bad
                        report.first_invalid_line.setdefault(
                            col, line + pc.index(bad, True).as_py()
                        )
                    tok = tokens(norm, key, domain)
                    report.tokens[col] = report.tokens.get(col, 0) + (len(tok) - tok.null_count)
                    t = t.set_column(t.column_names.index(col), col, pc.fill_null(tok, ""))
                header = layout.header and first
                buf = _native_csv(t, layout.delimiter, eol, quoting, header)
                if layout.encoding == "utf-16":
                    if first and layout.bom:
                        fh.write(b"\xff\xfe")
                    buf = buf.decode("utf-8").encode("utf-16-le")
                elif layout.encoding == "latin-1":
                    buf = buf.decode("utf-8").encode("latin-1")
                fh.write(buf)
                first = False
                report.rows += t.num_rows
                line += t.num_rows
        os.replace(tmp, out_path)
    except pa.ArrowInvalid as exc:
        tmp.unlink(missing_ok=True)
        codec = {"utf-8": "utf-8", "latin-1": "latin-1", "utf-16": "utf-16"}[layout.encoding]
        raise _parse_error(in_path, str(exc), layout.delimiter, codec) from None
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    report.seconds = time.perf_counter() - t0
    return report


def _native_header(path: Path, layout) -> list[str]:  # noqa: ANN001 - FileLayout
    import csv as _csv

    codec = {"utf-8": "utf-8-sig", "latin-1": "latin-1", "utf-16": "utf-16"}[layout.encoding]
    with open(path, encoding=codec, newline="") as fh:
        first = fh.readline().rstrip("\r\n")
    quote = '"' if layout.quoting != "none" else None
    reader = _csv.reader(
        [first],
        delimiter=layout.delimiter,
        quotechar=quote or '"',
        quoting=_csv.QUOTE_MINIMAL if quote else _csv.QUOTE_NONE,
    )
    return [h.strip() for h in next(reader)]


def _native_csv(t: pa.Table, delimiter: str, eol: str, quoting: str, header: bool) -> bytes:
    import io as _io

    def write(style: str) -> bytes:
        buf = _io.BytesIO()
        opts = pacsv.WriteOptions(
            include_header=header,
            delimiter=delimiter,
            eol=eol,
            quoting_style=style,
            quoting_header=style,
        )
        pacsv.write_csv(t, buf, write_options=opts)
        return buf.getvalue()

    if quoting == "none":
        try:
            return write("none")
        except pa.ArrowInvalid:  # a value needs quotes: quote (valid CSV, slightly different bytes)
            return write("needed")
    return write(quoting)


def _parse_error(path: Path, arrow_message: str, delimiter: str, codec: str) -> UserError:
    """A UserError naming the first line whose field count differs from line 1; no row content."""
    import csv as _csv
    import re

    m = re.match(r"CSV parse error: (Expected \d+ columns, got \d+)", arrow_message)
    if m is None:
        return UserError("cannot parse the file as CSV", file=path)
    try:
        with open(path, encoding=codec, errors="replace", newline="") as fh:
            reader = _csv.reader(fh, delimiter=delimiter)
            width = len(next(reader))
            for row in reader:
                if len(row) != width:
                    return UserError(
                        f"has {len(row)} fields where the header has {width}",
                        file=path,
                        line=reader.line_num,
                    )
    except (OSError, StopIteration, _csv.Error):
        pass
    return UserError(f"cannot parse the file ({m.group(1)})", file=path)


def read_sidecar(path: str | Path) -> pa.Table:
    """Read a sidecar CSV (all columns strings, empty -> null), checking its header."""
    path = Path(path)
    with open(path, encoding="utf-8") as fh:
        header = [h.strip() for h in fh.readline().strip().split(",")]
    expected = list(SIDECAR_COLUMNS)
    if header[:4] != expected or header[4:] not in ([], [CLK_COLUMN]):
        raise UserError(
            f"not a sealed sidecar: header must be {','.join(expected)}[,{CLK_COLUMN}]",
            file=path,
            line=1,
        )
    return pacsv.read_csv(
        path,
        convert_options=pacsv.ConvertOptions(
            column_types=dict.fromkeys(header, pa.string()), strings_can_be_null=True
        ),
    )


def looks_like_token(values: Iterable[str | None]) -> bool:
    """True when every non-null value is a 64-hex-digit token (a cheap sidecar sanity check)."""
    return all(
        v is None or (len(v) == 64 and all(c in "0123456789abcdef" for c in v)) for v in values
    )


__all__ = [
    "KEY_ENV",
    "SIDECAR_COLUMNS",
    "CLK_COLUMN",
    "SealReport",
    "clk_encode",
    "clk_similarity",
    "load_key",
    "new_key",
    "read_sidecar",
    "seal_file",
    "seal_native",
    "seal_table",
    "seal_value",
    "tokens",
    "write_new_key",
]
