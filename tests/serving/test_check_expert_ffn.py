"""The GPU check script's pure parts on CPU (the timing itself needs a GPU: scripts/gpu/)."""

from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path
from types import ModuleType

import numpy as np
import pytest

from deepseek_serving.eplb.cost import DECODE, PREFILL, MoeShape, StepCostModel, gpu_figures
from deepseek_serving.eplb.placement import EplbTopology

SCRIPT = Path(__file__).parents[2] / "scripts" / "gpu" / "check_expert_ffn.py"


@pytest.fixture(scope="module")
def check() -> ModuleType:
    spec = importlib.util.spec_from_file_location("check_expert_ffn", SCRIPT)
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


@pytest.mark.parametrize(
    ("device", "expected"),
    [
        pytest.param("NVIDIA H100 80GB HBM3", "H100", id="h100"),
        pytest.param("NVIDIA H200", "H200", id="h200"),
        pytest.param("NVIDIA H20", "H20", id="h20"),
        pytest.param("NVIDIA H800", "H800", id="h800"),
        pytest.param("NVIDIA A100-SXM4-40GB", "A100-40GB", id="a100-40"),
        pytest.param("NVIDIA A100-SXM4-80GB", "A100", id="a100-80"),
        pytest.param("AMD Instinct MI300X", "MI300X", id="mi300x"),
        pytest.param("NVIDIA GeForce RTX 4090", None, id="unknown"),
    ],
)
def test_detect_gpu_type(check: ModuleType, device: str, expected: str | None) -> None:
    assert check.detect_gpu_type(device) == expected


def test_the_seeded_load_is_the_operators(check: ModuleType) -> None:
    from deepseek_operator.planner.eplb_load import lognormal_expert_load

    np.testing.assert_allclose(
        check.lognormal_load(3, 256, 1.0, 5), lognormal_expert_load(3, 256, sigma=1.0, seed=5)
    )


def test_plan_cases_takes_each_layers_slowest_gpu(check: ModuleType) -> None:
    shape = MoeShape(expert_weight_bytes=3 * 7168 * 2048)
    topology = EplbTopology(256, 8, 4, 32, 288)
    load = check.lognormal_load(2, 256, 1.0, 0)
    cases = check.plan_cases(
        lambda regime: StepCostModel(gpu_figures()["H100"], shape, regime), topology, load
    )
    assert [(c.regime, c.placement, c.layer) for c in cases] == [
        (regime, placement, layer)
        for regime in ("decode", "prefill")
        for placement in ("ours", "vllm-default")
        for layer in (0, 1)
    ]
    for case in cases:
        assert len(case.tokens) == 9
        model = StepCostModel(gpu_figures()["H100"], shape, DECODE if case.regime == "decode" else PREFILL)
        assert case.predicted_us == pytest.approx(
            model.slot_time_us(np.array(case.tokens, float), expected=False).sum()
        )
        assert case.measured_us is None
        assert case.within_goal is None
    decode_ours = [c for c in cases if c.regime == "decode" and c.placement == "ours"]
    assert all(sum(t > 0 for t in c.tokens) <= 9 for c in decode_ours)
    assert "predicted µs" in check.format_report(cases, "title")


def test_cpu_run_of_the_whole_script(check: ModuleType, capsys: pytest.CaptureFixture[str]) -> None:
    pytest.importorskip("torch")
    status = check.main(
        [
            "--allow-cpu", "--gpu-type", "H100", "--dtype", "bf16", "--hidden", "64", "--intermediate", "32",
            "--experts", "16", "--groups", "4", "--gpus", "4", "--nodes", "2", "--slots", "20",
            "--layers", "1", "--reps", "2", "--warmup", "1", "--json",
        ]
    )  # fmt: skip
    cases = json.loads(capsys.readouterr().out)
    assert status in (0, 1)  # a CPU is not the GPU the figures describe
    assert len(cases) == 4
    assert all(c["measured_us"] > 0 and c["predicted_us"] > 0 for c in cases)


def test_without_a_gpu_it_refuses(check: ModuleType, capsys: pytest.CaptureFixture[str]) -> None:
    torch = pytest.importorskip("torch")
    if torch.cuda.is_available():
        pytest.skip("a GPU is present")
    assert check.main([]) == 2
    assert "no GPU" in capsys.readouterr().err
