"""Small deterministic national-schema tables for format tests and benchmarks.

Made-up names and addresses (no real voter data); enough variety to exercise
every mapped field, quoting (names with quotes, commas, tabs, accents) and
vote history.  Not the synthetic population (``voterolls.synth``): this
exists so the formats can be tested on their own.
"""

from __future__ import annotations

import datetime as dt

import numpy as np
import pyarrow as pa

from voterolls.schema import REGISTRATION_SCHEMA, VOTE_HISTORY_SCHEMA, conform

_LAST = [
    "SMITH",
    "O'BRIEN",
    "GARCÍA",
    "NGUYEN",
    "JOHNSON",
    "DE LA CRUZ",
    "MÜLLER",
    "WASHINGTON",
    "LEE",
    "BROWN",
]
_FIRST = ["MARY", "JOSÉ", "ROBERT", "ANN-MARIE", "WEI", "JAMES", "ZOË", "DAVID", "LINDA", "KWAME"]
_MIDDLE = ["A", "LYNN", "", "J", "MARIE", "", "PAUL", "Q", "", "ROSE"]
_SUFFIX = ["", "", "JR", "", "", "III", "", "", "SR", ""]
_STREET = [
    "MAIN ST",
    "OAK AVE",
    "ELM ST APT 4",
    "RIVER RD",
    "1ST ST",
    "PINE LN",
    "MAPLE DR",
    "HILL CT",
]
_CITY = ["SPRINGFIELD", "RIVERTON", "FAIRVIEW", "GREENVILLE", "SALEM"]
_PARTY = ["DEM", "REP", "UNA", "LIB", "GRN"]
_STATUS = ["active", "active", "active", "inactive"]
_GENDER = ["M", "F", "F", "M", "U"]
_RACE = ["white", "black", "asian", "other", "unknown", "multiracial"]
_COUNTY = {
    "FL": ["ALA", "DAD", "LEO"],
    "OH": ["18", "25", "57", "77"],
    "PA": ["ADAMS", "BERKS"],
    "NY": ["24", "31"],
}
ELECTIONS = [
    (dt.date(2020, 11, 3), "general"),
    (dt.date(2022, 5, 17), "primary"),
    (dt.date(2022, 11, 8), "general"),
    (dt.date(2023, 8, 8), "special"),
    (dt.date(2024, 11, 5), "general"),
]
_METHOD = ["in_person", "absentee", "in_person", "early", "mail"]


def national_sample(
    state: str, n: int = 200, *, seed: int = 7, protected_every: int = 0
) -> tuple[pa.Table, pa.Table]:
    """``n`` registrations (REGISTRATION_SCHEMA + ``protected``) and their vote history."""
    rng = np.random.default_rng(seed)
    i = np.arange(n)
    pick = lambda seq: [seq[k] for k in rng.integers(0, len(seq), n)]  # noqa: E731
    dob = [dt.date(1940, 1, 1) + dt.timedelta(days=int(d)) for d in rng.integers(0, 365 * 62, n)]
    reg = [dt.date(1990, 1, 1) + dt.timedelta(days=int(d)) for d in rng.integers(0, 365 * 34, n)]
    counties = _COUNTY.get(state, ["001", "002"])
    last = pick(_LAST)
    if n > 3:  # awkward values that exercise quoting
        last[1] = 'SMITH "SMITTY", JR'
        last[2] = "TAB\tNAME"
    cols = {
        "state": [state] * n,
        "county": [counties[k % len(counties)] for k in i],
        "state_voter_id": [f"{state}{100000 + k:08d}" for k in i],
        "last_name": last,
        "first_name": pick(_FIRST),
        "middle_name": [m or None for m in pick(_MIDDLE)],
        "name_suffix": [s or None for s in pick(_SUFFIX)],
        "dob": dob,
        "birth_year": [d.year for d in dob],
        "dob_granularity": ["full"] * n,
        "gender": pick(_GENDER),
        "party": pick(_PARTY),
        "status": pick(_STATUS),
        "race": pick(_RACE),
        "registration_date": reg,
        "residence_address": [
            f"{100 + int(k)} {s}"
            for k, s in zip(rng.integers(1, 9000, n), pick(_STREET), strict=True)
        ],
        "residence_city": pick(_CITY),
        "residence_zip5": [f"{z:05d}" for z in rng.integers(1001, 99950, n)],
        "phone": [f"919555{k % 10000:04d}" for k in i],
        "email": [f"voter{k}@example.org" for k in i],
    }
    regs = pa.table({k: v for k, v in cols.items()})
    regs = conform(regs, REGISTRATION_SCHEMA)
    protected = [(protected_every > 0 and k % protected_every == protected_every - 1) for k in i]
    regs = regs.append_column("protected", pa.array(protected, pa.bool_()))
    vh_rows: dict[str, list] = {f.name: [] for f in VOTE_HISTORY_SCHEMA}
    voted = rng.random((n, len(ELECTIONS))) < 0.55
    for k in range(n):
        for e, (d, t) in enumerate(ELECTIONS):
            if voted[k, e]:
                vh_rows["state"].append(state)
                vh_rows["state_voter_id"].append(cols["state_voter_id"][k])
                vh_rows["county"].append(cols["county"][k])
                vh_rows["election_date"].append(d)
                vh_rows["election_type"].append(t)
                vh_rows["election_desc"].append(f"{d:%m/%d/%Y} {t.upper()}")
                vh_rows["vote_method"].append(_METHOD[(k + e) % len(_METHOD)])
                vh_rows["vote_method_code"].append(None)
                vh_rows["party_ballot"].append(cols["party"][k] if t == "primary" else None)
                vh_rows["source_file"].append(None)
                vh_rows["source_line"].append(None)
    vh = pa.table(vh_rows, schema=VOTE_HISTORY_SCHEMA)
    return regs, vh
