"""EPLB expert placement for the planner: the serving package's algorithm, chosen by predicted time.

The algorithm lives in `deepseek_serving.eplb` (numpy only) because the engine runs the same
policy inside vLLM's runtime EPLB (`deepseek_serving.eplb.vllm_policy`); the operator imports it
from there, so the map `dsd plan` shows and the maps the engine computes come from one code.

- `deepseek_serving.eplb.placement`: glossary, `EplbTopology`, the candidate policies
  (`PLACEMENT_POLICIES`), balancedness and weight-move metrics;
- `deepseek_serving.eplb.cost`: the step-time model of one MoE layer (expert roofline + NVLink /
  RDMA all-to-all under node-limited routing), the GPU figures table, the regimes;
- `deepseek_serving.eplb.plan`: `plan_expert_placement`, per layer the candidate with the least
  predicted step time, with every candidate's prediction (vLLM's default among them).
"""

from __future__ import annotations

from deepseek_serving.eplb.cost import (
    DECODE,
    DEEPSEEK_V3,
    DEFAULT_GPU,
    PREFILL,
    GpuFigures,
    MoeShape,
    Regime,
    StepCostModel,
    StepTimePrediction,
    gpu_figures,
    predict_step_time,
)
from deepseek_serving.eplb.placement import (
    DEFAULT_MIGRATION_SLACK,
    PLACEMENT_POLICIES,
    EplbTopology,
    PlacementPolicyName,
    compute_balancedness,
    compute_gpu_load,
    compute_logical_maps,
    count_expert_moves,
)
from deepseek_serving.eplb.plan import (
    EplbPolicyName,
    ExpertPlacement,
    PlacementScore,
    plan_expert_placement,
    vllm_default_policy,
)

__all__ = [
    "DECODE",
    "DEEPSEEK_V3",
    "DEFAULT_GPU",
    "DEFAULT_MIGRATION_SLACK",
    "PLACEMENT_POLICIES",
    "PREFILL",
    "EplbPolicyName",
    "EplbTopology",
    "ExpertPlacement",
    "GpuFigures",
    "MoeShape",
    "PlacementPolicyName",
    "PlacementScore",
    "Regime",
    "StepCostModel",
    "StepTimePrediction",
    "compute_balancedness",
    "compute_gpu_load",
    "compute_logical_maps",
    "count_expert_moves",
    "gpu_figures",
    "plan_expert_placement",
    "predict_step_time",
    "vllm_default_policy",
]
