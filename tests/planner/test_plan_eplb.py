"""The deployment's expert map judged by predicted step time: regime, GPU figures, status summary."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from deepseek_operator.hardware import GPU_TYPES
from deepseek_operator.modelcfg import ArchitectureContext
from deepseek_operator.planner.eplb import gpu_figures
from deepseek_operator.planner.plan import Plan, plan_deployment
from deepseek_operator.validation import validate_deployment
from deepseek_serving.eplb.policy_config import EplbPolicyConfig
from tests.api.resources import example, with_changes


def _plan(changes: dict[str, Any]) -> Plan:
    document = with_changes(example("deepseek-r1-h100"), changes)
    return plan_deployment(validate_deployment(document, ArchitectureContext(base_dir=Path("/"))))


def test_every_known_gpu_type_has_figures() -> None:
    assert set(GPU_TYPES) <= set(gpu_figures())


def test_decode_by_default_with_the_summary_in_status() -> None:
    plan = _plan({})
    placement = plan.expert_placement
    assert placement is not None
    assert (placement.cost.regime.name, placement.cost.regime.tokens_per_gpu) == ("decode", 128)
    assert placement.cost.gpu.name == "H100"
    # R1 fp8: 44 MB experts, FP8 dispatch (7168 + 56 scales), BF16 combine.
    shape = placement.cost.shape
    assert (shape.dispatch_bytes_per_token, shape.combine_bytes_per_token) == (7392, 14336)
    assert shape.expert_weight_bytes == pytest.approx(44.05e6, rel=1e-3)
    summary = plan.summary()
    assert summary.eplb_policy == placement.policy
    assert summary.eplb_regime == "decode, 128 tokens/GPU on H100"
    assert summary.eplb_step_us is not None
    assert summary.eplb_reference_step_us is not None
    assert summary.eplb_step_us <= summary.eplb_reference_step_us
    assert summary.eplb_step_us == pytest.approx(
        (summary.eplb_compute_us or 0) + (summary.eplb_nvlink_us or 0) + (summary.eplb_rdma_us or 0), abs=0.2
    )
    dumped = summary.model_dump(by_alias=True, exclude_none=True)
    assert {"eplbStepUs", "eplbReferenceStepUs", "eplbRegime", "eplbPolicy"} <= set(dumped)


def test_prefill_uses_the_engines_token_budget_and_the_gpu_type() -> None:
    plan = _plan(
        {
            "spec.parallelism.eplb.optimizeFor": "prefill",
            "spec.resources.gpuType": "H200",
            "spec.versions[1].engineArgs.max_num_batched_tokens": 16384,
        }
    )
    placement = plan.expert_placement
    assert placement is not None
    assert (placement.cost.regime.name, placement.cost.regime.tokens_per_gpu) == ("prefill", 16384)
    assert placement.cost.gpu.name == "H200"
    assert not any(c.policy.endswith("-trimmed") for c in placement.candidates)  # compute-bound replicas


def test_tokens_per_gpu_overrides_the_default() -> None:
    plan = _plan({"spec.parallelism.eplb.tokensPerGpu": 32})
    assert plan.expert_placement is not None
    assert plan.expert_placement.cost.regime.tokens_per_gpu == 32


def test_the_engine_gets_the_same_model() -> None:
    # What the operator renders into DSD_EPLB_POLICY rebuilds the model the plan used.
    plan = _plan({"spec.parallelism.eplb.optimizeFor": "prefill"})
    assert plan.expert_placement is not None
    model = plan.expert_placement.cost
    config = EplbPolicyConfig.from_cost_model(model, policy="auto")
    assert EplbPolicyConfig.from_env(config.to_env()).cost_model() == model
