"""Which formats exist and which one each state publishes in.

Formats are discovered from the TOML files in ``layouts/``; a user's own
mapping file is loaded with :func:`load_user_format`.
"""

from __future__ import annotations

from functools import cache
from importlib import resources
from pathlib import Path

from voterolls.errors import UserError, require_file
from voterolls.formats.spec import Format, load_format

#: The format ``write_native`` uses for each state; every other state gets ``generic``.
STATE_FORMATS: dict[str, str] = {
    "NC": "nc_ncvoter_2022",
    "OH": "oh_swvf",
    "FL": "fl_extract",
    "WA": "wa_vrdb_2024",
    "NY": "ny_statewide",
    "PA": "pa_fve",
    "MI": "mi_qvf_csv",
    "GA": "ga_csv",
    "TX": "tx_csv",
    "CO": "co_csv",
}

GENERIC = "generic"


@cache
def _all() -> dict[str, Format]:
    out: dict[str, Format] = {}
    root = resources.files("voterolls.formats") / "layouts"
    for entry in sorted(root.iterdir(), key=lambda e: e.name):
        if entry.name.endswith(".toml"):
            with resources.as_file(entry) as p:
                fmt = load_format(p)
            out[fmt.name] = fmt
    return out


def formats() -> dict[str, Format]:
    """All shipped formats by name."""
    return dict(_all())


def get_format(name: str) -> Format:
    try:
        return _all()[name]
    except KeyError:
        raise UserError(
            f"unknown format {name!r}; known formats: {', '.join(sorted(_all()))}"
        ) from None


def format_for_state(state: str) -> Format:
    """The format a state publishes in (``generic`` when no layout is shipped)."""
    name = STATE_FORMATS.get(state.upper(), GENERIC)
    if name not in _all():  # a layout not written yet: fall back, documented in FORMATS.md
        name = GENERIC
    return _all()[name]


def load_user_format(path: str | Path) -> Format:
    """Load a user-written mapping file, turning validation errors into a UserError."""
    require_file(path, "mapping file")
    try:
        return load_format(path)
    except FileNotFoundError:
        raise UserError("mapping file not found", file=path) from None
    except Exception as exc:  # tomllib / pydantic errors: name the file, keep the message
        raise UserError(f"invalid mapping file: {exc}", file=path) from None
