"""Fixtures for tests/test_report.py: a tiny synthetic workspace (no real voter data; no tests here).

Names, dates of birth and addresses are invented tokens so a test can assert
that none of them reaches the HTML.
"""

from __future__ import annotations

import json
from datetime import date, timedelta
from pathlib import Path

import duckdb
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from voterolls.schema import REGISTRATION_SCHEMA, VOTE_HISTORY_SCHEMA, conform

SURNAMES = ["QUORVANT", "BELLWHISK", "ZANTHOLM", "MIRRODALE", "FENWRIGHTLY", "OSKELVAR"]
FIRSTS = ["ALDOVIN", "PERSEPHA", "TOLLIVER", "MARIGOLDA", "CASWYN"]
STREETS = ["QUARRYVIEW RD", "LINDENMARSH AVE", "HOLLOWCREST LN"]

#: (state, rows, dob granularity, party code set)
STATES = [
    ("NC", 400, "year", ["DEM", "REP", "UNA", "XQ"]),
    ("OH", 300, "full", ["D", "R", ""]),
    ("FL", 250, "full", ["DEM", "REP", "NPA", "ZZZ"]),
    ("WY", 5, "year", ["R"]),
]

PARTY_MAP = {"DEM": "DEM", "REP": "REP", "UNA": "UNA", "D": "DEM", "R": "REP", "NPA": "UNA"}


def registrations(seed: int = 7) -> pa.Table:
    rng = np.random.default_rng(seed)
    parts = []
    for st, n, gran, codes in STATES:
        dob = [date(1940, 1, 1) + timedelta(days=int(d)) for d in rng.integers(0, 365 * 60, n)]
        code = [codes[i] or None for i in rng.integers(0, len(codes), n)]
        rows = {
            "state": [st] * n,
            "state_voter_id": [f"{st}{i:06d}" for i in range(n)],
            "county": ["C1"] * n,
            "last_name": [SURNAMES[i] for i in rng.integers(0, len(SURNAMES), n)],
            "first_name": [FIRSTS[i] for i in rng.integers(0, len(FIRSTS), n)],
            "first_name_canonical": None,
            "dob": dob if gran == "full" else [None] * n,
            "birth_year": [d.year for d in dob],
            "dob_granularity": [gran] * n,
            "gender": [["M", "F"][i] for i in rng.integers(0, 2, n)],
            "party_code": code,
            "party": [PARTY_MAP.get(c) if c else None for c in code],
            "status": ["active"] * n,
            "status_code": ["A"] * n,
            "residence_address": [f"{4800 + i} {STREETS[i % 3]}" for i in range(n)],
            "residence_city": ["RALEIGH"] * n,
            "residence_zip5": ["27601" if i % 50 else "2760" for i in range(n)],
            "phone": ["9195550123"] * n if st == "NC" else [None] * n,
            "registration_date": [date(2010, 1, 1)] * n,
        }
        rows["first_name_canonical"] = rows["first_name"]
        parts.append(pa.table(rows))
    return conform(pa.concat_tables(parts, promote_options="default"), REGISTRATION_SCHEMA)


def vote_history(reg: pa.Table) -> pa.Table:
    t = reg.filter(pc.is_in(reg.column("state"), pa.array(["NC", "OH"])))
    n = t.num_rows
    return conform(
        pa.table(
            {
                "state": t.column("state"),
                "state_voter_id": t.column("state_voter_id"),
                "election_date": [date(2016, 11, 8)] * n,
                "election_type": ["general"] * n,
                "vote_method": ["in_person"] * n,
            }
        ),
        VOTE_HISTORY_SCHEMA,
    )


def connection(reg: pa.Table | None = None) -> duckdb.DuckDBPyConnection:
    reg = reg if reg is not None else registrations()
    con = duckdb.connect()
    con.register("_reg", reg)
    con.register("_vh", vote_history(reg))
    con.execute("CREATE VIEW registrations AS SELECT * FROM _reg")
    con.execute("CREATE VIEW vote_history AS SELECT * FROM _vh")
    return con


def write_pairs(workspace: Path, seed: int = 3) -> pa.Table:
    rng = np.random.default_rng(seed)
    n = 5000
    p = np.concatenate([rng.beta(0.3, 6, n - 120), rng.beta(8, 1, 117), [0.52, 0.53, 0.55]])
    gl = np.where(rng.random(n) < 0.5, "full", "year")
    gr = np.where(rng.random(n) < 0.5, "full", "year")
    t = pa.table(
        {
            "state_l": ["NC"] * n,
            "state_voter_id_l": [f"NC{i:06d}" for i in range(n)],
            "state_r": np.where(rng.random(n) < 0.8, "OH", "NC").tolist(),
            "state_voter_id_r": [f"OH{i:06d}" for i in range(n)],
            "match_probability": p,
            "match_weight": np.log2(p / (1 - p + 1e-12) + 1e-12),
            "dob_granularity_l": gl,
            "dob_granularity_r": gr,
        }
    )
    (workspace / "link").mkdir(parents=True, exist_ok=True)
    pq.write_table(t, workspace / "link" / "pairs.parquet")
    report = {
        "engine": "duckdb",
        "candidate_pairs": 81234,
        "pairs_written": n,
        "clusters": 930,
        "registrations_in_multi_clusters": 7,
        "threshold": 0.5,
        "min_probability": 0.001,
        "probability_mass_below_min": 12.345,
    }
    (workspace / "link" / "link_report.json").write_text(json.dumps(report))
    return t


#: estimates.json in the shape voterolls.stats.estimators.estimate_tables writes.
STATS_ESTIMATES = {
    "election": "2016-11-08",
    "vote_history_states": ["NC", "OH"],
    "duplicate_registrations": {
        "cross_state": {
            "unit": "pairs of registrations held by the same person",
            "rule_net_of_coincidences": {
                "estimate": 96.4,
                "ci95": [70.1, 122.7],
                "se": 13.4,
                "raw_rule_count": 4123,
                "expected_coincidences": 4026.6,
                "method": "first+last+DOB rule minus expected coincidences",
            },
            "combined": {
                "estimate": 131.2,
                "ci95": [98.0, 164.4],
                "se": 16.9,
                "method": "rule net + Splink non-exact",
            },
            "headline": "combined",
            "rests_on": {"states": ["FL", "NC", "OH", "WY"], "registrant_share": 0.134},
            "national": {
                "national": 2890.0,
                "ci95": [1500.0, 4280.0],
                "label": "national, extrapolated",
                "model": "ratio estimator: covered count / covered share of state-pair mass",
            },
        },
        "in_state": {
            "rule_net_of_coincidences": {
                "estimate": 40.0,
                "ci95": [20.0, 60.0],
                "raw_rule_count": 7,
                "expected_coincidences": 3.1,
            },
            "headline": "rule_net_of_coincidences",
        },
    },
    "double_votes": {
        "unit": "people recorded as voting in two states in the same election",
        "states": ["NC", "OH"],
        "votes_recorded_in_these_states": 700,
        "headline": {
            "estimate": 3.2,
            "ci95": [0.4, 6.0],
            "se": 1.4,
            "method": "combined",
            "per_voter": 0.00457,
        },
        "caveat": "a pair both recorded as voting is not proof of a double vote",
        "rests_on": {"states": ["NC", "OH"], "registrant_share": 0.066},
        "national": {
            "national": None,
            "label": "covered states only",
            "reason": "fewer than 3 covered state pairs: no basis for an extrapolation model",
        },
    },
    "coverage": {
        "registrants_measure": "resident population as of 2020-04-01, a proxy for registrants",
        "states_covered": ["FL", "NC", "OH", "WY"],
        "registrant_share_covered": 0.134,
        "states_with_birth_year_only": ["NC", "WY"],
        "states_without_dob": [],
        "vote_history_states": ["NC", "OH"],
    },
    "wording": "A match on name and date of birth is not evidence that anyone voted twice.",
    "crosscheck_purge": {
        "rule": "remove the earlier-registered record of each cross-state first+last+DOB match",
        "registrations_removed": 4050,
        "removed_registrations_used_to_vote": 2900,
        "rule_pairs_both_voted": 2100,
        "double_votes_prevented_estimate": {"estimate": 9.5, "ci95": [4.0, 15.0], "se": 2.8},
        "legitimate_votes_blocked_estimate": 2890.5,
        "legitimate_votes_blocked_per_double_vote_prevented": 304.3,
        "ratio_range_from_ci": [192.3, 724.0],
    },
}


def write_estimates(workspace: Path, body: dict | None = None) -> None:
    (workspace / "estimates").mkdir(parents=True, exist_ok=True)
    (workspace / "estimates" / "estimates.json").write_text(json.dumps(body or STATS_ESTIMATES))


def personal_values(reg: pa.Table) -> set[str]:
    """Every personal value in the fixture, in the forms a leak would take."""
    vals: set[str] = set()
    for col in ("last_name", "first_name", "residence_address"):
        vals.update(v for v in reg.column(col).to_pylist() if v)
    for d in reg.column("dob").to_pylist():
        if d:
            vals.update({d.isoformat(), d.strftime("%m/%d/%Y"), d.strftime("%Y%m%d")})
    return vals


def make_workspace(
    path: Path,
    reg: pa.Table | None = None,
    *,
    uniformity: bool = True,
    states: tuple[str, ...] | None = None,
    key_suffix: str = "",
) -> Path:
    """A real ``voterolls.store`` workspace holding the fixture, one committed snapshot per state.

    Snapshots are committed directly (not through ingest) so the report can be
    tested on the store's views without the native readers; the uniformity
    table comes from the ingest stage's own ``compute`` when available.
    """
    import datetime as dt

    from voterolls.store import SNAPSHOT_COLUMNS, Workspace

    reg = reg if reg is not None else registrations()
    vh = vote_history(reg)
    ws = Workspace(path)
    for st, *_ in STATES:
        if states is not None and st not in states:
            continue
        r = reg.filter(pc.equal(reg.column("state"), st))
        v = vh.filter(pc.equal(vh.column("state"), st))
        staged = ws.stage(st)
        pq.write_table(r, staged.dir / "registrations.parquet")
        pq.write_table(v, staged.dir / "vote_history.parquet")
        if uniformity:
            from voterolls.ingest.uniformity import compute
            from voterolls.policy import get_policy

            args = (staged.dir / "registrations.parquet", staged.dir / "vote_history.parquet")
            kw = {
                "state": st,
                "snapshot_id": staged.snapshot_id,
                "spec": None,
                "policy": get_policy(st),
            }
            try:
                u = compute(*args, **kw)
            except duckdb.InvalidInputException:
                # seen once under pytest-xdist: "Could not set option enable_progress_bar
                # as a global option" from compute()'s SET (reported to the ingest owner)
                u = compute(*args, **kw)
            pq.write_table(u, staged.dir / "uniformity.parquet")
        (staged.dir / "manifest.json").write_text("{}")
        record = dict.fromkeys(SNAPSHOT_COLUMNS)
        record.update(
            created_at=dt.datetime(2026, 11, 1, 12, 0),
            rows_read=r.num_rows + 3,
            loaded=r.num_rows,
            quarantined=3,
            protected_excluded=12,
            ingest_key=f"test-{st}{key_suffix}",  # a new suffix: a new snapshot
        )
        ws.commit(staged, record, [])
    return path
