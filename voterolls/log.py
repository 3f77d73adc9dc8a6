"""Logging that is safe by construction.

Log records carry counts, state codes, file names and hashes; never row
values.  ``get_logger`` is the one way modules obtain a logger so the whole
package can be switched to DEBUG in one place (``VOTEROLLS_LOG=DEBUG``).
"""

from __future__ import annotations

import logging
import os

_CONFIGURED = False


def get_logger(name: str) -> logging.Logger:
    global _CONFIGURED
    if not _CONFIGURED:
        level = os.environ.get("VOTEROLLS_LOG", "WARNING").upper()
        root = logging.getLogger("voterolls")
        if not root.handlers:
            handler = logging.StreamHandler()
            handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
            root.addHandler(handler)
        root.setLevel(getattr(logging, level, logging.WARNING))
        _CONFIGURED = True
    return logging.getLogger(name if name.startswith("voterolls") else f"voterolls.{name}")
