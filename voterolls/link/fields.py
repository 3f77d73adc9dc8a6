"""Which fields the linkage input actually carries, and what that allows.

The model was first shaped to the fields this project's generator always
has (full names with middle names, DOB, gender).  Real deliveries differ: a
FEBRL-style extract has no middle name and no gender, some states send
middle initials only, a third of the states publish no DOB, a sealed-only
consortium sends tokens and little else.  Training sessions and blocking
rules that block on an absent field produce no pairs at all (Splink then
raises), so both are chosen from a :class:`FieldProfile` measured on the
prepared input - one aggregate query, counts only.

Comparisons are not dropped: a comparison whose field is absent is "not
comparable" (gamma -1, weight 0) on every pair, which is what
Fellegi-Sunter does with a missing field, and the pairs contract keeps one
``gamma_<name>`` per comparison whatever the input.
"""

from __future__ import annotations

from dataclasses import dataclass

#: Fields the profile counts (columns of the prepared link input).
PROFILED = (
    "first_name",
    "first_name_canonical",
    "last_name",
    "middle_name",
    "name_suffix",
    "dob",
    "birth_year",
    "dob_token",
    "ssn4_token",
    "gender",
    "residence_address",
    "residence_zip5",
)

#: A field blocks a *training* session only if at least this share of the
#: registrations carries it: a session blocking on a field 1% of records have
#: would train on a sliver of the data (or on nothing).
TRAINING_MIN_SHARE = 0.05
#: The middle name is a *refinement* of a name block (pairs where one side
#: lacks it are excluded), so it is used only where most records carry one.
MIDDLE_MIN_SHARE = 0.3


@dataclass(frozen=True)
class FieldProfile:
    """Non-null counts per field of the link input, and the share of middle names that are initials."""

    registrations: int
    present: dict[str, int]
    middle_initials: int = 0

    @classmethod
    def complete(cls) -> FieldProfile:
        """Every field on every record (the shape of a saved model's defaults)."""
        return cls(registrations=1, present=dict.fromkeys(PROFILED, 1))

    def has(self, field: str) -> bool:
        return self.present.get(field, 0) > 0

    def share(self, field: str) -> float:
        return self.present.get(field, 0) / self.registrations if self.registrations else 0.0

    def trains_on(self, field: str) -> bool:
        floor = MIDDLE_MIN_SHARE if field == "middle_name" else TRAINING_MIN_SHARE
        return self.share(field) >= floor

    @property
    def middle_name_kind(self) -> str:
        """'none', 'initials' (every middle name is one letter) or 'full'."""
        n = self.present.get("middle_name", 0)
        if n == 0:
            return "none"
        return "initials" if self.middle_initials == n else "full"

    def as_dict(self) -> dict:
        return {
            "registrations": self.registrations,
            # [field, share] pairs, not a dict keyed by field: reports are
            # checked for value-like keys ("dob": ...) to keep values out.
            "share_carried": [[f, round(self.share(f), 4)] for f in PROFILED],
            "middle_name": self.middle_name_kind,
        }


#: How a middle initial is recognised: by its length in plaintext; a sealed-only
#: input holds a Bloom filter there and says so in its own ``middle_is_initial`` column.
PLAIN_INITIAL = "length(middle_name) = 1"
SEALED_INITIAL = "middle_is_initial"


def profile_sql(table: str, initial: str = PLAIN_INITIAL) -> str:
    """One aggregate over ``table`` (DuckDB and Spark SQL alike): count, non-null per field, initials."""
    counts = ", ".join(f"count({f})" for f in PROFILED)
    return f"SELECT count(*), {counts}, count(CASE WHEN {initial} THEN 1 END) FROM {table}"


def profile_from_row(row) -> FieldProfile:
    """:class:`FieldProfile` from the one row :func:`profile_sql` returns."""
    row = tuple(row)
    present = {f: int(v) for f, v in zip(PROFILED, row[1:-1], strict=True)}
    return FieldProfile(registrations=int(row[0]), present=present, middle_initials=int(row[-1]))


def profile_input(con, table: str) -> FieldProfile:
    """Count the non-null values of each :data:`PROFILED` column of ``table`` (DuckDB; one scan)."""
    columns = {r[0] for r in con.execute(f"DESCRIBE {table}").fetchall()}
    initial = SEALED_INITIAL if SEALED_INITIAL in columns else PLAIN_INITIAL
    return profile_from_row(con.execute(profile_sql(table, initial)).fetchall()[0])
