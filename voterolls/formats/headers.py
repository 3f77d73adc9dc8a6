"""Header-driven reading: a file's own header decides where each column is.

States rename, reorder, add and drop columns between years (NC ``midl_name``
/ ``middle_name``, CO ``MAIL_ADDR1`` / ``MAILING_ADDRESS_1``, OH files with
more election columns or a leading pandas index column).  A layout therefore
says *what* its columns mean; the file's header says *where* they are.
:func:`map_header` matches header names to a layout's columns by
normalised name (case, spaces and punctuation ignored), then through the
column's own ``aliases`` and the national alias lists below, and builds an
*effective* layout: the file's columns in file order, each carrying the
matched column's target, date format and codes.  The line engine and the
fast path read that effective layout unchanged.

Extra columns are kept unmapped (and listed); a missing optional column is
NULL; a missing *required* column (``FileLayout.required``) is an error that
names it and the closest header found.  The alias lists come from the
states' published layouts across years (NC ncvoter 2008-2024, CO CE-VR011,
OH SWVF, WA VRDB 2016/2024, GA, MI QVF, TX, VA, OK, WI) and common vendor /
pandas spellings; they are also what the ``generic`` layout uses to read a
CSV of a state without a shipped layout.
"""

from __future__ import annotations

import difflib
import re
from dataclasses import dataclass, field
from functools import cache

from voterolls.formats.registry import formats
from voterolls.formats.spec import Column, FileLayout

#: National target -> header spellings seen in published layouts (compared normalised).
TARGET_ALIASES: dict[str, tuple[str, ...]] = {
    "state_voter_id": (
        "state_voter_id", "statevoterid", "voter_id", "voterid", "sos_voterid", "ncid", "vuid",
        "registration_number", "voter_registration_number", "voter_reg_number", "voter_reg_num_state",
        "voter_identification_number", "identification_number", "registrant_id", "regnum",
        "registration_id", "voter_number", "id_number", "voterregnumber", "lvrn",
        "voter_file_id", "state_id", "sos_id", "vrn", "unique_id", "id_voter", "voter_reg_id",
    ),
    "county": (
        "county", "county_desc", "county_name", "countyname", "county_code", "countycode",
        "county_number", "localityname", "locality", "jurisdiction_county",
    ),
    "last_name": ("last_name", "lastname", "lname", "surname", "name_last", "last", "voter_last_name", "family_name"),
    "first_name": ("first_name", "firstname", "fname", "given_name", "name_first", "first", "voter_first_name"),
    "middle_name": (
        "middle_name", "midl_name", "middlename", "mname", "middle", "name_middle", "middle_maiden_name",
        "middle_initial", "voter_middle_name", "mid_init", "middle_init",
    ),
    "name_suffix": (
        "name_suffix", "suffix", "name_sufx_cd", "name_suffix_lbl", "namesuffix", "suffix_name",
        "name_suffix_cd", "sfx", "suffix_code",
    ),
    "dob": ("dob", "date_of_birth", "birth_date", "birthdate", "birth_dt", "dateofbirth", "birthdt"),
    "birth_year": ("birth_year", "birthyear", "year_of_birth", "yob", "yearofbirth", "birth_yr"),
    "gender": ("gender", "gender_code", "sex", "sex_code", "gender_cd", "sex_cd"),
    "party": (
        "party", "party_cd", "party_code", "party_affiliation", "partyaffiliation", "political_party",
        "polital_aff", "party_affil", "party_id", "partycode", "cd_party",
    ),
    "status": ("status", "voter_status", "status_cd", "status_code", "statuscode", "voter_status_code", "voter_status_type_code"),
    "status_reason": ("status_reason", "reason_cd", "voter_status_reason", "reason", "status_reason_code"),
    "race": ("race", "race_code", "racecode", "race_cd", "ethnicity"),
    "uocava": ("uocava", "uocava_status_code", "uocava_code", "military_overseas"),
    "registration_date": (
        "registration_date", "registr_dt", "reg_date", "registrationdate", "date_registered",
        "effective_date_of_registration", "original_registration", "application_date", "registration_dt",
        "date_of_registration", "regdate", "date_reg", "dt_accept", "reg_dt",
    ),
    "residence_address": (
        "residence_address", "res_street_address", "residential_address", "residential_address1",
        "residence_address1", "residential_address_1", "address", "address1", "address_1", "street_address",
        "res_address", "residence_street_address", "home_address",
    ),
    "residence_city": ("residence_city", "res_city_desc", "residential_city", "city", "res_city", "regcity", "residence_city_name", "home_city"),
    "residence_zip5": (
        "residence_zip5", "zip_code", "zip", "zipcode", "residential_zip", "residential_zip_code",
        "residence_zipcode", "res_zip", "regzipcode", "zip5", "postal_code", "residence_zip", "home_zipcode", "home_zip",
    ),
    "phone": ("phone", "phone_number", "full_phone_number", "phone_num", "telephone", "phonenumber"),
    "email": ("email", "email_address", "emailaddress", "e_mail"),
}  # fmt: skip

#: Residence address parts (house number, street) for files without a one-column address.
PART_ALIASES: dict[str, tuple[str, ...]] = {
    "number": ("house_num", "house_number", "home_no", "street_number", "street_no", "regstnum", "stnum",
               "residence_house_number", "permanent_house_number", "res_house_number", "house_no"),
    "street": ("street_name", "home_street", "regstname", "residence_street_name", "permanent_street_name",
               "res_street_name", "street"),
}  # fmt: skip

#: The least a header must carry for the ``generic`` mapping to read it as registrations.
GENERIC_REQUIRED = ("state_voter_id", "last_name", "first_name")

#: Header names a pandas (or spreadsheet) re-save gives a leading index column.
_INDEX_NAMES = {"", "unnamed0", "index", "rownum", "rowid"}


def norm(name: str) -> str:
    """Header name as compared: case, spaces, punctuation and a BOM ignored."""
    return re.sub(r"[^0-9a-z]", "", name.replace("\ufeff", "").strip().strip('"').lower())


_ALIAS_TARGET: dict[str, str] = {}
for _t, _names in TARGET_ALIASES.items():
    for _n in _names:
        _ALIAS_TARGET.setdefault(norm(_n), _t)


def alias_target(name: str) -> str | None:
    """The national target a header name is a known spelling of (None when unknown)."""
    return _ALIAS_TARGET.get(norm(name))


@dataclass(frozen=True)
class HeaderMapping:
    """How one file's header maps onto a layout (aggregates only: names, never values)."""

    layout: FileLayout  #: the effective layout: the file's columns in file order
    header: tuple[str, ...]  #: the header names as written
    #: (file column, layout column, national target or None), in file order
    mapped: tuple[tuple[str, str, str | None], ...]
    unmapped: tuple[str, ...]  #: file columns no layout column claims (ignored)
    missing: tuple[str, ...]  #: layout columns the file lacks (their targets read as NULL)
    #: required layout columns the file lacks, each with the closest header name found
    missing_required: tuple[tuple[str, str | None], ...]
    election_columns: tuple[str, ...] = ()  #: Ohio-style one column per election
    index_column: bool = False  #: a leading unnamed index column (a pandas re-save)
    notes: tuple[str, ...] = field(default=())
    weak: int = 0  #: how many of ``mapped`` matched through a national alias list only


    @property
    def ok(self) -> bool:
        return not self.missing_required

    @property
    def matched(self) -> int:
        return len(self.mapped)

    def name_score(self) -> float:
        """How well names agree, 0..1.

        Mostly the share of the file's columns the layout knows (a file of an
        older year may lack some of the layout's columns), partly the share
        of the layout's columns the file has.  A column found only through a
        national alias list counts half: it says "a voter file", not "this
        state's layout".
        """
        layout_n = len(self.mapped) + len(self.missing)
        header_n = len(self.header) - len(self.election_columns) - (1 if self.index_column else 0)
        if layout_n == 0 or header_n <= 0:
            return 0.0
        hits = self.matched - 0.5 * self.weak
        return 0.6 * min(1.0, hits / header_n) + 0.4 * min(1.0, hits / layout_n)

    def refusal(self) -> str:
        """One clause naming each missing required column and the closest header found."""
        parts = []
        for name, close in self.missing_required:
            parts.append(f"{name!r} (closest header: {close!r})" if close else f"{name!r} (no similar header)")
        return "required column(s) missing: " + ", ".join(parts)


def required_targets(layout: FileLayout) -> tuple[str, ...]:
    """Targets a file of ``layout`` must carry: declared ones, else voter id and names."""
    if layout.required is not None:
        return tuple(layout.required)
    if layout.role == "history":
        return ("state_voter_id", "election_date")
    if layout.role == "registrations":
        return tuple(t for t in GENERIC_REQUIRED if layout.by_target(t))
    return ()


def _unique(names: list[str]) -> list[str]:
    """Header names made unique and non-blank (the reader addresses columns by name)."""
    out: list[str] = []
    seen: set[str] = set()
    for i, n in enumerate(names, start=1):
        base = n.strip() or f"_column_{i}"
        name = base
        k = 2
        while name in seen:
            name = f"{base}_{k}"
            k += 1
        seen.add(name)
        out.append(name)
    return out


def _election_pattern(layout: FileLayout) -> re.Pattern[str] | None:
    wh = layout.wide_history
    return re.compile(wh.pattern, re.IGNORECASE) if wh else None


def map_header(layout: FileLayout, header: list[str], *, generic: bool = False) -> HeaderMapping:
    """Match ``header`` (as read from line 1) to ``layout``'s columns; build the effective layout.

    Order of preference: the column's own name, then its ``aliases``, then
    (for a targeted column whose target no other column of the file carries)
    the national alias list of its target.  With ``generic`` every header a
    national alias list knows is mapped to that target (the ``generic``
    layout reading any recognisable CSV).
    """
    raw = [h.replace("\ufeff", "").strip() for h in header]
    names = _unique(raw)
    keys = [norm(h) for h in raw]
    taken: dict[int, Column] = {}
    index_column = bool(raw) and keys[0] in _INDEX_NAMES and len(raw) > 1
    start = 1 if index_column else 0
    free = lambda i: i >= start and i not in taken  # noqa: E731
    by_key: dict[str, list[int]] = {}
    for i, k in enumerate(keys):
        by_key.setdefault(k, []).append(i)

    claimed: set[str] = set()  # layout column names already placed
    weak: set[int] = set()  # header columns placed through a national alias list only

    def claim(col: Column, key: str) -> bool:
        for i in by_key.get(key, []):
            if free(i):
                taken[i] = col
                claimed.add(col.name)
                return True
        return False

    def carried(target: str) -> bool:
        return any(c.target == target for c in taken.values())

    cols = list(layout.columns)
    # 1. own name, 2. own aliases
    for col in cols:
        claim(col, norm(col.name))
    for col in cols:
        if col.name not in claimed:
            any(claim(col, norm(a)) for a in col.aliases)
    # 3. national aliases of the column's target (single-column targets not yet carried)
    for col in cols:
        if col.name in claimed or not col.target or col.part is not None or carried(col.target):
            continue
        for i, k in enumerate(keys):
            if free(i) and _ALIAS_TARGET.get(k) == col.target:
                taken[i] = col
                claimed.add(col.name)
                weak.add(i)
                break
    if generic:
        # any recognisable national field, whether or not the layout lists it
        for i, k in enumerate(keys):
            t = _ALIAS_TARGET.get(k)
            if free(i) and t and not carried(t):
                proto = layout.by_target(t)
                taken[i] = proto[0] if proto else Column(name=raw[i], target=t)
                claimed.add(taken[i].name)
                weak.add(i)
    if generic and not carried("residence_address"):
        for order, (part, aliases) in enumerate(PART_ALIASES.items()):
            want = {norm(a) for a in aliases}
            i = next((i for i, k in enumerate(keys) if free(i) and k in want), None)
            if i is not None:
                taken[i] = Column(name=raw[i], target="residence_address", part=part, order=order)
                weak.add(i)
    pat = _election_pattern(layout)
    elections = tuple(
        names[i] for i in range(len(raw)) if i not in taken and pat is not None and pat.match(raw[i])
    )
    order = {c.name: n for n, c in enumerate(cols)}
    eff_cols = []
    mapped = []
    for i, name in enumerate(names):
        col = taken.get(i)
        if col is None:
            eff_cols.append(Column(name=name))
            continue
        upd = {"name": name, "aliases": []}
        if col.order is None and col.target:
            upd["order"] = order.get(col.name, len(cols) + i)
        eff_cols.append(col.model_copy(update=upd))
        mapped.append((name, col.name, col.target))
    missing = tuple(c.name for c in cols if c.name not in claimed)
    present_targets = {c.target for c in taken.values() if c.target}
    missing_required = []
    for t in required_targets(layout):
        if t in present_targets:
            continue
        want = [c.name for c in cols if c.target == t] or [t]
        unclaimed = [raw[i] for i in range(len(raw)) if i not in taken]
        close = difflib.get_close_matches(want[0], unclaimed, n=1, cutoff=0.5) or difflib.get_close_matches(
            norm(want[0]), [norm(u) for u in unclaimed], n=1, cutoff=0.5
        )
        if close and close[0] not in unclaimed:  # matched on the normalised spelling
            close = [unclaimed[[norm(u) for u in unclaimed].index(close[0])]]
        missing_required.append((want[0], close[0] if close else None))
    unmapped = tuple(
        names[i] for i in range(len(raw)) if i not in taken and names[i] not in elections and not (index_column and i == 0)
    )
    eff = layout.model_copy(update={"columns": eff_cols, "header": True})
    return HeaderMapping(
        layout=eff,
        header=tuple(names),
        mapped=tuple(mapped),
        unmapped=unmapped,
        missing=missing,
        missing_required=tuple(missing_required),
        election_columns=elections,
        index_column=index_column,
        weak=len(weak),
    )


@cache
def known_header_names() -> frozenset[str]:
    """Every column name of every shipped layout, normalised (tells a header line from a record)."""
    return frozenset(
        norm(c.name)
        for fmt in formats().values()
        for lay in fmt.layouts().values()
        for c in lay.columns
        if len(norm(c.name)) > 2
    )


def looks_like_header(fields: list[str]) -> bool:
    """Is this line a header rather than a record?  Names, not values: several known column names.

    Used so that a header line is never loaded as a registration by a
    header-less layout.  A line counts as a header when at least three of
    its fields (or half, for short lines) are spellings the national alias
    lists or a shipped layout know, and none of them holds a digit-only value.
    """
    keys = [norm(f) for f in fields]
    if not keys:
        return False
    known = known_header_names()
    hits = sum(1 for k in keys if k and (k in _ALIAS_TARGET or k in known))
    digits = sum(1 for f in fields if f.strip().strip('"').replace("-", "").replace("/", "").isdigit())
    return hits >= min(3, max(1, len(keys) // 2)) and digits == 0
