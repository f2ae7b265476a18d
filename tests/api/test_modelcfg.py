"""The built-in catalog and config parsing, checked against the models' public numbers."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from deepseek_operator.api.v1alpha1 import ModelSpec
from deepseek_operator.errors import ModelConfigError
from deepseek_operator.modelcfg import (
    ArchitectureContext,
    catalog_config,
    catalog_names,
    load_catalog_architecture,
    parse_hf_config,
    resolve_architecture,
)


@pytest.mark.parametrize(
    ("name", "layers", "moe_layers", "experts", "top_k", "heads", "quantized"),
    [
        pytest.param("deepseek-v3", 61, 58, 256, 8, 128, "fp8", id="v3"),
        pytest.param("deepseek-r1", 61, 58, 256, 8, 128, "fp8", id="r1"),
        pytest.param("deepseek-v3.1", 61, 58, 256, 8, 128, "fp8", id="v3.1"),
        pytest.param("deepseek-v2", 60, 59, 160, 6, 128, None, id="v2"),
        pytest.param("deepseek-v2-lite", 27, 26, 64, 6, 16, None, id="v2-lite"),
    ],
)
def test_catalog_shapes(
    name: str, layers: int, moe_layers: int, experts: int, top_k: int, heads: int, quantized: str | None
) -> None:
    arch = load_catalog_architecture(name)
    assert (arch.num_hidden_layers, arch.num_moe_layers) == (layers, moe_layers)
    assert (arch.n_routed_experts, arch.num_experts_per_tok, arch.num_attention_heads) == (
        experts,
        top_k,
        heads,
    )
    assert (arch.quantization.method if arch.quantization else None) == quantized
    # MLA caches 512 latent + 64 rope values per token and layer in every DeepSeek V2/V3.
    assert arch.kv_cache_values_per_token_per_layer == 576


def test_v3_fp8_uses_128_by_128_weight_blocks() -> None:
    quantization = load_catalog_architecture("deepseek-v3").quantization
    assert quantization is not None
    assert quantization.weight_block_size == (128, 128)
    assert load_catalog_architecture("deepseek-v3").experts_per_group == 32


def test_v2_lite_has_no_query_compression() -> None:
    assert load_catalog_architecture("deepseek-v2-lite").q_lora_rank is None


def test_tiny_catalog_entry_is_the_tiny_model_builders_config() -> None:
    tiny_model = pytest.importorskip("deepseek_serving.tiny_model", reason="needs the serving package")
    assert catalog_config("deepseek-tiny") == json.loads(json.dumps(tiny_model.TINY_CONFIG))


def test_every_catalog_entry_parses() -> None:
    assert {"deepseek-v3", "deepseek-r1", "deepseek-v3.1", "deepseek-v2", "deepseek-v2-lite"} <= set(
        catalog_names()
    )
    for name in catalog_names():
        assert load_catalog_architecture(name).name == name


def test_parse_reports_every_problem_by_key() -> None:
    config = catalog_config("deepseek-v3") | {"n_group": 7, "topk_group": 9, "num_experts_per_tok": 300}
    del config["kv_lora_rank"]
    with pytest.raises(ModelConfigError) as raised:
        parse_hf_config(config, name="broken")
    keys = [key for key, _ in raised.value.problems]
    assert keys == ["kv_lora_rank", "num_experts_per_tok", "n_group", "topk_group"]


@pytest.mark.parametrize(
    ("source", "expected"),
    [
        ("hf://deepseek-ai/DeepSeek-R1@main", "deepseek-r1"),
        ("hf://deepseek-ai/deepseek-v3-base", "deepseek-v3"),
        ("hf://deepseek-ai/DeepSeek-V2-Lite-Chat", "deepseek-v2-lite"),
    ],
)
def test_architecture_is_inferred_from_known_repositories(source: str, expected: str) -> None:
    result = resolve_architecture(ModelSpec(source=source), ArchitectureContext())
    assert result.architecture is not None
    assert result.architecture.name == expected


def test_file_sources_are_read_from_disk_but_not_in_cluster(tmp_path: Path) -> None:
    (tmp_path / "config.json").write_text(json.dumps(catalog_config("deepseek-v2-lite")))
    model = ModelSpec(source=f"file://{tmp_path}")
    local = resolve_architecture(model, ArchitectureContext(base_dir=Path("/")))
    assert local.architecture is not None
    assert local.architecture.n_routed_experts == 64
    in_cluster = resolve_architecture(model, ArchitectureContext())
    assert [str(error) for error in in_cluster.errors] == [
        "spec.model.source: local files cannot be read by the operator; use catalog, config or configMapRef"
    ]
