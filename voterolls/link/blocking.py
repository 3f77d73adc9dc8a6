"""Blocking: which pairs of registrations are compared at all.

Comparing every pair of N registrations is N^2/2 comparisons (5 * 10^11 at a
million).  The rules below generate only pairs that agree on something
specific, so the number of comparisons grows about linearly in N:

1. full DOB + last name        6. capped (Soundex(last), birth year, first initial)
2. full DOB + canonical first  7. capped (canonical first, last)
3. DOB token + last name       8. capped (last, birth year, gender): nicknames
4. DOB token + canonical first    the canonical table does not resolve
5. SSN4 token + birth year     9. canonical first + last + ZIP

Rules 1-5 have small blocks by construction (a full date or a token is
already rare).  Rules 6-8 are the ones a common name could blow up (every
JOHN SMITH born in 1970, or every JOHN SMITH at all for the states that
publish no DOB), so their keys are *capped* when the input table is built: a
key shared by more than ``cap`` registrations is refined with one more field
(middle initial, birth year, middle initial) and, if still too common,
dropped (NULL never joins).  A block therefore contributes at most ``cap^2/2`` comparisons,
whatever the size of the country.  What the cap drops are pairs with so
little distinguishing evidence (a common name and no more than a birth year)
that the model could not accept them anyway; the count of registrations whose
key was dropped is reported by :func:`blocking_report`.

Rule 9 catches in-state duplicates whose DOB differs (typos) and whose name
block was capped.
"""

from __future__ import annotations

from dataclasses import dataclass

from splink import block_on
from splink.internals.blocking_rule_creator import BlockingRuleCreator

#: Largest block a capped key may form (registrations).  30 keeps a capped
#: block at <= 435 comparisons.  Measured on seed 7 (docs/LINKAGE.md): against
#: a cap of 100 it halves comparisons at 5M (4.72 vs 8.75 per record) and cuts
#: CPU by a third, with F1 unchanged for full-DOB and year pairs and 0.005
#: lower for pairs with no DOB on a side.
DEFAULT_BLOCK_CAP = 30

#: (key column, [component expressions in refinement order]).
CAPPED_KEYS: dict[str, tuple[list[str], list[str]]] = {
    # base components, then refinements tried one after another
    "bk_sx_year_init": (
        ["last_sx", "CAST(birth_year AS VARCHAR)", "first_initial"],
        ["middle_initial"],
    ),
    "bk_name": (["first_name_canonical", "last_name"], ["CAST(birth_year AS VARCHAR)"]),
    "bk_last_year_sex": (
        ["last_name", "CAST(birth_year AS VARCHAR)", "gender"],
        ["middle_initial"],
    ),
}


def _key_expr(parts: list[str]) -> str:
    """'|'-joined key, NULL when any part is NULL (a missing part must not match)."""
    return "(" + " || '|' || ".join(f"({p})" for p in parts) + ")"


def _capped_key_sql(
    cap: int, keys: dict[str, tuple[list[str], list[str]]] | None = None
) -> tuple[list[str], list[str], list[str]]:
    """SQL pieces of the capped keys: candidate key columns, their block-size
    windows, and per key the CASE choosing the first level within ``cap``."""
    if cap < 2:
        raise ValueError("block cap must be at least 2")
    cand, counted, selects = [], [], []
    for name, (base, refinements) in (keys or CAPPED_KEYS).items():
        levels = [base + refinements[:k] for k in range(len(refinements) + 1)]
        for j, parts in enumerate(levels):
            cand.append(f"{_key_expr(parts)} AS _{name}_{j}")
            counted.append(f"count(*) OVER (PARTITION BY _{name}_{j}) AS _{name}_n{j}")
        case = " ".join(
            f"WHEN _{name}_{j} IS NOT NULL AND _{name}_n{j} <= {cap} THEN _{name}_{j}"
            for j in range(len(levels))
        )
        selects.append(f"CASE {case} END AS {name}")
    return cand, counted, selects


def blocking_keys_sql(source: str, cap: int, *, drop: tuple[str, ...] | list[str] = ()) -> str:
    """SELECT * from table ``source`` (minus ``drop``) plus one capped key column per :data:`CAPPED_KEYS` entry.

    For each key: level 0 is the base key; where its block exceeds ``cap`` the
    next level appends one refinement; a key still over ``cap`` after the last
    refinement becomes NULL.  The block sizes are window counts over a narrow
    projection (row id and the candidate keys only), joined back on the row
    id: counting over the full rows would drag every column through six
    partitioned sorts.  ``source`` must be a table (it uses ``rowid``).
    """
    cand, counted, selects = _capped_key_sql(cap)
    exclude = f" EXCLUDE ({', '.join(drop)})" if drop else ""
    return f"""
    WITH _kc AS (SELECT rowid AS _rid, {", ".join(cand)} FROM {source}),
         _kn AS (SELECT *, {", ".join(counted)} FROM _kc),
         _kk AS (SELECT _rid, {", ".join(selects)} FROM _kn)
    SELECT s.*{exclude}, {", ".join(f"_kk.{n}" for n in CAPPED_KEYS)}
    FROM {source} s JOIN _kk ON s.rowid = _kk._rid
    """


def capped_keys_select_sql(source: str, cap: int, columns: list[str]) -> str:
    """The capped keys as one portable SELECT (window counts, no row ids, no ``EXCLUDE``), for Spark.

    Keeps ``columns`` of ``source`` and adds the same keys as
    :func:`create_capped_keys`, plus one boolean ``_<key>_lost`` per key (had
    the base key, lost it to the cap) so the caller can count what the cap
    dropped.  Written in DuckDB's dialect and translated by
    :mod:`voterolls.link.prepare_spark`.
    """
    cand, counted, selects = _capped_key_sql(cap)
    lost = [
        f"(_{n}_0 IS NOT NULL AND ({sel.rsplit(' AS ', 1)[0]}) IS NULL) AS _{n}_lost"
        for n, sel in zip(CAPPED_KEYS, selects, strict=True)
    ]
    keep = ", ".join(f'"{c}"' for c in columns)
    return f"""
    SELECT {keep}, {", ".join(selects)}, {", ".join(lost)}
    FROM (SELECT *, {", ".join(counted)} FROM (SELECT *, {", ".join(cand)} FROM {source}))
    """


def create_capped_keys(
    con,
    source: str,
    target: str,
    cap: int,
    *,
    drop: tuple[str, ...] | list[str] = (),
    keys: dict[str, tuple[list[str], list[str]]] | None = None,
) -> dict[str, int]:
    """Create table ``target`` = :func:`blocking_keys_sql` over table ``source``, in steps.

    Same result as the single statement, cheaper: the candidate keys are
    materialised once as a narrow table (row id + keys), counted there, and
    only the three final keys are joined back to the full rows.  Returns, per
    capped key, how many registrations had the base key but lost it to the cap.
    ``keys``: the key definitions (default :data:`CAPPED_KEYS`; sealed-only
    linkage passes keys built from the state's keyed tokens).
    """
    keys = keys or CAPPED_KEYS
    cand, counted, selects = _capped_key_sql(cap, keys)
    exclude = f" EXCLUDE ({', '.join(drop)})" if drop else ""
    con.execute(
        f"CREATE OR REPLACE TEMP TABLE _vr_keys_cand AS SELECT rowid AS _rid, {', '.join(cand)} FROM {source}"
    ).fetchall()
    con.execute(
        f"CREATE OR REPLACE TEMP TABLE _vr_keys AS SELECT _rid, "
        f"{', '.join(f'_{n}_0 IS NOT NULL AS _{n}_base' for n in keys)}, {', '.join(selects)} "
        f"FROM (SELECT *, {', '.join(counted)} FROM _vr_keys_cand)"
    ).fetchall()
    con.execute("DROP TABLE _vr_keys_cand").fetchall()
    counts = con.execute(
        "SELECT "
        + ", ".join(f"count(*) FILTER (WHERE _{n}_base AND {n} IS NULL)" for n in keys)
        + " FROM _vr_keys"
    ).fetchall()[0]
    dropped = {n: int(c) for n, c in zip(keys, counts, strict=True)}
    con.execute(
        f"CREATE OR REPLACE TABLE {target} AS SELECT s.*{exclude}, "
        f"{', '.join(f'k.{n}' for n in keys)} FROM {source} s JOIN _vr_keys k ON s.rowid = k._rid"
    ).fetchall()
    con.execute("DROP TABLE _vr_keys").fetchall()
    return dropped


#: Source fields each capped key is built from (a key missing one is NULL everywhere).
CAPPED_KEY_FIELDS: dict[str, tuple[str, ...]] = {
    "bk_sx_year_init": ("last_name", "birth_year", "first_name"),
    "bk_name": ("first_name_canonical", "last_name"),
    "bk_last_year_sex": ("last_name", "birth_year", "gender"),
}

#: Prediction rules as column tuples, most specific first (Splink de-duplicates pairs).
PREDICTION_RULES: tuple[tuple[str, ...], ...] = (
    ("dob", "last_name"),
    ("dob", "first_name_canonical"),
    ("dob_token", "last_name"),
    ("dob_token", "first_name_canonical"),
    ("ssn4_token", "birth_year"),
    ("bk_sx_year_init",),
    ("bk_name",),
    ("bk_last_year_sex",),
    ("first_name_canonical", "last_name", "residence_zip5"),
)

#: Rules only used when the input carries no names at all (tokens only):
#: both tokens together are as specific as a date plus a surname.
NAMELESS_RULES: tuple[tuple[str, ...], ...] = (
    ("dob_token", "ssn4_token"),
    ("dob", "ssn4_token"),
)


def _fields_of(columns: tuple[str, ...]) -> tuple[str, ...]:
    out: list[str] = []
    for c in columns:
        out.extend(CAPPED_KEY_FIELDS.get(c, (c,)))
    return tuple(out)


def prediction_rule_columns(profile=None) -> list[tuple[str, ...]]:
    """The prediction rules whose fields ``profile`` carries (all of them when None).

    A rule on an absent field joins nothing and only costs a scan, so it is
    left out; an input with no names at all gets :data:`NAMELESS_RULES`.
    """
    if profile is None:
        return list(PREDICTION_RULES)
    rules = [r for r in PREDICTION_RULES if all(profile.has(f) for f in _fields_of(r))]
    if not (profile.has("first_name") or profile.has("last_name")):
        rules += [r for r in NAMELESS_RULES if all(profile.has(f) for f in r)]
    return rules


def prediction_rules(profile=None) -> list[BlockingRuleCreator]:
    """Blocking rules for predictions, most specific first (see :func:`prediction_rule_columns`)."""
    return [block_on(*cols) for cols in prediction_rule_columns(profile)]


def training_rules(profile=None) -> list[BlockingRuleCreator]:
    """EM blocking rules.  Each leaves the comparisons it does not block on to be estimated.

    Splink skips estimating a comparison whose columns appear in the rule, and
    a rule that merely *correlates* with a comparison biases it: blocking on
    (DOB, first initial) would hide every true match whose first names differ
    entirely (an unresolved nickname), and EM would learn that such pairs
    never match.  Hence three sessions on real comparison columns:

    * (DOB, last name)                  -> first name, middle, suffix, gender, address, SSN4
    * (DOB, middle name)                -> first and last name (and gender, suffix, ...)
    * (last name, middle name, birth year) -> full DOB, DOB token, first name

    Splink takes the median over sessions, so a comparison estimated in
    several sessions is robust to one bad one.

    **Each session leaves two independent informative fields free.**  Gender
    follows the first name and the address differs across states for matches
    too, so a session blocked on (DOB, first, middle) had only the surname
    left, and (first, last, middle, year) only the date: one field cannot
    identify a two-class mixture, and at national birthday density EM took
    strangers for matches with a changed surname / a different date
    (m(surname differs) 0.43 vs 0.015 true, m(DOB differs) 0.14 vs 0.00005,
    bench/link_ceiling.py at 1M folded into one birth year).

    The third rule includes the birth year because a plain (first, last)
    block of a common name is mostly different people, and EM then settles
    on a fixed point where strangers sharing a common middle name count as
    matches, inflating m of "different DOB" from ~0.01 to 0.13-0.18
    (measured at 100k registrations).  The middle name is in the key for the
    same reason at scale: the share of strangers in a (first, last, year)
    block grows with N (pairs ~N^2, duplicates ~N), and at 5.2M
    registrations EM on it gave m(exact date) = 0.34 and m(different date)
    = 0.60 (0.95 / ~0.01 at 1M), so a same-name pair with a different date
    lost only 0.7 bits.  A shared middle name cuts the strangers in a block
    by its frequency and is independent of DOB errors among matches; the
    middle-name comparison is still estimated by the other two sessions.
    The birth-year comparison cannot be
    estimated by EM at all from name blocks: for a pair with a year on one
    side the year is the only informative field once names are blocked on, and
    one binary field does not identify a two-class mixture.  Its m is
    therefore derived from the full-date comparison
    (:func:`voterolls.link.train.derive_dependent_m`).  Big blocks are handled
    by EM's deterministic ``max_pairs`` sampling.
    """
    return [block_on(*cols) for cols in training_rule_columns(profile)]


def training_rule_columns(profile=None) -> list[tuple[str, ...]]:
    """The EM sessions for the fields ``profile`` carries (the three above when None).

    * an *anchor* (public full DOB, else a sealed DOB token) blocks with the
      last name and with the canonical first name, which estimates the names
      and everything else;
    * the names block with the most specific field independent of DOB
      errors - the middle name where most records carry one (full or
      initial), else the sealed SSN4, else nothing - plus the birth year,
      which estimates the DOB levels;
    * without any anchor the names are estimated from blocks on the SSN4
      token, else the ZIP (in-state), else the birth year, with each name;
    * with no names at all (tokens only) each identifier blocks alone.

    A field counts for training only where enough records carry it
    (:meth:`voterolls.link.fields.FieldProfile.trains_on`).  Duplicates are removed, order kept.
    """
    if profile is None:
        return [
            ("dob", "last_name"),
            ("dob", "middle_name"),
            ("last_name", "middle_name", "birth_year"),
        ]
    t = profile.trains_on
    names = [c for c in ("last_name", "first_name_canonical") if t(c)]
    anchor = next((a for a in ("dob", "dob_token") if t(a)), None)
    rules: list[tuple[str, ...]] = []
    if not names:  # tokens only: each identifier alone estimates the others
        return [(x,) for x in ("dob", "dob_token", "ssn4_token", "birth_year") if t(x)]
    if anchor:
        rules += [(anchor, n) for n in names]
        if t("middle_name") and "first_name_canonical" in names and not t("dob_token"):
            # (anchor, middle) instead of (anchor, first): a session must leave
            # two *independent* informative fields free.  Blocked on the first
            # name, only the surname was left (gender follows the first name,
            # the address differs across states for matches too), and at
            # national density strangers sharing a birthday and a first name
            # then became "matches with a changed surname": m(surname differs)
            # 0.43 against 0.015 among true compared pairs at 1M folded into
            # one birth year (bench/link_ceiling.py).  Blocked on the middle
            # name, first and last name are both free.
            i = rules.index((anchor, "first_name_canonical"))
            rules[i] = (anchor, "middle_name")
        elif t("middle_name") and "first_name_canonical" in names:
            # with sealed DOB tokens: see the DOB session below
            i = rules.index((anchor, "first_name_canonical"))
            rules[i] = (anchor, "first_name_canonical", "middle_name")
    else:
        other = next((x for x in ("ssn4_token", "residence_zip5", "birth_year") if t(x)), None)
        if other:
            rules += [(other, n) for n in names]
    if names:
        extra = next((x for x in ("middle_name", "ssn4_token") if t(x)), None)
        name_key = ("first_name_canonical", "last_name") if len(names) == 2 else tuple(names)
        if extra and len(names) == 2 and not t("dob_token"):
            # The DOB session: with (first, last, extra, year) blocked, the date
            # was the only informative field left, and EM took strangers sharing
            # a full name for matches with a different date: m(DOB differs) 0.14
            # against 0.00005 at 1M folded into one year.  Leaving the first
            # name free as well gives EM a second, independent field.
            # Not with sealed DOB tokens: there these two sessions lost 0.029
            # F1 at 1M (0.910 -> 0.881; the token is a second copy of the date
            # left free next to it; not diagnosed further), so such input keeps
            # (anchor, first, middle) and (first, last, extra, year).
            name_key = ("last_name",)
        rules.append(
            name_key + ((extra,) if extra else ()) + (("birth_year",) if t("birth_year") else ())
        )
    if any(len(_free_evidence(r, profile)) < 2 for r in rules):
        # Too few fields left free for EM to tell two classes apart (one
        # binary-ish field cannot identify a mixture): e.g. FEBRL-like data
        # (names and DOB only, sources that share no address) blocked on
        # (DOB, surname) leaves only the first name.  Coarser blocks leave
        # the names (and the date) free together.
        # (A birth-year block is no substitute: EM there latched onto "same
        # year and month" strangers as the match class on FEBRL4, measured.)
        coarse = [(x,) for x in (anchor, *names) if x]
        rules = coarse if len(coarse) > 1 else rules
    out: list[tuple[str, ...]] = []
    for r in rules:
        if r not in out:
            out.append(r)
    return out


#: Comparisons that carry evidence in a training session, by the fields they
#: read.  The full date (public or sealed) counts once; the birth-year
#: comparison is derived from it, not estimated, and address is left out:
#: across states it is never evidence.
EVIDENCE = {
    "first_name": ("first_name", "first_name_canonical"),
    "last_name": ("last_name",),
    "middle_name": ("middle_name",),
    "date": ("dob", "dob_token"),
    "ssn4_token": ("ssn4_token",),
    "gender": ("gender",),
}


def _free_evidence(rule: tuple[str, ...], profile) -> list[str]:
    """Comparisons a session on ``rule`` estimates that the data carries (Splink skips blocked ones)."""
    free = []
    for name, cols in EVIDENCE.items():
        if any(c in rule for c in cols):
            continue
        if any(profile.trains_on(c) for c in cols):
            free.append(name)
    return free


@dataclass(frozen=True)
class RuleCount:
    rule: str
    comparisons: int
    cumulative: int


@dataclass(frozen=True)
class BlockingReport:
    registrations: int
    comparisons: int
    comparisons_per_record: float
    rules: list[RuleCount]
    capped_keys_dropped: dict[str, int]
    block_cap: int

    def as_dict(self) -> dict:
        return {
            "registrations": self.registrations,
            "comparisons": self.comparisons,
            "comparisons_per_record": round(self.comparisons_per_record, 3),
            "block_cap": self.block_cap,
            "capped_keys_dropped": self.capped_keys_dropped,
            "rules": [r.__dict__ for r in self.rules],
        }


def blocking_report(
    linker, n: int, cap: int, dropped: dict[str, int], sample: float = 1.0
) -> BlockingReport:
    """Comparisons per rule (Splink's blocking analysis) and keys dropped by the cap.

    ``dropped``: registrations that lost each capped key (from
    :func:`create_capped_keys`, via :func:`voterolls.link.prepare.prepare_input`).
    """
    import warnings

    with warnings.catch_warnings():
        # Splink warns when a rare rule is estimated from few sampled pairs;
        # the report marks sampled counts as estimates instead.
        warnings.simplefilter("ignore", UserWarning)
        records = linker.blocking_analysis.count_comparisons_from_blocking_rules(
            record_sample_proportion=sample
        )
    rules = [
        RuleCount(
            rule=str(r["blocking_rule"]),
            comparisons=int(r["marginal_comparison_count"]),
            cumulative=int(r["cumulative_comparison_count"]),
        )
        for r in records
    ]
    total = rules[-1].cumulative if rules else 0
    return BlockingReport(
        registrations=n,
        comparisons=total,
        comparisons_per_record=total / n if n else 0.0,
        rules=rules,
        capped_keys_dropped=dict(dropped),
        block_cap=cap,
    )
