"""Rendering ServingArgs into Ray Serve LLM's LLMConfig, and the CPU core binding of ranks."""

from __future__ import annotations

import json
from typing import Any

import pytest

from deepseek_serving.config import AutoscalingSettings, ServingArgs, engine_kwargs
from deepseek_serving.llm_config import (
    AUTOSCALING_POLICY,
    cpu_binding_for_rank,
    render_gang_scheduling,
    render_llm_config,
)

BASE: dict[str, Any] = {
    "deploymentName": "chat",
    "versionName": "v2",
    "modelSource": "/models/ds",
    "servedModelName": "ds",
}


def render(**camel: Any) -> dict[str, Any]:
    return render_llm_config(ServingArgs.model_validate(BASE | camel))


def test_model_engine_and_metrics() -> None:
    spec = ServingArgs.model_validate(BASE)
    config = render_llm_config(spec)
    assert config["model_loading_config"] == {"model_id": "ds", "model_source": "/models/ds"}
    assert config["engine_kwargs"] == engine_kwargs(spec)
    assert config["accelerator_config"] == {"kind": "gpu"}
    assert config["log_engine_metrics"] is True


def test_each_rank_reserves_its_tp_slice_of_the_group_bundles() -> None:
    config = render(
        dataParallelSize=2, tensorParallelSize=2, placement={"bundles": [{"GPU": 1, "CPU": 4}] * 4}
    )
    assert config["placement_group_config"] == {
        "bundles": [{"GPU": 1, "CPU": 4}] * 2,
        "strategy": "STRICT_PACK",
    }


def test_ranks_with_different_bundles_are_refused() -> None:
    with pytest.raises(ValueError, match="same bundles"):
        render(dataParallelSize=2, placement={"bundles": [{"GPU": 1}, {"GPU": 2}]})


@pytest.mark.parametrize(
    ("camel", "bounds", "delays"),
    [
        pytest.param(
            {"groups": 3}, (3, 3), {"upscale_delay_s": 15.0, "downscale_delay_s": 600.0}, id="fixed-groups"
        ),
        pytest.param(
            {"autoscaling": {"minGroups": 1, "maxGroups": 4, "upscaleDelayS": 5, "downscaleDelayS": 60}},
            (1, 4),
            {"upscale_delay_s": 5.0, "downscale_delay_s": 60.0},
            id="autoscaling",
        ),
    ],
)
def test_replicas_are_counted_in_groups_with_the_queue_depth_policy(
    camel: dict[str, Any], bounds: tuple[int, int], delays: dict[str, float]
) -> None:
    scaling = render(**camel)["deployment_config"]["autoscaling_config"]
    assert (scaling["min_replicas"], scaling["max_replicas"]) == bounds
    assert scaling["initial_replicas"] == bounds[0]
    # The policy holds the delays; Serve's own would stack on top of them.
    serve_delays = ("upscale_delay_s", "downscale_delay_s", "downscale_to_zero_delay_s")
    assert [scaling[key] for key in serve_delays] == [0.0, 0.0, 0.0]
    assert scaling["policy"]["policy_function"] == AUTOSCALING_POLICY
    kwargs = scaling["policy"]["policy_kwargs"]
    assert {key: kwargs[key] for key in ("data_parallel_size", "deployment", "version")} == {
        "data_parallel_size": 1,
        "deployment": "chat",
        "version": "v2",
    }
    # No bounds in the kwargs: they are part of the code version, and a resize must not restart.
    assert not {"minGroups", "maxGroups", "min_groups", "max_groups"} & set(kwargs["autoscaling"])
    autoscaling = AutoscalingSettings.model_validate(kwargs["autoscaling"])
    assert {key: getattr(autoscaling, key) for key in delays} == delays
    json.dumps(kwargs)  # Serve requires JSON-serialisable policy kwargs


def test_limits_become_serve_admission_and_drain_settings() -> None:
    deployment = render(
        limits={"maxConcurrentRequestsPerRank": 12, "maxQueuedRequests": 100, "requestTimeoutS": 45}
    )["deployment_config"]
    assert deployment["max_ongoing_requests"] == 12
    assert deployment["max_queued_requests"] == 100
    assert deployment["graceful_shutdown_timeout_s"] == 45
    assert deployment["ray_actor_options"] == {"num_cpus": 0}


def test_groups_of_several_ranks_are_gangs_placed_by_the_planner_strategy() -> None:
    spec = ServingArgs.model_validate(
        BASE | {"dataParallelSize": 4, "placement": {"bundles": [{"GPU": 1}] * 4, "strategy": "SPREAD"}}
    )
    assert render_gang_scheduling(spec) == {
        "gang_size": 4,
        "gang_placement_strategy": "SPREAD",
        "runtime_failure_policy": "RESTART_GANG",
    }
    assert render_gang_scheduling(ServingArgs.model_validate(BASE)) is None


@pytest.mark.parametrize(
    ("dp_rank", "tp", "cpus", "expected"),
    [
        pytest.param(0, 1, 2, "0", id="rank0"),
        pytest.param(1, 1, 2, "1", id="rank1"),
        pytest.param(1, 2, 8, "2|3", id="tp2"),
        pytest.param(3, 1, 2, "1", id="wraps-around"),
    ],
)
def test_cpu_binding_for_rank(dp_rank: int, tp: int, cpus: int, expected: str) -> None:
    assert cpu_binding_for_rank(dp_rank, tp, cpus) == expected
