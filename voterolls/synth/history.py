"""One general election: who really voted, where, and what the lists recorded.

Three things are simulated separately because the statistics must tell them
apart:

* real votes on current registrations (turnout);
* true double votes: a person with two registrations who votes on both
  (Goel et al. 2020: about 1 in 4,000 voters in 2012);
* clerical vote-record errors: a vote credited to the wrong registrant in the
  same state (poll-book / scanning slips; ~1% of records).  The person who
  voted then shows no vote, and a non-voter shows one.  Such errors create
  apparent double votes that are not real, which is exactly what a naive
  analysis mistakes for fraud.  Every ballot is exposed to the same error
  process, double voters' ballots included (a clerk does not know which
  ballot is a double vote; the estimator assumes the same, METHODS.md §2.2).
  Double voters' ballots are drawn last, from the same stream, so every other
  part of a seed's election is what it was when they were exempt.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from voterolls.schema import JURISDICTIONS, LIVE_STATUSES, VOTE_HISTORY_SCHEMA
from voterolls.synth.arrays import const, pick
from voterolls.synth.config import SynthConfig, age_weight
from voterolls.synth.geography import ABSENTEE_STATES, ALL_MAIL_STATES

METHODS = ("in_person", "early", "mail", "absentee")
METHOD_CODES = {"in_person": "P", "early": "E", "mail": "M", "absentee": "A"}


@dataclass
class Votes:
    """Vote history as recorded plus the truth needed to audit it.

    Indices refer to rows of the (sorted) registrations table.
    """

    table: pa.Table  # VOTE_HISTORY_SCHEMA, as recorded
    cast: np.ndarray  # rows that really cast a vote (before clerical errors)
    double_current: np.ndarray  # row of the current registration of a double voter
    double_other: np.ndarray  # row of the other registration the same person voted on
    error_true: np.ndarray  # row that really voted but whose vote was credited elsewhere
    error_credited: np.ndarray  # row credited with that vote


def simulate(
    regs: pa.Table, hidden: dict[str, np.ndarray], cfg: SynthConfig, rng: np.random.Generator
) -> Votes:
    m = regs.num_rows
    kind, person, state = hidden["kind"], hidden["person"], hidden["state_idx"]
    current = kind == 0
    voted = current & (rng.random(m) < _turnout_probability(regs, hidden, cfg))

    # --- true double votes (only on records that are registrations) --------
    live = np.isin(regs["status"].to_numpy(zero_copy_only=False), LIVE_STATUSES)
    extra = np.flatnonzero(~current & live)
    extra = extra[rng.permutation(extra.size)]
    _, first = np.unique(person[extra], return_index=True)
    extra = extra[np.sort(first)]  # one other registration per person, chosen at random
    n_people = int(person.max()) + 1 if m else 0
    cur_row = np.full(n_people, -1, dtype=np.int64)
    cur_row[person[current]] = np.flatnonzero(current)
    partner = cur_row[person[extra]]
    eligible = voted[partner]
    extra, partner = extra[eligible], partner[eligible]
    n_voters = int(voted.sum())
    p = min(1.0, cfg.double_vote_rate * n_voters / extra.size) if extra.size else 0.0
    chosen = rng.random(extra.size) < p
    double_other, double_current = extra[chosen], partner[chosen]
    cast = voted.copy()
    cast[double_other] = True
    cast_rows = np.flatnonzero(cast)

    # --- clerical errors: credit the vote to a non-voter in the same state ---
    # Every cast ballot is exposed alike.  The double voters' ballots are drawn in a
    # second batch after everything else (same stream, same process), which keeps the
    # rest of the election byte-identical to the earlier synth that exempted them.
    double_rows = np.zeros(m, dtype=bool)
    double_rows[double_other] = True
    double_rows[double_current] = True
    nonvoters = np.flatnonzero(~cast)  # sorted by row -> grouped by state
    counts = np.bincount(state[nonvoters], minlength=len(JURISDICTIONS))
    starts = np.concatenate([[0], np.cumsum(counts)[:-1]])

    def credit(candidates: np.ndarray, taken: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Each candidate ballot errs with the configured rate; its mark goes to a random
        non-voter of the same state (a non-voter is credited at most once)."""
        err = candidates[rng.random(candidates.size) < cfg.vote_record_error_rate]
        es = state[err]
        ok = counts[es] > 0
        err, es = err[ok], es[ok]
        target = nonvoters[starts[es] + (rng.random(err.size) * counts[es]).astype(np.int64)]
        _, keep = np.unique(target, return_index=True)
        keep = np.sort(keep)
        err, target = err[keep], target[keep]
        fresh = ~np.isin(target, taken)
        return err[fresh], target[fresh]

    err, target = credit(cast_rows[~double_rows[cast_rows]], np.empty(0, dtype=np.int64))

    # --- methods, per real vote (the credited row inherits the real ballot's method)
    method = _methods(rng, state, kind, cfg)
    err_d, target_d = credit(cast_rows[double_rows[cast_rows]], target)
    err, target = np.concatenate([err, err_d]), np.concatenate([target, target_d])
    recorded = cast.copy()
    if cfg.vote_error_mechanism == "wrong_registration":
        recorded[err] = False  # the real voter's record loses the mark
    recorded[target] = True
    method[target] = method[err]
    rows = np.flatnonzero(recorded)
    table = _table(regs, rows, method[rows], np.datetime64(cfg.election_date, "D"))
    return Votes(table, cast_rows, double_current, double_other, err, target)


def _turnout_probability(
    regs: pa.Table, hidden: dict[str, np.ndarray], cfg: SynthConfig
) -> np.ndarray:
    """Per-registration vote probability: age and status shape, mean = ``cfg.turnout``.

    The scale is solved so that the expected turnout over current
    registrations equals ``cfg.turnout`` (probabilities capped at 0.97).
    """
    current = hidden["kind"] == 0
    inactive = pc.equal(regs["status"], "inactive").to_numpy(zero_copy_only=False)
    raw = age_weight(hidden["age"], cfg.turnout_age_weights) * np.where(
        inactive, cfg.inactive_turnout_ratio, 1.0
    )
    if cfg.mover_turnout_ratio != 1.0:
        person = hidden["person"]
        mover = np.zeros(int(person.max()) + 1, dtype=bool)
        mover[person[hidden["kind"] == 1]] = True
        raw = raw * np.where(mover[person], cfg.mover_turnout_ratio, 1.0)
    election = np.datetime64(cfg.election_date, "D")
    late = regs["registration_date"].to_numpy(zero_copy_only=False) > election
    raw = np.where(late, 0.0, raw)  # registered after the election: cannot have voted
    if not current.any():
        return np.zeros(raw.size)
    base = raw[current]
    lo, hi = 0.0, 1.0 / max(base[base > 0].min() if (base > 0).any() else 1.0, 1e-9)
    for _ in range(60):  # bisection on the scale: mean(min(scale*raw, cap)) = turnout
        mid = (lo + hi) / 2
        if np.minimum(mid * base, 0.97).mean() < cfg.turnout:
            lo = mid
        else:
            hi = mid
    return np.minimum(lo * raw, 0.97)


def _methods(
    rng: np.random.Generator, state: np.ndarray, kind: np.ndarray, cfg: SynthConfig
) -> np.ndarray:
    m = state.size
    all_mail = np.isin(state, [JURISDICTIONS.index(s) for s in ALL_MAIL_STATES])
    absentee = np.isin(state, [JURISDICTIONS.index(s) for s in ABSENTEE_STATES])

    def draw(mix: dict[str, float]) -> np.ndarray:
        w = np.array([mix.get(k, 0.0) for k in METHODS[:3]])
        return rng.choice(3, size=m, p=w / w.sum())

    method = np.where(all_mail, draw(cfg.all_mail_method_mix), draw(cfg.method_mix))
    # a vote on a registration left behind in another state is mostly by mail
    method = np.where((kind != 0) & (rng.random(m) < 0.7), 2, method)
    method = np.where((method == 2) & absentee, 3, method)
    return method


def _table(
    regs: pa.Table, rows: np.ndarray, method: np.ndarray, election_day: np.datetime64
) -> pa.Table:
    n = rows.size
    take = pa.array(rows)
    election = pa.array(np.full(n, election_day)).cast(pa.date32())
    desc = f"{election_day.astype(object).year} GENERAL"
    cols = {
        "state": regs["state"].take(take),
        "state_voter_id": regs["state_voter_id"].take(take),
        "county": regs["county"].take(take),
        "election_date": election,
        "election_type": const("general", n),
        "election_desc": const(desc, n),
        "vote_method": pick(METHODS, method),
        "vote_method_code": pick([METHOD_CODES[k] for k in METHODS], method),
    }
    arrays = [
        cols[f.name].combine_chunks()
        if isinstance(cols.get(f.name), pa.ChunkedArray)
        else cols.get(f.name, pa.nulls(n, f.type))
        for f in VOTE_HISTORY_SCHEMA
    ]
    table = pa.Table.from_arrays(arrays, schema=VOTE_HISTORY_SCHEMA)
    order = pc.sort_indices(
        table, sort_keys=[("state", "ascending"), ("state_voter_id", "ascending")]
    )
    return table.take(order)
