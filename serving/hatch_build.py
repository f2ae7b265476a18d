"""The serving wheel's metadata, taken from the repository's pyproject.toml (one place for pins).

- version: the project's version;
- dependencies: the project's `serving` extra (Ray Serve pinned, transformers, ...), without the
  engine: the serving image's base already has vLLM and torch (`cpu`/`gpu` extras elsewhere);
- entry points: the `vllm.general_plugins` group, so vLLM loads our EPLB policy in the image.
"""

from __future__ import annotations

import tomllib
from pathlib import Path
from typing import Any

from hatchling.metadata.plugin.interface import MetadataHookInterface

PROJECT = Path(__file__).resolve().parent.parent / "pyproject.toml"
ENTRY_POINT_GROUPS = ("vllm.general_plugins",)


def serving_metadata(project: dict[str, Any]) -> dict[str, Any]:
    """The dynamic fields of the serving wheel from the repository's `[project]` table."""
    entry_points = project.get("entry-points", {})
    return {
        "version": project["version"],
        "dependencies": list(project["optional-dependencies"]["serving"]),
        "entry-points": {group: dict(entry_points[group]) for group in ENTRY_POINT_GROUPS},
    }


class CustomMetadataHook(MetadataHookInterface):
    def update(self, metadata: dict[str, Any]) -> None:
        project = tomllib.loads(PROJECT.read_text())["project"]
        metadata.update(serving_metadata(project))
