"""Native state voter-file formats: read every state's published layout.

One declarative layout spec (``layouts/*.toml``, parsed by ``spec``) drives
the vectorised DuckDB reader (``scan``) and, in ``voterolls.synth.native``,
the writer the synthetic population publishes with (``write_native``); this
package only reads.  See docs/FORMATS.md.
"""

from __future__ import annotations

from voterolls.formats.detect import detect_format
from voterolls.formats.engine import ScannedFile, ScanReport
from voterolls.formats.registry import (
    STATE_FORMATS,
    format_for_state,
    formats,
    get_format,
    load_user_format,
)
from voterolls.formats.scan import Scan, scan
from voterolls.formats.spec import Format, load_format

FORMATS: tuple[str, ...] = tuple(sorted(formats()))

__all__ = [
    "Scan",
    "ScanReport",
    "ScannedFile",
    "detect_format",
    "scan",
    "FORMATS",
    "STATE_FORMATS",
    "Format",
    "format_for_state",
    "formats",
    "get_format",
    "load_format",
    "load_user_format",
]
