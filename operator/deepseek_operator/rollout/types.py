"""The vocabulary of the version lifecycle: what it observes and what it decides (frozen data).

Glossary:
- *version*: an entry of `spec.versions`, by name; the last entry is the *desired* one.
- *revision*: a hash of what a version runs (its RayService, group counts aside); changing the
  desired version's content makes a new revision, rolled out like a new version. `VersionRef`
  names one (version, revision) pair, which is one RayService.
- *stable*: the revision serving when no rollout runs (`status.currentVersion`).
- *canary*: the revision a rollout moves the traffic to.
- *draining*: a revision that left the route; deleted once its in-flight requests finished.
- *group*: the unit of capacity (DP × TP ranks holding every expert); `N` is the stable's group
  count when a rollout starts, so one group carries 1/N of the traffic.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum

from deepseek_operator.api.constants import EventReason, ManualAction
from deepseek_operator.api.v1alpha1 import (
    AnalysisMeasurement,
    DeepSeekDeploymentStatus,
    HistoryEntry,
    RolloutSpec,
    RolloutStatus,
    ScalingRecord,
    VersionSpec,
)

__all__ = [
    "GroupTarget",
    "LifecycleDecision",
    "LifecycleInput",
    "LiveVersion",
    "Note",
    "ObservedVersion",
    "Role",
    "VersionRef",
]


@dataclass(frozen=True, order=True)
class VersionRef:
    """One revision of one version: one RayService."""

    name: str
    """Version name, e.g. `v2`."""
    revision: str
    """Content hash, e.g. `7c1f0a2d`."""

    def __str__(self) -> str:
        return f"{self.name}@{self.revision}"


class Role(StrEnum):
    """What a live version is for (`status.traffic[].role`)."""

    STABLE = "Stable"
    CANARY = "Canary"
    STARTING = "Starting"
    """No traffic reaches it yet and no rollout runs: the first version of a deployment."""
    DRAINING = "Draining"


@dataclass(frozen=True)
class GroupTarget:
    """The groups a version runs: a fixed count (`minimum == maximum`) or autoscaled bounds."""

    initial: int
    minimum: int
    maximum: int

    @classmethod
    def fixed(cls, groups: int) -> GroupTarget:
        return cls(groups, groups, groups)

    @property
    def autoscaled(self) -> bool:
        return self.minimum != self.maximum


@dataclass(frozen=True)
class ObservedVersion:
    """One RayService of the deployment as KubeRay and Ray Serve report it."""

    ref: VersionRef
    ray_service: str
    """The RayService's name."""
    ready: bool
    """KubeRay says it serves (Ready condition, serve endpoints up, application running)."""
    failed: bool
    """An application failed to deploy or became unhealthy."""
    message: str
    """KubeRay's or Serve's words (the root error when failed)."""
    ready_groups: int
    """Whole groups of RUNNING Serve replicas."""
    desired_groups: int | None = None
    """Groups the Serve autoscaler aims for; None when unknown."""
    queue_depth: float | None = None
    """Running + waiting requests over its groups; None when unknown."""
    observed_at: datetime | None = None
    """When Ray Serve was last asked (queue depth is only as fresh as this)."""
    last_scaling: ScalingRecord | None = None
    """Its autoscaler's last change of the group count, with the reason; None when unknown."""


@dataclass(frozen=True)
class LifecycleInput:
    """Everything `decide_lifecycle` looks at; nothing else (no clock, no I/O)."""

    desired: VersionRef | None
    """The last entry of `spec.versions` at the revision the current spec renders; None when the
    spec cannot be planned (invalid): then only what already runs is looked after."""
    desired_spec: VersionSpec | None
    """Its spec (kept in history for `dsd rollout undo`)."""
    renderable: frozenset[VersionRef]
    """Revisions the current spec renders (every listed version at its current content); others
    keep the content they run and can only be scaled."""
    groups: GroupTarget
    """The groups the spec asks for outside rollouts (autoscaling bounds or a fixed count)."""
    rollout: RolloutSpec
    status: DeepSeekDeploymentStatus
    """The stored status: the lifecycle's memory."""
    observed: Mapping[VersionRef, ObservedVersion]
    actions: Mapping[ManualAction, str]
    """The manual-control annotations' values."""
    measurements: Sequence[AnalysisMeasurement]
    """Analysis measurements taken for this pass (see `analysis.due_measurements`)."""
    drain_seconds: float
    """Longest a request may still run after its version left the route."""
    now: datetime
    desired_seen_at: datetime | None = None
    """When the operator first saw the desired revision; a new RayService is created only once the
    spec has settled `settle_seconds` (ten edits in two seconds start one RayService, not ten)."""
    settle_seconds: float = 0.0


@dataclass(frozen=True)
class LiveVersion:
    """A revision that must exist, with its groups and its share of the traffic."""

    ref: VersionRef
    role: Role
    weight: int
    """Percent of requests the route sends it."""
    groups: GroupTarget | None
    """The groups it must run; None: leave it as it runs (a draining version)."""
    draining_since: datetime | None = None


@dataclass(frozen=True)
class Note:
    """One decision, for an Event and a log line."""

    reason: EventReason
    message: str
    warning: bool = False


@dataclass(frozen=True)
class LifecycleDecision:
    """What must run, where the traffic goes, what goes away, and when to look again."""

    live: tuple[LiveVersion, ...]
    """Every revision that must exist, stable first."""
    retire: tuple[VersionRef, ...]
    """Revisions whose RayService is deleted now."""
    stable: VersionRef | None
    rollout: RolloutStatus | None
    history: tuple[HistoryEntry, ...]
    acknowledged: Mapping[str, str]
    requeue_after: float | None
    """Seconds until the next time-driven change (a pause ends, a measurement is due, a drain
    ends, the spec settles); None when only events can change anything."""
    notes: tuple[Note, ...] = field(default=())
    settling: bool = False
    """The desired version's RayService waits for the spec to settle (`settle_seconds`)."""

    def weights(self) -> dict[VersionRef, int]:
        return {version.ref: version.weight for version in self.live}
