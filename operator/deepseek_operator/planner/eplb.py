"""EPLB expert placement: which logical expert every GPU slot holds, per MoE layer.

Glossary
--------
logical expert
    A routed expert as the model's router sees it: DeepSeek-V3 has 256 per MoE layer, ids
    ``0..255``. Load statistics are kept per logical expert.
physical expert, slot
    One resident copy of an expert's weights on a GPU. An EP group holds
    ``num_physical_experts`` slots per MoE layer, ``slots_per_gpu`` of them on each GPU; slot
    ``s`` lives on EP rank ``s // slots_per_gpu`` (vLLM's layout).
redundant expert
    A slot beyond each logical expert's first replica: ``num_physical_experts -
    num_logical_experts`` of them, given to hot experts. vLLM's router spreads an expert's
    tokens evenly over its replicas, so a replica carries ``load / replica count``.
EP rank, GPU
    One engine process on one GPU of the expert-parallel (data-parallel) group. Rank ``g``
    owns slots ``[g * slots_per_gpu, (g + 1) * slots_per_gpu)``.
node
    A host of ``gpus_per_node`` consecutive EP ranks joined by the fast intra-node network
    (NVLink); nodes talk over the slower scale-out network.
expert group
    DeepSeek-V3's routing groups: 8 groups of 32 consecutive logical experts; the router sends
    each token to at most 4 groups. Keeping a group and all replicas of its experts on one
    node bounds the nodes a token's dispatch reaches.
load
    Tokens routed to each logical expert over a statistics window, ``[layers, logical
    experts]`` (see `deepseek_operator.planner.eplb_load` for the file format).
GPU load
    Sum over a GPU's slots of ``load[expert] / replica_count[expert]``.
balancedness
    vLLM's definition: ``sum over layers of mean GPU load / sum over layers of max GPU load``;
    1.0 is perfect.

Output contract (what vLLM's EPLB consumes)
-------------------------------------------
vLLM 0.32's policy interface (`AbstractEplbPolicy.rebalance_experts`) returns one int64
``physical_to_logical [layers, num_physical_experts]``; `eplb_state.compute_logical_maps`
derives ``logical_to_physical [layers, num_logical_experts, max_replicas]`` (physical slot ids in
ascending order, padded with -1, ``max_replicas`` = the largest replica count in any layer) and
``logical_replica_count [layers, num_logical_experts]``. The router reads
``logical_to_physical[e, hash(token) % logical_replica_count[e]]``, so every expert needs at
least one replica and the first ``count`` entries of its row must be valid. `ExpertPlacement`
carries all three arrays in exactly that convention (DeepSeek's reference orders replicas by
creation instead; vLLM's order is the one the engine uses). vLLM installs a ready-made map with
`EplbState.update_mapping` (its elastic-EP path, ``setup_eplb_from_mapping``), which takes
exactly ``physical_to_logical``; a policy registered in ``EPLB_POLICIES`` returns it too.

Policies (`PLACEMENT_POLICIES`)
-------------------------------
``hierarchical``
    DeepSeek's three steps: pack expert groups onto nodes (equal group count per node), then
    replicate experts inside each node, then pack the node's replicas onto its GPUs. Every
    replica stays on its group's node. Needs ``num_expert_groups % num_nodes == 0``.
``global``
    Replicate over the whole EP group and pack replicas onto all GPUs, ignoring nodes.

Both replicate greedily (each redundant slot goes to the expert with the largest load per
replica, which minimizes the largest replica load), pack with a round-based greedy (each round
gives the next ``num_packs`` heaviest items to the packs from lightest to heaviest), then
refine by load-reducing swaps between the heaviest and light packs. All steps are vectorized
over layers (and nodes) with numpy.

``auto`` (the default) chooses by the shape of the group: ``global`` when hierarchical is
infeasible or pointless (``num_expert_groups % num_nodes != 0``, or one node), else it plans
both and keeps ``hierarchical`` unless it is more than ``HIERARCHICAL_TOLERANCE`` (0.01; the
``hierarchical_tolerance=`` argument) worse in balancedness. Node locality is worth a little
balance, not a collapse: with one group per node a hot group cannot borrow another node's slots
(DeepSeek's hierarchical policy reaches 0.39 on 64 GPUs / 8 nodes under Zipf(1.0) load, its
global policy 0.98). Under realistic skew (log-normal sigma >= 0.3) global usually wins by more
than the tolerance even at 2 groups per node.

Re-planning from a previous placement (``previous=``) keeps every replica that still fits:
replicas stay on their GPU while the expert keeps at least that many replicas, missing ones
fill the freed slots (heaviest first, least-loaded GPU first), and swaps run only until each
layer's busiest GPU is within ``migration_slack`` of a fresh plan's; layers that cannot get
there take the fresh plan. vLLM moves a weight copy only when a GPU gains an expert it did
not hold (`count_expert_moves`).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import ClassVar, Literal, Protocol, TypeVar, get_args

import numpy as np
import numpy.typing as npt

__all__ = [
    "HIERARCHICAL_TOLERANCE",
    "PLACEMENT_POLICIES",
    "EplbPolicyName",
    "EplbTopology",
    "ExpertPlacement",
    "PlacementPolicyName",
    "compute_balancedness",
    "compute_gpu_load",
    "count_expert_moves",
    "plan_expert_placement",
]

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]
_Scalar = TypeVar("_Scalar", bound=np.generic)

PlacementPolicyName = Literal["hierarchical", "global"]
"""A concrete placement policy (the keys of `PLACEMENT_POLICIES`)."""

EplbPolicyName = Literal["auto", "hierarchical", "global"]
"""What a user may ask for: a concrete policy, or ``auto`` (chosen by the group's shape)."""

HIERARCHICAL_TOLERANCE = 0.01
"""``auto`` keeps ``hierarchical`` while its balancedness >= global's minus this."""

DEFAULT_MIGRATION_SLACK = 0.005
"""Default relative slack on each layer's max GPU load when re-planning from a placement."""

_PAIR_ROUNDS = 8
"""Refinement rounds that pair the i-th heaviest pack with the i-th lightest (all at once)."""
_SINGLE_ROUNDS = 24
"""Refinement rounds that swap between the heaviest pack and any other pack."""
_PARTNER_BUDGET = 4096
"""Phase-2 swaps try the heaviest pack against the lightest ``max(16, budget // per_pack²)``
packs (all packs for DeepSeek-V3 shapes): bounds the work per round for huge groups."""
_FRESH_TOLERANCE = 5e-4
"""A fresh plan stops refining a row once its max GPU load is within this fraction of the mean."""
_REL_EPS = 1e-9
"""A swap must lower the local maximum by this relative amount to count as progress."""


@dataclass(frozen=True, slots=True)
class EplbTopology:
    """The shape of one expert-parallel group, as EPLB sees it.

    Example (DeepSeek-V3 on 4 nodes of 8 GPUs with 32 redundant experts):
    ``EplbTopology(num_logical_experts=256, num_expert_groups=8, num_nodes=4, num_gpus=32,
    num_physical_experts=288)``.
    """

    num_logical_experts: int
    """Routed experts per MoE layer (DeepSeek-V3: 256)."""
    num_expert_groups: int
    """Router expert groups (DeepSeek-V3: 8, ``n_group``); 1 when the model has none."""
    num_nodes: int
    """Nodes the group spans; EP ranks are numbered node by node."""
    num_gpus: int
    """EP ranks (one GPU each) in the group; a multiple of ``num_nodes``."""
    num_physical_experts: int
    """Expert slots per MoE layer over the whole group (logical + redundant), a multiple of
    ``num_gpus`` (e.g. 288 = 256 + 32 redundant)."""

    def __post_init__(self) -> None:
        for name in ("num_logical_experts", "num_expert_groups", "num_nodes", "num_gpus"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name}: expected >= 1, got {getattr(self, name)}")
        if self.num_logical_experts % self.num_expert_groups:
            raise ValueError(
                f"num_expert_groups: {self.num_expert_groups} groups do not divide "
                f"{self.num_logical_experts} logical experts"
            )
        if self.num_gpus % self.num_nodes:
            raise ValueError(f"num_gpus: {self.num_gpus} GPUs do not fill {self.num_nodes} nodes evenly")
        if self.num_physical_experts < self.num_logical_experts:
            raise ValueError(
                f"num_physical_experts: {self.num_physical_experts} slots cannot hold "
                f"{self.num_logical_experts} logical experts"
            )
        if self.num_physical_experts % self.num_gpus:
            raise ValueError(
                f"num_physical_experts: {self.num_physical_experts} slots do not split evenly over "
                f"{self.num_gpus} GPUs"
            )

    @property
    def gpus_per_node(self) -> int:
        """EP ranks per node (e.g. 8)."""
        return self.num_gpus // self.num_nodes

    @property
    def slots_per_gpu(self) -> int:
        """Expert slots on each GPU per MoE layer (e.g. 288 / 32 = 9)."""
        return self.num_physical_experts // self.num_gpus

    @property
    def num_redundant_experts(self) -> int:
        """Slots beyond one per logical expert (e.g. 32)."""
        return self.num_physical_experts - self.num_logical_experts

    def is_hierarchical_feasible(self) -> tuple[bool, str]:
        """Whether groups can be packed onto nodes evenly, with the reason when not."""
        if self.num_expert_groups % self.num_nodes:
            return False, (
                f"{self.num_expert_groups} expert groups do not divide over {self.num_nodes} nodes"
            )
        if self.num_physical_experts % self.num_nodes:
            return False, f"{self.num_physical_experts} slots do not divide over {self.num_nodes} nodes"
        return True, f"{self.num_expert_groups // self.num_nodes} expert group(s) per node"


@dataclass(frozen=True, slots=True, eq=False)
class ExpertPlacement:
    """A placement of logical experts on physical slots, for every MoE layer.

    The arrays are read-only. Example for 2 layers, 4 logical experts, 6 slots on 3 GPUs
    (vLLM's docstring example): ``physical_to_logical = [[0, 1, 2, 3, 0, 1], [0, 2, 0, 1, 0,
    3]]``, ``logical_to_physical[1] = [[0, 2, 4], [3, -1, -1], [1, -1, -1], [5, -1, -1]]``,
    ``logical_replica_count[1] = [3, 1, 1, 1]``.
    """

    topology: EplbTopology
    """The group shape the placement was planned for."""
    policy: PlacementPolicyName
    """The policy that produced it (``auto`` resolves to one of these)."""
    reason: str
    """One human sentence: why this policy, and what re-planning kept (for logs and events)."""
    physical_to_logical: IntArray
    """``[layers, num_physical_experts]`` int64: the logical expert in each slot."""
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
    moved_replicas: int | None = field(default=None)
    """Expert-weight copies vLLM must transfer to go from ``previous`` to this placement (one
    per layer, GPU and expert the GPU gains); None when planned without ``previous``."""

    @property
    def num_layers(self) -> int:
        """MoE layers covered (DeepSeek-V3: 58)."""
        return int(self.physical_to_logical.shape[0])

    def to_dict(self) -> dict[str, object]:
        """A JSON-ready view for display and for handing the map to the serving side."""
        return {
            "policy": self.policy,
            "reason": self.reason,
            "numLogicalExperts": self.topology.num_logical_experts,
            "numPhysicalExperts": self.topology.num_physical_experts,
            "numGpus": self.topology.num_gpus,
            "numNodes": self.topology.num_nodes,
            "balancedness": round(self.balancedness, 6),
            "balancednessBound": round(self.balancedness_bound, 6),
            "movedReplicas": self.moved_replicas,
            "physicalToLogical": self.physical_to_logical.tolist(),
        }


# --------------------------------------------------------------------------------------------
# Metrics shared by the planner, the view and the benchmark.
# --------------------------------------------------------------------------------------------


def compute_gpu_load(physical_to_logical: IntArray, load: FloatArray, num_gpus: int) -> FloatArray:
    """Per-GPU load of a placement under a load matrix.

    Parameters:
        physical_to_logical: ``[layers, slots]`` logical expert per slot (-1 for an empty slot).
        load: ``[layers, logical experts]`` tokens per logical expert.
        num_gpus: EP ranks; ``slots`` must be a multiple of it.

    Returns:
        ``[layers, num_gpus]`` float64; each expert's load is split evenly over its replicas,
        so a layer's GPU loads sum to the load of its placed experts.
    """
    phy = np.asarray(physical_to_logical, dtype=np.int64)
    weight = np.asarray(load, dtype=np.float64)
    num_layers, num_slots = phy.shape
    assert num_slots % num_gpus == 0, f"{num_slots} slots do not split over {num_gpus} GPUs"
    counts = _replica_counts(phy, weight.shape[1])
    per_replica = weight / np.maximum(counts, 1)
    valid = phy >= 0
    slot_load = np.where(valid, np.take_along_axis(per_replica, np.where(valid, phy, 0), axis=1), 0.0)
    gpu_load: FloatArray = slot_load.reshape(num_layers, num_gpus, -1).sum(axis=2)
    return gpu_load


def compute_balancedness(gpu_load: FloatArray) -> float:
    """vLLM's balancedness of ``[layers, gpus]`` loads: sum of means / sum of maxima (1.0 if idle)."""
    loads = np.asarray(gpu_load, dtype=np.float64)
    peak = float(loads.max(axis=1).sum())
    return 1.0 if peak <= 0.0 else float(loads.mean(axis=1).sum()) / peak


def count_expert_moves(previous: IntArray, current: IntArray, slots_per_gpu: int) -> int:
    """Expert-weight copies needed to turn ``previous`` into ``current`` (vLLM's accounting).

    A GPU receives one copy per (layer, logical expert) it holds in ``current`` but held in no
    slot in ``previous``; reordering slots within a GPU is free (vLLM's
    `schedule_migration_batches`: "existing local copies need no transfer").

    Parameters:
        previous, current: ``[layers, slots]`` logical expert per slot (-1 empty), same shape.
        slots_per_gpu: slots per EP rank.
    """
    old = np.asarray(previous, dtype=np.int64)
    new = np.asarray(current, dtype=np.int64)
    if old.shape != new.shape:
        raise ValueError(f"previous: expected shape {new.shape}, got {old.shape}")
    num_layers, num_slots = new.shape
    old_gpu = old.reshape(num_layers, num_slots // slots_per_gpu, 1, slots_per_gpu)
    new_gpu = new.reshape(num_layers, num_slots // slots_per_gpu, slots_per_gpu, 1)
    held_before = (new_gpu == old_gpu).any(axis=3)
    new_rows = new_gpu[..., 0]
    # Count each gained expert once per GPU: only its first slot on that GPU counts.
    earlier = np.tril(np.ones((slots_per_gpu, slots_per_gpu), dtype=bool), k=-1)
    duplicate = ((new_rows[..., :, None] == new_rows[..., None, :]) & earlier).any(axis=3)
    gained = ~held_before & ~duplicate & (new_rows >= 0)
    return int(gained.sum())


# --------------------------------------------------------------------------------------------
# Vectorized building blocks. "Rows" are independent problems: layers, or (layer, node) pairs.
# --------------------------------------------------------------------------------------------


def _replica_counts(physical_to_logical: IntArray, num_logical: int) -> IntArray:
    """``[rows, num_logical]`` replicas per logical expert (-1 slots ignored)."""
    rows = physical_to_logical.shape[0]
    valid = physical_to_logical >= 0
    flat = (np.arange(rows)[:, None] * num_logical + np.where(valid, physical_to_logical, 0))[valid]
    counts: IntArray = np.bincount(flat, minlength=rows * num_logical).reshape(rows, num_logical)
    return counts


def _replicate(weight: FloatArray, num_slots: int) -> IntArray:
    """Replica counts minimizing the largest ``weight / count`` per row.

    Parameters:
        weight: ``[rows, experts]`` non-negative load.
        num_slots: slots per row, >= experts.

    Returns:
        ``[rows, experts]`` int64 counts >= 1 summing to ``num_slots``. Greedy: every extra slot
        goes to the expert with the largest current load per replica (lowest id on ties), which
        is optimal for the min-max objective.
    """
    rows, num_experts = weight.shape
    counts = np.ones((rows, num_experts), dtype=np.int64)
    per_replica = weight.copy()
    row_ids = np.arange(rows)
    for _ in range(num_slots - num_experts):
        hottest = np.argmax(per_replica, axis=1)
        counts[row_ids, hottest] += 1
        per_replica[row_ids, hottest] = weight[row_ids, hottest] / counts[row_ids, hottest]
    return counts


def _items(weight: FloatArray, counts: IntArray) -> tuple[IntArray, FloatArray]:
    """Expand counts into replicas: ``(item_expert, item_load)``, each ``[rows, slots]``.

    Items are sorted by expert id; every row has the same number of items (its slot count).
    """
    rows, num_experts = counts.shape
    num_items = int(counts[0].sum())
    item_expert = np.repeat(np.tile(np.arange(num_experts), rows), counts.ravel()).reshape(rows, num_items)
    item_load = np.take_along_axis(weight / counts, item_expert, axis=1)
    return item_expert, item_load


def _pack_rounds(item_load: FloatArray, num_packs: int) -> IntArray:
    """Fresh cardinality-constrained packing: ``[rows, packs, items_per_pack]`` item indices.

    Round ``j`` hands the next ``num_packs`` heaviest items to the packs, heaviest item to the
    currently lightest pack (ties by pack index).
    """
    rows, num_items = item_load.shape
    per_pack = num_items // num_packs
    order = np.argsort(-item_load, axis=1, kind="stable")
    members = np.empty((rows, num_packs, per_pack), dtype=np.int64)
    pack_load = np.zeros((rows, num_packs))
    row_ids = np.arange(rows)[:, None]
    for j in range(per_pack):
        items = order[:, j * num_packs : (j + 1) * num_packs]
        lightest_first = np.argsort(pack_load, axis=1, kind="stable")
        members[row_ids, lightest_first, j] = items
        pack_load[row_ids, lightest_first] += item_load[row_ids, items]
    return members


def _occurrence_rank(values: IntArray, sentinel: int) -> IntArray:
    """For each entry, how many earlier entries in its row hold the same value."""
    num_cols = values.shape[1]
    order = np.argsort(values, axis=1, kind="stable")
    ordered = np.take_along_axis(values, order, axis=1)
    position = np.broadcast_to(np.arange(num_cols), values.shape)
    starts = np.ones(values.shape, dtype=bool)
    starts[:, 1:] = ordered[:, 1:] != ordered[:, :-1]
    run_start = np.maximum.accumulate(np.where(starts, position, 0), axis=1)
    rank = np.empty_like(values)
    np.put_along_axis(rank, order, position - run_start, axis=1)
    return np.where(values == sentinel, 0, rank)


def _pack_sticky(item_load: FloatArray, counts: IntArray, previous: IntArray) -> IntArray:
    """Packing that keeps previous slots: ``[rows, packs, items_per_pack]`` item indices.

    Parameters:
        item_load: ``[rows, items]`` replica loads, items sorted by expert (see `_items`).
        counts: ``[rows, experts]`` replicas per expert.
        previous: ``[rows, packs, items_per_pack]`` expert previously in each slot, -1 if none.

    Returns:
        Item indices per slot. A previous slot keeps its expert while the expert has replicas
        left to place (earlier slots first); the remaining replicas go heaviest first to the
        least-loaded pack with a free slot (LPT), into its free slots in slot order.
    """
    rows, num_packs, per_pack = previous.shape
    num_experts = counts.shape[1]
    num_items = item_load.shape[1]
    row_ids = np.arange(rows)[:, None]
    first_item = np.cumsum(counts, axis=1) - counts
    # Step 1: keep previous slots whose expert still has an unplaced replica.
    prev_flat = np.where(previous.reshape(rows, -1) >= 0, previous.reshape(rows, -1), num_experts)
    occurrence = _occurrence_rank(prev_flat, num_experts)
    known = prev_flat < num_experts
    safe_expert = np.where(known, prev_flat, 0)
    keep = known & (occurrence < np.take_along_axis(counts, safe_expert, axis=1))
    members = np.where(keep, np.take_along_axis(first_item, safe_expert, axis=1) + occurrence, -1)
    placed = np.zeros((rows, num_items), dtype=bool)
    placed[np.broadcast_to(row_ids, members.shape)[keep], members[keep]] = True
    slot_load = np.where(keep, np.take_along_axis(item_load, np.maximum(members, 0), axis=1), 0.0)
    pack_load = slot_load.reshape(rows, num_packs, per_pack).sum(axis=2)
    free = (~keep).reshape(rows, num_packs, per_pack).sum(axis=2)
    # Step 2: LPT for the replicas that lost (or never had) a slot.
    num_unplaced = num_items - placed.sum(axis=1)
    order = np.argsort(np.where(placed, np.inf, -item_load), axis=1, kind="stable")
    item_pack = np.full((rows, num_items), num_packs, dtype=np.int64)
    flat_rows = np.arange(rows)
    for t in range(int(num_unplaced.max(initial=0))):
        active = t < num_unplaced
        item = order[:, t]
        pack = np.argmin(np.where(free > 0, pack_load, np.inf), axis=1)
        act_rows, act_item, act_pack = flat_rows[active], item[active], pack[active]
        item_pack[act_rows, act_item] = act_pack
        pack_load[act_rows, act_pack] += item_load[act_rows, act_item]
        free[act_rows, act_pack] -= 1
    # Step 3: drop the assigned items into their packs' free slots (both sides in pack order).
    items_by_pack = np.argsort(np.where(placed, num_packs + 1, item_pack), axis=1, kind="stable")
    free_slots = np.argsort(keep, axis=1, kind="stable")
    fill = np.arange(num_items)[None, :] < num_unplaced[:, None]
    fill_rows = np.broadcast_to(row_ids, fill.shape)[fill]
    members[fill_rows, free_slots[fill]] = items_by_pack[fill]
    packed: IntArray = members.reshape(rows, num_packs, per_pack)
    return packed


def _swap(
    values: npt.NDArray[np.generic],
    rows: IntArray,
    pack_a: IntArray,
    slot_a: IntArray,
    pack_b: IntArray,
    slot_b: IntArray,
) -> None:
    held = values[rows, pack_a, slot_a].copy()
    values[rows, pack_a, slot_a] = values[rows, pack_b, slot_b]
    values[rows, pack_b, slot_b] = held


def _refine(item_load: FloatArray, members: IntArray, target: FloatArray) -> IntArray:
    """Lower each row's heaviest pack by one-for-one swaps until it is <= ``target``.

    Parameters:
        item_load: ``[rows, items]`` replica loads.
        members: ``[rows, packs, per_pack]`` item indices (modified in place and returned).
        target: ``[rows]`` stop once a row's max pack load is at or below this.

    Two phases of vectorized rounds over the rows still above target: (1) pair the i-th
    heaviest pack with the i-th lightest and apply each pair's best swap; (2) swap between the
    heaviest pack and whichever of the lightest packs (see ``_PARTNER_BUDGET``) gives the lowest pair
    maximum. A swap is applied only if it lowers the pair's maximum, so a row's max never rises;
    a row leaves a phase when no swap helps it.
    """
    rows, num_packs, per_pack = members.shape
    if num_packs < 2 or per_pack < 1:
        return members
    values = np.take_along_axis(item_load, members.reshape(rows, -1), axis=1).reshape(members.shape)
    loads = values.sum(axis=2)
    half = num_packs // 2
    partners = min(num_packs, max(16, _PARTNER_BUDGET // (per_pack * per_pack)))
    everyone = np.arange(num_packs)
    for phase_rounds, paired in ((_PAIR_ROUNDS, True), (_SINGLE_ROUNDS, False)):
        open_rows = loads.max(axis=1) > target * (1 + _REL_EPS)
        for round_index in range(phase_rounds):
            active = np.nonzero(open_rows)[0]
            if active.size == 0:
                break
            vals, lds = values[active], loads[active]
            sub = np.arange(active.size)[:, None]
            # delta[.., a, .., b]: item a of the heavy pack traded for item b of the light pack.
            if paired:
                by_load = np.argsort(lds, axis=1, kind="stable")
                heavy = by_load[:, ::-1][:, :half]
                light = np.roll(by_load[:, :half], -(round_index % half), axis=1)
                heavy_load, light_load = lds[sub, heavy], lds[sub, light]
                delta = vals[sub, heavy][:, :, :, None] - vals[sub, light][:, :, None, :]
                new_max = np.maximum(
                    heavy_load[:, :, None, None] - delta, light_load[:, :, None, None] + delta
                ).reshape(active.size, half, -1)
                best = np.argmin(new_max, axis=2)
                best_max = np.take_along_axis(new_max, best[..., None], axis=2)[..., 0]
                slot_h, slot_l = np.divmod(best, per_pack)
                pack_l = light
            else:
                heavy = np.argmax(lds, axis=1)[:, None]
                if partners == num_packs:
                    light, light_vals, light_load = np.broadcast_to(everyone, lds.shape), vals, lds
                else:
                    light = np.argsort(lds, axis=1, kind="stable")[:, :partners]
                    light_vals, light_load = vals[sub, light], lds[sub, light]
                heavy_load = lds[sub, heavy]
                delta = vals[sub, heavy][:, 0, :, None, None] - light_vals[:, None, :, :]
                new_max = np.maximum(
                    heavy_load[:, :, None, None] - delta, light_load[:, None, :, None] + delta
                ).reshape(active.size, -1)
                flat_best = np.argmin(new_max, axis=1)
                best_max = new_max[sub[:, 0], flat_best][:, None]
                slot_a, partner, slot_b = np.unravel_index(flat_best, (per_pack, partners, per_pack))
                slot_h, slot_l = slot_a[:, None], slot_b[:, None]
                pack_l = light[sub, partner[:, None]]
            improves = (best_max < heavy_load * (1 - _REL_EPS)) & (
                heavy_load > target[active][:, None] * (1 + _REL_EPS)
            )
            hit_row, hit_pair = np.nonzero(improves)
            at = active[hit_row]
            pack_h = heavy[hit_row, hit_pair]
            pack_b = pack_l[hit_row, hit_pair]
            sa, sb = slot_h[hit_row, hit_pair], slot_l[hit_row, hit_pair]
            moved = values[at, pack_h, sa] - values[at, pack_b, sb]
            np.subtract.at(loads, (at, pack_h), moved)
            np.add.at(loads, (at, pack_b), moved)
            _swap(values, at, pack_h, sa, pack_b, sb)
            _swap(members, at, pack_h, sa, pack_b, sb)
            open_rows[active[~improves.any(axis=1)]] = False
            open_rows[at] &= loads[at].max(axis=1) > target[at] * (1 + _REL_EPS)
    return members


@dataclass(frozen=True, slots=True)
class _Targets:
    """Per-layer ceilings a re-plan must meet (from a fresh plan, times the slack)."""

    gpu: FloatArray
    """``[layers]`` max GPU load allowed."""
    node: FloatArray
    """``[layers]`` max node load allowed (hierarchical step 1)."""


def _place(
    weight: FloatArray,
    topology: EplbTopology,
    num_groups: int,
    num_nodes: int,
    previous: IntArray | None,
    targets: _Targets | None,
) -> IntArray:
    """DeepSeek's hierarchical decomposition; ``num_groups = num_nodes = 1`` is the global policy.

    Parameters:
        weight: ``[layers, logical experts]`` load (rows with zero total already made uniform).
        topology: the group; ``num_groups`` / ``num_nodes`` override its grouping.
        previous: ``[layers, slots]`` placement to stay close to, or None for a fresh plan.
        targets: ceilings for the re-plan's refinement (None: refine towards perfect balance).

    Returns:
        ``[layers, slots]`` int64 physical-to-logical map.
    """
    num_layers, num_logical = weight.shape
    group_size = num_logical // num_groups
    groups_per_node = num_groups // num_nodes
    experts_per_node = num_logical // num_nodes
    slots_per_node = topology.num_physical_experts // num_nodes
    gpus_per_node = topology.num_gpus // num_nodes
    slots_per_gpu = topology.slots_per_gpu

    # Step 1: pack expert groups onto nodes, groups_per_node each.
    group_load = weight.reshape(num_layers, num_groups, group_size).sum(axis=2)
    ones = np.ones((num_layers, num_groups), dtype=np.int64)
    if previous is None:
        node_members = _pack_rounds(group_load, num_nodes)
    else:
        node_members = _pack_sticky(
            group_load,
            ones,
            _previous_node_groups(previous, group_size, num_nodes, num_groups, groups_per_node),
        )
    node_target = (
        group_load.sum(axis=1) / num_nodes * (1 + _FRESH_TOLERANCE) if targets is None else targets.node
    )
    node_members = _refine(group_load, node_members, node_target)
    node_groups = np.sort(node_members, axis=2)  # [layers, nodes, groups_per_node], ascending ids
    node_experts = (node_groups[..., None] * group_size + np.arange(group_size)).reshape(
        num_layers * num_nodes, experts_per_node
    )

    # Step 2: replicate experts inside each node.
    node_weight = np.take_along_axis(np.repeat(weight, num_nodes, axis=0), node_experts, axis=1)
    counts = _replicate(node_weight, slots_per_node)
    item_expert, item_load = _items(node_weight, counts)

    # Step 3: pack each node's replicas onto its GPUs.
    if previous is None:
        members = _pack_rounds(item_load, gpus_per_node)
    else:
        members = _pack_sticky(
            item_load,
            counts,
            _previous_local(previous, node_experts, num_nodes, gpus_per_node, slots_per_gpu, num_logical),
        )
    gpu_target = (
        np.repeat(weight.sum(axis=1) / topology.num_gpus * (1 + _FRESH_TOLERANCE), num_nodes)
        if targets is None
        else np.repeat(targets.gpu, num_nodes)
    )
    members = _refine(item_load, members, gpu_target)
    local = np.take_along_axis(item_expert, members.reshape(num_layers * num_nodes, -1), axis=1)
    if previous is None:  # canonical slot order inside a GPU; re-plans keep slots in place
        local = np.sort(local.reshape(-1, gpus_per_node, slots_per_gpu), axis=2).reshape(local.shape)
    placement: IntArray = np.take_along_axis(node_experts, local, axis=1).reshape(num_layers, -1)
    return placement


def _previous_node_groups(
    previous: IntArray, group_size: int, num_nodes: int, num_groups: int, groups_per_node: int
) -> IntArray:
    """``[layers, nodes, groups_per_node]``: the groups each node held most replicas of (-1: none)."""
    num_layers, num_slots = previous.shape
    node_of_slot = np.arange(num_slots) // (num_slots // num_nodes)
    valid = previous >= 0
    key = (np.arange(num_layers)[:, None] * num_nodes + node_of_slot) * num_groups + previous // group_size
    held = np.bincount(key[valid], minlength=num_layers * num_nodes * num_groups).reshape(
        num_layers, num_nodes, num_groups
    )
    top = np.argsort(-held, axis=2, kind="stable")[..., :groups_per_node]
    top_held = np.take_along_axis(held, top, axis=2)
    claimed: IntArray = np.where(top_held > 0, top, -1)
    return claimed


def _previous_local(
    previous: IntArray,
    node_experts: IntArray,
    num_nodes: int,
    gpus_per_node: int,
    slots_per_gpu: int,
    num_logical: int,
) -> IntArray:
    """Previous slots as node-local expert ids ``[layers*nodes, gpus_per_node, slots_per_gpu]``.

    Slots whose expert now belongs to another node (or that were empty) become -1.
    """
    rows = node_experts.shape[0]
    local_of = np.full((rows, num_logical + 1), -1, dtype=np.int64)  # column num_logical: "empty"
    np.put_along_axis(local_of, node_experts, np.arange(node_experts.shape[1])[None, :], axis=1)
    prev_rows = previous.reshape(rows, -1)
    mapped: IntArray = np.take_along_axis(local_of, np.where(prev_rows >= 0, prev_rows, num_logical), axis=1)
    return mapped.reshape(rows, gpus_per_node, slots_per_gpu)


# --------------------------------------------------------------------------------------------
# Policies (STYLE.md rule 16).
# --------------------------------------------------------------------------------------------


class PlacementPolicy(Protocol):
    """One way of turning load into a physical-to-logical map."""

    name: ClassVar[PlacementPolicyName]

    @classmethod
    def place(
        cls,
        weight: FloatArray,
        topology: EplbTopology,
        *,
        previous: IntArray | None = None,
        targets: _Targets | None = None,
    ) -> IntArray:
        """``[layers, slots]`` physical-to-logical map for ``weight [layers, logical experts]``."""
        ...


class HierarchicalPolicy:
    """Groups onto nodes, replicas within nodes, replicas onto the node's GPUs (DeepSeek)."""

    name: ClassVar[PlacementPolicyName] = "hierarchical"

    @classmethod
    def place(
        cls,
        weight: FloatArray,
        topology: EplbTopology,
        *,
        previous: IntArray | None = None,
        targets: _Targets | None = None,
    ) -> IntArray:
        feasible, why = topology.is_hierarchical_feasible()
        if not feasible:
            raise ValueError(f"policy: hierarchical placement is infeasible: {why}")
        return _place(weight, topology, topology.num_expert_groups, topology.num_nodes, previous, targets)


class GlobalPolicy:
    """Replicas over the whole group, packed onto all GPUs regardless of node."""

    name: ClassVar[PlacementPolicyName] = "global"

    @classmethod
    def place(
        cls,
        weight: FloatArray,
        topology: EplbTopology,
        *,
        previous: IntArray | None = None,
        targets: _Targets | None = None,
    ) -> IntArray:
        return _place(weight, topology, 1, 1, previous, targets)


PLACEMENT_POLICIES: dict[PlacementPolicyName, type[PlacementPolicy]] = {
    "hierarchical": HierarchicalPolicy,
    "global": GlobalPolicy,
}
assert set(PLACEMENT_POLICIES) == set(get_args(PlacementPolicyName))
assert set(get_args(EplbPolicyName)) == {"auto", *PLACEMENT_POLICIES}


# --------------------------------------------------------------------------------------------
# Entry point.
# --------------------------------------------------------------------------------------------


def plan_expert_placement(
    load: npt.ArrayLike,
    topology: EplbTopology,
    *,
    policy: EplbPolicyName = "auto",
    previous: npt.ArrayLike | None = None,
    migration_slack: float = DEFAULT_MIGRATION_SLACK,
    hierarchical_tolerance: float = HIERARCHICAL_TOLERANCE,
) -> ExpertPlacement:
    """Plan the expert map for one EP group.

    Parameters:
        load: ``[layers, num_logical_experts]`` non-negative tokens per logical expert (e.g.
            from `eplb_load.parse_expert_load`; all ones = uniform). A layer with zero total is
            planned as uniform.
        topology: the group's shape.
        policy: ``auto`` (see the module docstring), ``hierarchical`` or ``global``.
        previous: ``[layers, num_physical_experts]`` current physical-to-logical map (-1 for
            empty slots) to re-plan from with few weight moves, or None for a fresh plan.
        migration_slack: with ``previous``, each layer's max GPU load may exceed the fresh
            plan's by this fraction (0.005 = 0.5 %) in exchange for keeping experts in place.
        hierarchical_tolerance: ``auto`` keeps ``hierarchical`` (node-local groups) while its
            balancedness is at least global's minus this.

    Returns:
        An `ExpertPlacement` in vLLM's convention, with its balancedness on ``load``.

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
    if not 0.0 <= hierarchical_tolerance <= 1.0:
        raise ValueError(
            f"hierarchical_tolerance: expected 0 <= tolerance <= 1, got {hierarchical_tolerance}"
        )
    if not 0.0 <= migration_slack < 1.0:
        raise ValueError(f"migration_slack: expected 0 <= slack < 1, got {migration_slack}")
    num_layers = weight.shape[0]
    prev = _check_previous(previous, num_layers, topology)
    idle = weight.sum(axis=1) <= 0.0
    weight[idle] = 1.0

    # Step 1: fresh candidates, and the policy choice.
    hier_ok, hier_why = topology.is_hierarchical_feasible()
    if policy == "hierarchical" and not hier_ok:
        raise ValueError(f"policy: hierarchical placement is infeasible: {hier_why}")
    candidates: dict[PlacementPolicyName, IntArray] = {}
    if policy in ("auto", "global"):
        candidates["global"] = GlobalPolicy.place(weight, topology)
    if policy == "hierarchical" or (policy == "auto" and hier_ok and topology.num_nodes > 1):
        candidates["hierarchical"] = HierarchicalPolicy.place(weight, topology)
    scores = {
        name: compute_balancedness(compute_gpu_load(phy, weight, topology.num_gpus))
        for name, phy in candidates.items()
    }
    chosen, reason = _choose(policy, scores, hier_ok, hier_why, hierarchical_tolerance)
    fresh = candidates[chosen]

    # Step 2: re-plan near the previous placement, layer by layer no worse than fresh + slack.
    moved: int | None = None
    if prev is not None:
        fresh_gpu = compute_gpu_load(fresh, weight, topology.num_gpus)
        fresh_node = fresh_gpu.reshape(num_layers, topology.num_nodes, -1).sum(axis=2)
        targets = _Targets(
            gpu=fresh_gpu.max(axis=1) * (1 + migration_slack),
            node=fresh_node.max(axis=1) * (1 + migration_slack),
        )
        sticky = PLACEMENT_POLICIES[chosen].place(weight, topology, previous=prev, targets=targets)
        over = compute_gpu_load(sticky, weight, topology.num_gpus).max(axis=1) > targets.gpu * (1 + _REL_EPS)
        final = np.where(over[:, None], fresh, sticky)
        moved = count_expert_moves(prev, final, topology.slots_per_gpu)
        fresh_moves = count_expert_moves(prev, fresh, topology.slots_per_gpu)
        reason += (
            f"; re-planned from the previous map: {moved} expert copies move (a fresh plan: "
            f"{fresh_moves}), {int(over.sum())}/{num_layers} layers fell back to the fresh plan"
        )
    else:
        final = fresh

    # Step 3: vLLM's derived maps and the scores.
    gpu_load = compute_gpu_load(final, weight, topology.num_gpus)
    gpu_load[idle] = 0.0
    log2phy, counts = _logical_maps(final, topology.num_logical_experts)
    planned = np.where(idle[:, None], 0.0, weight)
    return ExpertPlacement(
        topology=topology,
        policy=chosen,
        reason=reason,
        physical_to_logical=_frozen(final),
        logical_to_physical=_frozen(log2phy),
        logical_replica_count=_frozen(counts),
        gpu_load=_frozen(gpu_load),
        balancedness=compute_balancedness(gpu_load),
        balancedness_bound=_balancedness_bound(planned, topology),
        moved_replicas=moved,
    )


def _choose(
    policy: EplbPolicyName,
    scores: dict[PlacementPolicyName, float],
    hier_ok: bool,
    hier_why: str,
    tolerance: float,
) -> tuple[PlacementPolicyName, str]:
    """The auto rule (module docstring), with its reason."""
    if policy != "auto":
        return policy, f"{policy} policy requested (balancedness {scores[policy]:.3f})"
    if "hierarchical" not in scores:
        why = hier_why if not hier_ok else "the group is a single node"
        return "global", f"global: hierarchical not applicable ({why})"
    hier, glob = scores["hierarchical"], scores["global"]
    if hier >= glob - tolerance:
        return "hierarchical", (
            f"hierarchical: {hier_why}; balancedness {hier:.3f} vs global {glob:.3f} (within {tolerance})"
        )
    return "global", (
        f"global: hierarchical balancedness {hier:.3f} is below global {glob:.3f} - {tolerance} ({hier_why})"
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


def _logical_maps(physical_to_logical: IntArray, num_logical: int) -> tuple[IntArray, IntArray]:
    """vLLM's ``compute_logical_maps``: slots per expert in ascending order, padded with -1."""
    num_layers, num_slots = physical_to_logical.shape
    counts = _replica_counts(physical_to_logical, num_logical)
    max_replicas = int(counts.max())
    sentinel = np.where(physical_to_logical >= 0, physical_to_logical, num_logical)
    rank = _occurrence_rank(sentinel, num_logical)
    valid = physical_to_logical >= 0
    log2phy = np.full((num_layers, num_logical, max_replicas), -1, dtype=np.int64)
    layer = np.broadcast_to(np.arange(num_layers)[:, None], physical_to_logical.shape)
    slot = np.broadcast_to(np.arange(num_slots), physical_to_logical.shape)
    log2phy[layer[valid], physical_to_logical[valid], rank[valid]] = slot[valid]
    return log2phy, counts


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
