"""``generate_nation``: people -> registrations (with mess) -> votes -> truth.

One call builds the whole synthetic country in memory as Arrow tables.  The
order of work mirrors how real lists get their problems:

1. draw the true people (:mod:`voterolls.synth.population`);
2. give each a current registration in their home state, some a stale one
   left behind in a state they moved from, a few a second one in the same
   state;
3. record each registration the way a clerk would (nicknames, typos,
   abbreviated middle names, DOB slips: :mod:`voterolls.synth.mess`);
4. simulate one general election (:mod:`voterolls.synth.history`);
5. keep the truth apart (:mod:`voterolls.synth.truth`).

Every random draw comes from a child of ``np.random.SeedSequence(seed)``
dedicated to one step, so the same seed gives the same nation and changing
one step's logic does not reshuffle the others.  Nothing loops over people in
Python.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from voterolls.schema import JURISDICTIONS, REGISTRATION_SCHEMA
from voterolls.synth import history as history_mod
from voterolls.synth import truth as truth_mod
from voterolls.synth.arrays import const, pick
from voterolls.synth.config import SynthConfig, age_weight
from voterolls.synth.geography import (
    DEFAULT_ID_FORMAT,
    ID_FORMATS,
    NO_PARTY_STATES,
    PARTY_CODE_OVERRIDES,
    STREET_NAMES,
    STREET_TYPE_WEIGHTS,
    STREET_TYPES,
    Places,
    state_shares,
)
from voterolls.synth.mess import (
    apply_dob_errors,
    apply_nicknames,
    apply_typos,
    make_date,
    render_middle,
    split_date,
)
from voterolls.synth.population import SUFFIXES, Persons, name_tables, sample_persons

#: record_kind codes (index) and names.
RECORD_KINDS = ("current", "stale_cross_state", "in_state_duplicate")
CURRENT, STALE, DUPLICATE = 0, 1, 2

#: Party preference of registrants where a state registers party (rough
#: national shares of party registrants: Gallup / state registration totals).
PARTY_SHARES = {
    "DEM": 0.38, "REP": 0.33, "UNA": 0.255, "LIB": 0.012, "GRN": 0.004,
    "CST": 0.002, "WFP": 0.002, "OTH": 0.015,
}  # fmt: skip

RACE_CODES = {
    "white": "W", "black": "B", "asian": "A", "native_american": "I",
    "multiracial": "M", "hispanic": "H", "unknown": "U",
}  # fmt: skip

EMAIL_DOMAINS = ("GMAIL.COM", "YAHOO.COM", "HOTMAIL.COM", "AOL.COM", "OUTLOOK.COM", "ICLOUD.COM")
EMAIL_WEIGHTS = (0.55, 0.15, 0.1, 0.08, 0.08, 0.04)

_EPOCH_1972 = int(np.datetime64("1972-01-01", "D").astype(np.int64))


@dataclass
class Nation:
    """A synthetic country: what the states hold, and the truth behind it.

    ``registrations`` has every ``REGISTRATION_SCHEMA`` column with full,
    as-recorded values plus ``protected`` (confidential voter).
    ``vote_history`` has ``VOTE_HISTORY_SCHEMA`` columns.  ``identifiers``
    holds what a state keeps but never publishes (full DOB, SSN4, licence
    number).  ``truth`` maps table name -> table (records, persons,
    duplicate_pairs, double_votes, vote_record_errors); it is never ingested.
    """

    seed: int
    people: int
    config: SynthConfig
    registrations: pa.Table
    vote_history: pa.Table
    identifiers: pa.Table
    truth: dict[str, pa.Table] = field(default_factory=dict)

    def states(self) -> list[str]:
        """Jurisdictions with at least one registration, in ``JURISDICTIONS`` order."""
        present = set(pc.unique(self.registrations["state"]).to_pylist())
        return [s for s in JURISDICTIONS if s in present]

    def restrict(self, states: list[str] | tuple[str, ...]) -> Nation:
        """The same nation seen through only ``states`` (for fast tests and demos).

        Registrations, history and identifiers of other states are dropped;
        truth keeps the records of these states, the persons with at least
        one of them, and pairs / double votes / errors wholly inside them.
        """
        keep = pa.array(sorted(set(states)), pa.string())

        def rows(t: pa.Table, col: str = "state") -> pa.Table:
            return t.filter(pc.is_in(t[col], value_set=keep))

        def both(t: pa.Table) -> pa.Table:
            mask = pc.and_(
                pc.is_in(t["state_l"], value_set=keep), pc.is_in(t["state_r"], value_set=keep)
            )
            return t.filter(mask)

        records = rows(self.truth["records"])
        persons = self.truth["persons"]
        persons = persons.filter(
            pc.is_in(persons["person_id"], value_set=pc.unique(records["person_id"]))
        )
        truth = {
            "records": records,
            "persons": persons,
            "duplicate_pairs": both(self.truth["duplicate_pairs"]),
            "double_votes": both(self.truth["double_votes"]),
            "vote_record_errors": rows(self.truth["vote_record_errors"]),
        }
        return Nation(
            seed=self.seed,
            people=self.people,
            config=self.config,
            registrations=rows(self.registrations),
            vote_history=rows(self.vote_history),
            identifiers=rows(self.identifiers),
            truth=truth,
        )


def generate_nation(people: int, seed: int, config: SynthConfig | None = None) -> Nation:
    """Generate ``people`` true persons, their registrations, one election and the truth.

    The number of registrations is about ``people * (1 + stale_cross_state_rate
    + in_state_duplicate_rate)``.  Deterministic in ``seed``.
    """
    if people < 1:
        raise ValueError("people must be >= 1")
    cfg = config or SynthConfig()
    # the 9th stream serves the alternative-process options only, so the default
    # nation stays byte-identical to the one before they existed
    rngs = [np.random.default_rng(s) for s in np.random.SeedSequence(seed).spawn(9)]
    r_persons, r_records, r_mess, r_place, r_ids, r_votes, r_ident, r_misc, r_opt = rngs

    persons = sample_persons(r_persons, people, cfg)
    rec = _records(persons, r_records, cfg, r_opt)
    regs, hidden = _registrations(persons, rec, cfg, r_mess, r_place, r_ids, r_misc, r_opt)

    order = pc.sort_indices(
        regs, sort_keys=[("state", "ascending"), ("state_voter_id", "ascending")]
    )
    regs = regs.take(order)
    o = order.to_numpy()
    hidden = {k: v[o] for k, v in hidden.items()}

    votes = history_mod.simulate(regs, hidden, cfg, r_votes)
    identifiers = _identifiers(regs, hidden, persons, seed, cfg, r_ident)
    truth = truth_mod.build(regs, hidden, persons, votes)
    return Nation(
        seed=seed,
        people=people,
        config=cfg,
        registrations=regs,
        vote_history=votes.table,
        identifiers=identifiers,
        truth=truth,
    )


# ---------------------------------------------------------------------------
# Which registrations exist.
# ---------------------------------------------------------------------------


@dataclass
class _Records:
    person: np.ndarray
    kind: np.ndarray
    state: np.ndarray
    reg_date: np.ndarray  # int days


def _records(
    p: Persons, rng: np.random.Generator, cfg: SynthConfig, r_opt: np.random.Generator
) -> _Records:
    n = p.n
    age = _age_at(p.dob, cfg)
    w = age_weight(age, cfg.stale_age_weights)
    stale_prob = np.minimum(cfg.stale_cross_state_rate * w / w.mean(), 1.0)
    stale_p = np.flatnonzero(rng.random(n) < stale_prob)
    dup_p = np.flatnonzero(rng.random(n) < cfg.in_state_duplicate_rate)
    shares = state_shares()
    old_state = rng.choice(shares.size, size=stale_p.size, p=shares)
    same = old_state == p.state[stale_p]
    old_state[same] = (old_state[same] + rng.integers(1, shares.size, same.sum())) % shares.size

    person = np.concatenate([np.arange(n), stale_p, dup_p])
    kind = np.concatenate(
        [np.full(n, CURRENT), np.full(stale_p.size, STALE), np.full(dup_p.size, DUPLICATE)]
    ).astype(np.int8)
    state = np.concatenate([p.state, old_state, p.state[dup_p]])

    # registration dates: nobody registers before 18 or before 1972
    y, m, d = split_date(p.dob)
    lo = np.maximum(make_date(y + 18, m, np.minimum(d, 28 + (m != 2) * 3)), _EPOCH_1972)
    hi = int(np.datetime64(cfg.registration_cutoff, "D").astype(np.int64))
    lo = np.minimum(lo, hi)
    span = hi - lo
    # most people last (re-)registered recently: gap since registration ~ Exp(9 years)
    gap = rng.exponential(9 * 365.25, n)
    gap = np.where(gap > span, rng.random(n) * span, gap)
    current = (hi - gap).astype(np.int64)
    # movers: old registration before the move, current one after it
    s_lo, s_span = lo[stale_p], span[stale_p]
    move = s_lo + (0.1 + 0.9 * rng.random(stale_p.size)) * s_span
    stale_date = s_lo + rng.random(stale_p.size) * np.maximum(move - 30 - s_lo, 0)
    current[stale_p] = (move + rng.random(stale_p.size) * np.minimum(365, hi - move)).astype(
        np.int64
    )
    # in-state duplicate: an older (or same-day double entry) registration
    dup_date = lo[dup_p] + rng.random(dup_p.size) * (current[dup_p] - lo[dup_p])
    reg_date = np.concatenate([current, stale_date.astype(np.int64), dup_date.astype(np.int64)])
    reg_date = np.minimum(reg_date, hi)
    # registered after the election (the list was extracted weeks later)
    late = np.flatnonzero(r_opt.random(n) < cfg.late_registration_rate)
    election = int(np.datetime64(cfg.election_date, "D").astype(np.int64))
    reg_date[late] = election + 1 + (r_opt.random(late.size) * 60).astype(np.int64)
    return _Records(person, kind, state, reg_date)


def _age_at(dob: np.ndarray, cfg: SynthConfig) -> np.ndarray:
    """Whole years of age on election day."""
    election = int(np.datetime64(cfg.election_date, "D").astype(np.int64))
    y, m, d = split_date(dob)
    ey, em, ed = split_date(np.array([election]))
    before = (m > em[0]) | ((m == em[0]) & (d > ed[0]))
    return ey[0] - y - before.astype(np.int64)


# ---------------------------------------------------------------------------
# What each registration says.
# ---------------------------------------------------------------------------


def _registrations(
    p: Persons,
    rec: _Records,
    cfg: SynthConfig,
    rng: np.random.Generator,
    r_place: np.random.Generator,
    r_ids: np.random.Generator,
    r_misc: np.random.Generator,
    r_opt: np.random.Generator,
) -> tuple[pa.Table, dict[str, np.ndarray]]:
    t = name_tables()
    m = rec.person.size
    person, kind = rec.person, rec.kind
    female = p.female[person]

    # --- names --------------------------------------------------------------
    last_idx = p.last[person].copy()
    maiden = (kind == STALE) & female & (rng.random(m) < cfg.marriage_surname_change_rate)
    new_last = np.searchsorted(t.surname_cdf, rng.random(int(maiden.sum())), side="right")
    last_idx[maiden] = np.minimum(new_last, t.surname_cdf.size - 1)
    last = t.surnames.take(pa.array(last_idx))
    first_idx = p.first[person]
    first = t.first_names.take(pa.array(first_idx))
    # nickname_rate is the share of all records; only names with a nickname can carry one
    can_nick = t.nick_counts[first_idx] > 0
    p_nick = min(1.0, cfg.nickname_rate / max(can_nick.mean(), 1e-9))
    first, nick = apply_nicknames(first_idx, first, rng.random(m) < p_nick, rng, t)
    typo = rng.random(m) < cfg.typo_rate
    typo_first = typo & (rng.random(m) < 0.5)
    typo_last = typo & ~typo_first
    first = apply_typos(first, typo_first, rng)
    last = apply_typos(last, typo_last, rng)
    mid_idx = p.middle[person]
    middle_full = t.first_names.take(pa.array(np.maximum(mid_idx, 0), mask=mid_idx < 0))
    middle = render_middle(middle_full, rng, cfg.middle_missing_rate, cfg.middle_initial_rate)
    suffix_idx = np.where(rng.random(m) < cfg.suffix_omitted_rate, 0, p.suffix[person])
    suffix = pa.array(SUFFIXES).take(pa.array(suffix_idx, mask=suffix_idx == 0))

    # --- dates of birth -------------------------------------------------------
    dob, dob_error = apply_dob_errors(
        p.dob[person],
        rng,
        cfg.dob_transposition_rate,
        cfg.placeholder_dob_rate,
        cfg.first_of_month_rate,
    )
    birth_year = split_date(dob)[0]

    # --- demographics -----------------------------------------------------------
    gender_i = np.where(rng.random(m) < cfg.gender_unknown_rate, 2, female.astype(np.int64))
    gender = pick(["M", "F", "U"], gender_i)
    from voterolls.synth.population import SURNAME_RACES

    races = [*SURNAME_RACES, "unknown"]
    race_i = np.where(rng.random(m) < cfg.race_unknown_rate, len(SURNAME_RACES), p.race[person])
    race = pick(races, race_i)
    race_code = pick([RACE_CODES[r] for r in races], race_i)

    party, party_code = _party(p, rec, r_misc)
    status_inactive = r_misc.random(m) < np.select(
        [kind == CURRENT, kind == STALE],
        [cfg.current_inactive_rate, cfg.stale_inactive_rate],
        cfg.duplicate_inactive_rate,
    )
    # records the state cancelled or denied but keeps in its file (list maintenance)
    cancelled = (kind != CURRENT) & (r_opt.random(m) < cfg.cancelled_kept_rate)
    denied = (kind == DUPLICATE) & ~cancelled & (r_opt.random(m) < cfg.denied_kept_rate)
    status_i = np.select([cancelled, denied, status_inactive], [2, 3, 1], 0)
    status = pick(["active", "inactive", "cancelled", "denied"], status_i)
    status_code = pick(["A", "I", "R", "D"], status_i)
    status_reason = pick(
        [None, "CONFIRMATION NOT RETURNED", "MOVED", "DUPLICATE APPLICATION"], status_i
    )
    u = r_misc.random(p.n)
    uocava_p = np.select(
        [u < cfg.military_rate, u < cfg.military_rate + cfg.overseas_rate], [1, 2], 0
    )
    uocava = pick(["none", "military", "overseas"], np.where(kind == CURRENT, uocava_p[person], 0))
    protected = r_misc.random(p.n) < cfg.protected_rate

    # --- residence ----------------------------------------------------------------
    places = _places()
    county, city, zip5 = places.sample(r_place, rec.state)
    house = np.exp(r_place.uniform(0, np.log(9999), m)).astype(np.int64)
    street = r_place.integers(0, len(STREET_NAMES), m)
    stype = r_place.choice(
        len(STREET_TYPES), size=m, p=np.array(STREET_TYPE_WEIGHTS) / sum(STREET_TYPE_WEIGHTS)
    )
    unit = np.where(r_place.random(m) < 0.12, r_place.integers(1, 400, m), 0)
    same_addr = (kind == DUPLICATE) & (r_place.random(m) < cfg.duplicate_same_address_rate)
    src = np.flatnonzero(same_addr)
    home = person[src]  # current registrations are rows 0..n-1
    for arr in (county, city, zip5, house, street, stype, unit):
        arr[src] = arr[home]
    address = _address(house, street, stype, unit)

    # --- contact ----------------------------------------------------------------
    phone_p = _phones(r_misc, p.n)
    phone = pc.if_else(
        pa.array(r_misc.random(m) < cfg.phone_rate), phone_p.take(pa.array(person)), None
    )
    email_p = _emails(r_misc, p, t)
    email = pc.if_else(
        pa.array(r_misc.random(m) < cfg.email_rate), email_p.take(pa.array(person)), None
    )

    # --- ids ----------------------------------------------------------------------
    voter_id = _voter_ids(r_ids, rec.state)

    state_codes = pa.array(JURISDICTIONS).take(pa.array(rec.state))
    cols = {
        "state": state_codes,
        "county": places.county_code.take(pa.array(county)),
        "state_voter_id": voter_id,
        "last_name": last,
        "first_name": first,
        "middle_name": middle,
        "name_suffix": suffix,
        "dob": pa.array(dob.astype(np.int32), pa.int32()).cast(pa.date32()),
        "birth_year": pa.array(birth_year.astype(np.int16)),
        "dob_granularity": const("full", m),
        "gender": gender,
        "gender_code": gender,
        "party": party,
        "party_code": party_code,
        "status": status,
        "status_code": status_code,
        "status_reason": status_reason,
        "race": race,
        "race_code": race_code,
        "uocava": uocava,
        "registration_date": pa.array(rec.reg_date.astype(np.int32), pa.int32()).cast(pa.date32()),
        "residence_address": address,
        "residence_city": places.city_name.take(pa.array(city)),
        "residence_zip5": pc.utf8_lpad(pa.array(zip5).cast(pa.string()), 5, "0"),
        "phone": phone,
        "email": email,
    }
    arrays, fields = [], []
    for f in REGISTRATION_SCHEMA:
        arrays.append(cols[f.name] if f.name in cols else pa.nulls(m, f.type))
        fields.append(f)
    arrays.append(pa.array(protected[person]))
    fields.append(
        pa.field(
            "protected",
            pa.bool_(),
            nullable=False,
            metadata={"doc": "confidential / protected voter"},
        )
    )
    table = pa.Table.from_arrays(arrays, schema=pa.schema(fields))
    hidden = {
        "person": person,
        "kind": kind,
        "state_idx": rec.state,
        "nickname": nick,
        "typo_first": typo_first,
        "typo_last": typo_last,
        "maiden": maiden,
        "dob_error": dob_error,
        "true_dob": p.dob[person],
        "age": _age_at(p.dob, cfg)[person],
    }
    return table, hidden


_PLACES: Places | None = None


def _places() -> Places:
    global _PLACES
    if _PLACES is None:
        _PLACES = Places()
    return _PLACES


def _party(p: Persons, rec: _Records, rng: np.random.Generator) -> tuple[pa.Array, pa.Array]:
    names = list(PARTY_SHARES)
    w = np.array([PARTY_SHARES[k] for k in names])
    pref = rng.choice(len(names), size=p.n, p=w / w.sum())[rec.person]
    no_party = np.isin(rec.state, [JURISDICTIONS.index(s) for s in NO_PARTY_STATES])
    party_i = np.where(no_party, len(names), pref)
    party = pick([*names, "NPR"], party_i)
    # the state's own code: per-state overrides; NPR states have no code
    overridden = sorted(PARTY_CODE_OVERRIDES)
    st_slot = np.zeros(len(JURISDICTIONS), dtype=np.int64)
    for k, st in enumerate(overridden, start=1):
        st_slot[JURISDICTIONS.index(st)] = k
    code_table = [[*names, None]]
    for st in overridden:
        code_table.append([PARTY_CODE_OVERRIDES[st].get(x, x) for x in names] + [None])
    width = len(names) + 1
    code = pick([c for row in code_table for c in row], st_slot[rec.state] * width + party_i)
    return party, code


def _address(
    house: np.ndarray, street: np.ndarray, stype: np.ndarray, unit: np.ndarray
) -> pa.Array:
    base = pc.binary_join_element_wise(
        pa.array(house).cast(pa.string()),
        pa.array(STREET_NAMES).take(pa.array(street)),
        pa.array(STREET_TYPES).take(pa.array(stype)),
        " ",
    )
    apt = pc.binary_join_element_wise(base, pa.array(unit).cast(pa.string()), " APT ")
    return pc.if_else(pa.array(unit > 0), apt, base)


def _digits(values: np.ndarray, width: int) -> pa.Array:
    return pc.utf8_lpad(pa.array(values).cast(pa.string()), width, "0")


def _phones(rng: np.random.Generator, n: int) -> pa.Array:
    """NANP-shaped ten-digit numbers: area [2-9][0-8][0-9], exchange [2-9]xx."""
    area = rng.integers(2, 10, n) * 100 + rng.integers(0, 9, n) * 10 + rng.integers(0, 10, n)
    exch = rng.integers(200, 1000, n)
    line = rng.integers(0, 10000, n)
    return pc.binary_join_element_wise(_digits(area, 3), _digits(exch, 3), _digits(line, 4), "")


def _emails(rng: np.random.Generator, p: Persons, t) -> pa.Array:
    first = pc.utf8_lower(t.first_names.take(pa.array(p.first)))
    last = pc.utf8_lower(t.surnames.take(pa.array(p.last)))
    num = pa.array(rng.integers(1, 100, p.n)).cast(pa.string())
    w = np.array(EMAIL_WEIGHTS)
    dom = pc.utf8_lower(
        pa.array(EMAIL_DOMAINS).take(pa.array(rng.choice(len(w), size=p.n, p=w / w.sum())))
    )
    local = pc.binary_join_element_wise(first, ".", last, num, "")
    return pc.binary_join_element_wise(local, dom, "@")


def _voter_ids(rng: np.random.Generator, state: np.ndarray) -> pa.Array:
    """Unique statewide voter ids in each state's shape (NC ncid, OH SOS_VOTERID, ...).

    Within a state, records get consecutive ranks in random order; the id is
    ``start + rank * stride + jitter`` (jitter < stride), so ids are unique,
    sparse and not in generation order.
    """
    m = state.size
    order = np.lexsort((rng.random(m), state))
    counts = np.bincount(state, minlength=len(JURISDICTIONS))
    starts = np.concatenate([[0], np.cumsum(counts)[:-1]])
    rank = np.empty(m, dtype=np.int64)
    rank[order] = np.arange(m) - starts[state[order]]
    pieces, positions = [], []
    for si, st in enumerate(JURISDICTIONS):  # 51 iterations, each vectorised
        sel = np.flatnonzero(state == si)
        if sel.size == 0:
            continue
        prefix, letters, digits = ID_FORMATS.get(st, DEFAULT_ID_FORMAT)
        space = 26**letters * 10**digits
        stride = int(max(1, min(7, (space // 2) // max(counts[si], 1))))
        start = int(rng.random() * (space // 4))
        num = start + rank[sel] * stride + rng.integers(0, stride, sel.size)
        if num.max() >= space:
            raise ValueError(f"too many registrations for {st}'s voter id format")
        text = _digits(num % 10**digits, digits)
        if letters:
            lead = num // 10**digits
            chars = []
            for k in range(letters - 1, -1, -1):
                chars.append(
                    pa.array(((lead // 26**k) % 26 + 65).astype(np.uint8).view("S1").astype(str))
                )
            text = pc.binary_join_element_wise(*chars, text, "")
        if prefix:
            text = pc.binary_join_element_wise(const(prefix, sel.size), text, "")
        pieces.append(text)
        positions.append(sel)
    pos = np.concatenate(positions)
    src = np.empty(m, dtype=np.int64)
    src[pos] = np.arange(m)
    return pa.concat_arrays(pieces).take(pa.array(src))


# ---------------------------------------------------------------------------
# State-held identifiers (never published; only `voterolls seal` reads them).
# ---------------------------------------------------------------------------

#: Driver's licence number shapes (letters, digits) for a few states; others 9 digits.
DL_FORMATS: dict[str, tuple[int, int]] = {
    "CA": (1, 7), "FL": (1, 12), "IL": (1, 11), "NY": (0, 9), "TX": (0, 8), "NC": (0, 12),
    "PA": (0, 8), "OH": (2, 6), "WA": (3, 9), "MI": (1, 12), "GA": (0, 9),
}  # fmt: skip


def _mix64(x: np.ndarray) -> np.ndarray:
    """splitmix64 finaliser: a fast, well-spread hash of uint64 values."""
    x = x.astype(np.uint64)
    with np.errstate(over="ignore"):
        x = (x ^ (x >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
        x = (x ^ (x >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
        return x ^ (x >> np.uint64(31))


def _identifiers(
    regs: pa.Table,
    hidden: dict[str, np.ndarray],
    p: Persons,
    seed: int,
    cfg: SynthConfig,
    rng: np.random.Generator,
) -> pa.Table:
    """state, state_voter_id, dob (true), ssn4, dl_number per registration.

    The same person has the same SSN4 and DOB in every state; the licence
    number is a hash of (person, state) so it is stable within a state
    (an in-state duplicate carries the same one) and differs across states.
    """
    person, state = hidden["person"], hidden["state_idx"]
    ssn4 = rng.integers(0, 10000, p.n)
    has_dl = rng.random(p.n) < cfg.dl_rate
    key = _mix64(np.array([seed % (2**63)], dtype=np.uint64))[0]
    with np.errstate(over="ignore"):
        h = _mix64((person.astype(np.uint64) * np.uint64(64) + state.astype(np.uint64)) ^ key)
    m = person.size
    pieces, positions = [], []
    for si, st in enumerate(JURISDICTIONS):
        sel = np.flatnonzero(state == si)
        if sel.size == 0:
            continue
        letters, digits = DL_FORMATS.get(st, (0, 9))
        hv = h[sel]
        text = _digits((hv % np.uint64(10**digits)).astype(np.int64), digits)
        if letters:
            lead = (hv >> np.uint64(40)).astype(np.int64)
            chars = [
                pa.array(((lead // 26**k) % 26 + 65).astype(np.uint8).view("S1").astype(str))
                for k in range(letters - 1, -1, -1)
            ]
            text = pc.binary_join_element_wise(*chars, text, "")
        pieces.append(text)
        positions.append(sel)
    pos = np.concatenate(positions)
    src = np.empty(m, dtype=np.int64)
    src[pos] = np.arange(m)
    dl = pa.concat_arrays(pieces).take(pa.array(src))
    dl = pc.if_else(pa.array(has_dl[person]), dl, None)
    return pa.table(
        {
            "state": regs["state"],
            "state_voter_id": regs["state_voter_id"],
            "dob": pa.array(hidden["true_dob"].astype(np.int32), pa.int32()).cast(pa.date32()),
            "ssn4": _digits(ssn4[person], 4),
            "dl_number": dl,
        }
    )
