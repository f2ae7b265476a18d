"""DeepSeek's reference EPLB port: identical maps to the code vLLM ships, where vLLM is installed."""

from __future__ import annotations

import numpy as np
import pytest

from deepseek_operator.planner.eplb_load import (
    drifting_expert_load_trace,
    lognormal_expert_load,
    zipf_expert_load,
)
from deepseek_serving.eplb.deepseek import deepseek_rebalance

LOADS = {
    "uniform": lambda: np.ones((6, 256)),
    "lognormal-1.0": lambda: lognormal_expert_load(6, 256, sigma=1.0, seed=3),
    "zipf-1.0": lambda: zipf_expert_load(6, 256, exponent=1.0, seed=2),
    "window-counts": lambda: drifting_expert_load_trace(1, 6, 256, seed=1).windows[0],
}


@pytest.mark.parametrize("load", sorted(LOADS))
@pytest.mark.parametrize(
    ("gpus", "nodes", "slots", "groups"),
    [
        pytest.param(32, 4, 288, 8, id="32-hierarchical"),
        pytest.param(32, 4, 288, 1, id="32-global"),
        pytest.param(64, 8, 320, 8, id="64-hierarchical"),
        pytest.param(144, 18, 288, 1, id="144-global"),
        pytest.param(8, 1, 256, 8, id="8-one-node"),
    ],
)
def test_port_equals_vllms_default_policy(gpus: int, nodes: int, slots: int, groups: int, load: str) -> None:
    pytest.importorskip("vllm")
    from vllm.distributed.eplb.policy.default import DefaultEplbPolicy

    weight = LOADS[load]()
    node_count = nodes if groups > 1 else 1
    ours = deepseek_rebalance(weight, slots, groups, node_count, gpus)
    theirs = DefaultEplbPolicy.rebalance_experts_hierarchical(
        weight.astype(np.float32), slots, groups, node_count, gpus
    )
    np.testing.assert_array_equal(ours, theirs)
    assert ours.dtype == np.int64


def test_port_places_every_expert() -> None:
    placement = deepseek_rebalance(zipf_expert_load(3, 16, exponent=1.0, seed=0), 20, 4, 2, 4)
    assert placement.shape == (3, 20)
    assert all(set(row) == set(range(16)) for row in placement.tolist())
