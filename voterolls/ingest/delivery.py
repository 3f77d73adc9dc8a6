"""Deliveries in parts: each file has a scope, a new part replaces only its scope.

States deliver by county (FL: 67 county extracts plus 67 history files; PA:
one FVE per county; TX per county), by county range (OH: four files) or
statewide (NC, NY), and vote history often apart from registrations.  If every
ingest replaced the whole state, two submissions of 20 county files each
would leave a state with 40 counties, and an ``ncvoter`` file sent without its
``ncvhis`` would wipe the vote history.  So:

* every input file gets a **scope**: ``state``, ``county:<code>`` or
  ``range:<a>-<b>``, and a **kind**, the role it plays (``registrations``,
  ``history``, ``election_map``); registrations and history are separate
  parts, so history may arrive before or after its registrations;
* a new delivery replaces, per kind, only the files of the scopes it brings
  (a ``state`` part replaces every file of its kind); every other file of
  the state's current snapshot is *retained*: its rows are carried into the
  new snapshot unchanged.  The state's view is therefore the union of the
  newest part of each scope, materialised as one immutable snapshot, so the
  store keeps its atomic, idempotent snapshots and its views;
* ``--replace-state`` makes a whole-state replacement explicit: nothing is
  retained.

Scopes are read from the file name where the state's layout names its files
(``{county}`` / ``{county_range}`` in the layout's ``filename``, NC's
``ncvoter<N>.txt``), else from the data (a per-county layout whose rows all
carry one county code), else ``state``.

Guards (:func:`check_guards`) refuse, unless the caller allows it, a delivery
that would shrink a scope's registrations by more than a threshold, drop the
state's vote history, or that holds a file with no rows.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from voterolls.errors import UserError

STATE = "state"
#: Default share of a scope's registrations a delivery may remove without --allow-shrink.
DEFAULT_SHRINK_THRESHOLD = 0.10

#: File names states use that their layout's ``filename`` does not describe.
_EXTRA_PATTERNS: dict[str, tuple[tuple[str, str], ...]] = {
    # NC publishes one zip per county: ncvoter<county id>.zip / ncvhis<county id>.zip
    "NC": ((r"ncvoter(?P<county>\d{1,3})\.txt", "registrations"), (r"ncvhis(?P<county>\d{1,3})\.txt", "history")),
    # OH's four statewide files, SWVF_1_22.txt ... SWVF_67_88.txt
    "OH": ((r"SWVF_(?P<range>\d{1,2}_\d{1,2})\.txt", "registrations"),),
}
_SCOPE_RE = re.compile(r"state|county:[A-Za-z0-9_. -]{1,40}|range:\d{1,3}-\d{1,3}")


@dataclass(frozen=True)
class DeliveryOptions:
    """How a delivery relates to what the workspace already holds (one request object)."""

    #: None: detect each file's scope; else ``state``, ``county:<code>`` or ``range:<a>-<b>`` for every file.
    scope: str | None = None
    #: Nothing of the state's current snapshot is retained (an explicit whole-state replacement).
    replace_state: bool = False
    #: Accept a delivery the guards would refuse (shrink, dropped history, empty file).
    allow_shrink: bool = False
    shrink_threshold: float = DEFAULT_SHRINK_THRESHOLD

    def __post_init__(self) -> None:
        if self.scope is not None:
            object.__setattr__(self, "scope", normalise_scope(self.scope))
        if not 0 <= self.shrink_threshold < 1:
            raise UserError("the shrink threshold must be a share between 0 and 1", field="shrink-threshold")


def normalise_scope(text: str) -> str:
    """``"county:ala"`` -> ``"county:ALA"``; a UserError for anything that is not a scope."""
    s = (text or "").strip()
    kind, _, value = s.partition(":")
    kind = kind.lower()
    s = kind if not value else f"{kind}:{value.strip().upper().replace('_', '-') if kind == 'range' else value.strip().upper()}"
    if not _SCOPE_RE.fullmatch(s):
        raise UserError(
            f"unknown scope {text!r}: expected 'state', 'county:<code>' (e.g. county:ALA) or 'range:<a>-<b>' (e.g. range:1-22)",
            field="scope",
        )
    return s


def _template_regex(template: str) -> re.Pattern[str]:
    """A layout's ``filename`` template (``{county}_{date}.txt``) as a regex with named groups."""
    out, pos = [], 0
    for m in re.finditer(r"\{(\w+)\}", template):
        out.append(re.escape(template[pos : m.start()]))
        name = m.group(1)
        out.append(
            {
                "county": r"(?P<county>[A-Za-z0-9_. -]+?)",
                "county_range": r"(?P<range>\d{1,3}[_-]\d{1,3})",
                "date": r"\d{6,8}",
                "state": r"[A-Za-z]{2}",
            }.get(name, r".+?")
        )
        pos = m.end()
    out.append(re.escape(template[pos:]))
    return re.compile("".join(out), re.IGNORECASE)


def scope_from_name(member: str, role: str, state: str, layouts: Mapping[str, Any]) -> str | None:
    """The scope a file name states, or None when the name says nothing about it."""
    candidates: list[str] = []
    lay = layouts.get(role)
    if lay is not None and getattr(lay, "filename", None):
        candidates.append(_template_regex(lay.filename).pattern)
    for pattern, r in _EXTRA_PATTERNS.get(state, ()):
        if r == role:
            candidates.append(pattern)
    for pattern in candidates:
        m = re.fullmatch(pattern, member, re.IGNORECASE)
        if m is None:
            continue
        groups = m.groupdict()
        if groups.get("county"):
            return normalise_scope("county:" + groups["county"].strip())
        if groups.get("range"):
            return normalise_scope("range:" + groups["range"])
        return STATE
    return None


@dataclass
class PartFile:
    """A file of the state's view: where its rows are, what it covers, its counts."""

    file_name: str
    sha256: str
    role: str
    scope: str
    loaded: int = 0
    vote_history_loaded: int = 0
    rows_read: int = 0
    retained: bool = False


def covers(new_scope: str, old_scope: str) -> bool:
    return new_scope == STATE or new_scope == old_scope


def plan_retained(new: Iterable[PartFile], old: Iterable[PartFile], options: DeliveryOptions, state: str) -> list[PartFile]:
    """The current snapshot's files that the new delivery does not replace (they are carried over).

    A county part cannot replace a piece of a file that covered the whole
    state (its rows would be there twice): that is refused, naming the file.
    """
    if options.replace_state:
        return []
    new = list(new)
    kept: list[PartFile] = []
    for f in old:
        same_kind = [n for n in new if n.role == f.role]
        if any(covers(n.scope, f.scope) for n in same_kind):
            continue
        if f.scope == STATE and same_kind:
            n = same_kind[0]
            raise UserError(
                f"{state}'s current {f.role} came as one whole-state file ({f.file_name}), so a part for "
                f"{n.scope} ({n.file_name}) cannot replace only its share; send the whole state's files, "
                "or pass --replace-state to make this delivery the whole state",
                field="scope",
            )
        kept.append(f)
    return kept


def _pct(old: int, new: int) -> str:
    return f"{100 * (old - new) / old:.1f}%" if old else "100%"


def check_guards(
    state: str,
    new: list[PartFile],
    old: list[PartFile],
    retained: list[PartFile],
    options: DeliveryOptions,
) -> None:
    """Refuse a delivery that empties a file, shrinks a scope or drops the vote history.

    Compared per scope and kind: the rows the replaced files held against the
    rows the new ones bring.  One sentence with the numbers; ``UserError``
    (exit 2) so the shell and the service see a refusal, not a crash.
    """
    if options.allow_shrink:
        return
    hint = "pass --allow-shrink (the service: tick 'allow a smaller roll') if this is intended"
    replaced = [f for f in old if f not in retained]
    for f in new:
        if f.rows_read == 0 and f.role in ("registrations", "history"):
            count = "loaded" if f.role == "registrations" else "vote_history_loaded"
            held = sum(getattr(o, count) for o in replaced if o.role == f.role and covers(f.scope, o.scope))
            was = f" (from {held:,} rows to 0)" if held else ""
            raise UserError(
                f"the file holds no rows (a header only?), so it would empty {state}'s {f.role} for "
                f"{f.scope}{was}; refused, {hint}",
                file=f.file_name,
            )
    for role, count in (("registrations", "loaded"), ("history", "vote_history_loaded")):
        scopes = sorted({n.scope for n in new if n.role == role})
        for scope in scopes:
            before = sum(getattr(f, count) for f in replaced if f.role == role and covers(scope, f.scope))
            after = sum(getattr(n, count) for n in new if n.role == role and n.scope == scope)
            if before and after < before * (1 - options.shrink_threshold):
                what = "registrations" if role == "registrations" else "vote-history rows"
                raise UserError(
                    f"this delivery would shrink {state}'s {what} for {scope} from {before:,} to {after:,} "
                    f"(-{_pct(before, after)}, more than the {100 * options.shrink_threshold:.0f}% allowed); refused, {hint}",
                    field="scope",
                )
    vh_before = sum(f.vote_history_loaded for f in old)
    vh_after = sum(f.vote_history_loaded for f in retained) + sum(n.vote_history_loaded for n in new)
    if vh_before and vh_after < vh_before * (1 - options.shrink_threshold):
        raise UserError(
            f"this delivery would drop {state}'s vote history from {vh_before:,} to {vh_after:,} rows "
            f"(-{_pct(vh_before, vh_after)}; was the history file left out?); refused, {hint}",
            field="vote_history",
        )
    reg_before = sum(f.loaded for f in old if f.role == "registrations")
    reg_after = sum(f.loaded for f in retained if f.role == "registrations") + sum(
        n.loaded for n in new if n.role == "registrations"
    )
    if reg_before and reg_after < reg_before * (1 - options.shrink_threshold):
        raise UserError(
            f"this delivery would shrink {state}'s registrations from {reg_before:,} to {reg_after:,} "
            f"(-{_pct(reg_before, reg_after)}, more than the {100 * options.shrink_threshold:.0f}% allowed); refused, {hint}",
            field="scope",
        )
