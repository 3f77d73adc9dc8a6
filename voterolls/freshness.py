"""Is a derived product built from the data the workspace holds now?

Linkage, estimates and lists are computed from the current snapshot of every
state.  Each records the snapshot ids it was built from
(:meth:`voterolls.store.Workspace.record_built_from` writes
``<product dir>/built_from.json``).  After a new snapshot of a state, a product
built on the old one is *stale*: its pairs may name registrations that no
longer exist and its figures mix old and new data.  :func:`check` compares
the record with the workspace's current snapshots; the report, the service
pages and the CLI print :meth:`Staleness.message` prominently, with the
command that brings the product up to date.  Nothing is recomputed silently.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass
from pathlib import Path

#: product -> (directory under the workspace, command that rebuilds it, what depends on it)
PRODUCTS: dict[str, tuple[str, str]] = {
    "linkage": ("link", "voterolls link, then voterolls estimate and voterolls lists"),
    "estimates": ("estimates", "voterolls estimate"),
}


#: how each product is named in a sentence ("The ... are out of date")
LABELS = {"linkage": "linkage results", "estimates": "estimates"}


@dataclass(frozen=True)
class Staleness:
    """How a product's recorded snapshots differ from the workspace's current ones."""

    product: str
    command: str
    built_from: dict[str, str] | None
    superseded: tuple[tuple[str, str, str], ...] = ()  # (state, built from, current)
    added: tuple[str, ...] = ()  # states loaded since
    removed: tuple[str, ...] = ()  # states no longer in the workspace
    present: bool = True  # False: the product has not been built at all

    @property
    def recorded(self) -> bool:
        return self.built_from is not None

    @property
    def stale(self) -> bool:
        return bool(self.superseded or self.added or self.removed)

    def message(self) -> str:
        """One plain sentence for a banner or a CLI warning ('' when current or not built)."""
        name = LABELS.get(self.product, self.product)
        if not self.present:
            return ""
        if not self.recorded:
            return (
                f"The {name} do not record which snapshots they were built from "
                f"(made before this was recorded); if any state was ingested since, run {self.command}."
            )
        if not self.stale:
            return ""
        parts = []
        if self.superseded:
            parts.append(
                "built from older snapshots of "
                + ", ".join(f"{st} ({old}; now {new})" for st, old, new in self.superseded)
            )
        if self.added:
            parts.append("missing states loaded since: " + ", ".join(self.added))
        if self.removed:
            parts.append("including states no longer loaded: " + ", ".join(self.removed))
        return f"The {name} are out of date: {'; '.join(parts)}. Run {self.command}."


def compare(
    product: str, command: str, built_from: dict[str, str] | None, current: dict[str, str]
) -> Staleness:
    if built_from is None:
        return Staleness(product, command, None)
    return Staleness(
        product,
        command,
        dict(built_from),
        superseded=tuple(
            (st, built_from[st], current[st])
            for st in sorted(built_from)
            if st in current and current[st] != built_from[st]
        ),
        added=tuple(sorted(set(current) - set(built_from))),
        removed=tuple(sorted(set(built_from) - set(current))),
    )


def check(workspace, product: str, product_dir: Path | None = None, command: str | None = None) -> Staleness:
    """Compare ``product``'s record with ``workspace`` (a :class:`voterolls.store.Workspace`)."""
    sub, default_command = PRODUCTS.get(product, (product, f"voterolls {product}"))
    d = Path(product_dir) if product_dir is not None else Path(workspace.path) / sub
    if not d.is_dir():
        return Staleness(product, command or default_command, None, present=False)
    return compare(product, command or default_command, workspace.built_from(d), workspace.current())


def existing(workspace) -> list[Staleness]:
    """The check of every workspace product that exists (linkage, estimates)."""
    out = []
    for product, (sub, _) in PRODUCTS.items():
        d = Path(workspace.path) / sub
        if d.is_dir() and any(d.iterdir()):
            out.append(check(workspace, product))
    return out


def warn(staleness: list[Staleness], stream=None) -> None:
    """Print a warning line for each stale (or unrecorded) product, to stderr."""
    stream = stream or sys.stderr
    for s in staleness:
        if s.message():
            print(f"warning: {s.message()}", file=stream)
