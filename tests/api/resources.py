"""Test resources: the shipped examples, and a way to derive broken variants from them."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import yaml

EXAMPLES = Path(__file__).parents[2] / "examples"
DELETE = object()
"""Marker value: remove the field instead of setting it."""


def example(name: str) -> dict[str, Any]:
    """The first document of `examples/<name>.yaml`."""
    document: dict[str, Any] = next(yaml.safe_load_all((EXAMPLES / f"{name}.yaml").read_text()))
    return document


def with_changes(document: dict[str, Any], changes: dict[str, Any]) -> dict[str, Any]:
    """A copy of `document` with dotted paths set (`spec.versions[1].name`) or deleted (DELETE)."""
    changed = copy.deepcopy(document)
    for path, value in changes.items():
        *parents, last = _split(path)
        node: Any = changed
        for part in parents:
            if isinstance(part, str) and part not in node:
                node[part] = {}
            node = node[part]
        if value is DELETE:
            del node[last]
        else:
            node[last] = value
    return changed


def _split(path: str) -> list[str | int]:
    parts: list[str | int] = []
    for piece in path.split("."):
        name, *indices = piece.split("[")
        if name:
            parts.append(name)
        parts += [int(index.rstrip("]")) for index in indices]
    return parts
