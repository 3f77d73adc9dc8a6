"""The estimates result: one typed shape for what ``voterolls estimate`` produces.

:func:`voterolls.stats.api.estimate` builds an :class:`EstimatesResult`,
:func:`write_estimates` is the one writer of ``W/estimates/estimates.json``
and :func:`load_estimates` the one reader; the report (and through it the
service) reads figures from these types, never from raw JSON.

Why pydantic models with ``extra="allow"``: the fields named here are the ones
other stages read (point estimate, interval, coverage, expected coincidences,
per-class parts, the calibration check); the file also keeps diagnostics
(the DOB model, the coincidence table, sensitivity runs) that nothing reads
but a person, and those stay in the file unchanged on a round trip.  Every
figure is frozen: a reader cannot change what stats wrote.

Counts and rates only, never a name, a date of birth or an id.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from voterolls.errors import UserError

__all__ = [
    "CalibrationBand",
    "CalibrationCheck",
    "CalibrationTotal",
    "Coverage",
    "CrosscheckPurge",
    "DoubleVotes",
    "DuplicateRegistrations",
    "DuplicateScope",
    "EstimatesResult",
    "Figure",
    "LowConfidenceMass",
    "National",
    "RestsOn",
    "load_estimates",
    "write_estimates",
]

#: The coverage every interval in the file is made for (``ci95``).
LEVEL = 0.95


class _Part(BaseModel):
    """A frozen block of the result; keys not named here are kept as they were written."""

    model_config = ConfigDict(frozen=True, extra="allow")


class LowConfidenceMass(_Part):
    """Linkage probability mass below the threshold: widens an interval one-sidedly."""

    added_to_upper_bound: float = 0.0
    subtracted_from_lower_bound: float = 0.0


class Figure(_Part):
    """One estimated count: point, 95% interval (clipped at 0 and signed), standard error.

    ``estimate`` is the unbiased, signed value (it can be below 0); ``ci95`` is
    the interval for display, clipped at 0; ``ci95_signed`` the unclipped one;
    ``truncated_at_zero`` says whether a display showing 0 hides a negative
    number.  A rule-based figure also carries the rule's raw count and the
    coincidences expected among it; ``by_level`` holds its per-DOB-class parts.
    """

    estimate: float | None = None
    ci95: tuple[float, float] | None = None
    ci95_signed: tuple[float, float] | None = None
    truncated_at_zero: bool | None = None
    se: float | None = None
    raw_rule_count: float | None = None
    expected_coincidences: float | None = None
    low_confidence_linkage_mass: LowConfidenceMass | None = None
    method: str | None = None
    #: double votes per recorded voter (the double-vote headline only)
    per_voter: float | None = None
    #: per DOB class ("full", "year"): the parts this figure adds up
    by_level: dict[str, Figure] | None = None

    @property
    def level(self) -> float | None:
        """The coverage of :attr:`ci95` (None: no interval)."""
        return LEVEL if self.ci95 is not None else None


class RestsOn(_Part):
    """The states a figure rests on and their share of US registrants."""

    states: list[str] = Field(default_factory=list)
    registrant_share: float | None = None
    states_missing: list[str] = Field(default_factory=list)
    states_without_dob: list[str] = Field(default_factory=list)
    states_birth_year_only: list[str] = Field(default_factory=list)
    states_without_public_vote_history: list[str] = Field(default_factory=list)


class National(_Part):
    """A national figure, made only with an explicit model (else the reason there is none)."""

    national: float | None = None
    ci95: tuple[float, float] | None = None
    label: str | None = None
    model: str | None = None
    reason: str | None = None


class DuplicateScope(_Part):
    """Duplicate registrations in one scope (cross-state or in-state): every estimator, one headline."""

    unit: str | None = None
    #: the name of the headline figure among the fields below
    headline: str = "rule_net_of_coincidences"
    rule_net_of_coincidences: Figure | None = None
    rule_net_middle_initial: Figure | None = None
    splink_sum_of_probabilities: Figure | None = None
    combined: Figure | None = None
    note: str | None = None
    rests_on: RestsOn | None = None
    national: National | None = None

    def headline_figure(self) -> Figure | None:
        figure = getattr(self, self.headline, None)
        return figure if isinstance(figure, Figure) else None


class DuplicateRegistrations(_Part):
    cross_state: DuplicateScope | None = None
    in_state: DuplicateScope | None = None


class DoubleVotes(_Part):
    """Double votes in one election; without two states' vote history, only ``note`` says why none."""

    unit: str | None = None
    headline: Figure | None = None
    states: list[str] | None = None
    votes_recorded_in_these_states: int | None = None
    caveat: str | None = None
    note: str | None = None
    rests_on: RestsOn | None = None
    national: National | None = None


class CrosscheckPurge(_Part):
    """What removing one record of every Crosscheck-rule match would do."""

    rule: str | None = None
    registrations_removed: int | None = None
    removed_registrations_used_to_vote: int | None = None
    double_votes_prevented_estimate: Figure | None = None
    double_votes_prevented_basis: str | None = None
    legitimate_votes_blocked_estimate: float | None = None
    legitimate_votes_blocked_ci95: tuple[float, float] | None = None
    legitimate_votes_blocked_per_double_vote_prevented: float | None = None
    #: the ratio at the ends of the interval of double votes prevented; None: no upper bound
    ratio_range_from_ci: tuple[float | None, float | None] | None = None


class Coverage(_Part):
    """Which states the estimates rest on, by DOB class and vote history."""

    registrants_measure: str | None = None
    states_covered: list[str] | None = None
    registrant_share_covered: float | None = None
    states_with_full_dob: list[str] = Field(default_factory=list)
    states_with_birth_year_only: list[str] = Field(default_factory=list)
    states_without_dob: list[str] = Field(default_factory=list)
    states_missing: list[str] = Field(default_factory=list)
    vote_history_states: list[str] | None = None


class CalibrationBand(_Part):
    """One band of match probability: pairs, and true pairs expected by linkage and by the birthday model."""

    p_from: float | None = None
    p_to: float | None = None
    pairs: int = 0
    expected_by_linkage: float | None = None
    expected_by_birthday_model: float | None = None


class CalibrationTotal(CalibrationBand):
    ratio_model_to_linkage: float | None = None
    pairs_not_written_by_linkage: int | None = None


class CalibrationCheck(_Part):
    """Linkage probabilities checked without truth on the exact stratum (:mod:`voterolls.stats.calibration`)."""

    stratum: str | None = None
    method: str | None = None
    bands: list[CalibrationBand] = Field(default_factory=list)
    total: CalibrationTotal | None = None


class EstimatesResult(_Part):
    """Everything ``voterolls estimate`` produced for one workspace (``W/estimates/estimates.json``)."""

    election: str | None = None
    vote_history_states: list[str] = Field(default_factory=list)
    error_rate: float | None = None
    error_rate_source: str | None = None
    duplicate_registrations: DuplicateRegistrations | None = None
    double_votes: DoubleVotes | None = None
    crosscheck_purge: CrosscheckPurge | None = None
    coverage: Coverage | None = None
    linkage_calibration: CalibrationCheck | None = None
    linkage_used: bool | None = None
    #: the sentence every publication of these figures carries
    wording: str | None = None
    generated_at: str | None = None
    workspace: str | None = None

    @classmethod
    def of(cls, raw: dict[str, Any]) -> EstimatesResult:
        """The result from the JSON-ready dict the estimators assemble (checked against the types)."""
        return cls.model_validate(raw)

    def as_json(self) -> dict[str, Any]:
        """The JSON form written to estimates.json: the keys as the estimators made them, no more."""
        return self.model_dump(mode="json", exclude_unset=True)


def write_estimates(result: EstimatesResult, path: Path) -> None:
    """Write ``result`` to ``path`` through a temporary file and a rename (a reader never sees half)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".partial")
    tmp.write_text(json.dumps(result.as_json(), indent=1, default=str) + "\n", encoding="utf-8")
    os.replace(tmp, path)


def load_estimates(path: Path) -> EstimatesResult:
    """Read estimates.json; one sentence naming the file when it is missing, unreadable or of another shape."""
    try:
        raw = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise UserError("no estimates yet; run `voterolls estimate`", file=path) from None
    except (OSError, ValueError) as exc:
        raise UserError(f"the estimates cannot be read ({type(exc).__name__})", file=path) from None
    if not isinstance(raw, dict):
        raise UserError("the estimates are not a JSON object", file=path)
    try:
        return EstimatesResult.of(raw)
    except ValidationError as exc:
        where = ".".join(str(x) for x in exc.errors()[0]["loc"])
        raise UserError(f"the estimates do not have the shape voterolls writes (at {where})", file=path) from None
