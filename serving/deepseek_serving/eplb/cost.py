"""Predicted time of one MoE layer step for an expert placement: expert compute + all-to-all.

The model (pure numpy; every quantity an expectation per engine step):

Load
    ``load[layer, expert]`` in any unit; only shares inside a layer matter. With ``T`` tokens per
    GPU in the step (the regime: e.g. 8192 in prefill, 128 in decode), ``G`` GPUs and top-``K``
    routing, a token selects expert ``e`` ``q_e = K * load_e / sum(load)`` times on average, and
    expert ``e`` receives ``lambda_e = q_e * G * T`` tokens. vLLM's router sends a token to replica
    ``hash(token) % replica_count`` of its expert (``fused_moe/router/base_router.py``), so each of
    the ``c_e`` replicas receives ``lambda_e / c_e``, whatever GPU it is on.

Compute (a roofline per replica, calibrated)
    One replica with ``x`` expected tokens takes
    ``max(W / (hbm * eta_mem) * (1 - exp(-x)), x * F / (peak * eta_flops))``: the weights ``W`` are
    read once if at least one token arrives (Poisson, hence ``1 - exp(-x)``), and the three
    matmuls cost ``F = 6 * hidden * moe_intermediate`` FLOPs per token. ``eta`` come from one H100
    measurement (``gpu_figures.json``: flat ~76 us in bf16 from 1 to 512 tokens, then linear) and
    the peaks from published specs. A GPU's compute is the sum over its slots: in decode, where
    replicas see few tokens, it is set by how many replicas it must read, not by its tokens.

Routing under node-limited (group-limited) gating (DeepSeek-V3 report, arXiv 2412.19437, sec.
2.1.2: each token picks ``topk_group`` of ``n_group`` expert groups, then its top-``K`` experts
inside them)
    Group ``j`` draws ``Q_j = sum of q_e over its experts`` selections per token. It is picked
    with probability ``g_j = min(1, a * Q_j)``, ``a`` chosen so that ``sum g_j = topk_group``
    (water-filling), and then holds ``m_j = Q_j / g_j`` of the token's experts. If a share
    ``r_jd`` of group ``j``'s selections lands on GPU ``d`` (replicas counted ``1 / c_e`` each),
    the token reaches ``d`` with probability ``D_d = 1 - prod_j (1 - g_j + g_j (1 - r_jd)^m_j)``
    (groups independent, selections inside a group independent); the same with node shares
    ``r_jn`` gives the probability ``A_n`` of reaching node ``n``. Groups packed onto nodes
    (hierarchical placement) reach at most ``topk_group`` nodes; a global placement can reach all.

All-to-all (DeepEP's normal kernels, as in the DeepSeek-V3 report sec. 3.2.2: a token crosses
RDMA once per destination node, to the GPU with the same in-node index, which forwards it over
NVLink to the GPUs holding its experts; combine is the reverse; github.com/deepseek-ai/DeepEP)
    For GPU ``x = (node n, index i)`` of ``N`` nodes of ``P`` GPUs:
    RDMA sends ``T * (sum_n' A_n' - A_n)`` tokens and receives ``(N - 1) * T * A_n``;
    NVLink sends ``N * T * (sum over d in n of D_d - D_x)`` and receives ``N * (P - 1) * T * D_x``.
    Links are full duplex, so each network costs ``max(sent, received) * (dispatch bytes + combine
    bytes) / bandwidth`` (DeepSeek-V3: FP8 dispatch, 7168 + 56 fp32 scales = 7,392 B per token;
    BF16 combine, 14,336 B).

Step time
    ``compute + NVLink + RDMA`` per GPU (no overlap between them is assumed: DeepSeek overlaps two
    micro-batches, which lowers every placement's time, not their order), and the layer waits for
    its slowest GPU: ``step = max over GPUs``. `StepTimePrediction` keeps the per-GPU terms, the
    slowest GPU's breakdown and the RDMA bytes per GPU.

Not modelled: kernel launch and network latency floors (the same for every placement), fused
grouped-GEMM kernels (the calibration times plain matmuls; fused kernels lower the flat time),
attention and the shared expert (placement-independent).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from functools import cache
from importlib import resources
from typing import Literal

import numpy as np
import numpy.typing as npt

from deepseek_serving.eplb.placement import EplbTopology

__all__ = [
    "DECODE",
    "DEEPSEEK_V3",
    "DEFAULT_GPU",
    "PREFILL",
    "GpuFigures",
    "MoeShape",
    "Regime",
    "StepCostModel",
    "StepTimePrediction",
    "gpu_figures",
    "predict_step_time",
]

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]

GPU_FIGURES_FILE = "gpu_figures.json"
"""The one table of GPU figures, next to this module."""
DEFAULT_GPU = "H100"
"""Figures used when the GPU type is unknown (the calibrated one)."""


@dataclass(frozen=True, slots=True)
class GpuFigures:
    """What the step-time model needs of one GPU type (one entry of ``gpu_figures.json``)."""

    name: str
    """Type name as in ``spec.resources.gpuType`` (``H100``)."""
    hbm_bytes_per_s: float
    """Published peak memory bandwidth (H100: 3.35e12)."""
    flops: dict[str, float]
    """Published dense peak FLOP/s by math type: ``bf16``, and ``fp8`` where the GPU has fp8
    tensor cores."""
    nvlink_bytes_per_s: float
    """Intra-node bandwidth per GPU and direction (H100: 450e9 of NVLink's 900 GB/s both ways)."""
    rdma_bytes_per_s: float
    """Scale-out bandwidth per GPU and direction (a 400 Gb/s NIC: 50e9)."""
    efficiency: dict[str, tuple[float, float]]
    """By math type: (memory, compute) fraction of peak the calibrated expert kernel reaches."""
    source: str
    """Where the figures come from."""

    def math_type(self, weight_bytes_per_param: float) -> Literal["bf16", "fp8"]:
        """fp8 math for 1-byte weights (scales included) on GPUs with fp8 tensor cores, else bf16."""
        return "fp8" if weight_bytes_per_param < 1.5 and "fp8" in self.flops else "bf16"


@cache
def gpu_figures() -> dict[str, GpuFigures]:
    """The table: GPU type name -> figures (read once from ``gpu_figures.json``)."""
    text = resources.files("deepseek_serving.eplb").joinpath(GPU_FIGURES_FILE).read_text(encoding="utf-8")
    document = json.loads(text)
    efficiency = {
        kind: (float(pair["memory"]), float(pair["compute"]))
        for kind, pair in document["calibration"]["efficiency"].items()
    }
    table: dict[str, GpuFigures] = {}
    for name, entry in document["gpus"].items():
        flops = {"bf16": float(entry["bf16_flops"])}
        if entry.get("fp8_flops") is not None:
            flops["fp8"] = float(entry["fp8_flops"])
        table[name] = GpuFigures(
            name=name,
            hbm_bytes_per_s=float(entry["hbm_bytes_per_s"]),
            flops=flops,
            nvlink_bytes_per_s=float(entry["nvlink_bytes_per_s"]),
            rdma_bytes_per_s=float(entry["rdma_bytes_per_s"]),
            efficiency=efficiency,
            source=str(entry["source"]),
        )
    return table


@dataclass(frozen=True, slots=True)
class MoeShape:
    """The MoE layer's dimensions that set compute and traffic (default: DeepSeek-V3 in fp8)."""

    hidden_size: int = 7168
    """Model width (DeepSeek-V3: 7168)."""
    moe_intermediate_size: int = 2048
    """Routed expert width (DeepSeek-V3: 2048)."""
    num_experts_per_tok: int = 8
    """Top-K routed experts per token (DeepSeek-V3: 8)."""
    topk_group: int = 4
    """Expert groups a token may reach (DeepSeek-V3: 4 of ``n_group`` 8); ignored when the
    topology has a single group."""
    expert_weight_bytes: int = 3 * 7168 * 2048 + 3 * 56 * 16 * 4
    """Bytes of one routed expert: gate, up, down, with fp8 block scales (44.05 MB)."""
    dispatch_bytes_per_token: int = 7168 + 7168 // 128 * 4
    """Bytes per token and destination in dispatch (FP8 hidden + one fp32 scale per 128)."""
    combine_bytes_per_token: int = 7168 * 2
    """Bytes per token and destination in combine (BF16 hidden)."""

    @property
    def flops_per_token(self) -> float:
        """Three matmuls of ``hidden × intermediate``, two FLOPs per multiply-add."""
        return 6.0 * self.hidden_size * self.moe_intermediate_size

    @property
    def weight_bytes_per_param(self) -> float:
        """Bytes per weight (1.0 fp8, 2.0 bf16), scales included."""
        return self.expert_weight_bytes / (3 * self.hidden_size * self.moe_intermediate_size)


DEEPSEEK_V3 = MoeShape()
"""DeepSeek-V3/R1 with fp8 weights, FP8 dispatch and BF16 combine (DeepEP's V3 setting)."""


@dataclass(frozen=True, slots=True)
class Regime:
    """The engine step to optimise for: tokens every GPU (DP rank) contributes per step."""

    name: Literal["prefill", "decode"]
    """Which phase this is, for display."""
    tokens_per_gpu: int
    """Tokens per GPU per step (prefill: a chunk, e.g. 8192; decode: the batch, e.g. 128)."""

    def __post_init__(self) -> None:
        if self.tokens_per_gpu < 1:
            raise ValueError(f"tokens_per_gpu: expected >= 1, got {self.tokens_per_gpu}")

    def __str__(self) -> str:
        return f"{self.name}, {self.tokens_per_gpu} tokens/GPU"


PREFILL = Regime("prefill", 8192)
"""vLLM's default token budget per step (``max_num_batched_tokens``), all prefill."""
DECODE = Regime("decode", 128)
"""A decode batch of 128 sequences per GPU (DeepEP's low-latency setting)."""


@dataclass(frozen=True, slots=True)
class StepCostModel:
    """Everything the prediction needs beside the placement and the load.

    Example: ``StepCostModel(gpu_figures()["H100"], DEEPSEEK_V3, DECODE)``.
    """

    gpu: GpuFigures
    """Figures of the GPU type."""
    shape: MoeShape = DEEPSEEK_V3
    """The MoE layer."""
    regime: Regime = DECODE
    """Tokens per GPU per step."""
    floor_us: float = field(init=False)
    """Time to read one replica's weights: the flat part of the roofline (µs)."""
    us_per_token: float = field(init=False)
    """Compute time per token once compute-bound (µs)."""

    def __post_init__(self) -> None:
        kind = self.gpu.math_type(self.shape.weight_bytes_per_param)
        memory_eff, compute_eff = self.gpu.efficiency[kind]
        floor = self.shape.expert_weight_bytes / (self.gpu.hbm_bytes_per_s * memory_eff) * 1e6
        per_token = self.shape.flops_per_token / (self.gpu.flops[kind] * compute_eff) * 1e6
        object.__setattr__(self, "floor_us", floor)
        object.__setattr__(self, "us_per_token", per_token)

    @classmethod
    def default(cls, regime: Regime = DECODE) -> StepCostModel:
        """DeepSeek-V3 fp8 on the calibrated GPU (H100)."""
        return cls(gpu_figures()[DEFAULT_GPU], DEEPSEEK_V3, regime)

    @property
    def knee_tokens(self) -> float:
        """Tokens at which a replica turns compute-bound (H100, fp8: ~1,360)."""
        return self.floor_us / self.us_per_token

    def replicas_memory_bound(self, topology: EplbTopology) -> bool:
        """Whether a replica sees fewer tokens than the knee on average (decode-like steps).

        Only then does a redundant replica cost its GPU a weight read that buys no compute, so
        only then can a trimmed placement (fewer replicas) be faster.
        """
        slots = topology.num_physical_experts
        mean = (
            self.top_k(topology.num_logical_experts) * topology.num_gpus * self.regime.tokens_per_gpu / slots
        )
        return mean < self.knee_tokens

    def slot_time_us(self, tokens: npt.ArrayLike, *, expected: bool = True) -> FloatArray:
        """Roofline time of replicas receiving ``tokens`` each (µs, elementwise).

        ``expected``: ``tokens`` are Poisson means, the weights are read with probability
        ``1 - exp(-tokens)``; otherwise they are exact counts (read when > 0).
        """
        x = np.asarray(tokens, dtype=np.float64)
        read = -np.expm1(-x) if expected else (x > 0).astype(np.float64)
        time: FloatArray = np.maximum(self.floor_us * read, x * self.us_per_token)
        return time

    def replica_cost_us(
        self, tokens: npt.ArrayLike, topology: EplbTopology, level: Literal["gpu", "node"]
    ) -> FloatArray:
        """A replica's additive share of its GPU's (``gpu``) or node's (``node``) step, for packing.

        The model linearised per replica with ``x`` expected tokens: its roofline
        (`slot_time_us`), plus the traffic its tokens bring, ignoring de-duplication: at a GPU,
        NVLink receives ``(P - 1) / P`` of them; at a node, where the ``P`` relays share the RDMA
        receive, each token also costs ``(N - 1) / N`` messages over RDMA (per node: divided by
        ``P`` GPUs, times ``P`` to express it per replica of the node). Units: µs per GPU.
        """
        x = np.asarray(tokens, dtype=np.float64)
        message = self.shape.dispatch_bytes_per_token + self.shape.combine_bytes_per_token
        per_token = (
            (topology.gpus_per_node - 1) / topology.gpus_per_node * message / self.gpu.nvlink_bytes_per_s
        )
        if level == "node":
            per_token += (topology.num_nodes - 1) / topology.num_nodes * message / self.gpu.rdma_bytes_per_s
        cost: FloatArray = self.slot_time_us(x) + x * per_token * 1e6
        return cost

    def top_k(self, num_logical_experts: int) -> int:
        """Experts per token, capped by the experts there are (tiny test models)."""
        return min(self.shape.num_experts_per_tok, num_logical_experts)

    def step_tokens(self, load: npt.ArrayLike, num_gpus: int) -> FloatArray:
        """``[layers, experts]`` expected tokens per expert in one step (``lambda_e``).

        A layer without load is taken as uniform.
        """
        weight = np.asarray(load, dtype=np.float64)
        totals = weight.sum(axis=1, keepdims=True)
        shares = np.where(totals > 0, weight / np.where(totals > 0, totals, 1.0), 1.0 / weight.shape[1])
        tokens: FloatArray = shares * (self.top_k(weight.shape[1]) * num_gpus * self.regime.tokens_per_gpu)
        return tokens

    def compute_floor_us(self, load: npt.ArrayLike, num_gpus: int) -> FloatArray:
        """``[layers]`` compute time (µs) that no placement's busiest GPU goes under.

        Every expert on one replica, spread perfectly over the GPUs: ``sum_e roofline(lambda_e) /
        G``. A replica more never lowers the sum, because ``c * roofline(x / c) >= roofline(x)``
        (``1 - exp(-x)`` is subadditive), and the busiest GPU computes at least the mean.
        """
        floor: FloatArray = self.slot_time_us(self.step_tokens(load, num_gpus)).sum(axis=1) / num_gpus
        return floor

    def describe(self) -> str:
        """``decode, 128 tokens/GPU on H100`` for reasons and tables."""
        return f"{self.regime} on {self.gpu.name}"


@dataclass(frozen=True, slots=True, eq=False)
class StepTimePrediction:
    """Predicted MoE layer step of one placement, per layer and GPU (µs unless stated)."""

    compute_us: FloatArray
    """``[layers, gpus]`` expert compute."""
    nvlink_us: FloatArray
    """``[layers, gpus]`` dispatch + combine over NVLink."""
    rdma_us: FloatArray
    """``[layers, gpus]`` dispatch + combine over RDMA (0 on a single node)."""
    rdma_bytes: FloatArray
    """``[layers, gpus]`` bytes each GPU sends over RDMA per step (dispatch + combine)."""

    @property
    def gpu_us(self) -> FloatArray:
        """``[layers, gpus]`` total per GPU."""
        total: FloatArray = self.compute_us + self.nvlink_us + self.rdma_us
        return total

    @property
    def layer_us(self) -> FloatArray:
        """``[layers]`` step time of each layer: its slowest GPU."""
        worst: FloatArray = self.gpu_us.max(axis=1)
        return worst

    @property
    def step_us(self) -> float:
        """Mean over layers of the slowest GPU's time (µs per MoE layer)."""
        return float(self.layer_us.mean())

    def breakdown(self) -> dict[str, float]:
        """The slowest GPU's compute, NVLink and RDMA (µs, means over layers; they sum to
        ``step_us``) and the mean RDMA bytes per GPU (MB)."""
        slowest = np.argmax(self.gpu_us, axis=1)[:, None]
        return {
            "step_us": self.step_us,
            "compute_us": float(np.take_along_axis(self.compute_us, slowest, axis=1).mean()),
            "nvlink_us": float(np.take_along_axis(self.nvlink_us, slowest, axis=1).mean()),
            "rdma_us": float(np.take_along_axis(self.rdma_us, slowest, axis=1).mean()),
            "cross_node_mb_per_gpu": float(self.rdma_bytes.mean()) / 1e6,
        }

    def take_layers(self, layers: IntArray) -> StepTimePrediction:
        """The prediction of a subset (or reordering) of layers."""
        return StepTimePrediction(
            compute_us=self.compute_us[layers],
            nvlink_us=self.nvlink_us[layers],
            rdma_us=self.rdma_us[layers],
            rdma_bytes=self.rdma_bytes[layers],
        )

    @staticmethod
    def select(predictions: list[StepTimePrediction], choice: IntArray) -> StepTimePrediction:
        """Layer ``l`` from ``predictions[choice[l]]``."""
        layers = np.arange(choice.shape[0])

        def pick(name: str) -> FloatArray:
            stacked = np.stack([getattr(p, name) for p in predictions])
            chosen: FloatArray = stacked[choice, layers]
            return chosen

        return StepTimePrediction(
            compute_us=pick("compute_us"),
            nvlink_us=pick("nvlink_us"),
            rdma_us=pick("rdma_us"),
            rdma_bytes=pick("rdma_bytes"),
        )


def predict_step_time(
    physical_to_logical: npt.ArrayLike,
    load: npt.ArrayLike,
    topology: EplbTopology,
    model: StepCostModel,
) -> StepTimePrediction:
    """Predict one MoE layer step of a placement under a load (module docstring).

    Parameters:
        physical_to_logical: ``[layers, num_physical_experts]`` logical expert per slot, -1 for
            an empty slot (never routed to, never read); slot ``s`` is on GPU
            ``s // slots_per_gpu``, GPU ``g`` on node ``g // gpus_per_node``.
        load: ``[layers, num_logical_experts]`` non-negative load (only shares per layer
            matter); every logical expert with load must have a replica.
        topology: the group's shape (its ``num_expert_groups`` is the model's ``n_group``).
        model: GPU figures, layer shape and regime.

    Returns:
        A `StepTimePrediction` with ``[layers, gpus]`` terms.

    Raises:
        ValueError: shapes do not fit the topology.
    """
    phy = np.asarray(physical_to_logical, dtype=np.int64)
    num_layers = phy.shape[0]
    num_logical, num_gpus, num_nodes = topology.num_logical_experts, topology.num_gpus, topology.num_nodes
    if phy.ndim != 2 or phy.shape[1] != topology.num_physical_experts:
        raise ValueError(
            f"physical_to_logical: expected shape [layers, {topology.num_physical_experts}], "
            f"got {list(phy.shape)}"
        )
    expected = model.step_tokens(load, num_gpus)
    if expected.shape != (num_layers, num_logical):
        raise ValueError(f"load: expected shape {[num_layers, num_logical]}, got {list(expected.shape)}")
    tokens = model.regime.tokens_per_gpu
    gpus_per_node = topology.gpus_per_node
    num_groups = topology.num_expert_groups
    group_size = num_logical // num_groups

    # Step 1: tokens per replica, and the roofline per slot summed per GPU.
    valid = phy >= 0
    safe = np.where(valid, phy, 0)
    rows = np.arange(num_layers)[:, None]
    counts = np.zeros((num_layers, num_logical), dtype=np.float64)
    np.add.at(counts, (np.broadcast_to(rows, phy.shape)[valid], phy[valid]), 1.0)
    per_replica = expected / np.maximum(counts, 1.0)
    slot_tokens = np.where(valid, per_replica[rows, safe], 0.0)
    compute = model.slot_time_us(slot_tokens).reshape(num_layers, num_gpus, -1).sum(axis=2)

    # Step 2: group selection under node-limited routing (water-filling of topk_group).
    top_k = model.top_k(num_logical)
    selections = np.minimum(expected / (num_gpus * tokens), 1.0)  # q_e, at most once per token
    group_sel = selections.reshape(num_layers, num_groups, group_size).sum(axis=2)  # Q_j
    picked = _group_probabilities(group_sel, min(model.shape.topk_group, num_groups), num_groups)
    inside = np.where(picked > 0, group_sel / np.where(picked > 0, picked, 1.0), 0.0)  # m_j
    inside = np.minimum(inside, float(min(group_size, top_k)))

    # Step 3: where each group's selections land, per GPU; reach probabilities per GPU and node.
    slot_share = np.where(valid, selections[rows, safe] / np.maximum(counts[rows, safe], 1.0), 0.0)
    slot_gpu = np.arange(phy.shape[1]) // topology.slots_per_gpu
    key = (rows * num_groups + safe // group_size) * num_gpus + slot_gpu
    landed = np.bincount(key[valid], weights=slot_share[valid], minlength=num_layers * num_groups * num_gpus)
    landed = landed.reshape(num_layers, num_groups, num_gpus)
    share_gpu = np.clip(landed / np.maximum(group_sel, 1e-300)[..., None], 0.0, 1.0)
    share_node = np.clip(share_gpu.reshape(num_layers, num_groups, num_nodes, -1).sum(axis=3), 0.0, 1.0)
    reach_gpu = _reach(share_gpu, picked, inside)  # D_d [layers, gpus]
    reach_node = _reach(share_node, picked, inside)  # A_n [layers, nodes]

    # Step 4: tokens each GPU sends and receives per network, and their time (full duplex).
    message = model.shape.dispatch_bytes_per_token + model.shape.combine_bytes_per_token
    node_of_gpu = np.arange(num_gpus) // gpus_per_node
    own_node = reach_node[:, node_of_gpu]
    rdma_sent = tokens * (reach_node.sum(axis=1, keepdims=True) - own_node)
    rdma_received = (num_nodes - 1) * tokens * own_node
    rdma = np.maximum(rdma_sent, rdma_received) * message / model.gpu.rdma_bytes_per_s * 1e6
    node_reach = reach_gpu.reshape(num_layers, num_nodes, -1).sum(axis=2)[:, node_of_gpu]
    nvlink_sent = num_nodes * tokens * (node_reach - reach_gpu)
    nvlink_received = num_nodes * (gpus_per_node - 1) * tokens * reach_gpu
    nvlink = np.maximum(nvlink_sent, nvlink_received) * message / model.gpu.nvlink_bytes_per_s * 1e6
    rdma_bytes = (
        rdma_sent * model.shape.dispatch_bytes_per_token + rdma_received * model.shape.combine_bytes_per_token
    )
    return StepTimePrediction(compute_us=compute, nvlink_us=nvlink, rdma_us=rdma, rdma_bytes=rdma_bytes)


def _group_probabilities(group_sel: FloatArray, topk_group: int, num_groups: int) -> FloatArray:
    """``g_j = min(1, a * Q_j)`` with ``sum_j g_j = topk_group`` per layer (water-filling).

    Parameters:
        group_sel: ``[layers, groups]`` selections per token per group (``Q_j``).
        topk_group: groups a token may pick (<= groups).
        num_groups: groups per layer.
    """
    if topk_group >= num_groups:
        return np.where(group_sel > 0, 1.0, 0.0)
    saturated = np.zeros(group_sel.shape, dtype=bool)
    picked = np.zeros_like(group_sel)
    for _ in range(num_groups):
        free = np.where(saturated, 0.0, group_sel).sum(axis=1, keepdims=True)
        budget = topk_group - saturated.sum(axis=1, keepdims=True)
        scale = np.where(free > 0, budget / np.where(free > 0, free, 1.0), 0.0)
        picked = np.where(saturated, 1.0, np.minimum(1.0, scale * group_sel))
        now = saturated | (scale * group_sel >= 1.0)
        if (now == saturated).all():
            break
        saturated = now
    return picked


def _reach(share: FloatArray, picked: FloatArray, inside: FloatArray) -> FloatArray:
    """``1 - prod_j (1 - g_j + g_j (1 - r_j)^m_j)`` over the group axis (1) of ``share``."""
    miss = (1.0 - picked[..., None]) + picked[..., None] * (1.0 - share) ** inside[..., None]
    reach: FloatArray = 1.0 - np.prod(miss, axis=1)
    return reach
