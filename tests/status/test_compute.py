"""`compute_status` over every outcome a pass can have: phase, message and the three conditions."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest

from deepseek_operator.api.constants import Reason
from deepseek_operator.api.v1alpha1 import DeepSeekDeploymentStatus, RolloutStatus
from deepseek_operator.errors import FieldError
from deepseek_operator.rollout import (
    GroupTarget,
    LifecycleDecision,
    LiveVersion,
    ObservedVersion,
    Role,
    VersionRef,
)
from deepseek_operator.status.compute import PassOutcome, Rejected, compute_status
from deepseek_operator.status.conditions import find_condition

NOW = datetime(2026, 12, 1, 12, tzinfo=UTC)
V1, V2 = VersionRef("v1", "aaaa1111"), VersionRef("v2", "bbbb2222")
ONE = GroupTarget.fixed(1)


def seen(
    ref: VersionRef, ready_groups: int = 1, *, failed: bool = False, message: str = ""
) -> ObservedVersion:
    return ObservedVersion(
        ref=ref,
        ray_service=f"d-{ref.name}",
        ready=ready_groups > 0,
        failed=failed,
        message=message,
        ready_groups=ready_groups,
        desired_groups=1,
    )


def rollout(**fields: Any) -> RolloutStatus:
    return RolloutStatus.model_validate(
        {
            "revision": 1,
            "stableVersion": "v1",
            "stableRevision": V1.revision,
            "canaryVersion": "v2",
            "canaryRevision": V2.revision,
            "startTime": NOW,
            "stepStartTime": NOW,
            **fields,
        }
    )


def decision(
    *live: LiveVersion, stable: VersionRef | None = V1, state: RolloutStatus | None = None
) -> LifecycleDecision:
    return LifecycleDecision(
        live=live, retire=(), stable=stable, rollout=state, history=(), acknowledged={}, requeue_after=None
    )


STABLE = LiveVersion(V1, Role.STABLE, 100, ONE)
SPLIT = (LiveVersion(V1, Role.STABLE, 75, ONE), LiveVersion(V2, Role.CANARY, 25, ONE))
INVALID = Rejected(Reason.VALIDATION_FAILED, [FieldError("spec.groups", "0 needs autoscaling")])


@pytest.mark.parametrize(
    ("outcome", "phase", "conditions", "message"),
    [
        pytest.param(
            PassOutcome({}, decision(LiveVersion(V1, Role.STARTING, 0, ONE), stable=None), desired=V1),
            "Deploying",
            ("False/WaitingForRayService", "True/WaitingForRayService", "False/AsExpected"),
            "v1: RayService starting",
            id="first-version-starting",
        ),
        pytest.param(
            PassOutcome(
                {V1: ObservedVersion(V1, "d-v1", False, False, "", 0, desired_groups=0)},
                decision(STABLE),
                desired=V1,
            ),
            "ScaledToZero",
            ("True/ScaledToZero", "False/Stable", "False/AsExpected"),
            "v1 is scaled to zero groups (idle)",
            id="scaled-to-zero",
        ),
        pytest.param(
            PassOutcome({V1: seen(V1, 2)}, decision(STABLE), desired=V1),
            "Serving",
            ("True/Serving", "False/Stable", "False/AsExpected"),
            "v1 serves 2 group(s)",
            id="serving",
        ),
        pytest.param(
            PassOutcome(
                {V1: seen(V1), V2: seen(V2)}, decision(*SPLIT, state=rollout(weight=25)), steps=2, desired=V2
            ),
            "RollingOut",
            ("True/Serving", "True/RollingOut", "False/AsExpected"),
            "v2 step 1/2, progressing",
            id="rolling-out",
        ),
        pytest.param(
            PassOutcome(
                {V1: seen(V1), V2: seen(V2)},
                decision(*SPLIT, state=rollout(phase="Paused", stepIndex=1, message="paused until promoted")),
                steps=2,
                desired=V2,
            ),
            "Paused",
            ("True/Serving", "True/RolloutPaused", "False/AsExpected"),
            "v2 step 2/2, paused: paused until promoted",
            id="paused",
        ),
        pytest.param(
            PassOutcome(
                {V1: seen(V1), V2: seen(V2)},
                decision(
                    *SPLIT,
                    state=rollout(phase="Paused", reason="AnalysisFailed", message="errors = 0.3 > 0.05"),
                ),
                steps=2,
                desired=V2,
            ),
            "Degraded",
            ("True/Serving", "True/RolloutPaused", "True/AnalysisFailed"),
            "errors = 0.3 > 0.05",
            id="analysis-failed-without-auto-rollback",
        ),
        pytest.param(
            PassOutcome(
                {V1: seen(V1)},
                decision(
                    STABLE,
                    state=rollout(phase="RolledBack", reason="AnalysisFailed", message="errors = 0.3 > 0.05"),
                ),
                steps=2,
                desired=V2,
            ),
            "RolledBack",
            ("True/Serving", "False/AnalysisFailed", "True/AnalysisFailed"),
            "v2 rolled back: errors = 0.3 > 0.05",
            id="rolled-back",
        ),
        pytest.param(
            PassOutcome({}, None, rejected=INVALID),
            "Invalid",
            ("False/ValidationFailed", "False/ValidationFailed", "True/ValidationFailed"),
            "spec.groups: 0 needs autoscaling",
            id="invalid-from-the-start",
        ),
        pytest.param(
            PassOutcome(
                {}, None, rejected=Rejected(Reason.PLAN_INFEASIBLE, [FieldError("spec.resources", "no fit")])
            ),
            "Infeasible",
            ("False/PlanInfeasible", "False/PlanInfeasible", "True/PlanInfeasible"),
            "spec.resources: no fit",
            id="infeasible",
        ),
        pytest.param(
            PassOutcome(
                {V1: seen(V1)},
                decision(STABLE),
                conflicts=["Service d exists and belongs to DeepSeekDeployment other"],
                desired=V1,
            ),
            "Degraded",
            ("True/Serving", "False/Stable", "True/NameConflict"),
            "Service d exists and belongs to DeepSeekDeployment other",
            id="name-conflict",
        ),
        pytest.param(
            PassOutcome(
                {V1: seen(V1)}, decision(STABLE), refused=["HTTPRoute d refused: not installed"], desired=V1
            ),
            "Degraded",
            ("True/Serving", "False/Stable", "True/ApplyRefused"),
            "HTTPRoute d refused: not installed",
            id="apply-refused",
        ),
        pytest.param(
            PassOutcome(
                {V1: seen(V1), V2: seen(V2, 0, failed=True, message="engine-ranks: ValueError: bad")},
                decision(
                    LiveVersion(V1, Role.STABLE, 100, ONE),
                    LiveVersion(V2, Role.CANARY, 0, ONE),
                    state=rollout(),
                ),
                steps=0,
                desired=V2,
            ),
            "Degraded",
            ("True/Serving", "True/RollingOut", "True/RayServiceUnhealthy"),
            "v2: engine-ranks: ValueError: bad",
            id="canary-failed",
        ),
    ],
)
def test_compute_status(outcome: PassOutcome, phase: str, conditions: tuple[str, ...], message: str) -> None:
    status = compute_status(DeepSeekDeploymentStatus(), outcome, generation=3, now=NOW)
    assert (status.phase, status.message) == (phase, message)
    assert tuple(f"{c.status}/{c.reason}" for c in status.conditions) == conditions
    assert all(c.observed_generation == 3 for c in status.conditions)
    assert status.observed_generation == 3


def test_groups_and_canary_columns() -> None:
    outcome = PassOutcome(
        {V1: seen(V1, 3), V2: seen(V2, 1)}, decision(*SPLIT, state=rollout(weight=50, stepIndex=1)), steps=4
    )
    status = compute_status(DeepSeekDeploymentStatus(), outcome, generation=1, now=NOW)
    assert (status.ready_groups, status.desired_groups) == (4, 2)
    assert (status.canary_version, status.canary_weight, status.canary_step) == ("v2", 25, "2/4")
    assert status.current_version == "v1"


def test_a_rejected_spec_keeps_the_lifecycle_and_refreshes_the_facts() -> None:
    served = compute_status(
        DeepSeekDeploymentStatus(), PassOutcome({V1: seen(V1, 2)}, decision(STABLE)), generation=1, now=NOW
    )
    rejected = compute_status(
        served, PassOutcome({V1: seen(V1, 1)}, None, rejected=INVALID), generation=2, now=NOW
    )
    assert [(t.version, t.weight, t.ready_groups) for t in rejected.traffic] == [("v1", 100, 1)]
    assert rejected.current_version == "v1"
    ready = find_condition(rejected.conditions, "Ready")  # type: ignore[arg-type]
    assert ready is not None
    assert ready.status == "True"


def test_transition_times_move_only_when_a_condition_flips() -> None:
    first = compute_status(
        DeepSeekDeploymentStatus(), PassOutcome({V1: seen(V1)}, decision(STABLE)), generation=1, now=NOW
    )
    later = NOW.replace(hour=13)
    again = compute_status(first, PassOutcome({V1: seen(V1, 2)}, decision(STABLE)), generation=2, now=later)
    assert [c.last_transition_time for c in again.conditions] == [
        c.last_transition_time for c in first.conditions
    ]
    broken = compute_status(again, PassOutcome({}, None, rejected=INVALID), generation=3, now=later)
    ready = find_condition(broken.conditions, "Ready")  # type: ignore[arg-type]
    assert ready is not None
    assert (ready.status, ready.last_transition_time) == ("False", later)
