"""Sizing: fewest GPUs that fit, the most KV cache among them, hints kept or rejected with a reason."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from deepseek_operator.errors import PlanInfeasible
from deepseek_operator.modelcfg import ArchitectureContext, catalog_names, load_catalog_architecture
from deepseek_operator.planner.memory import EngineMemorySettings, weight_format
from deepseek_operator.planner.plan import Plan, plan_deployment
from deepseek_operator.planner.sizing import SizingRequest, choose_parallel_sizes
from deepseek_operator.planner.types import Inventory
from deepseek_operator.validation import validate_deployment
from tests.api.resources import DELETE, example, with_changes

GIB = 2**30


def _plan(base: str, changes: dict[str, Any]) -> Plan:
    document = with_changes(example(base), changes)
    return plan_deployment(validate_deployment(document, ArchitectureContext(base_dir=Path("/"))))


def _nodes(gpu_memory: str, **hints: int) -> dict[str, Any]:
    """R1 (fp8) on nodes of 8 GPUs of `gpu_memory`, at full context, with parallel `hints`."""
    return {
        "spec.resources.gpuType": DELETE,
        "spec.resources.gpuMemory": gpu_memory,
        "spec.model.maxModelLen": DELETE,
        "spec.serving.limits.maxTokens": DELETE,
        "spec.parallelism": {"eplb": {"enabled": True}, **hints},
    }


def test_r1_fp8_does_not_fit_one_node_of_8x80gib() -> None:
    with pytest.raises(PlanInfeasible) as raised:
        _plan("deepseek-r1-h100", _nodes("80Gi", tensorParallelSize=8, dataParallelSize=1))
    (error,) = raised.value.errors
    assert error.path == "spec.parallelism.dataParallelSize"
    assert "TP=8 DP=1 EP=8 (8 GPUs on 1 node(s)" in error.message
    assert "does not fit" in error.message
    assert "would fit: a group of 16 GPUs (TP=8 DP=2 EP=16 on 2 node(s))" in error.message


def test_r1_fp8_fits_one_node_of_8x141gib() -> None:
    plan = _plan("deepseek-r1-h100", _nodes("141Gi"))
    assert (plan.sizes.ranks, plan.sizes.nodes) == (8, 1)
    assert plan.group.fits


def test_r1_fp8_fits_two_nodes_of_8x80gib_when_sizes_are_free() -> None:
    plan = _plan("deepseek-r1-h100", _nodes("80Gi"))
    assert (plan.sizes.ranks, plan.sizes.nodes) == (16, 2)
    # MLA's latent is replicated over TP ranks: data-parallel attention caches the most tokens.
    assert (plan.sizes.tensor, plan.sizes.data) == (1, 16)


def test_hints_are_kept_when_they_fit() -> None:
    plan = _plan("deepseek-r1-h100", {})
    assert (plan.sizes.tensor, plan.sizes.data, plan.sizes.expert) == (8, 2, 16)
    assert plan.redundant_experts == 32
    assert plan.group.memory.slots_per_rank == 18


def test_a_bf16_model_that_does_not_fit_suggests_fp8() -> None:
    changes = {
        "spec.model.source": "hf://deepseek-ai/DeepSeek-V2",
        "spec.model.maxModelLen": 32768,
        "spec.serving.limits.maxTokens": 8192,
        "spec.parallelism": {"tensorParallelSize": 4, "dataParallelSize": 1},
    }
    with pytest.raises(PlanInfeasible) as raised:
        _plan("deepseek-r1-h100", changes)
    assert "fp8 weights (quantization: fp8) at TP=4 DP=1 EP=4" in raised.value.errors[0].message


def test_weights_that_fit_with_too_little_cache_suggest_a_shorter_context() -> None:
    changes = {
        **_nodes("90Gi", tensorParallelSize=8, dataParallelSize=1),
        "spec.versions[1].engineArgs.gpu_memory_utilization": 0.95,
    }
    with pytest.raises(PlanInfeasible) as raised:
        _plan("deepseek-r1-h100", changes)
    message = raised.value.errors[0].message
    assert "short of one 163840-token sequence" in message
    assert "maxModelLen ≤ " in message


def test_no_shape_for_the_hints_says_so() -> None:
    """EP=8 needs 8 ranks, but TP=2 × DP=... cannot be 8 with DP fixed at 2."""
    request = SizingRequest(
        arch=load_catalog_architecture("deepseek-v3"),
        inventory=Inventory("gpu", 8, 141 * GIB, "H200", 16, 200 * GIB),
        fmt=weight_format(load_catalog_architecture("deepseek-v3"), "auto", "auto"),
        engine=EngineMemorySettings(),
        redundant_experts=0,
        max_model_len=4096,
        tensor_hint=2,
        data_hint=2,
        expert_hint=8,
    )
    with pytest.raises(PlanInfeasible) as raised:
        choose_parallel_sizes(request)
    assert raised.value.errors[0].path == "spec.parallelism.expertParallelSize"
    assert "no group shape" in raised.value.errors[0].message


@settings(max_examples=60, deadline=None)
@given(
    name=st.sampled_from([n for n in catalog_names() if n != "deepseek-tiny"]),
    gpus_per_node=st.sampled_from([4, 8]),
    memory_gib=st.integers(min_value=24, max_value=192),
    redundant=st.sampled_from([0, 16, 32, 64]),
    max_model_len=st.sampled_from([4096, 32768, 131072]),
)
def test_chosen_shapes_respect_every_constraint(
    name: str, gpus_per_node: int, memory_gib: int, redundant: int, max_model_len: int
) -> None:
    arch = load_catalog_architecture(name)
    request = SizingRequest(
        arch=arch,
        inventory=Inventory("gpu", gpus_per_node, memory_gib * GIB, None, 8, 64 * GIB),
        fmt=weight_format(arch, "auto", "auto"),
        engine=EngineMemorySettings(),
        redundant_experts=redundant,
        max_model_len=max_model_len,
    )
    try:
        group = choose_parallel_sizes(request)
    except PlanInfeasible as infeasible:
        message = str(infeasible)
    else:
        message = ""
    if message:
        assert "would fit" in message or "no group shape" in message
        return
    sizes = group.sizes
    assert arch.num_attention_heads % sizes.tensor == 0
    assert gpus_per_node % sizes.tensor == 0
    assert sizes.ranks % gpus_per_node == 0 or gpus_per_node % sizes.ranks == 0
    assert (arch.n_routed_experts + redundant) % sizes.expert == 0
    assert group.fits
    assert group.memory.kv_cache_tokens >= max_model_len
    assert (
        group.memory.weights + group.memory.activation_reserve + group.memory.runtime_reserve
        <= group.memory.usable
    )
