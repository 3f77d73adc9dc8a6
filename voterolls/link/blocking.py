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


def prediction_rules() -> list[BlockingRuleCreator]:
    """Blocking rules for predictions, most specific first (Splink de-duplicates pairs)."""
    return [
        block_on("dob", "last_name"),
        block_on("dob", "first_name_canonical"),
        block_on("dob_token", "last_name"),
        block_on("dob_token", "first_name_canonical"),
        block_on("ssn4_token", "birth_year"),
        block_on("bk_sx_year_init"),
        block_on("bk_name"),
        block_on("bk_last_year_sex"),
        block_on("first_name_canonical", "last_name", "residence_zip5"),
    ]


def training_rules() -> list[BlockingRuleCreator]:
    """EM blocking rules.  Each leaves the comparisons it does not block on to be estimated.

    Splink skips estimating a comparison whose columns appear in the rule, and
    a rule that merely *correlates* with a comparison biases it: blocking on
    (DOB, first initial) would hide every true match whose first names differ
    entirely (an unresolved nickname), and EM would learn that such pairs
    never match.  Hence three sessions on real comparison columns:

    * (DOB, last name)                  -> first name, middle, suffix, gender, address, SSN4
    * (DOB, canonical first name)       -> last name (and the above again)
    * (canonical first, last, middle name, birth year) -> full DOB, DOB token

    Splink takes the median over sessions, so a comparison estimated in
    several sessions is robust to one bad one.

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
    return [
        block_on("dob", "last_name"),
        block_on("dob", "first_name_canonical"),
        block_on("first_name_canonical", "last_name", "middle_name", "birth_year"),
    ]


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
