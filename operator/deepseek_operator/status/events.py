"""Which Event a reconcile posts: one per pass at most, naming every decision it took.

Decisions come from comparing the status before and after the pass, plus what was applied and
deleted. Several decisions in one pass become one Event (the most important reason, every message)
so a deployment's convergence costs one Event write, not five.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from deepseek_operator.api.constants import ConditionType, EventReason
from deepseek_operator.api.v1alpha1 import DeepSeekDeploymentStatus
from deepseek_operator.status.conditions import find_condition, is_true

__all__ = ["Decision", "decide_event"]


@dataclass(frozen=True)
class Decision:
    """The Event of one pass."""

    type: str
    """`Normal` or `Warning` (user-actionable problems only)."""
    reason: EventReason
    message: str


def decide_event(
    previous: DeepSeekDeploymentStatus,
    current: DeepSeekDeploymentStatus,
    *,
    applied: Sequence[str],
    deleted: Sequence[str],
) -> Decision | None:
    """The pass's Event, or None when it decided nothing new. Earlier entries outrank later ones:
    a user-actionable problem, then readiness, then planning, applying and deleting objects."""
    decisions: list[tuple[str, EventReason, str]] = []
    degraded = find_condition(current.conditions, ConditionType.DEGRADED)
    was_degraded = find_condition(previous.conditions, ConditionType.DEGRADED)
    newly_degraded = was_degraded is None or (was_degraded.status, was_degraded.message) != (
        "True",
        degraded.message if degraded else None,
    )
    if degraded is not None and degraded.status == "True" and newly_degraded:
        reason = (
            EventReason.VALIDATION_FAILED
            if current.phase in ("Invalid", "Infeasible")
            else EventReason.DEGRADED
        )
        decisions.append(("Warning", reason, degraded.message))
    if is_true(current.conditions, ConditionType.READY) and not is_true(
        previous.conditions, ConditionType.READY
    ):
        decisions.append(("Normal", EventReason.READY, f"{current.current_version} is serving"))
    if current.plan is not None and current.plan != previous.plan:
        plan = current.plan
        decisions.append(
            (
                "Normal",
                EventReason.PLANNED,
                f"planned TP={plan.tensor_parallel_size} DP={plan.data_parallel_size} "
                f"EP={plan.expert_parallel_size} on {plan.nodes_per_group} node(s) per group",
            )
        )
    if applied:
        decisions.append(("Normal", EventReason.APPLIED, f"applied {', '.join(applied)}"))
    if deleted:
        decisions.append(("Normal", EventReason.DELETED, f"deleted {', '.join(deleted)}"))
    if not decisions:
        return None
    kind = "Warning" if any(event_type == "Warning" for event_type, _, _ in decisions) else "Normal"
    return Decision(kind, decisions[0][1], "; ".join(message for _, _, message in decisions))
