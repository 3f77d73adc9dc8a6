"""Linkage: which registrations, across and within states, belong to one person.

Fellegi-Sunter via Splink 5, trained without labels, scored with calibrated
match probabilities, on DuckDB (default) or Spark.  See docs/LINKAGE.md.

Entry points::

    from voterolls.link.run import LinkRequest, link_registrations  # one run -> W/link/*
    from voterolls.link.crosscheck import crosscheck_pairs    # the Crosscheck rule
    from voterolls.link.evaluate import evaluate              # against synthetic truth
    from voterolls.link import estimate_prior, prior_fixed_point  # the prior, label-free

``prior_fixed_point`` solves the base rate of matches among scored pairs for
any pair of lists (the external-list matcher uses it); ``estimate_prior``
is the national run's version (full-DOB pairs, carried to all pairs).
"""

from __future__ import annotations

from typing import Any

__all__ = ["estimate_prior", "log2_odds", "prior_fixed_point", "PriorEstimate"]


def __getattr__(name: str) -> Any:
    # Lazy: importing voterolls.link must not import Splink.
    if name in __all__:
        from voterolls.link import train

        return getattr(train, name)
    raise AttributeError(name)
