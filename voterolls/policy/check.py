"""``voterolls policy check``: which columns of a file the state's law does not allow.

With a known native format the layout says what each column means (its
national ``target``); otherwise the header names are matched against common
spellings.  Either way the answer is per column: allowed, not allowed (and
what ingest will do about it), or sealed token.  Only the header is read;
no row values are looked at or printed.
"""

from __future__ import annotations

import csv
import re
from dataclasses import dataclass
from pathlib import Path

from voterolls.errors import UserError, require_file
from voterolls.policy.enforce import PLAINTEXT_SENSITIVE, TOKEN_COLUMNS, allowed_columns
from voterolls.policy.model import StatePolicy

#: Header spellings (lower case, non-alphanumerics removed) -> national field.
_HEADER_GUESSES: list[tuple[str, str]] = [
    (r"^(dob|dateofbirth|birthdate|birthdt|birthday|dtbirth)$", "dob"),
    (r"^(birthyear|yearofbirth|yob|byear)$", "birth_year"),
    (r"(phone|telephone|phonenum|phoneno)", "phone"),
    (r"(email|emailaddress)", "email"),
    (r"^(ssn|ssn4|ssnlast4|last4ssn|socialsecurity.*)$", "ssn4"),
    (
        r"^(dl|dlnumber|dln|driverslicense|driverlicense|driverslicensenumber|driverlicensenumber|drivers?lic(num|no)?)$",
        "dl_number",
    ),
    (
        r"^(party|partycd|partycode|partyaffiliation|politicalparty|enrollment|partyaff|politalaff)$",
        "party",
    ),
]

_ACTIONS = {
    "dob": "removed (no DOB detail is public)",
    "birth_year": "removed",
    "phone": "set to NULL",
    "email": "set to NULL",
    "party": "replaced by NPR (no party registration)",
    "party_code": "set to NULL",
    "ssn4": "removed (send ssn4_token from `voterolls seal` instead)",
    "dl_number": "removed (send dl_token from `voterolls seal` instead)",
}


#: National fields the disclosure policy governs (everything else passes through).
GOVERNED = (
    frozenset({"dob", "birth_year", "phone", "email", "party", "party_code", "ssn4", "dl_number"})
    | TOKEN_COLUMNS
)


@dataclass(frozen=True)
class ColumnCheck:
    column: str
    field: str | None  # national field it maps to (None: not governed / not read)
    allowed: bool
    basis: str  # "layout" | "header name" | "token"
    action: str  # what ingest does with it


def guess_field(name: str) -> str | None:
    key = re.sub(r"[^a-z0-9]", "", name.lower())
    if name.lower() in TOKEN_COLUMNS:
        return name.lower()
    for pattern, target in _HEADER_GUESSES:
        if re.search(pattern, key):
            return target
    return None


def _layout_columns(fmt_name: str) -> list[tuple[str, str | None]]:
    """(native column, target) pairs of a format's registrations layout."""
    from voterolls.formats import get_format

    fmt = get_format(fmt_name)
    return [(c.name, c.target) for c in fmt.registrations.columns]


def _header(path: Path) -> list[str]:
    raw = path.read_bytes()[:65536]
    if raw.startswith((b"\xff\xfe", b"\xfe\xff")):
        text = raw.decode("utf-16", errors="replace")
    else:
        text = raw.decode("utf-8", errors="replace")
    first = text.splitlines()[0] if text else ""
    delim = max(["\t", "|", ",", ";"], key=first.count)
    return [c.strip() for c in next(csv.reader([first], delimiter=delim))]


def _detect(path: Path) -> str | None:
    from voterolls.formats import detect_format

    try:
        found = detect_format([path])
        # the generic mapping reads the file's own header names: judge those names
        return None if found == "generic" else found
    except UserError:
        return None


def check_file(
    path: str | Path, policy: StatePolicy, fmt: str | None = None
) -> tuple[str, list[ColumnCheck]]:
    """Per-column verdicts for ``path`` under ``policy``; returns (basis description, checks)."""
    path = Path(path)
    require_file(path)
    fmt = fmt or _detect(path)
    allowed = allowed_columns(policy)
    checks: list[ColumnCheck] = []
    if fmt:
        basis = f"layout {fmt}"
        for name, target in _layout_columns(fmt):
            field = target
            guess = guess_field(name)
            if field is None and guess in ("ssn4", "dl_number"):
                # An untargeted column is never read by ingest; still say it holds an identifier.
                checks.append(
                    ColumnCheck(name, None, True, "layout", "not read (no national target)")
                )
                continue
            checks.append(_verdict(name, field, allowed, "layout", policy))
    else:
        basis = "header names"
        for name in _header(path):
            checks.append(_verdict(name, guess_field(name), allowed, "header name", policy))
    return basis, checks


def _verdict(
    name: str, field: str | None, allowed: dict[str, bool], basis: str, policy: StatePolicy
) -> ColumnCheck:
    if field is None:
        return ColumnCheck(name, None, True, basis, "kept (not governed by the disclosure policy)")
    if field in TOKEN_COLUMNS:
        return ColumnCheck(name, field, True, "token", "kept (sealed token)")
    if field in PLAINTEXT_SENSITIVE or field in ("ssn4", "dl_number"):
        return ColumnCheck(name, field, False, basis, _ACTIONS.get(field, "removed"))
    ok = allowed.get(field, True)
    action = _ACTIONS.get(field, "set to NULL")
    if field == "dob" and policy.dob_disclosure == "year":
        action = "generalised to birth_year (the state publishes the year only)"
    return ColumnCheck(name, field, ok, basis, "kept" if ok else action)
