"""The declarative layout spec: one TOML file describes a state's published file(s).

The same spec drives reading (``voterolls.formats.engine``) and writing
(``voterolls.synth.native``), so a layout that round-trips is a layout whose
reader and writer agree.  A spec is also the "mapping file" a user writes for a
state or vendor file we do not ship (docs/FORMATS.md has a worked example).

A *format* (``nc_ncvoter_2022``) is a set of *file layouts*: the registration
file, optionally a separate vote-history file and, for Pennsylvania, an
election map.  Each file layout says how to split a physical line into native
columns (delimiter and quoting, or fixed-width offsets), what each native
column means in the national schema (``target``), how its dates are written
and how its codes map to the national vocabularies.
"""

from __future__ import annotations

import tomllib
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from voterolls.schema import VOCABULARIES

#: National registration fields a native column may target.
REGISTRATION_TARGETS = (
    "state_voter_id", "county", "last_name", "first_name", "middle_name", "name_suffix",
    "dob", "birth_year", "gender", "party", "status", "status_reason", "race", "uocava",
    "registration_date", "residence_address", "residence_city", "residence_zip5", "phone",
    "email",
    # pseudo-targets
    "protected_flag",  # a column that marks a confidential (protected) voter
)  # fmt: skip

#: National vote-history fields a native column of a history file may target.
HISTORY_TARGETS = (
    "state_voter_id", "county", "election_date", "election_type", "election_desc",
    "vote_method", "party_ballot",
)  # fmt: skip

#: Targets whose native value is a code mapped to a national vocabulary.
CODED_TARGETS = {
    "gender": "gender",
    "party": "party",
    "status": "status",
    "race": "race",
    "uocava": "uocava",
    "election_type": "election_type",
    "vote_method": "vote_method",
}

#: Targets carried as dates (need ``date_format``).
DATE_TARGETS = ("dob", "registration_date", "election_date")

#: Targets a record may spread over several native columns, with the join string.
MULTIPART_TARGETS = {"residence_address": " ", "phone": ""}

#: Fields masked with the protected-voter marker where a state masks instead of omitting.
MASKED_TARGETS = (
    "last_name", "first_name", "middle_name", "name_suffix", "residence_address",
    "residence_city", "residence_zip5", "phone", "email",
)  # fmt: skip

SUPPORTED_ENCODINGS = ("utf-8", "latin-1", "utf-16", "utf-16-be")


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Column(_Strict):
    """One native column."""

    name: str
    target: str | None = None
    #: Other spellings of this column's header in the state's files of other years
    #: (compared normalised: case, spaces, punctuation ignored; see ``headers``).
    aliases: list[str] = Field(default_factory=list)
    #: For a multi-part target: ``number`` / ``street`` (address), ``area`` / ``local`` (phone).
    part: Literal["number", "street", "area", "local"] | None = None
    #: strptime/strftime format for date targets (``%Y-%m-%d``, ``%m/%d/%Y``, ``%Y``).
    date_format: str | None = None
    #: Name of the code map in the layout's ``codes`` table (defaults to the target).
    codes: str | None = None
    #: Value the writer puts in a column it has no national value for.
    fill: str = ""
    #: Order of this part when a multi-part target is reassembled (default: file order).
    order: int | None = None
    #: Fixed width only: 1-based start offset and width.
    start: int | None = None
    width: int | None = None
    #: Values the state writes in place of a real value (NC ``REMOVED`` in the
    #: street address of a removed voter): read as NULL and named in ``_issues``,
    #: never stored as if they were the value.  Compared case-insensitively.
    placeholders: list[str] = Field(default_factory=list)


class CodeMap(_Strict):
    """Native code -> national vocabulary value; the native code is kept in ``*_code``."""

    map: dict[str, str]
    #: National value for a non-blank code the map does not know.
    default: str | None = None
    #: National value for a blank code.
    blank: str | None = None
    #: Writer's choice of native code per national value where several map to it.
    write: dict[str, str] = Field(default_factory=dict)

    def native_for(self, national: str) -> str | None:
        if national in self.write:
            return self.write[national]
        for native, value in self.map.items():
            if value == national:
                return native
        return None


class Protected(_Strict):
    """How the file marks confidential voters."""

    #: ``omit``: the state leaves them out; ``mask``: they appear with personal fields masked.
    mode: Literal["omit", "mask"] = "omit"
    mask: str = "*"


class WideHistory(_Strict):
    """Vote history as one column per election after the fixed columns (Ohio SWVF).

    A column is an election column when its header matches ``pattern`` (named
    groups ``type`` and ``date``); a non-blank value means the voter voted.
    """

    pattern: str
    date_format: str
    header_template: str  # e.g. "{type}-{date}"
    type_codes: str  # code map name: native type label -> ELECTION_TYPE
    voted_value: str = "X"
    #: Values other than ``voted_value`` are a primary party-ballot code.


class EmbeddedHistory(_Strict):
    """Vote history packed into one field (New York: entries separated by ``;``)."""

    column: str
    separator: str = ";"
    #: RE2 pattern with groups 1 = date, 2 = type code.
    entry_pattern: str
    entry_template: str  # e.g. "{date} {type}"
    date_format: str
    type_codes: str


class SlotHistory(_Strict):
    """Vote history as N fixed (method, party) column pairs decoded by an election map (PA)."""

    slots: int
    method_template: str  # column name template, e.g. "election_{i}_vote_method"
    party_template: str
    method_codes: str
    #: Column (native name) that holds the county, joined to the election map.
    county_column: str


class FileLayout(_Strict):
    """How one kind of file is laid out."""

    role: Literal["registrations", "history", "election_map"] = "registrations"
    kind: Literal["delimited", "fixed"] = "delimited"
    delimiter: str = ","
    #: ``all``: every field in double quotes; ``minimal``: quoted when needed; ``none``: never.
    quoting: Literal["all", "minimal", "none"] = "minimal"
    #: ``true`` / ``false``, or ``"optional"``: some extracts carry it, some do not (GA).
    header: bool | Literal["optional"] = True
    #: The encoding the state publishes in; a reader trusts the file's bytes first (BOM,
    #: valid UTF-8) and uses this for a file whose head is plain ASCII.
    encoding: Literal["utf-8", "latin-1", "utf-16", "utf-16-be"] = "utf-8"
    #: Write a byte-order mark (UTF-16 files as NC publishes them).
    bom: bool = False
    line_terminator: Literal["\n", "\r\n"] = "\n"
    #: Writer file name; ``{county}`` and ``{date}`` (YYYYMMDD extract date) are filled in.
    filename: str
    #: One file per county (``{county}`` in ``filename``).
    per_county: bool = False
    columns: list[Column]
    #: National targets a file of this layout must carry (a header file lacking one is
    #: refused, naming it); default: voter id and names (history: voter id, election date).
    required: list[str] | None = None
    codes: dict[str, CodeMap] = Field(default_factory=dict)
    #: National values for fields this file does not carry (e.g. party = "NPR").
    constants: dict[str, str] = Field(default_factory=dict)
    protected: Protected = Field(default_factory=Protected)
    wide_history: WideHistory | None = None
    embedded_history: EmbeddedHistory | None = None
    slot_history: SlotHistory | None = None
    #: Writer pads fixed-width / quoted fields with spaces (NC VR_Snapshot).
    pad: bool = False
    #: Deterministic realistic mess the writer adds to a small share of rows.
    mess: list[Literal["zip_float", "trailing_spaces", "zip_plus4"]] = Field(default_factory=list)

    @field_validator("columns", mode="before")
    @classmethod
    def _bare_names(cls, v: object) -> object:
        # A bare string in TOML is a column with no national target.
        if isinstance(v, list):
            return [{"name": c} if isinstance(c, str) else c for c in v]
        return v

    @field_validator("delimiter")
    @classmethod
    def _one_char(cls, v: str) -> str:
        if len(v) != 1:
            raise ValueError("delimiter must be one character")
        return v

    @model_validator(mode="after")
    def _check(self) -> FileLayout:
        names = [c.name for c in self.columns]
        dup = {n for n in names if names.count(n) > 1}
        if dup:
            raise ValueError(f"duplicate column names: {sorted(dup)}")
        allowed = REGISTRATION_TARGETS if self.role == "registrations" else HISTORY_TARGETS
        if self.role == "election_map":
            allowed = (
                "county",
                "election_number",
                "election_desc",
                "election_date",
                "election_type",
            )
        for c in self.columns:
            if c.target is not None and c.target not in allowed:
                raise ValueError(
                    f"column {c.name!r}: unknown target {c.target!r} (allowed: {', '.join(allowed)})"
                )
            if c.target in DATE_TARGETS and not c.date_format:
                raise ValueError(f"column {c.name!r}: date target {c.target!r} needs date_format")
            if self.kind == "fixed" and (c.start is None or c.width is None):
                raise ValueError(f"column {c.name!r}: fixed-width layouts need start and width")
            code_name = c.codes or (c.target if c.target in CODED_TARGETS else None)
            if c.codes and c.codes not in self.codes:
                raise ValueError(f"column {c.name!r}: code map {c.codes!r} not defined")
            if code_name and code_name in self.codes:
                vocab = VOCABULARIES[CODED_TARGETS[c.target]] if c.target in CODED_TARGETS else None
                cm = self.codes[code_name]
                if vocab:
                    bad = {
                        v
                        for v in [*cm.map.values(), cm.default, cm.blank]
                        if v is not None and v not in vocab
                    }
                    if bad:
                        raise ValueError(
                            f"code map {code_name!r}: {sorted(bad)} not in vocabulary {vocab}"
                        )
        for t in self.required or []:
            if t not in allowed:
                raise ValueError(f"required: unknown target {t!r}")
        for k in self.constants:
            if k not in allowed:
                raise ValueError(f"constant for unknown field {k!r}")
        return self

    # -- helpers -------------------------------------------------------------
    @property
    def names(self) -> list[str]:
        return [c.name for c in self.columns]

    def by_target(self, target: str) -> list[Column]:
        return [c for c in self.columns if c.target == target]

    def code_map(self, col: Column) -> CodeMap | None:
        name = col.codes or col.target
        return self.codes.get(name) if name else None

    @property
    def record_width(self) -> int:
        return max((c.start or 0) + (c.width or 0) - 1 for c in self.columns)


class Format(_Strict):
    """A state's published format: its files and where the layout facts come from."""

    name: str
    state: str | None = None  # None = usable for any state (generic)
    description: str
    sources: list[str] = Field(default_factory=list)
    #: How sure we are of the column list: ``documented`` (public layout) or ``approximate``.
    fidelity: Literal["documented", "approximate"] = "documented"
    notes: str = ""
    registrations: FileLayout
    history: FileLayout | None = None
    election_map: FileLayout | None = None

    def layouts(self) -> dict[str, FileLayout]:
        out = {"registrations": self.registrations}
        if self.history is not None:
            out["history"] = self.history
        if self.election_map is not None:
            out["election_map"] = self.election_map
        return out


def load_format(path: str | Path) -> Format:
    """Parse one layout TOML file into a validated ``Format``."""
    path = Path(path)
    with path.open("rb") as fh:
        data = tomllib.load(fh)
    data.setdefault("name", path.stem)
    for role in ("registrations", "history", "election_map"):
        if role in data:
            data[role].setdefault("role", role)
    return Format.model_validate(data)
