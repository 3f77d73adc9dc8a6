"""The report-data model: every figure the HTML report shows, and nothing else.

The report is a pure function of this model (``render.render(ReportData)``),
so a reviewer can check what is published by reading one JSON document, and
tests can build a model by hand.  The model holds aggregates only: counts,
shares and estimates per state / field / bin.  It has no field that could hold
a name, a date of birth or an address.

Every section is wrapped in :class:`Section`: either ``data`` is set, or
``missing`` says in plain words why the section cannot be shown (linkage not
run, no estimates yet, ...).  A count below the small-cell threshold is
``None`` in the model and shows as "<10"; a figure of ten or more hidden only
so that a small cell cannot be recovered is ``"withheld"``
(:data:`voterolls.privacy.WITHHELD`) and shows as "withheld to protect a small
cell", never as "<10".
"""

from __future__ import annotations

from datetime import datetime
from typing import Generic, Literal, TypeVar

from pydantic import BaseModel, Field

T = TypeVar("T")

#: A published count: a number, None (a small cell, "<10") or "withheld" (protects one).
Count = int | Literal["withheld"] | None

RequestStatus = Literal["complied", "partial", "refused", "pending", "unknown"]

#: How a (state, field) cell of the availability heat map reads.
Availability = Literal[
    "supplied",  # in the loaded data
    "sealed",  # present only as a keyed token
    "allowed_missing",  # the law allows it; the loaded data does not have it
    "allowed_no_data",  # the law allows it; no data loaded for the state yet
    "withheld",  # the state's law does not make it public
    "unknown_law",  # law not known: treated as withheld (most restrictive)
    "not_applicable",  # e.g. party where the state has no party registration
    "not_collected",  # no state supplies it to the compiler (no place in the schema)
    "violation",  # in the data although the law withholds it: must be investigated
]


class Section(BaseModel, Generic[T]):
    """A report section: the data, or the plain reason it is not available."""

    data: T | None = None
    missing: str | None = None

    @property
    def available(self) -> bool:
        return self.data is not None


# --------------------------------------------------------------------------
# Coverage
# --------------------------------------------------------------------------


class StateCoverage(BaseModel):
    state: str
    status: RequestStatus = "unknown"
    #: registrations loaded in the workspace (None = none, or a suppressed small cell).
    registrations_loaded: Count = None
    has_data: bool = False
    #: the state's weight in national shares: registrants, or a documented
    #: proxy for them (see Coverage.registrants_note).
    registrants: int | None = None
    #: this state's share of the national registrants (weight / total).
    registrant_share: float | None = None
    #: share of the requested fields the state's law allows / the data delivers.
    allowed_field_share: float | None = None
    delivered_field_share: float | None = None
    date_responded: str | None = None
    snapshot_date: str | None = None  # when the current snapshot was ingested
    note: str | None = None


class Coverage(BaseModel):
    states: list[StateCoverage]
    #: where the status came from (request tracker, or the shipped 2017 snapshot).
    status_source: str
    registrations_loaded: Count = None
    states_with_data: int = 0
    #: registrant-weighted national shares (None when unknown).
    share_registrants_with_data: float | None = None
    share_registrants_responding: float | None = None
    allowed_field_share: float | None = None
    delivered_field_share: float | None = None
    registrants_note: str | None = None

    def count(self, status: str) -> int:
        return sum(1 for s in self.states if s.status == status)


# --------------------------------------------------------------------------
# Field availability x state
# --------------------------------------------------------------------------


class FieldCell(BaseModel):
    state: str
    field: str
    availability: Availability
    #: share of the state's loaded rows with a non-null value, if loaded.
    non_null_share: float | None = None
    law: str | None = None  # short label of what the policy says


class FieldAvailability(BaseModel):
    fields: list[str]  # row labels, in display order
    states: list[str]
    cells: list[FieldCell]
    policy_source: str


# --------------------------------------------------------------------------
# Uniformity
# --------------------------------------------------------------------------


class CodeCount(BaseModel):
    code: str
    count: int | None  # None = suppressed (<10)


class UniformityRow(BaseModel):
    state: str
    field: str
    rows: int | None  # None = suppressed
    non_null_share: float | None = None
    plausible_share: float | None = None  # among non-null values
    unmapped: int | None = None  # rows whose original code did not map
    unmapped_codes: list[CodeCount] = Field(default_factory=list)
    dataset: str = "registrations"  # or vote_history
    present: bool | None = None  # the state's format carries the field at all
    policy: str | None = None  # allowed / generalised / withheld / not_governed
    repaired: int | None = None  # values normalisation repaired
    nulled: int | None = None  # values normalisation removed as unreadable
    withheld_values: int | None = None  # values dropped at ingest because the law withholds them


class Uniformity(BaseModel):
    rows: list[UniformityRow]
    source: str
    fields: list[str]
    states: list[str]


# --------------------------------------------------------------------------
# Match probabilities
# --------------------------------------------------------------------------


class HistogramSeries(BaseModel):
    label: str
    counts: list[Count]  # one per bin of MatchDistribution.bin_edges; None = "<10"
    total: Count


class CalibrationBand(BaseModel):
    """One band of match probability in the calibration check without truth.

    ``pairs`` is a published count ("<10" / "withheld" hide it and, with it, the
    band's expected figures, which are bounded by it).
    """

    p_from: float
    p_to: float
    pairs: Count
    expected_by_birthday_model: float | None = None
    expected_by_linkage: float | None = None
    ratio: float | None = None  # birthday model / linkage; None where linkage's sum is 0


class LinkCalibration(BaseModel):
    """Expected same-person pairs on the exact stratum: birthday model vs linkage (voterolls.stats.calibration)."""

    bands: list[CalibrationBand]
    total: CalibrationBand
    reading: str


class MatchDistribution(BaseModel):
    #: edges of the published bins: equal bins, with adjacent bins merged where
    #: one would hold 1..9 pairs (voterolls.privacy.merge_bins).
    bin_edges: list[float]
    series: list[HistogramSeries]  # first = all pairs, then by DOB granularity
    total_pairs: Count
    pairs_at_least_half: Count
    pairs_at_least_09: Count
    #: sum of match probabilities = expected number of true matches among the
    #: scored pairs, if the probabilities are calibrated.
    expected_true_matches: float | None
    cross_state_pairs: Count = None
    in_state_pairs: Count = None
    #: set when the cross-/in-state split is not published (one side has 1..9 pairs).
    split_note: str | None = None
    # from link/link_report.json, when the linkage stage wrote one
    candidate_pairs: int | None = None  # all pairs compared (most scored near 0, not stored)
    min_probability: float | None = None  # pairs below this are not written to pairs.parquet
    mass_below_min: float | None = None  # their summed probability
    threshold: float | None = None  # the linkage stage's match threshold
    clusters: int | None = None
    registrations_in_multi_clusters: int | None = None
    engine: str | None = None
    #: from the ``calibration`` block the estimate stage adds to link_report.json
    calibration: LinkCalibration | None = None


# --------------------------------------------------------------------------
# Estimates
# --------------------------------------------------------------------------


class Estimate(BaseModel):
    key: str
    label: str
    point: float | None
    low: float | None = None
    high: float | None = None
    level: float | None = 0.95
    kind: Literal["estimate", "count", "expected", "ratio"] = "estimate"
    note: str | None = None
    #: the unclipped interval (stats' ``ci95_signed``) and whether the shown one was clipped at 0.
    low_signed: float | None = None
    high_signed: float | None = None
    truncated_at_zero: bool | None = None
    #: the states the figure rests on, and their share of US registrants.
    rests_on_states: list[str] = Field(default_factory=list)
    rests_on_share: float | None = None
    #: DOB classes: covered states with a birth year only (the rest of rests_on_states give a
    #: full date), and loaded states left out because they give no DOB.
    rests_on_year_only: list[str] = Field(default_factory=list)
    excluded_no_dob: list[str] = Field(default_factory=list)
    #: an interval whose upper end is unbounded (a ratio whose denominator may be 0).
    high_unbounded: bool = False
    #: a national figure, only where stats made one with an explicit model.
    national: float | None = None
    national_low: float | None = None
    national_high: float | None = None
    national_label: str | None = None  # "national, extrapolated" / "covered states only"
    national_model: str | None = None  # the model, or why there is no national figure


class Purge(BaseModel):
    """What removing one record of every Crosscheck-rule match would do (Goel et al. 2020)."""

    rule: str | None = None
    registrations_removed: int | None = None  # suppressed small cells are None
    removed_registrations_used_to_vote: int | None = None
    double_votes_prevented: Estimate | None = None
    legitimate_votes_blocked: float | None = None
    legitimate_votes_blocked_low: float | None = None
    legitimate_votes_blocked_high: float | None = None
    ratio: float | None = None  # legitimate votes blocked per double vote prevented
    ratio_low: float | None = None
    ratio_high: float | None = None
    basis: str | None = None


class Headline(BaseModel):
    """One reconciled statement of cross-state duplicate registrations.

    The estimate for the covered states (with its interval and DOB classes),
    the national figure beside it with its model, and what linkage found at
    the review threshold, with a sentence saying how they relate.
    """

    estimate: Estimate
    review_threshold: float
    #: cross-state pairs linkage scored at or above the review threshold: all loaded states,
    #: and between two covered states (published counts), with their summed probability.
    pairs_at_review: Count = None
    pairs_at_review_covered: Count = None
    expected_true_covered: float | None = None
    relation: str = ""


class Estimates(BaseModel):
    duplicate_registrations: Estimate | None = None  # cross-state (headline)
    duplicate_registrations_in_state: Estimate | None = None
    double_votes: Estimate | None = None
    coincidences_expected: Estimate | None = None
    crosscheck_flagged: Estimate | None = None
    purge_ratio: Estimate | None = None
    purge: Purge | None = None
    headline_block: Headline | None = None
    other: list[Estimate] = Field(default_factory=list)
    election: str | None = None
    vote_history_states: list[str] = Field(default_factory=list)
    votes_recorded: int | None = None
    double_vote_rate: float | None = None  # per recorded voter
    double_votes_missing: str | None = None
    linkage_used: bool | None = None  # were match probabilities part of the estimates?
    coverage_note: str | None = None
    method_note: str | None = None
    generated_at: str | None = None

    def headline(self) -> list[Estimate]:
        return [
            e
            for e in (
                self.crosscheck_flagged,
                self.coincidences_expected,
                self.duplicate_registrations,
                self.double_votes,
            )
            if e is not None
        ]


# --------------------------------------------------------------------------
# Methods and caveats (facts the plain-language section quotes)
# --------------------------------------------------------------------------


class Protections(BaseModel):
    sealed_fields: list[str]  # fields held only as keyed tokens
    states_with_sealed_tokens: list[str]
    states_dob_full: list[str]
    states_dob_year: list[str]
    states_dob_none_or_unknown: list[str]
    suppression_threshold: int = 10
    suppression_source: str = "voterolls.privacy"
    quarantined_rows: int | None = None
    protected_excluded: int | None = None


class Freshness(BaseModel):
    """Whether a derived product was built from the snapshots the workspace holds now."""

    product: str  # "linkage", "estimates"
    stale: bool
    recorded: bool
    message: str  # the banner text, with the command to run ('' when current)
    built_from: dict[str, str] | None = None


class ReportData(BaseModel):
    title: str = "National voter-list compilation: coverage, linkage and honest estimates"
    generated_at: str = Field(
        default_factory=lambda: datetime.now().astimezone().isoformat(timespec="seconds")
    )
    workspace_label: str = ""
    version: str = ""
    #: the current snapshot of every state this report's registration figures come from.
    built_from: dict[str, str] = Field(default_factory=dict)
    #: one entry per derived product the report shows (linkage, estimates).
    freshness: list[Freshness] = Field(default_factory=list)
    #: link to the "inside the model" page (Splink's charts), when a model exists.
    model_page: str | None = None
    coverage: Section[Coverage] = Field(
        default_factory=lambda: Section[Coverage](missing="not gathered")
    )
    fields: Section[FieldAvailability] = Field(
        default_factory=lambda: Section[FieldAvailability](missing="not gathered")
    )
    uniformity: Section[Uniformity] = Field(
        default_factory=lambda: Section[Uniformity](missing="not gathered")
    )
    matches: Section[MatchDistribution] = Field(
        default_factory=lambda: Section[MatchDistribution](missing="not gathered")
    )
    estimates: Section[Estimates] = Field(
        default_factory=lambda: Section[Estimates](missing="not gathered")
    )
    protections: Protections = Field(
        default_factory=lambda: Protections(
            sealed_fields=[],
            states_with_sealed_tokens=[],
            states_dob_full=[],
            states_dob_year=[],
            states_dob_none_or_unknown=[],
        )
    )
