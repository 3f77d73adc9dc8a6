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
* **DOB granularity is explicit.**  A pair is scored on exactly one of three
  DOB comparisons, by what *both* sides carry: ``dob`` when both publish a
  full date (exact, transposed day/month, same year-month, same month-day
  with a year slip), else ``dob_token`` when both sent a sealed token (the
  HMAC of the full date, for states that may match on it but not publish
  it), else ``birth_year`` when both carry a year - the case of a full-DOB
  state against a year-only state.  A shared year is worth far less than a
  shared date (~1/70 of strangers share a year against ~1/25,000 a date), and
  because Splink estimates each comparison's m and u over the pairs where it
  applies, each weight is conditional on its case.  The three are mutually
  exclusive so one birthday is never counted twice (Fellegi-Sunter assumes
  comparisons independent given match status).
* **Rare levels are not vetoes.**  A level EM never observes among matches
  (day/month transposition in a small sample, JR vs SR) would otherwise get
  Splink's placeholder m of 1e-6; :func:`voterolls.link.train.floor_m`
  makes an unobserved agreement level neutral and an unobserved
  disagreement level :data:`voterolls.link.train.UNOBSERVED_M`.
* **State is never evidence.**  Address and ZIP only count within a state
  (across states the pair is "not comparable": a mover is *expected* to have a
  different address, so a mismatch is neither for nor against).

Custom SQL is written for DuckDB and translated to Spark SQL by Splink
(sqlglot); it only uses equality, ``substr``/``length``, ``year``/``month``/``day``
and boolean logic, which translate exactly.
"""

from __future__ import annotations

from dataclasses import dataclass

import splink.comparison_level_library as cll
import splink.comparison_library as cl
from splink.internals.comparison_creator import ComparisonCreator

#: Jaro-Winkler thresholds for the fuzzy name levels.
NAME_JW_THRESHOLDS = (0.92, 0.85)

#: gamma value -> label, per comparison, for documentation and reports.  Kept
#: beside the definitions so the two cannot drift (tests check the lengths).
LEVELS: dict[str, dict[int, str]] = {}


def custom_level(sql: str, label: str, *, null: bool = False) -> cll.CustomLevel:
    """A comparison level from SQL (DuckDB dialect; Splink translates it for Spark)."""
    level = cll.CustomLevel(sql, label_for_charts=label, base_dialect_str="duckdb")
    if null:
        level.configure(is_null_level=True)
    return level


def level_labels(labels: list[str]) -> dict[int, str]:
    """gamma -> label; ``labels``: first non-null level first, the else level last (null excluded)."""
    top = len(labels) - 1
    return {-1: "not comparable"} | {top - i: lab for i, lab in enumerate(labels)}


def _register(name: str, labels: list[str]) -> None:
    LEVELS[name] = level_labels(labels)


#: Label of the joint full-name level (first + last both exact); also how a
#: saved model is recognised as a joint-name model (:func:`is_joint_model`).
FULL_NAME_LABEL = "full name exact (TF on first + last together)"
FULL_NAME_NEUTRAL_LABEL = "full name exact (weighed under first_name)"


def _full_name_level() -> cll.ExactMatchLevel:
    return cll.ExactMatchLevel("full_name", term_frequency_adjustments=True).configure(
        label_for_charts=FULL_NAME_LABEL
    )


def first_name(joint: bool = False) -> ComparisonCreator:
    """First name; with ``joint``, a top level for "first and last both exact" (see :func:`last_name`)."""
    labels = [
        "exact",
        "nickname-canonical exact",
        f"Jaro-Winkler >= {NAME_JW_THRESHOLDS[0]}",
        f"Jaro-Winkler >= {NAME_JW_THRESHOLDS[1]}",
        "initial matches a full name",
        "different",
    ]
    if joint:
        labels = [FULL_NAME_LABEL, "exact (surname differs)"] + labels[1:]
    _register("first_name", labels)
    canon = cll.ExactMatchLevel("first_name_canonical").configure(
        tf_adjustment_column="first_name_canonical",
        tf_adjustment_weight=1.0,
        label_for_charts=labels[-5],
    )
    top = [_full_name_level()] if joint else []
    exact = cll.ExactMatchLevel("first_name", term_frequency_adjustments=True)
    if joint:
        exact.configure(label_for_charts=labels[1])
    return cl.CustomComparison(
        output_column_name="first_name",
        comparison_levels=[
            cll.NullLevel("first_name"),
            *top,
            exact,
            canon,
            cll.JaroWinklerLevel("first_name", NAME_JW_THRESHOLDS[0]),
            cll.JaroWinklerLevel("first_name", NAME_JW_THRESHOLDS[1]),
            custom_level(
                "(length(first_name_l) = 1 OR length(first_name_r) = 1) "
                "AND substr(first_name_l, 1, 1) = substr(first_name_r, 1, 1)",
                labels[-2],
            ),
            cll.ElseLevel(),
        ],
        comparison_description="first name: exact (TF), nickname, fuzzy"
        + ("; full name exact with TF on the full name" if joint else ""),
    )


def last_name(joint: bool = False) -> ComparisonCreator:
    """Last name; with ``joint``, "first and last both exact" is its own level here too.

    Joint names: first and last names are correlated (through ethnicity and
    family naming), so multiplying their separate term frequencies treats a
    common full name (JOSE GARCIA) as far rarer than it is.  The pair where
    both agree exactly is weighed once, under ``first_name``, with the term
    frequency of the *full* name; its level here carries only m of an exact
    surname (set after training, :func:`voterolls.link.train.derive_dependent_m`),
    so together they give m_first m_last / tf(full name).
    """
    labels = [
        "exact",
        f"Jaro-Winkler >= {NAME_JW_THRESHOLDS[0]}",
        "shares a surname part (hyphenated / double surname)",
        f"Jaro-Winkler >= {NAME_JW_THRESHOLDS[1]}",
        "different (includes a changed surname)",
    ]
    if joint:
        labels = [FULL_NAME_NEUTRAL_LABEL, "exact (first name differs)"] + labels[1:]
    _register("last_name", labels)
    top = (
        [custom_level("full_name_l = full_name_r", FULL_NAME_NEUTRAL_LABEL)] if joint else []
    )
    exact = cll.ExactMatchLevel("last_name", term_frequency_adjustments=True)
    if joint:
        exact.configure(label_for_charts=labels[1])
    return cl.CustomComparison(
        output_column_name="last_name",
        comparison_levels=[
            cll.NullLevel("last_name"),
            *top,
            exact,
            cll.JaroWinklerLevel("last_name", NAME_JW_THRESHOLDS[0]),
            custom_level(
                "(last_name_b_l IS NOT NULL OR last_name_b_r IS NOT NULL) AND ("
                "last_name_a_l = last_name_a_r OR last_name_a_l = last_name_b_r "
                "OR last_name_b_l = last_name_a_r OR last_name_b_l = last_name_b_r)",
                labels[-3],
            ),
            cll.JaroWinklerLevel("last_name", NAME_JW_THRESHOLDS[1]),
            cll.ElseLevel(),
        ],
        comparison_description="last name: exact (TF), fuzzy, shared part",
    )


def middle_name() -> ComparisonCreator:
    labels = [
        "exact (TF: a common middle name or a lone initial is worth less)",
        "initial matches",
        "missing on one side",
        "different",
    ]
    _register("middle_name", labels)
    return cl.CustomComparison(
        output_column_name="middle_name",
        comparison_levels=[
            custom_level(
                "middle_name_l IS NULL AND middle_name_r IS NULL", "missing on both", null=True
            ),
            cll.ExactMatchLevel("middle_name", term_frequency_adjustments=True).configure(
                label_for_charts=labels[0]
            ),
            custom_level(
                "substr(middle_name_l, 1, 1) = substr(middle_name_r, 1, 1) "
                "AND (length(middle_name_l) = 1 OR length(middle_name_r) = 1)",
                labels[1],
            ),
            custom_level("middle_name_l IS NULL OR middle_name_r IS NULL", labels[2]),
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
            cll.NullLevel("name_suffix").configure(
                label_for_charts="missing on one or both sides (neutral)"
            ),
            cll.ExactMatchLevel("name_suffix"),
            cll.ElseLevel().configure(label_for_charts=labels[1]),
        ],
        comparison_description="generational suffix; a mismatch counts against",
    )


#: Which DOB comparison a pair is scored on (exactly one, or none):
#:   both sides carry a public full date            -> ``dob``
#:   otherwise, both sides carry a sealed DOB token  -> ``dob_token``
#:   otherwise, both sides carry a birth year        -> ``birth_year``
#: The conditions are mutually exclusive, so one birthday is never counted
#: twice, and each comparison's m and u are conditional on its case (Splink
#: estimates them over the pairs where the comparison is not null).
BOTH_PUBLIC_FULL = "dob_l IS NOT NULL AND dob_r IS NOT NULL"
BOTH_TOKEN = "dob_token_l IS NOT NULL AND dob_token_r IS NOT NULL"
BOTH_YEAR = "birth_year_l IS NOT NULL AND birth_year_r IS NOT NULL"

@dataclass(frozen=True)
class DobLevel:
    """One agreement level of the full-DOB comparison, as SQL on public dates and on sealed tokens.

    The one list (:data:`DOB_LEVELS`) serves the plaintext comparison (here)
    and the sealed-only one (:mod:`voterolls.link.sealed`), so the two score
    the same facts under the same labels, in the same order (gamma values
    and saved models line up).
    """

    label: str
    #: on plaintext dates (``dob``, ``dob_swapped``)
    plain: str
    #: on the tokens a state sealed of the same facts (``dob``, ``dob_swapped``, ``dob_ym``, ``dob_md``)
    sealed: str


#: The full-DOB levels, most specific first (the else level "different" follows them).
DOB_LEVELS = (
    DobLevel("exact full date", "dob_l = dob_r", "dob_l = dob_r"),
    DobLevel("day and month transposed", "dob_swapped_l = dob_r", "dob_swapped_l = dob_r"),
    DobLevel(
        "same year and month", "year(dob_l) = year(dob_r) AND month(dob_l) = month(dob_r)", "dob_ym_l = dob_ym_r"
    ),
    DobLevel(
        "same month and day, different year",
        "month(dob_l) = month(dob_r) AND day(dob_l) = day(dob_r)",
        "dob_md_l = dob_md_r",
    ),
)
DOB_LABELS = [lv.label for lv in DOB_LEVELS] + ["different"]


def dob_comparison(*, sealed: bool, null_label: str, description: str) -> ComparisonCreator:
    """The full-DOB comparison from :data:`DOB_LEVELS`, on plaintext dates or on sealed tokens."""
    _register("dob", DOB_LABELS)
    return cl.CustomComparison(
        output_column_name="dob",
        comparison_levels=[
            custom_level(f"NOT ({BOTH_PUBLIC_FULL})", null_label, null=True),
            *(custom_level(lv.sealed if sealed else lv.plain, lv.label) for lv in DOB_LEVELS),
            cll.ElseLevel(),
        ],
        comparison_description=description,
    )


def dob() -> ComparisonCreator:
    return dob_comparison(
        sealed=False,
        null_label="not both full public dates",
        description="full date of birth, where both sides publish it",
    )


def dob_token() -> ComparisonCreator:
    labels = ["sealed DOB token exact", "different"]
    _register("dob_token", labels)
    return cl.CustomComparison(
        output_column_name="dob_token",
        comparison_levels=[
            custom_level(
                f"({BOTH_PUBLIC_FULL}) OR NOT ({BOTH_TOKEN})",
                "public dates compared instead, or no token",
                null=True,
            ),
            custom_level("dob_token_l = dob_token_r", labels[0]),
            cll.ElseLevel(),
        ],
        comparison_description="sealed full DOB (HMAC), where a side has no public full date",
    )


def birth_year() -> ComparisonCreator:
    labels = ["same birth year (a side has only the year)", "different"]
    _register("birth_year", labels)
    return cl.CustomComparison(
        output_column_name="birth_year",
        comparison_levels=[
            custom_level(
                f"({BOTH_PUBLIC_FULL}) OR ({BOTH_TOKEN}) OR NOT ({BOTH_YEAR})",
                "full dates compared instead, or no year",
                null=True,
            ),
            custom_level("birth_year_l = birth_year_r", labels[0]),
            cll.ElseLevel(),
        ],
        comparison_description="birth year, for pairs where a side publishes only the year",
    )


def ssn4_token() -> ComparisonCreator:
    labels = ["sealed SSN4 token exact", "different"]
    _register("ssn4_token", labels)
    return cl.CustomComparison(
        output_column_name="ssn4_token",
        comparison_levels=[
            cll.NullLevel("ssn4_token"),
            cll.ExactMatchLevel("ssn4_token"),
            cll.ElseLevel(),
        ],
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
            custom_level(
                "state_l <> state_r OR residence_zip5_l IS NULL OR residence_zip5_r IS NULL",
                "different states or missing (neutral)",
                null=True,
            ),
            custom_level(
                "residence_address_l = residence_address_r AND residence_zip5_l = residence_zip5_r",
                labels[0],
            ),
            cll.ExactMatchLevel("residence_zip5"),
            cll.ElseLevel(),
        ],
        comparison_description="residence within one state (not evidence across states)",
    )


def all_comparisons(joint_names: bool = False) -> list[ComparisonCreator]:
    """The model's comparisons, in the order the pairs table lists their gammas."""
    return [
        first_name(joint_names),
        last_name(joint_names),
        middle_name(),
        name_suffix(),
        dob(),
        dob_token(),
        birth_year(),
        ssn4_token(),
        gender(),
        address(),
    ]


#: Names of the gamma columns in pairs.parquet.
COMPARISON_NAMES = (
    "first_name",
    "last_name",
    "middle_name",
    "name_suffix",
    "dob",
    "dob_token",
    "birth_year",
    "ssn4_token",
    "gender",
    "address",
)


def is_joint_model(model: dict) -> bool:
    """Whether a saved model (settings dict) has the joint full-name levels."""
    return any(
        lv.get("label_for_charts") == FULL_NAME_LABEL
        for comp in model.get("comparisons", [])
        for lv in comp.get("comparison_levels", [])
    )
