"""Option defaults the CLI needs before numpy/DuckDB are imported."""

#: Default vote-record error: the share of vote records credited to a
#: registration that did not cast the ballot.  Goel et al. (2020) audited
#: Philadelphia poll books against the voter file and found errors of about
#: this size, enough to explain most apparent double votes.
DEFAULT_ERROR_RATE = 0.01
