"""The version lifecycle, transition by transition, against a fake world of RayServices.

Each test drives `decide_lifecycle` as the reconciler does (observe, decide, carry out, store the
status) with a clock it controls; `world.World` starts a group `start_s` after it is asked for.
"""

from __future__ import annotations

import json
from datetime import timedelta

import pytest

from deepseek_operator.api.constants import EventReason, ManualAction
from deepseek_operator.api.v1alpha1 import (
    AnalysisMetric,
    AnalysisSpec,
    AnalysisStep,
    CanaryStep,
    DeepSeekDeploymentStatus,
    PauseStep,
    PrometheusSpec,
    RolloutSpec,
)
from deepseek_operator.rollout import GroupTarget, VersionRef
from deepseek_operator.rollout.analysis import assess_measurement
from tests.rollout.world import Scenario, World, run, step, weights

V1, V2, V3 = VersionRef("v1", "aaaa1111"), VersionRef("v2", "bbbb2222"), VersionRef("v2", "cccc3333")
V4 = VersionRef("v4", "dddd4444")


def serving(world: World, version: VersionRef, groups: int = 1) -> DeepSeekDeploymentStatus:
    """A deployment whose `version` serves `groups` groups, with no rollout."""
    return run(
        world,
        Scenario(desired=version, groups=GroupTarget.fixed(groups)),
        DeepSeekDeploymentStatus(),
        seconds=world.start_s + 5,
    )


def roles(status: DeepSeekDeploymentStatus) -> dict[str, tuple[str, int]]:
    return {f"{t.version}@{t.revision}": (t.role, t.weight) for t in status.traffic}


def test_the_first_version_takes_the_traffic_once_a_group_serves() -> None:
    world = World(start_s=60)
    scenario = Scenario(desired=V1, groups=GroupTarget.fixed(2))
    decision, status = step(world, scenario, DeepSeekDeploymentStatus())
    assert roles(status) == {str(V1): ("Starting", 0)}
    assert decision.stable is None
    assert decision.requeue_after is None  # KubeRay's Ready arrives as a watch event
    assert world.services[V1].groups == 2
    world.now += timedelta(seconds=60)
    decision, status = step(world, scenario, status)
    assert roles(status) == {str(V1): ("Stable", 100)}
    assert decision.stable == V1
    assert decision.requeue_after is None
    assert status.rollout is None
    assert status.history == []


def test_a_cut_over_without_steps_replaces_the_version_and_drains_the_old_one() -> None:
    world = World(start_s=30)
    status = serving(world, V1)
    scenario = Scenario(desired=V4, drain_s=40)
    decision, status = step(world, scenario, status)
    assert [note.reason for note in decision.notes] == [EventReason.ROLLOUT_STARTED]
    assert roles(status) == {str(V1): ("Stable", 100), str(V4): ("Canary", 0)}
    # At most one extra group: the surge budget.
    assert sum(service.groups for service in world.services.values()) == 2
    world.now += timedelta(seconds=30)
    decision, status = step(world, scenario, status)
    assert roles(status) == {str(V4): ("Stable", 100), str(V1): ("Draining", 0)}
    assert [note.reason for note in decision.notes] == [EventReason.ROLLOUT_PROMOTED]
    (entry,) = status.history
    assert (entry.version, entry.from_version, entry.outcome, entry.revision) == ("v4", "v1", "Promoted", 1)
    # In-flight requests of v1 finish before its RayService goes (bounded by the drain).
    world.now += timedelta(seconds=39)
    decision, status = step(world, scenario, status)
    assert V1 in world.services
    assert decision.retire == ()
    world.now += timedelta(seconds=1)
    decision, status = step(world, scenario, status)
    assert decision.retire == (V1,)
    assert V1 not in world.services
    assert roles(status) == {str(V4): ("Stable", 100)}


def test_a_drain_ends_early_when_the_queue_is_seen_empty_after_the_grace() -> None:
    world = World(start_s=10)
    status = serving(world, V1)
    scenario = Scenario(desired=V4, drain_s=600)
    status = run(world, scenario, status, seconds=10)
    assert roles(status)[str(V1)] == ("Draining", 0)
    world.queue_depth[V1] = 0.0
    status = run(world, scenario, status, seconds=20)
    assert V1 not in world.services


def test_weighted_steps_follow_capacity_within_the_surge_budget() -> None:
    world = World(start_s=60)
    status = serving(world, V1, groups=4)
    steps = [CanaryStep(set_weight=50), CanaryStep(pause=PauseStep(duration_seconds=60))]
    scenario = Scenario(desired=V4, groups=GroupTarget.fixed(4), rollout=RolloutSpec(steps=steps))
    seen: list[tuple[int, int, int]] = []

    def record(decision, status) -> None:  # type: ignore[no-untyped-def]
        canary = weights(status).get(str(V4), 0)
        groups = {ref: service.groups for ref, service in world.services.items()}
        assert sum(groups.values()) <= 5, groups  # N + surge, never 2N
        entry = (canary, groups.get(V1, 0), groups.get(V4, 0))
        if not seen or seen[-1] != entry:
            seen.append(entry)

    status = run(world, scenario, status, seconds=600, tick_s=10, on_pass=record)
    assert seen == [
        (0, 4, 1),  # the canary starts one group beside all of the stable's
        (25, 3, 2),  # one group ready: a quarter of the traffic; the stable gives one up
        (50, 3, 2),  # two ready: the step's weight; then the pause
        (50, 2, 3),  # the pause is over: promotion grows the canary as the stable shrinks
        (75, 1, 4),
        (100, 1, 4),  # promoted; the old version drains
        (100, 0, 4),
    ]
    assert status.history[-1].outcome == "Promoted"
    assert status.history[-1].steps_reached == 2


def test_a_pause_without_duration_waits_for_promote_then_acknowledges_it() -> None:
    world = World(start_s=10)
    status = serving(world, V1)
    scenario = Scenario(
        desired=V4, rollout=RolloutSpec(steps=[CanaryStep(set_weight=20), CanaryStep(pause=PauseStep())])
    )
    status = run(world, scenario, status, seconds=60)
    assert status.rollout is not None
    assert status.rollout.phase == "Paused"
    assert status.rollout.message == "paused until promoted"
    assert weights(status)[str(V4)] == 20
    scenario.actions[ManualAction.PROMOTE] = "1"
    _decision, status = step(world, scenario, status)
    assert status.acknowledged_actions == {"promote": "1"}
    status = run(world, scenario, status, seconds=30)
    assert status.history[-1].outcome == "Promoted"
    # The same annotation value is never acted on twice.
    assert status.acknowledged_actions == {"promote": "1"}


def test_promote_full_skips_every_remaining_step() -> None:
    world = World(start_s=10)
    status = serving(world, V1)
    steps = [CanaryStep(set_weight=10), CanaryStep(pause=PauseStep()), CanaryStep(set_weight=50)]
    scenario = Scenario(desired=V4, rollout=RolloutSpec(steps=steps))
    status = run(world, scenario, status, seconds=30)
    scenario.actions[ManualAction.PROMOTE_FULL] = "now"
    status = run(world, scenario, status, seconds=30)
    assert status.history[-1].outcome == "Promoted"


def test_abort_by_hand_sends_traffic_back_and_stays_stopped_until_retry() -> None:
    world = World(start_s=10)
    status = serving(world, V1)
    scenario = Scenario(
        desired=V4, rollout=RolloutSpec(steps=[CanaryStep(set_weight=50), CanaryStep(pause=PauseStep())])
    )
    status = run(world, scenario, status, seconds=30)
    assert weights(status)[str(V4)] == 50
    scenario.actions[ManualAction.ABORT] = "stop"
    decision, status = step(world, scenario, status)
    assert roles(status) == {str(V1): ("Stable", 100), str(V4): ("Draining", 0)}
    assert status.rollout is not None
    assert (status.rollout.phase, status.rollout.reason) == (
        "Aborted",
        "Aborted",
    )
    assert status.history[-1].outcome == "Aborted"
    assert any(note.warning for note in decision.notes)
    # Stopped: the canary is not started again while the spec still asks for it.
    status = run(world, scenario, status, seconds=120)
    assert V4 not in world.services
    assert status.rollout.phase == "Aborted"
    scenario.actions[ManualAction.RETRY] = "again"
    status = run(world, scenario, status, seconds=60)
    assert status.rollout is not None
    assert status.rollout.revision == 2
    assert weights(status)[str(V4)] == 50


def test_a_third_version_mid_rollout_supersedes_the_canary() -> None:
    world = World(start_s=10)
    status = serving(world, V1)
    scenario = Scenario(
        desired=V2, rollout=RolloutSpec(steps=[CanaryStep(set_weight=30), CanaryStep(pause=PauseStep())])
    )
    status = run(world, scenario, status, seconds=30)
    assert weights(status)[str(V2)] == 30
    scenario.desired = V3  # v2's content changed again: a new revision
    _decision, status = step(world, scenario, status)
    assert status.history[-1].outcome == "Aborted"
    assert "superseded" in status.history[-1].message
    assert roles(status) == {str(V1): ("Stable", 100), str(V3): ("Canary", 0), str(V2): ("Draining", 0)}
    assert status.rollout is not None
    assert status.rollout.canary_revision == V3.revision
    assert status.rollout.revision == 2


def test_the_spec_reverted_to_the_stable_version_aborts_at_once_without_restarting_it() -> None:
    world = World(start_s=10)
    status = serving(world, V1)
    created_at = world.services[V1].created_at
    scenario = Scenario(
        desired=V4, rollout=RolloutSpec(steps=[CanaryStep(set_weight=40), CanaryStep(pause=PauseStep())])
    )
    status = run(world, scenario, status, seconds=30)
    scenario.desired = V1
    _decision, status = step(world, scenario, status)
    assert roles(status) == {str(V1): ("Stable", 100), str(V4): ("Draining", 0)}
    assert status.rollout is None
    assert (status.history[-1].outcome, status.history[-1].message) == (
        "Aborted",
        "the spec went back to the stable version",
    )
    assert world.services[V1].created_at == created_at
    assert world.created.count(V1) == 1


@pytest.mark.parametrize("auto_rollback", [True, False])
def test_a_canary_that_never_becomes_ready_misses_its_progress_deadline(auto_rollback: bool) -> None:
    world = World(start_s=10)
    status = serving(world, V1)
    world.failing.add(V4)
    scenario = Scenario(
        desired=V4, rollout=RolloutSpec(progress_deadline_seconds=120, auto_rollback=auto_rollback)
    )
    status = run(world, scenario, status, seconds=110)
    assert status.rollout is not None
    assert status.rollout.phase == "Progressing"
    status = run(world, scenario, status, seconds=20)
    assert status.rollout is not None
    assert status.rollout.reason == "ProgressDeadlineExceeded"
    assert "engine failed" in status.rollout.message
    if auto_rollback:
        assert (status.rollout.phase, status.history[-1].outcome) == ("RolledBack", "RolledBack")
        assert V4 not in world.services  # it never had traffic: gone at once
    else:
        assert status.rollout.phase == "Paused"
        assert status.history == []
    assert roles(status)[str(V1)] == ("Stable", 100)


def test_edited_steps_restart_the_rollout_at_the_first_step() -> None:
    world = World(start_s=10)
    status = serving(world, V1)
    scenario = Scenario(
        desired=V4, rollout=RolloutSpec(steps=[CanaryStep(set_weight=60), CanaryStep(pause=PauseStep())])
    )
    status = run(world, scenario, status, seconds=30)
    assert (status.rollout.step_index, weights(status)[str(V4)]) == (1, 60)  # type: ignore[union-attr]
    scenario.rollout = RolloutSpec(steps=[CanaryStep(set_weight=20), CanaryStep(pause=PauseStep())])
    decision, status = step(world, scenario, status)
    assert any("steps changed" in note.message for note in decision.notes)
    assert (status.rollout.step_index, weights(status)[str(V4)]) == (1, 20)  # type: ignore[union-attr]


def _analysis_rollout(**metric: object) -> RolloutSpec:
    return RolloutSpec(
        steps=[CanaryStep(set_weight=20), CanaryStep(analysis=AnalysisStep()), CanaryStep(set_weight=60)],
        analysis=AnalysisSpec(
            prometheus=PrometheusSpec(address="http://prometheus:9090"),
            metrics=[
                AnalysisMetric.model_validate(
                    {
                        "name": "errors",
                        "builtin": "errorRate",
                        "threshold": 0.05,
                        "intervalSeconds": 30,
                        "count": 3,
                        **metric,
                    }
                )
            ],
        ),
    )


def _measure_with(values: dict[int, float | None]):  # type: ignore[no-untyped-def]
    """A Prometheus answering `values[k]` for the k-th measurement (None: no data)."""

    def measure(status: DeepSeekDeploymentStatus, now):  # type: ignore[no-untyped-def]
        rollout = status.rollout
        if rollout is None or rollout.analysis is None or rollout.analysis.phase != "Running":
            return []
        taken = len(rollout.analysis.measurements)
        due = rollout.analysis.start_time + timedelta(seconds=30 * (taken + 1))
        if now < due or taken >= 3:
            return []
        metric = _analysis_rollout().analysis.metrics[0]  # type: ignore[union-attr]
        return [assess_measurement(metric, values.get(taken), None, now=now)]

    return measure


def test_a_passing_analysis_continues_the_rollout() -> None:
    world = World(start_s=10)
    status = serving(world, V1)
    scenario = Scenario(desired=V4, rollout=_analysis_rollout())
    status = run(world, scenario, status, seconds=200, measure=_measure_with({0: 0.01, 1: 0.0, 2: 0.02}))
    assert status.history[-1].outcome == "Promoted"


def test_a_failing_analysis_rolls_back_naming_metric_value_and_limit() -> None:
    world = World(start_s=10)
    status = serving(world, V1)
    scenario = Scenario(desired=V4, rollout=_analysis_rollout(failureLimit=1))
    status = run(world, scenario, status, seconds=200, measure=_measure_with({0: 0.20, 1: 0.01, 2: 0.30}))
    rollout = status.rollout
    assert rollout is not None
    assert (rollout.phase, rollout.reason) == ("RolledBack", "AnalysisFailed")
    assert rollout.message.startswith("errors = 0.3 > 0.05 (threshold) (2 failed, limit 1)")
    assert [m.phase for m in rollout.analysis.measurements] == ["Failed", "Successful", "Failed"]  # type: ignore[union-attr]
    assert roles(status)[str(V1)] == ("Stable", 100)
    assert status.history[-1].outcome == "RolledBack"


def test_no_data_is_inconclusive_and_pauses_never_promotes() -> None:
    world = World(start_s=10)
    status = serving(world, V1)
    scenario = Scenario(desired=V4, rollout=_analysis_rollout())
    status = run(world, scenario, status, seconds=200, measure=_measure_with({}))
    rollout = status.rollout
    assert rollout is not None
    assert (rollout.phase, rollout.reason) == ("Paused", "AnalysisInconclusive")
    assert weights(status)[str(V4)] == 20
    scenario.actions[ManualAction.PROMOTE] = "accept"
    status = run(world, scenario, status, seconds=60)
    assert status.history[-1].outcome == "Promoted"


def test_history_keeps_each_rollout_with_its_version_spec_up_to_the_limit() -> None:
    world = World(start_s=5)
    status = serving(world, V1)
    for index in range(4):
        scenario = Scenario(
            desired=VersionRef(f"v{index + 2}", f"{index:08x}"), rollout=RolloutSpec(history_limit=3)
        )
        status = run(world, scenario, status, seconds=60)
    assert [entry.version for entry in status.history] == ["v3", "v4", "v5"]
    assert [entry.revision for entry in status.history] == [2, 3, 4]
    assert all(entry.version_spec is not None for entry in status.history)


def test_ten_edits_in_two_seconds_start_one_rayservice() -> None:
    world = World(start_s=60)
    status = serving(world, V1)
    scenario = Scenario(desired=V1, settle_s=2.0)
    seen_at = world.now
    for index in range(10):
        scenario.desired = VersionRef("v2", f"{index:08x}")
        seen_at = world.now
        decision, status = step(world, scenario, status, desired_seen_at=seen_at)
        assert decision.settling  # the reconciler writes nothing for these passes
        world.now += timedelta(seconds=0.2)
    for _ in range(5):
        decision, status = step(world, scenario, status, desired_seen_at=seen_at)
        world.now += timedelta(seconds=1)
    assert not decision.settling
    assert world.created == [V1, scenario.desired]
    assert world.deleted == []


def test_a_lost_status_adopts_the_version_that_serves() -> None:
    """A deployment re-created over orphaned RayServices: nothing in status, one serves."""
    world = World(start_s=10)
    serving(world, V1)
    decision, status = step(world, Scenario(desired=V1), DeepSeekDeploymentStatus())
    assert decision.stable == V1
    assert roles(status) == {str(V1): ("Stable", 100)}
    assert world.created == [V1]


@pytest.mark.parametrize("restart_after", range(0, 40, 3))
def test_a_restart_at_any_pass_resumes_from_status_to_the_same_end(restart_after: int) -> None:
    """The status is the lifecycle's only memory: round-tripped through JSON at any pass (what a new
    operator reads from the API server), the rollout ends exactly as without the restart."""
    steps = [
        CanaryStep(set_weight=25),
        CanaryStep(pause=PauseStep(duration_seconds=40)),
        CanaryStep(set_weight=50),
    ]

    def finish(restart: int | None) -> tuple[str, list[str]]:
        world = World(start_s=20)
        status = serving(world, V1, groups=2)
        scenario = Scenario(desired=V4, groups=GroupTarget.fixed(2), rollout=RolloutSpec(steps=steps))
        for index in range(60):
            if index == restart:
                status = DeepSeekDeploymentStatus.model_validate(json.loads(json.dumps(status.to_dict())))
            _, status = step(world, scenario, status)
            world.now += timedelta(seconds=5)
        history = [f"{h.version}:{h.outcome}:{h.steps_reached}" for h in status.history]
        return json.dumps(status.to_dict(), sort_keys=True), history

    uninterrupted, history = finish(None)
    assert history == ["v4:Promoted:3"]
    assert finish(restart_after) == (uninterrupted, history)
