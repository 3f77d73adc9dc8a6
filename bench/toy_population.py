"""A small, fully known population for testing the estimators in a coincidence-heavy regime.

Why beside ``voterolls.synth``: the synthetic nation spreads 100,000 people
over 51 states with the full Census name distributions, so its Crosscheck
flags are almost all true duplicates (0.1 expected full-DOB coincidences).
The regime the statistics exist for (Goel et al. 2020: ~97% of flagged vote
pairs are different people) needs concentrated names and few states, and the
tests need every rate as a parameter (duplicate rate, double-vote rate,
record noise, vote-record error) and a population built in a second.  It
does not re-implement the synthetic nation: names come from the same Census
tables (``voterolls.data``), dates of birth from the synthetic nation's own
sampler (``voterolls.synth.population.sample_dob``: real age structure and
daily births), and vote-record errors follow the same rule as
``voterolls.synth.history`` (a vote credited to a random non-voter of the same
state).  Nothing here is a real person.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pyarrow as pa

from voterolls import data
from voterolls.synth.population import sample_dob


@dataclass
class ToyPopulation:
    registrations: pa.Table  # national schema subset
    vote_history: pa.Table
    truth_pairs: pa.Table  # state_l, state_voter_id_l, state_r, state_voter_id_r, kind
    truth_double_votes: int
    truth_cross_pairs: int
    election_date: str
    truth_double_vote_pairs: pa.Table | None = None  # same columns as truth_pairs


ELECTION = "2024-11-05"


def _credit_errors(
    rng: np.random.Generator, voted: np.ndarray, state: np.ndarray, rate: float
) -> np.ndarray:
    """Vote marks after clerical errors: each real vote is, with probability ``rate``, credited
    to a random non-voter of the same state instead (the rule of ``voterolls.synth.history``)."""
    rec = voted.copy()
    err = np.flatnonzero(voted & (rng.random(voted.size) < rate))
    if not err.size:
        return rec
    non = np.flatnonzero(~voted)
    non = non[np.argsort(state[non], kind="stable")]  # grouped by state
    counts = np.bincount(state[non], minlength=int(state.max()) + 1)
    starts = np.r_[0, np.cumsum(counts)[:-1]]
    es_ = state[err]
    ok = counts[es_] > 0
    err, es_ = err[ok], es_[ok]
    target = non[starts[es_] + (rng.random(err.size) * counts[es_]).astype(np.int64)]
    _, keep = np.unique(target, return_index=True)  # one false mark per registration
    err, target = err[np.sort(keep)], target[np.sort(keep)]
    rec[err] = False
    rec[target] = True
    return rec


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
    if uniform_dob:  # textbook check: every day of a year equally likely
        years = rng.integers(1935, 2006, people)
        days = np.where((years % 4 == 0), 366, 365)
        doy = (rng.random(people) * days).astype(int)
        dob = (years - 1970).astype("datetime64[Y]").astype("datetime64[D]") + doy
    else:
        dob = sample_dob(rng, people, np.datetime64(ELECTION, "D")).astype("datetime64[D]")
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
    vote_rec = _credit_errors(rng, voted, st, vote_error)
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
    election = ELECTION
    vh = pa.table(
        {
            "state": regs.column("state").filter(pa.array(vote_rec)),
            "state_voter_id": regs.column("state_voter_id").filter(pa.array(vote_rec)),
            "election_date": pa.array(
                np.full(vote_rec.sum(), np.datetime64(election, "D")), pa.date32()
            ),
            "election_type": pa.array(["general"] * int(vote_rec.sum())),
            "vote_method": pa.array(["unknown"] * int(vote_rec.sum())),  # a counted ballot
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
