"""Validate a `DeepSeekDeployment` completely before anything starts.

Three layers, every error of each reported with its field path and what would be valid:
1. structure (pydantic: types, bounds, enums, unknown fields);
2. cross-field rules (`api.rules`; the API server checks the same rules in CEL);
3. checks against the model's real `config.json` and the node shape: parallel sizes against
   attention heads and routed experts, context length, quantization, engine arguments, names.

Layer 3 runs only when the structure is sound (it needs typed values), but then reports every
problem of layers 2 and 3 together. `dsd validate`, the admission webhook and the reconciler all
call `validate_deployment`, so they say exactly the same words.
"""

from __future__ import annotations

import copy
import difflib
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
    MODEL_SOURCE_PATTERN,
    DeepSeekDeployment,
    DeepSeekDeploymentSpec,
)
from deepseek_operator.errors import FieldError, InvalidSpec
from deepseek_operator.hardware import GPU_TYPES, known_gpu_types
from deepseek_operator.modelcfg import ArchitectureContext, ModelArchitecture, resolve_architecture
from deepseek_operator.planner.memory import engine_memory_settings
from deepseek_operator.quantity import QUANTITY_PATTERN

__all__ = [
    "MAX_RAY_SERVICE_NAME_LENGTH",
    "PLANNER_OWNED_ENGINE_ARGS",
    "ValidatedDeployment",
    "parse_deployment",
    "validate_deployment",
]

# KubeRay rejects RayService names longer than this: it derives the RayCluster and Service names
# from them, and those must stay within 63 characters.
MAX_RAY_SERVICE_NAME_LENGTH = 40

# Engine arguments the planner or the API sets; users change them through the named field.
PLANNER_OWNED_ENGINE_ARGS: Mapping[str, str] = {
    "model": "spec.model.source",
    "revision": "spec.versions[].modelRevision",
    "tokenizer": "spec.model.tokenizer.source",
    "tokenizer_mode": "spec.model.tokenizer.mode",
    "served_model_name": "spec.model.servedModelName",
    "dtype": "spec.model.dtype",
    "quantization": "spec.model.quantization",
    "max_model_len": "spec.model.maxModelLen",
    "tensor_parallel_size": "spec.parallelism.tensorParallelSize",
    "data_parallel_size": "spec.parallelism.dataParallelSize",
    "data_parallel_rank": "spec.parallelism.dataParallelSize",
    "data_parallel_size_local": "spec.parallelism.dataParallelSize",
    "data_parallel_address": "spec.parallelism.dataParallelSize",
    "data_parallel_rpc_port": "spec.parallelism.dataParallelSize",
    "data_parallel_backend": "spec.parallelism.dataParallelSize",
    "pipeline_parallel_size": "spec.parallelism (pipeline parallelism is not used)",
    "enable_expert_parallel": "spec.parallelism.expertParallelSize",
    "enable_eplb": "spec.parallelism.eplb.enabled",
    "eplb_config": "spec.parallelism.eplb",
    "num_redundant_experts": "spec.parallelism.eplb.redundantExperts",
    "distributed_executor_backend": "spec.resources.accelerator",
    "trust_remote_code": "nothing: DeepSeek V2/V3 run without remote code",
}

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
    if resource is None:
        raise InvalidSpec(structural)
    errors = list(find_rule_violations(resource.spec, "spec"))
    errors += _check_names(resource)
    errors += _check_resources(resource.spec)
    errors += _check_engine_args(resource.spec)
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
        return FieldError(path, f"{value!r} {meaning}")
    if kind == "literal_error":
        return FieldError(path, f"{value!r} is not one of {context.get('expected')}")
    message = detail["msg"].removeprefix("Input should be ").removeprefix("Value error, ")
    if isinstance(value, str | int | float | bool) and kind not in ("string_type", "int_type"):
        return FieldError(path, f"{value!r} must be {message}")
    return FieldError(path, f"must be {message}")


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
    for index, version in enumerate(spec.versions):
        yield from engine_memory_settings(version.engine_args, f"spec.versions[{index}].engineArgs")[1]
        for key in version.engine_args:
            path = f"spec.versions[{index}].engineArgs.{key}"
            if key in PLANNER_OWNED_ENGINE_ARGS:
                yield FieldError(path, f"set by the operator; use {PLANNER_OWNED_ENGINE_ARGS[key]}")
            elif not ENGINE_ARG_PATTERN.match(key):
                hint = key.replace("-", "_").lower()
                yield FieldError(path, f"engine arguments are snake_case AsyncEngineArgs names, e.g. {hint}")


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
