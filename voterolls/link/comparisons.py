"""The comparisons of the Fellegi-Sunter model: what counts as evidence, and how much.

Each comparison turns a pair of registrations into one level (``gamma_<name>``
in the pairs table: -1 = not comparable / neutral, 0 = the "else" level,
higher = more similar).  The weight of each level is learnt from the data
(u by random sampling, m by EM), never hand-set, except that the model is
built so that:

* **JR vs SR counts against a match.**  Different generational suffixes are
  the ``else`` level of ``name_suffix`` and EM learns that matches almost never
  land there; a suffix present on only one side is neutral (null level),
  because clerks drop suffixes.
* **DOB granularity is explicit.**  One ``dob`` comparison covers every case a
  pair can be in: both full public dates (exact, transposed day/month, same
  year-month, same month-day with a year slip), a sealed ``dob_token`` match
  (the HMAC of the full date, for states that may not publish it), or only a
  birth year on one side (the ``year`` level, worth far less than a full date
  because ~1/70 of strangers share a year against ~1/25,000 for a full date).
  The token is a level of the DOB comparison and not a comparison of its own
  so that a pair with both a public date and a token does not count the same
  birthday twice (Fellegi-Sunter assumes comparisons are independent given
  match status).
* **State is never evidence.**  Address and ZIP only count within a state
  (across states the pair is "not comparable": a mover is *expected* to have a
  different address, so a mismatch is neither for nor against).

Custom SQL is written for DuckDB and translated to Spark SQL by Splink
(sqlglot); it only uses equality, ``year``/``month``/``day`` and boolean logic,
which translate exactly.
"""

from __future__ import annotations

import splink.comparison_level_library as cll
import splink.comparison_library as cl
from splink.internals.comparison_creator import ComparisonCreator

#: Jaro-Winkler thresholds for the fuzzy name levels.
NAME_JW_THRESHOLDS = (0.92, 0.85)

#: gamma value -> label, per comparison, for documentation and reports.  Kept
#: beside the definitions so the two cannot drift (tests check the lengths).
LEVELS: dict[str, dict[int, str]] = {}


def _custom(sql: str, label: str, *, null: bool = False) -> cll.CustomLevel:
    level = cll.CustomLevel(sql, label_for_charts=label, base_dialect_str="duckdb")
    if null:
        level.configure(is_null_level=True)
    return level


def _register(name: str, labels: list[str]) -> None:
    """labels: first non-null level first, the else level last (null level excluded)."""
    top = len(labels) - 1
    LEVELS[name] = {-1: "not comparable"} | {top - i: lab for i, lab in enumerate(labels)}


def first_name() -> ComparisonCreator:
    labels = [
        "exact",
        "nickname-canonical exact",
        f"Jaro-Winkler >= {NAME_JW_THRESHOLDS[0]}",
        f"Jaro-Winkler >= {NAME_JW_THRESHOLDS[1]}",
        "initial matches a full name",
        "different",
    ]
    _register("first_name", labels)
    canon = cll.ExactMatchLevel("first_name_canonical").configure(
        tf_adjustment_column="first_name_canonical",
        tf_adjustment_weight=1.0,
        label_for_charts=labels[1],
    )
    return cl.CustomComparison(
        output_column_name="first_name",
        comparison_levels=[
            cll.NullLevel("first_name"),
            cll.ExactMatchLevel("first_name", term_frequency_adjustments=True),
            canon,
            cll.JaroWinklerLevel("first_name", NAME_JW_THRESHOLDS[0]),
            cll.JaroWinklerLevel("first_name", NAME_JW_THRESHOLDS[1]),
            _custom(
                "(length(first_name_l) = 1 OR length(first_name_r) = 1) "
                "AND substr(first_name_l, 1, 1) = substr(first_name_r, 1, 1)",
                labels[4],
            ),
            cll.ElseLevel(),
        ],
        comparison_description="first name: exact (TF), nickname, fuzzy",
    )


def last_name() -> ComparisonCreator:
    labels = [
        "exact",
        f"Jaro-Winkler >= {NAME_JW_THRESHOLDS[0]}",
        "shares a surname part (hyphenated / double surname)",
        f"Jaro-Winkler >= {NAME_JW_THRESHOLDS[1]}",
        "different (includes a changed surname)",
    ]
    _register("last_name", labels)
    return cl.CustomComparison(
        output_column_name="last_name",
        comparison_levels=[
            cll.NullLevel("last_name"),
            cll.ExactMatchLevel("last_name", term_frequency_adjustments=True),
            cll.JaroWinklerLevel("last_name", NAME_JW_THRESHOLDS[0]),
            cll.ArrayIntersectLevel("last_name_tokens", 1).configure(label_for_charts=labels[2]),
            cll.JaroWinklerLevel("last_name", NAME_JW_THRESHOLDS[1]),
            cll.ElseLevel(),
        ],
        comparison_description="last name: exact (TF), fuzzy, shared part",
    )


def middle_name() -> ComparisonCreator:
    labels = ["exact full name", "initial matches", "missing on one side", "different"]
    _register("middle_name", labels)
    return cl.CustomComparison(
        output_column_name="middle_name",
        comparison_levels=[
            _custom("middle_name_l IS NULL AND middle_name_r IS NULL", "missing on both", null=True),
            _custom("middle_name_l = middle_name_r AND length(middle_name_l) > 1", labels[0]),
            _custom(
                "substr(middle_name_l, 1, 1) = substr(middle_name_r, 1, 1) "
                "AND (length(middle_name_l) = 1 OR length(middle_name_r) = 1)",
                labels[1],
            ),
            _custom("middle_name_l IS NULL OR middle_name_r IS NULL", labels[2]),
            cll.ElseLevel(),
        ],
        comparison_description="middle name: full, initial, one side missing",
    )


def name_suffix() -> ComparisonCreator:
    labels = ["same suffix", "different suffix (JR vs SR)"]
    _register("name_suffix", labels)
    return cl.CustomComparison(
        output_column_name="name_suffix",
        comparison_levels=[
            cll.NullLevel("name_suffix").configure(label_for_charts="missing on one or both sides (neutral)"),
            cll.ExactMatchLevel("name_suffix"),
            cll.ElseLevel().configure(label_for_charts=labels[1]),
        ],
        comparison_description="generational suffix; a mismatch counts against",
    )


#: DOB level labels, best first.  ``year`` is the level for mixed granularity.
DOB_LABELS = [
    "exact full date",
    "sealed DOB token exact",
    "day and month transposed",
    "same year and month",
    "same month and day, different year",
    "same birth year, one side year only",
    "different",
]


def dob() -> ComparisonCreator:
    _register("dob", DOB_LABELS)
    both = "dob_l IS NOT NULL AND dob_r IS NOT NULL"
    comparable = (
        f"({both}) OR (dob_token_l IS NOT NULL AND dob_token_r IS NOT NULL) "
        "OR (birth_year_l IS NOT NULL AND birth_year_r IS NOT NULL)"
    )
    return cl.CustomComparison(
        output_column_name="dob",
        comparison_levels=[
            _custom(f"NOT ({comparable})", "nothing comparable (no DOB on a side)", null=True),
            _custom("dob_l = dob_r", DOB_LABELS[0]),
            _custom("dob_token_l = dob_token_r", DOB_LABELS[1]),
            _custom("dob_swapped_l = dob_r", DOB_LABELS[2]),
            _custom(f"{both} AND year(dob_l) = year(dob_r) AND month(dob_l) = month(dob_r)", DOB_LABELS[3]),
            _custom(f"{both} AND month(dob_l) = month(dob_r) AND day(dob_l) = day(dob_r)", DOB_LABELS[4]),
            _custom(
                "(NOT dob_full_known_l OR NOT dob_full_known_r) AND birth_year_l = birth_year_r",
                DOB_LABELS[5],
            ),
            cll.ElseLevel(),
        ],
        comparison_description="date of birth at whatever granularity both sides carry",
    )


def ssn4_token() -> ComparisonCreator:
    labels = ["sealed SSN4 token exact", "different"]
    _register("ssn4_token", labels)
    return cl.CustomComparison(
        output_column_name="ssn4_token",
        comparison_levels=[cll.NullLevel("ssn4_token"), cll.ExactMatchLevel("ssn4_token"), cll.ElseLevel()],
        comparison_description="sealed last four SSN digits",
    )


def gender() -> ComparisonCreator:
    labels = ["same", "different"]
    _register("gender", labels)
    return cl.CustomComparison(
        output_column_name="gender",
        comparison_levels=[cll.NullLevel("gender"), cll.ExactMatchLevel("gender"), cll.ElseLevel()],
        comparison_description="gender (M/F; U and missing are neutral)",
    )


def address() -> ComparisonCreator:
    labels = ["same street address and ZIP", "same ZIP", "different"]
    _register("address", labels)
    return cl.CustomComparison(
        output_column_name="address",
        comparison_levels=[
            _custom(
                "state_l <> state_r OR residence_zip5_l IS NULL OR residence_zip5_r IS NULL",
                "different states or missing (neutral)",
                null=True,
            ),
            _custom(
                "residence_address_l = residence_address_r AND residence_zip5_l = residence_zip5_r",
                labels[0],
            ),
            cll.ExactMatchLevel("residence_zip5"),
            cll.ElseLevel(),
        ],
        comparison_description="residence within one state (not evidence across states)",
    )


def all_comparisons() -> list[ComparisonCreator]:
    """The model's comparisons, in the order the pairs table lists their gammas."""
    return [
        first_name(),
        last_name(),
        middle_name(),
        name_suffix(),
        dob(),
        ssn4_token(),
        gender(),
        address(),
    ]


#: Names of the gamma columns in pairs.parquet.
COMPARISON_NAMES = ("first_name", "last_name", "middle_name", "name_suffix", "dob", "ssn4_token", "gender", "address")
