"""bench/nation_chunks.py: a nation generated in chunks is one nation - unique ids, every duplicate
pair pointing at written registrations, one birth-year window, the variant's tokens."""

from __future__ import annotations

import sys
from pathlib import Path

import duckdb

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from bench.link_ceiling import fold_birth_years  # noqa: E402
from bench.nation_chunks import NationChunksRequest, write_nation_chunks  # noqa: E402


def _chunks(tmp_path: Path, variant: str):
    windows: list[float] = []

    def window(expected: float) -> int:
        windows.append(expected)
        return 2

    out = write_nation_chunks(
        NationChunksRequest(2500, 11, 1000, tmp_path / variant, variant), fold_birth_years, window
    )
    return out, windows


def test_chunks_make_one_nation(tmp_path):
    out, windows = _chunks(tmp_path, "public")
    assert out.chunks == 3  # 1,000 + 1,000 + 500 people
    assert len(windows) == 1 and 2500 < windows[0] < 2500 * 1.2  # the whole nation's registrations
    con = duckdb.connect()
    con.execute(f"CREATE VIEW r AS SELECT * FROM read_parquet('{out.registrations}')")
    n, distinct = con.execute(
        "SELECT count(*), count(DISTINCT (state, state_voter_id)) FROM r"
    ).fetchall()[0]
    assert n == distinct == out.registrations_count
    assert out.registrations_count <= out.generated_registrations  # protected voters withheld
    # every chunk's duplicates are in the truth, under the ids the registrations carry
    pairs, missing = con.execute(
        f"""SELECT count(*), count(*) FILTER (WHERE l.state IS NULL OR r2.state IS NULL)
            FROM read_parquet('{out.duplicate_pairs}') p
            LEFT JOIN r l ON l.state = p.state_l AND l.state_voter_id = p.state_voter_id_l
            LEFT JOIN r r2 ON r2.state = p.state_r AND r2.state_voter_id = p.state_voter_id_r"""
    ).fetchall()[0]
    assert pairs > 30 and missing <= 0.05 * pairs  # a protected voter's side is withheld
    suffixes = {
        row[0]
        for row in con.execute(
            f"SELECT DISTINCT regexp_extract(state_voter_id_l, '~[0-9]+$') "
            f"FROM read_parquet('{out.duplicate_pairs}')"
        ).fetchall()
    }
    assert suffixes == {"", "~1", "~2"}
    # one window for every chunk: full DOBs fall in 1972-1973
    years = con.execute(
        "SELECT count(*) FILTER (WHERE year(dob) IN (1972, 1973)) / count(*) FROM r WHERE dob IS NOT NULL"
    ).fetchall()[0][0]
    assert years > 0.95  # the rest: recorded year slips, kept as the errors they were


def test_sealed_variant_sends_dob_tokens_only(tmp_path):
    out, _ = _chunks(tmp_path, "sealed_dob")
    con = duckdb.connect()
    dob_tok, ssn_tok = con.execute(
        f"SELECT count(dob_token), count(ssn4_token) FROM read_parquet('{out.registrations}')"
    ).fetchall()[0]
    assert dob_tok > 0.9 * out.registrations_count and ssn_tok == 0
