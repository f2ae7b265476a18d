"""Every way a DeepSeekDeployment can be wrong is reported at its exact field path.

Each case derives a broken resource from a shipped example and names the field paths that must be
reported (all of them, no more) and a fragment of what must be said there. Cases marked
`server=True` must also be refused by the API server itself, through the generated CRD's schema
and CEL rules evaluated by the test environment's validator, at the same path.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import pytest

from deepseek_operator.crdgen import render_crd
from deepseek_operator.errors import InvalidSpec
from deepseek_operator.modelcfg import ArchitectureContext
from deepseek_operator.modelcfg.catalog import catalog_config
from deepseek_operator.testing.openapi import validate_custom_resource
from deepseek_operator.validation import validate_deployment
from tests.api.resources import DELETE, EXAMPLES, example, with_changes

CRD_SCHEMA = render_crd()["spec"]["versions"][0]["schema"]["openAPIV3Schema"]

V3_WITHOUT_HINTS = {
    "spec.model.source": "hf://deepseek-ai/DeepSeek-V3",
    "spec.parallelism.tensorParallelSize": DELETE,
    "spec.parallelism.dataParallelSize": DELETE,
    "spec.parallelism.eplb": {},
}


@dataclass(frozen=True)
class Case:
    id: str
    base: str
    changes: dict[str, Any]
    expected: dict[str, str]
    """Field path -> fragment of the message there."""
    server: bool = False
    """The API server must refuse it too, at the same paths."""
    config_maps: dict[str, dict[str, str]] = field(default_factory=dict)
    server_paths: set[str] | None = None
    """Where the API server reports it, when not at `expected`'s paths."""
    exact: bool = True
    """Whether `expected` lists every reported path (False: at least these)."""


CASES = [
    Case(
        "expert-parallel-does-not-divide-experts",
        "deepseek-r1-h100",
        {**V3_WITHOUT_HINTS, "spec.parallelism.expertParallelSize": 48},
        {
            "spec.parallelism.expertParallelSize": "48 does not divide n_routed_experts=256 of deepseek-v3; "
            "valid sizes: 1, 2, 4, 8, 16, 32, 64, 128, 256"
        },
    ),
    Case(
        "expert-parallel-not-tp-times-dp",
        "deepseek-r1-h100",
        {"spec.parallelism.expertParallelSize": 32},
        {
            "spec.parallelism.expertParallelSize": "must equal tensorParallelSize × dataParallelSize = "
            "8 × 2 = 16"
        },
        server=True,
    ),
    Case(
        "expert-parallel-with-redundant-experts",
        "deepseek-r1-h100",
        {"spec.parallelism.eplb.redundantExperts": 30},
        {
            "spec.parallelism.dataParallelSize": "tensorParallelSize × dataParallelSize = 16 does not "
            "divide the 286 physical experts (n_routed_experts=256 of deepseek-r1 + 30 redundant)"
        },
    ),
    Case(
        "tensor-parallel-does-not-divide-heads",
        "deepseek-r1-h100",
        {"spec.parallelism.tensorParallelSize": 6, "spec.parallelism.dataParallelSize": DELETE},
        {
            "spec.parallelism.tensorParallelSize": "6 does not divide num_attention_heads=128 of "
            "deepseek-r1; valid sizes: 1, 2, 4, 8"
        },
    ),
    Case(
        "tensor-parallel-larger-than-node",
        "deepseek-r1-h100",
        {"spec.parallelism.tensorParallelSize": 16, "spec.parallelism.dataParallelSize": 1},
        {"spec.parallelism.tensorParallelSize": "16 does not divide gpusPerNode=8"},
    ),
    Case(
        "group-not-whole-nodes",
        "deepseek-r1-h100",
        {"spec.parallelism.tensorParallelSize": 4, "spec.parallelism.dataParallelSize": 3},
        {"spec.parallelism.dataParallelSize": "4 × 3 = 12 GPUs neither fills whole nodes"},
    ),
    Case(
        "context-longer-than-model",
        "deepseek-r1-h100",
        {"spec.model.maxModelLen": 200_000},
        {"spec.model.maxModelLen": "200000 exceeds max_position_embeddings=163840 of deepseek-r1"},
    ),
    Case(
        "max-tokens-fill-context",
        "deepseek-r1-h100",
        {"spec.serving.limits.maxTokens": 65536},
        {
            "spec.serving.limits.maxTokens": "leaves no room for a prompt in the model's context of "
            "65536 tokens"
        },
    ),
    Case(
        "quantization-none-on-fp8-checkpoint",
        "deepseek-r1-h100",
        {"spec.model.quantization": "none"},
        {"spec.model.quantization": "is quantized (fp8)"},
    ),
    Case(
        "quantization-conflicts-with-checkpoint",
        "deepseek-r1-h100",
        {"spec.model.quantization": "awq"},
        {"spec.model.quantization": "awq conflicts with the checkpoint's quantization_config (fp8)"},
    ),
    Case(
        "misspelled-field",
        "deepseek-r1-h100",
        {"spec.model.maxModelLength": 4096},
        {"spec.model.maxModelLength": "unknown field; did you mean maxModelLen?"},
    ),
    Case(
        "source-scheme",
        "deepseek-r1-h100",
        {"spec.model.source": "https://huggingface.co/deepseek-ai/DeepSeek-R1"},
        {"spec.model.source": "must be hf://org/name[@revision], s3://bucket/prefix"},
        server=True,
    ),
    Case(
        "dtype-enum",
        "deepseek-r1-h100",
        {"spec.model.dtype": "fp32"},
        {"spec.model.dtype": "'fp32' is not one of 'auto', 'bfloat16' or 'float16'"},
        server=True,
    ),
    Case(
        "no-versions",
        "deepseek-r1-h100",
        {"spec.versions": []},
        {"spec.versions": "at least 1 item"},
        server=True,
    ),
    Case(
        "duplicate-version-names",
        "deepseek-r1-h100",
        {"spec.versions[1].name": "v1"},
        {"spec.versions[1].name": "duplicate version name 'v1' (also versions[0])"},
        server=True,
        server_paths={"spec.versions[1]"},
    ),
    Case(
        "version-name-not-dns-label",
        "deepseek-r1-h100",
        {"spec.versions[0].name": "V1.0"},
        {"spec.versions[0].name": "'V1.0' must be a lowercase DNS label"},
        server=True,
    ),
    Case(
        "ray-service-name-too-long",
        "deepseek-r1-h100",
        {"metadata.name": "deepseek-r1-production-us-east-1", "spec.versions[1].name": "canary-2026-11-22"},
        {"spec.versions[1].name": "exceeds KubeRay's limit of 40"},
    ),
    Case(
        "planner-owned-engine-arg",
        "deepseek-r1-h100",
        {"spec.versions[1].engineArgs.tensor_parallel_size": 4},
        {"spec.versions[1].engineArgs.tensor_parallel_size": "use spec.parallelism.tensorParallelSize"},
    ),
    Case(
        "kebab-case-engine-arg",
        "deepseek-r1-h100",
        {"spec.versions[0].engineArgs.max-num-batched-tokens": 8192},
        {"spec.versions[0].engineArgs.max-num-batched-tokens": "e.g. max_num_batched_tokens"},
    ),
    Case(
        "planner-owned-nested-engine-arg",
        "tiny-local",
        {
            "spec.versions[0].engineArgs.override_generation_config": {
                "temperature": 0.6,
                "max_new_tokens": 64,
            }
        },
        {
            "spec.versions[0].engineArgs.override_generation_config.max_new_tokens": (
                "set by the operator; use spec.serving.limits.maxTokens"
            )
        },
    ),
    Case(
        "api-key-in-engine-args",
        "tiny-local",
        {"spec.versions[0].engineArgs.api_key": "sk-123"},
        {"spec.versions[0].engineArgs.api_key": "set by the operator; use spec.serving.apiKeySecretRef"},
    ),
    Case(
        "misspelt-engine-arg",
        "tiny-local",
        {"spec.versions[0].engineArgs.max_num_seq": 8},
        {
            "spec.versions[0].engineArgs.max_num_seq": (
                "not an engine argument of vLLM 0.32.0; did you mean max_num_seqs?"
            )
        },
    ),
    Case(
        "misspelt-planner-owned-engine-arg",
        "tiny-local",
        {"spec.versions[0].engineArgs.tensor_parallel": 2},
        {
            "spec.versions[0].engineArgs.tensor_parallel": (
                "not an engine argument of vLLM 0.32.0; did you mean tensor_parallel_size? "
                "It is set by the operator; use spec.parallelism.tensorParallelSize"
            )
        },
    ),
    Case(
        "unknown-engine-arg",
        "tiny-local",
        {"spec.versions[0].engineArgs.turbo": True},
        {"spec.versions[0].engineArgs.turbo": "not an engine argument of vLLM 0.32.0 (AsyncEngineArgs)"},
    ),
    Case(
        "engine-arg-wrong-type",
        "tiny-local",
        {"spec.versions[0].engineArgs.max_num_seqs": "many"},
        {"spec.versions[0].engineArgs.max_num_seqs": "'many' is not an integer or null"},
    ),
    Case(
        "engine-arg-boolean-for-integer",
        "tiny-local",
        {"spec.versions[0].engineArgs.max_num_seqs": True},
        {"spec.versions[0].engineArgs.max_num_seqs": "True is not an integer or null"},
    ),
    Case(
        "engine-arg-string-for-boolean",
        "tiny-local",
        {"spec.versions[0].engineArgs.enforce_eager": "yes"},
        {"spec.versions[0].engineArgs.enforce_eager": "'yes' is not a boolean"},
    ),
    Case(
        "engine-arg-not-a-choice",
        "tiny-local",
        {"spec.versions[0].engineArgs.scheduling_policy": "lifo"},
        {"spec.versions[0].engineArgs.scheduling_policy": "'lifo' is not one of 'fcfs', 'priority'"},
    ),
    Case(
        "engine-arg-mapping-for-list",
        "tiny-local",
        {"spec.versions[0].engineArgs.cudagraph_capture_sizes": {"1": 2}},
        {"spec.versions[0].engineArgs.cudagraph_capture_sizes": "{'1': 2} is not a list or null"},
    ),
    Case(
        "engine-arg-memory-range-reported-once",
        "tiny-local",
        {"spec.versions[0].engineArgs.gpu_memory_utilization": "high"},
        {"spec.versions[0].engineArgs.gpu_memory_utilization": "'high' must be a number in [0.05, 1]"},
    ),
    Case(
        "too-many-engine-args",
        "tiny-local",
        {"spec.versions[0].engineArgs": {f"extra_{index}": index for index in range(129)}},
        {"spec.versions[0].engineArgs": "129 keys, more than the limit of 128"},
        server=True,
        exact=False,
    ),
    Case(
        "engine-args-too-large",
        "tiny-local",
        {"spec.versions[0].engineArgs.generation_config": "x" * 70_000},
        {"spec.versions[0].engineArgs": "70,096 bytes as JSON, more than the limit of 65,536 bytes (64 KiB)"},
    ),
    Case(
        "too-many-inline-config-keys",
        "deepseek-r1-h200",
        {
            "spec.model.architecture": {
                "config": {**catalog_config("deepseek-r1"), **{f"k{i}": i for i in range(211)}}
            }
        },
        {"spec.model.architecture.config": "257 keys, more than the limit of 256"},
        server=True,
    ),
    Case(
        "inline-config-too-large",
        "deepseek-r1-h200",
        {"spec.model.architecture": {"config": {**catalog_config("deepseek-r1"), "notes": "x" * 300_000}}},
        {"spec.model.architecture.config": "more than the limit of 262,144 bytes (256 KiB)"},
    ),
    Case(
        "too-many-node-selector-labels",
        "deepseek-r1-h200",
        {"spec.resources.nodeSelector": {f"example.com/label-{index}": "yes" for index in range(65)}},
        {"spec.resources.nodeSelector": "65 keys, more than the limit of 64"},
        server=True,
    ),
    Case(
        "node-selector-value-too-long",
        "deepseek-r1-h200",
        {"spec.resources.nodeSelector": {"pool": "p" * 64}},
        {"spec.resources.nodeSelector.pool": "64 characters, more than the limit of 63"},
        server=True,
    ),
    Case(
        "chat-template-too-long",
        "tiny-local",
        {"spec.model.tokenizer": {"chatTemplate": "{{ messages }}" + " " * 65_523}},
        {"spec.model.tokenizer.chatTemplate": "65,537 characters, more than the limit of 65,536"},
        server=True,
    ),
    Case(
        "resource-too-large",
        "tiny-local",
        {
            "spec.versions": [
                {"name": f"v{index}", "engineArgs": {"generation_config": "x" * 65_000}}
                for index in range(16)
            ],
            "spec.model.tokenizer": {"chatTemplate": "{{ messages }}" + " " * 20_000},
        },
        {
            "spec": "the resource is 1,061,370 bytes as JSON, more than the limit of 1,048,576 bytes (1 MiB) "
            "(etcd stores at most 1.5 MiB per object, status included); the largest part is spec.versions "
            "with 1,040,839 bytes"
        },
    ),
    Case(
        "autoscaling-max-below-min",
        "deepseek-r1-h100",
        {"spec.autoscaling.minGroups": 3, "spec.autoscaling.maxGroups": 2},
        {"spec.autoscaling.maxGroups": "2 is less than minGroups=3"},
        server=True,
    ),
    Case(
        "autoscaling-zero-without-opt-in",
        "deepseek-r1-h100",
        {"spec.autoscaling.minGroups": 0},
        {"spec.autoscaling.minGroups": "0 needs scaleToZero: true"},
        server=True,
    ),
    Case(
        "zero-groups-without-autoscaling",
        "tiny-local",
        {"spec.groups": 0},
        {"spec.groups": "0 stops serving: set at least 1, or autoscaling with scaleToZero: true"},
        server=True,
    ),
    Case(
        "groups-outside-autoscaling-bounds",
        "deepseek-r1-h100",
        {"spec.groups": 9},
        {"spec.groups": "9 lies outside autoscaling bounds 1..4"},
        server=True,
    ),
    Case(
        "redundant-experts-without-eplb",
        "deepseek-r1-h100",
        {"spec.parallelism.eplb.enabled": False},
        {"spec.parallelism.eplb.redundantExperts": "32 redundant experts need EPLB"},
        server=True,
    ),
    Case(
        "eplb-on-cpu",
        "tiny-local",
        {"spec.parallelism.eplb.enabled": True},
        {"spec.parallelism.eplb.enabled": "needs CUDA or ROCm GPUs; resources.accelerator is cpu"},
    ),
    Case(
        "eplb-with-one-rank",
        "deepseek-r1-h200",
        {"spec.parallelism.dataParallelSize": 1, "spec.parallelism.eplb.redundantExperts": 0},
        {"spec.parallelism.eplb.enabled": "a group of one rank has nothing to balance"},
    ),
    Case(
        "step-with-two-actions",
        "deepseek-r1-h100",
        {"spec.rollout.steps[0].pause": {"durationSeconds": 60}},
        {"spec.rollout.steps[0]": "exactly one of setWeight, pause, analysis"},
        server=True,
    ),
    Case(
        "weight-above-100",
        "deepseek-r1-h100",
        {"spec.rollout.steps[2].setWeight": 150},
        {"spec.rollout.steps[2].setWeight": "150 must be less than or equal to 100"},
        server=True,
    ),
    Case(
        "analysis-names-undefined-metric",
        "deepseek-r1-h100",
        {"spec.rollout.steps[1].analysis.metrics": ["error-rate", "itl-p99"]},
        {"spec.rollout.steps": "[1].analysis.metrics names itl-p99, not defined"},
        server=True,
    ),
    Case(
        "analysis-step-without-analysis",
        "deepseek-r1-h100",
        {"spec.rollout.analysis": DELETE},
        {"spec.rollout.steps": "analysis steps need rollout.analysis"},
        server=True,
    ),
    Case(
        "metric-with-builtin-and-query",
        "deepseek-r1-h100",
        {"spec.rollout.analysis.metrics[0].query": "sum(rate(errors[1m]))"},
        {"spec.rollout.analysis.metrics[0]": "set exactly one of builtin, query"},
        server=True,
    ),
    Case(
        "prometheus-without-scheme",
        "deepseek-r1-h100",
        {"spec.rollout.analysis.prometheus.address": "prometheus:9090"},
        {"spec.rollout.analysis.prometheus.address": "'prometheus:9090' must match"},
        server=True,
    ),
    Case(
        "unknown-gpu-type",
        "deepseek-r1-h100",
        {"spec.resources.gpuType": "H300"},
        {"spec.resources.gpuType": "unknown GPU type 'H300'; known: A100-40GB"},
    ),
    Case(
        "no-gpu-memory",
        "deepseek-r1-h100",
        {"spec.resources.gpuType": DELETE},
        {"spec.resources.gpuType": "required: set gpuType"},
    ),
    Case(
        "gpu-type-on-cpu",
        "tiny-local",
        {"spec.resources.gpuType": "H100"},
        {"spec.resources.accelerator": "cpu ranks have no gpuType or gpuMemory"},
        server=True,
    ),
    Case(
        "gpu-memory-not-a-quantity",
        "deepseek-r1-h200",
        {"spec.resources.gpuMemory": "141 gigabytes"},
        {"spec.resources.gpuMemory": "must be a quantity such as 80Gi"},
        server=True,
    ),
    Case(
        "toleration-operator",
        "deepseek-r1-h100",
        {"spec.resources.tolerations[0].operator": "Maybe"},
        {"spec.resources.tolerations[0].operator": "'Maybe' is not one of 'Exists' or 'Equal'"},
        server=True,
    ),
    Case(
        "port-out-of-range",
        "deepseek-r1-h100",
        {"spec.serving.port": 70000},
        {"spec.serving.port": "70000 must be less than or equal to 65535"},
        server=True,
    ),
    Case(
        "two-architecture-sources",
        "deepseek-r1-h200",
        {"spec.model.architecture.config": {"model_type": "deepseek_v3"}},
        {"spec.model.architecture": "set exactly one of catalog, config, configMapRef, path"},
        server=True,
    ),
    Case(
        "unknown-catalog-entry",
        "deepseek-r1-h200",
        {"spec.model.architecture.catalog": "deepseek-v4"},
        {
            "spec.model.architecture.catalog": "unknown architecture 'deepseek-v4'; the catalog has "
            "deepseek-r1"
        },
    ),
    Case(
        "architecture-not-inferable",
        "deepseek-r1-h100",
        {"spec.model.source": "s3://models/deepseek-r1"},
        {"spec.model.architecture": "the architecture of s3://models/deepseek-r1 cannot be inferred"},
    ),
    Case(
        "config-map-missing",
        "deepseek-r1-h200",
        {"spec.model.architecture": {"configMapRef": {"name": "r1-config"}}},
        {"spec.model.architecture.configMapRef.name": "ConfigMap 'r1-config' not found"},
    ),
    Case(
        "config-map-key-missing",
        "deepseek-r1-h200",
        {"spec.model.architecture": {"configMapRef": {"name": "r1-config"}}},
        {"spec.model.architecture.configMapRef.key": "has no key 'config.json' (keys: other.json)"},
        config_maps={"r1-config": {"other.json": "{}"}},
    ),
    Case(
        "inline-config-not-deepseek",
        "deepseek-r1-h200",
        {"spec.model.architecture": {"config": {"model_type": "llama", "hidden_size": 4096}}},
        {
            "spec.model.architecture.config.model_type": "'llama' is not a DeepSeek MoE model",
            "spec.model.architecture.config.n_routed_experts": "required",
            "spec.model.architecture.config.num_attention_heads": "required",
        },
        exact=False,
    ),
    Case(
        "missing-model",
        "deepseek-r1-h100",
        {"spec.model": DELETE},
        {"spec.model": "required"},
        server=True,
    ),
]


def _context(case: Case) -> ArchitectureContext:
    return ArchitectureContext(config_maps=case.config_maps.get, base_dir=EXAMPLES)


def _reported(document: dict[str, Any], case: Case) -> dict[str, list[str]]:
    with pytest.raises(InvalidSpec) as raised:
        validate_deployment(document, _context(case))
    reported: dict[str, list[str]] = {}
    for error in raised.value.errors:
        reported.setdefault(error.path, []).append(error.message)
    return reported


@pytest.mark.parametrize("case", CASES, ids=[case.id for case in CASES])
def test_invalid_resource_is_reported_at_its_field(case: Case) -> None:
    document = with_changes(example(case.base), case.changes)
    reported = _reported(document, case)
    if case.exact:
        assert set(reported) == set(case.expected), reported
    else:
        assert set(case.expected) <= set(reported), reported
    for path, fragment in case.expected.items():
        assert any(fragment in message for message in reported[path]), (path, reported[path])


@pytest.mark.parametrize("case", [c for c in CASES if c.server], ids=[c.id for c in CASES if c.server])
def test_api_server_refuses_what_the_crd_can_check(case: Case) -> None:
    document = with_changes(example(case.base), case.changes)
    refused = validate_custom_resource(CRD_SCHEMA, document)
    refused_paths = {error.field for error in refused.errors}
    assert refused_paths == (case.server_paths or set(case.expected)), [
        str(error) for error in refused.errors
    ]


@pytest.mark.parametrize("name", ["tiny-local", "deepseek-r1-h100", "deepseek-r1-h200"])
def test_examples_are_valid_for_us_and_for_the_api_server(name: str) -> None:
    document = example(name)
    validated = validate_deployment(document, ArchitectureContext(base_dir=EXAMPLES))
    assert validated.resource.metadata.name == document["metadata"]["name"]
    accepted = validate_custom_resource(CRD_SCHEMA, document)
    assert accepted.errors == []
    assert accepted.unknown_fields == []


@pytest.mark.parametrize(
    "changes",
    [
        pytest.param({"spec.rollout": {"historyLimit": 20}}, id="rollout-without-steps"),
        pytest.param({"spec.rollout": {"steps": []}}, id="rollout-with-no-steps"),
        pytest.param({"spec.autoscaling": {"maxGroups": 2}}, id="autoscaling-defaults"),
        pytest.param({"spec.parallelism": {"eplb": {}}}, id="empty-eplb"),
    ],
)
def test_sparse_valid_objects_pass_every_cel_rule(changes: dict[str, Any]) -> None:
    """Rules must hold on what the API server stores: optional fields absent, not defaulted."""
    document = with_changes(example("deepseek-r1-h100"), changes)
    assert validate_custom_resource(CRD_SCHEMA, document).errors == []
    validate_deployment(document, ArchitectureContext())


def test_there_are_at_least_25_invalid_resources() -> None:
    assert len(CASES) >= 25
    assert len({case.id for case in CASES}) == len(CASES)


def test_structural_errors_do_not_hide_the_others() -> None:
    document = with_changes(
        example("deepseek-r1-h100"),
        {
            "spec.serving.port": "eighty",
            "spec.autoscaling.maxGroups": DELETE,
            "spec.parallelism.tensorParallelSize": 6,
            "spec.parallelism.dataParallelSize": DELETE,
        },
    )
    with pytest.raises(InvalidSpec) as raised:
        validate_deployment(document, ArchitectureContext())
    assert [error.path for error in raised.value.errors] == [
        "spec.autoscaling.maxGroups",
        "spec.parallelism.tensorParallelSize",
        "spec.serving.port",
    ]


def test_an_unrepairable_resource_reports_its_structural_errors() -> None:
    document = with_changes(example("tiny-local"), {"spec.versions[0].name": "UPPER", "spec.model": DELETE})
    with pytest.raises(InvalidSpec) as raised:
        validate_deployment(document, ArchitectureContext())
    assert [error.path for error in raised.value.errors] == ["spec.model", "spec.versions[0].name"]


@pytest.mark.parametrize(
    "changes",
    [
        pytest.param({"status": {"message": "x" * 1_200_000}}, id="status"),
        pytest.param(
            {"metadata.managedFields": [{"manager": "m" * 1_200_000, "operation": "Update"}]},
            id="managed-fields",
        ),
    ],
)
def test_what_others_write_does_not_count_toward_the_resource_size(changes: dict[str, Any]) -> None:
    """The webhook (no status on create) and the reconciler (with status) measure the same bytes."""
    document = with_changes(example("tiny-local"), changes)
    validate_deployment(document, ArchitectureContext(base_dir=EXAMPLES))
