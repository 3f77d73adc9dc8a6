"""The true people: names, sex, race, date of birth, state, drawn from public tables.

Realism here is what makes linkage statistics honest: the number of different
people who share a name and a birthday depends on the real, skewed name
frequencies (SMITH, MARIA) and the real, non-uniform birthday distribution
(weekday dip, holidays, September peak).  Everything is drawn in bulk with
numpy from the vendored Census / NCHS tables in ``voterolls.data``.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from voterolls import data
from voterolls.synth.config import SynthConfig, namesake_people
from voterolls.synth.geography import state_shares

#: Races in the order of the surname table's percentage columns.
SURNAME_RACES = ("white", "black", "asian", "native_american", "multiracial", "hispanic")
_SURNAME_PCT_COLUMNS = ("pctwhite", "pctblack", "pctapi", "pctaian", "pct2prace", "pcthispanic")

#: Relative number of registered voters per single year of age, by band.
#: Shape = Census 2020 resident population per single year of age (rounded
#: 5-year-band averages, millions) x CPS November 2020 registration rate by
#: age group.  Only the shape matters.  Ages 90-95 taper linearly.
_AGE_BANDS: tuple[tuple[int, int, float, float], ...] = (
    # (first age, last age, population per year of age (M), registration rate)
    (18, 24, 4.3, 0.55),
    (25, 29, 4.6, 0.57),
    (30, 34, 4.5, 0.59),
    (35, 39, 4.4, 0.60),
    (40, 44, 4.1, 0.62),
    (45, 49, 4.0, 0.64),
    (50, 54, 4.1, 0.66),
    (55, 59, 4.4, 0.69),
    (60, 64, 4.2, 0.71),
    (65, 69, 3.6, 0.74),
    (70, 74, 3.0, 0.75),
    (75, 79, 2.1, 0.75),
    (80, 84, 1.3, 0.73),
    (85, 89, 0.8, 0.70),
)
MIN_AGE, MAX_AGE = 18, 95


def age_weights() -> tuple[np.ndarray, np.ndarray]:
    """(ages 18..95, normalised weights) of registered voters by age."""
    ages = np.arange(MIN_AGE, MAX_AGE + 1)
    w = np.zeros(ages.size)
    for lo, hi, pop, reg in _AGE_BANDS:
        w[(ages >= lo) & (ages <= hi)] = pop * reg
    tail = ages >= 90
    w[tail] = 0.8 * 0.68 * np.linspace(0.8, 0.15, tail.sum())
    return ages, w / w.sum()


# ---------------------------------------------------------------------------
# Reference tables, prepared once per process.
# ---------------------------------------------------------------------------


@dataclass(frozen=True)
class NameTables:
    surnames: pa.Array  # string, "ALL OTHER NAMES" removed
    surname_cdf: np.ndarray
    surname_race_cdf: np.ndarray  # (n_surnames, 6) cumulative race shares
    first_names: pa.Array
    male_cdf: np.ndarray
    female_cdf: np.ndarray
    #: (12, n_first_names) cumulative P(first name | sex, race); row = female * 6 + race
    first_by_sex_race_cdf: np.ndarray
    nick_offsets: np.ndarray  # per first-name index: start in nick_values
    nick_counts: np.ndarray
    nick_values: pa.Array
    nick_key: np.ndarray  # first-name index + within-name cumulative weight (sorted)


def _cdf(weights: np.ndarray) -> np.ndarray:
    c = np.cumsum(weights, dtype=np.float64)
    return c / c[-1]


@cache
def name_tables() -> NameTables:
    sn = data.surnames()
    sn = sn.filter(pc.invert(pc.equal(sn["name"], "ALL OTHER NAMES")))
    counts = sn["count"].to_numpy().astype(np.float64)
    pct = np.column_stack([sn[c].to_numpy().astype(np.float64) for c in _SURNAME_PCT_COLUMNS])
    pct = np.clip(pct, 0, None)
    pct /= pct.sum(axis=1, keepdims=True)
    race_cdf = np.cumsum(pct, axis=1)
    race_cdf[:, -1] = 1.0

    fn = data.first_names()
    fn = fn.filter(pc.invert(pc.equal(fn["name"], "ALL OTHER NAMES")))
    fcount = fn["count"].to_numpy().astype(np.float64)
    male = np.clip(fn["pctmale"].to_numpy().astype(np.float64) / 100.0, 0, 1)

    offsets, nick_counts, values, key = _nickname_lookup(fn["name"], fcount)
    return NameTables(
        surnames=sn["name"].combine_chunks(),
        surname_cdf=_cdf(counts),
        surname_race_cdf=race_cdf,
        first_names=fn["name"].combine_chunks(),
        male_cdf=_cdf(fcount * male),
        female_cdf=_cdf(fcount * (1 - male)),
        first_by_sex_race_cdf=_first_given_sex_race(fn, fcount, male),
        nick_offsets=offsets,
        nick_counts=nick_counts,
        nick_values=values,
        nick_key=key,
    )


def _first_given_sex_race(fn: pa.Table, count: np.ndarray, male: np.ndarray) -> np.ndarray:
    """Cumulative P(first name | sex, race) from the Census first-name race shares.

    ``count x share of sex x share of race`` is the number of people of that
    sex and race with the name; normalising each (sex, race) row gives the
    conditional distribution, so GARCIA is drawn with MARIA / JOSE far more
    often than with independent draws, as in real lists.
    """
    pct = np.column_stack([fn[c].to_numpy().astype(np.float64) for c in _SURNAME_PCT_COLUMNS])
    pct = np.clip(pct, 0, None)
    pct /= np.maximum(pct.sum(axis=1, keepdims=True), 1e-9)
    rows = []
    for sex_share in (male, 1 - male):  # row block 0 = men, 1 = women
        for r in range(len(SURNAME_RACES)):
            w = count * sex_share * pct[:, r] + 1e-9  # tiny floor: every row has mass
            rows.append(_cdf(w))
    out = np.vstack(rows)
    out[:, -1] = 1.0
    return out


def _nickname_lookup(
    first_names: pa.ChunkedArray, first_counts: np.ndarray
) -> tuple[np.ndarray, np.ndarray, pa.Array, np.ndarray]:
    """Flat nickname table keyed by first-name index (ROBERT -> BOB, BOBBY, ROB, ...).

    Built from the ``nicknames`` package's names.csv (canonical name,
    has_nickname, nickname).  Returned as offsets / counts into one string
    array so the per-record choice is a vectorised gather.  Within a name the
    nicknames are weighted by how common they are as recorded first names in
    the Census table (+1), so ROBERT becomes BOB far more often than HOBKIN.
    """
    import nicknames

    triplets = nicknames.name_triplets()
    canon = pa.array([t[0].upper() for t in triplets])
    nick = pa.array([t[2].upper() for t in triplets])
    keep = pc.and_(pc.not_equal(canon, nick), pc.match_substring_regex(nick, "^[A-Z]{2,}$"))
    canon, nick = canon.filter(keep), nick.filter(keep)
    idx_arr = pc.index_in(canon, value_set=first_names)
    ok = idx_arr.is_valid().to_numpy(zero_copy_only=False)
    idx = idx_arr.fill_null(0).to_numpy().astype(np.int64)[ok]
    nick = nick.filter(pa.array(ok))
    order = np.lexsort((np.arange(idx.size), idx))
    idx = idx[order]
    nick = nick.take(pa.array(order))
    n = len(first_names)
    counts = np.bincount(idx, minlength=n).astype(np.int64)
    offsets = np.concatenate([[0], np.cumsum(counts)[:-1]]).astype(np.int64)
    nick_idx = pc.index_in(nick, value_set=first_names)
    weight = 1.0 + np.where(
        nick_idx.is_valid().to_numpy(zero_copy_only=False),
        first_counts[nick_idx.fill_null(0).to_numpy()],
        0.0,
    )
    cum = np.cumsum(weight)
    first = offsets[idx]
    before = cum[first] - weight[first]
    total = np.bincount(idx, weights=weight, minlength=n)[idx]
    key = idx + (cum - before) / total
    return offsets, counts, nick, key


@cache
def dob_table(first_year: int, last_year: int) -> tuple[np.ndarray, np.ndarray]:
    """Per birth year, the probability of each calendar day (leap-year slot order).

    Returns ``(years, cdf)`` with ``cdf`` of shape (n_years, 366) holding each
    row's cumulative distribution over the 366 month-day slots (Feb 29 = slot
    59, zero in non-leap years).

    Years in the NCHS/SSA table use that year's actual daily counts.  Other
    years use ``seasonal(month-day) x weekday(weekday of that date in that
    year)``: the month-day factor (season and fixed-date holidays: Jan 1,
    Jul 4, Dec 25) is averaged over all table years after removing each
    year's weekday effect; the weekday factor comes from the nearest table
    year, because the weekend dip grew from ~5% (1969) to ~30% (2010s) with
    scheduled inductions and caesareans.  Moving holidays (Thanksgiving,
    Labor Day) are not modelled for years outside the table.
    """
    births = data.daily_births()
    days = births["date"].cast(pa.int32()).to_numpy().astype(np.int64)
    count = births["births"].to_numpy().astype(np.float64)
    d = days.astype("datetime64[D]")
    year = d.astype("datetime64[Y]").astype(np.int64) + 1970
    month = (d.astype("datetime64[M]") - d.astype("datetime64[Y]").astype("datetime64[M]")).astype(
        np.int64
    )
    day = (d - d.astype("datetime64[M]").astype("datetime64[D]")).astype(np.int64)
    slot = _SLOT_OF_MONTH[month] + day
    dow = (days + 3) % 7  # Monday = 0 (1970-01-01 was a Thursday)

    table_years = np.unique(year)
    yi = np.searchsorted(table_years, year)
    year_mean = np.bincount(yi, weights=count) / np.bincount(yi)
    rel = count / year_mean[yi]
    wk = np.zeros((table_years.size, 7))
    np.add.at(wk, (yi, dow), rel)
    wk /= np.maximum(np.bincount(yi * 7 + dow, minlength=table_years.size * 7).reshape(-1, 7), 1)
    wk /= wk.mean(axis=1, keepdims=True)
    deweek = rel / wk[yi, dow]
    seasonal = np.bincount(slot, weights=deweek, minlength=366) / np.maximum(
        np.bincount(slot, minlength=366), 1
    )

    years = np.arange(first_year, last_year + 1)
    ym = ((years[:, None] - 1970) * 12 + _SLOT_MONTH[None, :]).astype("datetime64[M]")
    dates = ym.astype("datetime64[D]") + _SLOT_DAY[None, :]
    dates_i = dates.astype(np.int64)
    leap = (years % 4 == 0) & ((years % 100 != 0) | (years % 400 == 0))
    nearest = np.abs(years[:, None] - table_years[None, :]).argmin(axis=1)
    prob = seasonal[None, :] * wk[nearest[:, None], (dates_i + 3) % 7]
    # exact counts where the year is in the table
    in_table = np.isin(years, table_years)
    if in_table.any():
        exact = np.zeros((table_years.size, 366))
        exact[yi, slot] = count
        rows = np.searchsorted(table_years, years[in_table])
        prob[in_table] = exact[rows]
    prob[~leap, _FEB29] = 0.0
    cdf = np.cumsum(prob, axis=1)
    cdf /= cdf[:, -1:]
    return years, cdf


_MONTH_LEN = np.array([31, 29, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31])
_SLOT_OF_MONTH = np.concatenate([[0], np.cumsum(_MONTH_LEN)[:-1]])
_SLOT_MONTH = np.repeat(np.arange(12), _MONTH_LEN)  # 0-based month of each slot
_SLOT_DAY = np.concatenate([np.arange(m) for m in _MONTH_LEN])  # 0-based day
_FEB29 = 59


def sample_dob(rng: np.random.Generator, n: int, election: np.datetime64) -> np.ndarray:
    """Dates of birth (int days since 1970) of ``n`` adults registered by ``election``."""
    ages, w = age_weights()
    ey = int(election.astype("datetime64[Y]").astype(np.int64)) + 1970
    age = rng.choice(ages, size=n, p=w)
    birth_year = ey - age
    years, cdf = dob_table(ey - MAX_AGE - 1, ey - MIN_AGE)
    row = birth_year - years[0]
    u = rng.random(n)
    slot = row_searchsorted(cdf, row, u)
    dob = _dates(birth_year, slot)
    # born after election day in the year they turn 18: still 17, so one year older
    too_young = _dates(birth_year + MIN_AGE, slot) > election.astype(np.int64)
    dob[too_young] = _dates(birth_year[too_young] - 1, slot[too_young])
    return dob


def _is_leap(y: np.ndarray) -> np.ndarray:
    return (y % 4 == 0) & ((y % 100 != 0) | (y % 400 == 0))


def _dates(year: np.ndarray, slot: np.ndarray) -> np.ndarray:
    ym = ((year - 1970) * 12 + _SLOT_MONTH[slot]).astype("datetime64[M]")
    return (ym.astype("datetime64[D]") + _SLOT_DAY[slot]).astype(np.int64)


def row_searchsorted(cdf: np.ndarray, row: np.ndarray, u: np.ndarray) -> np.ndarray:
    """Inverse-CDF sample per row of ``cdf`` in one ``searchsorted``.

    Row k's cdf is shifted to (k, k+1], so the flattened array is sorted.
    """
    k = cdf.shape[1]
    flat = (cdf + np.arange(cdf.shape[0])[:, None]).ravel()
    pos = np.searchsorted(flat, row + u * (1 - 1e-12), side="right")
    return np.minimum(pos - row * k, k - 1)


# ---------------------------------------------------------------------------
# Persons.
# ---------------------------------------------------------------------------

SUFFIXES = ("", "JR", "SR", "II", "III", "IV")


@dataclass
class Persons:
    """Column arrays, one row per true person (index = person_id)."""

    female: np.ndarray  # bool
    first: np.ndarray  # int index into NameTables.first_names
    middle: np.ndarray  # int index, -1 = none
    last: np.ndarray  # int index into NameTables.surnames
    suffix: np.ndarray  # int index into SUFFIXES (0 = none)
    race: np.ndarray  # int index into SURNAME_RACES
    dob: np.ndarray  # int64 days since 1970
    state: np.ndarray  # int index into JURISDICTIONS

    @property
    def n(self) -> int:
        return self.female.size


def sample_persons(rng: np.random.Generator, n: int, cfg: SynthConfig) -> Persons:
    """Draw ``n`` people (true identities) in bulk."""
    t = name_tables()
    female = rng.random(n) < cfg.female_share
    last = np.searchsorted(t.surname_cdf, rng.random(n), side="right")
    last = np.minimum(last, t.surname_cdf.size - 1)
    race = row_searchsorted(t.surname_race_cdf, last, rng.random(n))
    first = _by_sex_race(rng, female, race, t)
    middle = _by_sex_race(rng, female, race, t)
    same = middle == first
    middle[same] = _by_sex_race(rng, female[same], race[same], t)
    middle[rng.random(n) < cfg.middle_absent_rate] = -1
    suffix = np.zeros(n, dtype=np.int64)
    has = (~female) & (rng.random(n) < cfg.male_suffix_rate)
    sw = np.array([cfg.suffix_weights.get(s, 0.0) for s in SUFFIXES[1:]])
    suffix[has] = 1 + rng.choice(len(sw), size=int(has.sum()), p=sw / sw.sum())
    factor = namesake_people(cfg.namesake_density, n) / n
    if factor > 1:
        # national namesake density: concentrate first and last names, sqrt(factor) each
        f = np.sqrt(factor)
        last = _fold_map(np.diff(t.surname_cdf, prepend=0.0), f)[last]
        first = np.where(
            female,
            _fold_map(np.diff(t.female_cdf, prepend=0.0), f)[first],
            _fold_map(np.diff(t.male_cdf, prepend=0.0), f)[first],
        )
    dob = sample_dob(rng, n, np.datetime64(cfg.election_date, "D"))
    state = _ensure_every_state(rng, rng.choice(state_shares().size, size=n, p=state_shares()))
    return Persons(female, first, middle, last, suffix, race, dob, state)


def _fold_map(p: np.ndarray, factor: float) -> np.ndarray:
    """Name index -> folded name index so that ``sum p^2`` grows by ``factor``.

    The chance that two people share a name is ``sum p^2``; folding rank ``r``
    onto rank ``r mod K`` (the most common names absorb the rare ones) raises
    it.  ``K`` is the largest pool that reaches ``factor`` times the original
    (bisection; the folded ``sum p^2`` falls as ``K`` grows).
    """
    return _fold_map_cached(p.tobytes(), round(float(factor), 9))


@cache
def _fold_map_cached(p_bytes: bytes, factor: float) -> np.ndarray:
    p = np.frombuffer(p_bytes, dtype=np.float64)
    p = p / p.sum()
    order = np.argsort(-p, kind="stable")
    rank = np.empty(p.size, dtype=np.int64)
    rank[order] = np.arange(p.size)
    target = min(float((p**2).sum()) * factor, 1.0)

    def folded(k: int) -> float:
        return float((np.bincount(rank % k, weights=p, minlength=k) ** 2).sum())

    lo, hi = 1, p.size  # folded(lo) >= target
    while hi - lo > 1:
        mid = (lo + hi) // 2
        if folded(mid) >= target:
            lo = mid
        else:
            hi = mid
    return order[rank % lo]


def _by_sex_race(
    rng: np.random.Generator, female: np.ndarray, race: np.ndarray, t: NameTables
) -> np.ndarray:
    """First names given sex and race (rows of ``first_by_sex_race_cdf``)."""
    row = female.astype(np.int64) * len(SURNAME_RACES) + race
    out = row_searchsorted(t.first_by_sex_race_cdf, row, rng.random(female.size))
    return np.minimum(out, t.first_by_sex_race_cdf.shape[1] - 1).astype(np.int64)


def _by_sex(rng: np.random.Generator, female: np.ndarray, t: NameTables) -> np.ndarray:
    u = rng.random(female.size)
    out = np.where(
        female,
        np.searchsorted(t.female_cdf, u, side="right"),
        np.searchsorted(t.male_cdf, u, side="right"),
    )
    return np.minimum(out, t.male_cdf.size - 1).astype(np.int64)


def _ensure_every_state(rng: np.random.Generator, state: np.ndarray) -> np.ndarray:
    """Give every jurisdiction at least one resident when there are enough people.

    With a few thousand people the smallest states (WY, VT: 0.2% each) can
    come out empty by chance, and a demo or test then silently misses a
    state.  Missing states take one person each from the largest state; the
    shares move by at most 51 people, far below sampling noise.
    """
    k = state_shares().size
    if state.size < 20 * k:
        return state
    counts = np.bincount(state, minlength=k)
    missing = np.flatnonzero(counts == 0)
    if missing.size:
        donors = np.flatnonzero(state == counts.argmax())
        take = rng.choice(donors, size=missing.size, replace=False)
        state = state.copy()
        state[take] = missing
    return state
