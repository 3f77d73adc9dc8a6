"""Recalibration of every DOB class, learnt without truth.

Why.  The model's probabilities lean on conditional independence, which names
violate (first and last names are correlated through ethnicity and gender),
so they are over-confident in the middle, and by how much depends on the data:
even the oracle, with true m and u, expected 1.5-1.9x the true pairs in
[0.1, 0.5) where a side publishes a birth year only or no DOB
(docs/LINKAGE.md, "Against the ceiling").

Full DOB on both sides: the birthday model (:func:`fit_birthday_map`).  Among
pairs of one name cell (:data:`CELL_KINDS`) in two states the date is the only
evidence that varies, and strangers share a date by chance q(y); a cell's
pairs sharing the date, less the coincidences the birthday model expects,
are its same-person pairs.  Per bin of the weight the cell's date pairs carry,
that share is the label.

Pairs compared on a sealed DOB token (a side publishes no full date but the state
sealed it): the same birthday model on cells of such pairs - an equal token is an
equal date (:data:`TOKEN_SOURCES`); where too few, masked full-DOB pairs (below).

Year on a side, no DOB on a side: masked full-DOB pairs.
*Mask* the date of a full-DOB pair - take the DOB comparison's Bayes factor
out of its log-odds and, for the year class, put the birth-year comparison's
in (for the token class the token's) - and its log-odds become those it would
have had with a year-only side (or no DOB, or a sealed date).  The date the
masked pairs still carry labels them: per bin of masked log-odds, the pairs
sharing the exact date, less the strangers the birthday model expects to share
it, are the bin's same-person pairs (:func:`fit_masked_map`).  For the year
and none classes only pairs sharing a name blocking key are used (pairs that
would have been compared without their dates), so the masked pairs resemble
the class's own candidates.

Each map is the isotonic (monotone) fit over its bins.  Checked without
truth: the per-bin tables (model probability = before, label, the map =
after) are in ``link_report.json`` (``recalibration``).  Scored against the
truth by ``bench/link_ceiling.py`` (docs/LINKAGE.md).  Counts and
probabilities only, never a name or a date.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from voterolls.link.evaluate import granularity_class_sql

#: The classes recalibrated on masked full-DOB pairs.  ``token``: pairs of the
#: year and none classes compared on sealed DOB tokens (a state sealed its full dates),
#: recalibrated on token cells (masked full-DOB pairs only where those are too few).
MASKED_CLASSES = ("year", "none")
TOKEN_CLASS = "token"

#: Width (bits) of the log2-odds bins of the masked recalibration map.
MASK_BIN_BITS = 1.0
#: Bins with fewer masked pairs than this are pooled with their neighbours.
MASK_MIN_PAIRS = 30


def masked_weight_sql(dob_class: str, bf: dict[str, dict[int, float]], weight: str) -> str:
    """A full-DOB pair's log2-odds had a side published only the year (``year``), no DOB
    (``none``) or sealed its dates (``token``).

    The DOB comparison's Bayes factor is taken out; for ``year`` the birth-year
    comparison's is put in (same year or not, from the two birth years), for
    ``token`` the DOB token comparison's (an exact date is an equal token, any
    other level a different one: a token carries no partial agreement).
    ``bf``: comparison -> gamma -> log2(m / u) of the model; ``weight``: SQL
    of the pair's final log2-odds (pair columns qualified ``p.``, the two
    registrations ``l.`` and ``r.``).
    """
    dob = " ".join(f"WHEN {g} THEN {v!r}" for g, v in bf["dob"].items())
    w = f"({weight} - (CASE p.gamma_dob {dob} ELSE 0.0 END))"
    if dob_class == "year":
        yr = bf["birth_year"]
        w = f"({w} + CASE WHEN l.birth_year = r.birth_year THEN {yr[1]!r} ELSE {yr[0]!r} END)"
    elif dob_class == TOKEN_CLASS:
        tk, top = bf["dob_token"], max(bf["dob"])
        w = f"({w} + CASE WHEN p.gamma_dob = {top} THEN {tk[1]!r} ELSE {tk[0]!r} END)"
    return w


def _sharing_chance_sql(counts: str) -> str:
    """Per stratum ``y`` of ``counts`` (rows: y, a date, c registrations on it): ``q``, the chance two
    distinct registrations of the stratum share a date."""
    return f"SELECT y, (sum(c * c) - sum(c)) / nullif(sum(c) * (sum(c) - 1), 0) AS q FROM {counts} GROUP BY y"


def _date_chance_sql(input_table: str) -> str:
    """Per birth year ``y``: ``q``, the chance two registrations of that year with a full date share it."""
    return _sharing_chance_sql(
        f"""(SELECT birth_year AS y, dob, count(*) AS c FROM {input_table}
             WHERE dob_granularity = 'full' AND dob IS NOT NULL AND birth_year IS NOT NULL GROUP BY ALL)"""
    )


def _isotonic(y: np.ndarray, n: np.ndarray) -> np.ndarray:
    """Pool adjacent violators: the non-decreasing fit of ``y`` weighted by ``n``."""
    vals, wts, sizes = [], [], []
    for yi, ni in zip(y.tolist(), n.tolist(), strict=True):
        vals.append(yi)
        wts.append(ni)
        sizes.append(1)
        while len(vals) > 1 and vals[-2] > vals[-1]:
            w = wts[-2] + wts[-1]
            v = (vals[-2] * wts[-2] + vals[-1] * wts[-1]) / w if w else vals[-1]
            s = sizes[-2] + sizes[-1]
            vals[-2:], wts[-2:], sizes[-2:] = [v], [w], [s]
    return np.repeat(np.asarray(vals), sizes)


def _bits(p: float) -> float:
    """log2-odds of a bin's mean model probability: where the map's point for the bin sits."""
    p = min(max(float(p), 1e-12), 1 - 1e-12)
    return round(float(np.log2(p / (1 - p))), 4)


def _sigmoid2(w: str) -> str:
    return f"(1.0 / (1.0 + pow(2.0, -greatest(least({w}, 1000.0), -1000.0))))"


def fit_masked_map(
    engine,
    pairs_table: str,
    input_table: str,
    bf: dict,
    dob_class: str,
    *,
    weight: str = "p.match_weight",
    left_id: str = "p.unique_id_l",
    right_id: str = "p.unique_id_r",
    dob_exact_m: float | None = None,
) -> dict:
    """The recalibration map of ``dob_class`` learnt from full-DOB pairs with their DOB masked.

    Per bin of masked log2-odds: the mean masked probability and the label, the
    share of same-person pairs among the bin's pairs.  The label is the birthday
    model's: the bin's pairs sharing the exact date, less the
    coincidences strangers of the same birth year make (chance ``q`` of the year),
    over the share of a person's two records that agree on the date
    (:func:`_exact_date_share`).  It replaced the mean full-DOB probability as
    scored, which is right only where the full class is calibrated: at 5,175,652
    registrations at national density, where that class's mid-range is 1.4-2.4x
    over-confident, the year and none maps learnt from it left 1.23-1.25x
    (expected / true in [0.1, 0.5)); with the birthday label 1.02-1.05
    (docs/LINKAGE.md).  The mean full-DOB probability stays in each bin
    (``mean_p_full_date``); it is the label for the token class's fallback, and
    where m_exact is unknown (no sure pairs and no model m).

    Only pairs sharing a name blocking key (``bk_name``; for ``year`` also the
    capped keys with the birth year) are used, i.e. pairs that would have been
    compared without their dates, so the masked pairs resemble the class's own
    candidates.  The map is the isotonic fit of the label over the bins, as
    log2-odds per bin.
    """
    if dob_class == TOKEN_CLASS:
        # token pairs are blocked as full-date pairs are (the token in place of the date)
        share = "true"
    else:
        keys = ["bk_name"] + (["bk_sx_year_init", "bk_last_year_sex"] if dob_class == "year" else [])
        share = " OR ".join(f"l.{k} = r.{k}" for k in keys)
    w = masked_weight_sql(dob_class, bf, weight)
    b = MASK_BIN_BITS
    lo_w, cnt, pm, pf, shared, chance = engine.columns(
        f"""WITH qy AS ({_date_chance_sql(input_table)})
            SELECT floor({w} / {b!r}) * {b!r} AS lo, count(*) AS n,
                   avg({_sigmoid2(w)}) AS pm, avg({_sigmoid2(weight)}) AS pf,
                   sum(CASE WHEN p.gamma_dob = {max(bf["dob"])} THEN 1 ELSE 0 END) AS s,
                   sum(CASE WHEN l.birth_year = r.birth_year THEN coalesce(qy.q, 0.0) ELSE 0.0 END) AS c
            FROM {pairs_table} p
            JOIN {input_table} l ON l.unique_id = {left_id}
            JOIN {input_table} r ON r.unique_id = {right_id}
            LEFT JOIN qy ON qy.y = l.birth_year
            WHERE p.dob_granularity_l = 'full' AND p.dob_granularity_r = 'full' AND p.gamma_dob >= 0
              AND ({share})
            GROUP BY 1 ORDER BY 1"""
    )
    cols = [np.asarray(x, dtype=np.float64) for x in (lo_w, cnt, pm, pf, shared, chance)]
    lo_w, cnt, pm, pf, shared, chance = cols
    # pool thin bins into their right neighbour: [lo, n, sum pm, sum pf, date shared, chance sum]
    bins: list[list[float]] = []
    for i in range(len(lo_w)):
        row = [lo_w[i], cnt[i], pm[i] * cnt[i], pf[i] * cnt[i], shared[i], chance[i]]
        if bins and bins[-1][1] < MASK_MIN_PAIRS:
            bins[-1][1:] = [a + b for a, b in zip(bins[-1][1:], row[1:], strict=True)]
        else:
            bins.append(row)
    if not bins:
        return {"dob_class": dob_class, "bins": [], "fitted": False}
    n, _, sum_pf, s_, c_ = (np.array([x[k] for x in bins]) for k in range(1, 6))
    label, how = sum_pf / n, {"label": "mean full-DOB probability as scored"}
    m_exact = _exact_date_share(cnt, pm, shared, chance, dob_exact_m) if dob_class in MASKED_CLASSES else None
    if m_exact is not None:
        # of a bin's n pairs, S share the exact date: strangers by chance (C = their sum of q),
        # same persons with m_exact; so it holds (S - C) / (m_exact - C / n) same-person pairs
        label = np.clip((s_ - c_) / np.maximum(n * m_exact - c_, 1e-9), 0.0, 1.0)
        how = {"label": "birthday model", "m_exact_date": round(m_exact, 5)}
    iso = np.clip(_isotonic(label, n), 1e-9, 1 - 1e-9)
    out = [
        {"from_bits": float(x[0]), "pairs": int(x[1]), "mean_p_masked": round(x[2] / x[1], 5),
         "mean_p_full_date": round(x[3] / x[1], 5), "label": round(float(lab), 5),
         "model_bits": _bits(x[2] / x[1]), "log2_odds": round(float(np.log2(v / (1 - v))), 4)}
        for x, lab, v in zip(bins, label, iso, strict=True)
    ]
    return {"dob_class": dob_class, "bins": out, "fitted": int(n.sum()) >= 10 * MASK_MIN_PAIRS} | how


#: Masked pairs at or above this masked probability are (nearly) all the same person: the share of
#: them sharing the exact date, less coincidences, is how often a person's two records agree on it.
SURE_MASKED_P = 0.999


def _exact_date_share(n, pm, shared, chance, model_m: float | None) -> float | None:
    """m of the exact date: measured on the sure masked pairs (at least :data:`MASK_MIN_PAIRS` x 10
    of them), else the model's.  The model's m is what EM left, which at 5M registrations put 7%
    of the same persons' records on different dates (0.916 exact) - labels 8% too high."""
    sure = pm >= SURE_MASKED_P
    if n[sure].sum() >= 10 * MASK_MIN_PAIRS:
        return float(min(max((shared[sure] - chance[sure]).sum() / n[sure].sum(), 1e-6), 1.0))
    return model_m


def _replacing(df, replacements: dict[str, str]) -> str:
    """SELECT every column of Splink table ``df``, those in ``replacements`` (name -> SQL) replaced.

    DuckDB's ``SELECT * REPLACE`` spelt out column by column, so Spark SQL runs it too.
    """
    cols = [
        f"{replacements[c.unquote().name]} AS {c.name}" if c.unquote().name in replacements else c.name
        for c in df.columns
    ]
    return f"SELECT {', '.join(cols)} FROM {df.physical_name}"


#: The class calibrated on the birthday model (:func:`fit_birthday_map`).
FULL_CLASS = "full"
NAME_FIELDS = ("first_name", "last_name", "middle_name", "name_suffix", "gender")


@dataclass(frozen=True)
class CellKind:
    """Pairs whose evidence apart from the date is one value per cell.

    Pairs of one cell agree exactly on every :data:`NAME_FIELDS` field but
    ``special``; on ``special`` they all stand in ``relation``: ``None`` (it is
    one of the equal fields), ``differs`` (both carry it, values differ: the
    comparison's else level, ``gamma_<special> = 0``) or ``one_missing``.
    """

    name: str
    special: str | None = None
    relation: str | None = None

    @property
    def equal(self) -> tuple[str, ...]:
        return tuple(f for f in NAME_FIELDS if f != self.special)


#: The cell kinds: all names exact; a changed or different surname (married women against
#: strangers sharing date, first and middle name); a middle name on one side only.  At 1M
#: registrations at national density they hold most of the full class's mid-range pairs.
CELL_KINDS = (
    CellKind("names exact"),
    CellKind("surname differs", "last_name", "differs"),
    CellKind("middle name on one side", "middle_name", "one_missing"),
)


def _qualified(alias: str, columns: str) -> str:
    """``a.x, a.y`` for ``columns`` "x, y": a relation's key columns without ``* EXCLUDE`` (Spark SQL has none)."""
    return ", ".join(f"{alias}.{c.strip()}" for c in columns.split(","))


def _cross_pairs_sql(rel: str, keys: str) -> str:
    """Cross-state pairs per group of ``keys`` over ``rel`` (rows: keys, state, n)."""
    return f"SELECT {keys}, (sum(n) * sum(n) - sum(n * n)) / 2.0 AS k FROM {rel} GROUP BY ALL"


@dataclass(frozen=True)
class DateSource:
    """Where the birthday model reads "the date" of a cell's pairs, and which pairs it counts.

    ``date``: the column two registrations share or not (the public full date, or the
    sealed DOB token); ``population``: the registrations that enter cells; ``year``: the
    SQL of a registration's stratum (its birth year, or one stratum for all), within
    which strangers share a date with chance q; ``inner``: a sub-population whose pairs
    among themselves are scored on another comparison, so not counted (``None``: none);
    ``gamma``: the pair column whose exact level (``exact``) is "date shared"; ``pairs``:
    the condition on a scored pair (``l.``, ``r.``) of belonging to the source.
    """

    name: str
    date: str
    population: str
    year: str
    inner: str | None
    gamma: str
    pairs: str

    def year_of(self, alias: str) -> str:
        return self.year.replace("birth_year", f"{alias}.birth_year")


#: Both sides publish a full date: the full class's birthday model.
PUBLIC_DATE = DateSource(
    "public full date", "dob", "dob_granularity = 'full' AND dob IS NOT NULL AND birth_year IS NOT NULL",
    "birth_year", None, "gamma_dob", "l.dob_granularity = 'full' AND r.dob_granularity = 'full'",
)
#: Pairs scored on a sealed DOB token (a side publishes no full date), both sides carrying a birth
#: year: strangers share a token with the chance two registrations of the year share a date.
TOKEN_WITH_YEAR = DateSource(
    "sealed token, birth year on both sides", "dob_token", "dob_token IS NOT NULL AND birth_year IS NOT NULL",
    "birth_year", "dob IS NOT NULL", "gamma_dob_token", "l.birth_year IS NOT NULL AND r.birth_year IS NOT NULL",
)
#: Pairs scored on a sealed DOB token where a side has no birth year (a no-DOB state that sealed
#: its dates): one stratum, so q is the chance two registrations of any year share a token.  Names
#: follow the era, so same-name strangers share a birth year more often than that: q is then too
#: small, the label too high, and the map corrects too little (never the wrong way).
TOKEN_WITHOUT_YEAR = DateSource(
    "sealed token, no birth year on a side", "dob_token", "dob_token IS NOT NULL", "0",
    "birth_year IS NOT NULL", "gamma_dob_token", "(l.birth_year IS NULL OR r.birth_year IS NULL)",
)


TOKEN_SOURCES = (TOKEN_WITH_YEAR, TOKEN_WITHOUT_YEAR)
#: Standard errors a birthday-model label must be off the model's mean probability to move its bin
#: (the token map; the full class's map moves every bin, see :data:`FULL_MIN_DATE_PAIRS`).
BIRTHDAY_MIN_SIGMA = 2.0
#: Date pairs in cells the full class's birthday map needs to be applied.  Below it the map
#: over-corrected (expected / true in [0.1, 0.5): 2.17 at 103,503 registrations with 784 date
#: pairs, 3.17 on the movers process with 1,172, 5.4 at 310,653 with 3,717, against 1.12 / 1.12 /
#: 1.50 scored): its lowest bins are differences of large counts, and noise there lifted
#: thousands of pairs into the mid-range.  At 1,035,234 (29,114) it met the target, 0.96 / 0.93;
#: the 2-standard-error rule of the token map did not (1.42: two bins 1.9 errors off were right).
FULL_MIN_DATE_PAIRS = 10_000


def birthday_cells_sql(input_table: str, kind: CellKind, source: DateSource = PUBLIC_DATE) -> str:
    """Per cell of ``kind`` (its equal fields + the source's stratum ``y``, the birth year):
    cross-state pairs in the cell (``pairs``), those also sharing the date (``date_pairs``),
    and ``q``, the chance two registrations of the stratum share a date.  Counts only.

    Cross-state pairs of a group are ``((sum n)^2 - sum n^2) / 2`` over its states'
    counts; a relation on the special field is a difference of such counts (pairs
    with it differing = pairs sharing the rest - pairs sharing it too; with it on
    one side only = all pairs - pairs where both lack it - pairs where both carry it),
    and so is leaving out the pairs of the source's ``inner`` sub-population (pairs of
    the population - pairs within the sub-population).
    """
    eq = kind.equal
    cell = ", ".join(f"coalesce(CAST({c} AS STRING), '') AS {c}" for c in eq)
    keys = ", ".join(eq)
    sp = kind.special
    extra = f", CAST({sp} AS STRING) AS _s" if sp else ""
    where = f" AND {sp} IS NOT NULL" if kind.relation == "differs" else ""
    inner = f", ({source.inner}) AS _in" if source.inner else ""

    def counts_in(by: str, r: str) -> str:
        rows = f"(SELECT {by}, state, count(*) AS n FROM {r} GROUP BY ALL)"
        if kind.relation == "differs":
            both = f"(SELECT {by}, _s, state, count(*) AS n FROM {r} GROUP BY ALL)"
            return (
                f"SELECT {_qualified('a', by)}, a.k - coalesce(b.k, 0) AS k FROM ({_cross_pairs_sql(rows, by)}) a "
                f"LEFT JOIN (SELECT {by}, sum(k) AS k FROM ({_cross_pairs_sql(both, by + ', _s')}) GROUP BY ALL) b "
                f"USING ({by})"
            )
        if kind.relation == "one_missing":
            part = f"(SELECT {by}, _s IS NULL AS _null, state, count(*) AS n FROM {r} GROUP BY ALL)"
            return (
                f"SELECT {_qualified('a', by)}, a.k - coalesce(b.k, 0) AS k FROM ({_cross_pairs_sql(rows, by)}) a "
                f"LEFT JOIN (SELECT {by}, sum(k) AS k FROM ({_cross_pairs_sql(part, by + ', _null')}) "
                f"GROUP BY ALL) b USING ({by})"
            )
        return _cross_pairs_sql(rows, by)

    def counts(by: str) -> str:
        if not source.inner:
            return counts_in(by, "r")
        return (
            f"SELECT {_qualified('a', by)}, a.k - coalesce(b.k, 0) AS k FROM ({counts_in(by, 'r')}) a "
            f"LEFT JOIN ({counts_in(by, 'ri')}) b USING ({by})"
        )

    return f"""
    WITH r AS (SELECT state, {cell}, {source.year} AS y, {source.date} AS d{extra}{inner} FROM {input_table}
               WHERE {source.population}
                 AND first_name IS NOT NULL AND last_name IS NOT NULL{where}),
    ri AS (SELECT * FROM r WHERE {"_in" if source.inner else "false"}),
    yd AS (SELECT y, d, count(*) AS c FROM r GROUP BY y, d),
    q AS ({_sharing_chance_sql("yd")}),
    cy AS ({counts(keys + ", y")}),
    dd AS ({counts(keys + ", y, d")}),
    cd AS (SELECT {keys}, y, sum(k) AS date_pairs FROM dd GROUP BY ALL)
    SELECT {_qualified('cy', keys + ', y')}, coalesce(cd.date_pairs, 0) AS date_pairs, cy.k AS pairs, q.q
    FROM cy LEFT JOIN cd USING ({keys}, y) JOIN q USING (y) WHERE cy.k > 0
    """


def _kind_pairs_sql(kind: CellKind) -> str:
    """Condition on a scored pair (``p``, ``l``, ``r``) of belonging to a cell of ``kind``."""
    if kind.relation == "differs":
        return f"l.{kind.special} <> r.{kind.special} AND p.gamma_{kind.special} = 0"
    if kind.relation == "one_missing":
        return f"(l.{kind.special} IS NULL) <> (r.{kind.special} IS NULL)"
    return "true"


#: Fields whose exact level carries a term-frequency adjustment: a cell's weight is its
#: kind's offset minus log2 of each such frequency (measured: the same offset on every
#: scored date pair of a kind and group to 1e-14 bits at 1M).
TF_FIELDS = ("first_name", "last_name", "middle_name")


def birthday_bins_sql(
    pairs_table: str, input_table: str, kind: CellKind, exact_gamma: int, weight: str, left_id: str, right_id: str,
    source: DateSource = PUBLIC_DATE,
) -> str:
    """Per bin of weight: date pairs of the cells of ``kind``, the model's sum of p over them,
    the birthday model's expected same-person pairs ``sum (E - N q) / (1 - q)`` and the
    coincidences it expects, ``sum N q`` (their variance, for the label's standard error).

    Every cell counts, with or without a pair sharing the date (taking only cells with
    one would drop the cells where no coincidence happened and overstate ``mu``), so a
    cell's bin is the weight its date pairs *would* carry: the offset of its group
    (middle name / suffix / gender present or not), measured on the scored date pairs,
    minus log2 of the term frequencies of its exact name fields.
    """
    eq = kind.equal
    tf_fields = [f for f in TF_FIELDS if f in eq]
    tfs = " ".join(
        f"LEFT JOIN (SELECT CAST({f} AS STRING) AS v, count(*) / sum(count(*)) OVER () AS tf "
        f"FROM {input_table} WHERE {f} IS NOT NULL GROUP BY 1) tf_{f} ON tf_{f}.v = c.{f}"
        for f in tf_fields
    )
    fsum = " + ".join(f"coalesce(-log2(tf_{f}.tf), 0.0)" for f in tf_fields) or "0.0"
    grp = ", ".join(f"(c.{f} = '') AS g_{f}" for f in eq if f not in ("first_name", "last_name"))
    gcols = ", ".join(f"g_{f}" for f in eq if f not in ("first_name", "last_name"))
    on = " AND ".join(
        f"c.{f} = coalesce(CAST(l.{f} AS STRING), '') AND c.{f} = coalesce(CAST(r.{f} AS STRING), '')"
        for f in eq
    )
    b = MASK_BIN_BITS
    return f"""WITH c0 AS ({birthday_cells_sql(input_table, kind, source)}),
        c AS (SELECT c.*, {fsum} AS f, {grp} FROM c0 c {tfs}),
        off AS (SELECT {gcols}, avg({weight} - c.f) AS a
                FROM {pairs_table} p
                JOIN {input_table} l ON l.unique_id = {left_id}
                JOIN {input_table} r ON r.unique_id = {right_id}
                JOIN c ON {on} AND c.y = {source.year_of("l")}
                WHERE p.{source.gamma} = {int(exact_gamma)} AND l.state <> r.state
                  AND {source.pairs} AND {_kind_pairs_sql(kind)}
                GROUP BY ALL),
        cw AS (SELECT c.date_pairs AS e, c.pairs AS n, c.q, off.a + c.f AS w FROM c JOIN off USING ({gcols}))
        SELECT floor(w / {b!r}) * {b!r} AS lo, sum(e), sum({_sigmoid2("w")} * e), sum((e - n * q) / (1.0 - q)),
               sum(n * q)
        FROM cw GROUP BY 1"""


def fit_birthday_map(
    engine,
    pairs_table: str,
    input_table: str,
    exact_gamma: int,
    *,
    weight: str = "p.match_weight",
    left_id: str = "p.unique_id_l",
    right_id: str = "p.unique_id_r",
    sources: tuple[DateSource, ...] = (PUBLIC_DATE,),
    dob_class: str = FULL_CLASS,
    min_sigma: float = 0.0,
    min_pairs: int = 0,
) -> dict:
    """The recalibration map of the full-DOB class (or, with the token ``sources``, of the pairs
    compared on a sealed DOB token), learnt from the birthday model without truth.

    Why.  The full class supplies the other classes' labels, so it cannot be
    checked against itself; but among pairs of one cell (:class:`CellKind`:
    e.g. the same first, middle and last name, or the same first and middle
    name and different surnames) the date is the only evidence that differs
    from pair to pair, and strangers share a date by chance.  In a cell (+
    birth year) with ``N`` cross-state pairs, ``E`` of which share the full
    date, the birthday model (a date independent of the names within a birth
    year, chance ``q`` of two registrations sharing one) expects ``(N - mu) q``
    strangers among the ``E``, so the cell holds ``mu = (E - N q) / (1 - q)``
    same-person pairs.  The ``E`` pairs of a cell carry one weight (same
    names, an exact date, no address across states), so per bin of that
    weight, summed over cells and kinds, ``sum mu / sum E`` is the share of true
    pairs, beside the model's mean probability.  The map is the isotonic fit
    of that share, applied to the class by weight.  A sealed DOB token is a
    date too (equal tokens = equal dates), so the same cells over the pairs
    compared on tokens label that class directly (:data:`TOKEN_WITH_YEAR`,
    :data:`TOKEN_WITHOUT_YEAR`).

    ``min_sigma``: a bin whose label is within ``min_sigma`` standard errors of
    the model's mean probability keeps its probabilities (``keep`` in the
    bin; the error counts the coincidences as Poisson, ``sqrt(sum N q) / sum E``):
    with a few dozen date pairs per bin the label is noise, and the map would
    move well-calibrated pairs by it.  ``min_pairs``: the map is fitted only with
    at least that many date pairs in cells (and never under 300).

    Assumes the date independent of the names among strangers within a birth
    year (twins break it; they differ in first name, so are in no cell) and
    that miscalibration depends on the weight, not on which fields carried
    it.  Cells whose date pairs were not scored (a capped block) are left out;
    unbiased per bin, not per cell (``mu`` of one cell may be < 0).
    """
    acc: dict[float, list[float]] = {}
    for source in sources:
        for kind in CELL_KINDS:
            cols = engine.columns(
                birthday_bins_sql(pairs_table, input_table, kind, exact_gamma, weight, left_id, right_id, source)
            )
            for a, *vals in zip(*cols, strict=True):
                row = acc.setdefault(float(a), [0.0, 0.0, 0.0, 0.0])
                for k, v in enumerate(vals):
                    row[k] += float(v or 0.0)
    bins: list[list[float]] = []  # [lo, date pairs, sum p, sum mu, sum N q]
    for lo in sorted(acc):
        row = [lo, *acc[lo]]
        if bins and bins[-1][1] < MASK_MIN_PAIRS:
            bins[-1][1:] = [bins[-1][k] + row[k] for k in (1, 2, 3, 4)]
        else:
            bins.append(row)
    if not bins:
        return {"dob_class": dob_class, "bins": [], "fitted": False}
    n = np.array([x[1] for x in bins])
    label = np.clip(np.array([x[3] for x in bins]) / n, 0.0, 1.0)
    model = np.array([x[2] for x in bins]) / n
    se = np.sqrt(np.maximum(np.array([x[4] for x in bins]), 0.0)) / n
    keep = np.abs(label - model) <= min_sigma * se
    target = np.where(keep, model, label)
    iso = np.clip(_isotonic(target, n), 1e-9, 1 - 1e-9)
    keep &= np.isclose(iso, target, rtol=0, atol=1e-12)  # a kept bin pooled with a moved one moves
    out = [
        {"from_bits": x[0], "pairs": int(round(x[1])), "mean_p_model": round(x[2] / x[1], 5),
         "birthday_share_true": round(float(lab), 5), "se": round(float(e), 5), "keep": bool(k),
         "model_bits": _bits(x[2] / x[1]), "log2_odds": round(float(np.log2(v / (1 - v))), 4)}
        for x, lab, e, k, v in zip(bins, label, se, keep, iso, strict=True)
    ]
    return {"dob_class": dob_class, "method": "birthday model on name cells: "
            + "; ".join(s.name for s in sources), "bins": out,
            "fitted": int(n.sum()) >= max(10 * MASK_MIN_PAIRS, min_pairs)}


def _interpolated_sql(bins: list[dict], weight: str) -> str:
    """Piecewise-linear map through the bins' points (``model_bits`` -> fitted log2-odds; a ``keep``
    bin's point is on the identity), parallel to the identity beyond the first and last points.

    A step map sends every pair of a bin to one value, which at a few dozen pairs per bin
    (pooled over several bits) moved a whole stretch of probabilities across 0.5 at once.
    """
    xs = [float(b["model_bits"]) for b in bins]
    ys = [xs[i] if b.get("keep") else float(b["log2_odds"]) for i, b in enumerate(bins)]
    whens = [f"WHEN {weight} < {xs[0]!r} THEN {weight} + {ys[0] - xs[0]!r}"]
    for i in range(len(bins) - 1):
        if xs[i + 1] <= xs[i]:
            continue
        slope = (ys[i + 1] - ys[i]) / (xs[i + 1] - xs[i])
        whens.append(f"WHEN {weight} < {xs[i + 1]!r} THEN {ys[i]!r} + ({weight} - {xs[i]!r}) * {slope!r}")
    return f"(CASE {' '.join(whens)} ELSE {weight} + {ys[-1] - xs[-1]!r} END)"


def masked_map_sql(maps: dict[str, dict], weight: str) -> str:
    """SQL of a pair's recalibrated log2-odds: its class's map at ``weight`` (unchanged where none).

    Pairs compared on a sealed DOB token take the ``token`` map (the birthday model
    on token cells, else full-DOB pairs with their date compared as a token would
    be), or keep their log2-odds where it was not fitted: the year and none maps
    simulate no date evidence.  A bin marked ``keep`` keeps the pair's log2-odds.
    """
    cls = granularity_class_sql("dob_granularity_l", "dob_granularity_r")
    parts = []
    for c, mp in sorted(maps.items(), key=lambda kv: kv[0] != TOKEN_CLASS):  # token pairs first
        if not mp.get("fitted"):
            continue
        bins = mp["bins"]
        if mp.get("form") == "interpolate":
            mapped = _interpolated_sql(bins, weight)
        else:
            # a bin the fit left alone (``keep``: its label within noise of the model) keeps the weight
            val = [weight if x.get("keep") else repr(x["log2_odds"]) for x in bins]
            whens = " ".join(
                f"WHEN {weight} < {bins[i + 1]['from_bits']!r} THEN {val[i]}" for i in range(len(bins) - 1)
            )
            mapped = f"(CASE {whens} ELSE {val[-1]} END)" if whens else val[-1]
        # a pair compared on sealed DOB tokens takes the token map (its own masking), if any
        cond = (
            "coalesce(gamma_dob_token, -1) >= 0" if c == TOKEN_CLASS
            else f"({cls}) = '{c}' AND coalesce(gamma_dob_token, -1) < 0"
        )
        if mp.get("pairs_sql"):  # a map learnt on, and applied to, some pairs of the class only
            cond = f"{cond} AND ({mp['pairs_sql']})"
        parts.append(f"WHEN {cond} THEN {mapped}")
    return f"(CASE {' '.join(parts)} ELSE {weight} END)" if parts else weight


def bayes_factors(levels: dict[str, list[tuple[float | None, float | None]]]) -> dict[str, dict[int, float]]:
    """comparison -> gamma -> log2(m / u), from each comparison's non-null levels' (m, u) in model order.

    An m or u never estimated (no pair of that level in training) counts as
    1e-300, i.e. a level no pair reaches in practice.
    """
    out = {}
    for name, mu in levels.items():
        n = len(mu)
        out[name] = {
            n - 1 - i: float(np.log2((m or 1e-300) / (u or 1e-300))) for i, (m, u) in enumerate(mu)
        }
    return out


def exact_m(levels: dict[str, list[tuple[float | None, float | None]]], comparison: str = "dob") -> float | None:
    """m of ``comparison``'s exact (first non-null) level: the share of same-person pairs recording one date."""
    mu = levels.get(comparison)
    return float(mu[0][0]) if mu and mu[0][0] else None


def fit_maps(
    engine, pairs_table: str, input_table: str, bf: dict, *, dob_exact_m: float | None = None, **kw
) -> dict[str, dict]:
    """Every class's map: the full class on the birthday model (:func:`fit_birthday_map`, with at
    least :data:`FULL_MIN_DATE_PAIRS`), :data:`MASKED_CLASSES` from full-DOB pairs masked, and,
    where the model has DOB-token weights, :data:`TOKEN_CLASS` on the birthday model over token
    cells (:data:`TOKEN_SOURCES`; a bin moves only :data:`BIRTHDAY_MIN_SIGMA` standard errors
    off, the map interpolated and applied to the cells' pairs only, :func:`cell_pairs_sql`),
    masked full-DOB pairs where those cells are too few.  Nothing without a DOB comparison.

    The masked maps are labelled by the birthday model on the masked pairs themselves
    (:func:`fit_masked_map`), not by the full-DOB probabilities, as scored or as the full
    class's map recalibrates them: labelled with the recalibrated ones, the year and none
    classes' [0.1, 0.5) bin had moved from 1.08 / 1.11 to 1.12 / 1.16 expected per observed
    at 1M (docs/LINKAGE.md)."""
    if "dob" not in bf or "birth_year" not in bf:
        return {}
    maps = {FULL_CLASS: fit_birthday_map(
        engine, pairs_table, input_table, max(bf["dob"]), min_pairs=FULL_MIN_DATE_PAIRS, **kw
    )}
    for c in MASKED_CLASSES:
        maps[c] = fit_masked_map(engine, pairs_table, input_table, bf, c, dob_exact_m=dob_exact_m, **kw)
    if has_token_weights(bf):
        maps[TOKEN_CLASS] = fit_birthday_map(
            engine, pairs_table, input_table, max(bf["dob_token"]), sources=TOKEN_SOURCES, dob_class=TOKEN_CLASS,
            min_sigma=BIRTHDAY_MIN_SIGMA, **kw,
        ) | {"form": "interpolate", "pairs_sql": cell_pairs_sql(bf)}
        if not maps[TOKEN_CLASS]["fitted"]:
            maps[TOKEN_CLASS] = fit_masked_map(engine, pairs_table, input_table, bf, TOKEN_CLASS, **kw)
    return maps


def cell_pairs_sql(bf: dict) -> str:
    """Condition on a scored pair's gammas of being of a :data:`CELL_KINDS` kind: first name exact
    and either the last name exact with the middle name exact, missing on both sides or on one
    side, or the last name different with the middle name exact or missing on both.

    The token map is applied to these pairs only: at 1,035,234 registrations (sealed_dob,
    docs/LINKAGE.md) the token pairs of these kinds in [-3, 1) bits were true 0.05-0.40 of
    the time against a model mean of 0.15-0.58, while the other token pairs of the same
    weights (nicknames, similar or initial-only names) were calibrated (0.12-0.60 against
    0.15-0.58): the over-confidence is in the exact-name cells, not in the weight.
    """
    first, last, middle = (max(bf[c]) for c in ("first_name", "last_name", "middle_name"))
    one_side = 1  # middle name: exact, initial matches a full name, missing on one side, different
    return (
        f"gamma_first_name = {first} AND ((gamma_last_name = {last} AND gamma_middle_name IN ({middle}, -1, "
        f"{one_side})) OR (gamma_last_name = 0 AND gamma_middle_name IN ({middle}, -1)))"
    )


def has_token_weights(bf: dict) -> bool:
    """Whether the DOB-token comparison was trained (both levels' m and u estimated: a missing
    one shows as a Bayes factor of about +-1000 bits, both missing as 0 on every level)."""
    tk = bf.get("dob_token", {})
    return len(tk) == 2 and all(abs(v) < 500 for v in tk.values()) and any(v != 0 for v in tk.values())


def recalibrate_predictions(engine, linker, df_predict, shift: float, *, input_table: str = "link_input"):
    """Fit the maps on Splink's scored pairs and, where fitted, return them recalibrated.

    ``shift``: the change of prior log-odds the final weights add to Splink's
    (:mod:`voterolls.link.predict`); the map works on final weights, and the
    table returned keeps Splink's convention (final = ``match_weight`` +
    ``shift``), so everything downstream is unchanged.  Returns
    ``(predictions, report)``; the predictions are ``df_predict`` itself when
    nothing was fitted.  The fit and the map are SQL both engines run (DuckDB,
    Spark), so the two engines write the same probabilities.
    """
    from voterolls.link.splink_adapter import level_m, level_u, model_comparisons

    levels = {
        c.output_column_name: [(level_m(lv), level_u(lv)) for lv in c.comparison_levels if not lv.is_null_level]
        for c in model_comparisons(linker)
    }
    report: dict = {"method": "masked full-DOB pairs (voterolls.link.calibration)", "applied": False}
    final = f"(p.match_weight + ({shift!r}))"
    maps = fit_maps(
        engine, f"{df_predict.physical_name}", input_table, bayes_factors(levels), weight=final,
        dob_exact_m=exact_m(levels),
    )  # fmt: skip
    report["classes"] = maps
    if not any(m.get("fitted") for m in maps.values()):
        return df_predict, report
    new_w = f"({masked_map_sql(maps, f'(match_weight + ({shift!r}))')} - ({shift!r}))"
    recal = engine.register_sql(
        _replacing(df_predict, {"match_weight": new_w, "match_probability": _sigmoid2(new_w)}),
        "vr_predict_recalibrated",
    )
    report["applied"] = True
    return recal, report
