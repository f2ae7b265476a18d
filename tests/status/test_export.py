"""The status as gauges: one deployment's series replaced whole after each status write."""

from __future__ import annotations

from datetime import UTC, datetime

from prometheus_client import REGISTRY

from deepseek_operator.api.v1alpha1 import DeepSeekDeploymentStatus
from deepseek_operator.status.export import export_status, forget_status

NOW = datetime(2026, 12, 1, 12, tzinfo=UTC)


def _status(**fields: object) -> DeepSeekDeploymentStatus:
    return DeepSeekDeploymentStatus.model_validate(fields)


def _value(name: str, **labels: str) -> float | None:
    return REGISTRY.get_sample_value(name, labels)


def test_a_deployments_series_follow_its_status() -> None:
    rolling = _status(
        traffic=[
            {
                "version": "v1",
                "revision": "a",
                "role": "Stable",
                "weight": 75,
                "readyGroups": 3,
                "desiredGroups": 3,
            },
            {"version": "v2", "revision": "b", "role": "Canary", "weight": 25, "readyGroups": 1},
        ],
        rollout={
            "revision": 1,
            "stableVersion": "v1",
            "canaryVersion": "v2",
            "stepIndex": 1,
            "startTime": NOW,
            "stepStartTime": NOW,
            "phase": "Paused",
        },
        conditions=[{"type": "Ready", "status": "True", "reason": "Serving", "lastTransitionTime": NOW}],
        plan={
            "tensorParallelSize": 1,
            "dataParallelSize": 2,
            "expertParallelSize": 2,
            "gpusPerGroup": 2,
            "nodesPerGroup": 1,
            "eplbBalancedness": 0.97,
        },
    )
    export_status("ns", "chat", rolling, steps=3)
    weight = "deepseek_operator_version_weight_percent"
    assert _value(weight, namespace="ns", deployment="chat", version="v2", revision="b", role="Canary") == 25
    groups = "deepseek_operator_version_groups"
    assert _value(groups, namespace="ns", deployment="chat", version="v1", revision="a", state="desired") == 3
    assert _value("deepseek_operator_rollout_step", namespace="ns", deployment="chat", canary="v2") == 2
    assert (
        _value(
            "deepseek_operator_rollout_step_start_time_seconds",
            namespace="ns",
            deployment="chat",
            canary="v2",
            phase="Paused",
        )
        == NOW.timestamp()
    )
    assert _value("deepseek_operator_eplb_balancedness", namespace="ns", deployment="chat") == 0.97

    promoted = _status(
        traffic=[{"version": "v2", "revision": "b", "role": "Stable", "weight": 100, "readyGroups": 4}]
    )
    export_status("ns", "chat", promoted, steps=3)
    assert (
        _value(weight, namespace="ns", deployment="chat", version="v1", revision="a", role="Stable") is None
    )
    assert _value("deepseek_operator_rollout_step", namespace="ns", deployment="chat", canary="v2") is None
    assert _value(weight, namespace="ns", deployment="chat", version="v2", revision="b", role="Stable") == 100

    forget_status("ns", "chat")
    assert (
        _value(weight, namespace="ns", deployment="chat", version="v2", revision="b", role="Stable") is None
    )
