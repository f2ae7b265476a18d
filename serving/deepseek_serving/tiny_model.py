"""A tiny DeepSeek-V3 checkpoint built offline, for tests, benchmarks and the local demo.

Why: CI and developer machines have no GPU and no model downloads, yet the serving path must be
exercised for real (vLLM's DeepSeek-V3 model class, MLA attention, grouped top-k routing over
routed + shared experts, the tokenizer's chat template). This module builds such a checkpoint in a
few seconds from nothing but ``transformers``, ``tokenizers`` and the Python standard library:

- weights: ``DeepseekV3ForCausalLM`` with random weights (seeded), saved as safetensors in the
  original per-expert key layout that vLLM loads;
- tokenizer: a byte-level BPE trained locally on a fixed list of standard-library sources, with
  DeepSeek-style special tokens and a chat template written into ``tokenizer_config.json``;
- ``generation_config.json`` with DeepSeek-V3's sampling defaults.

The build is deterministic for a seed (same bytes on the same Python/library versions) and cached:
the output directory carries a manifest whose fingerprint covers the architecture, the seed, this
builder's version and the training corpus, so a second call only re-hashes a few megabytes.

Sizes: ``kv_lora_rank=512`` and ``qk_rope_head_dim=64`` are DeepSeek's real values and are required
by vLLM's CPU MLA kernel (latent head size 576). 16 routed experts in 4 groups (top-2 groups, top-2
experts) keep the real routing shape while letting expert parallelism split experts 8/8 over two
ranks; the first layer is dense (``first_k_dense_replace=1``) as in DeepSeek-V3.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import sysconfig
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Final

__all__ = [
    "CHAT_TEMPLATE",
    "SPECIAL_TOKENS",
    "TINY_CONFIG",
    "build_tiny_model",
    "default_tiny_model_dir",
]

TINY_CONFIG: Final[dict[str, Any]] = {
    "architectures": ["DeepseekV3ForCausalLM"],
    "model_type": "deepseek_v3",
    "vocab_size": 4096,
    "hidden_size": 128,
    "intermediate_size": 256,
    "moe_intermediate_size": 64,
    "num_hidden_layers": 3,
    "first_k_dense_replace": 1,
    "moe_layer_freq": 1,
    "num_attention_heads": 4,
    "num_key_value_heads": 4,
    "q_lora_rank": 64,
    "kv_lora_rank": 512,
    "qk_nope_head_dim": 32,
    "qk_rope_head_dim": 64,
    "v_head_dim": 32,
    "n_routed_experts": 16,
    "n_shared_experts": 1,
    "num_experts_per_tok": 2,
    "n_group": 4,
    "topk_group": 2,
    "topk_method": "noaux_tc",
    "scoring_func": "sigmoid",
    "norm_topk_prob": True,
    "routed_scaling_factor": 2.5,
    "num_nextn_predict_layers": 0,
    "max_position_embeddings": 4096,
    "rope_parameters": {"rope_theta": 10000.0, "rope_type": "default"},
    "hidden_act": "silu",
    "rms_norm_eps": 1e-06,
    "tie_word_embeddings": False,
    "bos_token_id": 0,
    "eos_token_id": 1,
    "dtype": "bfloat16",
}
"""The tiny model's architecture, as HF ``config.json`` keys (the operator's catalog mirrors it)."""

BOS_TOKEN: Final = "<｜begin▁of▁sentence｜>"  # noqa: RUF001 (DeepSeek's tokens use full-width bars)
EOS_TOKEN: Final = "<｜end▁of▁sentence｜>"  # noqa: RUF001 (DeepSeek's tokens use full-width bars)
PAD_TOKEN: Final = "<｜▁pad▁｜>"  # noqa: RUF001 (DeepSeek's tokens use full-width bars)
USER_TOKEN: Final = "<｜User｜>"  # noqa: RUF001 (DeepSeek's tokens use full-width bars)
ASSISTANT_TOKEN: Final = "<｜Assistant｜>"  # noqa: RUF001 (DeepSeek's tokens use full-width bars)
SPECIAL_TOKENS: Final[tuple[str, ...]] = (BOS_TOKEN, EOS_TOKEN, PAD_TOKEN, USER_TOKEN, ASSISTANT_TOKEN)
"""DeepSeek-V3's special tokens; their ids are their positions (BOS 0, EOS 1 as in DeepSeek)."""

CHAT_TEMPLATE: Final = (
    "{{ bos_token }}"
    "{% for message in messages %}"
    "{% if message['role'] == 'system' %}{{ message['content'] }}"
    f"{{% elif message['role'] == 'user' %}}{USER_TOKEN}{{{{ message['content'] }}}}"
    f"{{% elif message['role'] == 'assistant' %}}{ASSISTANT_TOKEN}{{{{ message['content'] }}}}{EOS_TOKEN}"
    "{% endif %}"
    "{% endfor %}"
    f"{{% if add_generation_prompt %}}{ASSISTANT_TOKEN}{{% endif %}}"
)
"""DeepSeek-V3's chat format: system text first, then user/assistant turns marked by special tokens."""

GENERATION_CONFIG: Final[dict[str, Any]] = {
    "bos_token_id": 0,
    "eos_token_id": 1,
    "do_sample": True,
    "temperature": 0.6,
    "top_p": 0.95,
}

_BUILDER_VERSION: Final = 1
_MANIFEST_NAME: Final = "deepseek-tiny-manifest.json"
_CORPUS_MODULES: Final[tuple[str, ...]] = (
    "argparse.py",
    "ast.py",
    "base64.py",
    "bisect.py",
    "calendar.py",
    "collections/__init__.py",
    "configparser.py",
    "contextlib.py",
    "csv.py",
    "dataclasses.py",
    "difflib.py",
    "enum.py",
    "fnmatch.py",
    "fractions.py",
    "functools.py",
    "glob.py",
    "heapq.py",
    "json/__init__.py",
    "json/decoder.py",
    "json/encoder.py",
    "shlex.py",
    "statistics.py",
    "string.py",
    "textwrap.py",
)
"""Standard-library sources the tokenizer learns from, in a fixed order (missing ones are skipped)."""


def default_tiny_model_dir(*, seed: int = 0) -> Path:
    """Where the tiny model is cached by default: ``$XDG_CACHE_HOME/deepseek-serving/tiny-<hash>``.

    The hash is the build fingerprint, so a change of architecture, seed, builder or corpus lands
    in a new directory instead of silently reusing a stale one.
    """
    cache_root = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache"))
    return cache_root / "deepseek-serving" / f"tiny-{_fingerprint(seed)[:12]}"


def build_tiny_model(out_dir: Path, *, seed: int = 0) -> Path:
    """Build (or reuse) the tiny DeepSeek-V3 checkpoint in ``out_dir`` and return ``out_dir``.

    Parameters:
        out_dir: the model directory to write (created; replaced if it holds a different build).
        seed: seeds the random weights; the same seed gives byte-identical files.

    Returns:
        ``out_dir``, loadable by ``transformers`` and vLLM (``config.json``, ``model.safetensors``,
        ``tokenizer.json``, ``tokenizer_config.json``, ``generation_config.json``).
    """
    out_dir = Path(out_dir)
    fingerprint = _fingerprint(seed)
    if _is_cached_build(out_dir, fingerprint):
        return out_dir

    out_dir.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{out_dir.name}-", dir=out_dir.parent))
    try:
        _write_weights(staging, seed)
        _write_tokenizer(staging)
        _write_json(staging / "generation_config.json", GENERATION_CONFIG)
        manifest = {"fingerprint": fingerprint, "files": _hash_files(staging)}
        _write_json(staging / _MANIFEST_NAME, manifest)
        _publish(staging, out_dir, fingerprint)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return out_dir


def _publish(staging: Path, out_dir: Path, fingerprint: str) -> None:
    """Move a finished build into place; a concurrent builder that got there first wins."""
    try:
        staging.rename(out_dir)  # atomic; fails if out_dir exists and is not empty
    except OSError:
        if _is_cached_build(out_dir, fingerprint):
            return  # another process published the same build; never pull it from under a reader
        shutil.rmtree(out_dir)  # a stale or damaged build
        staging.rename(out_dir)


def _fingerprint(seed: int) -> str:
    """Hash of everything that determines the build's bytes (except library versions)."""
    digest = hashlib.sha256()
    digest.update(json.dumps(TINY_CONFIG, sort_keys=True).encode())
    digest.update(json.dumps([seed, _BUILDER_VERSION, SPECIAL_TOKENS, CHAT_TEMPLATE]).encode())
    digest.update(json.dumps(GENERATION_CONFIG, sort_keys=True).encode())
    for text in _corpus():
        digest.update(hashlib.sha256(text.encode()).digest())
    return digest.hexdigest()


def _is_cached_build(out_dir: Path, fingerprint: str) -> bool:
    manifest_path = out_dir / _MANIFEST_NAME
    if not manifest_path.is_file():
        return False
    manifest = json.loads(manifest_path.read_text())
    return bool(manifest.get("fingerprint") == fingerprint and manifest.get("files") == _hash_files(out_dir))


def _hash_files(model_dir: Path) -> dict[str, str]:
    return {
        path.name: hashlib.sha256(path.read_bytes()).hexdigest()
        for path in sorted(model_dir.iterdir())
        if path.is_file() and path.name != _MANIFEST_NAME
    }


def _corpus() -> Iterator[str]:
    stdlib = Path(sysconfig.get_paths()["stdlib"])
    for relative_path in _CORPUS_MODULES:
        source = stdlib / relative_path
        if source.is_file():
            yield source.read_text(encoding="utf-8", errors="replace")


def _write_weights(model_dir: Path, seed: int) -> None:
    import torch
    from transformers import DeepseekV3Config, DeepseekV3ForCausalLM

    config = DeepseekV3Config(**TINY_CONFIG)
    torch.manual_seed(seed)
    model_class: Any = DeepseekV3ForCausalLM  # transformers' constructor is untyped
    model = model_class(config).to(torch.bfloat16)
    model.save_pretrained(model_dir)
    # transformers writes its own generation config (with its version); ours replaces it.
    (model_dir / "generation_config.json").unlink(missing_ok=True)


def _write_tokenizer(model_dir: Path) -> None:
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors, trainers

    tokenizer = Tokenizer(models.BPE())
    tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tokenizer.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=TINY_CONFIG["vocab_size"],
        special_tokens=list(SPECIAL_TOKENS),
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tokenizer.train_from_iterator(_corpus(), trainer)
    tokenizer.post_processor = processors.TemplateProcessing(
        single=f"{BOS_TOKEN} $A", pair=f"{BOS_TOKEN} $A {BOS_TOKEN} $B", special_tokens=[(BOS_TOKEN, 0)]
    )
    if tokenizer.get_vocab_size() > TINY_CONFIG["vocab_size"]:
        raise AssertionError("tokenizer vocabulary exceeds the model's embedding rows")
    tokenizer.save(str(model_dir / "tokenizer.json"))
    _write_json(
        model_dir / "tokenizer_config.json",
        {
            "tokenizer_class": "PreTrainedTokenizerFast",
            "bos_token": BOS_TOKEN,
            "eos_token": EOS_TOKEN,
            "pad_token": PAD_TOKEN,
            "additional_special_tokens": [USER_TOKEN, ASSISTANT_TOKEN],
            "add_bos_token": True,
            "add_eos_token": False,
            "clean_up_tokenization_spaces": False,
            "model_max_length": TINY_CONFIG["max_position_embeddings"],
            "chat_template": CHAT_TEMPLATE,
        },
    )
    _write_json(
        model_dir / "special_tokens_map.json",
        {"bos_token": BOS_TOKEN, "eos_token": EOS_TOKEN, "pad_token": PAD_TOKEN},
    )


def _write_json(path: Path, content: dict[str, Any]) -> None:
    path.write_text(json.dumps(content, indent=2, sort_keys=True, ensure_ascii=False) + "\n")
