#!/usr/bin/env python3
"""GPU check of the EPLB step-time model: predicted vs measured expert compute of slowest GPUs.

Runs only where a GPU is present (never in CI; a CPU run exits 2 unless ``--allow-cpu``, which
tests use with tiny shapes). For two placements of the same load, ours (`plan_expert_placement`)
and vLLM's default (DeepSeek's EPLB, `deepseek_rebalance`), in decode and prefill, it takes the
GPU the model predicts to have the most expert compute, and runs that GPU's expert set on this
one GPU: every slot's expert FFN in turn (``x @ W_gate_up``, ``SiLU(gate) * up``, ``@ W_down``,
plain torch matmuls as in the calibration of ``gpu_figures.json``; fp8 through per-tensor scaled
``torch._scaled_mm``), each with the tokens the model expects it to receive (rounded), with
distinct weights per slot (no cache reuse), timed with CUDA events (median of ``--reps`` after
warm-up). It prints predicted and measured compute per case; the goal is every case within
±20 % (exit status 0, else 1).

Usage::

    python scripts/gpu/check_expert_ffn.py                 # DeepSeek-V3, 32 GPUs / 4 nodes
    python scripts/gpu/check_expert_ffn.py --dtype bf16 --gpus 64 --nodes 8 --slots 320 --json

Needs the serving package (``deepseek_serving``, numpy) and torch with a GPU; not the operator.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "serving"))

from deepseek_serving.eplb.cost import (
    DECODE,
    PREFILL,
    MoeShape,
    Regime,
    StepCostModel,
    gpu_figures,
    predict_step_time,
)
from deepseek_serving.eplb.deepseek import deepseek_rebalance
from deepseek_serving.eplb.placement import EplbTopology
from deepseek_serving.eplb.plan import plan_expert_placement

GOAL = 0.20
"""Measured compute must be within this fraction of the prediction."""


@dataclass(frozen=True)
class Case:
    """One slowest GPU to time: its replicas' token counts and the predicted compute."""

    regime: str
    placement: str
    layer: int
    gpu: int
    tokens: tuple[int, ...]
    """Tokens each slot of the GPU receives (0: an empty or idle slot, not run)."""
    predicted_us: float
    measured_us: float | None = None

    @property
    def error(self) -> float | None:
        return None if self.measured_us is None else self.measured_us / self.predicted_us - 1.0

    @property
    def within_goal(self) -> bool | None:
        error = self.error
        return None if error is None else abs(error) <= GOAL


def lognormal_load(layers: int, experts: int, sigma: float, seed: int) -> np.ndarray:
    """The operator's `lognormal_expert_load` (same draws): ``exp(sigma * N(0, 1))`` per layer."""
    rng = np.random.default_rng(seed)
    raw = np.exp(sigma * rng.standard_normal((layers, experts)))
    return raw / raw.sum(axis=1, keepdims=True) * (1 << 20)


def detect_gpu_type(device_name: str) -> str | None:
    """The ``gpu_figures.json`` key for a device name (``NVIDIA H100 80GB HBM3`` -> ``H100``)."""
    name = device_name.upper().replace(" ", "")
    for key in sorted(gpu_figures(), key=len, reverse=True):  # H100 before H10, A100-40GB before A100
        if key.upper().replace("-40GB", "") in name and ("40GB" in name) == key.endswith("-40GB"):
            return key
    return None


def plan_cases(
    model_for: Callable[[Regime], StepCostModel],
    topology: EplbTopology,
    load: np.ndarray,
    *,
    regimes: Sequence[Regime] = (DECODE, PREFILL),
) -> list[Case]:
    """The cases to time (pure): per regime and placement, each layer's slowest-compute GPU.

    Parameters:
        model_for: the cost model of a regime (GPU figures and layer shape of the check).
        topology: the EP group.
        load: ``[layers, experts]`` load; every layer gives one case per regime and placement.
        regimes: the steps.
    """
    cases = []
    for regime in regimes:
        model = model_for(regime)
        ours = plan_expert_placement(load, topology, cost=model).physical_to_logical
        hierarchical = topology.num_expert_groups % topology.num_nodes == 0
        groups, nodes = (topology.num_expert_groups, topology.num_nodes) if hierarchical else (1, 1)
        theirs = deepseek_rebalance(load, topology.num_physical_experts, groups, nodes, topology.num_gpus)
        step = model.step_tokens(load, topology.num_gpus)
        for name, phy in (("ours", ours), ("vllm-default", theirs)):
            compute = predict_step_time(phy, load, topology, model).compute_us
            for layer in range(load.shape[0]):
                gpu = int(np.argmax(compute[layer]))
                slots = phy[layer].reshape(topology.num_gpus, -1)[gpu]
                counts = np.bincount(phy[layer][phy[layer] >= 0], minlength=topology.num_logical_experts)
                tokens = tuple(
                    round(float(step[layer, e] / counts[e])) if e >= 0 else 0 for e in slots.tolist()
                )
                predicted = float(model.slot_time_us(np.array(tokens, dtype=float), expected=False).sum())
                cases.append(Case(regime.name, name, layer, gpu, tokens, predicted))
    return cases


def time_cases(
    cases: Sequence[Case], shape: MoeShape, *, dtype: str, device: str, reps: int, warmup: int
) -> list[Case]:
    """Run every case's expert set in turn on ``device`` and fill ``measured_us`` (median)."""
    import torch

    hidden, inter = shape.hidden_size, shape.moe_intermediate_size
    on_gpu = device.startswith("cuda")
    generator = torch.Generator(device=device).manual_seed(0)

    def weight(rows: int, cols: int) -> Any:
        w = torch.randn(rows, cols, device=device, generator=generator, dtype=torch.float32) * 0.02
        return w.to(torch.float8_e4m3fn) if dtype == "fp8" else w.to(torch.bfloat16)

    one = torch.ones((), device=device, dtype=torch.float32)

    def matmul(x: Any, w: Any) -> Any:
        if (
            dtype == "fp8"
        ):  # per-tensor scaled, as the calibration; w is [out, in] row-major -> b column-major
            return torch._scaled_mm(x, w.t(), scale_a=one, scale_b=one, out_dtype=torch.bfloat16)
        return x @ w.t()

    def expert(x: Any, w_gate_up: Any, w_down: Any) -> Any:
        gate_up = matmul(x, w_gate_up)
        act = torch.nn.functional.silu(gate_up[:, :inter]) * gate_up[:, inter:]
        return matmul(act.to(x.dtype), w_down)

    measured = []
    for case in cases:
        runs = [t for t in case.tokens if t > 0]
        weights = [(weight(2 * inter, hidden), weight(hidden, inter)) for _ in runs]
        pad = 16 if dtype == "fp8" else 1  # _scaled_mm wants rows in multiples of 16
        inputs = [
            (torch.randn(-(-t // pad) * pad, hidden, device=device, generator=generator) * 0.1).to(
                weights[0][0].dtype
            )
            for t in runs
        ]

        def run_set(inputs: list[Any], weights: list[tuple[Any, Any]]) -> None:
            for x, (w_gate_up, w_down) in zip(inputs, weights, strict=True):
                expert(x, w_gate_up, w_down)

        times = []
        for rep in range(warmup + reps):
            if on_gpu:
                start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
                start.record()
                run_set(inputs, weights)
                end.record()
                torch.cuda.synchronize()
                elapsed_us = start.elapsed_time(end) * 1e3
            else:
                began = time.perf_counter()
                run_set(inputs, weights)
                elapsed_us = (time.perf_counter() - began) * 1e6
            if rep >= warmup:
                times.append(elapsed_us)
        measured.append(Case(**{**asdict(case), "measured_us": statistics.median(times)}))
        del weights, inputs
    return measured


def format_report(cases: Sequence[Case], title: str) -> str:
    """A plain table: predicted vs measured compute per case."""
    lines = [
        title,
        f"{'regime':8} {'placement':13} {'layer':>5} {'gpu':>4} {'slots':>5} {'tokens':>8} "
        f"{'predicted µs':>13} {'measured µs':>12} {'error':>8}  goal ±{GOAL:.0%}",
    ]
    for case in cases:
        error = "-" if case.error is None else f"{case.error:+.1%}"
        measured = "-" if case.measured_us is None else f"{case.measured_us:.1f}"
        lines.append(
            f"{case.regime:8} {case.placement:13} {case.layer:>5} {case.gpu:>4} "
            f"{sum(t > 0 for t in case.tokens):>5} {sum(case.tokens):>8} {case.predicted_us:>13.1f} "
            f"{measured:>12} {error:>8}  {case.within_goal}"
        )
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--gpu-type", help="gpu_figures.json key (default: detected from the device name)")
    parser.add_argument("--dtype", choices=("fp8", "bf16"), help="default: fp8 where the GPU has fp8 math")
    parser.add_argument("--gpus", type=int, default=32)
    parser.add_argument("--nodes", type=int, default=4)
    parser.add_argument("--slots", type=int, default=288)
    parser.add_argument("--experts", type=int, default=256)
    parser.add_argument("--groups", type=int, default=8)
    parser.add_argument("--hidden", type=int, default=7168)
    parser.add_argument("--intermediate", type=int, default=2048)
    parser.add_argument("--layers", type=int, default=2, help="layers of the seeded load to check")
    parser.add_argument("--sigma", type=float, default=1.0, help="log-normal skew of the seeded load")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--reps", type=int, default=20)
    parser.add_argument("--warmup", type=int, default=5)
    parser.add_argument("--json", action="store_true", help="print the cases as JSON")
    parser.add_argument(
        "--allow-cpu", action="store_true", help="time on the CPU (tests of this script only)"
    )
    args = parser.parse_args(argv)

    import torch

    if torch.cuda.is_available():
        device, device_name = "cuda", torch.cuda.get_device_name()
    elif args.allow_cpu:
        device, device_name = "cpu", "cpu"
    else:
        print(
            "no GPU: this check times expert FFNs on a GPU (use --allow-cpu only to test the script)",
            file=sys.stderr,
        )
        return 2
    gpu_type = args.gpu_type or detect_gpu_type(device_name)
    if gpu_type not in gpu_figures():
        print(
            f"unknown GPU {device_name!r}: pass --gpu-type (one of {', '.join(gpu_figures())})",
            file=sys.stderr,
        )
        return 2
    figures = gpu_figures()[gpu_type]
    dtype = args.dtype or ("fp8" if "fp8" in figures.flops else "bf16")
    bytes_per_param = 1 if dtype == "fp8" else 2
    shape = MoeShape(
        hidden_size=args.hidden,
        moe_intermediate_size=args.intermediate,
        expert_weight_bytes=3 * args.hidden * args.intermediate * bytes_per_param,
    )
    topology = EplbTopology(args.experts, args.groups, args.nodes, args.gpus, args.slots)
    load = lognormal_load(args.layers, args.experts, args.sigma, args.seed)
    cases = plan_cases(lambda regime: StepCostModel(figures, shape, regime), topology, load)
    cases = time_cases(cases, shape, dtype=dtype, device=device, reps=args.reps, warmup=args.warmup)
    if args.json:
        print(
            json.dumps(
                [{**asdict(c), "error": c.error, "within_goal": c.within_goal} for c in cases], indent=2
            )
        )
    else:
        title = (
            f"Expert compute of the slowest GPU, predicted vs measured on {device_name} ({gpu_type} "
            f"figures, {dtype}; {args.gpus} GPUs / {args.nodes} nodes / {args.slots} slots; "
            f"log-normal {args.sigma} load)"
        )
        print(format_report(cases, title))
    return 0 if all(c.within_goal for c in cases) else 1


if __name__ == "__main__":
    sys.exit(main())
