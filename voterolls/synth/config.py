"""Every rate the synthetic population uses, with its default and why.

The defaults are written down here (and in docs/SYNTH.md) so that a test, a
benchmark or a linkage evaluation can say exactly which world it was run on:
``SynthConfig().to_dict()`` goes into ``truth/config.json`` beside the output.
Change a rate with ``SynthConfig(stale_cross_state_rate=0.05)``; the values
are validated on construction so a typo does not silently produce a strange
population.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
from dataclasses import dataclass, field

#: People on US voter lists, the size a ``namesake_density="national"`` nation
#: imitates (EAVS 2024: ~240M listed registrations incl. inactive and
#: duplicates; ~200M distinct people).
NATIONAL_PEOPLE = 200_000_000

VOTE_ERROR_MECHANISMS = ("wrong_registration", "false_mark")


def namesake_people(density: str | float, people: int) -> float:
    """The file size whose namesake density a nation of ``people`` imitates."""
    if density == "sample":
        return float(people)
    if density == "national":
        return float(NATIONAL_PEOPLE)
    if isinstance(density, int | float) and not isinstance(density, bool) and density >= 1:
        return float(density)
    raise ValueError(
        "SynthConfig.namesake_density must be 'sample', 'national' or a number of people >= 1, "
        f"got {density!r}"
    )


@dataclass(frozen=True)
class SynthConfig:
    """Noise and behaviour rates of the synthetic national voter population.

    All ``*_rate`` / ``*_share`` values are probabilities in [0, 1].  Unless a
    docstring says otherwise a rate applies independently per *record*
    (registration), not per person.
    """

    # --- the election whose turnout is simulated -----------------------------
    #: Election day of the one general election in the vote history.
    election_date: dt.date = dt.date(2024, 11, 5)
    #: Last day a registration can carry (close of books, ~3 weeks before).
    registration_cutoff: dt.date = dt.date(2024, 10, 15)

    # --- people ---------------------------------------------------------------
    #: Share of registered voters who are women.  CPS November 2020
    #: (Voting and Registration, Table 1): women are ~53% of registered voters.
    female_share: float = 0.53
    #: Gender recorded as U (not recorded) on a registration.  Several states
    #: do not collect gender at all; among those that do, blanks are common.
    gender_unknown_rate: float = 0.02
    #: Person has no middle name at all (truth).  Combined with
    #: ``middle_missing_rate`` about 20% of registrations show no middle name.
    middle_absent_rate: float = 0.08
    #: A registration omits a middle name the person has (clerk / form).
    middle_missing_rate: float = 0.13
    #: A registration shows only the middle initial (~15%, as in NC/OH files).
    middle_initial_rate: float = 0.15
    #: Men with a generational suffix (JR, SR, II, III, IV).  ~2.5% of male
    #: registrants in NC / OH files carry one; JR dominates.
    male_suffix_rate: float = 0.025
    #: Relative frequency of the suffixes among men who carry one.
    suffix_weights: dict[str, float] = field(
        default_factory=lambda: {"JR": 0.62, "SR": 0.20, "II": 0.07, "III": 0.09, "IV": 0.02}
    )
    #: A registration omits the suffix the person uses elsewhere.
    suffix_omitted_rate: float = 0.10
    #: Race recorded as unknown (where a state records race at all).
    race_unknown_rate: float = 0.05
    #: Confidential / protected voter (address-confidentiality programmes,
    #: Florida "exempt" records): ~0.3% per person, flagged on all their records.
    protected_rate: float = 0.003
    #: UOCAVA: military / overseas voters (~1.3M UOCAVA ballots requested in
    #: 2020 EAVS out of ~160M registrants, i.e. < 1%); split evenly.
    military_rate: float = 0.003
    overseas_rate: float = 0.004
    #: Phone on a registration (most forms make it optional).
    phone_rate: float = 0.55
    #: E-mail on a registration (newer online forms).
    email_rate: float = 0.25
    #: Person has a driver's licence / state id number on file (the rest
    #: registered with SSN4 only).
    dl_rate: float = 0.92

    # --- registrations beyond the current one ---------------------------------
    #: Persons who moved across a state line and whose old registration was
    #: never removed.  Pew (2012) found ~2.75M people registered in more than
    #: one state; with ~160M registrants that is ~1.7%; ERIC reports
    #: cross-state movers at a similar order.  3% makes the effect visible
    #: in small samples.  Per person.
    stale_cross_state_rate: float = 0.03
    #: Relative likelihood of a stale cross-state registration by age group
    #: (age at election: upper bound of the group -> weight), renormalised so
    #: the overall rate stays ``stale_cross_state_rate``.  Shape of CPS ASEC
    #: interstate mover rates: people in their 20s move across state lines
    #: two to three times as often as people over 65.
    stale_age_weights: dict[int, float] = field(
        default_factory=lambda: {29: 1.7, 44: 1.3, 64: 0.8, 200: 0.5}
    )
    #: Persons with a second registration in the same state (moved within the
    #: state and re-registered, or a double entry).  Per person.
    in_state_duplicate_rate: float = 0.005
    #: Status of a stale cross-state registration is inactive with this
    #: probability (NVRA confirmation notice unanswered), otherwise active.
    stale_inactive_rate: float = 0.65
    #: Same for an in-state duplicate.
    duplicate_inactive_rate: float = 0.50
    #: Status inactive on a current registration.  EAVS 2022: ~10% of
    #: registrants are inactive nationally.
    current_inactive_rate: float = 0.10
    #: Women whose stale registration carries a maiden name (surname change
    #: on marriage between the two registrations).  Per stale pair of a woman.
    marriage_surname_change_rate: float = 0.10
    #: An in-state duplicate keeps the same residence (a double entry) rather
    #: than an older address.
    duplicate_same_address_rate: float = 0.30

    # --- recording noise (per registration) ----------------------------------
    #: Share of registrations whose first name is recorded as a nickname
    #: (ROBERT -> BOB, from the ``nicknames`` package).  Only names with a
    #: nickname (about half of people) can carry one, so among them the
    #: probability is scaled up to keep this overall share.  Per record, so
    #: about 10% of duplicate pairs differ by a nickname on one side.
    nickname_rate: float = 0.05
    #: One-character typo (substitution, deletion, insertion, transposition)
    #: in the first or last name.  Data-entry error rates of 1-4% per field
    #: are typical in administrative lists.
    typo_rate: float = 0.02
    #: Day and month swapped (only possible when the day is <= 12 and differs
    #: from the month; the rate applies to such records).
    dob_transposition_rate: float = 0.005
    #: Placeholder DOB 1900-01-01 (legacy records with unknown DOB).
    placeholder_dob_rate: float = 0.001
    #: Day replaced by the first of the month (legacy conversions storing
    #: month and year only).
    first_of_month_rate: float = 0.003

    # --- vote history ----------------------------------------------------------
    #: Turnout among current registrations.  2024: ~155M ballots for ~240M
    #: registrations listed in EAVS incl. inactive; ~65% of registrations.
    turnout: float = 0.65
    #: Relative turnout by age group (upper bound of the group -> weight) on
    #: current registrations, renormalised so overall turnout stays
    #: ``turnout``.  Shape of CPS November 2020 voting rates by age.
    turnout_age_weights: dict[int, float] = field(
        default_factory=lambda: {24: 0.75, 34: 0.85, 44: 0.95, 64: 1.06, 200: 1.12}
    )
    #: Turnout of an inactive current registration relative to an active one
    #: (inactive registrants rarely vote: their address is in doubt).
    inactive_turnout_ratio: float = 0.3
    #: True double votes per voter: Goel et al. (APSR 2020) estimate about
    #: 1 in 4,000 voters cast two counted ballots in 2012.  Realised by
    #: persons with two registrations who vote on both.
    double_vote_rate: float = 1 / 4000
    #: Vote records credited to the wrong registrant in the same state (poll
    #: book or scanning error).  Goel et al. estimate ~1% of vote records.
    vote_record_error_rate: float = 0.01
    #: Vote method mix in states that are not all-mail (EAVS 2022/2024 order of
    #: magnitude: ~45% election day, ~30% early in person, ~25% by mail).
    method_mix: dict[str, float] = field(
        default_factory=lambda: {"in_person": 0.45, "early": 0.30, "mail": 0.25}
    )
    #: Vote method mix in all-mail states (CO, HI, OR, UT, WA, NV, CA, VT, DC).
    all_mail_method_mix: dict[str, float] = field(
        default_factory=lambda: {"in_person": 0.07, "early": 0.05, "mail": 0.88}
    )

    # --- alternative data-generating processes (docs/SYNTH.md) -----------------
    #: How dense namesakes (same first + last name + birth year) are per person.
    #: ``"sample"``: names drawn from the national tables as they are, so a
    #: sample of N people has the namesakes of an N-person nation (far fewer per
    #: person than a national file).  ``"national"``: first and last name pools
    #: folded (rank r -> r mod K, K solved) until the expected namesakes per
    #: person equal those of a :data:`NATIONAL_PEOPLE` file; a number: the same
    #: for a file of that many people.  Middle names are not folded.
    namesake_density: str | float = "sample"
    #: ``"wrong_registration"``: an erring ballot is credited to a random
    #: non-voting record of the same state and the real voter's record loses the
    #: mark.  ``"false_mark"``: a non-voting record gets a "voted" mark and the
    #: real voter keeps theirs (a scanning / data-entry error adding marks).
    vote_error_mechanism: str = "wrong_registration"
    #: Turnout on the current registration of a person who moved across a state
    #: line (has a stale registration) relative to everyone else (recent movers
    #: vote less often: CPS).  1 = no difference.
    mover_turnout_ratio: float = 1.0
    #: Share of stale and in-state duplicate registrations that the state has
    #: cancelled but keeps in its file (status ``cancelled``, NC code R).
    cancelled_kept_rate: float = 0.0
    #: Share of in-state duplicate registrations that are denied applications
    #: kept in the file (status ``denied``, NC code D).
    denied_kept_rate: float = 0.0
    #: Share of current registrations made after the election (the list was
    #: extracted some weeks later); they cannot have voted in it.
    late_registration_rate: float = 0.0

    def __post_init__(self) -> None:
        if self.vote_error_mechanism not in VOTE_ERROR_MECHANISMS:
            raise ValueError(
                f"SynthConfig.vote_error_mechanism must be one of {VOTE_ERROR_MECHANISMS}, "
                f"got {self.vote_error_mechanism!r}"
            )
        namesake_people(self.namesake_density, 1)  # validates
        for f in dataclasses.fields(self):
            value = getattr(self, f.name)
            if f.name.endswith(("_rate", "_share", "_ratio")) or f.name == "turnout":
                if not isinstance(value, int | float) or not 0.0 <= float(value) <= 1.0:
                    raise ValueError(
                        f"SynthConfig.{f.name} must be a probability in [0, 1], got {value!r}"
                    )
        for name in (
            "suffix_weights",
            "method_mix",
            "all_mail_method_mix",
            "stale_age_weights",
            "turnout_age_weights",
        ):
            weights = getattr(self, name)
            if not weights or any(w < 0 for w in weights.values()) or sum(weights.values()) <= 0:
                raise ValueError(
                    f"SynthConfig.{name} needs non-negative weights with a positive sum"
                )
        if self.registration_cutoff >= self.election_date:
            raise ValueError("SynthConfig.registration_cutoff must be before election_date")

    def to_dict(self) -> dict:
        """JSON-ready dict (dates ISO) for ``truth/config.json``."""
        out = {}
        for f in dataclasses.fields(self):
            value = getattr(self, f.name)
            if isinstance(value, dt.date):
                value = value.isoformat()
            elif isinstance(value, dict):  # JSON object keys are strings
                value = {str(k): v for k, v in value.items()}
            out[f.name] = value
        return out


def age_weight(ages, weights: dict[int, float]):
    """Per-age weight from ``{upper age of group: weight}`` (numpy array in, array out)."""
    import numpy as np

    bounds = np.array(sorted(weights))
    values = np.array([weights[b] for b in bounds], dtype=np.float64)
    idx = np.minimum(np.searchsorted(bounds, np.asarray(ages), side="left"), bounds.size - 1)
    return values[idx]
