"""Queue-depth autoscaling in whole groups: a pure decision and its Ray Serve policy adapter.

Why groups: a group (DP x TP ranks holding every expert once) is the unit that can serve a
request end to end, so capacity is added and removed one gang at a time (DESIGN.md). The signal is
queue depth, vLLM's running + waiting requests, which each rank reports to Ray Serve as a custom
autoscaling metric named after its group (``queue_depth/<group>``). The controller hands the policy
every rank's metric; the policy sums them per group, decides a number of groups and answers Ray
Serve in replicas (groups x ``data_parallel_size``). Ray Serve applies ``minReplicas``/
``maxReplicas`` and the upscale/downscale delays around it (in replicas, i.e. whole groups).

The policy also exports the per-group sum as ``deepseek_serving_group_queue_depth`` (Ray metrics,
``ray_`` prefix once exported): it is the only place that sees all ranks of every group. Without
autoscaling the app still installs the policy with ``minGroups == maxGroups``, so that gauge exists
for every deployment.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Final

from deepseek_serving.metrics import GROUP_QUEUE_DEPTH_METRIC

__all__ = [
    "QUEUE_DEPTH_METRIC_PREFIX",
    "GroupScaleDecision",
    "QueueDepthPolicy",
    "decide_groups",
    "group_queue_depths",
    "queue_depth_metric_name",
]

QUEUE_DEPTH_METRIC_PREFIX: Final = "queue_depth/"


def queue_depth_metric_name(group: str) -> str:
    """The custom autoscaling metric a rank of ``group`` reports its queue depth under."""
    return f"{QUEUE_DEPTH_METRIC_PREFIX}{group}"


def group_queue_depths(per_replica_metrics: Mapping[str, Mapping[Any, float]]) -> dict[str, float]:
    """Sum the ranks' queue depths per group.

    Parameters:
        per_replica_metrics: Ray Serve's aggregated custom metrics, ``{metric: {replica: value}}``.

    Returns:
        ``{group: running + waiting requests over the group's ranks}``.
    """
    return {
        name.removeprefix(QUEUE_DEPTH_METRIC_PREFIX): float(sum(per_replica.values()))
        for name, per_replica in per_replica_metrics.items()
        if name.startswith(QUEUE_DEPTH_METRIC_PREFIX)
    }


@dataclass(frozen=True)
class GroupScaleDecision:
    """How many groups to run, and why."""

    target_groups: int
    reason: str


def decide_groups(
    group_depths: Mapping[str, float],
    *,
    min_groups: int,
    max_groups: int,
    target_queue_depth_per_group: float,
) -> GroupScaleDecision:
    """Groups needed so that the average group carries ``target_queue_depth_per_group`` requests.

    Parameters:
        group_depths: running + waiting requests per live group.
        min_groups, max_groups: bounds, inclusive (``1 <= min_groups <= max_groups``).
        target_queue_depth_per_group: requests one group should carry (> 0).

    Returns:
        ``ceil(total / target)`` clamped to the bounds, e.g. depths ``{a: 50, b: 30}`` with target 32
        and bounds 1..4 give 3 groups.
    """
    if not 1 <= min_groups <= max_groups:
        raise ValueError(f"need 1 <= min_groups ({min_groups}) <= max_groups ({max_groups})")
    if target_queue_depth_per_group <= 0:
        raise ValueError("target_queue_depth_per_group must be > 0")
    # Step 1: the total demand, in groups of the target size.
    total_depth = sum(group_depths.values())
    needed_groups = math.ceil(total_depth / target_queue_depth_per_group)
    # Step 2: clamp to the bounds.
    target_groups = min(max(needed_groups, min_groups), max_groups)
    reason = (
        f"queue depth {total_depth:g} over {len(group_depths)} group(s), "
        f"target {target_queue_depth_per_group:g}/group -> {needed_groups} needed, "
        f"{target_groups} within [{min_groups}, {max_groups}]"
    )
    return GroupScaleDecision(target_groups=target_groups, reason=reason)


class QueueDepthPolicy:
    """Ray Serve custom autoscaling policy (class form, built once with ``policy_kwargs``)."""

    def __init__(
        self,
        *,
        data_parallel_size: int,
        min_groups: int,
        max_groups: int,
        target_queue_depth_per_group: float,
        deployment: str,
        version: str,
    ) -> None:
        self._data_parallel_size = data_parallel_size
        self._min_groups = min_groups
        self._max_groups = max_groups
        self._target = target_queue_depth_per_group
        self._tags = {"deployment": deployment, "version": version}
        self._exported_groups: set[str] = set()
        self._gauge: Any = None

    def __call__(self, ctx: Any) -> tuple[int, dict[str, Any]]:
        depths = group_queue_depths(ctx.aggregated_metrics or {})
        decision = decide_groups(
            depths,
            min_groups=self._min_groups,
            max_groups=self._max_groups,
            target_queue_depth_per_group=self._target,
        )
        self._export(depths)
        return decision.target_groups * self._data_parallel_size, {
            **ctx.policy_state,
            "reason": decision.reason,
        }

    def _export(self, depths: Mapping[str, float]) -> None:
        """Set the per-group gauge; groups that vanished (restarted gangs) drop to 0."""
        from ray.util.metrics import Gauge

        if self._gauge is None:
            self._gauge = Gauge(
                GROUP_QUEUE_DEPTH_METRIC,
                description="Running + waiting requests summed over a group's ranks.",
                tag_keys=("deployment", "version", "group"),
            )
        for group in self._exported_groups - set(depths):
            self._gauge.set(0, tags={**self._tags, "group": group})
        for group, depth in depths.items():
            self._gauge.set(depth, tags={**self._tags, "group": group})
        self._exported_groups = set(depths)
