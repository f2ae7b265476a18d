"""Choose tensor-, data- and expert-parallel sizes of a group, and check that they fit.

The rule (one public entry point, `choose_parallel_sizes`):
1. Enumerate group shapes the hardware and model allow: tensor-parallel sizes that divide the
   attention heads and the node; groups that fill whole nodes or divide one node evenly; expert
   slots (logical + redundant) that split evenly over the ranks. Sizes the user gave are fixed,
   never changed.
2. Take the fewest GPUs whose shape fits in memory (weights, reserves, and a KV cache holding at
   least one `maxModelLen` sequence per attention replica).
3. Among shapes of that many GPUs, take the one whose group caches the most tokens: DeepSeek's
   MLA latent is replicated over tensor-parallel ranks, so data-parallel attention usually wins
   (as DeepSeek serves V3), unless replicated attention weights crowd out the cache. Ties go to
   the smaller tensor-parallel size.
When nothing fits, `PlanInfeasible` says by how much, at the field that pinned the shape, and
what would fit: a bigger group, fp8 weights, or a shorter `maxModelLen`.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

from deepseek_operator.errors import FieldError, PlanInfeasible
from deepseek_operator.modelcfg import ModelArchitecture
from deepseek_operator.planner.memory import (
    EngineMemorySettings,
    MemoryBreakdown,
    WeightFormat,
    compute_memory,
)
from deepseek_operator.planner.types import Inventory, ParallelSizes
from deepseek_operator.quantity import format_bytes

__all__ = ["MAX_NODES_PER_GROUP", "SizedGroup", "SizingRequest", "choose_parallel_sizes"]

MAX_NODES_PER_GROUP = 64
"""Largest group considered (64 nodes of 8 = 512 GPUs, beyond any DeepSeek deployment)."""


@dataclass(frozen=True)
class SizingRequest:
    """Everything sizing depends on."""

    arch: ModelArchitecture
    inventory: Inventory
    fmt: WeightFormat
    engine: EngineMemorySettings
    redundant_experts: int
    max_model_len: int
    """Longest sequence; one must fit each attention replica's KV cache."""
    tensor_hint: int | None = None
    data_hint: int | None = None
    expert_hint: int | None = None


@dataclass(frozen=True)
class SizedGroup:
    """A group shape with its memory fit."""

    sizes: ParallelSizes
    memory: MemoryBreakdown
    max_model_len: int

    @property
    def fits(self) -> bool:
        return self.memory.kv_cache_tokens >= self.max_model_len

    @property
    def kv_cache_tokens_per_group(self) -> int:
        """Each attention replica has its own cache; its TP ranks hold copies of the same latent."""
        return self.memory.kv_cache_tokens * self.sizes.data

    @property
    def shortfall_bytes(self) -> int:
        """Bytes missing for one `max_model_len` sequence per replica (0 when it fits)."""
        needed = self.max_model_len * self.memory.kv_cache_bytes_per_token
        return max(0, needed - self.memory.kv_cache)


def choose_parallel_sizes(request: SizingRequest) -> SizedGroup:
    """The group shape for `request` (see the module docstring); raises PlanInfeasible."""
    shapes = _candidate_shapes(request)
    if not shapes:
        raise PlanInfeasible([FieldError(_pinning_field(request), _no_shape_message(request))])
    sized = [_size(request, sizes) for sizes in shapes]
    chosen = _best_fitting(sized)
    if chosen is not None:
        return chosen
    closest = max(sized, key=lambda group: group.memory.available_for_kv_cache)
    raise PlanInfeasible([FieldError(_pinning_field(request), _does_not_fit_message(request, closest))])


def _best_fitting(sized: list[SizedGroup]) -> SizedGroup | None:
    """Steps 2 and 3: fewest GPUs, then most cached tokens, then the smaller TP."""
    fitting = [group for group in sized if group.fits]
    if not fitting:
        return None
    fewest = min(group.sizes.ranks for group in fitting)
    return max(
        (group for group in fitting if group.sizes.ranks == fewest),
        key=lambda group: (group.kv_cache_tokens_per_group, -group.sizes.tensor),
    )


def _size(request: SizingRequest, sizes: ParallelSizes) -> SizedGroup:
    memory = compute_memory(
        request.arch,
        sizes,
        request.inventory,
        fmt=request.fmt,
        redundant_experts=request.redundant_experts,
        engine=request.engine,
    )
    return SizedGroup(sizes, memory, request.max_model_len)


def _group_rank_counts(gpus_per_node: int) -> list[int]:
    """Groups that divide one node evenly, then groups of whole nodes."""
    within_node = [ranks for ranks in range(1, gpus_per_node) if gpus_per_node % ranks == 0]
    return within_node + [gpus_per_node * nodes for nodes in range(1, MAX_NODES_PER_GROUP + 1)]


def _candidate_shapes(request: SizingRequest) -> list[ParallelSizes]:
    arch, per_node = request.arch, request.inventory.gpus_per_node
    physical = arch.n_routed_experts + request.redundant_experts
    tensor_sizes = [
        size
        for size in range(1, per_node + 1)
        if per_node % size == 0 and arch.num_attention_heads % size == 0
    ]
    shapes = []
    for ranks in _group_rank_counts(per_node):
        if physical % ranks or (request.expert_hint is not None and ranks != request.expert_hint):
            continue
        for tensor in tensor_sizes:
            if ranks % tensor or (request.tensor_hint is not None and tensor != request.tensor_hint):
                continue
            if request.data_hint is not None and ranks // tensor != request.data_hint:
                continue
            shapes.append(ParallelSizes(tensor=tensor, data=ranks // tensor, gpus_per_node=per_node))
    return shapes


def _pinning_field(request: SizingRequest) -> str:
    """The hint that fixed the shape, where the error belongs; the node shape otherwise."""
    for hint, field in (
        (request.expert_hint, "expertParallelSize"),
        (request.data_hint, "dataParallelSize"),
        (request.tensor_hint, "tensorParallelSize"),
    ):
        if hint is not None:
            return f"spec.parallelism.{field}"
    return "spec.resources"


def _no_shape_message(request: SizingRequest) -> str:
    hints = ", ".join(
        f"{name}={value}"
        for name, value in (
            ("tensorParallelSize", request.tensor_hint),
            ("dataParallelSize", request.data_hint),
            ("expertParallelSize", request.expert_hint),
        )
        if value is not None
    )
    slots = request.arch.n_routed_experts + request.redundant_experts
    return (
        f"no group shape of {request.arch.name} on nodes of {request.inventory.describe()} satisfies "
        f"{hints or 'the model'} with {slots} expert slots"
    )


def _does_not_fit_message(request: SizingRequest, closest: SizedGroup) -> str:
    memory = closest.memory
    text = (
        f"{closest.sizes} ({closest.sizes.ranks} GPUs on {closest.sizes.nodes} node(s) of "
        f"{request.inventory.describe()}) does not fit: {format_bytes(memory.weights)} of weights and "
        f"{format_bytes(memory.activation_reserve + memory.runtime_reserve)} of reserves per GPU leave "
        f"{format_bytes(memory.available_for_kv_cache)} of {format_bytes(memory.usable)} for the KV cache, "
        f"{format_bytes(closest.shortfall_bytes)} short of one {request.max_model_len}-token sequence"
    )
    return text + "; would fit: " + "; or ".join(_alternatives(request, closest))


def _alternatives(request: SizingRequest, closest: SizedGroup) -> list[str]:
    """What would fit, each checked with the same model."""
    found = []
    unpinned = replace(request, data_hint=None, expert_hint=None)
    bigger = _best_fitting([_size(unpinned, sizes) for sizes in _candidate_shapes(unpinned)])
    if bigger is not None and bigger.sizes.ranks > closest.sizes.ranks:
        found.append(f"a group of {bigger.sizes.ranks} GPUs ({bigger.sizes} on {bigger.sizes.nodes} node(s))")
    if request.fmt.name in ("bfloat16", "float16"):
        fp8 = WeightFormat("fp8", 1.0, (128, 128))
        fp8_group = _size(replace(request, fmt=fp8), closest.sizes)
        if fp8_group.fits:
            found.append(f"fp8 weights (quantization: fp8) at {closest.sizes}")
    if closest.memory.kv_cache_tokens >= 1024:
        longest = closest.memory.kv_cache_tokens // 1024 * 1024
        found.append(f"maxModelLen ≤ {longest} at {closest.sizes}")
    return found or ["nothing within 64 nodes per group; use GPUs with more memory"]
