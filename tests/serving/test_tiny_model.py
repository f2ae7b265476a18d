"""The tiny DeepSeek-V3 checkpoint: deterministic, cached, loadable, DeepSeek-shaped."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

import pytest

pytest.importorskip("transformers")

from deepseek_serving.tiny_model import (
    ASSISTANT_TOKEN,
    BOS_TOKEN,
    EOS_TOKEN,
    TINY_CONFIG,
    USER_TOKEN,
    build_tiny_model,
)

BUILD_IN_SUBPROCESS = """
import sys
from pathlib import Path
from deepseek_serving.tiny_model import build_tiny_model
build_tiny_model(Path(sys.argv[1]), seed=int(sys.argv[2]))
"""


def _file_bytes(model_dir: Path) -> dict[str, bytes]:
    return {path.name: path.read_bytes() for path in sorted(model_dir.iterdir())}


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_tiny_model(tmp_path_factory.mktemp("tiny") / "model")


def test_same_seed_gives_the_same_bytes_in_another_process(built: Path, tmp_path: Path) -> None:
    other = tmp_path / "model"
    subprocess.run([sys.executable, "-c", BUILD_IN_SUBPROCESS, str(other), "0"], check=True)
    assert _file_bytes(other) == _file_bytes(built)


def test_another_seed_changes_the_weights_only(built: Path, tmp_path: Path) -> None:
    other = build_tiny_model(tmp_path / "model", seed=1)
    ours, theirs = _file_bytes(built), _file_bytes(other)
    assert ours["model.safetensors"] != theirs["model.safetensors"]
    assert ours["tokenizer.json"] == theirs["tokenizer.json"]


def test_second_call_reuses_the_build(built: Path) -> None:
    before = {path.name: path.stat().st_mtime_ns for path in built.iterdir()}
    started = time.perf_counter()
    build_tiny_model(built)
    assert time.perf_counter() - started < 0.5
    assert {path.name: path.stat().st_mtime_ns for path in built.iterdir()} == before


def test_a_damaged_build_is_rebuilt(tmp_path: Path) -> None:
    model_dir = build_tiny_model(tmp_path / "model")
    pristine = (model_dir / "tokenizer.json").read_bytes()
    (model_dir / "tokenizer.json").write_text("{}")
    build_tiny_model(model_dir)
    assert (model_dir / "tokenizer.json").read_bytes() == pristine


def test_config_json_carries_the_catalog_architecture(built: Path) -> None:
    on_disk = json.loads((built / "config.json").read_text())
    assert {key: on_disk.get(key) for key in TINY_CONFIG} == TINY_CONFIG


def test_architecture_is_deepseek_v3_moe_with_mla() -> None:
    assert TINY_CONFIG["architectures"] == ["DeepseekV3ForCausalLM"]
    assert (TINY_CONFIG["kv_lora_rank"], TINY_CONFIG["qk_rope_head_dim"]) == (512, 64)
    assert TINY_CONFIG["n_routed_experts"] % TINY_CONFIG["n_group"] == 0
    assert TINY_CONFIG["topk_group"] < TINY_CONFIG["n_group"]
    assert TINY_CONFIG["first_k_dense_replace"] < TINY_CONFIG["num_hidden_layers"]


def test_transformers_loads_and_generates(built: Path) -> None:
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(built)
    model = AutoModelForCausalLM.from_pretrained(built)
    assert type(model).__name__ == "DeepseekV3ForCausalLM"
    routed = [name for name, _ in model.named_parameters() if ".mlp.experts." in name]
    shared = [name for name, _ in model.named_parameters() if ".mlp.shared_experts." in name]
    dense = [name for name, _ in model.named_parameters() if name.startswith("model.layers.0.mlp.gate_proj")]
    assert routed
    assert shared
    assert dense
    prompt = tokenizer("def hello(", return_tensors="pt")
    output = model.generate(**prompt, max_new_tokens=4, do_sample=False)
    assert output.shape[1] == prompt["input_ids"].shape[1] + 4
    assert torch.isfinite(model(**prompt).logits).all()


def test_tokenizer_has_deepseek_special_tokens_and_chat_template(built: Path) -> None:
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(built)
    assert tokenizer.convert_tokens_to_ids([BOS_TOKEN, EOS_TOKEN]) == [0, 1]
    rendered = tokenizer.apply_chat_template(
        [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Hi"}],
        tokenize=False,
        add_generation_prompt=True,
    )
    assert rendered == f"{BOS_TOKEN}Be brief.{USER_TOKEN}Hi{ASSISTANT_TOKEN}"
    ids = tokenizer(f"{USER_TOKEN}x", add_special_tokens=False)["input_ids"]
    assert ids[0] == tokenizer.convert_tokens_to_ids(USER_TOKEN)
    assert tokenizer("x")["input_ids"][0] == 0  # BOS is prepended like DeepSeek's tokenizer
