"""Built-in architectures: the published `config.json` of well-known DeepSeek models, no weights.

Each `catalog/<name>.json` is the model's public `config.json` as released on Hugging Face, so a
deployment can say `catalog: deepseek-r1` and be validated and planned with no network access.
"""

from __future__ import annotations

import json
from functools import cache
from importlib import resources
from typing import Any

from deepseek_operator.modelcfg.architecture import ModelArchitecture, parse_hf_config

__all__ = ["HF_REPOSITORIES", "catalog_config", "catalog_names", "load_catalog_architecture"]

# Hugging Face repositories whose architecture is a catalog entry, keyed lowercase.
HF_REPOSITORIES = {
    "deepseek-ai/deepseek-v3": "deepseek-v3",
    "deepseek-ai/deepseek-v3-base": "deepseek-v3",
    "deepseek-ai/deepseek-v3-0324": "deepseek-v3-0324",
    "deepseek-ai/deepseek-r1": "deepseek-r1",
    "deepseek-ai/deepseek-r1-zero": "deepseek-r1",
    "deepseek-ai/deepseek-r1-0528": "deepseek-r1-0528",
    "deepseek-ai/deepseek-v3.1": "deepseek-v3.1",
    "deepseek-ai/deepseek-v3.1-base": "deepseek-v3.1",
    "deepseek-ai/deepseek-v2": "deepseek-v2",
    "deepseek-ai/deepseek-v2-chat": "deepseek-v2",
    "deepseek-ai/deepseek-v2-lite": "deepseek-v2-lite",
    "deepseek-ai/deepseek-v2-lite-chat": "deepseek-v2-lite",
}


@cache
def catalog_names() -> tuple[str, ...]:
    """Sorted names of the built-in architectures."""
    folder = resources.files(__package__).joinpath("catalog")
    return tuple(
        sorted(entry.name.removesuffix(".json") for entry in folder.iterdir() if entry.name.endswith(".json"))
    )


@cache
def _catalog_text(name: str) -> str:
    return resources.files(__package__).joinpath("catalog", f"{name}.json").read_text(encoding="utf-8")


def catalog_config(name: str) -> dict[str, Any]:
    """The published `config.json` of catalog entry `name` (KeyError when unknown)."""
    if name not in catalog_names():
        raise KeyError(name)
    config: dict[str, Any] = json.loads(_catalog_text(name))
    return config


@cache
def load_catalog_architecture(name: str) -> ModelArchitecture:
    """The parsed architecture of catalog entry `name` (KeyError when unknown)."""
    return parse_hf_config(catalog_config(name), name=name)
