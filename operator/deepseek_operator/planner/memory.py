"""Memory fit of one rank: weights by component, KV-cache capacity, reserves and margin.

The model follows how vLLM lays a DeepSeek model out on a rank:
- MLA attention: the low-rank down projections (`q_a_proj`, `kv_a_proj_with_mqa`) are replicated
  on every tensor-parallel rank, the per-head projections (`q_b_proj`/`q_proj`, `kv_b_proj`,
  `o_proj`) are split over them;
- dense MLPs (the first `first_k_dense_replace` layers), shared experts, embeddings and the LM
  head are split over tensor-parallel ranks;
- routed experts are not split: with `enable_expert_parallel` each rank holds whole experts,
  `slots_per_rank` of them per MoE layer (logical + redundant slots ÷ ranks);
- the router gate stays in bf16 and is replicated;
- the MLA KV cache holds `kv_lora_rank + qk_rope_head_dim` values per token and layer, and every
  tensor-parallel rank of an attention replica keeps the whole latent (it is shared by all
  heads), so a group caches `data_parallel_size × tokens per rank`.

Weights in fp8 (DeepSeek's block quantization) take one byte per parameter plus one fp32 scale
per `128 × 128` block; embeddings, LM head, gate and norms stay in bf16. 4-bit AWQ/GPTQ take half
a byte plus an fp16 scale and zero per group of 128.

Checks against public numbers (tests/planner/test_memory.py): DeepSeek-V3 fp8 at EP32 with 288
slots holds 42.0 GB of weights per GPU; its KV cache is 68.6 KiB per token in bf16.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal

from deepseek_operator.errors import FieldError
from deepseek_operator.modelcfg import ModelArchitecture
from deepseek_operator.planner.types import Inventory, ParallelSizes

__all__ = [
    "DEFAULT_GPU_MEMORY_UTILIZATION",
    "DEFAULT_MAX_NUM_BATCHED_TOKENS",
    "EngineMemorySettings",
    "MemoryBreakdown",
    "WeightFormat",
    "compute_memory",
    "engine_memory_settings",
    "expert_bytes",
    "kv_cache_bytes_per_token",
    "weight_format",
]

GIB = 2**30
DEFAULT_GPU_MEMORY_UTILIZATION = 0.9
"""vLLM's default share of GPU memory the engine may use."""
DEFAULT_MAX_NUM_BATCHED_TOKENS = 8192
"""vLLM's default token budget of one scheduler step for online serving."""
RUNTIME_RESERVE_BYTES = {"gpu": 3 * GIB // 2, "cpu": GIB}
"""CUDA context, communicator buffers and CUDA graphs (GPU); the Python process (CPU)."""
ACTIVATION_BYTES_PER_TOKEN_AND_HIDDEN = 24
"""Peak live activation bytes per batched token per hidden unit in the profile run (about a dozen
bf16 tensors of width `hidden_size` at once, MoE dispatch buffers included)."""
FP8_SCALE_BYTES = 4
BF16_BYTES = 2


@dataclass(frozen=True)
class WeightFormat:
    """How linear-layer weights are stored."""

    name: Literal["bfloat16", "float16", "fp8", "int4", "int8"]
    bytes_per_param: float
    block: tuple[int, int] | None
    """Weights per scale (rows, columns) for block-quantized formats."""
    group_scale_bytes: float = 0.0
    """Bytes of scale (and zero point) per group of 128 input weights, for int4."""

    def matrix_bytes(self, rows: int, columns: int) -> int:
        """Bytes of one `rows × columns` weight matrix with its scales."""
        payload = rows * columns * self.bytes_per_param
        if self.block is not None:
            payload += math.ceil(rows / self.block[0]) * math.ceil(columns / self.block[1]) * FP8_SCALE_BYTES
        payload += rows * math.ceil(columns / 128) * self.group_scale_bytes
        return math.ceil(payload)


def weight_format(arch: ModelArchitecture, quantization: str, dtype: str) -> WeightFormat:
    """The format vLLM loads linear weights in, from `spec.model.quantization` and `dtype`."""
    method = arch.quantization.method if quantization == "auto" and arch.quantization else quantization
    if method == "fp8":
        block = arch.quantization.weight_block_size if arch.quantization else None
        return WeightFormat("fp8", 1.0, block or (128, 128))
    if method in ("awq", "gptq"):
        return WeightFormat("int4", 0.5, None, group_scale_bytes=4.0)
    if method == "compressed-tensors":
        return WeightFormat("int8", 1.0, None, group_scale_bytes=2.0)
    return WeightFormat("float16" if dtype == "float16" else "bfloat16", 2.0, None)


@dataclass(frozen=True)
class EngineMemorySettings:
    """Engine arguments that change the memory fit (from `versions[].engineArgs`)."""

    gpu_memory_utilization: float = DEFAULT_GPU_MEMORY_UTILIZATION
    max_num_batched_tokens: int = DEFAULT_MAX_NUM_BATCHED_TOKENS
    kv_cache_bytes_per_value: int = BF16_BYTES
    """2 for bf16 (`kv_cache_dtype: auto`), 1 for fp8."""
    kv_cache_memory_bytes: int | None = None
    """A fixed KV-cache size per rank (`kv_cache_memory_bytes`) instead of what memory leaves."""


KV_CACHE_DTYPES = {"auto": BF16_BYTES, "bfloat16": BF16_BYTES, "fp8": 1, "fp8_e4m3": 1, "fp8_e5m2": 1}


def engine_memory_settings(
    engine_args: Mapping[str, Any], path: str
) -> tuple[EngineMemorySettings, list[FieldError]]:
    """The memory-relevant engine arguments, and errors (at `path.<key>`) for ill-typed ones."""
    errors: list[FieldError] = []

    def number(key: str, default: float, low: float, high: float) -> float:
        value = engine_args.get(key, default)
        if isinstance(value, bool) or not isinstance(value, int | float) or not low <= value <= high:
            errors.append(FieldError(f"{path}.{key}", f"{value!r} must be a number in [{low:g}, {high:g}]"))
            return default
        return value

    utilization = number("gpu_memory_utilization", DEFAULT_GPU_MEMORY_UTILIZATION, 0.05, 1.0)
    batched = int(number("max_num_batched_tokens", DEFAULT_MAX_NUM_BATCHED_TOKENS, 1, 2**24))
    kv_dtype = engine_args.get("kv_cache_dtype", "auto")
    if kv_dtype not in KV_CACHE_DTYPES:
        errors.append(
            FieldError(f"{path}.kv_cache_dtype", f"{kv_dtype!r} is not one of {', '.join(KV_CACHE_DTYPES)}")
        )
        kv_dtype = "auto"
    fixed_kv = engine_args.get("kv_cache_memory_bytes")
    if fixed_kv is not None and (isinstance(fixed_kv, bool) or not isinstance(fixed_kv, int) or fixed_kv < 1):
        errors.append(FieldError(f"{path}.kv_cache_memory_bytes", f"{fixed_kv!r} must be a positive integer"))
        fixed_kv = None
    settings = EngineMemorySettings(utilization, batched, KV_CACHE_DTYPES[kv_dtype], fixed_kv)
    return settings, errors


def kv_cache_bytes_per_token(arch: ModelArchitecture, bytes_per_value: int = BF16_BYTES) -> int:
    """MLA KV cache of one token over all layers: DeepSeek-V3 in bf16 = 61 × 576 × 2 = 70,272 B."""
    return arch.num_hidden_layers * arch.kv_cache_values_per_token_per_layer * bytes_per_value


@dataclass(frozen=True)
class MemoryBreakdown:
    """Bytes on one rank (every rank of a group is alike, up to rounding of expert slots).

    The components add up: `weights + activation_reserve + runtime_reserve + kv_cache + free
    == usable`, where `usable = gpu_memory_utilization × device memory` and `free` is non-zero
    only when `kv_cache_memory_bytes` fixes the cache below what memory leaves.
    """

    attention: int
    """MLA projections of all layers (split and replicated parts)."""
    dense_mlp: int
    """MLPs of the dense first layers."""
    routed_experts: int
    """`slots_per_rank × moe_layers` whole experts."""
    shared_experts: int
    """Shared experts of all MoE layers, split over tensor-parallel ranks."""
    embeddings: int
    """Token embedding and LM head, split over tensor-parallel ranks."""
    router_and_norms: int
    """Router gates, their bias, and RMSNorm weights (bf16, replicated)."""
    activation_reserve: int
    """Peak activations of one scheduler step of `max_num_batched_tokens` tokens."""
    runtime_reserve: int
    """CUDA context, communicator buffers, CUDA graphs."""
    usable: int
    """Device memory the engine may use."""
    device_memory: int
    """All device memory of the rank."""
    kv_cache_bytes_per_token: int
    """Bytes one token occupies in this rank's KV cache."""
    kv_cache_limit: int | None
    """A fixed KV-cache size (`kv_cache_memory_bytes`), or None to use what memory leaves."""
    slots_per_rank: int
    """Routed-expert slots per MoE layer on this rank."""

    @property
    def weights(self) -> int:
        return (
            self.attention
            + self.dense_mlp
            + self.routed_experts
            + self.shared_experts
            + self.embeddings
            + self.router_and_norms
        )

    @property
    def available_for_kv_cache(self) -> int:
        """What is left for the KV cache (negative when weights and reserves alone overflow)."""
        return self.usable - self.weights - self.activation_reserve - self.runtime_reserve

    @property
    def kv_cache(self) -> int:
        """Bytes of KV cache: what memory leaves, capped by a fixed size when one is set."""
        left = max(0, self.available_for_kv_cache)
        return left if self.kv_cache_limit is None else min(left, self.kv_cache_limit)

    @property
    def kv_cache_tokens(self) -> int:
        """Tokens this rank's KV cache holds (0 when nothing is left)."""
        return self.kv_cache // self.kv_cache_bytes_per_token

    def as_dict(self) -> dict[str, int]:
        """Named components in bytes, for `dsd plan --json` (`per_gpu_memory_bytes`)."""
        return {
            "attention": self.attention,
            "dense_mlp": self.dense_mlp,
            "routed_experts": self.routed_experts,
            "shared_experts": self.shared_experts,
            "embeddings": self.embeddings,
            "router_and_norms": self.router_and_norms,
            "weights": self.weights,
            "activation_reserve": self.activation_reserve,
            "runtime_reserve": self.runtime_reserve,
            "kv_cache": self.kv_cache,
            "free": max(0, self.available_for_kv_cache) - self.kv_cache,
            "usable": self.usable,
            "device_memory": self.device_memory,
        }


def compute_memory(
    arch: ModelArchitecture,
    sizes: ParallelSizes,
    inventory: Inventory,
    *,
    fmt: WeightFormat,
    redundant_experts: int,
    engine: EngineMemorySettings,
) -> MemoryBreakdown:
    """The memory of one rank of a group shaped `sizes` (see the module docstring for the layout).

    Raises ValueError when the physical expert slots do not split evenly over the ranks.
    """
    physical_experts = arch.n_routed_experts + redundant_experts
    if physical_experts % sizes.expert:
        raise ValueError(f"{physical_experts} expert slots do not split over {sizes.expert} ranks")
    tp = sizes.tensor
    hidden, heads = arch.hidden_size, arch.num_attention_heads
    qk_head = arch.qk_nope_head_dim + arch.qk_rope_head_dim

    # Step 1: attention, per layer: replicated down projections + per-head projections ÷ TP.
    if arch.q_lora_rank:
        q_replicated = fmt.matrix_bytes(arch.q_lora_rank, hidden)
        q_split = fmt.matrix_bytes(heads * qk_head, arch.q_lora_rank)
    else:
        q_replicated, q_split = 0, fmt.matrix_bytes(heads * qk_head, hidden)
    kv_replicated = fmt.matrix_bytes(arch.kv_lora_rank + arch.qk_rope_head_dim, hidden)
    kv_split = fmt.matrix_bytes(heads * (arch.qk_nope_head_dim + arch.v_head_dim), arch.kv_lora_rank)
    out_split = fmt.matrix_bytes(hidden, heads * arch.v_head_dim)
    attention_per_layer = q_replicated + kv_replicated + (q_split + kv_split + out_split) // tp

    # Step 2: MLPs: dense layers and shared experts split over TP, routed experts whole.
    def mlp_bytes(width: int) -> int:
        return _mlp_bytes(width, hidden, fmt)

    moe_layers = arch.num_moe_layers
    dense_layers = arch.num_hidden_layers - moe_layers
    slots_per_rank = physical_experts // sizes.expert
    shared_width = arch.n_shared_experts * arch.moe_intermediate_size

    # Step 3: the bf16 rest: embeddings, LM head, router gates (+ fp32 bias), norms.
    vocabulary = arch.vocab_size * hidden * BF16_BYTES
    embeddings = vocabulary * (1 if arch.tie_word_embeddings else 2) // tp
    router = moe_layers * (arch.n_routed_experts * hidden * BF16_BYTES + arch.n_routed_experts * 4)
    norms = BF16_BYTES * (
        arch.num_hidden_layers * (2 * hidden + arch.kv_lora_rank + (arch.q_lora_rank or 0)) + hidden
    )

    # Step 4: reserves and what the engine may use.
    if inventory.accelerator == "gpu":
        usable = int(inventory.gpu_memory_bytes * engine.gpu_memory_utilization)
    else:
        usable = inventory.gpu_memory_bytes
    activation = engine.max_num_batched_tokens * hidden * ACTIVATION_BYTES_PER_TOKEN_AND_HIDDEN // tp
    return MemoryBreakdown(
        attention=attention_per_layer * arch.num_hidden_layers,
        dense_mlp=dense_layers * mlp_bytes(arch.intermediate_size) // tp,
        routed_experts=moe_layers * slots_per_rank * mlp_bytes(arch.moe_intermediate_size),
        shared_experts=moe_layers * mlp_bytes(shared_width) // tp if shared_width else 0,
        embeddings=embeddings,
        router_and_norms=router + norms,
        activation_reserve=activation,
        runtime_reserve=RUNTIME_RESERVE_BYTES[inventory.accelerator],
        usable=usable,
        device_memory=inventory.gpu_memory_bytes,
        kv_cache_bytes_per_token=kv_cache_bytes_per_token(arch, engine.kv_cache_bytes_per_value),
        kv_cache_limit=engine.kv_cache_memory_bytes,
        slots_per_rank=slots_per_rank,
    )


def expert_bytes(arch: ModelArchitecture, fmt: WeightFormat) -> int:
    """Bytes of one routed expert's weights: what EPLB moves per replica (V3 fp8 ≈ 44 MB)."""
    return _mlp_bytes(arch.moe_intermediate_size, arch.hidden_size, fmt)


def _mlp_bytes(width: int, hidden: int, fmt: WeightFormat) -> int:
    """A SwiGLU MLP: gate and up (2 × width × hidden) and down (hidden × width)."""
    return fmt.matrix_bytes(2 * width, hidden) + fmt.matrix_bytes(hidden, width)
