"""The whole status of a deployment from what one reconcile learned and decided (pure, STYLE rule 8).

Which version serves, and with what weight, is the lifecycle's decision (`rollout.lifecycle`); this
module only writes it down and derives the conditions from it, one setter per condition:

- `Ready`: some version taking traffic has a group serving ("ready means serves": an invalid
  new spec or a rollout in trouble leaves it True while the old version serves);
- `Progressing`: a rollout runs (steps, analysis, pause), or the first version is starting;
- `Degraded`: something needs a person: the spec is invalid or cannot be planned, a child's name
  is taken, the last rollout was rolled back or aborted, a version's RayService failed.

`compute_phase` turns them into the one-word `phase` and the `message` people read first.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime

from deepseek_operator.api.constants import ConditionStatus, ConditionType, Phase, Reason
from deepseek_operator.api.v1alpha1 import (
    Condition,
    DeepSeekDeploymentStatus,
    PlanSummary,
    RolloutStatus,
    VersionTraffic,
)
from deepseek_operator.errors import FieldError
from deepseek_operator.rollout import (
    LifecycleDecision,
    ObservedVersion,
    Role,
    VersionRef,
    traffic_entry,
)
from deepseek_operator.status.conditions import initial_conditions, set_condition

__all__ = ["PassOutcome", "Rejected", "compute_phase", "compute_status"]


@dataclass(frozen=True)
class Rejected:
    """The resource cannot be served as written (invalid, or no plan fits)."""

    reason: Reason
    errors: Sequence[FieldError]


@dataclass(frozen=True)
class PassOutcome:
    """What one reconcile learned and decided."""

    observed: Mapping[VersionRef, ObservedVersion]
    decision: LifecycleDecision | None
    """None when the spec was rejected: the lifecycle waits, the status keeps its state."""
    rejected: Rejected | None = None
    conflicts: Sequence[str] = ()
    """Children whose name another owner holds: '<kind> <name> exists and belongs to <owner>'."""
    refused: Sequence[str] = ()
    """Children the API server refused (invalid, too large, kind not installed, forbidden)."""
    plan: PlanSummary | None = None
    """The desired version's plan."""
    selector: str | None = None
    steps: int = 0
    """Steps of `spec.rollout`, for `canaryStep`."""
    desired: VersionRef | None = None


def compute_status(
    previous: DeepSeekDeploymentStatus, outcome: PassOutcome, *, generation: int | None, now: datetime
) -> DeepSeekDeploymentStatus:
    """The complete new status (condition transition times kept where the status did not flip)."""
    status = previous.model_copy(deep=True)
    status.observed_generation = generation
    decision = outcome.decision
    if decision is not None:
        status.traffic = [traffic_entry(live, outcome.observed.get(live.ref)) for live in decision.live]
        status.current_version = decision.stable.name if decision.stable else None
        status.rollout = decision.rollout
        status.history = list(decision.history)
        status.acknowledged_actions = dict(decision.acknowledged)
    else:
        status.traffic = _refreshed(previous.traffic, outcome.observed)
    if outcome.plan is not None:
        status.plan = outcome.plan
    if outcome.selector is not None:
        status.selector = outcome.selector
    serving = [entry for entry in status.traffic if entry.role != Role.DRAINING.value]
    status.ready_groups = sum(entry.ready_groups for entry in serving)
    status.desired_groups = sum(entry.desired_groups or 0 for entry in serving)
    active = status.rollout if status.rollout is not None and _active(status.rollout) else None
    status.canary_version = active.canary_version if active else None
    status.canary_weight = _canary_weight(status.traffic, active) if active else None
    status.canary_step = f"{min(active.step_index + 1, outcome.steps)}/{outcome.steps}" if active else None

    conditions = initial_conditions(status.conditions, generation=generation, now=now)
    conditions = set_ready_condition(conditions, status, outcome, generation=generation, now=now)
    conditions = set_progressing_condition(conditions, status, outcome, generation=generation, now=now)
    conditions = set_degraded_condition(conditions, status, outcome, generation=generation, now=now)
    status.conditions = conditions
    status.phase, status.message = compute_phase(status, outcome)
    return status


def set_ready_condition(
    conditions: list[Condition],
    status: DeepSeekDeploymentStatus,
    outcome: PassOutcome,
    *,
    generation: int | None,
    now: datetime,
) -> list[Condition]:
    serving = [entry for entry in status.traffic if entry.weight > 0 and entry.ready_groups > 0]
    if serving:
        message = " and ".join(
            f"{entry.version} serves {entry.ready_groups} group(s)"
            + (f" at {entry.weight}%" if entry.weight < 100 else "")
            for entry in serving
        )
        return set_condition(
            conditions, ConditionType.READY, ConditionStatus.TRUE, Reason.SERVING, message,
            generation=generation, now=now,
        )  # fmt: skip
    idle = _scaled_to_zero(status)
    if idle is not None:
        message = f"{idle.version} is scaled to zero groups (idle); the first request waits for a group"
        return set_condition(
            conditions, ConditionType.READY, ConditionStatus.TRUE, Reason.SCALED_TO_ZERO, message,
            generation=generation, now=now,
        )  # fmt: skip
    if outcome.rejected is not None and not outcome.observed:
        reason, message = outcome.rejected.reason, "nothing serves: the spec cannot be served as written"
    else:
        reason, message = Reason.WAITING_FOR_RAY_SERVICE, _waiting_message(outcome)
    return set_condition(
        conditions,
        ConditionType.READY,
        ConditionStatus.FALSE,
        reason,
        message,
        generation=generation,
        now=now,
    )


def set_progressing_condition(
    conditions: list[Condition],
    status: DeepSeekDeploymentStatus,
    outcome: PassOutcome,
    *,
    generation: int | None,
    now: datetime,
) -> list[Condition]:
    rollout = status.rollout
    progressing: tuple[ConditionStatus, Reason, str]
    if outcome.rejected is not None:
        progressing = (ConditionStatus.FALSE, outcome.rejected.reason, "fix the spec to continue")
    elif rollout is not None and _active(rollout):
        reason = {"Paused": Reason.ROLLOUT_PAUSED, "Analyzing": Reason.ANALYZING}.get(
            rollout.phase, Reason.ROLLING_OUT
        )
        progressing = (ConditionStatus.TRUE, reason, _rollout_message(rollout, outcome.steps))
    elif rollout is not None:
        progressing = (ConditionStatus.FALSE, Reason(rollout.reason or Reason.ROLLED_BACK), rollout.message)
    elif any(entry.role == Role.STARTING.value for entry in status.traffic) or (
        not status.traffic and outcome.desired is not None
    ):
        progressing = (ConditionStatus.TRUE, Reason.WAITING_FOR_RAY_SERVICE, _waiting_message(outcome))
    else:
        progressing = (ConditionStatus.FALSE, Reason.STABLE, "up to date")
    return set_condition(conditions, ConditionType.PROGRESSING, *progressing, generation=generation, now=now)


def set_degraded_condition(
    conditions: list[Condition],
    status: DeepSeekDeploymentStatus,
    outcome: PassOutcome,
    *,
    generation: int | None,
    now: datetime,
) -> list[Condition]:
    degraded = _degradation(status, outcome)
    if degraded is None:
        return set_condition(
            conditions, ConditionType.DEGRADED, ConditionStatus.FALSE, Reason.AS_EXPECTED, "",
            generation=generation, now=now,
        )  # fmt: skip
    reason, message = degraded
    return set_condition(
        conditions,
        ConditionType.DEGRADED,
        ConditionStatus.TRUE,
        reason,
        message,
        generation=generation,
        now=now,
    )


def _degradation(status: DeepSeekDeploymentStatus, outcome: PassOutcome) -> tuple[Reason, str] | None:
    """The most urgent thing a person must look at, if any."""
    if outcome.rejected is not None:
        return outcome.rejected.reason, "; ".join(str(error) for error in outcome.rejected.errors)
    if outcome.conflicts:
        return Reason.NAME_CONFLICT, "; ".join(outcome.conflicts)
    if outcome.refused:
        return Reason.APPLY_REFUSED, "; ".join(outcome.refused)
    rollout = status.rollout
    if rollout is not None and rollout.reason in _NEEDS_A_PERSON:
        return Reason(rollout.reason), rollout.message
    live = {VersionRef(entry.version, entry.revision or "") for entry in status.traffic}
    failed = [
        observed for ref, observed in sorted(outcome.observed.items()) if observed.failed and ref in live
    ]
    if failed:
        return Reason.RAY_SERVICE_UNHEALTHY, "; ".join(f"{o.ref.name}: {o.message}" for o in failed)
    return None


def compute_phase(status: DeepSeekDeploymentStatus, outcome: PassOutcome) -> tuple[str, str]:
    """`status.phase` and `status.message`: the first thing a person reads."""
    if outcome.rejected is not None:
        errors = outcome.rejected.errors
        phase = Phase.INVALID if outcome.rejected.reason == Reason.VALIDATION_FAILED else Phase.INFEASIBLE
        return phase.value, str(errors[0]) if errors else outcome.rejected.reason.value
    degraded = _degradation(status, outcome)
    rollout = status.rollout
    if rollout is not None and not _active(rollout):
        stopped = "rolled back" if rollout.phase == "RolledBack" else "aborted"
        return Phase.ROLLED_BACK.value, f"{rollout.canary_version} {stopped}: {rollout.message}"
    if degraded is not None:
        return Phase.DEGRADED.value, degraded[1]
    if rollout is not None:
        phase = Phase.PAUSED if rollout.phase == "Paused" else Phase.ROLLING_OUT
        return phase.value, _rollout_message(rollout, outcome.steps)
    idle = _scaled_to_zero(status)
    if idle is not None:
        return Phase.SCALED_TO_ZERO.value, f"{idle.version} is scaled to zero groups (idle)"
    stable = next((entry for entry in status.traffic if entry.role == Role.STABLE.value), None)
    if stable is not None and stable.ready_groups > 0:
        return Phase.SERVING.value, f"{stable.version} serves {stable.ready_groups} group(s)"
    return Phase.DEPLOYING.value, _waiting_message(outcome)


def _scaled_to_zero(status: DeepSeekDeploymentStatus) -> VersionTraffic | None:
    """The stable version when its autoscaler took it to zero groups (and nothing else serves)."""
    stable = next((entry for entry in status.traffic if entry.role == Role.STABLE.value), None)
    if stable is None or stable.weight != 100 or stable.ready_groups or stable.desired_groups != 0:
        return None
    return stable


def _rollout_message(rollout: RolloutStatus, steps: int) -> str:
    where = f"step {rollout.step_index + 1}/{steps}" if rollout.step_index < steps else "promoting"
    detail = f": {rollout.message}" if rollout.message else ""
    return f"{rollout.canary_version} {where}, {rollout.phase.lower()}{detail}"


def _waiting_message(outcome: PassOutcome) -> str:
    desired = outcome.observed.get(outcome.desired) if outcome.desired else None
    if desired is None:
        return f"{outcome.desired.name if outcome.desired else 'the desired version'}: RayService starting"
    return f"{desired.ref.name}: {desired.message or 'starting'}"


_NEEDS_A_PERSON = {
    reason.value
    for reason in (
        Reason.ANALYSIS_FAILED,
        Reason.PROGRESS_DEADLINE_EXCEEDED,
        Reason.ABORTED,
    )
}
"""Rollout reasons that make the deployment Degraded (an inconclusive analysis pauses it only)."""


def _active(rollout: RolloutStatus) -> bool:
    return rollout.phase not in ("RolledBack", "Aborted")


def _canary_weight(traffic: Sequence[VersionTraffic], rollout: RolloutStatus) -> int:
    return next(
        (
            entry.weight
            for entry in traffic
            if entry.version == rollout.canary_version and entry.revision == rollout.canary_revision
        ),
        0,
    )


def _refreshed(
    traffic: Sequence[VersionTraffic], observed: Mapping[VersionRef, ObservedVersion]
) -> list[VersionTraffic]:
    """The stored traffic with what is observed now (a rejected spec freezes the decisions, not
    the facts)."""
    refreshed = []
    for entry in traffic:
        seen = observed.get(VersionRef(entry.version, entry.revision or ""))
        if seen is None:
            continue
        refreshed.append(
            entry.model_copy(
                update={
                    "ready_groups": seen.ready_groups,
                    "desired_groups": seen.desired_groups,
                    "queue_depth": seen.queue_depth,
                    "last_scaling": seen.last_scaling,
                }
            )
        )
    return refreshed
