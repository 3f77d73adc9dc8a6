"""The state side of a sealed-only delivery: no plaintext name or date leaves the state.

``voterolls seal FILE OUT --sealed-only --state XX`` reads the state's native
file(s) with the same readers, disclosure policy and normalisation as
``voterolls ingest`` (so a sealed-only delivery carries exactly the
information a plaintext one would), and writes a directory OUT::

    registrations.parquet   one row per lawful registration: state_voter_id,
                            county, gender, party, status, uocava,
                            dob_granularity, keyed tokens and name encodings
    vote_history.parquet    the history rows the state's policy allows (election
                            dates are public facts about elections, not people)
    manifest.json           kind, version, encoding parameters, counts

Every identifying value is keyed with the consortium key (the compiler holds
none; see docs/PRIVACY.md):

* **tokens** (``HMAC-SHA256(key, b"<domain>|<value>")``, 64 hex digits, the
  same construction as :func:`voterolls.seal.tokens`, so a sealed-only
  ``dob_token`` equals a sidecar's): the full date, the date with day and month
  exchanged (for the "transposed" level; sealed under the *date* domain, so it
  equals the other side's date token), year-month, month-day, birth year,
  SSN4, licence, ZIP, suffix, middle initial, canonical first name, each part of a
  hyphenated surname, and the coarse blocking keys (Soundex of the surname +
  year + first initial, and so on: :data:`BLOCKING_KEYS`).
* **name encodings**: a Bloom filter per name field (first, middle, last) made
  by clkhash (the schema-driven CLK encoder of the PPRL literature): padded
  bigrams, each set in ``BITS_PER_TOKEN`` positions by keyed BLAKE2 hashing,
  a key per field (clkhash's HKDF with the field name as ``info``), then one
  XOR fold (1024 -> 512 bits), the hardening clkhash ships.  Encoded once per
  distinct name (numpy maps them back to rows), so 1M rows cost one pass over
  ~200k distinct names.

No plaintext touches disk: the native file is read, lawful rows are kept in
memory as Arrow, and only tokens and encodings are written.
"""

from __future__ import annotations

import base64
import hmac
import json
import os
import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path

import duckdb
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from voterolls.errors import UserError
from voterolls.log import get_logger

log = get_logger(__name__)

KIND = "voterolls-sealed-only"
VERSION = 1

#: Bloom-filter parameters (every state must encode alike; change only with VERSION).
FILTER_BITS = 512  # after one XOR fold of a 1024-bit filter
XOR_FOLDS = 1
BITS_PER_TOKEN = 20
NAME_FIELDS = ("first_name", "middle_name", "last_name")

#: Plain (non-identifying, categorical) columns a delivery carries.
PLAIN_COLUMNS = (
    "state_voter_id",
    "county",
    "gender",
    "party",
    "status",
    "uocava",
    "dob_granularity",
)

#: token column -> (domain, SQL over the normalised lawful relation giving the value to seal).
TOKEN_COLUMNS: dict[str, tuple[str, str]] = {
    "dob_token": ("dob", "strftime(dob, '%Y-%m-%d')"),
    "dob_swapped_token": (
        "dob",
        "CASE WHEN day(dob) <= 12 AND day(dob) <> month(dob) "
        "THEN strftime(make_date(year(dob), day(dob), month(dob)), '%Y-%m-%d') END",
    ),
    "dob_ym_token": ("dob_ym", "strftime(dob, '%Y-%m')"),
    "dob_md_token": ("dob_md", "strftime(dob, '%m-%d')"),
    "birth_year_token": ("birth_year", "_by"),
    "zip_token": ("zip5", "residence_zip5"),
    "suffix_token": ("suffix", "name_suffix"),
    # the middle name's first letter: "a lone initial agrees with the name" needs the
    # initials to be equal (a Dice of the filters also takes a name *ending* in the letter)
    "middle_initial_token": ("middle_initial", "left(middle_name, 1)"),
    "first_canonical_token": ("first_canonical", "first_name_canonical"),
    "last_part_a_token": ("last_part", "_last_parts[1]"),
    "last_part_b_token": ("last_part", "CASE WHEN len(_last_parts) > 1 THEN _last_parts[-1] END"),
}

#: Keyed coarse blocking keys: name -> SQL of the plaintext key (NULL when a part is).
#: ``_0`` is the base key, ``_1`` its refinement (the compiler caps block sizes with them).
BLOCKING_KEYS: dict[str, str] = {
    "bk_sx_year_init_0": "_sx || '|' || _by || '|' || left(first_name, 1)",
    "bk_sx_year_init_1": "_sx || '|' || _by || '|' || left(first_name, 1) || '|' || left(middle_name, 1)",
    "bk_name_0": "first_name_canonical || '|' || last_name",
    "bk_name_1": "first_name_canonical || '|' || last_name || '|' || _by",
    "bk_last_year_sex_0": "last_name || '|' || _by || '|' || _sex",
    "bk_last_year_sex_1": "last_name || '|' || _by || '|' || _sex || '|' || left(middle_name, 1)",
}

#: Every column a delivery's registrations.parquet may hold; anything else is refused at ingest.
TOKEN_NAMES = (*TOKEN_COLUMNS, "ssn4_token", "dl_token", *BLOCKING_KEYS)
ENCODING_COLUMNS = tuple(f"{f}_bf" for f in NAME_FIELDS)
FLAG_COLUMNS = ("middle_is_initial",)
DELIVERY_COLUMNS = (*PLAIN_COLUMNS, *TOKEN_NAMES, *ENCODING_COLUMNS, *FLAG_COLUMNS)


@dataclass(frozen=True)
class SealedOnlyRequest:
    """What one ``voterolls seal --sealed-only`` run seals."""

    files: tuple[Path, ...]
    state: str
    out_dir: Path
    key: bytes
    format: str | None = None
    identifiers: Path | None = None


@dataclass
class SealedOnlyReport:
    rows_read: int = 0
    sealed: int = 0
    quarantined: int = 0
    protected_excluded: int = 0
    vote_history: int = 0
    distinct_names: dict[str, int] = field(default_factory=dict)
    seconds: float = 0.0


# --------------------------------------------------------------------------
# name encodings (clkhash)
# --------------------------------------------------------------------------


def _clk_schema(field_name: str):  # noqa: ANN202 - clkhash.schema.Schema
    from clkhash.schema import from_json_dict

    b64 = lambda b: base64.b64encode(b).decode("ascii")  # noqa: E731
    return from_json_dict(
        {
            "version": 3,
            "clkConfig": {
                "l": FILTER_BITS,
                "xor_folds": XOR_FOLDS,
                "kdf": {
                    "type": "HKDF",
                    "hash": "SHA256",
                    "salt": b64(f"{KIND}-v{VERSION}".encode()),
                    "info": b64(field_name.encode()),
                    "keySize": 64,
                },
            },
            "features": [
                {
                    "identifier": field_name,
                    "format": {"type": "string", "encoding": "utf-8"},
                    "hashing": {
                        "comparison": {"type": "ngram", "n": 2, "positional": False},
                        "strategy": {"bitsPerToken": BITS_PER_TOKEN},
                        "hash": {"type": "blakeHash"},
                    },
                }
            ],
        }
    )


def require_encoder() -> None:
    """A one-sentence error when clkhash (the ``sealed`` extra) is not installed."""
    from voterolls.extras import require_extra

    require_extra("sealed", "sealed-only name encoding")


def encode_names(values: pa.Array, key: bytes, field_name: str) -> pa.Array:
    """Base64 Bloom-filter encodings of already-normalised names (nulls stay null).

    clkhash encodes each *distinct* name once; ``take`` maps them back to rows.
    """
    from clkhash.clk import generate_clks

    if isinstance(values, pa.ChunkedArray):
        values = values.combine_chunks()
    if len(values) == 0:
        return pa.array([], pa.string())
    enc = pc.dictionary_encode(values)
    names = enc.dictionary.to_pylist()
    if not names:
        return pa.nulls(len(values), pa.string())
    clks = generate_clks([[n] for n in names], _clk_schema(field_name), key, max_workers=1)
    b64 = [base64.b64encode(c.tobytes()).decode("ascii") for c in clks]
    return pa.array(b64, pa.string()).take(enc.indices)


def dice(a: str, b: str) -> float:
    """Dice coefficient of two base64 encodings (tests and spot checks; the compiler uses SQL)."""
    from voterolls.seal import clk_similarity

    return clk_similarity(a, b)


# --------------------------------------------------------------------------
# tokens
# --------------------------------------------------------------------------


def _tokens(values: pa.Array, key: bytes, domain: str) -> pa.Array:
    from voterolls.seal import tokens

    if isinstance(values, pa.ChunkedArray):
        values = values.combine_chunks()
    return tokens(values, key, domain)


def _lawful_registrations(con: duckdb.DuckDBPyConnection, req: SealedOnlyRequest):  # noqa: ANN202
    """Scan, clean dates, enforce the state's policy and normalise, as ingest does."""
    from voterolls.formats import scan
    from voterolls.normalize import clean_dates, normalize_registrations
    from voterolls.policy.enforce import enforce
    from voterolls.policy.model import get_policy

    s = scan(con, list(req.files), state=req.state, format=req.format)
    rel = clean_dates(s.registrations)
    policy = get_policy(req.state)
    withheld = None
    if policy.dob_disclosure != "full" and "dob" in rel.columns:
        # the full date the policy keeps out of the clear: sealed as a token, never written
        withheld = rel.project(
            'state_voter_id, TRY_CAST("dob" AS DATE) AS dob'
        ).filter("dob IS NOT NULL").to_arrow_table()
    lawful, _ = enforce(rel, policy, count=False)
    normal = normalize_registrations(con, lawful, nicknames=True)
    return s, normal, withheld, policy


def seal_sealed_only(req: SealedOnlyRequest) -> SealedOnlyReport:
    """Write the sealed-only delivery directory ``req.out_dir`` (atomically: temp dir + rename)."""
    require_encoder()
    out = Path(req.out_dir)
    if out.exists() and any(out.iterdir()):
        raise UserError("the output directory exists and is not empty", file=out)
    for f in req.files:
        if not Path(f).is_file():
            raise UserError("input file not found", file=f)
    t0 = time.perf_counter()
    report = SealedOnlyReport()
    tmp = out.with_name(out.name + ".partial")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    con = duckdb.connect()
    try:
        con.execute("SET lambda_syntax='ENABLE_SINGLE_ARROW'")
        s, normal, withheld, policy = _lawful_registrations(con, req)
        table = _sealed_table(con, normal, req.key, report)
        if withheld is not None and withheld.num_rows:
            table = _add_withheld_dob_tokens(table, withheld, req.key)
        if req.identifiers is not None:
            table = _add_identifier_tokens(table, req.identifiers, req.key)
        pq.write_table(table, tmp / "registrations.parquet", compression="zstd")
        vh = s.vote_history
        if vh is not None and policy.vote_history_public:
            vt = vh.to_arrow_table()
            keep = pc.is_in(vt.column("state_voter_id"), table.column("state_voter_id"))
            vt = vt.filter(keep)
            report.vote_history = vt.num_rows
        else:
            from voterolls.schema import VOTE_HISTORY_SCHEMA

            vt = VOTE_HISTORY_SCHEMA.empty_table()
        pq.write_table(vt, tmp / "vote_history.parquet", compression="zstd")
        scanned = s.finish()
        report.rows_read = sum(
            f.rows_read
            for f in scanned.files
            if getattr(f, "role", "registrations") == "registrations"
        )
        report.quarantined = scanned.quarantine.num_rows
        pq.write_table(scanned.quarantine, tmp / "quarantine.parquet", compression="zstd")
        report.seconds = round(time.perf_counter() - t0, 3)
        manifest = {
            "kind": KIND,
            "version": VERSION,
            "state": req.state,
            "format": getattr(s, "format", req.format),
            "rows": table.num_rows,
            "vote_history_rows": vt.num_rows,
            "quarantined": report.quarantined,
            "key_id": key_id(req.key),
            "encoding": {
                "library": "clkhash",
                "filter_bits": FILTER_BITS,
                "xor_folds": XOR_FOLDS,
                "bits_per_token": BITS_PER_TOKEN,
                "ngram": 2,
                "fields": list(NAME_FIELDS),
            },
            "columns": table.column_names,
        }
        (tmp / "manifest.json").write_text(json.dumps(manifest, indent=2) + "\n", encoding="utf-8")
        if out.exists():
            out.rmdir()
        os.replace(tmp, out)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    finally:
        con.close()
    log.info("sealed-only delivery: %d rows in %.2fs", report.sealed, report.seconds)
    return report


def _sealed_table(
    con: duckdb.DuckDBPyConnection,
    normal,
    key: bytes,
    report: SealedOnlyReport,  # noqa: ANN001
) -> pa.Table:
    """Plaintext (in memory only) -> tokens and encodings."""
    from voterolls.normalize.phonetic import soundex_sql

    present = set(normal.columns)
    need = ["state_voter_id", "county", "gender", "party", "status", "uocava", "dob_granularity",
            "first_name", "first_name_canonical", "middle_name", "last_name", "name_suffix",
            "dob", "birth_year", "residence_zip5"]  # fmt: skip
    typed = {"dob": "DATE", "birth_year": "INTEGER"}
    sel = ", ".join(c if c in present else f"NULL::{typed.get(c, 'VARCHAR')} AS {c}" for c in need)
    con.register("_vr_sealed_src", normal.project(sel).to_arrow_table())
    parts = (
        "list_filter(string_split(regexp_replace(last_name, '[^A-Z]+', ' ', 'g'), ' '), "
        "lambda t: t <> '')"
    )
    letters = "regexp_replace(coalesce(last_name, ''), '[^A-Z]', '', 'g')"
    # CASE WHEN ... wraps nullable expressions; '|'-joins are NULL when a part is NULL.
    derived = ", ".join(
        [f"({sql}) AS {name}" for name, (_d, sql) in TOKEN_COLUMNS.items()]
        + [f"({sql}) AS {name}" for name, sql in BLOCKING_KEYS.items()]
    )
    plain = con.sql(
        f"""
        WITH b AS (
            SELECT *, CAST(coalesce(year(dob), birth_year) AS VARCHAR) AS _by,
                   CASE WHEN upper(gender) IN ('M', 'F') THEN upper(gender) END AS _sex,
                   {parts} AS _last_parts, {soundex_sql(letters, letters_only=True)} AS _sx
            FROM _vr_sealed_src
        )
        SELECT state_voter_id, county, gender, party, status, uocava, dob_granularity,
               first_name, middle_name, last_name,
               length(middle_name) = 1 AS middle_is_initial,
               {derived}
        FROM b
        """
    ).to_arrow_table()
    con.unregister("_vr_sealed_src")
    cols: dict[str, pa.Array] = {c: plain.column(c).combine_chunks() for c in PLAIN_COLUMNS}
    for name, (domain, _sql) in TOKEN_COLUMNS.items():
        cols[name] = _tokens(plain.column(name), key, domain)
    for name in BLOCKING_KEYS:
        cols[name] = _tokens(plain.column(name), key, "bk|" + name.rsplit("_", 1)[0])
    for f in NAME_FIELDS:
        col = plain.column(f).combine_chunks()
        report.distinct_names[f] = len(pc.unique(col.drop_null()))
        cols[f"{f}_bf"] = encode_names(col, key, f)
    cols["middle_is_initial"] = plain.column("middle_is_initial").combine_chunks()
    n = plain.num_rows
    cols["ssn4_token"] = pa.nulls(n, pa.string())
    cols["dl_token"] = pa.nulls(n, pa.string())
    report.sealed = n
    return pa.table({c: cols[c] for c in DELIVERY_COLUMNS})


def _add_withheld_dob_tokens(table: pa.Table, withheld: pa.Table, key: bytes) -> pa.Table:
    """``dob_token`` for rows whose full date the policy withholds (only the year, or nothing,
    is public): the date is sealed, not dropped; ``dob_granularity`` stays what the law allows,
    and no year-month, month-day or swapped token is added (the compiler compares the sealed
    date for equality only, as it does a sidecar's ``dob_token``)."""
    ids = pc.cast(table.column("state_voter_id").combine_chunks(), pa.string())
    w_ids = pc.cast(withheld.column("state_voter_id").combine_chunks(), pa.string())
    idx = pc.index_in(ids, value_set=w_ids)
    days = pc.cast(withheld.column("dob").combine_chunks(), pa.timestamp("s"))
    dates = pc.strftime(days.take(idx), format="%Y-%m-%d")
    sealed = _tokens(dates, key, "dob")
    i = table.column_names.index("dob_token")
    return table.set_column(i, "dob_token", pc.coalesce(table.column("dob_token"), sealed))


def _add_identifier_tokens(table: pa.Table, identifiers: Path, key: bytes) -> pa.Table:
    """SSN4, licence and (where the policy withholds it from the native file) full-DOB tokens
    from the state's internal identifiers CSV (joined on state_voter_id)."""
    from voterolls.seal import seal_file

    side = identifiers.with_name(identifiers.name + ".tokens.partial")
    try:
        seal_file(identifiers, side, key)
        import pyarrow.csv as pacsv

        tok = pacsv.read_csv(
            side,
            convert_options=pacsv.ConvertOptions(
                column_types={"state_voter_id": pa.string()}, strings_can_be_null=True
            ),
        )
    finally:
        side.unlink(missing_ok=True)
    con = duckdb.connect()
    try:
        con.register("r", table)
        con.register("t", tok)
        sel = ", ".join(
            f"t.{c} AS {c}"
            if c in ("ssn4_token", "dl_token")
            else "coalesce(r.dob_token, t.dob_token) AS dob_token"
            if c == "dob_token"
            else f"r.{c}"
            for c in table.column_names
        )
        return con.sql(f"SELECT {sel} FROM r LEFT JOIN t USING (state_voter_id)").to_arrow_table()
    finally:
        con.close()


def key_id(key: bytes) -> str:
    """A public name of the key (16 hex digits of its HMAC of a fixed label): deliveries sealed
    under different keys are told apart without anyone but the states holding the key."""
    return hmac.digest(key, b"voterolls-sealed-only-key-id", "sha256").hex()[:16]


def hmac_token(value: str, key: bytes, domain: str) -> str:
    """Token of one already-normalised value (tests and spot checks)."""
    return hmac.digest(key, domain.encode("ascii") + b"|" + value.encode("utf-8"), "sha256").hex()


def read_manifest(delivery: Path) -> dict:
    """The delivery's manifest, or a UserError saying why it is not a sealed-only delivery."""
    p = Path(delivery) / "manifest.json"
    if not p.is_file():
        raise UserError("not a sealed-only delivery (no manifest.json)", file=delivery)
    try:
        m = json.loads(p.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError):
        raise UserError("manifest.json is not valid JSON", file=p) from None
    if not isinstance(m, dict) or m.get("kind") != KIND:
        raise UserError(f"not a sealed-only delivery (manifest kind is not {KIND})", file=p)
    if m.get("version") != VERSION:
        raise UserError(
            f"sealed-only delivery version {m.get('version')} is not supported (this version reads {VERSION})",
            file=p,
        )
    return m


__all__ = [
    "DELIVERY_COLUMNS",
    "ENCODING_COLUMNS",
    "KIND",
    "SealedOnlyReport",
    "SealedOnlyRequest",
    "TOKEN_NAMES",
    "dice",
    "encode_names",
    "hmac_token",
    "key_id",
    "read_manifest",
    "require_encoder",
    "seal_sealed_only",
]
