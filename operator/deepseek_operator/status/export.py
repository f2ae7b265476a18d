"""The status as Prometheus gauges: one deployment's series replaced after each status write.

Dashboards and alerts read these (`charts/deepseek-operator/files/`): weights and groups per
version, the rollout step and how long it has run, the conditions with their reasons, expert
balance. A deployment's old series are removed first, so a version that left or a condition that
changed reason does not linger.
"""

from __future__ import annotations

from collections.abc import Iterable

from prometheus_client import Gauge

from deepseek_operator.api.v1alpha1 import DeepSeekDeploymentStatus
from deepseek_operator.metrics import (
    CONDITION,
    EPLB_BALANCEDNESS,
    ROLLOUT_STEP,
    ROLLOUT_STEP_STARTED,
    VERSION_GROUPS,
    VERSION_WEIGHT,
)

__all__ = ["export_status", "forget_status"]

_LABELS: dict[Gauge, tuple[str, ...]] = {
    VERSION_WEIGHT: ("namespace", "deployment", "version", "revision", "role"),
    VERSION_GROUPS: ("namespace", "deployment", "version", "revision", "state"),
    ROLLOUT_STEP: ("namespace", "deployment", "canary"),
    ROLLOUT_STEP_STARTED: ("namespace", "deployment", "canary", "phase"),
    CONDITION: ("namespace", "deployment", "type", "status", "reason"),
    EPLB_BALANCEDNESS: ("namespace", "deployment"),
}


def forget_status(namespace: str, deployment: str) -> None:
    """Remove every series of one deployment."""
    for gauge, names in _LABELS.items():
        for labels in list(_series_of(gauge, names, namespace, deployment)):
            gauge.remove(*labels)


def export_status(namespace: str, deployment: str, status: DeepSeekDeploymentStatus, steps: int) -> None:
    """Replace one deployment's series with what `status` says."""
    forget_status(namespace, deployment)
    who = (namespace, deployment)
    for entry in status.traffic:
        revision = entry.revision or ""
        VERSION_WEIGHT.labels(*who, entry.version, revision, entry.role).set(entry.weight)
        VERSION_GROUPS.labels(*who, entry.version, revision, "ready").set(entry.ready_groups)
        if entry.desired_groups is not None:
            VERSION_GROUPS.labels(*who, entry.version, revision, "desired").set(entry.desired_groups)
    rollout = status.rollout
    if rollout is not None and rollout.phase not in ("RolledBack", "Aborted"):
        ROLLOUT_STEP.labels(*who, rollout.canary_version).set(min(rollout.step_index, steps) + 1)
        ROLLOUT_STEP_STARTED.labels(*who, rollout.canary_version, rollout.phase).set(
            rollout.step_start_time.timestamp()
        )
    for condition in status.conditions:
        CONDITION.labels(*who, condition.type, condition.status, condition.reason).set(1)
    if status.plan is not None and status.plan.eplb_balancedness is not None:
        EPLB_BALANCEDNESS.labels(*who).set(status.plan.eplb_balancedness)


def _series_of(
    gauge: Gauge, names: tuple[str, ...], namespace: str, deployment: str
) -> Iterable[tuple[str, ...]]:
    """Label values of `gauge`'s series that belong to one deployment."""
    for metric in gauge.collect():
        for sample in metric.samples:
            labels = sample.labels
            if labels.get("namespace") == namespace and labels.get("deployment") == deployment:
                yield tuple(labels[name] for name in names)
