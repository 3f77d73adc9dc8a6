"""The coincidence model: textbook limits, artefacts, and a brute-force check."""

from __future__ import annotations

import math

import duckdb
import numpy as np
import pyarrow as pa
import pytest

from voterolls.stats import coincidence as co
from voterolls.stats.coincidence import DobModel, _seasonal_profile


def _regs(state, first, last, dob=None, year=None, gran="full") -> pa.Table:
    n = len(state)
    if dob is not None:
        dob = np.asarray(dob, dtype="datetime64[D]")
        year = dob.astype("datetime64[Y]").astype(int) + 1970
    return pa.table(
        {
            "state": pa.array(list(state)),
            "state_voter_id": pa.array([f"{s}{i}" for i, s in enumerate(state)]),
            "first_name": pa.array(list(first)),
            "last_name": pa.array(list(last)),
            "dob": pa.array(
                dob if (dob is not None and gran == "full") else [None] * n, pa.date32()
            ),
            "birth_year": pa.array(np.asarray(year), pa.int16()),
            "dob_granularity": pa.array([gran] * n),
        }
    )


def _table(regs: pa.Table, model: DobModel) -> dict:
    con = duckdb.connect()
    con.register("registrations", regs)
    cells = co.build_cells(con)
    tab = co.coincidence_table(con, model, cells)
    return con, tab


def _sum(tab: pa.Table, level: str, cross: bool) -> dict[str, float]:
    rows = [
        r
        for r in tab.to_pylist()
        if r["level"] == level and (r["state_l"] != r["state_r"]) == cross
    ]
    return {k: sum(r[k] for r in rows) for k in ("N", "M", "E0")}


def test_uniform_birthdays_reduce_to_the_textbook_formula():
    model = DobModel.uniform([1990], days=365)
    assert model.q(1990) == pytest.approx(1 / 365)
    n = 40  # one name, one year, one state: C(n, 2) pairs, each shares a day with prob 1/365
    regs = _regs(["AA"] * n, ["JOHN"] * n, ["SMITH"] * n, dob=["1990-01-01"] * n)
    _, tab = _table(regs, model)
    s = _sum(tab, "full", cross=False)
    assert s["N"] == n * (n - 1) / 2
    assert s["E0"] == pytest.approx(n * (n - 1) / 2 / 365)
    # classic numbers: 23 people -> just over 50 %; the Poisson form is close
    assert co.prob_some_shared_uniform(23) == pytest.approx(0.5073, abs=1e-4)
    assert co.prob_some_shared(23, 1 / 365) == pytest.approx(0.5, abs=0.01)
    assert co.expected_shared_pairs(23, 1 / 365) == pytest.approx(253 / 365)


def test_cross_state_pairs_are_products_and_in_state_pairs_are_combinations():
    model = DobModel.uniform([1980], days=365)
    regs = _regs(["AA"] * 3 + ["BB"] * 4, ["ANN"] * 7, ["LEE"] * 7, dob=["1980-05-05"] * 7)
    _, tab = _table(regs, model)
    assert _sum(tab, "full", cross=True)["N"] == 12  # 3 x 4
    assert _sum(tab, "full", cross=True)["M"] == 12
    assert _sum(tab, "full", cross=False)["N"] == 3 + 6  # C(3,2) + C(4,2)


def test_real_birthdays_make_matches_likelier_than_uniform():
    # weekday / holiday / seasonal effects raise sum p^2 above 1/365 (McDonald & Levitt)
    p = _seasonal_profile(1985)
    assert float(p @ p) > 1 / 365
    assert float(p @ p) < 1.2 / 365


def test_mcdonald_levitt_about_180_adults_for_even_odds():
    # adults spread over ~70 birth years: ~180 people give ~50 % that two share a full DOB
    years = range(1935, 2006)
    model = DobModel(
        profiles={y: _seasonal_profile(y) for y in years},
        year_share={y: 1 / len(years) for y in years},
    )
    pr = co.prob_some_shared(180, model.p_same_dob())
    assert 0.4 < pr < 0.6


def test_artefacts_are_fitted_from_the_data():
    rng = np.random.default_rng(3)
    n = 60_000
    years = rng.integers(1950, 1990, n)
    doy = np.empty(n, dtype=int)
    for y in np.unique(years):
        m = years == y
        prof = _seasonal_profile(int(y))
        doy[m] = rng.choice(len(prof), m.sum(), p=prof)
    dob = (years - 1970).astype("datetime64[Y]").astype("datetime64[D]") + doy
    fom = rng.random(n) < 0.02  # 2 % recorded as the first of their month
    dob[fom] = dob[fom].astype("datetime64[M]").astype("datetime64[D]")
    ph = rng.random(n) < 0.002  # placeholder 1900-01-01
    dob[ph] = np.datetime64("1900-01-01")
    regs = _regs(["AA"] * n, ["X"] * n, ["Y"] * n, dob=dob)
    con = duckdb.connect()
    con.register("registrations", regs)
    m = co.fit_dob_model(con)
    # excess first-of-month mass: 2 % spread over 12 firsts, 11/12 of it on Feb..Dec
    assert m.first_of_month_excess == pytest.approx(0.02 * 11 / 12, abs=0.004)
    assert m.jan1_excess == pytest.approx(0.02 / 12, abs=0.002)
    assert 1900 in m.placeholder_years
    assert m.q(1900) > 0.9  # two placeholder records "share" a DOB almost surely
    assert m.q(1970) > _seasonal_profile(1970) @ _seasonal_profile(1970)


def _simulate(rng, sims: int, per_state: int, states: list[str], year_only: set[str]) -> pa.Table:
    """Many independent populations of distinct people; sim id in the surname keeps them apart."""
    n = sims * per_state * len(states)
    sim = np.repeat(np.arange(sims), per_state * len(states))
    st = np.tile(np.repeat(np.array(states, dtype=object), per_state), sims)
    fw = 1.0 / np.arange(1, 16) ** 1.1
    lw = 1.0 / np.arange(1, 16) ** 1.1
    first = np.array([f"F{i}" for i in range(15)], dtype=object)[rng.choice(15, n, p=fw / fw.sum())]
    last_i = rng.choice(15, n, p=lw / lw.sum())
    last = np.array([f"S{s}L{i}" for s, i in zip(sim, last_i, strict=True)], dtype=object)
    years = rng.integers(1960, 1966, n)
    doy = np.empty(n, dtype=int)
    for y in np.unique(years):
        m = years == y
        prof = _seasonal_profile(int(y))
        doy[m] = rng.choice(len(prof), m.sum(), p=prof)
    dob = (years - 1970).astype("datetime64[Y]").astype("datetime64[D]") + doy
    gran = np.where(np.isin(st, list(year_only)), "year", "full")
    return pa.table(
        {
            "state": pa.array(st),
            "state_voter_id": pa.array([f"{i}" for i in range(n)]),
            "first_name": pa.array(first),
            "last_name": pa.array(last),
            "dob": pa.array(np.where(gran == "full", dob, np.datetime64("NaT")), pa.date32()),
            "birth_year": pa.array(years, pa.int16()),
            "dob_granularity": pa.array(gran),
        }
    )


def test_brute_force_full_dob_matches_agree_with_the_model():
    """All people distinct: the mean number of exact matches equals the model's expectation."""
    rng = np.random.default_rng(11)
    regs = _simulate(rng, sims=300, per_state=220, states=["AA", "BB"], year_only=set())
    years = range(1960, 1966)
    model = DobModel(profiles={y: _seasonal_profile(y) for y in years})
    _, tab = _table(regs, model)
    for cross in (True, False):
        s = _sum(tab, "full", cross=cross)
        # M is a sum of ~Poisson counts: compare within 4 standard errors
        assert abs(s["M"] - s["E0"]) < 4 * math.sqrt(s["E0"]), (cross, s)
        assert s["E0"] > 80  # the test has power


def test_brute_force_year_only_matches_agree_with_the_model():
    rng = np.random.default_rng(12)
    regs = _simulate(rng, sims=60, per_state=120, states=["AA", "BB", "CC"], year_only={"CC"})
    model = DobModel(profiles={y: _seasonal_profile(y) for y in range(1960, 1966)})
    _, tab = _table(regs, model)
    s = _sum(tab, "year", cross=True)
    assert s["E0"] > 200
    assert abs(s["M"] - s["E0"]) < 4 * math.sqrt(s["E0"]) + 0.03 * s["E0"], s


def test_empirical_q_is_close_to_the_model_on_model_data():
    rng = np.random.default_rng(5)
    regs = _simulate(rng, sims=20, per_state=1000, states=["AA"], year_only=set())
    con = duckdb.connect()
    con.register("registrations", regs)
    emp = co.empirical_q(con).to_pylist()
    for r in emp:
        q = float(_seasonal_profile(r["year"]) @ _seasonal_profile(r["year"]))
        assert r["q_emp"] == pytest.approx(q, rel=0.25)
