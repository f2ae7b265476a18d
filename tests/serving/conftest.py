"""Fixtures of the serving suite: the tiny model and one local Ray Serve deployment per session.

The model server takes ~30 s to start on two cores, so one embedded Ray cluster serves the whole
session (``serve_locally``); tests that need another layout (two DP ranks, a deployment to shut
down) add applications to that cluster under their own route prefix.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from deepseek_serving.config import ServingArgs

API_KEY_ENV = "DEEPSEEK_SERVING_TEST_API_KEY"
API_KEY = "test-key-0123456789"
MODEL_NAME = "deepseek-tiny"
MAX_MODEL_LEN = 512
MAX_TOKENS_LIMIT = 256


def serving_args(model_dir: Path, **overrides: object) -> ServingArgs:
    """The test deployment: tiny model, CPU, float32 (greedy text then does not depend on batching)."""
    fields: dict[str, object] = {
        "deployment_name": "tests",
        "version_name": "v1",
        "model_source": str(model_dir),
        "served_model_name": MODEL_NAME,
        "dtype": "float32",
        "max_model_len": MAX_MODEL_LEN,
        # Bundles are Ray scheduling tokens; half a CPU each lets three engines share two cores.
        "placement": {"accelerator": "cpu", "bundles": [{"CPU": 0.5}]},
        "engine_args": {"enforce_eager": True, "max_num_seqs": 16, "kv_cache_memory_bytes": 256 << 20},
        "limits": {"max_tokens": MAX_TOKENS_LIMIT, "request_timeout_s": 60},
    }
    return ServingArgs.model_validate(fields | overrides)


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    pytest.importorskip("transformers")
    from deepseek_serving.tiny_model import build_tiny_model, default_tiny_model_dir

    return build_tiny_model(default_tiny_model_dir())


@pytest.fixture(scope="session")
def served(tiny_model_dir: Path) -> Iterator[object]:
    """The session's local deployment (API key required), as a ``LocalServing``."""
    pytest.importorskip("vllm")
    import os

    from deepseek_serving.local import free_port, serve_locally

    os.environ[API_KEY_ENV] = API_KEY
    args = serving_args(tiny_model_dir, api_key_env=API_KEY_ENV)
    with serve_locally(args, port=free_port()) as serving:
        yield serving
