"""The answer key: who each registration really is, and what really happened.

Linkage evaluation (precision / recall of duplicate pairs), the double-vote
estimator and the vote-record-error estimate are scored against these
tables.  They are written under ``truth/`` apart from the state files and are
never ingested.
"""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from voterolls.schema import JURISDICTIONS, LIVE_STATUSES
from voterolls.synth.arrays import pick
from voterolls.synth.history import Votes
from voterolls.synth.population import SUFFIXES, SURNAME_RACES, Persons, name_tables

RECORD_KINDS = ("current", "stale_cross_state", "in_state_duplicate")
DOB_ERRORS = ("none", "transposed", "placeholder", "first_of_month")


def build(
    regs: pa.Table, hidden: dict[str, np.ndarray], p: Persons, votes: Votes
) -> dict[str, pa.Table]:
    """records, persons, duplicate_pairs, double_votes, vote_record_errors."""
    m = regs.num_rows
    state, vid = regs["state"].combine_chunks(), regs["state_voter_id"].combine_chunks()
    person = hidden["person"]
    cast = np.zeros(m, dtype=bool)
    cast[votes.cast] = True
    typo_field = np.where(hidden["typo_first"], 1, np.where(hidden["typo_last"], 2, 0))
    records = pa.table(
        {
            "state": state,
            "state_voter_id": vid,
            "person_id": pa.array(person.astype(np.int64)),
            "record_kind": pick(RECORD_KINDS, hidden["kind"]),
            "nickname": pa.array(hidden["nickname"]),
            "typo_field": pick([None, "first_name", "last_name"], typo_field),
            "maiden_name": pa.array(hidden["maiden"]),
            "dob_error": pick(DOB_ERRORS, hidden["dob_error"]),
            "voted": pa.array(cast),
        }
    )

    t = name_tables()
    n_regs = np.bincount(person, minlength=p.n)
    persons = pa.table(
        {
            "person_id": pa.array(np.arange(p.n, dtype=np.int64)),
            "first_name": t.first_names.take(pa.array(p.first)),
            "middle_name": t.first_names.take(pa.array(np.maximum(p.middle, 0), mask=p.middle < 0)),
            "last_name": t.surnames.take(pa.array(p.last)),
            "name_suffix": pa.array(SUFFIXES).take(pa.array(p.suffix, mask=p.suffix == 0)),
            "dob": pa.array(p.dob.astype(np.int32), pa.int32()).cast(pa.date32()),
            "sex": pick(["M", "F"], p.female),
            "race": pick(SURNAME_RACES, p.race),
            "state": pa.array(JURISDICTIONS).take(pa.array(p.state)),
            "n_registrations": pa.array(n_regs.astype(np.int16)),
        }
    )

    return {
        "records": records,
        "persons": persons,
        "duplicate_pairs": _duplicate_pairs(state, vid, person, hidden["state_idx"], _live(regs)),
        "double_votes": _double_votes(state, vid, person, votes),
        "vote_record_errors": _vote_record_errors(state, vid, person, votes),
    }


def _live(regs: pa.Table) -> np.ndarray:
    """Per registration: its status makes it a registration (``LIVE_STATUSES``)."""
    return np.isin(regs["status"].to_numpy(zero_copy_only=False), LIVE_STATUSES)


def _duplicate_pairs(
    state: pa.Array, vid: pa.Array, person: np.ndarray, state_idx: np.ndarray, live: np.ndarray
) -> pa.Table:
    """Every pair of registrations of the same person, ordered so (state, id)_l < _r.

    Rows are sorted by (state, state_voter_id), so within a person the row
    number already gives the canonical order.
    """
    order = np.lexsort((np.arange(person.size), person))
    ps = person[order]
    starts = np.flatnonzero(np.r_[True, ps[1:] != ps[:-1]])
    sizes = np.diff(np.r_[starts, ps.size])
    left, right = [], []
    biggest = int(sizes.max()) if sizes.size else 0
    for i in range(biggest):  # at most 3 registrations per person: 3 pair slots
        for j in range(i + 1, biggest):
            sel = sizes > j
            a, b = order[starts[sel] + i], order[starts[sel] + j]
            left.append(np.minimum(a, b))
            right.append(np.maximum(a, b))
    lft = np.concatenate(left) if left else np.zeros(0, np.int64)
    rgt = np.concatenate(right) if right else np.zeros(0, np.int64)
    srt = np.lexsort((rgt, lft))
    lft, rgt = lft[srt], rgt[srt]
    kind = pick(["cross_state", "in_state"], state_idx[lft] == state_idx[rgt])
    return pa.table(
        {
            "state_l": state.take(pa.array(lft)),
            "state_voter_id_l": vid.take(pa.array(lft)),
            "state_r": state.take(pa.array(rgt)),
            "state_voter_id_r": vid.take(pa.array(rgt)),
            "kind": kind,
            "person_id": pa.array(person[lft].astype(np.int64)),
            # both records live: a duplicate registration (a cancelled / denied
            # record beside a live one is list maintenance, not a second registration)
            "live": pa.array(live[lft] & live[rgt]),
        }
    )


def _double_votes(state: pa.Array, vid: pa.Array, person: np.ndarray, votes: Votes) -> pa.Table:
    a, b = votes.double_current, votes.double_other
    lft, rgt = np.minimum(a, b), np.maximum(a, b)
    srt = np.argsort(lft, kind="stable")
    lft, rgt = lft[srt], rgt[srt]
    return pa.table(
        {
            "person_id": pa.array(person[lft].astype(np.int64)),
            "state_l": state.take(pa.array(lft)),
            "state_voter_id_l": vid.take(pa.array(lft)),
            "state_r": state.take(pa.array(rgt)),
            "state_voter_id_r": vid.take(pa.array(rgt)),
        }
    )


def _vote_record_errors(
    state: pa.Array, vid: pa.Array, person: np.ndarray, votes: Votes
) -> pa.Table:
    srt = np.argsort(votes.error_credited, kind="stable")
    cred, true = votes.error_credited[srt], votes.error_true[srt]
    return pa.table(
        {
            "state": state.take(pa.array(cred)),
            "state_voter_id": vid.take(pa.array(cred)),
            "person_id": pa.array(person[cred].astype(np.int64)),
            "true_state_voter_id": vid.take(pa.array(true)),
            "true_person_id": pa.array(person[true].astype(np.int64)),
        }
    )


def counts(truth: dict[str, pa.Table]) -> dict[str, int]:
    """Headline counts (no personal values) for summaries and manifests."""
    rk = truth["records"]["record_kind"]
    dp = truth["duplicate_pairs"]["kind"]
    return {
        "persons": truth["persons"].num_rows,
        "stale_cross_state": pc.sum(pc.equal(rk, "stale_cross_state")).as_py() or 0,
        "in_state_duplicate": pc.sum(pc.equal(rk, "in_state_duplicate")).as_py() or 0,
        "duplicate_pairs_cross_state": pc.sum(pc.equal(dp, "cross_state")).as_py() or 0,
        "duplicate_pairs_in_state": pc.sum(pc.equal(dp, "in_state")).as_py() or 0,
        "double_votes": truth["double_votes"].num_rows,
        "vote_record_errors": truth["vote_record_errors"].num_rows,
    }
