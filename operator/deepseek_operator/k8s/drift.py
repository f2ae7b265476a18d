"""Whether a cluster object drifted from what we render (pure).

Every field we set must hold our value; fields the API server or other controllers add (defaults,
`status`, `clusterIP`) are theirs. Lists must match in length and item by item (our lists are
atomic: an item added by hand is drift); maps that Kubernetes treats as a whole (a Service's
`selector`) must match exactly, so a selector widened or narrowed by hand is drift too. A hand
edit of a field we set is therefore reverted on the next pass that sees it, while a steady state
costs no write.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

__all__ = ["differs"]

ATOMIC_MAPS = {("Service", ("spec", "selector"))}
"""(kind, path) of maps compared whole."""


def differs(rendered: Mapping[str, Any], current: Mapping[str, Any]) -> bool:
    """Whether `current` (from the cluster) differs from `rendered` in anything we set."""
    kind = str(rendered.get("kind", ""))
    for section in ("metadata", "spec", "data"):
        if section in rendered and not _holds(rendered[section], current.get(section), kind, (section,)):
            return True
    return False


def _holds(ours: Any, theirs: Any, kind: str, path: tuple[str, ...]) -> bool:
    if isinstance(ours, Mapping):
        if not isinstance(theirs, Mapping):
            return False
        if (kind, path) in ATOMIC_MAPS:
            return dict(ours) == dict(theirs)
        return all(_holds(value, theirs.get(key), kind, (*path, key)) for key, value in ours.items())
    if isinstance(ours, list):
        return (
            isinstance(theirs, list)
            and len(ours) == len(theirs)
            and all(_holds(a, b, kind, (*path, "[]")) for a, b in zip(ours, theirs, strict=True))
        )
    return bool(ours == theirs)
