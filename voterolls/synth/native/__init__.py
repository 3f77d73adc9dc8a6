"""Write national-schema tables as a state's native file(s) - the synthetic population's publisher.

:func:`write_native` publishes each state's files exactly as the state would
(layout from ``voterolls.formats``' specs, columns its disclosure policy
allows, realistic mess), so the readers are exercised on realistic input.
It lives here, beside what uses it, and not in ``voterolls.formats``, which
only reads: the read path imports nothing of the writers.  Layouts whose
history is not a separate file have their own writer (``ny``, ``oh``, ``pa``);
the rest are written by ``writer.write_plain``.
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Any

import duckdb
import pyarrow as pa

from voterolls.formats.registry import format_for_state, get_format
from voterolls.formats.spec import Format
from voterolls.log import get_logger
from voterolls.sql import literal as lit
from voterolls.synth.native.ny import write as write_ny
from voterolls.synth.native.oh import write as write_oh
from voterolls.synth.native.pa import write as write_pa
from voterolls.synth.native.writer import native_file_name, policy_view, prepare_tables, write_plain

log = get_logger(__name__)

#: Formats whose vote history lives inside the registration file.
WRITERS = {
    "oh_swvf": write_oh,
    "ny_statewide": write_ny,
    "pa_fve": write_pa,
}


def write_native(
    state: str,
    registrations: pa.Table,
    vote_history: pa.Table | None,
    out_dir: Path,
    *,
    format: str | Path | Format | None = None,
    policy: Any | None = None,
    extract_date: dt.date = dt.date(2025, 1, 6),
) -> list[Path]:
    """Write ``state``'s native file(s) into ``out_dir``; return the paths written (sorted).

    ``registrations`` is in ``REGISTRATION_SCHEMA`` plus a bool ``protected``
    column; ``vote_history`` in ``VOTE_HISTORY_SCHEMA``.  ``format`` overrides
    the state's usual format (used by round-trip tests of older layouts);
    ``policy`` overrides ``voterolls.policy.get_policy(state)``.
    """
    state = state.upper()
    if isinstance(format, Format):
        fmt = format
    elif format is not None and str(format).endswith(".toml"):
        from voterolls.formats.registry import load_user_format

        fmt = load_user_format(format)
    else:
        fmt = get_format(str(format)) if format else format_for_state(state)
    pol = policy_view(state, policy)
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    con = duckdb.connect()
    con.execute("SET enable_progress_bar = false")
    try:
        prepare_tables(con, state, registrations, vote_history)
        reg = fmt.registrations
        keep = "TRUE" if reg.protected.mode == "mask" else "NOT r.protected"
        con.execute(
            f"CREATE OR REPLACE TEMP TABLE r AS SELECT * FROM r_all r WHERE r.state = {lit(state)} AND {keep}"
        )
        con.execute(
            "CREATE OR REPLACE TEMP TABLE h AS SELECT h.* FROM h_all h "
            "WHERE h.state_voter_id IN (SELECT state_voter_id FROM r)"
            + ("" if pol.history else " AND FALSE")
        )
        writer = WRITERS.get(fmt.name, write_plain)
        paths = writer(con, fmt, state, pol, out_dir, extract_date)
    finally:
        con.close()
    log.info("wrote %d native file(s) for %s in format %s", len(paths), state, fmt.name)
    return sorted(paths)


__all__ = ["WRITERS", "native_file_name", "write_native"]
