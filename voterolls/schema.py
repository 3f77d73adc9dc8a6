"""The national schema: one typed layout every state's file is mapped into.

Every stage after the native readers speaks these Arrow schemas, so a field
means the same thing whichever state supplied it.  Codes are mapped to the
common vocabularies below *and* the state's original code is kept beside them
(``party`` and ``party_code``), because a mapping can be wrong and an auditor
must be able to see what the state actually sent.

Field-by-field documentation lives in docs/SCHEMA.md; keep the two in step.
"""

from __future__ import annotations

import pyarrow as pa

# --------------------------------------------------------------------------
# Vocabularies.  Each is the closed set of values the mapped column may take.
# --------------------------------------------------------------------------

#: How much of the date of birth a record carries.  ``full`` = day, month and
#: year; ``year`` = birth year only (the state publishes no more, or the
#: policy generalised it); ``none`` = nothing.
DOB_GRANULARITY = ("full", "year", "none")

GENDER = ("M", "F", "X", "U")  # X = non-binary / other, U = unknown / not recorded

#: Common party vocabulary.  States with no party registration get ``NPR``
#: (no party registration) rather than "unknown" so the two are not confused.
PARTY = ("DEM", "REP", "LIB", "GRN", "CST", "WFP", "UNA", "OTH", "NPR", "UNK")

#: Registration status.  ``cancelled`` covers removed / purged records that a
#: state still lists; ``pending`` covers incomplete applications still being
#: processed; ``denied`` an application the state refused (NC status ``D``),
#: which is not a registration at all and must never be counted as pending.
STATUS = ("active", "inactive", "cancelled", "pending", "denied", "unknown")

#: Statuses under which a record *is* a registration, the ONE definition the
#: statistics use (duplicates and double votes rest on these records only):
#: active, and inactive (an NVRA confirmation notice is pending, the person can
#: still vote).  ``unknown`` counts as live: a file that records no status (or a
#: code its layout does not know) lists its registrations.  Cancelled, denied and
#: pending records are the state's list maintenance at work: linkage still scores
#: them, the statistics report them apart.  Rule per state: docs/METHODS.md §2.5.
LIVE_STATUSES = ("active", "inactive", "unknown")


def live_status_sql(column: str = "status") -> str:
    """SQL predicate: the record's status makes it a live registration (:data:`LIVE_STATUSES`)."""
    values = ", ".join(f"'{s}'" for s in LIVE_STATUSES)
    return f"(coalesce({column}, 'unknown') IN ({values}))"


RACE = (
    "white",
    "black",
    "hispanic",
    "asian",
    "native_american",
    "pacific_islander",
    "multiracial",
    "other",
    "unknown",
)

#: Uniformed And Overseas Citizens Absentee Voting Act status.
UOCAVA = ("military", "overseas", "none", "unknown")

ELECTION_TYPE = ("general", "primary", "special", "runoff", "municipal", "other")

#: How a history row's ballot was cast.  The first six values are ballots the
#: state recorded as cast and counted (``provisional`` = a provisional ballot
#: that was counted; ``unknown`` = the state records that the person voted but
#: not how).  The last three are history rows that are NOT a counted vote, as
#: some states publish them: ``did_not_vote`` (FL ``N``, NC ``ELIGIBLE DID NOT
#: VOTE``), ``mail_not_counted`` (a mail / absentee ballot returned but not
#: counted: FL ``B``, ``L``) and ``provisional_not_counted`` (FL ``P``).
VOTE_METHOD = (
    "in_person",
    "early",
    "absentee",
    "mail",
    "provisional",
    "unknown",
    "did_not_vote",
    "mail_not_counted",
    "provisional_not_counted",
)

#: The ONE definition of a counted vote: a vote-history row is a ballot cast
#: and counted exactly when its ``vote_method`` is one of these (or NULL, read
#: as ``unknown``: a history row without a method is the state's record that
#: the person voted).  Every statistic that counts votes (turnout, double votes)
#: goes through :func:`counted_ballot_sql`; docs/METHODS.md lists the rule per state.
COUNTED_BALLOT_METHODS = ("in_person", "early", "absentee", "mail", "provisional", "unknown")


def counted_ballot_sql(column: str = "vote_method") -> str:
    """SQL predicate: the history row whose method is ``column`` is a counted ballot.

    ``column`` is a SQL expression (``"vote_method"``, ``"h.vote_method"``).
    """
    methods = ", ".join(f"'{m}'" for m in COUNTED_BALLOT_METHODS)
    return f"(coalesce({column}, 'unknown') IN ({methods}))"


VOCABULARIES: dict[str, tuple[str, ...]] = {
    "dob_granularity": DOB_GRANULARITY,
    "gender": GENDER,
    "party": PARTY,
    "status": STATUS,
    "race": RACE,
    "uocava": UOCAVA,
    "election_type": ELECTION_TYPE,
    "vote_method": VOTE_METHOD,
}

#: The 50 states + DC, in the order reports list them.
JURISDICTIONS = (
    "AK", "AL", "AR", "AZ", "CA", "CO", "CT", "DC", "DE", "FL", "GA", "HI", "IA",
    "ID", "IL", "IN", "KS", "KY", "LA", "MA", "MD", "ME", "MI", "MN", "MO", "MS",
    "MT", "NC", "ND", "NE", "NH", "NJ", "NM", "NV", "NY", "OH", "OK", "OR", "PA",
    "RI", "SC", "SD", "TN", "TX", "UT", "VA", "VT", "WA", "WI", "WV", "WY",
)  # fmt: skip

# --------------------------------------------------------------------------
# Registrations.
# --------------------------------------------------------------------------

_s = pa.string()

REGISTRATION_FIELDS: list[pa.Field] = [
    # --- identity of the record -------------------------------------------
    pa.field("state", _s, nullable=False, metadata={"doc": "USPS code of the state that holds the registration"}),
    pa.field("county", _s, metadata={"doc": "county code or name as the state writes it"}),
    pa.field("state_voter_id", _s, nullable=False, metadata={"doc": "the state's own statewide voter id (NC ncid, OH SOS_VOTERID, ...)"}),
    # --- name ---------------------------------------------------------------
    pa.field("last_name", _s, metadata={"doc": "upper case, accents folded, suffix removed"}),
    pa.field("first_name", _s, metadata={"doc": "upper case, accents folded"}),
    pa.field("middle_name", _s, metadata={"doc": "upper case; a lone letter is an initial"}),
    pa.field("name_suffix", _s, metadata={"doc": "JR, SR, II, III, IV, ... (split out of name fields when embedded)"}),
    pa.field("first_name_canonical", _s, metadata={"doc": "nickname-canonical first name (BOB -> ROBERT); equals first_name when no nickname applies"}),
    # --- date of birth ---------------------------------------------------------
    pa.field("dob", pa.date32(), metadata={"doc": "full date of birth; null unless dob_granularity = full"}),
    pa.field("birth_year", pa.int16(), metadata={"doc": "year of birth; present for full and year granularity"}),
    pa.field("dob_granularity", _s, nullable=False, metadata={"doc": "full | year | none"}),
    # --- demographics and codes ----------------------------------------------
    pa.field("gender", _s, metadata={"doc": "common vocabulary GENDER"}),
    pa.field("gender_code", _s, metadata={"doc": "state's original gender code"}),
    pa.field("party", _s, metadata={"doc": "common vocabulary PARTY"}),
    pa.field("party_code", _s, metadata={"doc": "state's original party code"}),
    pa.field("status", _s, metadata={"doc": "common vocabulary STATUS"}),
    pa.field("status_code", _s, metadata={"doc": "state's original status code"}),
    pa.field("status_reason", _s, metadata={"doc": "state's status reason text or code, where recorded"}),
    pa.field("race", _s, metadata={"doc": "common vocabulary RACE, where the state records it"}),
    pa.field("race_code", _s, metadata={"doc": "state's original race / ethnicity code(s)"}),
    pa.field("uocava", _s, metadata={"doc": "military / overseas / none / unknown"}),
    pa.field("registration_date", pa.date32(), metadata={"doc": "date of (latest) registration"}),
    # --- residence ------------------------------------------------------------
    pa.field("residence_address", _s, metadata={"doc": "standardised street line: number, street, unit; upper case"}),
    pa.field("residence_city", _s, metadata={"doc": "upper case"}),
    pa.field("residence_zip5", _s, metadata={"doc": "five-digit ZIP, repaired from 27517.0 / 27517-1234 forms"}),
    # --- contact (only where the state's policy makes it public) ------------
    pa.field("phone", _s, metadata={"doc": "digits only; dropped at ingest unless the policy allows it"}),
    pa.field("email", _s, metadata={"doc": "lower case; dropped at ingest unless the policy allows it"}),
    # --- sealed identifiers (HMAC-SHA256 under the consortium key) -----------
    pa.field("ssn4_token", _s, metadata={"doc": "keyed token of the last four SSN digits, made by the state (voterolls seal)"}),
    pa.field("dl_token", _s, metadata={"doc": "keyed token of the driver's licence number"}),
    pa.field("dob_token", _s, metadata={"doc": "keyed token of the full DOB where the law allows matching but not disclosure"}),
    pa.field("name_clk", _s, metadata={"doc": "base64 Bloom-filter encoding (CLK) of the name, for privacy-preserving fuzzy matching"}),
    # --- provenance -----------------------------------------------------------
    pa.field("source_file", _s, metadata={"doc": "sha256 of the native file the row came from"}),
    pa.field("source_line", pa.int64(), metadata={"doc": "1-based physical line of the row in that file"}),
]

REGISTRATION_SCHEMA = pa.schema(REGISTRATION_FIELDS)

# --------------------------------------------------------------------------
# Vote history: one row per (registration, election) with a vote recorded.
# --------------------------------------------------------------------------

VOTE_HISTORY_FIELDS: list[pa.Field] = [
    pa.field("state", _s, nullable=False),
    pa.field("state_voter_id", _s, nullable=False),
    pa.field("county", _s),
    pa.field("election_date", pa.date32(), nullable=False),
    pa.field("election_type", _s, metadata={"doc": "common vocabulary ELECTION_TYPE"}),
    pa.field("election_desc", _s, metadata={"doc": "the state's election label"}),
    pa.field("vote_method", _s, metadata={"doc": "common vocabulary VOTE_METHOD"}),
    pa.field("vote_method_code", _s, metadata={"doc": "state's original method code"}),
    pa.field("party_ballot", _s, metadata={"doc": "party ballot taken in a primary, where recorded"}),
    pa.field("source_file", _s),
    pa.field("source_line", pa.int64()),
]

VOTE_HISTORY_SCHEMA = pa.schema(VOTE_HISTORY_FIELDS)

#: Fields that identify a person and must never appear in logs, errors,
#: aggregate reports or API responses to callers without row-level rights.
PERSONAL_FIELDS = (
    "last_name",
    "first_name",
    "middle_name",
    "first_name_canonical",
    "dob",
    "residence_address",
    "phone",
    "email",
)

#: The fields the 2017 Presidential Advisory Commission letter asked for.  The
#: request tracker keeps a row for every one of them, supplied or not.
REQUESTED_2017_FIELDS = (
    "full_name",
    "address",
    "dob",
    "party",
    "ssn4",
    "vote_history_since_2006",
    "status",
    "cancellation_reason",
    "felony_convictions",
    "other_state_registrations",
    "military_status",
    "overseas_status",
    "phone",
    "email",
)


def sql_type(t: pa.DataType) -> str:
    """The DuckDB type name for an Arrow type of the national schema."""
    if pa.types.is_date32(t):
        return "DATE"
    if pa.types.is_int16(t):
        return "SMALLINT"
    if pa.types.is_int64(t):
        return "BIGINT"
    if pa.types.is_integer(t):
        return "INTEGER"
    if pa.types.is_floating(t):
        return "DOUBLE"
    if pa.types.is_boolean(t):
        return "BOOLEAN"
    return "VARCHAR"


def empty_registrations() -> pa.Table:
    """A zero-row table with the registration schema (handy for unions and tests)."""
    return REGISTRATION_SCHEMA.empty_table()


def empty_vote_history() -> pa.Table:
    return VOTE_HISTORY_SCHEMA.empty_table()


def conform(table: pa.Table, schema: pa.Schema) -> pa.Table:
    """Return ``table`` with exactly ``schema``'s columns, in order.

    Missing columns are added as nulls (a state that does not supply a field
    is not an error), extra columns are dropped, types are cast.  Raises
    ``ValueError`` naming the column if a cast is impossible.
    """
    n = table.num_rows
    arrays = []
    for field in schema:
        if field.name in table.column_names:
            col = table.column(field.name)
            if col.type != field.type:
                try:
                    col = col.cast(field.type)
                except (pa.ArrowInvalid, pa.ArrowNotImplementedError) as exc:
                    raise ValueError(f"column {field.name!r} cannot be cast to {field.type}") from exc
            arrays.append(col)
        else:
            arrays.append(pa.nulls(n, type=field.type))
    return pa.Table.from_arrays(arrays, schema=schema)
