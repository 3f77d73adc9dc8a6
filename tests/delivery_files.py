"""County-split delivery files for the delivery tests (FL: 67 extracts + 67 history files).

Written by the project's native writer from made-up rows (``voterolls.formats.sample``),
with the county column spread over Florida's 67 county codes, so each county file
holds a few voters and each history file their votes.
"""

from __future__ import annotations

from pathlib import Path

import pyarrow as pa

from voterolls.formats.sample import national_sample
from voterolls.synth.native import write_native

#: Florida's 67 county codes as the Division of Elections writes them.
FL_COUNTIES = (
    "ALA BAK BAY BRA BRE BRO CAL CHA CIT CLA CLL CLM DAD DES DIX DUV ESC FLA FRA GAD GIL GLA GUL HAM "
    "HAR HEN HER HIG HIL HOL IND JAC JEF LAF LAK LEE LEO LEV LIB MAD MAN MRN MAR MON NAS OKA OKE ORA "
    "OSC PAL PAS PIN POL PUT SAN SAR SEM STJ STL SUM SUW TAY UNI VOL WAK WAL WAS"
).split()


def fl_county_files(
    out: Path, per_county: int = 6, seed: int = 5, protected_every: int = 0
) -> tuple[list[Path], list[Path]]:
    """(67 registration files, 67 history files), sorted by county code."""
    regs, vh = national_sample("FL", per_county * len(FL_COUNTIES), seed=seed, protected_every=protected_every)
    county = pa.array([FL_COUNTIES[i % len(FL_COUNTIES)] for i in range(regs.num_rows)], pa.string())
    regs = regs.set_column(regs.schema.get_field_index("county"), "county", county)
    of = dict(zip(regs.column("state_voter_id").to_pylist(), county.to_pylist(), strict=True))
    vh_county = pa.array([of[v] for v in vh.column("state_voter_id").to_pylist()], pa.string())
    vh = vh.set_column(vh.schema.get_field_index("county"), "county", vh_county)
    files = write_native("FL", regs, vh, out)
    reg = sorted(f for f in files if "_H_" not in f.name)
    his = sorted(f for f in files if "_H_" in f.name)
    assert len(reg) == len(his) == len(FL_COUNTIES)
    return reg, his
