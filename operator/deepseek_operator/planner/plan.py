"""The plan of a deployment: one pure function from a validated resource to every decision.

`plan_deployment` composes the planners: the node shape (`inventory_from_spec`), the group shape
and memory fit (`sizing`), the Ray placement and KubeRay worker pods (`placement`), and the
EPLB expert map judged by its predicted MoE step time on the group's GPUs (`eplb`). `dsd plan`
prints it, the renderer turns it into a RayService, the operator records its summary in status;
all three call this function.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

from deepseek_operator.api.v1alpha1 import DeepSeekDeploymentSpec, EplbSpec, PlanSummary, VersionSpec
from deepseek_operator.errors import FieldError, InvalidSpec
from deepseek_operator.hardware import GPU_TYPES
from deepseek_operator.modelcfg import ModelArchitecture
from deepseek_operator.planner.eplb import (
    DECODE,
    DEFAULT_GPU,
    EplbTopology,
    ExpertPlacement,
    MoeShape,
    PlacementScore,
    Regime,
    StepCostModel,
    compute_balancedness,
    gpu_figures,
    plan_expert_placement,
)
from deepseek_operator.planner.memory import (
    EngineMemorySettings,
    WeightFormat,
    engine_memory_settings,
    expert_bytes,
    weight_format,
)
from deepseek_operator.planner.placement import (
    GroupPlacement,
    WorkerGroupShape,
    plan_group_placement,
    plan_worker_group,
)
from deepseek_operator.planner.sizing import SizedGroup, SizingRequest, choose_parallel_sizes
from deepseek_operator.planner.types import Inventory, ParallelSizes
from deepseek_operator.quantity import parse_quantity
from deepseek_operator.validation import ValidatedDeployment

__all__ = ["Plan", "eplb_cost_model", "inventory_from_spec", "plan_deployment"]


@dataclass(frozen=True)
class Plan:
    """Every planning decision for the desired version of one deployment."""

    deployment: str
    version: str
    architecture: ModelArchitecture
    inventory: Inventory
    weight_format: WeightFormat
    engine: EngineMemorySettings
    group: SizedGroup
    """Parallel sizes and the memory of one rank."""
    redundant_experts: int
    groups: int
    """Groups to start with."""
    min_groups: int
    max_groups: int
    placement: GroupPlacement
    worker_group: WorkerGroupShape
    expert_placement: ExpertPlacement | None
    """The expert map with its predicted step time and every candidate's (vLLM's default among
    them); None when the group has a single rank (nothing to place)."""
    load_source: str
    """Where the expert load came from: `uniform`, a file, or a ConfigMap."""

    @property
    def sizes(self) -> ParallelSizes:
        return self.group.sizes

    @property
    def reason(self) -> str:
        """One sentence for events and logs."""
        memory = self.group.memory
        return (
            f"{self.sizes} on {self.sizes.nodes} node(s) of {self.inventory.describe()} per group, "
            f"{self.groups} group(s); {memory.weights / 2**30:.1f} GiB weights and "
            f"{self.group.kv_cache_tokens_per_group:,} KV-cache tokens per group"
        )

    def summary(self) -> PlanSummary:
        """The part recorded in `status.plan`."""
        return PlanSummary(
            tensor_parallel_size=self.sizes.tensor,
            data_parallel_size=self.sizes.data,
            expert_parallel_size=self.sizes.expert,
            gpus_per_group=self.sizes.ranks,
            nodes_per_group=self.sizes.nodes,
            redundant_experts=self.redundant_experts,
            fits=self.group.fits,
            kv_cache_tokens_per_group=self.group.kv_cache_tokens_per_group,
            **self._eplb_summary(),
        )

    def _eplb_summary(self) -> dict[str, Any]:
        placement = self.expert_placement
        if placement is None:
            return {}
        score = placement.score
        return {
            "eplb_balancedness": round(placement.balancedness, 4),
            "eplb_policy": placement.policy,
            "eplb_regime": placement.cost.describe(),
            "eplb_step_us": round(score.step_us, 1),
            "eplb_compute_us": round(score.compute_us, 1),
            "eplb_nvlink_us": round(score.nvlink_us, 1),
            "eplb_rdma_us": round(score.rdma_us, 1),
            "eplb_reference_step_us": round(placement.reference.step_us, 1),
        }

    def to_json(self) -> dict[str, Any]:
        """`dsd plan --json`: one object with every number the tables show."""
        memory = self.group.memory
        return {
            "deployment": self.deployment,
            "version": self.version,
            "architecture": self.architecture.name,
            "tensor_parallel_size": self.sizes.tensor,
            "data_parallel_size": self.sizes.data,
            "expert_parallel_size": self.sizes.expert,
            "gpus_per_group": self.sizes.ranks,
            "nodes_per_group": self.sizes.nodes,
            "groups": self.groups,
            "min_groups": self.min_groups,
            "max_groups": self.max_groups,
            "redundant_experts": self.redundant_experts,
            "expert_slots_per_gpu": memory.slots_per_rank,
            "weight_format": self.weight_format.name,
            "max_model_len": self.group.max_model_len,
            "per_gpu_memory_bytes": memory.as_dict(),
            "kv_cache_bytes_per_token": memory.kv_cache_bytes_per_token,
            "kv_cache_tokens_per_gpu": memory.kv_cache_tokens,
            "kv_cache_tokens_per_group": self.group.kv_cache_tokens_per_group,
            "fits": self.group.fits,
            "placement": {
                "slice_bundles": [bundle.to_ray() for bundle in self.placement.slice_bundles],
                "slice_strategy": self.placement.slice_strategy,
                "slices_per_group": self.placement.slices,
                "gang_strategy": self.placement.gang_strategy,
                "rank_node": [self.placement.node_of_rank(rank) for rank in range(self.sizes.ranks)],
            },
            "worker_group": {
                "pods_per_group": self.worker_group.pods_per_group,
                "gpus_per_pod": self.worker_group.gpus_per_pod,
                "cpus_per_pod": self.worker_group.cpus_per_pod,
                "memory_per_pod_bytes": self.worker_group.memory_per_pod_bytes,
                "replicas": self.worker_group.replicas,
                "min_replicas": self.worker_group.min_replicas,
                "max_replicas": self.worker_group.max_replicas,
            },
            "eplb": self._eplb_json(),
        }

    def _eplb_json(self) -> dict[str, Any] | None:
        placement = self.expert_placement
        if placement is None:
            return None
        per_layer = [compute_balancedness(layer[None, :]) for layer in placement.gpu_load]
        return {
            "policy": placement.policy,
            "reason": placement.reason,
            "load_source": self.load_source,
            "regime": placement.cost.regime.name,
            "tokens_per_gpu": placement.cost.regime.tokens_per_gpu,
            "gpu_figures": placement.cost.gpu.name,
            "predicted": _score_json(placement.score),
            "vllm_default": _score_json(placement.reference),
            "candidates": [_score_json(score) for score in placement.candidates],
            "layer_policies": list(placement.layer_policies),
            "balancedness": placement.balancedness,
            "balancedness_bound": placement.balancedness_bound,
            "per_layer_balancedness": per_layer,
            "expert_bytes": expert_bytes(self.architecture, self.weight_format),
            "physical_to_logical": placement.physical_to_logical.tolist(),
        }


def _score_json(score: PlacementScore) -> dict[str, Any]:
    return {
        "policy": score.policy,
        "step_us": score.step_us,
        "compute_us": score.compute_us,
        "nvlink_us": score.nvlink_us,
        "rdma_us": score.rdma_us,
        "cross_node_mb_per_gpu": score.cross_node_mb_per_gpu,
        "balancedness": score.balancedness,
        "layers_chosen": score.layers_chosen,
    }


def eplb_cost_model(
    arch: ModelArchitecture,
    fmt: WeightFormat,
    inventory: Inventory,
    eplb: EplbSpec,
    engine: EngineMemorySettings,
) -> StepCostModel:
    """The step-time model the expert map is judged by: the model's MoE layer on the group's GPUs.

    GPU figures come from the table by `inventory.gpu_type` (the calibrated H100 when the type is
    unknown or the ranks are CPUs); dispatch is FP8 for fp8 models (DeepEP's V3 setting), BF16
    otherwise; the regime is `spec.parallelism.eplb.optimizeFor` with its `tokensPerGpu` (decode:
    128, prefill: the engine's `max_num_batched_tokens`).
    """
    figures = gpu_figures()
    gpu = figures.get(inventory.gpu_type or "", figures[DEFAULT_GPU])
    hidden = arch.hidden_size
    shape = MoeShape(
        hidden_size=hidden,
        moe_intermediate_size=arch.moe_intermediate_size,
        num_experts_per_tok=arch.num_experts_per_tok,
        topk_group=arch.topk_group,
        expert_weight_bytes=expert_bytes(arch, fmt),
        dispatch_bytes_per_token=hidden + hidden // 128 * 4 if fmt.name == "fp8" else 2 * hidden,
        combine_bytes_per_token=2 * hidden,
    )
    default_tokens = (
        engine.max_num_batched_tokens if eplb.optimize_for == "prefill" else DECODE.tokens_per_gpu
    )
    return StepCostModel(gpu, shape, Regime(eplb.optimize_for, eplb.tokens_per_gpu or default_tokens))


def inventory_from_spec(spec: DeepSeekDeploymentSpec) -> Inventory:
    """The node shape `spec.resources` describes (validated: a GPU has a known type or a memory)."""
    resources = spec.resources
    if resources.accelerator == "cpu":
        memory = parse_quantity(resources.memory_per_gpu)
    elif resources.gpu_memory is not None:
        memory = parse_quantity(resources.gpu_memory)
    else:
        memory = GPU_TYPES[resources.gpu_type or ""].memory_bytes
    return Inventory(
        accelerator=resources.accelerator,
        gpus_per_node=resources.gpus_per_node,
        gpu_memory_bytes=memory,
        gpu_type=resources.gpu_type,
        cpus_per_gpu=resources.cpus_per_gpu,
        host_memory_per_gpu_bytes=parse_quantity(resources.memory_per_gpu),
    )


def plan_deployment(
    deployment: ValidatedDeployment,
    *,
    inventory: Inventory | None = None,
    version: VersionSpec | None = None,
    expert_load: npt.ArrayLike | None = None,
    load_source: str = "uniform",
) -> Plan:
    """Plan one version of `deployment` (the desired one by default).

    Parameters:
        deployment: a resource that passed `validate_deployment`.
        inventory: the node shape; `spec.resources` when None (`dsd plan --gpus-per-node` etc.
            override it).
        version: the entry of `spec.versions` to plan (its engine arguments shape the memory
            fit); the desired (last) one when None.
        expert_load: `[moe_layers, n_routed_experts]` tokens per expert; uniform when None.
        load_source: where `expert_load` came from, for display.

    Raises:
        PlanInfeasible: no group shape fits; the message says by how much and what would fit.
        InvalidSpec: engine arguments of the wrong type, or load statistics of the wrong shape
            (`validate_deployment` reports the former already).
    """
    spec, arch = deployment.spec, deployment.architecture
    inventory = inventory or inventory_from_spec(spec)
    version = version or spec.desired_version
    redundant = spec.parallelism.eplb.redundant_experts
    fmt = weight_format(arch, spec.model.quantization, spec.model.dtype)
    engine, errors = engine_memory_settings(
        version.engine_args, f"spec.versions[{spec.versions.index(version)}].engineArgs"
    )
    if errors:
        raise InvalidSpec(errors)

    # Step 1: the group shape and its memory fit.
    group = choose_parallel_sizes(
        SizingRequest(
            arch=arch,
            inventory=inventory,
            fmt=fmt,
            engine=engine,
            redundant_experts=redundant,
            max_model_len=spec.model.max_model_len or arch.max_position_embeddings,
            tensor_hint=spec.parallelism.tensor_parallel_size,
            data_hint=spec.parallelism.data_parallel_size,
            expert_hint=spec.parallelism.expert_parallel_size,
        )
    )

    # Step 2: how many groups, and the Ray and KubeRay shapes that hold them.
    autoscaling = spec.autoscaling
    min_groups = autoscaling.min_groups if autoscaling else spec.initial_groups
    max_groups = autoscaling.max_groups if autoscaling else spec.initial_groups
    placement = plan_group_placement(group.sizes, inventory)
    worker_group = plan_worker_group(
        group.sizes, inventory, groups=spec.initial_groups, min_groups=min_groups, max_groups=max_groups
    )

    # Step 3: the expert map, judged by predicted step time on these GPUs.
    cost = eplb_cost_model(arch, fmt, inventory, spec.parallelism.eplb, engine)
    expert_placement = _plan_experts(deployment, group.sizes, redundant, expert_load, cost)
    return Plan(
        deployment=deployment.resource.metadata.name,
        version=version.name,
        architecture=arch,
        inventory=inventory,
        weight_format=fmt,
        engine=engine,
        group=group,
        redundant_experts=redundant,
        groups=spec.initial_groups,
        min_groups=min_groups,
        max_groups=max_groups,
        placement=placement,
        worker_group=worker_group,
        expert_placement=expert_placement,
        load_source=load_source if expert_load is not None else "uniform",
    )


def _plan_experts(
    deployment: ValidatedDeployment,
    sizes: ParallelSizes,
    redundant: int,
    expert_load: npt.ArrayLike | None,
    cost: StepCostModel,
) -> ExpertPlacement | None:
    arch = deployment.architecture
    if sizes.expert == 1:
        return None
    topology = EplbTopology(
        num_logical_experts=arch.n_routed_experts,
        num_expert_groups=arch.n_group,
        num_nodes=sizes.nodes,
        num_gpus=sizes.ranks,
        num_physical_experts=arch.n_routed_experts + redundant,
    )
    load = np.ones((arch.num_moe_layers, arch.n_routed_experts)) if expert_load is None else expert_load
    try:
        return plan_expert_placement(
            load, topology, policy=deployment.spec.parallelism.eplb.policy, cost=cost
        )
    except ValueError as error:
        raise InvalidSpec([FieldError("spec.parallelism.eplb", str(error))]) from None
