"""Ray placement of one group, and the KubeRay worker pods that make it schedulable.

How a group lands on Ray (the layout Ray Serve LLM's data-parallel server uses, DESIGN.md):
- each data-parallel rank (one attention replica) reserves its tensor-parallel slice as one
  placement group of `tensor_parallel_size` per-GPU bundles with `STRICT_PACK`, so the slice's
  ranks share a node (and NVLink);
- the `data_parallel_size` slices of a group are one gang: scheduled together, restarted together,
  packed (`PACK`) onto as few nodes as possible so a group fills whole nodes.
A single placement group with one bundle per node (`STRICT_SPREAD`) would pin the same shape, but
Ray Serve LLM reserves per replica; planning the shape it runs keeps the plan and the cluster equal.

KubeRay's worker group provides the nodes: a worker pod is one node's worth of the group (all its
GPUs, CPUs and memory), `pods_per_group` pods per group, and the in-tree autoscaler moves replicas
in whole groups between `minGroups` and `maxGroups`.
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
    """Resources of one placement-group bundle: one rank's device and its share of the host."""

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
    """The placement of one data-parallel group: `slices` gang-scheduled tensor-parallel slices."""

    slice_bundles: tuple[Bundle, ...]
    """Bundles of one slice, one per tensor-parallel rank."""
    slices: int
    """Slices (data-parallel ranks) in the group."""
    ranks_per_node: int
    """Ranks of the group on each of its nodes."""
    slice_strategy: Literal["STRICT_PACK"] = "STRICT_PACK"
    gang_strategy: Literal["PACK"] = "PACK"

    @property
    def group_bundles(self) -> list[dict[str, float]]:
        """Every rank's bundle, rank-major (rank `r` = DP rank `r // TP`, TP rank `r % TP`)."""
        return [bundle.to_ray() for _ in range(self.slices) for bundle in self.slice_bundles]

    def node_of_rank(self, rank: int) -> int:
        """Node index of a rank once the gang is packed onto whole nodes."""
        return rank // self.ranks_per_node


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
    """Bundles of one group (see the module docstring)."""
    rank = Bundle(
        1 if inventory.accelerator == "gpu" else 0,
        inventory.cpus_per_gpu,
        inventory.host_memory_per_gpu_bytes,
    )
    return GroupPlacement((rank,) * sizes.tensor, slices=sizes.data, ranks_per_node=sizes.ranks_per_node)


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
