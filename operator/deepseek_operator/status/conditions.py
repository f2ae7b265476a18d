"""Conditions that follow the `metav1.Condition` contract (STYLE.md rule 7).

- `lastTransitionTime` changes only when `status` flips; a new reason or message alone keeps it.
- Every owned condition exists from the first reconcile (Unknown / Initializing).
- `Ready` first, then `Progressing`, then `Degraded`; foreign conditions keep their place after.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from deepseek_operator.api.constants import ConditionStatus, ConditionType, Reason
from deepseek_operator.api.v1alpha1 import Condition

__all__ = ["OWNED_CONDITIONS", "find_condition", "initial_conditions", "is_true", "set_condition"]

OWNED_CONDITIONS = (ConditionType.READY, ConditionType.PROGRESSING, ConditionType.DEGRADED)


def find_condition(conditions: Sequence[Condition], kind: ConditionType) -> Condition | None:
    return next((condition for condition in conditions if condition.type == kind), None)


def is_true(conditions: Sequence[Condition], kind: ConditionType) -> bool:
    found = find_condition(conditions, kind)
    return found is not None and found.status == ConditionStatus.TRUE.value


def set_condition(
    conditions: Sequence[Condition],
    kind: ConditionType,
    status: ConditionStatus,
    reason: Reason,
    message: str,
    *,
    generation: int | None,
    now: datetime,
) -> list[Condition]:
    """`conditions` with `kind` set; `lastTransitionTime` moves only when `status` changes."""
    previous = find_condition(conditions, kind)
    transition = now if previous is None or previous.status != status.value else previous.last_transition_time
    updated = Condition(
        type=kind.value,
        status=status.value,
        reason=reason.value,
        message=message,
        last_transition_time=transition,
        observed_generation=generation,
    )
    others = [condition for condition in conditions if condition.type != kind]
    return _ordered([*others, updated])


def initial_conditions(
    conditions: Sequence[Condition], *, generation: int | None, now: datetime
) -> list[Condition]:
    """Every owned condition present: missing ones become Unknown / Initializing."""
    result = list(conditions)
    for kind in OWNED_CONDITIONS:
        if find_condition(result, kind) is None:
            result = set_condition(
                result,
                kind,
                ConditionStatus.UNKNOWN,
                Reason.INITIALIZING,
                "not reconciled yet",
                generation=generation,
                now=now,
            )
    return result


def _ordered(conditions: list[Condition]) -> list[Condition]:
    rank = {kind.value: index for index, kind in enumerate(OWNED_CONDITIONS)}
    return sorted(conditions, key=lambda condition: rank.get(condition.type, len(rank)))
