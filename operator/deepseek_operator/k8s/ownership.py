"""Whose is a child object: this deployment's, an orphan it may adopt, or someone else's (pure).

An object this deployment did not create is never overwritten or deleted: a name it needs that
another owner holds makes the deployment Degraded (NameConflict) with the object and its owner.
An orphan, left behind by `kubectl delete --cascade=orphan` of an earlier deployment of the same
name, carries our labels and no controller: applying adopts it (sets the owner reference).
"""

from __future__ import annotations

from collections.abc import Mapping
from enum import Enum
from typing import Any

from deepseek_operator.api import constants

__all__ = ["Ownership", "ownership_of"]


class Ownership(Enum):
    OURS = "ours"
    ORPHAN = "orphan"
    FOREIGN = "foreign"


def ownership_of(body: Mapping[str, Any], deployment: str, uid: str | None) -> Ownership:
    """Whose `body` is, for the deployment named `deployment` with `uid`."""
    metadata = body.get("metadata") or {}
    controller = next((ref for ref in metadata.get("ownerReferences") or [] if ref.get("controller")), None)
    if controller is not None:
        return Ownership.OURS if uid is not None and controller.get("uid") == uid else Ownership.FOREIGN
    labels = metadata.get("labels") or {}
    ours = (
        labels.get(constants.LABEL_MANAGED_BY) == constants.MANAGED_BY
        and labels.get(constants.LABEL_DEPLOYMENT) == deployment
        and not metadata.get("deletionTimestamp")
    )
    return Ownership.ORPHAN if ours else Ownership.FOREIGN
