"""Residence address, ZIP, city, phone and e-mail standardisation as DuckDB SQL.

The same street is written ``123 North Main Street, Apt. 4`` by one state and
``123 N MAIN ST APT 4`` by another.  Linkage compares strings, so addresses are
brought to the USPS Publication 28 style: upper case, accents folded,
punctuation removed, spaces collapsed, street suffixes, directionals and unit
designators abbreviated word by word (``STREET`` -> ``ST``, ``NORTH`` -> ``N``,
``APARTMENT`` -> ``APT``).  Word replacement runs as one ``list_transform``
over the split words, so its cost does not grow with the size of the table.

ZIP codes arrive as ``27517.0`` (a spreadsheet made it a float), ``27517-1234``
(ZIP+4), ``275171234`` or ``2134`` (a leading zero lost: 02134); all are
repaired to five digits, and anything else becomes NULL.  Both are counted.
"""

from __future__ import annotations

from voterolls.normalize.names import fold_sql
from voterolls.sql import literal as _lit

#: Whole-word replacements (USPS Pub. 28 C1 street suffixes, directionals, unit designators).
ADDRESS_WORDS: dict[str, str] = {
    # street suffixes
    "ALLEY": "ALY", "AVENUE": "AVE", "AV": "AVE", "BOULEVARD": "BLVD", "CIRCLE": "CIR",
    "COURT": "CT", "COVE": "CV", "CRESCENT": "CRES", "CROSSING": "XING", "DRIVE": "DR",
    "EXPRESSWAY": "EXPY", "EXTENSION": "EXT", "FREEWAY": "FWY", "HEIGHTS": "HTS",
    "HIGHWAY": "HWY", "HOLLOW": "HOLW", "JUNCTION": "JCT", "LANE": "LN", "LOOP": "LOOP",
    "MOUNT": "MT", "MOUNTAIN": "MTN", "PARKWAY": "PKWY", "PIKE": "PIKE", "PLACE": "PL",
    "PLAZA": "PLZ", "POINT": "PT", "RIDGE": "RDG", "ROAD": "RD", "ROUTE": "RTE",
    "SQUARE": "SQ", "STREET": "ST", "STR": "ST", "TERRACE": "TER", "TRACE": "TRCE",
    "TRAIL": "TRL", "TURNPIKE": "TPKE", "VIEW": "VW", "VILLAGE": "VLG", "WAY": "WAY",
    # directionals
    "NORTH": "N", "SOUTH": "S", "EAST": "E", "WEST": "W", "NORTHEAST": "NE",
    "NORTHWEST": "NW", "SOUTHEAST": "SE", "SOUTHWEST": "SW",
    # unit designators
    "APARTMENT": "APT", "SUITE": "STE", "BUILDING": "BLDG", "FLOOR": "FL", "ROOM": "RM",
    "DEPARTMENT": "DEPT", "UNIT": "UNIT",
}  # fmt: skip


def _words_pattern() -> str:
    alts = "|".join(k for k, v in ADDRESS_WORDS.items() if k != v)
    return f"(^| )({alts})( |$)"


def clean_address_sql(expr: str) -> str:
    """Standardised street line (see module docstring); NULL when nothing is left.

    (``nullif`` evaluates its argument twice: projections use
    :func:`clean_address_text_sql` and ``nullif`` the column a stage later.)
    """
    return f"nullif({clean_address_text_sql(expr)}, '')"


def clean_address_text_sql(expr: str) -> str:
    """:func:`clean_address_sql` before empty becomes NULL.

    Fast path: a line that is already upper-case words of letters and digits
    and holds no word to abbreviate (one RE2 alternation) is kept as is.
    """
    fast = (
        f"regexp_full_match({expr}, '[A-Z0-9]+( [A-Z0-9]+)*') "
        f"AND NOT regexp_matches({expr}, '{_words_pattern()}')"
    )
    return f"(CASE WHEN {fast} THEN {expr} ELSE {_slow_clean_address_sql(expr)} END)"


def _slow_clean_address_sql(expr: str) -> str:
    e = fold_sql(expr)
    e = f"regexp_replace({e}, '[''.,`’]', '', 'g')"
    e = f"regexp_replace({e}, '#', ' # ', 'g')"
    e = f"regexp_replace({e}, '[^A-Z0-9#/ -]+', ' ', 'g')"
    e = f"regexp_replace({e}, ' *- *', '-', 'g')"
    e = f"trim(regexp_replace({e}, '  +', ' ', 'g'))"
    whens = " ".join(
        f"WHEN {_lit(k)} THEN {_lit(v)}" for k, v in ADDRESS_WORDS.items() if k != v
    )
    words = f"list_transform(string_split({e}, ' '), lambda w: CASE w {whens} ELSE w END)"
    return f"array_to_string({words}, ' ')"


def clean_city_sql(expr: str) -> str:
    """City: upper, accents folded, punctuation removed, spaces collapsed; NULL when nothing is left."""
    return f"nullif({clean_city_text_sql(expr)}, '')"


def clean_city_text_sql(expr: str) -> str:
    """:func:`clean_city_sql` before empty becomes NULL (fast path when already clean)."""
    return f"(CASE WHEN regexp_full_match({expr}, '[A-Z]+( [A-Z]+)*') THEN {expr} ELSE {_slow_clean_city_sql(expr)} END)"


def _slow_clean_city_sql(expr: str) -> str:
    e = fold_sql(expr)
    e = f"regexp_replace({e}, '[''.`’]', '', 'g')"
    e = f"regexp_replace({e}, '[^A-Z -]+', ' ', 'g')"
    e = f"regexp_replace({e}, '  +', ' ', 'g')"
    return f"trim({e})"


def zip_stage_sql(expr: str) -> str:
    """Intermediate ZIP text: trimmed, ``.0`` float tail and ``-plus4`` removed."""
    return f"split_part(regexp_replace(trim(CAST({expr} AS VARCHAR)), '\\.0+$', ''), '-', 1)"


def zip5_sql(stage: str) -> str:
    """Five-digit ZIP from :func:`zip_stage_sql` output; NULL when not repairable."""
    return (
        f"(CASE WHEN regexp_full_match({stage}, '[0-9]{{5}}') AND {stage} <> '00000' THEN {stage} "
        f"ELSE {_slow_zip5_sql(stage)} END)"
    )


def _slow_zip5_sql(stage: str) -> str:
    fixed = (
        f"(CASE WHEN regexp_full_match({stage}, '[0-9]{{9}}') THEN left({stage}, 5) "
        f"WHEN regexp_full_match({stage}, '[0-9]{{3,4}}') THEN lpad({stage}, 5, '0') "
        f"ELSE {stage} END)"
    )
    return (
        f"(CASE WHEN regexp_full_match({fixed}, '[0-9]{{5}}') AND {fixed} <> '00000' "
        f"THEN {fixed} END)"
    )


def phone_sql(expr: str) -> str:
    """Digits only; a leading US country code 1 on 11 digits removed; NULL when no digits."""
    return phone_finish_sql(phone_digits_sql(expr))


def phone_digits_sql(expr: str) -> str:
    """Stage one of :func:`phone_sql`: the digits (computed once, then used four times)."""
    return f"regexp_replace(CAST({expr} AS VARCHAR), '[^0-9]', '', 'g')"


def phone_finish_sql(d: str) -> str:
    """Stage two of :func:`phone_sql` over the digits column ``d``."""
    return (
        f"nullif(CASE WHEN length({d}) = 11 AND left({d}, 1) = '1' THEN substr({d}, 2) "
        f"ELSE {d} END, '')"
    )


def email_sql(expr: str) -> str:
    """Lower case, trimmed; NULL unless it looks like local@domain."""
    return email_finish_sql(email_text_sql(expr))


def email_text_sql(expr: str) -> str:
    """Stage one of :func:`email_sql`: trimmed, lower case."""
    return f"lower(trim(CAST({expr} AS VARCHAR)))"


def email_finish_sql(e: str) -> str:
    """Stage two of :func:`email_sql` over the stage-one column ``e``."""
    return f"(CASE WHEN regexp_full_match({e}, '[^@ ]+@[^@ ]+\\.[^@ ]+') THEN {e} END)"
