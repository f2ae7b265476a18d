"""Condition transitions follow metav1.Condition: the time moves only when the status flips."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from deepseek_operator.api.constants import ConditionStatus, ConditionType, Reason
from deepseek_operator.api.v1alpha1 import Condition
from deepseek_operator.status.conditions import find_condition, initial_conditions, is_true, set_condition

T0 = datetime(2026, 11, 22, 12, 0, tzinfo=UTC)
T1 = T0 + timedelta(minutes=5)


def test_first_visit_sets_every_owned_condition_unknown_in_order() -> None:
    conditions = initial_conditions([], generation=3, now=T0)
    assert [(c.type, c.status, c.reason) for c in conditions] == [
        ("Ready", "Unknown", "Initializing"),
        ("Progressing", "Unknown", "Initializing"),
        ("Degraded", "Unknown", "Initializing"),
    ]
    assert all(c.observed_generation == 3 and c.last_transition_time == T0 for c in conditions)


def test_transition_time_moves_only_when_status_flips() -> None:
    ready = set_condition(
        [],
        ConditionType.READY,
        ConditionStatus.FALSE,
        Reason.WAITING_FOR_RAY_SERVICE,
        "a",
        generation=1,
        now=T0,
    )
    same_status = set_condition(
        ready,
        ConditionType.READY,
        ConditionStatus.FALSE,
        Reason.RAY_SERVICE_UNHEALTHY,
        "b",
        generation=2,
        now=T1,
    )
    condition = find_condition(same_status, ConditionType.READY)
    assert condition is not None
    assert (condition.last_transition_time, condition.reason, condition.observed_generation) == (
        T0,
        "RayServiceUnhealthy",
        2,
    )
    flipped = set_condition(
        same_status, ConditionType.READY, ConditionStatus.TRUE, Reason.SERVING, "c", generation=2, now=T1
    )
    assert find_condition(flipped, ConditionType.READY).last_transition_time == T1  # type: ignore[union-attr]
    assert is_true(flipped, ConditionType.READY)


def test_foreign_conditions_are_kept_after_owned_ones() -> None:
    foreign = Condition(type="example.com/Audited", status="True", reason="Audited", last_transition_time=T0)
    conditions = set_condition(
        [foreign], ConditionType.DEGRADED, ConditionStatus.FALSE, Reason.AS_EXPECTED, "", generation=1, now=T0
    )
    assert [c.type for c in conditions] == ["Degraded", "example.com/Audited"]


def test_one_event_per_pass_named_after_its_most_important_decision() -> None:
    from deepseek_operator.api.v1alpha1 import DeepSeekDeploymentStatus
    from deepseek_operator.status.events import decide_events

    waiting = DeepSeekDeploymentStatus(
        conditions=set_condition(
            [],
            ConditionType.READY,
            ConditionStatus.FALSE,
            Reason.WAITING_FOR_RAY_SERVICE,
            "",
            generation=1,
            now=T0,
        )
    )
    ready = DeepSeekDeploymentStatus(
        current_version="v1",
        conditions=set_condition(
            waiting.conditions,
            ConditionType.READY,
            ConditionStatus.TRUE,
            Reason.SERVING,
            "",
            generation=1,
            now=T1,
        ),
    )
    (decision,) = decide_events(waiting, ready, applied=["Service/tiny"], deleted=[])
    assert (decision.type, decision.reason, decision.message) == (
        "Normal",
        "Ready",
        "v1 is serving; applied Service/tiny",
    )
    assert decide_events(ready, ready, applied=[], deleted=[]) == []
