"""A large synthetic nation for the ceiling bench, generated in chunks of people straight to Parquet.

``generate_nation`` builds a whole country in memory as Arrow tables (people,
registrations, votes, identifiers, truth): at 5M people ``bench/link_ceiling.py``
peaked near 19 GB, so 10M would not fit a 24 GiB machine shared with others.
This module builds the same *kind* of nation with bounded memory:

* chunk ``k`` is ``generate_nation(chunk_people, seed + k * CHUNK_SEED_STRIDE)``
  (chunk 0 uses ``seed`` itself);
* its birth years are folded by the caller's ``fold`` (same window for every
  chunk, chosen from chunk 0's registrations per person), its registrations
  made lawful and normalised by ``load_nation_registrations`` in a DuckDB
  connection of its own, written to ``registrations_k.parquet`` with its
  truth's ``duplicate_pairs``, and everything of the chunk is dropped before
  the next one starts.

Why the union of chunks is a nation of ``people``: the generator draws every
person independently (no households; the default namesake density is the
sample's own, so it does not depend on the chunk size), and a person's
registrations all belong to one chunk, so every duplicate pair lies inside a
chunk.  What differs from one ``generate_nation(people)`` is the random draw
(other seeds), not the distribution.  Voter ids are drawn per chunk and would
collide across chunks, so chunk ``k >= 1`` appends ``~k`` to
``state_voter_id`` (registrations and truth alike); no comparison or
blocking key reads the id.
"""

from __future__ import annotations

import gc
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import duckdb

from bench.synthetic_registrations import load_nation_registrations

#: Seed offset between chunks (a prime, so chunk seeds of nearby base seeds do not meet).
CHUNK_SEED_STRIDE = 1_000_003


@dataclass(frozen=True)
class NationChunksRequest:
    """What to generate: ``people`` in chunks of at most ``chunk_people``, for ``variant``."""

    people: int
    seed: int
    chunk_people: int
    out_dir: Path
    variant: str = "public"  # "sealed_dob": every state sends a DOB token, no SSN4 token
    config: object | None = None  # a voterolls.synth.SynthConfig
    memory_limit: str | None = None  # DuckDB limit of each chunk's connection


@dataclass(frozen=True)
class NationChunks:
    registrations: str  # a read_parquet glob
    duplicate_pairs: Path  # one file (voterolls.link.evaluate reads one)
    registrations_count: int  # lawful (protected voters excluded), as written
    generated_registrations: int  # as generated, before the policy (what density is measured on)
    birth_year_window: int
    chunks: int


def write_nation_chunks(
    req: NationChunksRequest,
    fold: Callable[[object, int], object],
    window: Callable[[float], int],
) -> NationChunks:
    """Generate, fold, make lawful and write each chunk; ``window(expected registrations)`` -> years."""
    from voterolls.synth.nation import generate_nation

    req.out_dir.mkdir(parents=True, exist_ok=True)
    sizes = [req.chunk_people] * (req.people // req.chunk_people)
    if req.people % req.chunk_people:
        sizes.append(req.people % req.chunk_people)
    years = None
    total = generated = 0
    for k, size in enumerate(sizes):
        nation = generate_nation(size, req.seed + k * CHUNK_SEED_STRIDE, req.config)
        # one window for the whole nation, from chunk 0's registrations per person
        if years is None:
            years = window(nation.registrations.num_rows * req.people / size)
        fold(nation, years)
        generated += nation.registrations.num_rows
        total += _write_chunk(req, k, nation)
        del nation
        gc.collect()
    pairs = req.out_dir / "duplicate_pairs.parquet"
    con = duckdb.connect()
    con.execute(
        f"COPY (SELECT * FROM read_parquet('{req.out_dir}/duplicate_pairs_*.parquet')) "
        f"TO '{pairs}' (FORMAT PARQUET)"
    )
    con.close()
    return NationChunks(
        registrations=f"{req.out_dir}/registrations_*.parquet",
        duplicate_pairs=pairs,
        registrations_count=total,
        generated_registrations=generated,
        birth_year_window=int(years or 1),
        chunks=len(sizes),
    )


def _write_chunk(req: NationChunksRequest, k: int, nation) -> int:
    """Chunk ``k``'s lawful registrations and duplicate pairs to Parquet; returns its registrations.

    The sealed_dob variant's states send DOB tokens only (the question is what
    sealing the DOB buys), so the SSN4 token is dropped here, as the one-nation
    path does after loading.
    """
    suffix = "" if k == 0 else f"~{k}"
    con = duckdb.connect()
    if req.memory_limit:
        con.execute(f"SET memory_limit='{req.memory_limit}'")
    states = nation.states() if req.variant == "sealed_dob" else None
    n = load_nation_registrations(con, nation, token_states=states)
    con.register("_pairs", nation.truth["duplicate_pairs"])
    replace = [f"state_voter_id || '{suffix}' AS state_voter_id"]
    if req.variant == "sealed_dob":
        replace.append("CAST(NULL AS VARCHAR) AS ssn4_token")
    con.execute(
        f"COPY (SELECT * REPLACE ({', '.join(replace)}) FROM registrations) "
        f"TO '{req.out_dir}/registrations_{k:03d}.parquet' (FORMAT PARQUET)"
    )
    con.execute(
        f"""COPY (SELECT * REPLACE (state_voter_id_l || '{suffix}' AS state_voter_id_l,
                                    state_voter_id_r || '{suffix}' AS state_voter_id_r) FROM _pairs)
            TO '{req.out_dir}/duplicate_pairs_{k:03d}.parquet' (FORMAT PARQUET)"""
    )
    con.close()
    return n
