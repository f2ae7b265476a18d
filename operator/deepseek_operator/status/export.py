"""The status as Prometheus gauges: one deployment's series replaced after each status write.

Dashboards and alerts read these (`charts/deepseek-operator/files/`): weights and groups per
version, the rollout step and how long it has run, the conditions with their reasons, expert
balance. A deployment's old series are removed first, so a version that left or a condition that
changed reason does not linger.
"""

from __future__ import annotations

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

Series = tuple[Gauge, tuple[str, ...], float]
"""One sample: the gauge, its label values, its value."""

_exported: dict[tuple[str, str], list[Series]] = {}
"""What each deployment exports now. Kept here so that replacing one deployment's series costs
its own few series, not a scan of every deployment's (a thousand deployments resyncing would
spend the event loop on it)."""


def forget_status(namespace: str, deployment: str) -> None:
    """Remove every series of one deployment."""
    for gauge, labels, _ in _exported.pop((namespace, deployment), []):
        gauge.remove(*labels)


def export_status(namespace: str, deployment: str, status: DeepSeekDeploymentStatus, steps: int) -> None:
    """Replace one deployment's series with what `status` says."""
    series = _series(namespace, deployment, status, steps)
    if _exported.get((namespace, deployment)) == series:
        return
    forget_status(namespace, deployment)
    for gauge, labels, value in series:
        gauge.labels(*labels).set(value)
    _exported[(namespace, deployment)] = series


def _series(namespace: str, deployment: str, status: DeepSeekDeploymentStatus, steps: int) -> list[Series]:
    who = (namespace, deployment)
    series: list[Series] = []
    for entry in status.traffic:
        revision = entry.revision or ""
        series.append((VERSION_WEIGHT, (*who, entry.version, revision, entry.role), entry.weight))
        series.append((VERSION_GROUPS, (*who, entry.version, revision, "ready"), entry.ready_groups))
        if entry.desired_groups is not None:
            series.append((VERSION_GROUPS, (*who, entry.version, revision, "desired"), entry.desired_groups))
    rollout = status.rollout
    if rollout is not None and rollout.phase not in ("RolledBack", "Aborted"):
        series.append((ROLLOUT_STEP, (*who, rollout.canary_version), min(rollout.step_index, steps) + 1))
        series.append(
            (
                ROLLOUT_STEP_STARTED,
                (*who, rollout.canary_version, rollout.phase),
                rollout.step_start_time.timestamp(),
            )
        )
    for condition in status.conditions:
        series.append((CONDITION, (*who, condition.type, condition.status, condition.reason), 1))
    if status.plan is not None and status.plan.eplb_balancedness is not None:
        series.append((EPLB_BALANCEDNESS, who, status.plan.eplb_balancedness))
    return series
