"""The multi-state intake service: uploads, roles, and a tamper-evident audit log.

``create_app(workspace)`` builds the FastAPI app; ``voterolls serve`` runs it.
See docs/SERVICE.md.  Modules: ``accounts`` (roles and tokens), ``auth``
(bearer tokens and session cookies), ``uploads`` (streamed, checked files),
``jobs`` (background ingest), ``audit`` (hash-chained log), ``data`` (what
each role may read), ``app`` (routes and pages), ``commands`` (CLI).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from fastapi import FastAPI

__all__ = ["create_app"]


def create_app(*args, **kwargs) -> FastAPI:
    """See :func:`voterolls.service.app.create_app` (imported lazily: the CLI starts fast)."""
    from voterolls.extras import require_extra

    require_extra("service", "the intake service")
    from voterolls.service.app import create_app as _create

    return _create(*args, **kwargs)
