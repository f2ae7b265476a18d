"""Which Events a reconcile posts: one for the pass's bookkeeping, one per lifecycle decision.

Bookkeeping decisions come from comparing the status before and after the pass (a new problem,
readiness, a new plan, a group count Ray Serve changed) plus what was applied and deleted; they
share one Event, named after the most important, so a deployment's convergence costs one Event
write, not five. Every lifecycle decision (a rollout started, a step, a promotion, a rollback)
is an Event of its own: those are the decisions people audit.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from deepseek_operator.api.constants import ConditionType, EventReason, Phase
from deepseek_operator.api.v1alpha1 import DeepSeekDeploymentStatus
from deepseek_operator.rollout import Note
from deepseek_operator.status.conditions import find_condition, is_true

__all__ = ["Decision", "decide_events"]


@dataclass(frozen=True)
class Decision:
    """One Event."""

    type: str
    """`Normal` or `Warning` (user-actionable problems only)."""
    reason: EventReason
    message: str


def decide_events(
    previous: DeepSeekDeploymentStatus,
    current: DeepSeekDeploymentStatus,
    *,
    applied: Sequence[str],
    deleted: Sequence[str],
    corrected: Sequence[str] = (),
    adopted: Sequence[str] = (),
    notes: Sequence[Note] = (),
) -> list[Decision]:
    """The pass's Events, most important first; empty when it decided nothing new."""
    lifecycle = [
        Decision("Warning" if note.warning else "Normal", note.reason, note.message) for note in notes
    ]
    bookkeeping = _bookkeeping(
        previous, current, applied=applied, corrected=corrected, adopted=adopted, deleted=deleted
    )
    return [*lifecycle, *([bookkeeping] if bookkeeping else [])]


def _bookkeeping(
    previous: DeepSeekDeploymentStatus,
    current: DeepSeekDeploymentStatus,
    *,
    applied: Sequence[str],
    corrected: Sequence[str],
    adopted: Sequence[str],
    deleted: Sequence[str],
) -> Decision | None:
    """Earlier entries outrank later ones: a user-actionable problem, then readiness, then
    scaling, planning, drift reverted, orphans adopted, objects applied and deleted."""
    decisions: list[tuple[str, EventReason, str]] = []
    degraded = find_condition(current.conditions, ConditionType.DEGRADED)
    was_degraded = find_condition(previous.conditions, ConditionType.DEGRADED)
    newly_degraded = was_degraded is None or (was_degraded.status, was_degraded.message) != (
        "True",
        degraded.message if degraded else None,
    )
    if degraded is not None and degraded.status == "True" and newly_degraded:
        reason = {
            Phase.INVALID.value: EventReason.VALIDATION_FAILED,
            Phase.INFEASIBLE.value: EventReason.VALIDATION_FAILED,
        }.get(current.phase or "", EventReason.DEGRADED)
        if degraded.reason == EventReason.NAME_CONFLICT.value:
            reason = EventReason.NAME_CONFLICT
        decisions.append(("Warning", reason, degraded.message))
    if is_true(current.conditions, ConditionType.READY) and not is_true(
        previous.conditions, ConditionType.READY
    ):
        decisions.append(("Normal", EventReason.READY, f"{current.current_version} is serving"))
    decisions += [("Normal", EventReason.SCALED, message) for message in _group_changes(previous, current)]
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
    if corrected:
        decisions.append(
            ("Normal", EventReason.DRIFT_CORRECTED, f"reverted hand edits of {', '.join(corrected)}")
        )
    if adopted:
        decisions.append(("Normal", EventReason.ADOPTED, f"adopted {', '.join(adopted)}"))
    if applied:
        decisions.append(("Normal", EventReason.APPLIED, f"applied {', '.join(applied)}"))
    if deleted:
        decisions.append(("Normal", EventReason.DELETED, f"deleted {', '.join(deleted)}"))
    if not decisions:
        return None
    kind = "Warning" if any(event_type == "Warning" for event_type, _, _ in decisions) else "Normal"
    return Decision(kind, decisions[0][1], "; ".join(message for _, _, message in decisions))


def _group_changes(previous: DeepSeekDeploymentStatus, current: DeepSeekDeploymentStatus) -> list[str]:
    """'<version>: 1 → 2 group(s) (<why>)' for every version whose Serve target changed (the
    autoscaler's decisions, a rollout's resizing, `kubectl scale`); why is the autoscaler's logged
    reason when one was found for this change."""
    before = {(entry.version, entry.revision): entry.desired_groups for entry in previous.traffic}
    changes = []
    for entry in current.traffic:
        old = before.get((entry.version, entry.revision))
        if old is not None and entry.desired_groups is not None and old != entry.desired_groups:
            why = f" ({entry.last_scaling.describe()})" if entry.last_scaling else ""
            changes.append(f"{entry.version}: {old} → {entry.desired_groups} group(s){why}")
    return changes
