"""The ServingArgs contract and its mapping to vLLM engine arguments."""

from __future__ import annotations

import subprocess
import sys
from typing import Any

import pytest
from pydantic import ValidationError

from deepseek_serving.config import (
    CPU_WORKER_EXTENSION,
    OPERATOR_RENDERED_ENGINE_ARGS,
    PLANNER_OWNED_ENGINE_ARGS,
    EngineArgsConflict,
    FaultInjection,
    ServingArgs,
    engine_kwargs,
)

MINIMAL: dict[str, Any] = {
    "deploymentName": "chat",
    "versionName": "chat-7d9f2c1a",
    "modelSource": "/models/deepseek",
    "servedModelName": "deepseek-v3",
}


def args(**camel: Any) -> ServingArgs:
    return ServingArgs.model_validate(MINIMAL | camel)


def test_camel_case_round_trip() -> None:
    full = args(
        dataParallelSize=2,
        tensorParallelSize=2,
        enableExpertParallel=True,
        eplb={
            "enabled": True,
            "numRedundantExperts": 4,
            "policySettings": '{"regime":"prefill","gpuType":"H200"}',
        },
        autoscaling={"minGroups": 1, "maxGroups": 3, "targetQueueDepthPerGroup": 16},
        placement={"accelerator": "gpu", "bundles": [{"GPU": 1, "CPU": 8}] * 4, "strategy": "SPREAD"},
        engineArgs={"max_num_seqs": 64},
        apiKeyEnv="OPENAI_KEY",
        limits={"maxConcurrentRequestsPerRank": 32, "requestTimeoutS": 30, "maxTokens": 1024},
    )
    rendered = full.model_dump(mode="json", by_alias=True)
    assert "dataParallelSize" in rendered
    assert rendered["limits"]["maxConcurrentRequestsPerRank"] == 32
    assert ServingArgs.model_validate(rendered) == full


def test_snake_case_names_are_accepted_too() -> None:
    assert ServingArgs(
        deployment_name="chat", version_name="v1", model_source="/m", served_model_name="m"
    ) == args(versionName="v1", modelSource="/m", servedModelName="m")


@pytest.mark.parametrize(
    ("camel", "message"),
    [
        pytest.param({"unknownField": 1}, "Extra inputs are not permitted", id="unknown-key"),
        pytest.param({"dataParallelSize": 2}, "placement.bundles has 1 bundles", id="bundles-per-group"),
        pytest.param({"eplb": {"enabled": True}}, "requires enableExpertParallel", id="eplb-needs-ep"),
        pytest.param(
            {"eplb": {"policySettings": '{"regime":"sideways"}'}}, "regime", id="bad-policy-settings"
        ),
        pytest.param({"autoscaling": {"minGroups": 3, "maxGroups": 2}}, r"maxGroups \(2\)", id="bounds"),
        pytest.param({"routePrefix": "v1"}, "pattern", id="route-prefix"),
        pytest.param({"limits": {"maxTokens": 0}}, "greater than or equal to 1", id="max-tokens"),
        pytest.param(
            {"faultInjection": {"errorPercent": -1}}, "greater than or equal to 0", id="fault-share<0"
        ),
        pytest.param(
            {"faultInjection": {"errorPercent": 100.5}}, "less than or equal to 100", id="fault-share>100"
        ),
        pytest.param({"faultInjection": {"delayS": -0.1}}, "greater than or equal to 0", id="fault-delay<0"),
        pytest.param(
            {"faultInjection": {"errorRate": 5}}, "Extra inputs are not permitted", id="fault-unknown"
        ),
    ],
)
def test_invalid_specs_are_refused(camel: dict[str, Any], message: str) -> None:
    with pytest.raises(ValidationError, match=message):
        args(**camel)


def test_fault_injection_is_off_unless_set_and_round_trips_in_camel_case() -> None:
    assert args().fault_injection is None
    assert "faultInjection" not in args().model_dump(mode="json", by_alias=True, exclude_none=True)
    faulty = args(faultInjection={"errorPercent": 12.5, "delayS": 0.5})
    assert faulty.fault_injection == FaultInjection(error_percent=12.5, delay_s=0.5)
    rendered = faulty.model_dump(mode="json", by_alias=True, exclude_none=True)
    assert rendered["faultInjection"] == {"errorPercent": 12.5, "delayS": 0.5}
    assert ServingArgs.model_validate(rendered) == faulty
    assert FaultInjection() == FaultInjection(error_percent=0.0, delay_s=0.0)
    with pytest.raises(ValidationError, match="frozen"):
        faulty.fault_injection.error_percent = 1.0  # type: ignore[misc, union-attr]


def test_fault_injection_is_documented_as_test_only() -> None:
    schema = ServingArgs.model_json_schema(by_alias=True)
    assert schema["properties"]["faultInjection"]["description"].startswith("TEST ONLY")
    assert "TEST ONLY" in (FaultInjection.__doc__ or "")


def test_rank_bundles_are_the_tp_slices_of_the_group() -> None:
    bundles = [{"GPU": 1, "rank": float(index)} for index in range(4)]
    layout = args(dataParallelSize=2, tensorParallelSize=2, placement={"bundles": bundles})
    assert layout.ranks_per_group == 4
    assert layout.rank_bundles(1) == bundles[2:]


def test_importing_the_contract_loads_no_engine() -> None:
    probe = "import sys, deepseek_serving.config; print(sorted({'ray', 'vllm', 'torch'} & set(sys.modules)))"
    loaded = subprocess.run([sys.executable, "-c", probe], check=True, capture_output=True, text=True).stdout
    assert loaded.strip() == "[]"


def test_json_schema_is_available_for_the_operator() -> None:
    schema = ServingArgs.model_json_schema(by_alias=True)
    assert {"deploymentName", "engineArgs", "placement"} <= set(schema["properties"])
    assert schema["additionalProperties"] is False


DEFAULT_GENERATION = {"override_generation_config": {"max_new_tokens": 4096}}


@pytest.mark.parametrize(
    ("camel", "expected"),
    [
        pytest.param(
            {},
            {
                "tensor_parallel_size": 1,
                "data_parallel_size": 1,
                "enable_expert_parallel": False,
                "enable_eplb": False,
                "dtype": "auto",
            }
            | DEFAULT_GENERATION,
            id="defaults",
        ),
        pytest.param(
            {
                "dataParallelSize": 4,
                "tensorParallelSize": 2,
                "enableExpertParallel": True,
                "placement": {"bundles": [{"GPU": 1}] * 8},
                "maxModelLen": 8192,
                "dtype": "bfloat16",
                "quantization": "fp8",
            },
            {
                "tensor_parallel_size": 2,
                "data_parallel_size": 4,
                "enable_expert_parallel": True,
                "enable_eplb": False,
                "dtype": "bfloat16",
                "quantization": "fp8",
                "max_model_len": 8192,
            }
            | DEFAULT_GENERATION,
            id="dp-tp-ep",
        ),
        pytest.param(
            {
                "enableExpertParallel": True,
                "eplb": {"enabled": True, "numRedundantExperts": 32, "windowSize": 500, "stepInterval": 2000},
            },
            {
                "tensor_parallel_size": 1,
                "data_parallel_size": 1,
                "enable_expert_parallel": True,
                "enable_eplb": True,
                "eplb_config": {"window_size": 500, "step_interval": 2000, "num_redundant_experts": 32},
                "dtype": "auto",
            }
            | DEFAULT_GENERATION,
            id="eplb",
        ),
        pytest.param(
            {"placement": {"accelerator": "cpu", "bundles": [{"CPU": 1}]}},
            {
                "tensor_parallel_size": 1,
                "data_parallel_size": 1,
                "enable_expert_parallel": False,
                "enable_eplb": False,
                "dtype": "auto",
                "worker_extension_cls": CPU_WORKER_EXTENSION,
            }
            | DEFAULT_GENERATION,
            id="cpu-gets-the-compat-extension",
        ),
        pytest.param(
            {
                "engineArgs": {"max_num_seqs": 8, "override_generation_config": {"temperature": 0.2}},
                "limits": {"maxTokens": 100},
            },
            {
                "tensor_parallel_size": 1,
                "data_parallel_size": 1,
                "enable_expert_parallel": False,
                "enable_eplb": False,
                "dtype": "auto",
                "max_num_seqs": 8,
                "override_generation_config": {"temperature": 0.2, "max_new_tokens": 100},
            },
            id="passthrough-and-generation-overrides",
        ),
    ],
)
def test_engine_kwargs(camel: dict[str, Any], expected: dict[str, Any]) -> None:
    assert engine_kwargs(args(**camel)) == expected


def _setting(key: str, value: Any) -> dict[str, Any]:
    """`engineArgs` setting `key` (`a.b` inside the mapping argument `a`)."""
    outer, _, inner = key.partition(".")
    return {outer: {inner: value} if inner else value}


OWNED = sorted(set(PLANNER_OWNED_ENGINE_ARGS) - OPERATOR_RENDERED_ENGINE_ARGS)


@pytest.mark.parametrize("key", OWNED)
def test_engine_args_cannot_override_planner_owned_keys(key: str) -> None:
    with pytest.raises(EngineArgsConflict) as raised:
        engine_kwargs(args(engineArgs=_setting(key, 1) | {"max_num_seqs": 4}))
    assert raised.value.keys == [key]
    assert str(raised.value) == f"engineArgs.{key}: set by the operator" + (
        f"; use {PLANNER_OWNED_ENGINE_ARGS[key]}"
        if PLANNER_OWNED_ENGINE_ARGS[key].startswith("spec.")
        else f": {PLANNER_OWNED_ENGINE_ARGS[key]}"
    )


def test_every_conflict_is_named_at_once() -> None:
    with pytest.raises(EngineArgsConflict) as raised:
        engine_kwargs(
            args(
                engineArgs={
                    "dtype": "half",
                    "api_key": "k",
                    "override_generation_config": {"max_new_tokens": 1},
                }
            )
        )
    assert raised.value.keys == ["api_key", "dtype", "override_generation_config.max_new_tokens"]


def test_keys_the_operator_renders_pass_through() -> None:
    """The renderer writes the model revision into engineArgs itself (validation refuses it from users)."""
    assert engine_kwargs(args(engineArgs={"revision": "abc123"}))["revision"] == "abc123"


@pytest.mark.parametrize(
    "camel",
    [
        pytest.param({}, id="defaults"),
        pytest.param(
            {"placement": {"accelerator": "cpu", "bundles": [{"CPU": 1}]}, "dtype": "float32"}, id="cpu"
        ),
        pytest.param(
            {
                "dataParallelSize": 2,
                "enableExpertParallel": True,
                "eplb": {"enabled": True, "numRedundantExperts": 2},
                "placement": {"bundles": [{"GPU": 1}, {"GPU": 1}]},
                "maxModelLen": 4096,
                "quantization": "fp8",
            },
            id="expert-parallel-eplb",
        ),
    ],
)
def test_what_engine_kwargs_decides_is_owned_or_yields_to_engine_args(camel: dict[str, Any]) -> None:
    """A key engine_kwargs sets is in the contract, or a user's engineArgs value wins over it."""
    spec = args(**camel)
    for key in engine_kwargs(spec):
        if key in PLANNER_OWNED_ENGINE_ARGS:
            continue
        if key == "override_generation_config":
            assert "override_generation_config.max_new_tokens" in PLANNER_OWNED_ENGINE_ARGS
            continue
        user_value = f"user-{key}"
        assert engine_kwargs(args(**camel, engineArgs={key: user_value}))[key] == user_value, key


def test_the_max_tokens_default_is_owned_by_limits() -> None:
    spec = args(engineArgs={"override_generation_config": {"max_new_tokens": 9}})
    with pytest.raises(EngineArgsConflict, match=r"override_generation_config\.max_new_tokens"):
        engine_kwargs(spec)
