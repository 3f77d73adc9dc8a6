"""voterolls: compile state voter lists lawfully, link them honestly."""

__version__ = "0.1.0"

__all__ = ["__version__"]
