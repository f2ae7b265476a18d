"""The per-GPU memory model against public numbers of DeepSeek-V3/R1."""

from __future__ import annotations

import pytest

from deepseek_operator.modelcfg import load_catalog_architecture
from deepseek_operator.planner.memory import (
    EngineMemorySettings,
    compute_memory,
    engine_memory_settings,
    expert_bytes,
    kv_cache_bytes_per_token,
    weight_format,
)
from deepseek_operator.planner.types import Inventory, ParallelSizes

GIB = 2**30
V3 = load_catalog_architecture("deepseek-v3")
H200 = Inventory("gpu", 8, 141 * GIB, "H200", 16, 200 * GIB)


def test_v3_fp8_weights_per_gpu_at_ep32_with_288_slots() -> None:
    """42.1 GB of weights per GPU (data-parallel attention, 9 expert slots per GPU)."""
    memory = compute_memory(
        V3,
        ParallelSizes(tensor=1, data=32, gpus_per_node=8),
        H200,
        fmt=weight_format(V3, "auto", "auto"),
        redundant_experts=32,
        engine=EngineMemorySettings(),
    )
    assert memory.slots_per_rank == 9
    assert memory.weights == pytest.approx(42.1e9, rel=0.02)


def test_mla_kv_cache_per_token() -> None:
    """61 layers × (512 + 64) values × 2 bytes = 68.6 KiB in bf16; half in fp8."""
    assert kv_cache_bytes_per_token(V3) == 61 * 576 * 2
    assert kv_cache_bytes_per_token(V3) / 1024 == pytest.approx(68.6, abs=0.05)
    assert kv_cache_bytes_per_token(V3, bytes_per_value=1) == 61 * 576


def test_one_fp8_expert_is_about_44_mb() -> None:
    assert expert_bytes(V3, weight_format(V3, "auto", "auto")) == pytest.approx(44e6, rel=0.01)
    assert expert_bytes(V3, weight_format(V3, "none", "bfloat16")) == 2 * 3 * 7168 * 2048


@pytest.mark.parametrize(
    ("quantization", "dtype", "expected"),
    [
        pytest.param("auto", "auto", "fp8", id="checkpoint-fp8"),
        pytest.param("fp8", "bfloat16", "fp8", id="explicit-fp8"),
        pytest.param("awq", "auto", "int4", id="awq"),
    ],
)
def test_weight_format_follows_the_checkpoint(quantization: str, dtype: str, expected: str) -> None:
    assert weight_format(V3, quantization, dtype).name == expected


def test_bf16_model_stays_bf16_unless_asked() -> None:
    v2 = load_catalog_architecture("deepseek-v2")
    assert weight_format(v2, "auto", "auto").name == "bfloat16"
    assert weight_format(v2, "auto", "float16").name == "float16"


def test_components_add_up_to_the_usable_memory() -> None:
    memory = compute_memory(
        V3,
        ParallelSizes(tensor=8, data=1, gpus_per_node=8),
        H200,
        fmt=weight_format(V3, "auto", "auto"),
        redundant_experts=0,
        engine=EngineMemorySettings(gpu_memory_utilization=0.9),
    )
    parts = memory.as_dict()
    assert (
        parts["weights"]
        + parts["activation_reserve"]
        + parts["runtime_reserve"]
        + parts["kv_cache"]
        + parts["free"]
        == parts["usable"]
    )
    assert parts["usable"] == int(0.9 * 141 * GIB)


def test_tensor_parallelism_splits_attention_but_not_routed_experts() -> None:
    def memory(tensor: int) -> dict[str, int]:
        sizes = ParallelSizes(tensor=tensor, data=8 // tensor, gpus_per_node=8)
        fmt = weight_format(V3, "auto", "auto")
        return compute_memory(
            V3, sizes, H200, fmt=fmt, redundant_experts=0, engine=EngineMemorySettings()
        ).as_dict()

    tp1, tp8 = memory(1), memory(8)
    assert tp1["routed_experts"] == tp8["routed_experts"]
    assert tp8["attention"] < tp1["attention"] / 4
    assert tp8["embeddings"] == tp1["embeddings"] // 8


def test_engine_settings_are_read_and_type_checked() -> None:
    settings, errors = engine_memory_settings(
        {"gpu_memory_utilization": 0.8, "kv_cache_dtype": "fp8"}, "args"
    )
    assert errors == []
    assert (settings.gpu_memory_utilization, settings.kv_cache_bytes_per_value) == (0.8, 1)
    _, errors = engine_memory_settings({"gpu_memory_utilization": "high", "kv_cache_dtype": "int2"}, "args")
    assert [error.path for error in errors] == ["args.gpu_memory_utilization", "args.kv_cache_dtype"]
