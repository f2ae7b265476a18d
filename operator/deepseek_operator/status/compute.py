"""The whole status of a deployment from what one reconcile learned (pure, STYLE.md rule 8).

Inputs are the previous status (for transition times), the outcome of validation and planning,
and the RayServices as observed; the output is the complete new status. The reconciler writes it
only when it differs from the stored one, so a steady-state pass writes nothing.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from deepseek_operator.api import constants
from deepseek_operator.api.constants import ConditionStatus, ConditionType, Reason
from deepseek_operator.api.v1alpha1 import DeepSeekDeploymentStatus, PlanSummary, VersionTraffic
from deepseek_operator.errors import FieldError
from deepseek_operator.status.conditions import initial_conditions, set_condition

__all__ = ["ObservedRayService", "Rejected", "Serving", "compute_status", "observe_ray_service"]


@dataclass(frozen=True)
class ObservedRayService:
    """What the reconciler needs from a RayService object as KubeRay reports it."""

    name: str
    version: str
    ready: bool
    """KubeRay's `Ready` condition (serve endpoints up and applications running)."""
    failed: bool
    """An application failed to deploy or became unhealthy."""
    message: str


def observe_ray_service(body: Mapping[str, Any]) -> ObservedRayService:
    """Read readiness from a RayService's status (KubeRay v1.7 conditions and application statuses)."""
    metadata, status = body.get("metadata") or {}, body.get("status") or {}
    conditions = {condition.get("type"): condition for condition in status.get("conditions") or []}
    ready_condition = conditions.get("Ready") or {}
    # A cluster that never became active reports its applications under pendingServiceStatus.
    applications = {
        **((status.get("pendingServiceStatus") or {}).get("applicationStatuses") or {}),
        **((status.get("activeServiceStatus") or {}).get("applicationStatuses") or {}),
    }
    failed = [
        f"{name}: {app.get('message') or app.get('status')}"
        for name, app in applications.items()
        if app.get("status") in ("DEPLOY_FAILED", "UNHEALTHY")
    ]
    ready = ready_condition.get("status") == "True" and status.get("numServeEndpoints", 0) > 0
    return ObservedRayService(
        name=str(metadata.get("name", "")),
        version=str((metadata.get("labels") or {}).get(constants.LABEL_VERSION, "")),
        ready=ready and not failed,
        failed=bool(failed),
        message="; ".join(failed)
        or str(ready_condition.get("message") or status.get("serviceStatus") or "pending"),
    )


@dataclass(frozen=True)
class Rejected:
    """The resource cannot be served as written (invalid, or no plan fits)."""

    reason: Reason
    errors: Sequence[FieldError]


@dataclass(frozen=True)
class Serving:
    """The resource is planned and its objects applied; the rest is what KubeRay reports."""

    plan: PlanSummary
    desired_version: str
    groups: int
    ray_services: Mapping[str, ObservedRayService]
    """Observed RayServices by version name."""
    selector: str


def compute_status(
    previous: DeepSeekDeploymentStatus,
    outcome: Rejected | Serving,
    *,
    generation: int | None,
    now: datetime,
) -> DeepSeekDeploymentStatus:
    """The complete new status (conditions keep their transition times where status did not flip)."""
    conditions = initial_conditions(previous.conditions, generation=generation, now=now)

    def condition(kind: ConditionType, status: ConditionStatus, reason: Reason, message: str) -> None:
        nonlocal conditions
        conditions = set_condition(conditions, kind, status, reason, message, generation=generation, now=now)

    status = previous.model_copy(deep=True)
    status.observed_generation = generation
    if isinstance(outcome, Rejected):
        message = "; ".join(str(error) for error in outcome.errors)
        condition(ConditionType.READY, ConditionStatus.FALSE, outcome.reason, message)
        condition(
            ConditionType.PROGRESSING, ConditionStatus.FALSE, outcome.reason, "fix the spec to continue"
        )
        condition(ConditionType.DEGRADED, ConditionStatus.TRUE, outcome.reason, message)
        status.conditions = conditions
        status.phase = "Invalid" if outcome.reason == Reason.VALIDATION_FAILED else "Infeasible"
        status.message = str(outcome.errors[0]) if outcome.errors else outcome.reason.value
        return status

    desired = outcome.ray_services.get(outcome.desired_version)
    serving = [observed for observed in outcome.ray_services.values() if observed.ready]
    serving_version = (
        outcome.desired_version
        if desired is not None and desired.ready
        else (serving[0].version if serving else None)
    )
    if desired is not None and desired.ready:
        condition(
            ConditionType.READY, ConditionStatus.TRUE, Reason.SERVING, f"{outcome.desired_version} serves"
        )
        condition(ConditionType.PROGRESSING, ConditionStatus.FALSE, Reason.STABLE, "up to date")
        phase, message = "Serving", f"{outcome.desired_version} serves {outcome.groups} group(s)"
    elif serving_version is not None:
        condition(ConditionType.READY, ConditionStatus.TRUE, Reason.SERVING, f"{serving_version} serves")
        condition(
            ConditionType.PROGRESSING, ConditionStatus.TRUE, Reason.ROLLING_OUT,
            f"{outcome.desired_version} is starting; {serving_version} serves until it is ready",
        )  # fmt: skip
        phase, message = "RollingOut", f"{outcome.desired_version} starting, {serving_version} serving"
    else:
        waiting = desired.message if desired is not None else "RayService not created yet"
        condition(ConditionType.READY, ConditionStatus.FALSE, Reason.WAITING_FOR_RAY_SERVICE, waiting)
        condition(ConditionType.PROGRESSING, ConditionStatus.TRUE, Reason.WAITING_FOR_RAY_SERVICE, waiting)
        phase, message = "Deploying", f"{outcome.desired_version}: {waiting}"
    if desired is not None and desired.failed:
        condition(ConditionType.DEGRADED, ConditionStatus.TRUE, Reason.RAY_SERVICE_UNHEALTHY, desired.message)
        phase, message = "Degraded", f"{outcome.desired_version}: {desired.message}"
    else:
        condition(ConditionType.DEGRADED, ConditionStatus.FALSE, Reason.AS_EXPECTED, "")

    status.conditions = conditions
    status.phase, status.message = phase, message
    status.plan = outcome.plan
    status.current_version = serving_version
    status.desired_groups = outcome.groups
    status.ready_groups = outcome.groups if serving_version is not None else 0
    status.selector = outcome.selector
    status.traffic = [
        VersionTraffic(
            version=observed.version,
            weight=100 if observed.version == serving_version else 0,
            ray_service=observed.name,
            ready_groups=outcome.groups if observed.ready else 0,
        )
        for observed in sorted(outcome.ray_services.values(), key=lambda o: o.version)
    ]
    return status
