"""Ray placement of one group, and the KubeRay worker pods that make it schedulable.

A group is gang-scheduled on one Ray placement group (DESIGN.md):
- a group inside one node gets one bundle per rank (`{"GPU": 1, "CPU": c}`) and `STRICT_PACK`:
  every rank on the same node, the layout vLLM and Ray Serve LLM expect;
- a group of several nodes gets one bundle per node (`{"GPU": 8, "CPU": 8c}`) and
  `STRICT_SPREAD`: each bundle on its own node. Rank `r` runs in bundle `r // ranks_per_node`,
  so the ranks of a tensor-parallel slice (consecutive ranks, a divisor of the node) share a
  node. Per-GPU bundles cannot promise that across nodes: Ray's PACK may split a slice.

KubeRay's worker group provides exactly those nodes: a worker pod is one node's worth of the
group (all its GPUs, CPUs and memory), `nodes_per_group` pods per group, and the in-tree
autoscaler moves replicas in whole groups between `minGroups` and `maxGroups`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from deepseek_operator.planner.types import Inventory, ParallelSizes

__all__ = ["Bundle", "GroupPlacement", "WorkerGroupShape", "plan_group_placement", "plan_worker_group"]

POD_CPU_OVERHEAD = 2
"""CPU cores per worker pod for the raylet and object store beside the ranks."""


@dataclass(frozen=True)
class Bundle:
    """Resources of one placement-group bundle."""

    gpus: int
    cpus: int
    memory_bytes: int

    def to_ray(self) -> dict[str, float]:
        """The bundle as Ray writes it (`memory` in bytes); no GPU key for CPU ranks."""
        bundle: dict[str, float] = {"CPU": float(self.cpus), "memory": float(self.memory_bytes)}
        if self.gpus:
            bundle["GPU"] = float(self.gpus)
        return bundle


@dataclass(frozen=True)
class GroupPlacement:
    """The placement group of one data-parallel group."""

    bundles: tuple[Bundle, ...]
    strategy: Literal["STRICT_PACK", "STRICT_SPREAD"]
    rank_bundle: tuple[int, ...]
    """Bundle index of each rank (rank `r` = DP rank `r // TP`, TP rank `r % TP`)."""

    def to_ray(self) -> dict[str, object]:
        """`placement_group_config` as Ray Serve takes it."""
        return {"bundles": [bundle.to_ray() for bundle in self.bundles], "strategy": self.strategy}


@dataclass(frozen=True)
class WorkerGroupShape:
    """The KubeRay worker group serving a deployment's groups."""

    pods_per_group: int
    gpus_per_pod: int
    cpus_per_pod: int
    memory_per_pod_bytes: int
    replicas: int
    """Pods for the initial number of groups."""
    min_replicas: int
    max_replicas: int


def plan_group_placement(sizes: ParallelSizes, inventory: Inventory) -> GroupPlacement:
    """Bundles and strategy of one group (see the module docstring)."""
    gpu = 1 if inventory.accelerator == "gpu" else 0
    if sizes.nodes == 1 and sizes.ranks <= inventory.gpus_per_node:
        per_rank = Bundle(gpu, inventory.cpus_per_gpu, inventory.host_memory_per_gpu_bytes)
        return GroupPlacement((per_rank,) * sizes.ranks, "STRICT_PACK", tuple(range(sizes.ranks)))
    per_node = sizes.ranks_per_node
    node = Bundle(
        gpu * per_node, inventory.cpus_per_gpu * per_node, inventory.host_memory_per_gpu_bytes * per_node
    )
    return GroupPlacement(
        (node,) * sizes.nodes,
        "STRICT_SPREAD",
        tuple(rank // per_node for rank in range(sizes.ranks)),
    )


def plan_worker_group(
    sizes: ParallelSizes, inventory: Inventory, *, groups: int, min_groups: int, max_groups: int
) -> WorkerGroupShape:
    """Worker pods for `groups` groups, scalable between `min_groups` and `max_groups`."""
    per_pod = sizes.ranks_per_node
    pods_per_group = sizes.ranks // per_pod
    return WorkerGroupShape(
        pods_per_group=pods_per_group,
        gpus_per_pod=per_pod if inventory.accelerator == "gpu" else 0,
        cpus_per_pod=per_pod * inventory.cpus_per_gpu + POD_CPU_OVERHEAD,
        memory_per_pod_bytes=per_pod * inventory.host_memory_per_gpu_bytes,
        replicas=pods_per_group * groups,
        min_replicas=pods_per_group * min_groups,
        max_replicas=pods_per_group * max_groups,
    )
