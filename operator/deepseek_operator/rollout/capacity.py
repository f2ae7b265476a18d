"""Groups and weight of the two versions of a rollout, within a surge budget (pure).

A group carries 1/N of the traffic, N the stable version's groups when the rollout started. For
a weight `w` the canary needs `ceil(N·w/100)` groups and the stable version `ceil(N·(100-w)/100)`;
together they may hold at most `N + surge` groups (a blue/green switch would hold 2N). So:

1. the weight the route gets never runs ahead of the canary's ready groups:
   `min(w, floor(100·ready/N))` until the canary has what `w` needs;
2. the stable version keeps every group the budget allows, and never fewer than the traffic left
   to it needs (`N - ready` while the canary is short of groups);
3. the canary starts what the budget leaves, up to what `w` needs (at least one group).

Worked example: N=4, surge 1, `setWeight: 50`. The canary starts 1 group (stable keeps 4: 5 in
all); once it is ready the route gives it 25%, the stable shrinks to 3 and the canary starts a
second group; once that is ready, 50% (the stable keeps 3 while the budget allows). Promotion
(w=100) continues the same way until the canary runs 4 and takes all the traffic.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

__all__ = ["RolloutCapacity", "plan_rollout_capacity"]


@dataclass(frozen=True)
class RolloutCapacity:
    canary_groups: int
    """Groups the canary runs (ready or starting)."""
    stable_groups: int
    """Groups the stable version keeps."""
    weight: int
    """Percent of requests the route sends the canary now."""
    target_weight: int
    """The weight the steps ask for."""

    @property
    def complete(self) -> bool:
        """Whether the weight asked for is the weight applied."""
        return self.weight == self.target_weight


def plan_rollout_capacity(
    *, initial_groups: int, target_weight: int, canary_ready_groups: int, surge_groups: int
) -> RolloutCapacity:
    """The groups of both versions and the weight the route can take now.

    Parameters:
        initial_groups: N, the stable version's groups at the start (>= 1).
        target_weight: the weight the steps ask for, 0..100.
        canary_ready_groups: the canary's groups serving now.
        surge_groups: extra groups the rollout may hold beyond N (>= 1).

    Returns:
        `RolloutCapacity`; `complete` once the applied weight equals `target_weight`.
    """
    if initial_groups < 1 or surge_groups < 1 or not 0 <= target_weight <= 100:
        raise ValueError(
            f"need N >= 1, surge >= 1, 0 <= weight <= 100; got {initial_groups}, {surge_groups}, "
            f"{target_weight}"
        )
    n = initial_groups
    # Step 1: the weight the canary's ready groups carry, and what the stable version keeps for
    # the rest: its share of the weight once the canary has what it needs; until then the groups
    # the canary cannot carry (the integer weight rounds against the canary, by under 1%).
    canary_needed = max(1, math.ceil(n * target_weight / 100))
    if canary_ready_groups >= canary_needed:
        weight, stable_needed = target_weight, math.ceil(n * (100 - target_weight) / 100)
    else:
        ready = min(canary_ready_groups, n)
        weight, stable_needed = min(target_weight, 100 * ready // n), n - ready
    # Step 2: the stable version keeps every group the budget spares.
    stable_groups = min(n, max(stable_needed, n + surge_groups - canary_needed))
    # Step 3: the canary grows into what is left.
    canary_groups = min(canary_needed, n + surge_groups - stable_groups)
    return RolloutCapacity(canary_groups, stable_groups, weight, target_weight)
