"""`dsd bench eplb`: our EPLB against vLLM's own rebalancing algorithm on the same statistics.

Three measurements, each one kind of row in `run_eplb_bench`'s result:

``balance`` (one row per case)
    DeepSeek-V3's shape (256 experts, 58 MoE layers, 8 expert groups) on 32 GPUs / 4 nodes /
    288 slots, 64 GPUs / 8 nodes / 320 slots and 144 GPUs / 18 nodes / 288 slots, under
    log-normal sigma 0.5 and 1.0 and Zipf(1.0) loads (`eplb_load` generators, seeded). Both
    balancedness values (vLLM's definition), the bound, both runtimes (p50) and the ratios.
    vLLM's reference is `DefaultEplbPolicy.rebalance_experts` from the installed vLLM (the port
    of DeepSeek's EPLB), called exactly as vLLM's `EplbState.rearrange` calls it.
``predictive``
    A drifting trace (`eplb_load.drifting_expert_load_trace`, seeded): plan at window ``i``,
    score on window ``i + 1``. Ours plans on the EMA of the windows so far (half-life 1
    window); the row also shows ours on the raw window, vLLM on the raw window and on the same
    EMA, and the ceiling of planning on the generator's own expectation of window ``i + 1``.
``migration`` (one row per group shape)
    Along the same trace, each window re-plans from the placement in service: ours with
    ``previous=`` versus ours fresh, and vLLM's rebalance with its old map (what vLLM does in
    production). Moves are counted as vLLM transfers them (`count_expert_moves`), in GB of fp8
    DeepSeek-V3 experts (44 MB each) per rebalance.

Purity: the clock is a parameter (STYLE.md rule 2: pass ``time.perf_counter``); vLLM and torch
are imported lazily inside `_vllm_reference`, only when the reference is requested.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TypeVar

import numpy as np
import numpy.typing as npt

from deepseek_operator.planner.eplb import (
    EplbTopology,
    compute_balancedness,
    compute_gpu_load,
    count_expert_moves,
    plan_expert_placement,
)
from deepseek_operator.planner.eplb_load import (
    drifting_expert_load_trace,
    lognormal_expert_load,
    smooth_expert_load,
    zipf_expert_load,
)
from deepseek_operator.planner.eplb_view import EXPERT_BYTES_FP8_DEEPSEEK_V3

__all__ = ["BENCH_GROUPS", "BENCH_LOADS", "format_eplb_bench", "run_eplb_bench"]

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]
_T = TypeVar("_T")
Reference = Callable[[FloatArray, EplbTopology, IntArray | None], IntArray]
"""vLLM's policy as a function: (load, topology, old physical-to-logical or None) -> map."""

NUM_LAYERS, NUM_EXPERTS, NUM_GROUPS = 58, 256, 8
"""DeepSeek-V3: 58 MoE layers of 256 routed experts in 8 groups."""


@dataclass(frozen=True, slots=True)
class BenchGroup:
    """One EP group shape of the benchmark."""

    gpus: int
    nodes: int
    slots: int

    @property
    def name(self) -> str:
        return f"{self.gpus}gpu/{self.nodes}node/{self.slots}slot"

    def topology(self) -> EplbTopology:
        return EplbTopology(NUM_EXPERTS, NUM_GROUPS, self.nodes, self.gpus, self.slots)


BENCH_GROUPS = (BenchGroup(32, 4, 288), BenchGroup(64, 8, 320), BenchGroup(144, 18, 288))
"""The issue's group shapes."""

BENCH_LOADS: dict[str, Callable[[int, int], FloatArray]] = {
    "lognormal-0.5": lambda layers, seed: lognormal_expert_load(layers, NUM_EXPERTS, sigma=0.5, seed=seed),
    "lognormal-1.0": lambda layers, seed: lognormal_expert_load(layers, NUM_EXPERTS, sigma=1.0, seed=seed),
    "zipf-1.0": lambda layers, seed: zipf_expert_load(layers, NUM_EXPERTS, exponent=1.0, seed=seed),
}
"""Load generators by name: (layers, seed) -> [layers, 256]."""

GOAL_MARGIN = 0.005
"""Ours must reach vLLM's balancedness minus this in every case."""
GOAL_RESCUE = 0.90
"""Ours must reach this where DeepSeek's hierarchical policy collapses (one group per node)."""
GOAL_P50_MS = 50.0
GOAL_NEXT_WINDOW = 0.70
GOAL_MOVE_RATIO = 0.5
SMOOTHING_HALF_LIFE = 1.0
"""Half-life (windows) of the EMA ours plans on in the predictive and migration rows."""
TRACE_WARMUP = 3
"""Windows of history before the first scored plan."""


def run_eplb_bench(
    *,
    clock: Callable[[], float],
    seed: int = 0,
    num_layers: int = NUM_LAYERS,
    num_windows: int = 16,
    ours_runs: int = 7,
    reference_runs: int = 3,
    reference: Reference | bool | None = True,
) -> list[dict[str, object]]:
    """Run the benchmark; one dict per row (JSON-ready).

    Parameters:
        clock: seconds, monotonic (pass ``time.perf_counter``).
        seed: seeds every generator (case ``k`` uses ``seed + k``).
        num_layers: MoE layers (58 for DeepSeek-V3; fewer for a quick run).
        num_windows: windows of the drifting trace.
        ours_runs, reference_runs: timed repetitions (p50 is reported).
        reference: True: vLLM's installed policy (None columns if vLLM is missing); False or
            None: skip it; or a callable standing in for it (tests).

    Returns:
        Rows with ``kind`` ``balance``, ``predictive`` or ``migration`` (module docstring);
        every row has ``case`` and ``meets_goal`` (None where it has no goal or no reference).
    """
    ref = _vllm_reference() if reference is True else (reference or None)
    rows: list[dict[str, object]] = []
    for g_index, group in enumerate(BENCH_GROUPS):
        topology = group.topology()
        for l_index, (load_name, make_load) in enumerate(BENCH_LOADS.items()):
            load = make_load(num_layers, seed + 3 * g_index + l_index)
            rows.append(_balance_row(group, topology, load_name, load, clock, ours_runs, reference_runs, ref))
    trace = drifting_expert_load_trace(num_windows, num_layers, NUM_EXPERTS, seed=seed)
    rows.append(_predictive_row(BENCH_GROUPS[0], trace.windows, trace.expected_next, ref))
    for group in BENCH_GROUPS:
        rows.append(_migration_row(group, trace.windows, clock, ref))
    return rows


def _balance_row(
    group: BenchGroup,
    topology: EplbTopology,
    load_name: str,
    load: FloatArray,
    clock: Callable[[], float],
    ours_runs: int,
    reference_runs: int,
    ref: Reference | None,
) -> dict[str, object]:
    ours_ms, placement = _timed(lambda: plan_expert_placement(load, topology), clock, ours_runs)
    row: dict[str, object] = {
        "kind": "balance",
        "case": f"{group.name}/{load_name}",
        "gpus": group.gpus,
        "nodes": group.nodes,
        "slots": group.slots,
        "load": load_name,
        "ours_policy": placement.policy,
        "ours_balancedness": placement.balancedness,
        "vllm_policy": "hierarchical" if NUM_GROUPS % group.nodes == 0 else "global",
        "vllm_balancedness": None,
        "bound": placement.balancedness_bound,
        "ours_ms_p50": ours_ms,
        "vllm_ms_p50": None,
        "balancedness_ratio": None,
        "speedup": None,
        "meets_goal": None,
    }
    if ref is not None:
        vllm_ms, theirs = _timed(lambda: ref(load, topology, None), clock, reference_runs)
        vllm_balance = compute_balancedness(compute_gpu_load(theirs, load, topology.num_gpus))
        collapse = NUM_GROUPS // group.nodes == 1
        row |= {
            "vllm_balancedness": vllm_balance,
            "vllm_ms_p50": vllm_ms,
            "balancedness_ratio": placement.balancedness / vllm_balance,
            "speedup": vllm_ms / ours_ms if ours_ms > 0 else None,
            "meets_goal": bool(
                placement.balancedness >= vllm_balance - GOAL_MARGIN
                and ours_ms <= GOAL_P50_MS
                and (not collapse or placement.balancedness >= GOAL_RESCUE)
            ),
        }
    return row


def _predictive_row(
    group: BenchGroup, windows: FloatArray, expected_next: FloatArray, ref: Reference | None
) -> dict[str, object]:
    topology = group.topology()
    scored = range(TRACE_WARMUP, len(windows) - 1)

    def next_window(plan: Callable[[int], IntArray]) -> float:
        return float(np.mean([_balance(plan(i), windows[i + 1], topology) for i in scored]))

    def ours(load: FloatArray) -> IntArray:
        return plan_expert_placement(load, topology).physical_to_logical

    smoothed = {
        i: smooth_expert_load(windows[: i + 1], half_life_windows=SMOOTHING_HALF_LIFE) for i in scored
    }
    ours_next = next_window(lambda i: ours(smoothed[i]))
    row: dict[str, object] = {
        "kind": "predictive",
        "case": f"{group.name}/drifting-trace",
        "gpus": group.gpus,
        "nodes": group.nodes,
        "slots": group.slots,
        "windows_scored": len(scored),
        "ours_next_balancedness": ours_next,
        "ours_raw_next_balancedness": next_window(lambda i: ours(windows[i])),
        "vllm_next_balancedness": None,
        "vllm_ema_next_balancedness": None,
        "ceiling_next_balancedness": next_window(lambda i: ours(expected_next[i])),
        "goal": GOAL_NEXT_WINDOW,
        "meets_goal": ours_next >= GOAL_NEXT_WINDOW,
    }
    if ref is not None:
        row["vllm_next_balancedness"] = next_window(lambda i: ref(windows[i], topology, None))
        row["vllm_ema_next_balancedness"] = next_window(lambda i: ref(smoothed[i], topology, None))
    return row


def _migration_row(
    group: BenchGroup, windows: FloatArray, clock: Callable[[], float], ref: Reference | None
) -> dict[str, object]:
    topology = group.topology()
    gb = EXPERT_BYTES_FP8_DEEPSEEK_V3 / 1e9
    fresh_moves, replan_moves, fresh_bal, replan_bal, replan_ms = [], [], [], [], []
    ref_moves: list[int] = []
    in_service = plan_expert_placement(windows[0], topology).physical_to_logical
    ref_service = ref(windows[0], topology, None) if ref is not None else None
    for i in range(1, len(windows)):
        load = smooth_expert_load(windows[: i + 1], half_life_windows=SMOOTHING_HALF_LIFE)
        fresh = plan_expert_placement(load, topology)
        start = clock()
        replan = plan_expert_placement(load, topology, previous=in_service)
        replan_ms.append((clock() - start) * 1e3)
        fresh_moves.append(count_expert_moves(in_service, fresh.physical_to_logical, topology.slots_per_gpu))
        replan_moves.append(int(replan.moved_replicas or 0))
        fresh_bal.append(fresh.balancedness)
        replan_bal.append(replan.balancedness)
        in_service = replan.physical_to_logical
        if ref is not None and ref_service is not None:
            theirs = ref(windows[i], topology, ref_service)
            ref_moves.append(count_expert_moves(ref_service, theirs, topology.slots_per_gpu))
            ref_service = theirs
    ratio = float(np.sum(replan_moves) / max(np.sum(fresh_moves), 1))
    balance_gap = float(np.mean(fresh_bal) - np.mean(replan_bal))
    return {
        "kind": "migration",
        "case": f"{group.name}/drifting-trace",
        "gpus": group.gpus,
        "nodes": group.nodes,
        "slots": group.slots,
        "rebalances": len(replan_moves),
        "fresh_balancedness": float(np.mean(fresh_bal)),
        "replan_balancedness": float(np.mean(replan_bal)),
        "fresh_gb_per_rebalance": float(np.mean(fresh_moves)) * gb,
        "replan_gb_per_rebalance": float(np.mean(replan_moves)) * gb,
        "vllm_gb_per_rebalance": float(np.mean(ref_moves)) * gb if ref_moves else None,
        "move_ratio": ratio,
        "replan_ms_p50": float(np.median(replan_ms)),
        "meets_goal": ratio <= GOAL_MOVE_RATIO and abs(balance_gap) <= 0.01,
    }


def _balance(physical_to_logical: IntArray, load: FloatArray, topology: EplbTopology) -> float:
    return compute_balancedness(compute_gpu_load(physical_to_logical, load, topology.num_gpus))


def _timed(run: Callable[[], _T], clock: Callable[[], float], repeats: int) -> tuple[float, _T]:
    """(p50 milliseconds over ``repeats`` runs, the last result)."""
    times, result = [], run()  # one untimed warm-up run
    for _ in range(max(repeats, 1)):
        start = clock()
        result = run()
        times.append((clock() - start) * 1e3)
    return float(np.median(times)), result


def _vllm_reference() -> Reference | None:
    """vLLM's installed EPLB policy, called as `EplbState.rearrange` calls it; None without vLLM."""
    try:
        import torch
        from vllm.distributed.eplb.policy.default import DefaultEplbPolicy
    except ImportError:
        return None

    def rebalance(load: FloatArray, topology: EplbTopology, old: IntArray | None) -> IntArray:
        result = DefaultEplbPolicy.rebalance_experts(
            torch.from_numpy(np.ascontiguousarray(load)),
            topology.num_physical_experts,
            topology.num_expert_groups,
            topology.num_nodes,
            topology.num_gpus,
            None if old is None else torch.from_numpy(np.ascontiguousarray(old)),
        )
        mapped: IntArray = result.numpy().astype(np.int64)
        return mapped

    return rebalance


# --------------------------------------------------------------------------------------------
# Plain-text rendering (the CLI draws its own rich table from the same rows).
# --------------------------------------------------------------------------------------------

_BALANCE_COLUMNS = (
    ("case", "case", "{}"),
    ("ours policy", "ours_policy", "{}"),
    ("ours bal", "ours_balancedness", "{:.4f}"),
    ("vllm bal", "vllm_balancedness", "{:.4f}"),
    ("bound", "bound", "{:.4f}"),
    ("ours ms", "ours_ms_p50", "{:.1f}"),
    ("vllm ms", "vllm_ms_p50", "{:.1f}"),
    ("bal ratio", "balancedness_ratio", "{:.3f}"),
    ("speedup", "speedup", "{:.2f}x"),
    ("goal", "meets_goal", "{}"),
)
_PREDICTIVE_COLUMNS = (
    ("case", "case", "{}"),
    ("ours next (EMA)", "ours_next_balancedness", "{:.4f}"),
    ("ours next (raw)", "ours_raw_next_balancedness", "{:.4f}"),
    ("vllm next (raw)", "vllm_next_balancedness", "{:.4f}"),
    ("vllm next (EMA)", "vllm_ema_next_balancedness", "{:.4f}"),
    ("ceiling", "ceiling_next_balancedness", "{:.4f}"),
    ("goal", "meets_goal", "{}"),
)
_MIGRATION_COLUMNS = (
    ("case", "case", "{}"),
    ("fresh bal", "fresh_balancedness", "{:.4f}"),
    ("replan bal", "replan_balancedness", "{:.4f}"),
    ("fresh GB", "fresh_gb_per_rebalance", "{:.1f}"),
    ("replan GB", "replan_gb_per_rebalance", "{:.1f}"),
    ("vllm GB", "vllm_gb_per_rebalance", "{:.1f}"),
    ("moved ratio", "move_ratio", "{:.3f}"),
    ("replan ms", "replan_ms_p50", "{:.1f}"),
    ("goal", "meets_goal", "{}"),
)


def format_eplb_bench(rows: Sequence[dict[str, object]]) -> str:
    """The rows as three plain-text tables (balance, predictive, migration)."""
    sections = []
    for kind, columns, heading in (
        ("balance", _BALANCE_COLUMNS, "Balancedness and runtime (p50) per full rebalance"),
        ("predictive", _PREDICTIVE_COLUMNS, "Next-window balancedness on the drifting trace"),
        (
            "migration",
            _MIGRATION_COLUMNS,
            "Re-planning from the placement in service (GB moved per rebalance)",
        ),
    ):
        table = [[title for title, _, _ in columns]]
        for row in rows:
            if row["kind"] == kind:
                table.append(
                    ["-" if row.get(key) is None else fmt.format(row[key]) for _, key, fmt in columns]
                )
        widths = [max(len(line[i]) for line in table) for i in range(len(columns))]
        lines = [
            "  ".join(cell.ljust(w) for cell, w in zip(line, widths, strict=True)).rstrip() for line in table
        ]
        sections.append("\n".join([heading, *lines]))
    return "\n\n".join(sections) + "\n"
