"""Linkage of sealed-only deliveries: the same model, with tokens and Bloom filters for plaintext.

``voterolls link --sealed-only`` runs the whole of :func:`voterolls.link.run.link_registrations`
(training, prior, pairs, clusters) on an input built from keyed tokens and
name encodings only.  The trick that keeps one pipeline: every column the
plaintext model blocks or trains on by *equality* keeps its name and
becomes a 63-bit hash of the corresponding token (:func:`compact_id_sql`), so

* ``dob``            <- token of the full date where the date is public
                        (``dob_granularity = 'full'``); ``dob_token`` the same
                        token on every row that has one, so a date the
                        state's policy withholds but the state sealed is
                        compared for equality by the plaintext ``dob_token``
                        comparison, as a sidecar's would be; ``dob_swapped`` the token of
                        the date with day and month exchanged (the state
                        seals it under the date domain, so it equals the
                        other side's date token), ``dob_ym`` / ``dob_md`` the
                        year-month and month-day tokens
* ``middle_initial`` <- token of the middle name's first letter (the
                        "initial agrees with the name" level)
* ``birth_year``     <- birth-year token; ``first_name_canonical`` <- token
                        of the canonical first name; ``last_name_a/_b`` <-
                        tokens of the surname parts; ``name_suffix``,
                        ``residence_zip5``, ``ssn4_token`` likewise
* ``first_name``, ``last_name``, ``middle_name`` <- a hash of the field's Bloom
                        filter (identical names give identical filters, so
                        the exact levels and their term frequencies work on
                        the filter's frequency)
* ``bk_*``           <- capped from the state's keyed coarse keys (base and
                        refinement token), same cap as plaintext

and the blocking rules, EM sessions, prior estimate and pair export are the
plaintext ones unchanged.  Only the name and DOB comparisons differ
(:func:`sealed_comparisons`): fuzzy name levels are Dice similarity of the
Bloom filters, ``2 |A & B| / (|A| + |B|)``, computed in DuckDB as
``bit_count`` of the AND of the filters cast to BIT (the filters travel as
64-byte BLOBs; each side's popcount is precomputed).

Gamma columns keep the plaintext names, so pairs.parquet has the contract's
shape and estimates, lists and the report read it as they are.
"""

from __future__ import annotations

import duckdb
import splink.comparison_level_library as cll
import splink.comparison_library as cl
from splink import SettingsCreator
from splink.internals.comparison_creator import ComparisonCreator

from voterolls.errors import UserError
from voterolls.link.blocking import create_capped_keys, prediction_rules
from voterolls.link.comparisons import (
    DOB_LABELS,
    address,
    birth_year,
    custom_level,
    dob_comparison,
    dob_token,
    gender,
    level_labels,
    ssn4_token,
)
from voterolls.link.prepare import compact_id_sql, one_row_per_registration

#: Dice thresholds of the fuzzy name levels.  Bigram Dice of one substituted
#: letter is (L-1)/(L+1) for a name of L letters (0.71 at six letters), a
#: transposition (L-2)/(L+1); filter collisions add a little.
DICE_THRESHOLDS = (0.8, 0.65, 0.5)
#: Dice at or above which a lone middle initial agrees with a full middle name, for
#: deliveries without ``middle_initial_token`` (they share the bigram " X" of the
#: initial, but a name *ending* in X shares "X " and passes too: measured as the main
#: source of the no-DOB class's gap to plaintext, hence the token).
INITIAL_DICE = 0.15

NAME_FILTERS = ("first_name", "middle_name", "last_name")

#: Sealed capped keys: (base token column, refinement token column), capped as in plaintext.
SEALED_CAPPED_KEYS: dict[str, tuple[list[str], list[str]]] = {
    "bk_sx_year_init": (["bk_sx_year_init_0"], ["bk_sx_year_init_1"]),
    "bk_name": (["bk_name_0"], ["bk_name_1"]),
    "bk_last_year_sex": (["bk_last_year_sex_0"], ["bk_last_year_sex_1"]),
}
KEY_ONLY_COLUMNS = tuple(c for base, ref in SEALED_CAPPED_KEYS.values() for c in (*base, *ref))

#: gamma value -> label for the sealed comparisons that differ from plaintext.
SEALED_LEVELS: dict[str, dict[int, str]] = {}


def _labels(name: str, labels: list[str]) -> None:
    SEALED_LEVELS[name] = level_labels(labels)


def dice_sql(col: str) -> str:
    """Dice similarity of the ``{col}_bf`` Bloom filters of a pair (DuckDB SQL)."""
    return (
        f"(2.0 * bit_count(CAST({col}_bf_l AS BIT) & CAST({col}_bf_r AS BIT)) "
        f"/ greatest({col}_bf_n_l + {col}_bf_n_r, 1))"
    )


def first_name() -> ComparisonCreator:
    labels = ["same encoding (TF)", "same canonical-name token (nickname)"]
    labels += [f"Dice >= {t}" for t in DICE_THRESHOLDS] + ["different"]
    _labels("first_name", labels)
    return cl.CustomComparison(
        output_column_name="first_name",
        comparison_levels=[
            cll.NullLevel("first_name"),
            cll.ExactMatchLevel("first_name", term_frequency_adjustments=True),
            custom_level("first_name_canonical_l = first_name_canonical_r", labels[1]),
            *[custom_level(f"{dice_sql('first_name')} >= {t}", f"Dice >= {t}") for t in DICE_THRESHOLDS],
            cll.ElseLevel(),
        ],
        comparison_description="first name from Bloom filters: exact (TF), nickname token, Dice",
    )


def last_name() -> ComparisonCreator:
    t0, t1, t2 = DICE_THRESHOLDS
    labels = [
        "same encoding (TF)",
        f"Dice >= {t0}",
        "shares a surname part token (hyphenated / double surname)",
        f"Dice >= {t1}",
        f"Dice >= {t2}",
        "different (includes a changed surname)",
    ]
    _labels("last_name", labels)
    return cl.CustomComparison(
        output_column_name="last_name",
        comparison_levels=[
            cll.NullLevel("last_name"),
            cll.ExactMatchLevel("last_name", term_frequency_adjustments=True),
            custom_level(f"{dice_sql('last_name')} >= {t0}", labels[1]),
            custom_level(
                "(last_name_b_l IS NOT NULL OR last_name_b_r IS NOT NULL) AND ("
                "last_name_a_l = last_name_a_r OR last_name_a_l = last_name_b_r "
                "OR last_name_b_l = last_name_a_r OR last_name_b_l = last_name_b_r)",
                labels[2],
            ),
            custom_level(f"{dice_sql('last_name')} >= {t1}", labels[3]),
            custom_level(f"{dice_sql('last_name')} >= {t2}", labels[4]),
            cll.ElseLevel(),
        ],
        comparison_description="last name from Bloom filters: exact (TF), Dice, shared part token",
    )


def middle_name() -> ComparisonCreator:
    labels = [
        "same encoding (TF)",
        "initial agrees with the name (initial tokens; Dice where a delivery has none)",
        "missing on one side",
        "different",
    ]
    _labels("middle_name", labels)
    return cl.CustomComparison(
        output_column_name="middle_name",
        comparison_levels=[
            custom_level("middle_name_l IS NULL AND middle_name_r IS NULL", "missing on both", null=True),
            cll.ExactMatchLevel("middle_name", term_frequency_adjustments=True),
            custom_level(
                "(middle_is_initial_l OR middle_is_initial_r) AND coalesce("
                "middle_initial_l = middle_initial_r, "
                f"{dice_sql('middle_name')} >= {INITIAL_DICE})",
                labels[1],
            ),
            custom_level("middle_name_l IS NULL OR middle_name_r IS NULL", labels[2]),
            cll.ElseLevel(),
        ],
        comparison_description="middle name from Bloom filters: exact (TF), initial, one side missing",
    )


def name_suffix() -> ComparisonCreator:
    _labels("name_suffix", ["same suffix token", "different suffix (JR vs SR)"])
    return cl.CustomComparison(
        output_column_name="name_suffix",
        comparison_levels=[
            cll.NullLevel("name_suffix"),
            cll.ExactMatchLevel("name_suffix"),
            cll.ElseLevel(),
        ],
        comparison_description="generational suffix token; a mismatch counts against",
    )


def dob() -> ComparisonCreator:
    """The plaintext DOB levels (:data:`voterolls.link.comparisons.DOB_LEVELS`), each on a token the state sealed."""
    _labels("dob", DOB_LABELS)
    return dob_comparison(
        sealed=True,
        null_label="not both full dates",
        description="full DOB tokens: exact, transposed, same year-month, same month-day",
    )


def sealed_comparisons() -> list[ComparisonCreator]:
    """Same output names and order as :func:`voterolls.link.comparisons.all_comparisons`."""
    return [
        first_name(),
        last_name(),
        middle_name(),
        name_suffix(),
        dob(),
        dob_token(),
        birth_year(),
        ssn4_token(),
        gender(),
        address(),
    ]


def sealed_settings_creator() -> SettingsCreator:
    from voterolls.link.settings import model_settings

    return model_settings(sealed_comparisons(), prediction_rules())


#: Columns of the workspace a sealed-only input needs (besides the national schema's).
SEALED_INPUT_COLUMNS = (
    "first_name_bf", "middle_name_bf", "last_name_bf", "middle_is_initial",
    "dob_swapped_token", "dob_ym_token", "dob_md_token", "birth_year_token", "zip_token",
    "suffix_token", "first_canonical_token", "last_part_a_token", "last_part_b_token",
    *KEY_ONLY_COLUMNS,
)  # fmt: skip


def sealed_select_sql(source: str, *, has_initial: bool = True) -> str:
    """SELECT building the linkage input of sealed-only registrations (no plaintext read).

    ``has_initial``: the deliveries carry ``middle_initial_token`` (deliveries sealed
    before it existed do not; their initial level falls back to the filters' Dice)."""
    h = compact_id_sql
    bf = lambda c: f"from_base64({c}_bf)"  # noqa: E731
    filters = ",\n        ".join(
        f"{bf(c)} AS {c}_bf, bit_count(CAST({bf(c)} AS BIT)) AS {c}_bf_n, {h(f'{c}_bf')} AS {c}"
        for c in NAME_FILTERS
    )
    return f"""
    SELECT
        "state" || ':' || "state_voter_id"            AS unique_id,
        "state", "state_voter_id", "dob_granularity",
        {filters},
        {h("first_canonical_token")}                   AS first_name_canonical,
        coalesce(middle_is_initial, false)             AS middle_is_initial,
        {h("suffix_token")}                            AS name_suffix,
        {h("middle_initial_token") if has_initial else "NULL::BIGINT"} AS middle_initial,
        CASE WHEN dob_granularity = 'full' THEN {h("dob_token")} END AS dob,
        {h("dob_swapped_token")}                       AS dob_swapped,
        {h("dob_ym_token")}                            AS dob_ym,
        {h("dob_md_token")}                            AS dob_md,
        {h("birth_year_token")}                        AS birth_year,
        {h("dob_token")}                               AS dob_token,
        CASE WHEN upper(gender) IN ('M', 'F') THEN upper(gender) END AS gender,
        NULL::BIGINT                                   AS residence_address,
        {h("zip_token")}                               AS residence_zip5,
        {h("ssn4_token")}                              AS ssn4_token,
        {h("last_part_a_token")}                       AS last_name_a,
        {h("last_part_b_token")}                       AS last_name_b,
        {", ".join(KEY_ONLY_COLUMNS)}
    FROM {source}
    """


def prepare_sealed_input(
    con: duckdb.DuckDBPyConnection,
    source: str = "registrations",
    target: str = "link_input",
    *,
    block_cap: int | None = None,
    capped_dropped: dict[str, int] | None = None,
) -> int:
    """Create table ``target`` from sealed-only registrations; same contract as
    :func:`voterolls.link.prepare.prepare_input`."""
    from voterolls.link.blocking import DEFAULT_BLOCK_CAP

    con.execute("SET lambda_syntax='ENABLE_SINGLE_ARROW'")
    present = {r[0] for r in con.execute(f"DESCRIBE SELECT * FROM {source}").fetchall()}
    missing = [c for c in SEALED_INPUT_COLUMNS if c not in present]
    if missing:
        raise UserError(
            "the workspace holds no sealed-only deliveries (no " + missing[0] + " column); "
            "ingest them with `voterolls ingest-sealed`",
            field=missing[0],
        )
    con.execute(
        f"CREATE OR REPLACE TEMP TABLE _link_sealed AS "
        f"{sealed_select_sql(source, has_initial='middle_initial_token' in present)}"
    ).fetchall()
    dropped = create_capped_keys(
        con,
        "_link_sealed",
        target,
        block_cap or DEFAULT_BLOCK_CAP,
        drop=KEY_ONLY_COLUMNS,
        keys=SEALED_CAPPED_KEYS,
    )
    if capped_dropped is not None:
        capped_dropped.update(dropped)
    con.execute("DROP TABLE IF EXISTS _link_sealed").fetchall()
    return one_row_per_registration(con, target)


__all__ = [
    "DICE_THRESHOLDS",
    "SEALED_LEVELS",
    "dice_sql",
    "prepare_sealed_input",
    "sealed_comparisons",
    "sealed_settings_creator",
]
