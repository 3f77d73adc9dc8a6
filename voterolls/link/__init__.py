"""Linkage: which registrations, across and within states, belong to one person.

Fellegi-Sunter via Splink 5, trained without labels, scored with calibrated
match probabilities, on DuckDB (default) or Spark.  See docs/LINKAGE.md.

Entry points::

    from voterolls.link.run import link_registrations        # one run -> W/link/*
    from voterolls.link.crosscheck import crosscheck_pairs    # the Crosscheck rule
    from voterolls.link.evaluate import evaluate              # against synthetic truth
"""
