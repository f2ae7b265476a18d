"""`dsd plan`: tables, the JSON contract, the SVG, overrides and errors."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from deepseek_operator.cli import app
from deepseek_operator.planner.eplb_load import dump_expert_load, zipf_expert_load
from tests.api.resources import EXAMPLES

runner = CliRunner()
R1_H100 = str(EXAMPLES / "deepseek-r1-h100.yaml")


def test_json_carries_the_documented_keys() -> None:
    result = runner.invoke(app, ["plan", R1_H100, "--json"])
    assert result.exit_code == 0, result.output
    plan = json.loads(result.output)
    assert {
        "tensor_parallel_size",
        "data_parallel_size",
        "expert_parallel_size",
        "nodes_per_group",
        "groups",
        "per_gpu_memory_bytes",
        "kv_cache_tokens_per_group",
        "fits",
        "eplb",
    } <= set(plan)
    assert (plan["tensor_parallel_size"], plan["data_parallel_size"], plan["expert_parallel_size"]) == (
        8,
        2,
        16,
    )
    assert plan["nodes_per_group"] == 2
    assert plan["fits"] is True
    assert 0.99 <= plan["eplb"]["balancedness"] <= 1.0
    assert len(plan["eplb"]["physical_to_logical"]) == 58
    assert len(plan["eplb"]["physical_to_logical"][0]) == 288
    # The map is judged by predicted step time (decode on H100 by default), vLLM's default beside it.
    eplb = plan["eplb"]
    assert (eplb["regime"], eplb["tokens_per_gpu"], eplb["gpu_figures"]) == ("decode", 128, "H100")
    predicted, default = eplb["predicted"], eplb["vllm_default"]
    assert default["policy"] == "deepseek-hierarchical"
    assert predicted["step_us"] <= default["step_us"]
    assert predicted["step_us"] == pytest.approx(
        predicted["compute_us"] + predicted["nvlink_us"] + predicted["rdma_us"]
    )
    assert {c["policy"] for c in eplb["candidates"]} >= {"hierarchical", "global", "deepseek-global"}
    assert len(eplb["layer_policies"]) == 58


def test_prefill_regime_and_gpu_type_change_the_prediction() -> None:
    decode = json.loads(runner.invoke(app, ["plan", R1_H100, "--json"]).output)["eplb"]
    h200 = json.loads(runner.invoke(app, ["plan", R1_H100, "--json", "--gpu-type", "H200"]).output)["eplb"]
    assert h200["gpu_figures"] == "H200"
    # Decode reads weights: 4.8 / 3.35 TB/s faster on H200.
    assert h200["predicted"]["compute_us"] == pytest.approx(
        decode["predicted"]["compute_us"] * 3.35 / 4.8, rel=1e-3
    )


def test_overrides_replan_on_other_nodes() -> None:
    result = runner.invoke(app, ["plan", R1_H100, "--json", "--gpu-type", "H200"])
    assert result.exit_code == 0, result.output
    assert json.loads(result.output)["per_gpu_memory_bytes"]["device_memory"] == 140 * 2**30


def test_a_plan_that_does_not_fit_fails_with_the_reason() -> None:
    result = runner.invoke(app, ["plan", R1_H100, "--gpu-memory", "40GiB"])
    assert result.exit_code == 1
    assert "spec.parallelism.dataParallelSize: TP=8 DP=2 EP=16" in result.output
    assert "does not fit" in result.output


def test_tables_and_svg_with_load_statistics(tmp_path: Path) -> None:
    stats = tmp_path / "load.json"
    stats.write_text(json.dumps(dump_expert_load(zipf_expert_load(58, 256, exponent=1.0, seed=1))))
    svg = tmp_path / "map.svg"
    result = runner.invoke(
        app, ["plan", R1_H100, "--load-stats", str(stats), "--svg", str(svg)], env={"COLUMNS": "200"}
    )
    assert result.exit_code == 0, result.output
    for heading in (
        "Plan for r1, version v2",
        "Memory per GPU",
        "Ray placement:",
        "Predicted MoE layer step",
        "DeepSeek hierarchical (vLLM's default)",
        "planned map",
        "Expert balance",
    ):
        assert heading in result.output
    assert f"load: {stats}" in result.output
    assert svg.read_text().startswith("<svg")


def test_bad_load_statistics_name_the_field(tmp_path: Path) -> None:
    stats = tmp_path / "load.json"
    document = dump_expert_load(zipf_expert_load(58, 256, exponent=1.0, seed=1))
    document["layers"] = document["layers"][:57]  # type: ignore[index]
    stats.write_text(json.dumps(document))
    result = runner.invoke(app, ["plan", R1_H100, "--load-stats", str(stats)])
    assert result.exit_code == 1
    assert f"{stats}: layers: expected 58 MoE layers, got 57" in result.output
