"""EPLB expert placement: which logical expert every GPU slot holds, per MoE layer (numpy only).

The placement algorithms shared by the operator's planner (``deepseek_operator.planner.eplb``)
and the engine's runtime policy (`deepseek_serving.eplb.vllm_policy`); `deepseek_serving.eplb.plan`
chooses among them by predicted step time (`deepseek_serving.eplb.cost`).

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
empty slot
    A slot holding no expert (``-1``, as vLLM's elastic EP pads its maps): never routed to,
    never read. A *trimmed* placement leaves redundant slots empty where a replica would cost a
    weight read per step and save no compute (decode).
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
    Tokens routed to each logical expert, ``[layers, logical experts]`` (the planner passes
    expected tokens per engine step, `StepCostModel.step_tokens`).
packing cost
    What a replica adds to its GPU's (or node's) step: its tokens (balancedness), or its
    predicted time from the cost model (`PlacementCost`), which counts a weight read even for a
    replica with few tokens, and the traffic its tokens bring.
GPU load
    Sum over a GPU's slots of ``load[expert] / replica_count[expert]``.
balancedness
    vLLM's definition: ``sum over layers of mean GPU load / sum over layers of max GPU load``;
    1.0 is perfect.

Output contract (what vLLM's EPLB consumes)
-------------------------------------------
vLLM 0.32's policy interface (`AbstractEplbPolicy.rebalance_experts`) returns one int64
``physical_to_logical [layers, num_physical_experts]`` (-1 marks an empty slot: vLLM's
``compute_logical_maps``, ``rearrange_expert_weights_inplace`` and the router's load recording
skip it); `eplb_state.compute_logical_maps` derives ``logical_to_physical [layers,
num_logical_experts, max_replicas]`` (slot ids in ascending order, padded with -1) and
``logical_replica_count [layers, num_logical_experts]`` (`compute_logical_maps` here is the same).
The router reads ``logical_to_physical[e, hash(token) % logical_replica_count[e]]``, so every
expert needs at least one replica.

Policies (`PLACEMENT_POLICIES`, the planner's candidates)
--------------------------------------------------------
``hierarchical``
    DeepSeek's three steps: pack expert groups onto nodes (equal group count per node), then
    replicate experts inside each node, then pack the node's replicas onto its GPUs. Every
    replica stays on its group's node. Needs ``num_expert_groups % num_nodes == 0``.
``global``
    Replicate over the whole EP group, pack the replicas onto nodes (a node's RDMA receive is set
    by how often tokens reach it, so node loads are balanced first), then onto each node's GPUs.
    Groups are not kept on nodes.
``hierarchical-trimmed``, ``global-trimmed``
    The same with only ``gpus * ceil(experts / gpus)`` replicas (`trimmed_replicas`; per node
    for hierarchical), so that every GPU holds the fewest replicas it can; the other slots stay
    empty. In decode, where a replica's time is one weight read whatever its tokens, this saves
    every GPU the reads of redundant replicas (DeepSeek-V3 on 32 GPUs: 8 reads instead of 9);
    in prefill the redundant replicas win. Planned only where they differ from the untrimmed.
``deepseek-hierarchical``, ``deepseek-global``
    DeepSeek's reference algorithm exactly (`deepseek_serving.eplb.deepseek`, the numpy code
    vLLM ships as its default policy), so the planner never does worse than it.

Ours replicate greedily (each redundant slot goes to the expert with the largest load per
replica, which minimizes the largest replica load), pack replicas by their packing cost
(`PlacementCost.replica_cost_us`: the replica's roofline time plus the NVLink / RDMA traffic its
tokens bring; tokens without a cost model) with a round-based greedy (each round gives the next
``num_packs`` heaviest items to the packs from lightest to heaviest), then refine by cost-reducing
swaps between the heaviest and light packs. All steps are vectorized over layers (and nodes).

Re-planning from a previous placement (``previous=``) keeps every replica that still fits:
replicas stay on their GPU while the expert keeps at least that many replicas, missing ones
fill the freed slots (heaviest first, least-loaded GPU first), and swaps run only until each
layer's busiest GPU is within the given targets. vLLM moves a weight copy only when a GPU gains
an expert it did not hold (`count_expert_moves`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar, Literal, Protocol, get_args

import numpy as np
import numpy.typing as npt

from deepseek_serving.eplb.deepseek import deepseek_rebalance

__all__ = [
    "DEFAULT_MIGRATION_SLACK",
    "PLACEMENT_POLICIES",
    "EplbTopology",
    "PlacementCost",
    "PlacementPolicy",
    "PlacementPolicyName",
    "PlacementTargets",
    "compute_balancedness",
    "compute_gpu_load",
    "compute_logical_maps",
    "compute_replica_counts",
    "count_expert_moves",
    "placement_targets",
    "trimmed_replicas",
]

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]

PlacementPolicyName = Literal[
    "hierarchical",
    "global",
    "hierarchical-trimmed",
    "global-trimmed",
    "deepseek-hierarchical",
    "deepseek-global",
]
"""A concrete placement policy (the keys of `PLACEMENT_POLICIES`)."""

DEFAULT_MIGRATION_SLACK = 0.01
"""Default relative slack on each layer's predicted step time when re-planning from a placement
(1 %: with 2 slots per GPU, or a weight read worth a tenth of a decode step, tighter slacks make
re-plans fall back to fresh maps that move twice the weights for well under 1 % of step time)."""

_PAIR_ROUNDS = 8
"""Refinement rounds that pair the i-th heaviest pack with the i-th lightest (all at once)."""
_SINGLE_ROUNDS = 24
"""Refinement rounds that swap between the heaviest pack and any other pack."""
_PARTNER_BUDGET = 4096
"""Phase-2 swaps try the heaviest pack against the lightest ``max(16, budget // per_pack²)``
packs (all packs for DeepSeek-V3 shapes): bounds the work per round for huge groups."""
_HEAVY_CANDIDATES = 12
"""Items of a heavy pack tried in swaps when packs are bigger than this (nodes of many slots)."""
_NODE_ROUNDS = (2, 6)
"""Refinement rounds when packing replicas onto nodes in a fresh plan (big packs, and each
node's GPUs are balanced afterwards anyway); a re-plan, which must meet targets, gets all."""
_FRESH_TOLERANCE = 2e-3
"""A fresh plan stops refining a row once its max GPU cost is within this fraction of the mean."""
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
    counts = compute_replica_counts(phy, weight.shape[1])
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


def compute_logical_maps(physical_to_logical: IntArray, num_logical: int) -> tuple[IntArray, IntArray]:
    """vLLM's ``compute_logical_maps``: slots per expert in ascending order, padded with -1.

    Parameters:
        physical_to_logical: ``[layers, slots]`` logical expert per slot (-1 empty).
        num_logical: logical experts per layer.

    Returns:
        ``(logical_to_physical [layers, num_logical, max_replicas], logical_replica_count
        [layers, num_logical])``, int64.
    """
    num_layers, num_slots = physical_to_logical.shape
    counts = compute_replica_counts(physical_to_logical, num_logical)
    max_replicas = max(int(counts.max()), 1)
    sentinel = np.where(physical_to_logical >= 0, physical_to_logical, num_logical)
    rank = _occurrence_rank(sentinel, num_logical)
    valid = physical_to_logical >= 0
    log2phy = np.full((num_layers, num_logical, max_replicas), -1, dtype=np.int64)
    layer = np.broadcast_to(np.arange(num_layers)[:, None], physical_to_logical.shape)
    slot = np.broadcast_to(np.arange(num_slots), physical_to_logical.shape)
    log2phy[layer[valid], physical_to_logical[valid], rank[valid]] = slot[valid]
    return log2phy, counts


# --------------------------------------------------------------------------------------------
# Vectorized building blocks. "Rows" are independent problems: layers, or (layer, node) pairs.
# --------------------------------------------------------------------------------------------


def compute_replica_counts(physical_to_logical: IntArray, num_logical: int) -> IntArray:
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
        num_slots: replicas per row, >= experts.

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


def trimmed_replicas(num_experts: int, num_gpus: int, num_slots: int) -> int:
    """Replicas a trimmed placement keeps for ``num_experts`` on ``num_gpus`` GPUs.

    The fewest that still fill every GPU equally: ``num_gpus * ceil(num_experts / num_gpus)``
    (every GPU then reads the same number of replicas per step), at most ``num_slots``.
    """
    return min(num_slots, num_gpus * -(-num_experts // num_gpus))


def _items(weight: FloatArray, counts: IntArray, num_slots: int) -> tuple[IntArray, FloatArray]:
    """Expand counts into replicas: ``(item_expert, item_load)``, each ``[rows, num_slots]``.

    Items are sorted by expert id; rows with fewer replicas than slots end with empty items
    (expert ``num_experts``, load 0).
    """
    rows, num_experts = counts.shape
    used = counts.sum(axis=1)
    padded = np.concatenate([counts, (num_slots - used)[:, None]], axis=1)
    item_expert = np.repeat(np.tile(np.arange(num_experts + 1), rows), padded.ravel()).reshape(
        rows, num_slots
    )
    per_replica = np.concatenate([weight / counts, np.zeros((rows, 1))], axis=1)
    item_load = np.take_along_axis(per_replica, item_expert, axis=1)
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


def _refine(
    item_load: FloatArray,
    members: IntArray,
    target: FloatArray,
    rounds: tuple[int, int] = (_PAIR_ROUNDS, _SINGLE_ROUNDS),
) -> IntArray:
    """Lower each row's heaviest pack by one-for-one swaps until it is <= ``target``.

    Parameters:
        item_load: ``[rows, items]`` replica loads.
        members: ``[rows, packs, per_pack]`` item indices (modified in place and returned).
        target: ``[rows]`` stop once a row's max pack load is at or below this.
        rounds: at most this many rounds of phase 1 and of phase 2.

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
    # No packing beats the pack of the heaviest item filled up with the lightest ones.
    ordered = np.sort(values.reshape(rows, -1), axis=1)
    bound = ordered[:, -1] + ordered[:, : per_pack - 1].sum(axis=1)
    target = np.maximum(target, bound * (1 + _REL_EPS))
    for phase_rounds, paired in ((rounds[0], True), (rounds[1], False)):
        open_rows = loads.max(axis=1) > target * (1 + _REL_EPS)
        for round_index in range(phase_rounds):
            active = np.nonzero(open_rows)[0]
            if active.size == 0:
                break
            vals, lds = values[active], loads[active]
            sub = np.arange(active.size)[:, None]
            # delta[.., a, .., b]: item a of the heavy pack traded for item b of the light pack;
            # big packs offer only their _HEAVY_CANDIDATES heaviest items (bounds the work).
            if paired:
                by_load = np.argsort(lds, axis=1, kind="stable")
                heavy = by_load[:, ::-1][:, :half]
                light = np.roll(by_load[:, :half], -(round_index % half), axis=1)
                heavy_load, light_load = lds[sub, heavy], lds[sub, light]
                offer, offered = _heaviest(vals[sub, heavy])
                delta = offered[:, :, :, None] - vals[sub, light][:, :, None, :]
                new_max = np.maximum(
                    heavy_load[:, :, None, None] - delta, light_load[:, :, None, None] + delta
                ).reshape(active.size, half, -1)
                best = np.argmin(new_max, axis=2)
                best_max = np.take_along_axis(new_max, best[..., None], axis=2)[..., 0]
                pick, slot_l = np.divmod(best, per_pack)
                slot_h = np.take_along_axis(offer, pick[..., None], axis=2)[..., 0]
                pack_l = light
            else:
                heavy = np.argmax(lds, axis=1)[:, None]
                if partners == num_packs:
                    light, light_vals, light_load = np.broadcast_to(everyone, lds.shape), vals, lds
                else:
                    light = np.argsort(lds, axis=1, kind="stable")[:, :partners]
                    light_vals, light_load = vals[sub, light], lds[sub, light]
                heavy_load = lds[sub, heavy]
                offer, offered = _heaviest(vals[sub, heavy][:, 0, :])
                delta = offered[:, :, None, None] - light_vals[:, None, :, :]
                new_max = np.maximum(
                    heavy_load[:, :, None, None] - delta, light_load[:, None, :, None] + delta
                ).reshape(active.size, -1)
                flat_best = np.argmin(new_max, axis=1)
                best_max = new_max[sub[:, 0], flat_best][:, None]
                pick, partner, slot_b = np.unravel_index(flat_best, (offer.shape[1], partners, per_pack))
                slot_h, slot_l = offer[sub[:, 0], pick][:, None], slot_b[:, None]
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


def _heaviest(values: FloatArray) -> tuple[IntArray, FloatArray]:
    """The slots (last axis) a heavy pack offers for swaps, and their values: all of them, or the
    ``_HEAVY_CANDIDATES`` heaviest in a bigger pack."""
    per_pack = values.shape[-1]
    if per_pack <= _HEAVY_CANDIDATES:
        every: IntArray = np.broadcast_to(np.arange(per_pack), values.shape)
        return every, values
    offer: IntArray = np.argpartition(-values, _HEAVY_CANDIDATES - 1, axis=-1)[..., :_HEAVY_CANDIDATES]
    return offer, np.take_along_axis(values, offer, axis=-1)


@dataclass(frozen=True, slots=True)
class PlacementTargets:
    """Per-layer ceilings a re-plan's refinement stops at (from a fresh plan, times the slack)."""

    gpu: FloatArray
    """``[layers]`` max GPU packing cost allowed (`PlacementCost.replica_cost_us`, level gpu)."""
    node: FloatArray
    """``[layers]`` max node load allowed: group tokens (hierarchical) or the node packing cost
    (global, level node)."""


class PlacementCost(Protocol):
    """What a replica costs, from the step-time model (`deepseek_serving.eplb.cost`)."""

    def replica_cost_us(
        self, tokens: npt.ArrayLike, topology: EplbTopology, level: Literal["gpu", "node"]
    ) -> FloatArray:
        """Elementwise: a replica's additive share of its GPU's (or node's) step time (0 for 0)."""
        ...


def placement_targets(
    physical_to_logical: IntArray,
    weight: FloatArray,
    topology: EplbTopology,
    cost: PlacementCost | None,
    *,
    hierarchical: bool,
    slack: float,
) -> PlacementTargets:
    """The ceilings a re-plan must meet to be as good as ``physical_to_logical`` (+ ``slack``).

    Parameters:
        physical_to_logical: ``[layers, slots]`` a fresh plan of the same policy family.
        weight: ``[layers, experts]`` the load it was planned on.
        topology: the group.
        cost: the policy's packing costs (None: tokens).
        hierarchical: the family (what its node step balances).
        slack: relative slack (0.005 = 0.5 %).
    """
    num_layers = physical_to_logical.shape[0]
    slot_tokens = _slot_tokens(physical_to_logical, weight)
    gpu_cost = _packing_cost(slot_tokens, topology, cost, "gpu").reshape(num_layers, topology.num_gpus, -1)
    if hierarchical or cost is None:
        node = slot_tokens.reshape(num_layers, topology.num_nodes, -1).sum(axis=2)
    else:
        node = _packing_cost(slot_tokens, topology, cost, "node").reshape(num_layers, topology.num_nodes, -1)
        node = node.sum(axis=2)
    return PlacementTargets(
        gpu=gpu_cost.sum(axis=2).max(axis=1) * (1 + slack), node=node.max(axis=1) * (1 + slack)
    )


def _slot_tokens(physical_to_logical: IntArray, weight: FloatArray) -> FloatArray:
    """``[layers, slots]`` load per slot: its expert's load over its replica count (0 if empty)."""
    counts = compute_replica_counts(physical_to_logical, weight.shape[1])
    per_replica = weight / np.maximum(counts, 1)
    valid = physical_to_logical >= 0
    safe = np.where(valid, physical_to_logical, 0)
    tokens: FloatArray = np.where(valid, np.take_along_axis(per_replica, safe, axis=1), 0.0)
    return tokens


def _packing_cost(
    tokens: FloatArray, topology: EplbTopology, cost: PlacementCost | None, level: Literal["gpu", "node"]
) -> FloatArray:
    return tokens if cost is None else cost.replica_cost_us(tokens, topology, level)


def _place(
    weight: FloatArray,
    topology: EplbTopology,
    *,
    hierarchical: bool,
    cost: PlacementCost | None,
    trimmed: bool,
    previous: IntArray | None,
    targets: PlacementTargets | None,
) -> IntArray:
    """DeepSeek's decomposition (groups onto nodes, replicas inside nodes, replicas onto GPUs),
    or the global one (replicas over the group, onto nodes, then onto each node's GPUs).

    Parameters:
        weight: ``[layers, logical experts]`` load (expected tokens per step when ``cost`` is
            given; rows with zero total already made uniform).
        topology: the group.
        hierarchical: keep each expert group and its replicas on one node.
        cost: packing costs of replicas (`PlacementCost`); None packs by tokens.
        trimmed: keep only `trimmed_replicas` replicas (per row); leave the other slots empty.
        previous: ``[layers, slots]`` placement to stay close to, or None for a fresh plan.
        targets: ceilings for the re-plan's refinement (None: refine towards perfect balance).

    Returns:
        ``[layers, slots]`` int64 physical-to-logical map (-1 for empty slots).
    """
    num_layers, num_logical = weight.shape
    num_nodes = topology.num_nodes
    slots_per_node = topology.num_physical_experts // num_nodes
    if hierarchical:
        # Step 1: expert groups onto nodes; Step 2: replicas inside each node.
        item_expert, item_load, counts = _hierarchical_items(weight, topology, trimmed, previous, targets)
    else:
        # Step 1: replicas over the whole group; Step 2: replicas onto nodes.
        replicas = topology.num_physical_experts
        if trimmed:
            replicas = trimmed_replicas(num_logical, topology.num_gpus, replicas)
        counts = _replicate(weight, replicas)
        item_expert, item_load = _items(weight, counts, topology.num_physical_experts)
        if num_nodes > 1:
            node_cost = _packing_cost(item_load, topology, cost, "node")
            if previous is None:
                on_node = _pack_rounds(node_cost, num_nodes)
            else:
                on_node = _pack_sticky(node_cost, counts, previous.reshape(num_layers, num_nodes, -1))
            node_target = (
                node_cost.sum(axis=1) / num_nodes * (1 + _FRESH_TOLERANCE)
                if targets is None
                else targets.node
            )
            rounds = _NODE_ROUNDS if previous is None else (_PAIR_ROUNDS, _SINGLE_ROUNDS)
            on_node = _refine(node_cost, on_node, node_target, rounds).reshape(num_layers, -1)
            item_expert = np.take_along_axis(item_expert, on_node, axis=1).reshape(-1, slots_per_node)
            item_load = np.take_along_axis(item_load, on_node, axis=1).reshape(-1, slots_per_node)
            order = np.argsort(item_expert, axis=1, kind="stable")  # by expert, empty items last
            item_expert = np.take_along_axis(item_expert, order, axis=1)
            item_load = np.take_along_axis(item_load, order, axis=1)
            counts = compute_replica_counts(np.where(item_expert < num_logical, item_expert, -1), num_logical)

    # Step 3: each node's replicas onto its GPUs by packing cost (rows: layers × nodes, or layers).
    rows = item_expert.shape[0]
    gpus_per_row = topology.num_gpus * num_layers // rows
    gpu_cost = _packing_cost(item_load, topology, cost, "gpu")
    if previous is None:
        members = _pack_rounds(gpu_cost, gpus_per_row)
    else:
        members = _pack_sticky(gpu_cost, counts, previous.reshape(rows, gpus_per_row, -1))
    gpu_target = (
        gpu_cost.reshape(num_layers, -1).sum(axis=1) / topology.num_gpus * (1 + _FRESH_TOLERANCE)
        if targets is None
        else targets.gpu
    )
    members = _refine(gpu_cost, members, np.repeat(gpu_target, rows // num_layers))
    slot_expert = np.take_along_axis(item_expert, members.reshape(rows, -1), axis=1)
    if previous is None:  # canonical slot order inside a GPU; re-plans keep slots in place
        slot_expert = np.sort(slot_expert.reshape(rows, gpus_per_row, -1), axis=2).reshape(rows, -1)
    placement: IntArray = np.where(slot_expert < num_logical, slot_expert, -1).reshape(num_layers, -1)
    return placement


def _hierarchical_items(
    weight: FloatArray,
    topology: EplbTopology,
    trimmed: bool,
    previous: IntArray | None,
    targets: PlacementTargets | None,
) -> tuple[IntArray, FloatArray, IntArray]:
    """Groups onto nodes, then replicas per node: ``(item_expert, item_load, counts)``.

    Returns ``[layers × nodes, slots_per_node]`` items (global expert ids ascending, empty items
    as ``num_logical``) and ``[layers × nodes, num_logical]`` replica counts per node row.
    """
    num_layers, num_logical = weight.shape
    num_groups, num_nodes = topology.num_expert_groups, topology.num_nodes
    group_size = num_logical // num_groups
    groups_per_node = num_groups // num_nodes
    slots_per_node = topology.num_physical_experts // num_nodes
    group_load = weight.reshape(num_layers, num_groups, group_size).sum(axis=2)
    if previous is None:
        node_members = _pack_rounds(group_load, num_nodes)
    else:
        node_members = _pack_sticky(
            group_load,
            np.ones((num_layers, num_groups), dtype=np.int64),
            _previous_node_groups(previous, group_size, num_nodes, num_groups, groups_per_node),
        )
    node_target = (
        group_load.sum(axis=1) / num_nodes * (1 + _FRESH_TOLERANCE) if targets is None else targets.node
    )
    node_members = _refine(group_load, node_members, node_target)
    node_groups = np.sort(node_members, axis=2)  # [layers, nodes, groups_per_node], ascending ids
    node_experts = (node_groups[..., None] * group_size + np.arange(group_size)).reshape(
        num_layers * num_nodes, -1
    )
    node_weight = np.take_along_axis(np.repeat(weight, num_nodes, axis=0), node_experts, axis=1)
    replicas = slots_per_node
    if trimmed:
        replicas = trimmed_replicas(node_weight.shape[1], topology.gpus_per_node, slots_per_node)
    local_counts = _replicate(node_weight, replicas)
    local_expert, item_load = _items(node_weight, local_counts, slots_per_node)
    with_empty = np.concatenate([node_experts, np.full((node_experts.shape[0], 1), num_logical)], axis=1)
    item_expert = np.take_along_axis(with_empty, local_expert, axis=1)
    counts = np.zeros((node_experts.shape[0], num_logical), dtype=np.int64)
    np.put_along_axis(counts, node_experts, local_counts, axis=1)
    return item_expert, item_load, counts


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


# --------------------------------------------------------------------------------------------
# Policies (STYLE.md rule 16): the planner's candidates.
# --------------------------------------------------------------------------------------------


class PlacementPolicy(Protocol):
    """One way of turning load into a physical-to-logical map."""

    name: ClassVar[PlacementPolicyName]
    family: ClassVar[Literal["hierarchical", "global"]]
    """Whether replicas stay on their group's node (``hierarchical``) or go anywhere."""
    replans: ClassVar[bool]
    """Whether ``previous=`` is honoured (re-planning with few weight moves)."""

    @classmethod
    def feasible(cls, topology: EplbTopology) -> tuple[bool, str]:
        """Whether the policy applies to the group's shape, and why not."""
        ...

    @classmethod
    def place(
        cls,
        weight: FloatArray,
        topology: EplbTopology,
        cost: PlacementCost | None,
        *,
        previous: IntArray | None = None,
        targets: PlacementTargets | None = None,
    ) -> IntArray:
        """``[layers, slots]`` physical-to-logical map for ``weight [layers, logical experts]``."""
        ...


class _Ours:
    """Our decomposition (`_place`), by family and trimming."""

    name: ClassVar[PlacementPolicyName]
    family: ClassVar[Literal["hierarchical", "global"]]
    trimmed: ClassVar[bool] = False
    replans: ClassVar[bool] = True

    @classmethod
    def feasible(cls, topology: EplbTopology) -> tuple[bool, str]:
        if cls.family == "global":
            ok, why = True, "replicas anywhere"
            experts, gpus, slots = (
                topology.num_logical_experts,
                topology.num_gpus,
                topology.num_physical_experts,
            )
        else:
            ok, why = topology.is_hierarchical_feasible()
            experts = topology.num_logical_experts // topology.num_nodes
            gpus, slots = topology.gpus_per_node, topology.num_physical_experts // topology.num_nodes
        if ok and cls.trimmed and trimmed_replicas(experts, gpus, slots) >= slots:
            return False, f"nothing to trim: {slots} slots are the fewest that fill {gpus} GPUs equally"
        return ok, why

    @classmethod
    def place(
        cls,
        weight: FloatArray,
        topology: EplbTopology,
        cost: PlacementCost | None,
        *,
        previous: IntArray | None = None,
        targets: PlacementTargets | None = None,
    ) -> IntArray:
        feasible, why = cls.feasible(topology)
        if not feasible:
            raise ValueError(f"policy: {cls.name} placement is infeasible: {why}")
        return _place(
            weight,
            topology,
            hierarchical=cls.family == "hierarchical",
            cost=cost,
            trimmed=cls.trimmed,
            previous=previous,
            targets=targets,
        )


class HierarchicalPolicy(_Ours):
    """Groups onto nodes, replicas within nodes, replicas onto the node's GPUs (DeepSeek's steps)."""

    name: ClassVar[PlacementPolicyName] = "hierarchical"
    family: ClassVar[Literal["hierarchical", "global"]] = "hierarchical"


class GlobalPolicy(_Ours):
    """Replicas over the whole group, packed onto all GPUs regardless of node."""

    name: ClassVar[PlacementPolicyName] = "global"
    family: ClassVar[Literal["hierarchical", "global"]] = "global"


class HierarchicalTrimmedPolicy(HierarchicalPolicy):
    """Hierarchical with the fewest replicas that fill each node's GPUs equally; other slots empty."""

    name: ClassVar[PlacementPolicyName] = "hierarchical-trimmed"
    trimmed: ClassVar[bool] = True


class GlobalTrimmedPolicy(GlobalPolicy):
    """Global with the fewest replicas that fill the GPUs equally; other slots empty."""

    name: ClassVar[PlacementPolicyName] = "global-trimmed"
    trimmed: ClassVar[bool] = True


class _DeepSeek:
    """DeepSeek's reference EPLB, exactly (`deepseek_rebalance`); stateless, so no re-planning."""

    name: ClassVar[PlacementPolicyName]
    family: ClassVar[Literal["hierarchical", "global"]]
    replans: ClassVar[bool] = False

    @classmethod
    def feasible(cls, topology: EplbTopology) -> tuple[bool, str]:
        if cls.family == "global":
            return True, "replicas anywhere"
        return topology.is_hierarchical_feasible()

    @classmethod
    def place(
        cls,
        weight: FloatArray,
        topology: EplbTopology,
        cost: PlacementCost | None,
        *,
        previous: IntArray | None = None,
        targets: PlacementTargets | None = None,
    ) -> IntArray:
        feasible, why = cls.feasible(topology)
        if not feasible:
            raise ValueError(f"policy: {cls.family} placement is infeasible: {why}")
        groups, nodes = (
            (topology.num_expert_groups, topology.num_nodes) if cls.family == "hierarchical" else (1, 1)
        )
        return deepseek_rebalance(weight, topology.num_physical_experts, groups, nodes, topology.num_gpus)


class DeepSeekHierarchicalPolicy(_DeepSeek):
    """``rebalance_experts_hierarchical`` with the group's nodes (vLLM's default when feasible)."""

    name: ClassVar[PlacementPolicyName] = "deepseek-hierarchical"
    family: ClassVar[Literal["hierarchical", "global"]] = "hierarchical"


class DeepSeekGlobalPolicy(_DeepSeek):
    """``rebalance_experts_hierarchical`` with one group and one node (vLLM's default otherwise)."""

    name: ClassVar[PlacementPolicyName] = "deepseek-global"
    family: ClassVar[Literal["hierarchical", "global"]] = "global"


PLACEMENT_POLICIES: dict[PlacementPolicyName, type[PlacementPolicy]] = {
    policy.name: policy
    for policy in (
        HierarchicalPolicy,
        GlobalPolicy,
        HierarchicalTrimmedPolicy,
        GlobalTrimmedPolicy,
        DeepSeekHierarchicalPolicy,
        DeepSeekGlobalPolicy,
    )
}
"""Candidates in order of preference on equal predicted time."""
assert set(PLACEMENT_POLICIES) == set(get_args(PlacementPolicyName))
