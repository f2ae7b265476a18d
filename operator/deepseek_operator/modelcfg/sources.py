"""Find a deployment's architecture: catalog name, inline config, ConfigMap, or local file.

Reading is injected: the operator passes a ConfigMap reader backed by the API and no local
directory (its own filesystem means nothing to the user); `dsd validate` passes the ConfigMaps
found among the files it was given and the directory of the file being checked.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from deepseek_operator.api.v1alpha1 import ModelSpec
from deepseek_operator.errors import FieldError, ModelConfigError
from deepseek_operator.modelcfg.architecture import ModelArchitecture, parse_hf_config
from deepseek_operator.modelcfg.catalog import HF_REPOSITORIES, catalog_names, load_catalog_architecture
from deepseek_operator.modelsource import parse_model_source

__all__ = ["ArchitectureContext", "ArchitectureResult", "ConfigMapLookup", "resolve_architecture"]

ConfigMapLookup = Callable[[str], Mapping[str, str] | None]
"""ConfigMap name -> its `data`, or None when no such ConfigMap exists."""

ARCHITECTURE_PATH = "spec.model.architecture"


@dataclass(frozen=True)
class ArchitectureContext:
    """What the caller can read."""

    config_maps: ConfigMapLookup | None = None
    """ConfigMaps of the deployment's namespace; None where none can be read."""
    base_dir: Path | None = None
    """Directory relative `path`s resolve against; None where local files mean nothing (in-cluster)."""


@dataclass(frozen=True)
class ArchitectureResult:
    """The architecture, or every reason it could not be had."""

    architecture: ModelArchitecture | None
    errors: tuple[FieldError, ...] = ()


def resolve_architecture(model: ModelSpec, context: ArchitectureContext) -> ArchitectureResult:
    """Load and parse the architecture `model` names, reporting problems under their field paths."""
    source = model.architecture
    try:
        if source is None:
            return _infer_from_model_source(model.source, context)
        if source.catalog is not None:
            return _from_catalog(source.catalog)
        if source.config is not None:
            return _parse(
                source.config, name="inline config", path=f"{ARCHITECTURE_PATH}.config", per_key=True
            )
        if source.config_map_ref is not None:
            return _from_config_map(source.config_map_ref.name, source.config_map_ref.key, context)
        if source.path is not None:
            return _from_file(Path(source.path), f"{ARCHITECTURE_PATH}.path", context)
    except _Unreadable as problem:
        return ArchitectureResult(None, (problem.error,))
    # The one-of rule on ArchitectureSource reports an empty object; nothing more to say here.
    return ArchitectureResult(None)


class _Unreadable(Exception):
    def __init__(self, path: str, message: str) -> None:
        self.error = FieldError(path, message)


def _infer_from_model_source(uri: str, context: ArchitectureContext) -> ArchitectureResult:
    source = parse_model_source(uri)
    if source.scheme == "hf" and source.location.lower() in HF_REPOSITORIES:
        return _from_catalog(HF_REPOSITORIES[source.location.lower()])
    if source.scheme == "file":
        return _from_file(Path(source.location), "spec.model.source", context)
    raise _Unreadable(
        ARCHITECTURE_PATH,
        f"required: the architecture of {uri} cannot be inferred; set catalog "
        f"(one of {', '.join(catalog_names())}), config, configMapRef or path",
    )


def _from_catalog(name: str) -> ArchitectureResult:
    if name not in catalog_names():
        raise _Unreadable(
            f"{ARCHITECTURE_PATH}.catalog",
            f"unknown architecture {name!r}; the catalog has {', '.join(catalog_names())}",
        )
    return ArchitectureResult(load_catalog_architecture(name))


def _from_config_map(name: str, key: str, context: ArchitectureContext) -> ArchitectureResult:
    path = f"{ARCHITECTURE_PATH}.configMapRef"
    if context.config_maps is None:
        raise _Unreadable(f"{path}.name", "ConfigMaps cannot be read here")
    data = context.config_maps(name)
    if data is None:
        raise _Unreadable(f"{path}.name", f"ConfigMap {name!r} not found")
    if key not in data:
        raise _Unreadable(
            f"{path}.key", f"ConfigMap {name!r} has no key {key!r} (keys: {', '.join(sorted(data))})"
        )
    return _parse(
        _json_object(data[key], f"{path}.key", f"ConfigMap {name!r} key {key!r}"), name=name, path=path
    )


def _from_file(file: Path, path: str, context: ArchitectureContext) -> ArchitectureResult:
    if context.base_dir is None:
        raise _Unreadable(
            path, "local files cannot be read by the operator; use catalog, config or configMapRef"
        )
    file = context.base_dir / file
    if file.is_dir():
        file = file / "config.json"
    try:
        text = file.read_text(encoding="utf-8")
    except OSError as error:
        raise _Unreadable(path, f"cannot read {file}: {error.strerror or error}") from None
    return _parse(_json_object(text, path, str(file)), name=str(file), path=path)


def _json_object(text: str, path: str, origin: str) -> dict[str, Any]:
    try:
        value = json.loads(text)
    except json.JSONDecodeError as error:
        raise _Unreadable(path, f"{origin} is not JSON: {error}") from None
    if not isinstance(value, dict):
        raise _Unreadable(path, f"{origin} is not a JSON object")
    return value


def _parse(config: Mapping[str, Any], *, name: str, path: str, per_key: bool = False) -> ArchitectureResult:
    """Parse; inline configs report each problem under its own key, others under the reference."""
    try:
        return ArchitectureResult(parse_hf_config(config, name=name))
    except ModelConfigError as error:
        if per_key:
            errors = tuple(
                FieldError(f"{path}.{key}" if key else path, message) for key, message in error.problems
            )
        else:
            errors = tuple(
                FieldError(path, f"{name}: {key}: {message}" if key else f"{name}: {message}")
                for key, message in error.problems
            )
        return ArchitectureResult(None, errors)
