"""`dsd bench eplb`'s rows: stand-in references and a fake clock; the CLI with a load file."""

from __future__ import annotations

import json
from itertools import count
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from deepseek_operator.bench.eplb import (
    BENCH_GROUPS,
    REFERENCE_NAMES,
    BenchLoad,
    _port_references,
    format_eplb_bench,
    run_eplb_bench,
)
from deepseek_operator.cli import app
from deepseek_operator.planner.eplb import DECODE, PREFILL, EplbTopology
from deepseek_operator.planner.eplb_load import dump_expert_load, lognormal_expert_load, zipf_expert_load


def _fake_clock() -> object:
    calls = count()
    return lambda: float(next(calls)) * 1e-3  # every reading 1 ms later than the last


def test_bench_rows_with_our_port_as_reference() -> None:
    extra = BenchLoad("file-zipf", zipf_expert_load(2, 256, exponent=1.2, seed=9)[None])
    rows = run_eplb_bench(
        clock=_fake_clock(),  # type: ignore[arg-type]
        num_layers=2,
        num_windows=6,
        ours_runs=1,
        loads=[extra],
        reference="port",
    )
    steps = [r for r in rows if r["kind"] == "step"]
    assert len(steps) == 2 * 3 * 5  # regimes × groups × (3 seeded, the trace, the file)
    assert [r["kind"] for r in rows[len(steps) :]] == ["migration"] * 6
    assert {r["case"] for r in rows if r["kind"] == "migration"} == {
        f"{g.name}/{regime}/drifting-trace" for g in BENCH_GROUPS for regime in ("decode", "prefill")
    }
    for row in steps:
        assert row["ours_ms_p50"] == pytest.approx(1.0)
        assert row["reference_source"] == "port"
        if row["scored_on"] == "itself":  # planned and scored on the same load: never slower
            assert row["never_slower"], row["case"]
        # No placement's step is under the compute floor (the cost tests check it per GPU).
        for name in ("ours", *REFERENCE_NAMES):
            if row[f"{name}_step_us"] is not None:
                assert 0 < row["compute_floor_us"] <= row[f"{name}_step_us"], (row["case"], name)
        hier = row["nodes"] in (4, 8)
        assert (row["deepseek_hierarchical_step_us"] is not None) == hier
        assert row["vllm_default_step_us"] == (
            row["deepseek_hierarchical_step_us"] if hier else row["deepseek_global_step_us"]
        )
    file_rows = [r for r in steps if r["load"] == "file-zipf"]
    assert all(r["skew"] >= 5.0 for r in file_rows)
    assert {r["gain_goal"] is None for r in file_rows} == {False}  # multi-node and skewed: judged
    json.dumps(rows)  # JSON-ready
    text = format_eplb_bench(rows)
    assert "Predicted MoE layer step" in text
    assert "64gpu/8node/320slot/prefill/zipf-1.0" in text
    assert "Re-planning from the map in service" in text


def test_bench_takes_stand_in_references() -> None:
    def identity(load: np.ndarray, topology: EplbTopology, old: np.ndarray | None) -> np.ndarray:
        return np.tile(
            np.arange(topology.num_physical_experts) % topology.num_logical_experts, (load.shape[0], 1)
        )

    rows = run_eplb_bench(
        clock=lambda: 0.0,
        num_layers=2,
        num_windows=5,
        ours_runs=1,
        regimes=[DECODE],
        reference=dict.fromkeys(REFERENCE_NAMES, identity),
        migration=False,
    )
    assert len(rows) == 3 * 4
    assert all(r["reference_source"] == "given" for r in rows)
    assert all(r["gain_vs_vllm"] is not None and r["gain_vs_vllm"] > 0 for r in rows if r["skew"] >= 5)


def test_port_references_are_deepseeks_policies() -> None:
    topology = EplbTopology(256, 8, 4, 32, 288)
    load = lognormal_expert_load(2, 256, sigma=1.0, seed=0)
    refs = _port_references()
    np.testing.assert_array_equal(
        refs["vllm_default"](load, topology, None), refs["deepseek_hierarchical"](load, topology, None)
    )
    assert not np.array_equal(
        refs["deepseek_global"](load, topology, None), refs["deepseek_hierarchical"](load, topology, None)
    )


def test_cli_bench_with_a_load_file_and_a_trace_file(tmp_path: Path) -> None:
    static = tmp_path / "static.json"
    static.write_text(json.dumps(dump_expert_load(zipf_expert_load(2, 256, exponent=1.0, seed=4))))
    trace = tmp_path / "trace.json"
    trace.write_text(
        json.dumps([dump_expert_load(lognormal_expert_load(2, 256, sigma=1.0, seed=s)) for s in range(6)])
    )
    result = CliRunner().invoke(
        app,
        [
            "bench", "eplb", "--json", "--layers", "2", "--regime", "prefill", "--reference", "port",
            "--no-migration", "--load-file", str(static), "--load-file", str(trace),
        ],
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    rows = json.loads(result.output)
    by_load = {row["load"]: row for row in rows if row["gpus"] == 32}
    assert (by_load["static.json"]["scored_on"], by_load["static.json"]["windows_scored"]) == ("itself", 1)
    # Six windows, three of warm-up: planned on windows 0..3 and 0..4, scored on 4 and 5.
    assert (by_load["trace.json"]["scored_on"], by_load["trace.json"]["windows_scored"]) == ("next window", 2)
    assert {row["regime"] for row in rows} == {PREFILL.name}


def test_cli_bench_names_a_bad_load_file(tmp_path: Path) -> None:
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps(dump_expert_load(np.ones((3, 256)))))
    result = CliRunner().invoke(app, ["bench", "eplb", "--layers", "2", "--load-file", str(bad)])
    assert result.exit_code == 2
    assert "layers: expected 2 MoE layers, got 3" in result.output
