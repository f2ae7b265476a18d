"""The ServingArgs contract and its mapping to vLLM engine arguments."""

from __future__ import annotations

import subprocess
import sys
from typing import Any

import pytest
from pydantic import ValidationError

from deepseek_serving.config import (
    CPU_WORKER_EXTENSION,
    PLANNER_OWNED_ENGINE_KEYS,
    EngineArgsConflict,
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
        eplb={"enabled": True, "numRedundantExperts": 4, "initialExpertMap": [[0, 1, 2, 3], [3, 2, 1, 0]]},
        autoscaling={"minGroups": 1, "maxGroups": 3, "targetQueueDepthPerGroup": 16},
        placement={"accelerator": "gpu", "bundles": [{"GPU": 1, "CPU": 8}] * 4, "strategy": "SPREAD"},
        engineArgs={"max_num_seqs": 64},
        apiKeyEnv="OPENAI_KEY",
        limits={"maxConcurrentRequestsPerRank": 32, "requestTimeoutS": 30, "maxTokens": 1024},
        traffic=[{"versionName": "a", "weight": 90}, {"versionName": "b", "weight": 10}],
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
            {"eplb": {"initialExpertMap": [[0, 1], [0]]}}, "same number of physical slots", id="ragged-map"
        ),
        pytest.param({"eplb": {"initialExpertMap": [[0, -1]]}}, ">= 0", id="negative-expert"),
        pytest.param({"autoscaling": {"minGroups": 3, "maxGroups": 2}}, r"maxGroups \(2\)", id="bounds"),
        pytest.param({"traffic": [{"versionName": "a", "weight": 60}]}, "sum to 100", id="traffic-sum"),
        pytest.param({"routePrefix": "v1"}, "pattern", id="route-prefix"),
        pytest.param({"limits": {"maxTokens": 0}}, "greater than or equal to 1", id="max-tokens"),
    ],
)
def test_invalid_specs_are_refused(camel: dict[str, Any], message: str) -> None:
    with pytest.raises(ValidationError, match=message):
        args(**camel)


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


@pytest.mark.parametrize(
    "key",
    [
        "tensor_parallel_size",
        "data_parallel_size",
        "enable_expert_parallel",
        "eplb_config",
        "max_model_len",
        "dtype",
        "model",
        "api_key",
        "data_parallel_rank",
        "worker_extension_cls",
    ],
)
def test_engine_args_cannot_override_planner_owned_keys(key: str) -> None:
    assert key in PLANNER_OWNED_ENGINE_KEYS
    with pytest.raises(EngineArgsConflict, match=key) as raised:
        engine_kwargs(args(engineArgs={key: 1, "max_num_seqs": 4}))
    assert raised.value.keys == [key]


def test_the_max_tokens_default_is_owned_by_limits() -> None:
    spec = args(engineArgs={"override_generation_config": {"max_new_tokens": 9}})
    with pytest.raises(EngineArgsConflict, match=r"override_generation_config\.max_new_tokens"):
        engine_kwargs(spec)
