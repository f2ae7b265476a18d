"""A DeepSeek MoE architecture read from a Hugging Face `config.json`.

Only the numbers that planning and validation need are kept, with Hugging Face's own defaults
for keys older configs leave out (`DeepseekV3Config` in transformers). Every inconsistency is
reported at once, each under the `config.json` key it concerns.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from deepseek_operator.errors import ModelConfigError

__all__ = ["SUPPORTED_MODEL_TYPES", "ModelArchitecture", "QuantizationConfig", "parse_hf_config"]

SUPPORTED_MODEL_TYPES = ("deepseek_v2", "deepseek_v3", "deepseek_v32")

_REQUIRED_POSITIVE = (
    "hidden_size",
    "intermediate_size",
    "moe_intermediate_size",
    "num_hidden_layers",
    "num_attention_heads",
    "vocab_size",
    "n_routed_experts",
    "num_experts_per_tok",
    "kv_lora_rank",
    "qk_nope_head_dim",
    "qk_rope_head_dim",
    "v_head_dim",
    "max_position_embeddings",
)
# Key -> Hugging Face's default when the key is absent.
_OPTIONAL_COUNTS = {
    "n_shared_experts": 0,
    "n_group": 1,
    "topk_group": 1,
    "first_k_dense_replace": 0,
    "moe_layer_freq": 1,
    "num_nextn_predict_layers": 0,
}


@dataclass(frozen=True)
class QuantizationConfig:
    """The checkpoint's `quantization_config`."""

    method: str
    """`quant_method`, e.g. `fp8`."""
    weight_block_size: tuple[int, int] | None
    """Block of weights sharing one scale, e.g. (128, 128) for DeepSeek's fp8; None when per-tensor."""


@dataclass(frozen=True)
class ModelArchitecture:
    """The shape of a DeepSeek MoE model: what the planner sizes and validation checks against."""

    name: str
    """Catalog name or where the config came from, e.g. `deepseek-v3`, used in messages."""
    model_type: str
    hidden_size: int
    intermediate_size: int
    """Dense MLP width of the first `first_k_dense_replace` layers."""
    moe_intermediate_size: int
    """Width of one routed (and one shared) expert."""
    num_hidden_layers: int
    num_attention_heads: int
    num_key_value_heads: int
    vocab_size: int
    n_routed_experts: int
    n_shared_experts: int
    num_experts_per_tok: int
    n_group: int
    """Expert groups of the grouped top-k router (DeepSeek-V3: 8 groups of 32)."""
    topk_group: int
    first_k_dense_replace: int
    moe_layer_freq: int
    q_lora_rank: int | None
    """None when queries are projected without a low-rank bottleneck (V2-Lite)."""
    kv_lora_rank: int
    qk_nope_head_dim: int
    qk_rope_head_dim: int
    v_head_dim: int
    max_position_embeddings: int
    num_nextn_predict_layers: int
    tie_word_embeddings: bool
    torch_dtype: str
    quantization: QuantizationConfig | None

    @property
    def moe_layer_indices(self) -> tuple[int, ...]:
        """Decoder layers with routed experts, as transformers' DeepseekV3 decides them."""
        return tuple(
            layer
            for layer in range(self.num_hidden_layers)
            if layer >= self.first_k_dense_replace and layer % self.moe_layer_freq == 0
        )

    @property
    def num_moe_layers(self) -> int:
        return len(self.moe_layer_indices)

    @property
    def kv_cache_values_per_token_per_layer(self) -> int:
        """MLA caches one compressed latent plus the shared rope key per token and layer."""
        return self.kv_lora_rank + self.qk_rope_head_dim

    @property
    def experts_per_group(self) -> int:
        """Routed experts in one router group."""
        return self.n_routed_experts // self.n_group


def parse_hf_config(config: Mapping[str, Any], *, name: str) -> ModelArchitecture:
    """Read a Hugging Face `config.json` mapping of a DeepSeek V2/V3 model.

    Raises ModelConfigError listing every problem, each tagged with its `config.json` key.
    """
    problems: list[tuple[str, str]] = []
    model_type = config.get("model_type")
    if model_type not in SUPPORTED_MODEL_TYPES:
        problems.append(
            (
                "model_type",
                f"{model_type!r} is not a DeepSeek MoE model; expected one of {SUPPORTED_MODEL_TYPES}",
            )
        )

    def count(key: str, default: int | None = None) -> int:
        value = config.get(key, default)
        if isinstance(value, bool) or not isinstance(value, int):
            problems.append((key, "required" if value is None else f"expected an integer, got {value!r}"))
            return 1
        if value < 0 or (default is None and value == 0):
            problems.append((key, f"{value} must be positive"))
            return 1
        return value

    sizes = {key: count(key) for key in _REQUIRED_POSITIVE}
    optional = {key: count(key, default) for key, default in _OPTIONAL_COUNTS.items()}
    q_lora_rank = config.get("q_lora_rank")
    if q_lora_rank is not None:
        q_lora_rank = count("q_lora_rank")
    num_key_value_heads = count("num_key_value_heads", sizes["num_attention_heads"])

    if sizes["num_experts_per_tok"] > sizes["n_routed_experts"]:
        problems.append(
            (
                "num_experts_per_tok",
                f"{sizes['num_experts_per_tok']} exceeds n_routed_experts={sizes['n_routed_experts']}",
            )
        )
    if optional["n_group"] and sizes["n_routed_experts"] % optional["n_group"]:
        problems.append(
            ("n_group", f"{optional['n_group']} does not divide n_routed_experts={sizes['n_routed_experts']}")
        )
    if optional["topk_group"] > optional["n_group"]:
        problems.append(("topk_group", f"{optional['topk_group']} exceeds n_group={optional['n_group']}"))
    if optional["moe_layer_freq"] == 0:
        problems.append(("moe_layer_freq", "0 must be positive"))
    if optional["first_k_dense_replace"] >= sizes["num_hidden_layers"]:
        problems.append(
            (
                "first_k_dense_replace",
                f"{optional['first_k_dense_replace']} leaves no MoE layer among "
                f"num_hidden_layers={sizes['num_hidden_layers']}",
            )
        )
    quantization = _parse_quantization(config.get("quantization_config"), problems)
    if problems:
        raise ModelConfigError(problems, origin=name)
    return ModelArchitecture(
        name=name,
        model_type=str(model_type),
        q_lora_rank=q_lora_rank,
        num_key_value_heads=num_key_value_heads,
        tie_word_embeddings=bool(config.get("tie_word_embeddings", False)),
        torch_dtype=str(config.get("torch_dtype") or config.get("dtype") or "bfloat16"),
        quantization=quantization,
        **sizes,
        **optional,
    )


def _parse_quantization(raw: object, problems: list[tuple[str, str]]) -> QuantizationConfig | None:
    if raw is None:
        return None
    if not isinstance(raw, Mapping) or not isinstance(raw.get("quant_method"), str):
        problems.append(("quantization_config", "expected a mapping with a quant_method string"))
        return None
    block = raw.get("weight_block_size")
    if block is not None and not (
        isinstance(block, list | tuple)
        and len(block) == 2
        and all(isinstance(b, int) and b > 0 for b in block)
    ):
        problems.append(
            ("quantization_config.weight_block_size", f"expected two positive integers, got {block!r}")
        )
        block = None
    return QuantizationConfig(
        method=raw["quant_method"], weight_block_size=(block[0], block[1]) if block else None
    )
