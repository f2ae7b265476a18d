"""`dsd bench eplb`'s rows, with a stand-in for vLLM's reference and a fake clock."""

from __future__ import annotations

import json
from itertools import count

import numpy as np
import pytest

from deepseek_operator.bench.eplb import BENCH_GROUPS, format_eplb_bench, run_eplb_bench
from deepseek_operator.planner.eplb import EplbTopology


def test_bench_rows_with_a_stand_in_reference() -> None:
    calls = count()

    def clock() -> float:
        return float(next(calls)) * 1e-3  # every reading 1 ms later than the last

    def reference(load: np.ndarray, topology: EplbTopology, old: np.ndarray | None) -> np.ndarray:
        identity = np.arange(topology.num_physical_experts) % topology.num_logical_experts
        return np.tile(identity, (load.shape[0], 1))

    rows = run_eplb_bench(
        clock=clock, num_layers=2, num_windows=6, ours_runs=1, reference_runs=1, reference=reference
    )
    assert [r["kind"] for r in rows] == ["balance"] * 9 + ["predictive"] + ["migration"] * 3
    assert {r["case"] for r in rows if r["kind"] == "migration"} == {
        f"{g.name}/drifting-trace" for g in BENCH_GROUPS
    }
    balance = rows[0]
    assert balance["ours_ms_p50"] == pytest.approx(1.0)
    assert balance["speedup"] == pytest.approx(1.0)
    assert isinstance(balance["ours_balancedness"], float)
    assert balance["ours_balancedness"] >= balance["vllm_balancedness"]  # type: ignore[operator]
    json.dumps(rows)  # JSON-ready
    text = format_eplb_bench(rows)
    assert "Next-window balancedness" in text
    assert "64gpu/8node/320slot/zipf-1.0" in text


def test_bench_without_reference_leaves_its_columns_empty() -> None:
    rows = run_eplb_bench(
        clock=lambda: 0.0, num_layers=2, num_windows=6, ours_runs=1, reference_runs=1, reference=False
    )
    assert all(r.get("vllm_balancedness") is None for r in rows if r["kind"] == "balance")
    assert all(r["meets_goal"] is None for r in rows if r["kind"] == "balance")
    assert "-" in format_eplb_bench(rows)
