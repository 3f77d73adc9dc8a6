"""A small, fully known population for testing the estimators.

Why here and not in ``voterolls.synth``: the statistics need a generator whose
every rate is a parameter (duplicate rate, double-vote rate, record noise,
vote-record error) so tests can check an estimator against a known answer in
a second, and so the validation bench can run before the full synthetic
nation and linkage exist.  Names come from the vendored Census tables and
dates of birth from the vendored daily births, like ``voterolls.synth``.
Nothing here is a real person.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pyarrow as pa

from voterolls import data
from voterolls.stats.coincidence import _seasonal_profile


@dataclass
class ToyPopulation:
    registrations: pa.Table  # national schema subset
    vote_history: pa.Table
    truth_pairs: pa.Table  # state_l, state_voter_id_l, state_r, state_voter_id_r, kind
    truth_double_votes: int
    truth_cross_pairs: int
    election_date: str
    truth_double_vote_pairs: pa.Table | None = None  # same columns as truth_pairs


def _top(table: pa.Table, k: int) -> tuple[np.ndarray, np.ndarray]:
    names = np.array(table.column("name").to_pylist()[:k], dtype=object)
    w = table.column("count").to_numpy()[:k].astype(float)
    return names, w / w.sum()


def make_population(
    people: int = 20_000,
    seed: int = 0,
    states: dict[str, str] | None = None,
    dup_rate: float = 0.03,
    double_vote_rate: float = 0.01,
    turnout: float = 0.6,
    vote_error: float = 0.0,
    name_noise: float = 0.05,
    dob_noise: float = 0.03,
    top_first: int = 3000,
    top_last: int = 20000,
    uniform_dob: bool = False,
) -> ToyPopulation:
    """Draw a population; ``states`` maps state code -> dob granularity (full | year).

    Each person lives in one state (weights proportional to a fixed size);
    ``dup_rate`` of them also hold a registration in a second state, with the
    name (``name_noise``) or DOB (``dob_noise``) mis-recorded there.  Of those,
    ``double_vote_rate`` vote in both states; everyone else votes once with
    probability ``turnout``.  ``vote_error``: the share of vote records credited to another registration of the same state.
    """
    rng = np.random.default_rng(seed)
    states = states or {"AA": "full", "BB": "full", "CC": "full", "DD": "year"}
    codes = list(states)
    sw = np.linspace(2.0, 1.0, len(codes))
    sw = sw / sw.sum()
    fn, fw = _top(data.first_names(), top_first)
    ln, lw = _top(data.surnames(), top_last)
    first = fn[rng.choice(len(fn), people, p=fw)]
    last = ln[rng.choice(len(ln), people, p=lw)]
    years = rng.integers(1935, 2006, people)
    doy = np.empty(people, dtype=int)
    for y in np.unique(years):
        m = years == y
        prof = (
            np.full(365 + (y % 4 == 0), 1.0 / (365 + (y % 4 == 0)))
            if uniform_dob
            else _seasonal_profile(int(y))
        )
        doy[m] = rng.choice(len(prof), m.sum(), p=prof)
    dob = (years - 1970).astype("datetime64[Y]").astype("datetime64[D]") + doy
    home = rng.choice(len(codes), people, p=sw)
    dup = rng.random(people) < dup_rate
    other = (home + 1 + rng.integers(0, len(codes) - 1, people)) % len(codes)
    votes_home = rng.random(people) < turnout
    dv = dup & (rng.random(people) < double_vote_rate / max(turnout, 1e-9)) & votes_home

    pid = np.r_[np.arange(people), np.nonzero(dup)[0]]
    st = np.r_[home, other[dup]]
    f = np.r_[first, first[dup]].astype(object)
    dd = np.r_[dob, dob[dup]]
    voted = np.r_[votes_home, dv[dup]]
    second = np.r_[np.zeros(people, bool), np.ones(dup.sum(), bool)]
    n = len(pid)
    # noise on the second registration
    nz = second & (rng.random(n) < name_noise)
    f[nz] = np.array([s[:-1] + ("A" if s[-1] != "A" else "E") for s in f[nz]], dtype=object)
    dz = second & (rng.random(n) < dob_noise)
    dd[dz] = dd[dz] + rng.integers(1, 30, dz.sum())
    # vote-record error: a share of vote records is credited to another
    # registration of the same state (poll-book slip), as in voterolls.synth
    vote_rec = voted.copy()
    moved = voted & (rng.random(n) < vote_error)
    for s_ in np.unique(st):
        mv = np.nonzero(moved & (st == s_))[0]
        pool = np.nonzero(~voted & (st == s_))[0]
        if len(mv) and len(pool):
            vote_rec[mv] = False
            vote_rec[rng.choice(pool, len(mv), replace=False if len(pool) >= len(mv) else True)] = (
                True
            )
    gran = np.array([states[codes[i]] for i in st], dtype=object)
    svid = np.array([f"{codes[s]}{i:08d}" for s, i in zip(st, range(n), strict=True)], dtype=object)
    by = dd.astype("datetime64[Y]").astype(int) + 1970
    full = gran == "full"
    regs = pa.table(
        {
            "state": pa.array([codes[i] for i in st]),
            "state_voter_id": pa.array(svid),
            "first_name": pa.array(f),
            "last_name": pa.array(np.r_[last, last[dup]].astype(object)),
            "dob": pa.array(np.where(full, dd, np.datetime64("NaT")), pa.date32()),
            "birth_year": pa.array(by, pa.int16()),
            "dob_granularity": pa.array(gran),
            "registration_date": pa.array(
                (np.datetime64("2000-01-01") + rng.integers(0, 8000, n)).astype("datetime64[D]"),
                pa.date32(),
            ),
            "person_id": pa.array(pid),
        }
    )
    election = "2024-11-05"
    vh = pa.table(
        {
            "state": regs.column("state").filter(pa.array(vote_rec)),
            "state_voter_id": regs.column("state_voter_id").filter(pa.array(vote_rec)),
            "election_date": pa.array(
                np.full(vote_rec.sum(), np.datetime64(election, "D")), pa.date32()
            ),
            "election_type": pa.array(["general"] * int(vote_rec.sum())),
        }
    )
    idx = np.nonzero(dup)[0]
    j = people + np.arange(len(idx))
    truth = pa.table(
        {
            "state_l": pa.array([codes[home[i]] for i in idx]),
            "state_voter_id_l": pa.array(svid[idx]),
            "state_r": pa.array([codes[other[i]] for i in idx]),
            "state_voter_id_r": pa.array(svid[j]),
            "kind": pa.array(["cross_state"] * len(idx)),
        }
    )
    dvp = truth.filter(pa.array(dv[idx]))
    return ToyPopulation(regs, vh, truth, int(dv.sum()), int(dup.sum()), election, dvp)
