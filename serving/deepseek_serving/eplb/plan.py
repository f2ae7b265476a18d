"""Plan an expert map by predicted step time: the entry point shared by the planner and the engine.

`plan_expert_placement` builds every candidate of `placement.PLACEMENT_POLICIES` that fits the
group (ours hierarchical and global, their trimmed variants, DeepSeek's reference policies),
predicts each one's MoE layer step with `cost.predict_step_time` in the deployment's regime,
and keeps, layer by layer, the fastest (layers are independent in vLLM's map). Balancedness is
reported, not optimised: a placement with balancedness 1.0 can be the slower one once its
all-to-all crosses more nodes, or its GPUs read more replicas per decode step.

Worked example (DeepSeek-V3 fp8 on 4 nodes of 8 H100, 288 slots, uniform load, decode at 128
tokens per GPU): every expert receives 4,096 × 8 / 256 = 128 tokens per step, far below the
~1,360-token knee, so each replica costs one weight read (~107 µs). The untrimmed policies fill
all 9 slots per GPU (9 reads), the trimmed ones leave the 32 redundant slots empty (8 reads):
compute 853 µs instead of 960 µs per layer. Hierarchical keeps each token on at most 4 of the 4
nodes, so its RDMA term is slightly lower than global's: ``hierarchical-trimmed`` wins.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field, replace
from typing import Literal, TypeVar, get_args

import numpy as np
import numpy.typing as npt

from deepseek_serving.eplb.cost import StepCostModel, StepTimePrediction, predict_step_time
from deepseek_serving.eplb.placement import (
    DEFAULT_MIGRATION_SLACK,
    PLACEMENT_POLICIES,
    EplbTopology,
    PlacementPolicyName,
    _replicate,
    compute_balancedness,
    compute_gpu_load,
    compute_logical_maps,
    count_expert_moves,
    placement_targets,
)

__all__ = [
    "EplbPolicyName",
    "ExpertPlacement",
    "PlacementScore",
    "plan_expert_placement",
    "vllm_default_policy",
]

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]
_Scalar = TypeVar("_Scalar", bound=np.generic)

EplbPolicyName = Literal["auto", "hierarchical", "global"]
"""What a user may ask for: the fastest of all candidates (``auto``), or one family's fastest."""

_REL_EPS = 1e-9
_REPLANNER: dict[PlacementPolicyName, PlacementPolicyName] = {
    "deepseek-hierarchical": "hierarchical",
    "deepseek-global": "global",
}
"""Who re-plans a layer near the previous map when DeepSeek's stateless policy was the fastest."""


@dataclass(frozen=True, slots=True)
class PlacementScore:
    """One candidate's predicted step, as `dsd plan` and the bench show it (µs per MoE layer)."""

    policy: str
    """Candidate name (`PLACEMENT_POLICIES`), or ``chosen`` for the planned map."""
    step_us: float
    """Mean over layers of the slowest GPU's time."""
    compute_us: float
    """The slowest GPU's expert compute (mean over layers)."""
    nvlink_us: float
    """The slowest GPU's NVLink dispatch + combine."""
    rdma_us: float
    """The slowest GPU's RDMA dispatch + combine."""
    cross_node_mb_per_gpu: float
    """RDMA megabytes each GPU sends per layer step (mean)."""
    balancedness: float
    """vLLM's balancedness of the candidate on the planned load."""
    layers_chosen: int = 0
    """Layers on which this candidate was the fastest (and allowed)."""

    @classmethod
    def of(
        cls, policy: str, prediction: StepTimePrediction, balancedness: float, layers_chosen: int = 0
    ) -> PlacementScore:
        parts = prediction.breakdown()
        return cls(
            policy=policy,
            step_us=parts["step_us"],
            compute_us=parts["compute_us"],
            nvlink_us=parts["nvlink_us"],
            rdma_us=parts["rdma_us"],
            cross_node_mb_per_gpu=parts["cross_node_mb_per_gpu"],
            balancedness=balancedness,
            layers_chosen=layers_chosen,
        )

    def to_dict(self) -> dict[str, object]:
        return {
            "policy": self.policy,
            "stepUs": round(self.step_us, 3),
            "computeUs": round(self.compute_us, 3),
            "nvlinkUs": round(self.nvlink_us, 3),
            "rdmaUs": round(self.rdma_us, 3),
            "crossNodeMbPerGpu": round(self.cross_node_mb_per_gpu, 4),
            "balancedness": round(self.balancedness, 6),
            "layersChosen": self.layers_chosen,
        }


@dataclass(frozen=True, slots=True, eq=False)
class ExpertPlacement:
    """A placement of logical experts on physical slots, for every MoE layer, with its prediction.

    The arrays are read-only. Example for 2 layers, 4 logical experts, 6 slots on 3 GPUs
    (vLLM's docstring example): ``physical_to_logical = [[0, 1, 2, 3, 0, 1], [0, 2, 0, 1, 0,
    3]]``, ``logical_to_physical[1] = [[0, 2, 4], [3, -1, -1], [1, -1, -1], [5, -1, -1]]``,
    ``logical_replica_count[1] = [3, 1, 1, 1]``.
    """

    topology: EplbTopology
    """The group shape the placement was planned for."""
    policy: PlacementPolicyName
    """The candidate chosen on most layers (``layer_policies`` has every layer's)."""
    reason: str
    """One human sentence: why, with the predicted time against vLLM's default policy."""
    physical_to_logical: IntArray
    """``[layers, num_physical_experts]`` int64: the logical expert in each slot, -1 if empty."""
    logical_to_physical: IntArray
    """``[layers, num_logical_experts, max_replicas]`` int64: slots holding each logical
    expert in ascending order, padded with -1 (vLLM's ``compute_logical_maps``)."""
    logical_replica_count: IntArray
    """``[layers, num_logical_experts]`` int64: replicas per logical expert (>= 1)."""
    gpu_load: FloatArray
    """``[layers, num_gpus]`` float64: planned load per GPU, in the load's unit (tokens)."""
    balancedness: float
    """Balancedness of this placement on the load it was planned for (1.0 is perfect)."""
    balancedness_bound: float
    """Upper bound on any placement's balancedness for this load and slot count:
    per layer, max GPU load >= max(mean GPU load, heaviest replica under the replication that
    minimizes it)."""
    cost: StepCostModel
    """The model the placement was judged by (GPU figures, layer shape, regime)."""
    prediction: StepTimePrediction
    """Predicted step of this placement, per layer and GPU."""
    layer_policies: tuple[PlacementPolicyName, ...]
    """The candidate each layer's map came from."""
    candidates: tuple[PlacementScore, ...]
    """Every candidate planned fresh, in `PLACEMENT_POLICIES` order, with its prediction."""
    moved_replicas: int | None = field(default=None)
    """Expert-weight copies vLLM must transfer to go from ``previous`` to this placement (one
    per layer, GPU and expert the GPU gains); None when planned without ``previous``."""

    @property
    def num_layers(self) -> int:
        """MoE layers covered (DeepSeek-V3: 58)."""
        return int(self.physical_to_logical.shape[0])

    @property
    def score(self) -> PlacementScore:
        """The planned map's own predicted step (policy ``chosen``)."""
        return PlacementScore.of("chosen", self.prediction, self.balancedness, self.num_layers)

    @property
    def reference(self) -> PlacementScore:
        """vLLM's default policy on this group (`vllm_default_policy`), as a candidate."""
        name = vllm_default_policy(self.topology)
        return next(score for score in self.candidates if score.policy == name)

    def to_dict(self) -> dict[str, object]:
        """A JSON-ready view for display and for handing the map to the serving side."""
        return {
            "policy": self.policy,
            "reason": self.reason,
            "numLogicalExperts": self.topology.num_logical_experts,
            "numPhysicalExperts": self.topology.num_physical_experts,
            "numGpus": self.topology.num_gpus,
            "numNodes": self.topology.num_nodes,
            "regime": self.cost.regime.name,
            "tokensPerGpu": self.cost.regime.tokens_per_gpu,
            "gpuType": self.cost.gpu.name,
            "predicted": self.score.to_dict(),
            "candidates": [score.to_dict() for score in self.candidates],
            "balancedness": round(self.balancedness, 6),
            "balancednessBound": round(self.balancedness_bound, 6),
            "movedReplicas": self.moved_replicas,
            "physicalToLogical": self.physical_to_logical.tolist(),
        }


def vllm_default_policy(topology: EplbTopology) -> PlacementPolicyName:
    """The candidate vLLM's ``DefaultEplbPolicy`` computes: DeepSeek's hierarchical when groups
    divide over nodes, else its global policy."""
    return (
        "deepseek-hierarchical" if topology.num_expert_groups % topology.num_nodes == 0 else "deepseek-global"
    )


def plan_expert_placement(
    load: npt.ArrayLike,
    topology: EplbTopology,
    *,
    policy: EplbPolicyName = "auto",
    cost: StepCostModel | None = None,
    previous: npt.ArrayLike | None = None,
    migration_slack: float = DEFAULT_MIGRATION_SLACK,
) -> ExpertPlacement:
    """Plan the expert map for one EP group: per layer, the candidate with the least predicted time.

    Parameters:
        load: ``[layers, num_logical_experts]`` non-negative tokens per logical expert (any
            unit: only shares inside a layer matter; all ones = uniform). A layer with zero
            total is planned as uniform.
        topology: the group's shape.
        policy: ``auto`` (every candidate), or ``hierarchical`` / ``global`` (that family's
            candidates only: replicas on their group's node, or anywhere).
        cost: GPU figures, layer shape and regime (`StepCostModel`); default DeepSeek-V3 fp8 on
            H100 in decode (`StepCostModel.default`).
        previous: ``[layers, num_physical_experts]`` current physical-to-logical map (-1 for
            empty slots) to re-plan from with few weight moves, or None for a fresh plan.
        migration_slack: with ``previous``, a layer keeps the re-planned map (few moves) while
            its predicted time is within this fraction of the fresh plan's (0.01 = 1 %).

    Returns:
        An `ExpertPlacement` in vLLM's convention, with its prediction and every candidate's.

    Raises:
        ValueError: shapes, values or the requested policy do not fit the topology.
    """
    weight = np.array(load, dtype=np.float64, copy=True)
    if weight.ndim != 2 or weight.shape[1] != topology.num_logical_experts or weight.shape[0] < 1:
        raise ValueError(
            f"load: expected shape [layers >= 1, {topology.num_logical_experts}], got {list(weight.shape)}"
        )
    if not np.isfinite(weight).all() or (weight < 0).any():
        raise ValueError("load: expected finite non-negative numbers")
    if policy not in get_args(EplbPolicyName):
        raise ValueError(f"policy: expected one of {list(get_args(EplbPolicyName))}, got {policy!r}")
    if not 0.0 <= migration_slack < 1.0:
        raise ValueError(f"migration_slack: expected 0 <= slack < 1, got {migration_slack}")
    model = cost or StepCostModel.default()
    num_layers = weight.shape[0]
    prev = _check_previous(previous, num_layers, topology)
    idle = weight.sum(axis=1) <= 0.0
    weight[idle] = 1.0
    step = model.step_tokens(weight, topology.num_gpus)

    # Step 1: every feasible candidate, planned fresh and predicted.
    names, allowed = _candidates(policy, topology, model)
    maps = [PLACEMENT_POLICIES[name].place(step, topology, model) for name in names]
    predictions = [predict_step_time(phy, step, topology, model) for phy in maps]

    # Step 2: per layer, the fastest allowed candidate (the first in registry order on ties).
    layer_us = np.stack([p.layer_us for p in predictions])
    layer_us[~np.array([name in allowed for name in names])] = np.inf
    choice = np.argmin(layer_us, axis=0)
    rows = np.arange(num_layers)
    fresh = np.stack(maps)[choice, rows]
    fresh_prediction = StepTimePrediction.select(predictions, choice)

    # Step 3: re-plan near the previous map, layer by layer no slower than fresh + slack.
    moved: int | None = None
    final = fresh
    replan_note = ""
    if prev is not None:
        final = fresh.copy()
        kept = 0
        chosen_names = np.array([_REPLANNER.get(names[int(c)], names[int(c)]) for c in choice])
        for name in dict.fromkeys(chosen_names.tolist()):
            layers = np.nonzero(chosen_names == name)[0]
            fresh_rows = fresh_prediction.take_layers(layers)
            replanner = PLACEMENT_POLICIES[name]
            targets = placement_targets(
                fresh[layers],
                step[layers],
                topology,
                model,
                hierarchical=replanner.family == "hierarchical",
                slack=migration_slack,
            )
            sticky = replanner.place(step[layers], topology, model, previous=prev[layers], targets=targets)
            sticky_us = predict_step_time(sticky, step[layers], topology, model).layer_us
            keep = sticky_us <= fresh_rows.layer_us * (1 + migration_slack) * (1 + _REL_EPS)
            final[layers[keep]] = sticky[keep]
            kept += int(keep.sum())
        moved = count_expert_moves(prev, final, topology.slots_per_gpu)
        fresh_moves = count_expert_moves(prev, fresh, topology.slots_per_gpu)
        replan_note = (
            f"; re-planned from the previous map: {moved} expert copies move (a fresh plan: "
            f"{fresh_moves}), {num_layers - kept}/{num_layers} layers fell back to the fresh plan"
        )

    # Step 4: vLLM's derived maps, the prediction and the scores.
    prediction = predict_step_time(final, step, topology, model) if prev is not None else fresh_prediction
    gpu_load = compute_gpu_load(final, weight, topology.num_gpus)
    gpu_load[idle] = 0.0
    log2phy, counts = compute_logical_maps(final, topology.num_logical_experts)
    planned = np.where(idle[:, None], 0.0, weight)
    chosen_count = Counter(names[int(c)] for c in choice)
    candidates = tuple(
        PlacementScore.of(
            name,
            predictions[index],
            compute_balancedness(compute_gpu_load(maps[index], step, topology.num_gpus)),
            chosen_count.get(name, 0),
        )
        for index, name in enumerate(names)
    )
    layer_policies = tuple(names[int(c)] for c in choice)
    majority = chosen_count.most_common(1)[0][0]
    balancedness = compute_balancedness(gpu_load)
    placement = ExpertPlacement(
        topology=topology,
        policy=majority,
        reason="",
        physical_to_logical=_frozen(final),
        logical_to_physical=_frozen(log2phy),
        logical_replica_count=_frozen(counts),
        gpu_load=_frozen(gpu_load),
        balancedness=balancedness,
        balancedness_bound=_balancedness_bound(planned, topology),
        cost=model,
        prediction=prediction,
        layer_policies=layer_policies,
        candidates=candidates,
        moved_replicas=moved,
    )
    return replace(placement, reason=_reason(policy, placement, chosen_count) + replan_note)


def _candidates(
    policy: EplbPolicyName, topology: EplbTopology, model: StepCostModel
) -> tuple[list[PlacementPolicyName], set[PlacementPolicyName]]:
    """(candidates to plan, those that may be chosen); DeepSeek's are always planned, to compare.

    Skipped because they cannot win: trimmed variants where replicas are compute-bound on
    average (`StepCostModel.replicas_memory_bound`: prefill), the hierarchical family on one
    node (it equals the global one), and ``global-trimmed`` beside ``hierarchical-trimmed`` (the
    same reads with more RDMA; it is the trimmed option where groups do not divide over nodes).
    """
    hier_ok, hier_why = topology.is_hierarchical_feasible()
    if policy == "hierarchical" and not hier_ok:
        raise ValueError(f"policy: hierarchical placement is infeasible: {hier_why}")
    trim = model.replicas_memory_bound(topology)
    names: list[PlacementPolicyName] = []
    for name, candidate in PLACEMENT_POLICIES.items():
        if not candidate.feasible(topology)[0] or (name.endswith("-trimmed") and not trim):
            continue
        single_node = candidate.family == "hierarchical" and topology.num_nodes == 1
        if single_node and policy != "hierarchical" and name != vllm_default_policy(topology):
            continue
        if name == "global-trimmed" and "hierarchical-trimmed" in names and policy != "global":
            continue
        names.append(name)
    allowed = {name for name in names if policy == "auto" or PLACEMENT_POLICIES[name].family == policy}
    return names, allowed


def _reason(policy: EplbPolicyName, placement: ExpertPlacement, chosen: Counter[PlacementPolicyName]) -> str:
    """One sentence: what was chosen, its predicted step and vLLM's default's."""
    score, reference = placement.score, placement.reference
    layers = ", ".join(f"{name} on {count}" for name, count in chosen.most_common())
    scope = (
        "fastest candidate per layer"
        if policy == "auto"
        else f"{policy} policy requested, fastest of its family"
    )
    gain = (reference.step_us - score.step_us) / reference.step_us if reference.step_us > 0 else 0.0
    return (
        f"{scope} ({placement.cost.describe()}): {layers} of {placement.num_layers} layers; predicted "
        f"{score.step_us:.0f} µs per MoE layer (compute {score.compute_us:.0f}, NVLink "
        f"{score.nvlink_us:.0f}, RDMA {score.rdma_us:.0f}) vs {reference.step_us:.0f} µs for vLLM's "
        f"default ({reference.policy}), {gain:+.1%}"
    )


def _check_previous(
    previous: npt.ArrayLike | None, num_layers: int, topology: EplbTopology
) -> IntArray | None:
    if previous is None:
        return None
    prev = np.asarray(previous)
    expected = (num_layers, topology.num_physical_experts)
    if prev.shape != expected:
        raise ValueError(f"previous: expected shape {list(expected)}, got {list(prev.shape)}")
    if not np.issubdtype(prev.dtype, np.integer):
        raise ValueError(f"previous: expected integer expert ids, got dtype {prev.dtype}")
    if ((prev < -1) | (prev >= topology.num_logical_experts)).any():
        raise ValueError(f"previous: expert ids must be in [-1, {topology.num_logical_experts})")
    checked: IntArray = prev.astype(np.int64)
    return checked


def _balancedness_bound(weight: FloatArray, topology: EplbTopology) -> float:
    """Σ mean / Σ max(mean, min over replications of the heaviest replica) (see `ExpertPlacement`)."""
    counts = _replicate(weight, topology.num_physical_experts)
    mean = weight.sum(axis=1) / topology.num_gpus
    heaviest = (weight / counts).max(axis=1)
    peak = float(np.maximum(mean, heaviest).sum())
    return 1.0 if peak <= 0.0 else float(mean.sum()) / peak


def _frozen(array: npt.NDArray[_Scalar]) -> npt.NDArray[_Scalar]:
    frozen = np.ascontiguousarray(array)
    frozen.setflags(write=False)
    return frozen
