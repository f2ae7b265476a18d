"""A fake world for the lifecycle: RayServices whose groups become ready after a start delay.

`simulate` loops `decide_lifecycle` against it, as the reconciler does against a cluster: observe,
decide, carry out (create, scale, delete), write the status, advance the clock. Golden logs are
text lines a test can compare.
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from deepseek_operator.api.constants import ManualAction
from deepseek_operator.api.v1alpha1 import (
    AnalysisMeasurement,
    DeepSeekDeploymentStatus,
    RolloutSpec,
    VersionSpec,
)
from deepseek_operator.rollout import (
    GroupTarget,
    LifecycleDecision,
    LifecycleInput,
    ObservedVersion,
    VersionRef,
    decide_lifecycle,
    traffic_entry,
)

T0 = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)


@dataclass
class FakeRayService:
    ref: VersionRef
    created_at: datetime
    groups: int = 0
    """Groups it was asked to run."""
    ready_since: dict[int, datetime] = field(default_factory=dict)
    """When each group (1-based count) became ready."""
    failing: bool = False


@dataclass
class World:
    """RayServices keyed by revision; a group needs `start_s` seconds to be ready."""

    start_s: float = 60.0
    now: datetime = T0
    services: dict[VersionRef, FakeRayService] = field(default_factory=dict)
    created: list[VersionRef] = field(default_factory=list)
    deleted: list[VersionRef] = field(default_factory=list)
    failing: set[VersionRef] = field(default_factory=set)
    queue_depth: dict[VersionRef, float] = field(default_factory=dict)
    _scaled_at: dict[tuple[VersionRef, int], datetime] = field(default_factory=dict)

    def observe(self) -> dict[VersionRef, ObservedVersion]:
        observed = {}
        for ref, service in self.services.items():
            ready = 0
            if ref not in self.failing:
                for group in range(1, service.groups + 1):
                    started = self._scaled_at.get((ref, group), service.created_at)
                    if self.now >= started + timedelta(seconds=self.start_s):
                        ready = group
            observed[ref] = ObservedVersion(
                ref=ref,
                ray_service=f"d-{ref.name}-{ref.revision}",
                ready=ready > 0,
                failed=ref in self.failing,
                message="engine failed" if ref in self.failing else "",
                ready_groups=ready,
                desired_groups=service.groups,
                queue_depth=self.queue_depth.get(ref),
                observed_at=self.now,
            )
        return observed

    def carry_out(self, decision: LifecycleDecision) -> None:
        for live in decision.live:
            service = self.services.get(live.ref)
            if service is None:
                service = self.services[live.ref] = FakeRayService(live.ref, self.now)
                self.created.append(live.ref)
            if live.groups is not None:
                target = live.groups.initial if live.groups.autoscaled else live.groups.minimum
                for group in range(service.groups + 1, target + 1):
                    self._scaled_at.setdefault((live.ref, group), self.now)
                for group in range(target + 1, service.groups + 1):
                    self._scaled_at.pop((live.ref, group), None)
                service.groups = target
        for ref in decision.retire:
            if self.services.pop(ref, None) is not None:
                self.deleted.append(ref)


@dataclass
class Scenario:
    """The spec side of a simulation: what the user asks for, changeable between passes."""

    desired: VersionRef | None
    rollout: RolloutSpec = field(default_factory=RolloutSpec)
    groups: GroupTarget = field(default_factory=lambda: GroupTarget.fixed(1))
    actions: dict[ManualAction, str] = field(default_factory=dict)
    renderable: frozenset[VersionRef] | None = None
    drain_s: float = 30.0
    settle_s: float = 0.0


def step(
    world: World,
    scenario: Scenario,
    status: DeepSeekDeploymentStatus,
    *,
    measurements: list[AnalysisMeasurement] | None = None,
    desired_seen_at: datetime | None = None,
) -> tuple[LifecycleDecision, DeepSeekDeploymentStatus]:
    """One pass: observe, decide, carry out, and the status the reconciler would store."""
    observed = world.observe()
    renderable = scenario.renderable
    if renderable is None:
        renderable = frozenset({scenario.desired} if scenario.desired else set())
    decision = decide_lifecycle(
        LifecycleInput(
            desired=scenario.desired,
            desired_spec=VersionSpec(name=scenario.desired.name) if scenario.desired else None,
            renderable=renderable,
            groups=scenario.groups,
            rollout=scenario.rollout,
            status=status,
            observed=observed,
            actions=dict(scenario.actions),
            measurements=measurements or [],
            drain_seconds=scenario.drain_s,
            now=world.now,
            desired_seen_at=desired_seen_at,
            settle_seconds=scenario.settle_s,
        )
    )
    world.carry_out(decision)
    new = copy.deepcopy(status)
    new.traffic = [traffic_entry(live, observed.get(live.ref)) for live in decision.live]
    new.rollout = decision.rollout
    new.history = list(decision.history)
    new.acknowledged_actions = dict(decision.acknowledged)
    return decision, new


def run(
    world: World,
    scenario: Scenario,
    status: DeepSeekDeploymentStatus,
    *,
    seconds: float,
    tick_s: float = 5.0,
    on_pass: Callable[[LifecycleDecision, DeepSeekDeploymentStatus], None] | None = None,
    measure: Callable[[DeepSeekDeploymentStatus, datetime], list[AnalysisMeasurement]] | None = None,
) -> DeepSeekDeploymentStatus:
    """Passes every `tick_s` for `seconds`; returns the last status."""
    end = world.now + timedelta(seconds=seconds)
    while world.now <= end:
        measurements = measure(status, world.now) if measure else None
        decision, status = step(world, scenario, status, measurements=measurements)
        if on_pass:
            on_pass(decision, status)
        world.now += timedelta(seconds=tick_s)
    return status


def weights(status: DeepSeekDeploymentStatus) -> Mapping[str, int]:
    return {f"{t.version}@{t.revision}": t.weight for t in status.traffic}
