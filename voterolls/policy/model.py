"""Each state's disclosure law as data: the ``StatePolicy`` record and its loader.

The values come from a sourced draft (``state_policy.csv`` beside this file,
vendored from ``shared/policy/state_policy_draft.csv``; sources in
``state_policy_sources.md``).  Every value keeps its confidence and the
source keys of its row, because the draft is *not* legal advice and a reader
must see how sure each cell is.

Unknown means most restrictive, everywhere:

* ``dob_disclosure`` ``unknown`` -> ``none`` (no DOB at all);
* a yes/no field ``unknown`` -> ``False`` for the "is public" fields, and
  ``True`` for ``commercial_use_prohibited`` (assume the use is barred);
* a state code that is not on file -> :data:`RESTRICTIVE` (everything off).

The raw draft value is kept in ``StatePolicy.raw`` so that reports can say
"unknown, treated as none" instead of pretending the law says ``none``.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Mapping
from dataclasses import dataclass, field
from functools import cache
from importlib import resources
from types import MappingProxyType
from typing import Literal

from voterolls.log import get_logger

log = get_logger(__name__)

DobDisclosure = Literal["full", "year", "none"]

#: The value columns of the draft, in display order.
POLICY_FIELDS: tuple[str, ...] = (
    "dob_disclosure",
    "party_on_file",
    "vote_history_public",
    "phone_public",
    "email_public",
    "ssn4_public",
    "dl_public",
    "who_may_obtain",
    "commercial_use_prohibited",
    "response_to_2017_commission",
)

_BOOL_FIELDS = (
    "party_on_file",
    "vote_history_public",
    "phone_public",
    "email_public",
    "ssn4_public",
    "dl_public",
)

CONFIDENCE_LEVELS = ("high", "medium", "low", "n/a")

_CSV_NAME = "state_policy.csv"


@dataclass(frozen=True)
class StatePolicy:
    """What one state's law lets a lawful non-government recipient have.

    Booleans are already resolved (unknown -> the restrictive value); use
    :meth:`is_known` / ``raw`` to tell a known ``False`` from an unknown.
    """

    state: str
    dob_disclosure: DobDisclosure
    party_on_file: bool
    vote_history_public: bool
    phone_public: bool
    email_public: bool
    ssn4_public: bool
    dl_public: bool
    who_may_obtain: str  # anyone | restricted | parties/candidates/officials | unknown
    commercial_use_prohibited: bool
    response_to_2017_commission: str  # refused | partial | pending | complied
    notes: str = ""
    #: Source keys of the row (see state_policy_sources.md).  The draft cites
    #: sources per state, so every value of a state shares them.
    sources: tuple[str, ...] = ()
    #: field -> high | medium | low | n/a
    confidence: Mapping[str, str] = field(default_factory=dict, compare=False, hash=False)
    #: field -> the draft's value as written (yes / no / unknown / full ...)
    raw: Mapping[str, str] = field(default_factory=dict, compare=False, hash=False)
    #: True when the state code was on file; False for the restrictive fallback.
    on_file: bool = True

    def is_known(self, name: str) -> bool:
        """False when the draft says ``unknown`` for ``name`` (the value shown is the fallback)."""
        return self.raw.get(name, "unknown") != "unknown"

    def confidence_of(self, name: str) -> str:
        return self.confidence.get(name, "n/a")

    def source_keys(self, name: str | None = None) -> tuple[str, ...]:
        """Source keys behind ``name`` (the draft cites per state, so per row)."""
        return self.sources

    def value(self, name: str) -> object:
        return getattr(self, name)


def _restrictive(state: str) -> StatePolicy:
    raw = dict.fromkeys(POLICY_FIELDS, "unknown")
    return StatePolicy(
        state=state,
        dob_disclosure="none",
        party_on_file=False,
        vote_history_public=False,
        phone_public=False,
        email_public=False,
        ssn4_public=False,
        dl_public=False,
        who_may_obtain="unknown",
        commercial_use_prohibited=True,
        response_to_2017_commission="pending",
        notes="No policy on file for this code: every field treated as not public.",
        sources=(),
        confidence=MappingProxyType(dict.fromkeys(POLICY_FIELDS, "n/a")),
        raw=MappingProxyType(raw),
        on_file=False,
    )


#: The most restrictive policy: what an unknown state code gets.
RESTRICTIVE = _restrictive("??")


def _yes_no(value: str, *, unknown: bool, state: str, name: str) -> bool:
    v = value.strip().lower()
    if v == "yes":
        return True
    if v == "no":
        return False
    if v == "unknown":
        return unknown
    raise ValueError(
        f"{_CSV_NAME}: state {state} field {name!r}: expected yes/no/unknown, got {value!r}"
    )


def _parse_row(row: dict[str, str]) -> StatePolicy:
    state = row["state"].strip().upper()
    raw = {name: row[name].strip() for name in POLICY_FIELDS}
    conf = {name: (row.get(f"{name}_conf") or "n/a").strip() for name in POLICY_FIELDS}
    for name, c in conf.items():
        if c not in CONFIDENCE_LEVELS:
            raise ValueError(
                f"{_CSV_NAME}: state {state} field {name}_conf: unknown confidence {c!r}"
            )
    dob = raw["dob_disclosure"].lower()
    if dob == "unknown":
        dob = "none"
    if dob not in ("full", "year", "none"):
        raise ValueError(f"{_CSV_NAME}: state {state}: dob_disclosure {dob!r}")
    bools = {n: _yes_no(raw[n], unknown=False, state=state, name=n) for n in _BOOL_FIELDS}
    response = raw["response_to_2017_commission"].lower()
    if response not in ("refused", "partial", "pending", "complied"):
        raise ValueError(f"{_CSV_NAME}: state {state}: response {response!r}")
    return StatePolicy(
        state=state,
        dob_disclosure=dob,  # type: ignore[arg-type]
        who_may_obtain=raw["who_may_obtain"] or "unknown",
        commercial_use_prohibited=_yes_no(
            raw["commercial_use_prohibited"],
            unknown=True,
            state=state,
            name="commercial_use_prohibited",
        ),
        response_to_2017_commission=response,
        notes=row.get("notes", "").strip(),
        sources=tuple(s.strip() for s in row.get("sources", "").split(";") if s.strip()),
        confidence=MappingProxyType(conf),
        raw=MappingProxyType(raw),
        **bools,
    )


@cache
def _load() -> Mapping[str, StatePolicy]:
    text = (resources.files(__package__) / _CSV_NAME).read_text(encoding="utf-8")
    policies = {}
    for row in csv.DictReader(io.StringIO(text)):
        p = _parse_row(row)
        policies[p.state] = p
    return MappingProxyType(policies)


def all_policies() -> Mapping[str, StatePolicy]:
    """Every state on file (50 states + DC), keyed by USPS code."""
    return _load()


def get_policy(state: str) -> StatePolicy:
    """The disclosure policy of ``state`` (USPS code, any case).

    A code that is not on file gets the most restrictive policy (nothing
    public), with ``on_file=False``; it is logged, never an error, because a
    restrictive default can only withhold data, never leak it.
    """
    code = (state or "").strip().upper()
    policy = _load().get(code)
    if policy is None:
        log.warning(
            "no disclosure policy on file for state code %r: using the most restrictive", code[:8]
        )
        return _restrictive(code or "??")
    return policy


@cache
def source_descriptions() -> Mapping[str, str]:
    """Source key -> the line of the vendored state_policy_sources.md that describes it.

    Empty if the file is not installed (it is documentation, not needed to enforce).
    """
    import re

    try:
        text = (resources.files(__package__) / "state_policy_sources.md").read_text(
            encoding="utf-8"
        )
    except (FileNotFoundError, OSError):
        return MappingProxyType({})
    lines = [ln.strip() for ln in text.splitlines() if ln.strip().startswith(("|", "-"))]
    keys = {k for p in _load().values() for k in p.sources}
    out: dict[str, str] = {}
    for key in sorted(keys):
        pat = re.compile(r"(?<![A-Za-z0-9.-])" + re.escape(key) + r"(?![A-Za-z0-9-])")
        for ln in lines:
            if pat.search(ln):
                desc = ln.lstrip("|- ").replace(" | ", "; ").rstrip("| ")
                if desc.startswith(key):
                    desc = desc[len(key) :].lstrip(":; ")
                out[key] = desc
                break
    return MappingProxyType(out)
