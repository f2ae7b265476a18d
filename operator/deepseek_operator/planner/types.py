"""Values the planners share: the hardware a group runs on and the parallel sizes chosen for it.

Glossary (DESIGN.md "Words"):
rank
    One engine process on one GPU (one CPU slot for accelerator cpu).
group
    A data-parallel group: `data_parallel_size × tensor_parallel_size` ranks that together hold
    every routed expert once (plus redundant copies); the unit of scaling, canary and failure.
tensor-parallel slice
    The `tensor_parallel_size` ranks of one attention replica; they stay inside one node.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

__all__ = ["Inventory", "ParallelSizes"]


@dataclass(frozen=True)
class Inventory:
    """The node shape a group is planned on.

    Example: `Inventory(accelerator="gpu", gpus_per_node=8, gpu_memory_bytes=79 * 2**30,
    gpu_type="H100", cpus_per_gpu=12, host_memory_per_gpu_bytes=200 * 2**30)`.
    """

    accelerator: Literal["gpu", "cpu"]
    gpus_per_node: int
    """Ranks per node (GPUs, or CPU slots for accelerator cpu)."""
    gpu_memory_bytes: int
    """Usable device memory of one GPU; for accelerator cpu, the host memory one rank may use."""
    gpu_type: str | None
    """Known type name (`H100`) or None when only the memory was given."""
    cpus_per_gpu: int
    """CPU cores reserved per rank."""
    host_memory_per_gpu_bytes: int
    """Host memory reserved per rank."""

    def describe(self) -> str:
        """`8 × H100 (79.0 GiB)` for messages."""
        device = (self.gpu_type or "GPU") if self.accelerator == "gpu" else "CPU rank"
        return f"{self.gpus_per_node} × {device} ({self.gpu_memory_bytes / 2**30:.1f} GiB)"


@dataclass(frozen=True, order=True)
class ParallelSizes:
    """The shape of one group.

    Example (DeepSeek-R1 on two H100 nodes): `ParallelSizes(tensor=8, data=2, gpus_per_node=8)`
    has 16 ranks on 2 nodes; experts are sharded over all 16 (`expert == 16`).
    """

    tensor: int
    """Ranks of one attention replica (vLLM `tensor_parallel_size`)."""
    data: int
    """Attention replicas in the group (vLLM `data_parallel_size`)."""
    gpus_per_node: int
    """Ranks per node of the inventory, to derive the node count."""

    def __post_init__(self) -> None:
        if self.tensor < 1 or self.data < 1:
            raise ValueError(f"parallel sizes must be positive: tensor={self.tensor}, data={self.data}")
        if self.gpus_per_node % self.tensor:
            raise ValueError(f"tensor={self.tensor} does not divide gpus_per_node={self.gpus_per_node}")

    @property
    def expert(self) -> int:
        """Ranks the routed experts are sharded over: every rank of the group."""
        return self.tensor * self.data

    @property
    def ranks(self) -> int:
        """Ranks (GPUs) in the group."""
        return self.tensor * self.data

    @property
    def nodes(self) -> int:
        """Whole nodes the group spans; 1 when it fits inside one node."""
        return max(1, self.ranks // self.gpus_per_node)

    @property
    def ranks_per_node(self) -> int:
        """Ranks of the group on each of its nodes."""
        return min(self.ranks, self.gpus_per_node)

    def __str__(self) -> str:
        return f"TP={self.tensor} DP={self.data} EP={self.expert}"
