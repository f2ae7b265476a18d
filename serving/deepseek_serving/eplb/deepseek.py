"""DeepSeek's EPLB, exactly: the reference the planner must never lose to (numpy only).

A port of ``rebalance_experts_hierarchical`` as vLLM 0.32 ships it
(``vllm/distributed/eplb/policy/default.py``, itself adapted from github.com/deepseek-ai/EPLB):
same steps, same dtypes (float32 load, float64 pack sums), same tie-breaking, so the maps are
identical (tests compare them with vLLM's where vLLM is installed). The one change is speed:
``balanced_packing`` runs its greedy over all layers at once instead of a Python loop per layer.

``num_groups % num_nodes == 0`` gives DeepSeek's hierarchical policy (groups packed onto nodes,
replicas inside nodes); ``num_groups = num_nodes = 1`` gives its global policy, which vLLM's
default policy falls back to when groups do not divide over nodes.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

__all__ = ["deepseek_rebalance"]

IntArray = npt.NDArray[np.int64]


def deepseek_rebalance(
    weight: npt.ArrayLike, num_physical_experts: int, num_groups: int, num_nodes: int, num_gpus: int
) -> IntArray:
    """DeepSeek's placement of ``[layers, logical experts]`` load onto physical slots.

    Parameters:
        weight: ``[layers, num_logical_experts]`` load (converted to float32, as vLLM does).
        num_physical_experts: slots per layer, a multiple of ``num_gpus``.
        num_groups: expert groups (``num_logical_experts % num_groups == 0``); 1 for global.
        num_nodes: nodes (``num_groups % num_nodes == 0``); 1 for global.
        num_gpus: GPUs, a multiple of ``num_nodes``.

    Returns:
        ``[layers, num_physical_experts]`` int64 logical expert per slot.
    """
    load = np.asarray(weight).astype(np.float32)
    num_layers, num_logical = load.shape
    assert num_logical % num_groups == 0
    group_size = num_logical // num_groups
    assert num_groups % num_nodes == 0
    groups_per_node = num_groups // num_nodes
    assert num_gpus % num_nodes == 0
    assert num_physical_experts % num_gpus == 0
    slots_per_gpu = num_physical_experts // num_gpus

    # Step 1: pack groups onto nodes.
    tokens_per_group = load.reshape(num_layers, num_groups, group_size).sum(axis=-1)
    group_pack, group_rank = _balanced_packing(tokens_per_group, num_nodes)
    log2mlog = (
        ((group_pack * groups_per_node + group_rank)[..., None] * group_size)
        + np.arange(group_size, dtype=np.int64)
    ).reshape(num_layers, num_logical)
    mlog2log = _inverse(log2mlog)

    # Step 2: replicate experts within nodes.
    tokens_per_mlog = np.take_along_axis(load, mlog2log, axis=1).reshape(-1, num_logical // num_nodes)
    phy2mlog, mlogcnt = _replicate_experts(tokens_per_mlog, num_physical_experts // num_nodes)

    # Step 3: pack physical experts onto the node's GPUs.
    tokens_per_phy = np.take_along_axis(tokens_per_mlog / mlogcnt, phy2mlog, axis=1)
    pack, rank = _balanced_packing(tokens_per_phy, num_gpus // num_nodes)
    pphy2phy = _inverse(pack * slots_per_gpu + rank)
    pphy2mlog = np.take_along_axis(phy2mlog, pphy2phy, axis=1)
    pphy2mlog = (
        pphy2mlog.reshape(num_layers, num_nodes, -1)
        + np.arange(0, num_logical, num_logical // num_nodes, dtype=np.int64)[None, :, None]
    ).reshape(num_layers, -1)
    placement: IntArray = np.take_along_axis(mlog2log, pphy2mlog, axis=1).astype(np.int64)
    return placement


def _balanced_packing(weight: npt.NDArray[np.floating], num_packs: int) -> tuple[IntArray, IntArray]:
    """Each item, heaviest first, to the lightest pack that is not full: ``(pack, rank in pack)``."""
    num_rows, num_items = weight.shape
    assert num_items % num_packs == 0
    per_pack = num_items // num_packs
    if per_pack == 1:
        pack_index = np.tile(np.arange(num_items, dtype=np.int64), (num_rows, 1))
        return pack_index, np.zeros_like(pack_index)
    order = np.argsort(-weight, axis=-1)
    pack_index = np.full((num_rows, num_items), -1, dtype=np.int64)
    rank_in_pack = np.full((num_rows, num_items), -1, dtype=np.int64)
    pack_weight = np.zeros((num_rows, num_packs), dtype=np.float64)
    pack_items = np.zeros((num_rows, num_packs), dtype=np.int64)
    rows = np.arange(num_rows)
    for step in range(num_items):
        item = order[:, step]
        pack = np.argmin(pack_weight, axis=1)  # full packs hold inf
        pack_index[rows, item] = pack
        rank_in_pack[rows, item] = pack_items[rows, pack]
        pack_weight[rows, pack] += weight[rows, item]
        pack_items[rows, pack] += 1
        full = pack_items[rows, pack] == per_pack
        pack_weight[rows[full], pack[full]] = np.inf
    return pack_index, rank_in_pack


def _replicate_experts(weight: npt.NDArray[np.floating], num_physical: int) -> tuple[IntArray, IntArray]:
    """Each redundant slot to the expert with the largest load per replica: ``(phy2log, count)``."""
    num_rows, num_logical = weight.shape
    phy2log = np.tile(np.arange(num_physical, dtype=np.int64), (num_rows, 1))
    count = np.ones((num_rows, num_logical), dtype=np.int64)
    rows = np.arange(num_rows, dtype=np.int64)
    for slot in range(num_logical, num_physical):
        hottest = np.argmax(weight / count, axis=-1)
        phy2log[:, slot] = hottest
        count[rows, hottest] += 1
    return phy2log, count


def _inverse(permutation: IntArray) -> IntArray:
    inverse = np.empty_like(permutation)
    inverse[np.arange(permutation.shape[0])[:, None], permutation] = np.arange(
        permutation.shape[1], dtype=np.int64
    )
    return inverse
