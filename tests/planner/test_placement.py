"""Ray placement bundles and KubeRay worker pods of a group."""

from __future__ import annotations

import pytest

from deepseek_operator.planner.placement import plan_group_placement, plan_worker_group
from deepseek_operator.planner.types import Inventory, ParallelSizes

GIB = 2**30
GPU_NODE = Inventory("gpu", 8, 79 * GIB, "H100", 12, 200 * GIB)


def test_each_tensor_parallel_slice_is_packed_on_one_node() -> None:
    placement = plan_group_placement(ParallelSizes(tensor=4, data=2, gpus_per_node=8), GPU_NODE)
    assert placement.slice_strategy == "STRICT_PACK"
    assert [bundle.to_ray() for bundle in placement.slice_bundles] == [
        {"CPU": 12.0, "memory": 200.0 * GIB, "GPU": 1.0}
    ] * 4
    assert len(placement.group_bundles) == 8


@pytest.mark.parametrize(("tensor", "data"), [(8, 2), (4, 8), (2, 16), (1, 32)])
def test_a_multi_node_group_fills_whole_nodes_and_keeps_slices_inside(tensor: int, data: int) -> None:
    sizes = ParallelSizes(tensor=tensor, data=data, gpus_per_node=8)
    placement = plan_group_placement(sizes, GPU_NODE)
    assert placement.gang_strategy == "PACK"
    nodes = [placement.node_of_rank(rank) for rank in range(sizes.ranks)]
    assert sorted(set(nodes)) == list(range(sizes.nodes))
    assert all(nodes.count(node) == 8 for node in set(nodes))
    for replica in range(data):
        slice_nodes = {placement.node_of_rank(replica * tensor + rank) for rank in range(tensor)}
        assert len(slice_nodes) == 1, f"TP slice {replica} spans nodes {slice_nodes}"


def test_cpu_ranks_ask_for_no_gpu() -> None:
    cpu = Inventory("cpu", 2, 4 * GIB, None, 1, 4 * GIB)
    placement = plan_group_placement(ParallelSizes(tensor=1, data=2, gpus_per_node=2), cpu)
    assert all("GPU" not in bundle for bundle in placement.group_bundles)


def test_worker_pods_scale_in_whole_groups() -> None:
    shape = plan_worker_group(
        ParallelSizes(tensor=8, data=2, gpus_per_node=8), GPU_NODE, groups=2, min_groups=1, max_groups=4
    )
    assert (shape.pods_per_group, shape.gpus_per_pod) == (2, 8)
    assert (shape.replicas, shape.min_replicas, shape.max_replicas) == (4, 2, 8)
    assert shape.cpus_per_pod == 8 * 12 + 2
