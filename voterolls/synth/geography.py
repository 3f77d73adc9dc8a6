"""Per-state facts the synthetic population needs: population, counties, ZIPs, ids.

Real where it matters for linkage statistics (state population shares, so the
national name / birthday collision rates look like the real ones) and
plausible elsewhere (county codes, ZIP ranges, id shapes), because the point
is that every reader and every matcher meets values shaped like the state's.
"""

from __future__ import annotations

import csv
from functools import cache
from importlib import resources

import numpy as np
import pyarrow as pa

from voterolls.schema import JURISDICTIONS

#: Number of counties (county equivalents) per state; AK uses its 40 house
#: districts in election files; DC is one unit.  Source: Census county lists.
COUNTY_COUNTS: dict[str, int] = {
    "AK": 40, "AL": 67, "AR": 75, "AZ": 15, "CA": 58, "CO": 64, "CT": 8, "DC": 1, "DE": 3,
    "FL": 67, "GA": 159, "HI": 5, "IA": 99, "ID": 44, "IL": 102, "IN": 92, "KS": 105,
    "KY": 120, "LA": 64, "MA": 14, "MD": 24, "ME": 16, "MI": 83, "MN": 87, "MO": 115,
    "MS": 82, "MT": 56, "NC": 100, "ND": 53, "NE": 93, "NH": 10, "NJ": 21, "NM": 33,
    "NV": 17, "NY": 62, "OH": 88, "OK": 77, "OR": 36, "PA": 67, "RI": 5, "SC": 46,
    "SD": 66, "TN": 95, "TX": 254, "UT": 29, "VA": 133, "VT": 14, "WA": 39, "WI": 72,
    "WV": 55, "WY": 23,
}  # fmt: skip

#: First-three-digit ZIP ranges (inclusive) assigned to each state by USPS.
ZIP3_RANGES: dict[str, tuple[int, int]] = {
    "AK": (995, 999), "AL": (350, 369), "AR": (716, 729), "AZ": (850, 865), "CA": (900, 961),
    "CO": (800, 816), "CT": (60, 69), "DC": (200, 205), "DE": (197, 199), "FL": (320, 349),
    "GA": (300, 319), "HI": (967, 968), "IA": (500, 528), "ID": (832, 838), "IL": (600, 629),
    "IN": (460, 479), "KS": (660, 679), "KY": (400, 427), "LA": (700, 714), "MA": (10, 27),
    "MD": (206, 219), "ME": (39, 49), "MI": (480, 499), "MN": (550, 567), "MO": (630, 658),
    "MS": (386, 397), "MT": (590, 599), "NC": (270, 289), "ND": (580, 588), "NE": (680, 693),
    "NH": (30, 38), "NJ": (70, 89), "NM": (870, 884), "NV": (889, 898), "NY": (100, 149),
    "OH": (430, 459), "OK": (730, 749), "OR": (970, 979), "PA": (150, 196), "RI": (28, 29),
    "SC": (290, 299), "SD": (570, 577), "TN": (370, 385), "TX": (750, 799), "UT": (840, 847),
    "VA": (220, 246), "VT": (50, 59), "WA": (980, 994), "WI": (530, 549), "WV": (247, 268),
    "WY": (820, 831),
}  # fmt: skip

#: States without party registration: the record carries ``NPR``.
NO_PARTY_STATES = frozenset("AL AR GA HI IL IN MI MN MO MS MT ND OH SC TN TX VA VT WA WI".split())

#: States that vote (almost) entirely by mail.
ALL_MAIL_STATES = frozenset("CA CO DC HI NV OR UT VT WA".split())

#: States whose files call a mailed ballot "absentee" (excuse or tradition).
ABSENTEE_STATES = frozenset("AL AR CT DE IN KY LA MA MO MS NC NH NY SC TN TX WV".split())

#: Shape of the statewide voter id: (prefix, letters, digits).  ``letters``
#: leading capital letters (NC ncid: two letters + digits) then ``digits``
#: zero-padded digits.  Others: plain numeric of a state-typical width.
ID_FORMATS: dict[str, tuple[str, int, int]] = {
    "NC": ("", 2, 6),
    "OH": ("OH", 0, 10),
    "NY": ("NY", 0, 18),
    "WA": ("WA", 0, 10),
    "FL": ("", 0, 9),
    "TX": ("", 0, 10),
    "GA": ("", 0, 8),
    "MI": ("", 0, 10),
    "PA": ("", 0, 12),
    "CO": ("", 0, 9),
}
DEFAULT_ID_FORMAT = ("", 0, 9)

#: The state's own party codes where they differ from the common vocabulary.
PARTY_CODE_OVERRIDES: dict[str, dict[str, str]] = {
    "FL": {"UNA": "NPA"},
    "NY": {"UNA": "BLK", "GRN": "GRE"},
    "CA": {"UNA": "NPP"},
    "PA": {"DEM": "D", "REP": "R", "UNA": "NF", "LIB": "LN", "GRN": "GR", "OTH": "OTH"},
    "CO": {"UNA": "UAF", "GRN": "GRN"},
    "NC": {"GRN": "GRE"},
    "OK": {"UNA": "IND"},
}

STREET_NAMES = (
    "MAIN", "OAK", "PINE", "MAPLE", "CEDAR", "ELM", "WASHINGTON", "LAKE", "HILL", "PARK",
    "WALNUT", "CHURCH", "SPRING", "RIDGE", "MILL", "FOREST", "JACKSON", "LINCOLN", "MADISON",
    "JEFFERSON", "FRANKLIN", "SUNSET", "HIGHLAND", "MEADOW", "RIVER", "CHESTNUT", "HICKORY",
    "WILLOW", "DOGWOOD", "MAGNOLIA", "SYCAMORE", "BIRCH", "POPLAR", "VALLEY", "PROSPECT",
    "1ST", "2ND", "3RD", "4TH", "5TH", "6TH", "7TH", "8TH", "9TH", "10TH", "11TH", "12TH",
    "CENTER", "MARKET", "BROAD", "HIGH", "SCHOOL", "UNION", "MILLER", "COUNTRY CLUB",
)  # fmt: skip
STREET_TYPES = ("ST", "AVE", "RD", "DR", "LN", "CT", "WAY", "BLVD", "PL", "CIR", "TRL", "PKWY")
STREET_TYPE_WEIGHTS = (0.24, 0.14, 0.20, 0.18, 0.07, 0.06, 0.03, 0.02, 0.02, 0.02, 0.01, 0.01)
#: How each state writes the county on its file: ``fips3`` = FIPS-style
#: three-digit code (001, 003, ...); ``number2`` = county number 01..NN (OH,
#: NY); ``name`` = county name (NC county_desc, PA, GA); ``alpha3`` = three-
#: letter code (FL ``ALA``, ``BRO``); ``alpha2`` = two-letter code (WA ``KI``).
COUNTY_STYLES: dict[str, str] = {
    "NC": "name", "PA": "name", "GA": "name", "TX": "name", "CO": "name", "MI": "name",
    "OH": "number2", "NY": "number2", "FL": "alpha3", "WA": "alpha2",
}  # fmt: skip

CITY_SUFFIXES = ("", "VILLE", "TON", "BURG", " CITY", "FIELD", " SPRINGS", "PORT", "WOOD", " HILLS")


@cache
def state_population() -> dict[str, int]:
    """Census 2020 resident population of the 50 states + DC (vendored CSV)."""
    ref = resources.files("voterolls.data") / "state_population_2020.csv"
    with resources.as_file(ref) as path, open(path, newline="", encoding="utf-8") as fh:
        rows = {r["state"]: int(r["population"]) for r in csv.DictReader(fh)}
    missing = set(JURISDICTIONS) - set(rows)
    if missing:
        raise RuntimeError(f"state_population_2020.csv lacks {sorted(missing)}")
    return rows


def state_shares() -> np.ndarray:
    """Population share per jurisdiction, in ``JURISDICTIONS`` order."""
    pop = state_population()
    p = np.array([pop[s] for s in JURISDICTIONS], dtype=np.float64)
    return p / p.sum()


#: Cities per county in the synthetic geography and their relative sizes.
CITIES_PER_COUNTY = 3
CITY_WEIGHTS = np.array([0.6, 0.25, 0.15])


class Places:
    """Synthetic counties, cities and ZIPs of every state (fixed, seed-independent).

    County codes are FIPS-style odd three-digit numbers (001, 003, ...); county
    sizes fall off as 1/rank^0.8 so every state has a few big counties and a
    long tail.  City names are built from common surnames plus a place suffix
    (SMITHVILLE, JOHNSON CITY); ZIPs sit in the state's real ZIP3 range.  The
    same places are used whatever the seed, so outputs of different seeds are
    comparable.
    """

    def __init__(self) -> None:
        import pyarrow.compute as pc

        from voterolls import data

        rng = np.random.default_rng(20_201_101)
        n_states = len(JURISDICTIONS)
        counts = np.array([COUNTY_COUNTS[s] for s in JURISDICTIONS])
        self.county_offset = np.concatenate([[0], np.cumsum(counts)[:-1]])
        self.county_count = counts
        width = int(counts.max())
        w = np.zeros((n_states, width))
        for i, c in enumerate(counts):
            w[i, :c] = 1.0 / np.arange(1, c + 1) ** 0.8
        cdf = np.cumsum(w, axis=1)
        self.county_cdf = cdf / cdf[:, -1:]
        n_counties = int(counts.sum())
        state_of_county = np.repeat(np.arange(n_states), counts)
        rank = np.arange(n_counties) - self.county_offset[state_of_county]
        self.county_fips = pc.utf8_lpad(pa.array(2 * rank + 1).cast(pa.string()), 3, "0")
        self.county_name = _county_names(rng, counts)
        self.county_code = _county_codes(self.county_name, self.county_fips, state_of_county, rank)
        zlo = np.array([ZIP3_RANGES[s][0] for s in JURISDICTIONS])
        zhi = np.array([ZIP3_RANGES[s][1] for s in JURISDICTIONS])
        zip3 = zlo[state_of_county] + rank % (zhi - zlo + 1)[state_of_county]
        n_cities = n_counties * CITIES_PER_COUNTY
        county_of_city = np.repeat(np.arange(n_counties), CITIES_PER_COUNTY)
        top = data.surnames()["name"].slice(1, 3000).combine_chunks()
        base = top.take(pa.array(rng.integers(0, len(top), n_cities)))
        suffix = pa.array(CITY_SUFFIXES).take(
            pa.array(rng.integers(0, len(CITY_SUFFIXES), n_cities))
        )
        self.city_name = pc.binary_join_element_wise(base, suffix, "")
        zip_last2 = rng.integers(0, 95, n_cities)
        self.city_zip_base = zip3[county_of_city] * 100 + zip_last2  # + 0..4 per address

    def sample(
        self, rng: np.random.Generator, state: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(county index, city index, zip5 int) for residents of ``state``."""
        from voterolls.synth.population import row_searchsorted

        k = row_searchsorted(self.county_cdf, state, rng.random(state.size))
        k = np.minimum(k, self.county_count[state] - 1)
        county = self.county_offset[state] + k
        city_cdf = np.cumsum(CITY_WEIGHTS) / CITY_WEIGHTS.sum()
        city = county * CITIES_PER_COUNTY + np.searchsorted(
            city_cdf, rng.random(state.size), side="right"
        )
        zip5 = self.city_zip_base[city] + rng.integers(0, 5, state.size)
        return county, city, zip5


def _county_names(rng: np.random.Generator, counts: np.ndarray) -> pa.Array:
    """Synthetic county names (common surnames, as many real counties are), unique per state."""
    from voterolls import data

    pool = data.surnames()["name"].slice(1, 800).to_pylist()
    names: list[str] = []
    for c in counts:  # 51 states, ~3,100 counties: a fixed table, built once
        pick = rng.choice(len(pool), size=int(c), replace=False)
        names.extend(pool[i] for i in pick)
    return pa.array(names, pa.string())


def _county_codes(names, fips, state_of_county: np.ndarray, rank: np.ndarray) -> pa.Array:
    """The county value as each state writes it (see ``COUNTY_STYLES``)."""
    name_list, fips_list = names.to_pylist(), fips.to_pylist()
    out: list[str] = []
    used: dict[tuple[int, str], int] = {}
    for i, (nm, fp) in enumerate(zip(name_list, fips_list, strict=True)):
        st = JURISDICTIONS[int(state_of_county[i])]
        style = COUNTY_STYLES.get(st, "fips3")
        if style == "name":
            out.append(nm)
        elif style == "number2":
            out.append(f"{int(rank[i]) + 1:02d}")
        elif style in ("alpha3", "alpha2"):
            width = 3 if style == "alpha3" else 2
            code = nm[:width]
            k = 0
            while (int(state_of_county[i]), code) in used:  # make unique: ALA, AL1, ...
                k += 1
                code = (
                    nm[: width - 1] + chr(ord("A") + (k % 26))
                    if k < 26
                    else f"{nm[0]}{k:0{width - 1}d}"
                )
            used[(int(state_of_county[i]), code)] = 1
            out.append(code)
        else:
            out.append(fp)
    return pa.array(out, pa.string())
