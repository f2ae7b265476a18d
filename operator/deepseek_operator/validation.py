"""Validate a `DeepSeekDeployment` completely before anything starts.

Three layers, every error of each reported with its field path and what would be valid:
1. structure (pydantic: types, bounds, enums, unknown fields);
2. cross-field rules (`api.rules`; the API server checks the same rules in CEL);
3. checks against the model's real `config.json` and the node shape: parallel sizes against
   attention heads and routed experts, context length, quantization, engine arguments (names and
   value types of the serving image's vLLM, `engine_args`), names.

Sizes are checked beside the layers: free-form maps by key count and bytes, the whole resource
against what etcd stores (`MAX_RESOURCE_BYTES`), so a megabyte `engineArgs` is refused here with its
field path and not by the API server or etcd.

Layer 3 runs only when the structure is sound (it needs typed values), but then reports every
problem of layers 2 and 3 together. `dsd validate`, the admission webhook and the reconciler all
call `validate_deployment`, so they say exactly the same words.
"""

from __future__ import annotations

import copy
import difflib
import json
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any

from pydantic import BaseModel, ValidationError
from pydantic_core import ErrorDetails

from deepseek_operator.api.rules import find_rule_violations
from deepseek_operator.api.v1alpha1 import (
    DNS_LABEL_PATTERN,
    DNS_SUBDOMAIN_PATTERN,
    ENGINE_ARG_PATTERN,
    MAX_ENGINE_ARGS,
    MAX_INLINE_CONFIG_KEYS,
    MAX_NODE_SELECTOR_LABELS,
    MODEL_SOURCE_PATTERN,
    DeepSeekDeployment,
    DeepSeekDeploymentSpec,
)
from deepseek_operator.engine_args import VLLM_VERSION, engine_arg_types
from deepseek_operator.errors import FieldError, InvalidSpec
from deepseek_operator.hardware import GPU_TYPES, known_gpu_types
from deepseek_operator.modelcfg import ArchitectureContext, ModelArchitecture, resolve_architecture
from deepseek_operator.planner.memory import engine_memory_settings
from deepseek_operator.quantity import QUANTITY_PATTERN
from deepseek_serving.config import PLANNER_OWNED_ENGINE_ARGS, owned_engine_arg_message, planner_owned_keys

__all__ = [
    "MAX_ENGINE_ARGS_BYTES",
    "MAX_INLINE_CONFIG_BYTES",
    "MAX_RAY_SERVICE_NAME_LENGTH",
    "MAX_RESOURCE_BYTES",
    "ValidatedDeployment",
    "json_size",
    "parse_deployment",
    "validate_deployment",
]

# KubeRay rejects RayService names longer than this: it derives the RayCluster and Service names
# from them, and those must stay within 63 characters.
MAX_RAY_SERVICE_NAME_LENGTH = 40

# Sizes in bytes of JSON (`json_size`), limits that a structural schema cannot express. The API
# server refuses request bodies over 3 MiB (413 "Request entity too large: limit is 3145728") and
# etcd refuses writes over its --max-request-bytes, 1.5 MiB by default, which the API server
# reports as a 500 "etcdserver: request is too large"; custom resources are stored as JSON.
MAX_RESOURCE_BYTES = 1024 * 1024
"""A DeepSeekDeployment without its `status` and `managedFields` (what its author wrote): 1 MiB
keeps 512 KiB of etcd's 1.5 MiB for what is written after admission (the operator's status,
`managedFields`, server metadata). Status is left out so the admission webhook and the reconciler,
which sees the status, measure the same bytes."""
MAX_ENGINE_ARGS_BYTES = 64 * 1024
"""One version's `engineArgs`: a hundred times a typical one (~0.5 KiB); also rendered into the
version's RayService (serveConfigV2), which must fit in etcd too."""
MAX_INLINE_CONFIG_BYTES = 256 * 1024
"""An inline `config.json`: DeepSeek V2/V3 configs are ~1.4 KiB; a quantization_config listing
ignored layers stays well within it."""

_PATTERN_MEANINGS = {
    DNS_LABEL_PATTERN: "must be a lowercase DNS label: a-z, 0-9 and '-', starting and ending alphanumeric",
    DNS_SUBDOMAIN_PATTERN: "must be a lowercase DNS name: a-z, 0-9, '-' and '.'",
    MODEL_SOURCE_PATTERN: "must be hf://org/name[@revision], s3://bucket/prefix, pvc://claim/path or file:///path",
    QUANTITY_PATTERN: "must be a quantity such as 80Gi, 141Gi or 96G",
}


@dataclass(frozen=True)
class ValidatedDeployment:
    """A deployment that passed every check, with the architecture it was checked against."""

    resource: DeepSeekDeployment
    architecture: ModelArchitecture

    @property
    def spec(self) -> DeepSeekDeploymentSpec:
        return self.resource.spec


def parse_deployment(document: Mapping[str, Any]) -> DeepSeekDeployment:
    """Layer 1 only: the typed resource, or InvalidSpec with every structural error."""
    try:
        return DeepSeekDeployment.model_validate(document)
    except ValidationError as error:
        raise InvalidSpec([_field_error(detail) for detail in error.errors()]) from None


def validate_deployment(document: Mapping[str, Any], context: ArchitectureContext) -> ValidatedDeployment:
    """All three layers; raises InvalidSpec listing every problem, sorted by field path.

    A structural error does not hide the rest: the offending fields are dropped from a copy (their
    defaults apply) and layers 2 and 3 run on that. Errors about a dropped field, or about the
    object that held it and its direct fields (cross-field rules), are left out: there a default
    stands in for what the user meant.
    """
    structural, repaired, resource = _parse_with_repairs(document)
    structural += _check_resource_size(document)
    if resource is None:
        raise InvalidSpec(sorted(set(structural), key=_error_order))
    errors = list(find_rule_violations(resource.spec, "spec"))
    errors += _check_names(resource)
    errors += _check_resources(resource.spec)
    errors += _check_engine_args(resource.spec)
    errors += _check_sizes(resource.spec)
    resolved = resolve_architecture(resource.spec.model, context)
    errors += resolved.errors
    if resolved.architecture is not None:
        errors += _check_against_architecture(resource.spec, resolved.architecture)
    errors = structural + [error for error in errors if not _about_repaired(error.path, repaired)]
    if errors or resolved.architecture is None:
        raise InvalidSpec(sorted(set(errors), key=_error_order))
    return ValidatedDeployment(resource, resolved.architecture)


_MAX_REPAIRS = 8


def _parse_with_repairs(
    document: Mapping[str, Any],
) -> tuple[list[FieldError], list[str], DeepSeekDeployment | None]:
    """Parse; on structural errors, drop the offending mapping keys and retry.

    Returns the first pass's errors, the paths of the dropped fields, and the resource parsed
    from the repaired copy (None when dropping keys cannot make it parse: a
    required field is wrong, or the error sits in a list item, whose removal would shift indices).
    """
    candidate = copy.deepcopy(dict(document))
    errors: list[FieldError] = []
    repaired: list[str] = []
    for _ in range(_MAX_REPAIRS):
        try:
            return errors, repaired, DeepSeekDeployment.model_validate(candidate)
        except ValidationError as error:
            details = error.errors()
        errors = errors or [_field_error(detail) for detail in details]
        dropped = [loc for loc in (_droppable(detail) for detail in details) if loc and _drop(candidate, loc)]
        if not dropped:
            return errors, repaired, None
        repaired += [_format_path(loc) for loc in dropped]
    return errors, repaired, None


def _droppable(detail: ErrorDetails) -> tuple[int | str, ...] | None:
    """The key to drop: the field itself, or for a missing field the object lacking it."""
    location = detail["loc"][:-1] if detail["type"] == "missing" else detail["loc"]
    return location if len(location) > 1 and isinstance(location[-1], str) else None


def _drop(document: dict[str, Any], location: tuple[int | str, ...]) -> bool:
    node: Any = document
    for part in location[:-1]:
        try:
            node = node[part]
        except (KeyError, IndexError, TypeError):
            return False
    if not isinstance(node, dict) or location[-1] not in node:
        return False
    del node[location[-1]]
    return True


def _about_repaired(path: str, dropped_fields: list[str]) -> bool:
    """Whether `path` is a dropped field, inside one, or its parent object or a sibling field."""
    for dropped in dropped_fields:
        parent = dropped.rpartition(".")[0]
        if path in (dropped, parent) or path.startswith((f"{dropped}.", f"{dropped}[")):
            return True
        if path.startswith(f"{parent}.") and not any(mark in path[len(parent) + 1 :] for mark in ".["):
            return True
    return False


# ─── layer 1: pydantic errors with paths and helpful words ───────────────────────────────────


def _field_error(detail: ErrorDetails) -> FieldError:
    path = _format_path(detail["loc"])
    kind, value, context = detail["type"], detail.get("input"), detail.get("ctx") or {}
    if kind == "missing":
        return FieldError(path, "required")
    if kind == "extra_forbidden":
        return FieldError(path, _unknown_field_message(detail["loc"]))
    if kind == "string_pattern_mismatch":
        meaning = _PATTERN_MEANINGS.get(str(context.get("pattern")), f"must match {context.get('pattern')}")
        return FieldError(path, f"{_shown(value)} {meaning}")
    if kind == "literal_error":
        return FieldError(path, f"{_shown(value)} is not one of {context.get('expected')}")
    if kind == "string_too_long" and isinstance(value, str):
        return FieldError(
            path, f"{len(value):,} characters, more than the limit of {context.get('max_length'):,}"
        )
    if kind == "too_long":
        return FieldError(
            path,
            f"{context.get('actual_length'):,} items, more than the limit of {context.get('max_length'):,}",
        )
    message = detail["msg"].removeprefix("Input should be ").removeprefix("Value error, ")
    if isinstance(value, str | int | float | bool) and kind not in ("string_type", "int_type"):
        return FieldError(path, f"{_shown(value)} must be {message}")
    return FieldError(path, f"must be {message}")


def _shown(value: Any, limit: int = 80) -> str:
    """`repr(value)`, cut: a message never repeats a megabyte the user sent."""
    text = repr(value)
    if len(text) <= limit:
        return text
    return f"{text[: limit - 1]}… ({len(text):,} characters)"


def _format_path(location: tuple[int | str, ...]) -> str:
    path = ""
    for part in location:
        path += f"[{part}]" if isinstance(part, int) else (f".{part}" if path else str(part))
    return path


def _unknown_field_message(location: tuple[int | str, ...]) -> str:
    model: type[BaseModel] | None = DeepSeekDeployment
    for part in location[:-1]:
        model = _nested_model(model, part)
    if model is None:
        return "unknown field"
    names = [field.alias or name for name, field in model.model_fields.items()]
    close = difflib.get_close_matches(str(location[-1]), names, n=1, cutoff=0.6)
    hint = f"did you mean {close[0]}? " if close else ""
    return f"unknown field; {hint}fields here: {', '.join(names)}"


def _nested_model(model: type[BaseModel] | None, part: int | str) -> type[BaseModel] | None:
    """The model class one step down `part` (a field alias or a list index)."""
    if model is None:
        return None
    if isinstance(part, int):
        return model
    for name, field in model.model_fields.items():
        if part in (name, field.alias):
            return _model_in(field.annotation)
    return None


def _model_in(annotation: Any) -> type[BaseModel] | None:
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    for argument in getattr(annotation, "__args__", ()):
        found = _model_in(argument)
        if found is not None:
            return found
    return None


def _error_order(error: FieldError) -> tuple[str, str]:
    return error.path, error.message


# ─── layer 3: checks that need no architecture ───────────────────────────────────────────────


def _check_names(resource: DeepSeekDeployment) -> Iterator[FieldError]:
    name = resource.metadata.name
    first_index: dict[str, int] = {}
    for index, version in enumerate(resource.spec.versions):
        if version.name in first_index:
            yield FieldError(
                f"spec.versions[{index}].name",
                f"duplicate version name {version.name!r} (also versions[{first_index[version.name]}])",
            )
        first_index.setdefault(version.name, index)
        ray_service = f"{name}-{version.name}"
        if len(ray_service) > MAX_RAY_SERVICE_NAME_LENGTH:
            yield FieldError(
                f"spec.versions[{index}].name",
                f"RayService name {ray_service!r} ({len(ray_service)} characters) exceeds KubeRay's limit of "
                f"{MAX_RAY_SERVICE_NAME_LENGTH}; shorten metadata.name or the version name",
            )


def _check_resources(spec: DeepSeekDeploymentSpec) -> Iterator[FieldError]:
    resources = spec.resources
    if resources.accelerator == "cpu":
        if spec.parallelism.eplb.enabled:
            yield FieldError(
                "spec.parallelism.eplb.enabled",
                "vLLM's runtime EPLB needs CUDA or ROCm GPUs; resources.accelerator is cpu",
            )
        return
    if (
        resources.gpu_type is not None
        and resources.gpu_type not in GPU_TYPES
        and resources.gpu_memory is None
    ):
        yield FieldError(
            "spec.resources.gpuType",
            f"unknown GPU type {resources.gpu_type!r}; known: {known_gpu_types()}; or set gpuMemory",
        )
    if resources.gpu_type is None and resources.gpu_memory is None:
        yield FieldError(
            "spec.resources.gpuType",
            f"required: set gpuType (one of {known_gpu_types()}) or gpuMemory so the plan can size memory",
        )


def _check_engine_args(spec: DeepSeekDeploymentSpec) -> Iterator[FieldError]:
    """Each `engineArgs` key: not one the operator owns, an engine argument of the pinned vLLM, of
    a type it accepts (`engine_args`); the memory-relevant ones also within the planner's ranges."""
    known = engine_arg_types()
    for index, version in enumerate(spec.versions):
        base = f"spec.versions[{index}].engineArgs"
        memory_errors = engine_memory_settings(version.engine_args, base)[1]
        yield from memory_errors
        owned = planner_owned_keys(version.engine_args)
        for key in owned:
            yield FieldError(f"{base}.{key}", owned_engine_arg_message(key))
        for key, value in version.engine_args.items():
            path = f"{base}.{key}"
            if key in owned or any(error.path == path for error in memory_errors):
                continue
            if not ENGINE_ARG_PATTERN.match(key):
                hint = key.replace("-", "_").lower()
                yield FieldError(path, f"engine arguments are snake_case AsyncEngineArgs names, e.g. {hint}")
            elif key not in known:
                yield FieldError(path, _unknown_engine_arg_message(key, known))
            elif not known[key].accepts(value):
                yield FieldError(path, f"{_shown(value)} is not {known[key].describe()}")


def _unknown_engine_arg_message(key: str, known: Mapping[str, object]) -> str:
    """Not an engine argument: the closest names, and who sets a close one the operator owns."""
    message = f"not an engine argument of vLLM {VLLM_VERSION}"
    close = difflib.get_close_matches(key, list(known), n=1, cutoff=0.75)
    if not close:
        return f"{message} (AsyncEngineArgs)"
    if close[0] in PLANNER_OWNED_ENGINE_ARGS:
        return f"{message}; did you mean {close[0]}? It is {owned_engine_arg_message(close[0])}"
    return f"{message}; did you mean {close[0]}?"


# ─── sizes: what the API server and etcd would refuse, refused first with a field path ───────


def json_size(value: Any) -> int:
    """Bytes of `value` as compact JSON (UTF-8), as the API server stores a custom resource."""
    text = json.dumps(value, separators=(",", ":"), ensure_ascii=False, default=str)
    return len(text.encode("utf-8"))


def _check_sizes(spec: DeepSeekDeploymentSpec) -> Iterator[FieldError]:
    """The free-form maps: key counts (the CRD's `maxProperties` too) and bytes."""
    for index, version in enumerate(spec.versions):
        path = f"spec.versions[{index}].engineArgs"
        yield from _too_many(path, version.engine_args, MAX_ENGINE_ARGS)
        yield from _too_large(path, version.engine_args, MAX_ENGINE_ARGS_BYTES)
    architecture = spec.model.architecture
    if architecture is not None and architecture.config is not None:
        path = "spec.model.architecture.config"
        yield from _too_many(path, architecture.config, MAX_INLINE_CONFIG_KEYS)
        yield from _too_large(path, architecture.config, MAX_INLINE_CONFIG_BYTES)
    yield from _too_many(
        "spec.resources.nodeSelector", spec.resources.node_selector, MAX_NODE_SELECTOR_LABELS
    )


def _too_many(path: str, mapping: Mapping[str, Any], limit: int) -> Iterator[FieldError]:
    if len(mapping) > limit:
        yield FieldError(path, f"{len(mapping):,} keys, more than the limit of {limit:,}")


def _too_large(path: str, value: Any, limit: int) -> Iterator[FieldError]:
    size = json_size(value)
    if size > limit:
        yield FieldError(path, f"{size:,} bytes as JSON, more than the limit of {_bytes(limit)}")


def _check_resource_size(document: Mapping[str, Any]) -> Iterator[FieldError]:
    """The resource as its author wrote it (no `status`, no `managedFields`), reported at its
    largest top-level field, naming where its bytes are."""
    stored = {
        key: ({k: v for k, v in value.items() if k != "managedFields"} if key == "metadata" else value)
        for key, value in document.items()
        if key != "status" and not (key == "metadata" and not isinstance(value, Mapping))
    }
    size = json_size(stored)
    if size <= MAX_RESOURCE_BYTES or not stored:
        return
    top = max(stored, key=lambda key: json_size(stored[key]))
    path, part = _largest_part(stored[top], str(top), json_size(stored[top]))
    yield FieldError(
        str(top),
        f"the resource is {size:,} bytes as JSON, more than the limit of {_bytes(MAX_RESOURCE_BYTES)} "
        f"(etcd stores at most 1.5 MiB per object, status included); the largest part is {path} "
        f"with {part:,} bytes",
    )


def _largest_part(value: Any, path: str, size: int) -> tuple[str, int]:
    """Follow the largest child while it holds most of its parent: where the bytes are."""
    children: list[tuple[str, Any]] = []
    if isinstance(value, Mapping):
        children = [(f"{path}.{key}" if path else str(key), child) for key, child in value.items()]
    elif isinstance(value, list):
        children = [(f"{path}[{index}]", child) for index, child in enumerate(value)]
    sized = [(json_size(child), child_path, child) for child_path, child in children]
    if not sized:
        return path, size
    child_size, child_path, child = max(sized, key=lambda entry: entry[0])
    if child_size * 2 < size:
        return path, size
    return _largest_part(child, child_path, child_size)


def _bytes(count: int) -> str:
    for unit, scale in (("MiB", 1024 * 1024), ("KiB", 1024)):
        if count % scale == 0:
            return f"{count:,} bytes ({count // scale} {unit})"
    return f"{count:,} bytes"


# ─── layer 3: checks against the model's config.json ─────────────────────────────────────────


def _check_against_architecture(
    spec: DeepSeekDeploymentSpec, arch: ModelArchitecture
) -> Iterator[FieldError]:
    yield from _check_tensor_parallel(spec, arch)
    yield from _check_expert_parallel(spec, arch)
    yield from _check_group_shape(spec)
    yield from _check_context_length(spec, arch)
    yield from _check_quantization(spec, arch)


def _divisors(number: int) -> list[int]:
    return [candidate for candidate in range(1, number + 1) if number % candidate == 0]


def _listing(sizes: list[int]) -> str:
    return ", ".join(map(str, sizes)) if sizes else "none"


def valid_tensor_parallel_sizes(arch: ModelArchitecture, gpus_per_node: int) -> list[int]:
    """TP sizes that divide the attention heads and fit (evenly) inside one node."""
    return [size for size in _divisors(arch.num_attention_heads) if gpus_per_node % size == 0]


def valid_expert_parallel_sizes(arch: ModelArchitecture, redundant_experts: int) -> list[int]:
    """EP sizes that give every rank the same number of physical expert slots."""
    return _divisors(arch.n_routed_experts + redundant_experts)


def _check_tensor_parallel(spec: DeepSeekDeploymentSpec, arch: ModelArchitecture) -> Iterator[FieldError]:
    size = spec.parallelism.tensor_parallel_size
    if size is None:
        return
    path = "spec.parallelism.tensorParallelSize"
    per_node = spec.resources.gpus_per_node
    valid = _listing(valid_tensor_parallel_sizes(arch, per_node))
    if arch.num_attention_heads % size:
        yield FieldError(
            path,
            f"{size} does not divide num_attention_heads={arch.num_attention_heads} of {arch.name}; "
            f"valid sizes: {valid}",
        )
    elif per_node % size:
        yield FieldError(
            path,
            f"{size} does not divide gpusPerNode={per_node}: tensor-parallel ranks stay inside one node; "
            f"valid sizes: {valid}",
        )


def _check_expert_parallel(spec: DeepSeekDeploymentSpec, arch: ModelArchitecture) -> Iterator[FieldError]:
    parallelism = spec.parallelism
    redundant = parallelism.eplb.redundant_experts
    size = parallelism.expert_parallel_size
    if size is None and parallelism.tensor_parallel_size and parallelism.data_parallel_size:
        size = parallelism.tensor_parallel_size * parallelism.data_parallel_size
    if size is None:
        return
    physical = arch.n_routed_experts + redundant
    experts = (
        f"n_routed_experts={arch.n_routed_experts} of {arch.name}"
        if not redundant
        else f"the {physical} physical experts (n_routed_experts={arch.n_routed_experts} of {arch.name} "
        f"+ {redundant} redundant)"
    )
    path = (
        "spec.parallelism.expertParallelSize"
        if parallelism.expert_parallel_size is not None
        else "spec.parallelism.dataParallelSize"
    )
    prefix = (
        "" if parallelism.expert_parallel_size is not None else "tensorParallelSize × dataParallelSize = "
    )
    if physical % size:
        yield FieldError(
            path,
            f"{prefix}{size} does not divide {experts}; valid sizes: "
            f"{_listing(valid_expert_parallel_sizes(arch, redundant))}",
        )
    tensor = parallelism.tensor_parallel_size
    if parallelism.expert_parallel_size is not None and tensor and size % tensor:
        yield FieldError(
            path,
            f"{size} is not a multiple of tensorParallelSize={tensor}: experts are sharded over "
            "dataParallelSize × tensorParallelSize ranks",
        )
    if parallelism.eplb.enabled and size == 1:
        yield FieldError(
            "spec.parallelism.eplb.enabled",
            "EPLB balances experts across expert-parallel ranks; a group of one rank has nothing to balance",
        )


def _check_group_shape(spec: DeepSeekDeploymentSpec) -> Iterator[FieldError]:
    parallelism = spec.parallelism
    tensor, data = parallelism.tensor_parallel_size, parallelism.data_parallel_size
    if tensor is None or data is None:
        return
    per_node = spec.resources.gpus_per_node
    ranks = tensor * data
    if ranks % per_node and per_node % ranks:
        whole_nodes = [per_node * nodes for nodes in range(1, 5)]
        yield FieldError(
            "spec.parallelism.dataParallelSize",
            f"a group of tensorParallelSize × dataParallelSize = {tensor} × {data} = {ranks} GPUs "
            f"neither fills whole nodes of gpusPerNode={per_node} nor fits one evenly; valid GPUs per group: "
            f"{_listing(_divisors(per_node))}, {_listing(whole_nodes)}, …",
        )


def _check_context_length(spec: DeepSeekDeploymentSpec, arch: ModelArchitecture) -> Iterator[FieldError]:
    max_model_len = spec.model.max_model_len
    if max_model_len is not None and max_model_len > arch.max_position_embeddings:
        yield FieldError(
            "spec.model.maxModelLen",
            f"{max_model_len} exceeds max_position_embeddings={arch.max_position_embeddings} of {arch.name}",
        )
    context = max_model_len or arch.max_position_embeddings
    max_tokens = spec.serving.limits.max_tokens
    if max_tokens is not None and max_tokens >= context:
        yield FieldError(
            "spec.serving.limits.maxTokens",
            f"{max_tokens} leaves no room for a prompt in the model's context of {context} tokens",
        )


def _check_quantization(spec: DeepSeekDeploymentSpec, arch: ModelArchitecture) -> Iterator[FieldError]:
    requested = spec.model.quantization
    checkpoint = arch.quantization.method if arch.quantization else None
    if requested in ("auto",) or checkpoint is None or requested == checkpoint:
        return
    if requested == "none":
        message = (
            f"the checkpoint of {arch.name} is quantized ({checkpoint}) and vLLM loads it as such; "
            f"use auto or {checkpoint}"
        )
    else:
        message = (
            f"{requested} conflicts with the checkpoint's quantization_config ({checkpoint}) of {arch.name}"
        )
    yield FieldError("spec.model.quantization", message)
