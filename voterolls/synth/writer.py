"""Write a synthetic nation to disk, laid out as docs/ARCHITECTURE.md describes.

```
OUT/manifest.json                 seed, people, registrations, per state: format + files
OUT/states/XX/...                 native files (voterolls.synth.native.write_native)
OUT/internal/XX_identifiers.csv   state-held identifiers: state_voter_id,dob,ssn4,dl_number
OUT/truth/*.parquet               answer key (never ingested)
OUT/truth/config.json             the SynthConfig used
```

Output is byte-identical for the same seed: tables are sorted by
(state, state_voter_id) when generated, Parquet is written with fixed
options, JSON with sorted keys, and the native writer is deterministic.
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from voterolls.errors import UserError
from voterolls.log import get_logger
from voterolls.synth.nation import Nation
from voterolls.synth.truth import counts

log = get_logger(__name__)

#: What write_nation owns inside OUT (and removes when ``overwrite``).
OWNED = ("manifest.json", "states", "internal", "truth")
IDENTIFIER_HEADER = "state_voter_id,dob,ssn4,dl_number"


def state_slices(table: pa.Table) -> dict[str, pa.Table]:
    """Per-state zero-copy slices of a table sorted by ``state``."""
    states = table["state"].combine_chunks() if table.num_rows else pa.array([], pa.string())
    if table.num_rows == 0:
        return {}
    enc = states.dictionary_encode()
    idx = enc.indices.to_numpy()
    change = np.flatnonzero(np.r_[True, idx[1:] != idx[:-1], True])
    out = {}
    for a, b in zip(change[:-1], change[1:], strict=True):
        out[states[int(a)].as_py()] = table.slice(int(a), int(b - a))
    return out


def write_nation(
    nation: Nation,
    out_dir: str | Path,
    *,
    overwrite: bool = False,
    progress: Callable[[str], None] | None = None,
) -> dict:
    """Write ``nation`` under ``out_dir``; return the manifest.

    Refuses a non-empty ``out_dir`` unless ``overwrite``, which removes only
    the entries this function writes (see ``OWNED``).  ``progress(state)`` is
    called after each state's files are written.
    """
    from voterolls.formats import format_for_state
    from voterolls.synth.native import write_native

    out = Path(out_dir)
    if out.exists() and any(out.iterdir()):
        if not overwrite:
            raise UserError(
                "output directory is not empty (use --force to replace a previous output)", file=out
            )
        for name in OWNED:
            target = out / name
            if target.is_dir():
                shutil.rmtree(target)
            elif target.exists():
                target.unlink()
    (out / "internal").mkdir(parents=True, exist_ok=True)
    (out / "truth").mkdir(parents=True, exist_ok=True)

    regs = state_slices(nation.registrations)
    hist = state_slices(nation.vote_history)
    idents = state_slices(nation.identifiers)
    states: dict[str, dict] = {}
    for state in nation.states():
        sdir = out / "states" / state
        paths = write_native(state, regs[state], hist.get(state), sdir)
        files = sorted(p.relative_to(out).as_posix() for p in paths)
        states[state] = {"format": format_for_state(state).name, "files": files}
        _write_identifiers(idents[state], out / "internal" / f"{state}_identifiers.csv")
        if progress is not None:
            progress(state)

    for name, table in sorted(nation.truth.items()):
        write_parquet(table, out / "truth" / f"{name}.parquet")
    _write_json(out / "truth" / "config.json", nation.config.to_dict())
    manifest = {
        "seed": nation.seed,
        "people": nation.people,
        "registrations": nation.registrations.num_rows,
        "vote_records": nation.vote_history.num_rows,
        "truth_counts": counts(nation.truth),
        "states": states,
    }
    _write_json(out / "manifest.json", manifest)
    log.info(
        "wrote synthetic nation: %d states, %d registrations",
        len(states),
        nation.registrations.num_rows,
    )
    return manifest


def write_parquet(table: pa.Table, path: Path) -> None:
    """Parquet with fixed options so the bytes depend only on the data."""
    pq.write_table(
        table,
        path,
        compression="zstd",
        compression_level=3,
        use_dictionary=True,
        write_statistics=True,
        row_group_size=1_000_000,
    )


def _write_identifiers(table: pa.Table, path: Path) -> None:
    """``state_voter_id,dob,ssn4,dl_number`` with ISO dates; blank = not held."""
    cols = [
        table["state_voter_id"],
        pc.strftime(table["dob"], format="%Y-%m-%d"),
        table["ssn4"],
        pc.fill_null(table["dl_number"], ""),
    ]
    lines = pc.binary_join_element_wise(*[pc.fill_null(c, "") for c in cols], ",")
    body = _join_lines(lines)
    path.write_text(IDENTIFIER_HEADER + "\n" + body, encoding="utf-8", newline="")


def _join_lines(lines: pa.ChunkedArray | pa.Array) -> str:
    arr = lines.combine_chunks() if isinstance(lines, pa.ChunkedArray) else lines
    if len(arr) == 0:
        return ""
    joined = pc.binary_join(
        pa.ListArray.from_arrays(pa.array([0, len(arr)], pa.int32()), arr), "\n"
    )
    return joined[0].as_py() + "\n"


def _write_json(path: Path, obj: dict) -> None:
    path.write_text(json.dumps(obj, indent=2, sort_keys=True) + "\n", encoding="utf-8")
