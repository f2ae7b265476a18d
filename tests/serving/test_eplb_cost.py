"""The step-time model against hand-computed cases, and the GPU figures against the H100 measurement."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

from deepseek_serving.eplb import cost
from deepseek_serving.eplb.cost import (
    DECODE,
    PREFILL,
    GpuFigures,
    MoeShape,
    Regime,
    StepCostModel,
    gpu_figures,
    predict_step_time,
)
from deepseek_serving.eplb.placement import EplbTopology
from deepseek_serving.eplb.plan import plan_expert_placement

# A GPU with round numbers: effective 0.5e12 B/s and 0.5e15 FLOP/s.
ROUND_GPU = GpuFigures(
    name="round",
    hbm_bytes_per_s=1e12,
    flops={"bf16": 1e15},
    nvlink_bytes_per_s=100e9,
    rdma_bytes_per_s=10e9,
    efficiency={"bf16": (0.5, 0.5)},
    source="test",
)
# 2 MB of bf16 weights (1e6 params), 3e6 FLOPs per token, 1,000 + 3,000 bytes per token moved.
ROUND_SHAPE = MoeShape(
    hidden_size=1000,
    moe_intermediate_size=500,
    num_experts_per_tok=1,
    topk_group=1,
    expert_weight_bytes=2_000_000,
    dispatch_bytes_per_token=1000,
    combine_bytes_per_token=3000,
)
MESSAGE = 4000  # bytes per token and destination, dispatch + combine


def _model(tokens_per_gpu: int, shape: MoeShape = ROUND_SHAPE) -> StepCostModel:
    return StepCostModel(ROUND_GPU, shape, Regime("decode", tokens_per_gpu))


def test_roofline_by_hand() -> None:
    model = _model(100)
    # floor: 2e6 B / 0.5e12 B/s = 4 µs; per token: 3e6 / 0.5e15 = 6e-3 µs; knee 4 / 6e-3 tokens.
    assert model.floor_us == pytest.approx(4.0)
    assert model.us_per_token == pytest.approx(6e-3)
    assert model.knee_tokens == pytest.approx(4.0 / 6e-3)
    times = model.slot_time_us([0.0, 1.0, 100.0, 1000.0], expected=False)
    np.testing.assert_allclose(times, [0.0, 4.0, 4.0, 6.0])
    # Expected counts: the weights are read when at least one token arrives (Poisson).
    assert model.slot_time_us(1.0)[()] == pytest.approx(4.0 * (1 - math.exp(-1.0)))


def test_two_nodes_one_gpu_each_by_hand() -> None:
    # Expert 0 (group 0) on node 0, expert 1 (group 1) on node 1; top-1 of 1 group per token.
    topology = EplbTopology(
        num_logical_experts=2, num_expert_groups=2, num_nodes=2, num_gpus=2, num_physical_experts=2
    )
    prediction = predict_step_time([[0, 1]], [[3.0, 1.0]], topology, _model(100))
    # q = (0.75, 0.25): 200 tokens -> 150 and 50 per expert, both far below the knee (667).
    np.testing.assert_allclose(prediction.compute_us, [[4 * (1 - math.exp(-150)), 4 * (1 - math.exp(-50))]])
    # Group picks g = (0.75, 0.25), one expert inside: the token reaches node 0 with 0.75.
    # GPU 0 sends 100 * 0.25 (to node 1) and receives (2 - 1) * 100 * 0.75: max 75 tokens.
    # GPU 1 sends 100 * 0.75 and receives 100 * 0.25: max 75 tokens too.
    rdma = 75 * MESSAGE / 10e9 * 1e6
    np.testing.assert_allclose(prediction.rdma_us, [[rdma, rdma]])
    np.testing.assert_allclose(prediction.nvlink_us, [[0.0, 0.0]])  # one GPU per node
    np.testing.assert_allclose(prediction.rdma_bytes, [[25 * 1000 + 75 * 3000, 75 * 1000 + 25 * 3000]])
    assert prediction.step_us == pytest.approx(4.0 + rdma, rel=1e-9)
    parts = prediction.breakdown()
    assert parts["compute_us"] + parts["nvlink_us"] + parts["rdma_us"] == pytest.approx(parts["step_us"])


def test_one_node_nvlink_by_hand() -> None:
    # 4 experts, uniform, no groups, top-2: GPU 0 holds experts 0 and 1, GPU 1 holds 2 and 3.
    topology = EplbTopology(
        num_logical_experts=4, num_expert_groups=1, num_nodes=1, num_gpus=2, num_physical_experts=4
    )
    shape = MoeShape(
        hidden_size=1000,
        moe_intermediate_size=500,
        num_experts_per_tok=2,
        topk_group=1,
        expert_weight_bytes=2_000_000,
        dispatch_bytes_per_token=1000,
        combine_bytes_per_token=3000,
    )
    prediction = predict_step_time([[0, 1, 2, 3]], np.ones((1, 4)), topology, _model(100, shape))
    # Two picks per token, half of them on each GPU: reached with 1 - (1 - 1/2)^2 = 0.75.
    # GPU 0 sends 100 * 0.75 to GPU 1 and receives 100 * 0.75 from it.
    nvlink = 75 * MESSAGE / 100e9 * 1e6
    np.testing.assert_allclose(prediction.nvlink_us, [[nvlink, nvlink]])
    np.testing.assert_allclose(prediction.rdma_us, [[0.0, 0.0]])
    # 400 token-picks, 100 per expert: two replicas per GPU below the knee.
    np.testing.assert_allclose(prediction.compute_us, [[8 * (1 - math.exp(-100))] * 2])


def test_compute_floor_by_hand() -> None:
    # Two experts on two GPUs, top-1, 100 tokens per GPU: 150 and 50 tokens, both below the knee
    # (667), so each costs one weight read (4 µs); at 2,000 tokens per GPU, 3,000 and 1,000 tokens
    # are past the knee and cost 18 and 6 µs.
    model = _model(100)
    floor = model.compute_floor_us([[3.0, 1.0]], num_gpus=2)
    np.testing.assert_allclose(floor, [(4 * (1 - math.exp(-150)) + 4 * (1 - math.exp(-50))) / 2])
    np.testing.assert_allclose(_model(2000).compute_floor_us([[3.0, 1.0]], num_gpus=2), [(18 + 6) / 2])


@pytest.mark.parametrize("regime", [DECODE, PREFILL], ids=lambda regime: regime.name)
def test_no_placement_computes_under_the_floor(regime: Regime) -> None:
    """Random placements, with and without replicas and empty slots, and the planner's own."""
    rng = np.random.default_rng(3)
    topology = EplbTopology(
        num_logical_experts=32, num_expert_groups=4, num_nodes=2, num_gpus=8, num_physical_experts=48
    )
    model = StepCostModel(gpu_figures()["H100"], regime=regime)
    load = rng.lognormal(0.0, 1.0, (6, 32))
    floor = model.compute_floor_us(load, topology.num_gpus)
    placements = [plan_expert_placement(load, topology, cost=model).physical_to_logical]
    for _ in range(20):
        extra = rng.integers(-1, 32, (6, 16))  # redundant replicas or empty slots
        placements.append(np.stack([rng.permutation(np.concatenate([np.arange(32), row])) for row in extra]))
    busiest = [predict_step_time(p, load, topology, model).compute_us.max(axis=1) for p in placements]
    assert all((b >= floor * (1 - 1e-12)).all() for b in busiest)
    # Not a loose bound: the best of them is within 20 % of it.
    assert min(float(b.mean()) for b in busiest) <= 1.2 * float(floor.mean())


def test_node_limited_routing_bounds_the_nodes_a_token_reaches() -> None:
    # 4 groups of 4 experts on 4 nodes, a token picks 2 groups and 4 experts. Hierarchical: each
    # node holds one group (reached with 1/2); global: each node one expert of every group.
    topology = EplbTopology(
        num_logical_experts=16, num_expert_groups=4, num_nodes=4, num_gpus=4, num_physical_experts=16
    )
    shape = MoeShape(
        hidden_size=1000,
        moe_intermediate_size=500,
        num_experts_per_tok=4,
        topk_group=2,
        expert_weight_bytes=2_000_000,
        dispatch_bytes_per_token=1000,
        combine_bytes_per_token=3000,
    )
    model = _model(100, shape)
    hierarchical = [list(range(16))]
    spread = [[4 * (slot % 4) + slot // 4 for slot in range(16)]]
    near = predict_step_time(hierarchical, np.ones((1, 16)), topology, model)
    far = predict_step_time(spread, np.ones((1, 16)), topology, model)
    # Hierarchical: A_n = 1/2; a GPU sends 100 * 3 * 0.5 and receives 3 * 100 * 0.5.
    np.testing.assert_allclose(near.rdma_us, 150 * MESSAGE / 10e9 * 1e6)
    # Global: each group (picked with 1/2, then 2 picks) has a quarter of its experts here:
    # A_n = 1 - (1/2 + 1/2 * (3/4)^2)^4 over the 4 groups; a GPU sends and receives 300 * A_n.
    reach = 1 - (0.5 + 0.5 * 0.75**2) ** 4
    np.testing.assert_allclose(far.rdma_us, 300 * reach * MESSAGE / 10e9 * 1e6)
    assert near.step_us < far.step_us


@pytest.mark.parametrize(
    ("selections", "topk_group", "expected"),
    [
        pytest.param([[1.0, 1.0, 1.0, 1.0]], 2, [[0.5, 0.5, 0.5, 0.5]], id="even"),
        pytest.param([[3.0, 0.5, 0.5]], 2, [[1.0, 0.5, 0.5]], id="hot-group-saturates"),
        pytest.param([[2.0, 1.0, 1.0]], 3, [[1.0, 1.0, 1.0]], id="all-groups"),
        pytest.param([[0.0, 2.0]], 2, [[0.0, 1.0]], id="unused-group"),
    ],
)
def test_group_probabilities(
    selections: list[list[float]], topk_group: int, expected: list[list[float]]
) -> None:
    picked = cost._group_probabilities(np.array(selections), topk_group, len(selections[0]))
    np.testing.assert_allclose(picked, expected)


def test_decode_reads_and_prefill_tokens() -> None:
    # DeepSeek-V3 on 32 H100s / 4 nodes, uniform load: in decode a trimmed map reads 8 replicas
    # per GPU instead of 9 (the plan module's worked example); in prefill it is not even planned.
    topology = EplbTopology(256, 8, 4, 32, 288)
    decode = plan_expert_placement(np.ones((2, 256)), topology, cost=StepCostModel.default(DECODE))
    floor = decode.cost.floor_us
    assert decode.policy == "hierarchical-trimmed"
    assert decode.score.compute_us == pytest.approx(8 * floor, rel=1e-3)
    full = next(c for c in decode.candidates if c.policy == "hierarchical")
    assert full.compute_us == pytest.approx(9 * floor, rel=1e-3)
    prefill = plan_expert_placement(np.ones((2, 256)), topology, cost=StepCostModel.default(PREFILL))
    assert not any(c.policy.endswith("-trimmed") for c in prefill.candidates)
    # 8192 tokens × 32 GPUs × 8 / 288 slots per replica, compute-bound: 9 replicas' tokens per GPU.
    per_gpu_tokens = 8192 * 8
    assert prefill.score.compute_us == pytest.approx(per_gpu_tokens * prefill.cost.us_per_token, rel=1e-3)


def test_replica_cost_adds_the_traffic_of_its_tokens() -> None:
    topology = EplbTopology(16, 4, 2, 4, 16)  # 2 nodes of 2 GPUs
    model = _model(100)
    gpu = model.replica_cost_us([1000.0], topology, "gpu")[0]
    node = model.replica_cost_us([1000.0], topology, "node")[0]
    assert gpu == pytest.approx(6.0 + 1000 * 0.5 * MESSAGE / 100e9 * 1e6)
    assert node == pytest.approx(gpu + 1000 * 0.5 * MESSAGE / 10e9 * 1e6)
    assert model.replicas_memory_bound(topology)  # 100 × 4 / 16 = 25 tokens per slot < 667


# --------------------------------------------------------------------------------------------
# The GPU figures table
# --------------------------------------------------------------------------------------------


def _calibration() -> dict[str, object]:
    from importlib import resources

    text = resources.files("deepseek_serving.eplb").joinpath("gpu_figures.json").read_text()
    calibration: dict[str, object] = json.loads(text)["calibration"]
    return calibration


@pytest.mark.parametrize(("kind", "bytes_per_param"), [("bf16", 2), ("fp8", 1)])
def test_h100_figures_reproduce_the_measurement(kind: str, bytes_per_param: int) -> None:
    # The calibration is one DeepSeek-V3 expert timed on an H100 (plain torch matmuls).
    measured = _calibration()[f"expert_ffn_{kind}_us_by_tokens"]
    assert isinstance(measured, dict)
    shape = MoeShape(expert_weight_bytes=3 * 7168 * 2048 * bytes_per_param)
    model = StepCostModel(gpu_figures()["H100"], shape, DECODE)
    assert model.gpu.math_type(shape.weight_bytes_per_param) == kind
    for tokens, microseconds in measured.items():
        predicted = model.slot_time_us(float(tokens), expected=False)[()]
        assert predicted == pytest.approx(microseconds, rel=0.10), tokens


def test_every_figure_is_positive_and_sourced() -> None:
    for name, figures in gpu_figures().items():
        assert figures.name == name
        assert min(figures.hbm_bytes_per_s, figures.nvlink_bytes_per_s, figures.rdma_bytes_per_s) > 0
        assert figures.flops["bf16"] > 0
        assert figures.source
    # Published ratios the table must keep: H200 has 4.8/3.35 of H100's bandwidth, same math.
    h100, h200 = gpu_figures()["H100"], gpu_figures()["H200"]
    assert h200.hbm_bytes_per_s / h100.hbm_bytes_per_s == pytest.approx(4.8 / 3.35)
    assert h200.flops == h100.flops
    assert "fp8" not in gpu_figures()["A100"].flops  # no fp8 tensor cores: bf16 math
