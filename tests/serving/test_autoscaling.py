"""Queue-depth autoscaling: the pure decision and the Ray Serve policy adapter."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import pytest

from deepseek_serving.autoscaling import (
    QueueDepthPolicy,
    decide_groups,
    group_queue_depths,
    queue_depth_metric_name,
)


@pytest.mark.parametrize(
    ("depths", "bounds", "target", "expected"),
    [
        pytest.param({}, (1, 4), 32, 1, id="idle-keeps-min"),
        pytest.param({"a": 50, "b": 30}, (1, 4), 32, 3, id="ceil-of-total"),
        pytest.param({"a": 64}, (1, 4), 32, 2, id="exact-multiple"),
        pytest.param({"a": 500}, (1, 4), 32, 4, id="capped-at-max"),
        pytest.param({"a": 1, "b": 0}, (2, 4), 32, 2, id="floored-at-min"),
        pytest.param({"a": 0.5}, (1, 1), 32, 1, id="fixed"),
    ],
)
def test_decide_groups(
    depths: dict[str, float], bounds: tuple[int, int], target: float, expected: int
) -> None:
    decision = decide_groups(
        depths, min_groups=bounds[0], max_groups=bounds[1], target_queue_depth_per_group=target
    )
    assert decision.target_groups == expected
    assert f"{expected} within [{bounds[0]}, {bounds[1]}]" in decision.reason


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        pytest.param(
            {"min_groups": 0, "max_groups": 1, "target_queue_depth_per_group": 1}, "min_groups", id="min"
        ),
        pytest.param(
            {"min_groups": 2, "max_groups": 1, "target_queue_depth_per_group": 1}, "max_groups", id="max"
        ),
        pytest.param(
            {"min_groups": 1, "max_groups": 1, "target_queue_depth_per_group": 0}, "> 0", id="target"
        ),
    ],
)
def test_decide_groups_refuses_bad_bounds(kwargs: dict[str, Any], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        decide_groups({}, **kwargs)


def test_group_queue_depths_sums_ranks_per_group() -> None:
    metrics = {
        queue_depth_metric_name("gang-a"): {"r0": 3.0, "r1": 4.0},
        queue_depth_metric_name("gang-b"): {"r2": 1.5},
        "something_else": {"r0": 100.0},
    }
    assert group_queue_depths(metrics) == {"gang-a": 7.0, "gang-b": 1.5}


@dataclass
class FakeContext:
    """The two fields of Ray Serve's AutoscalingContext the policy reads."""

    aggregated_metrics: dict[str, dict[str, float]]
    policy_state: dict[str, Any] = field(default_factory=dict)


def test_policy_answers_in_replicas_of_whole_groups() -> None:
    policy = QueueDepthPolicy(
        data_parallel_size=2,
        min_groups=1,
        max_groups=3,
        target_queue_depth_per_group=10,
        deployment="chat",
        version="v1",
    )
    context = FakeContext({queue_depth_metric_name("g1"): {"r0": 12.0, "r1": 9.0}})
    replicas, state = policy(context)
    assert replicas == 6
    assert "21 over 1 group(s)" in state["reason"]
