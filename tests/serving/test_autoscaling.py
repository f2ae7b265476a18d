"""The Ray Serve adapter: what ranks report, what the policy reads from Serve, how Serve applies it."""

from __future__ import annotations

import logging
from typing import Any

import pytest

from deepseek_serving.autoscaling import (
    POLICY_STATE_KEY,
    QueueDepthPolicy,
    decisions_in_log,
    group_queue_depths,
    observe_context,
    queue_depth_metric_name,
    rank_autoscaling_metrics,
    scaling_settings,
)
from deepseek_serving.autoscaling_policy import ScaleRule, ScalingState
from deepseek_serving.config import AutoscalingSettings, ServingArgs
from deepseek_serving.llm_config import render_llm_config
from deepseek_serving.metrics import RankLoad

serve_config = pytest.importorskip("ray.serve.config")
from ray.serve._private.common import DeploymentID, TimeStampedValue  # noqa: E402
from ray.serve.config import AutoscalingConfig, AutoscalingContext  # noqa: E402


def rank(group: str, *, running: float, waiting: float = 0.0, arrivals: float = 0.0) -> dict[str, float]:
    return rank_autoscaling_metrics(
        group,
        running=running,
        waiting=waiting,
        kv_usage=0.1,
        arrivals_total=arrivals,
        max_num_seqs=64,
        admission_limit=128,
    )


def context(
    ranks: dict[str, dict[str, float]],
    *,
    running_replicas: int,
    target_replicas: int,
    now: float,
    state: dict[str, Any] | None = None,
    config: AutoscalingConfig | None = None,
    bounds: tuple[int, int] = (2, 8),
) -> AutoscalingContext:
    """A real ``AutoscalingContext``, each rank's metrics as a one-sample raw series; `bounds` are
    Ray Serve's replica bounds (1..4 groups of 2 ranks), which the policy takes its bounds from."""
    raw: dict[str, dict[str, list[TimeStampedValue]]] = {}
    for replica, metrics in ranks.items():
        for name, value in metrics.items():
            raw.setdefault(name, {})[replica] = [
                TimeStampedValue(now - 5, -1.0),
                TimeStampedValue(now, value),
            ]
    return AutoscalingContext(
        deployment_id=DeploymentID(name="engine-ranks", app_name="chat"),
        deployment_name="engine-ranks",
        app_name="chat",
        current_num_replicas=running_replicas,
        target_num_replicas=target_replicas,
        running_replicas=[],
        total_num_requests=0.0,
        total_queued_requests=0.0,
        aggregated_metrics={},
        raw_metrics=raw,
        capacity_adjusted_min_replicas=bounds[0],
        capacity_adjusted_max_replicas=bounds[1],
        policy_state=dict(state or {}),
        last_scale_up_time=None,
        last_scale_down_time=None,
        current_time=now,
        config=config,
    )


AUTOSCALING = {"min_groups": 1, "max_groups": 4, "upscale_delay_s": 0.0, "downscale_delay_s": 60.0}


def policy(**autoscaling: Any) -> QueueDepthPolicy:
    return QueueDepthPolicy(
        data_parallel_size=2, autoscaling=AUTOSCALING | autoscaling, deployment="chat", version="v1"
    )


def test_a_rank_reports_its_load_slots_and_arrivals() -> None:
    assert rank("g", running=3, waiting=1, arrivals=40) == {
        "queue_depth/g": 4.0,
        "running/g": 3.0,
        "waiting/g": 1.0,
        "slots/g": 64.0,
        "kv_usage/g": 0.1,
        "arrivals/g": 40.0,
    }
    assert (
        rank_autoscaling_metrics(
            "g", running=0, waiting=0, kv_usage=0, arrivals_total=0, max_num_seqs=None, admission_limit=12
        )["slots/g"]
        == 12.0
    )


def test_rank_load_follows_the_engine_snapshots() -> None:
    class Scheduler:
        num_running_reqs, num_waiting_reqs, num_skipped_waiting_reqs, kv_cache_usage = 5, 2, 1, 0.25

    class Iteration:
        time_to_first_tokens_iter = [0.1, 0.2]

    load = RankLoad()
    load.observe(Scheduler(), Iteration())
    load.observe(None, Iteration())
    assert (load.running, load.waiting, load.kv_usage, load.started_total) == (5, 3, 0.25, 4)
    assert load.arrivals_total == 7
    assert load.queue_depth == 8


def test_group_queue_depths_sums_ranks_per_group() -> None:
    metrics = {
        queue_depth_metric_name("gang-a"): {"r0": 3.0, "r1": 4.0},
        queue_depth_metric_name("gang-b"): {"r2": 1.5},
        "something_else": {"r0": 100.0},
    }
    assert group_queue_depths(metrics) == {"gang-a": 7.0, "gang-b": 1.5}


def test_the_context_becomes_an_observation_of_groups() -> None:
    ranks = {
        "r0": rank("a", running=30, waiting=2, arrivals=100),
        "r1": rank("a", running=20, arrivals=50),
        "r2": rank("b", running=10, arrivals=10),
    }
    observation = observe_context(context(ranks, running_replicas=4, target_replicas=6, now=1000.0), 2)
    assert (observation.ready_groups, observation.target_groups, observation.starting_groups) == (2, 3, 1)
    assert observation.arrivals_total == 160.0
    loads = {round(g.running): g for g in observation.groups}
    assert set(loads) == {50, 10}
    assert (loads[50].waiting, loads[50].capacity, loads[50].kv_usage) == (2.0, 128.0, pytest.approx(0.1))
    assert observation.demand == 62.0
    assert observation.now_s == 1000.0


def test_the_policy_answers_in_replicas_of_whole_groups_and_keeps_its_state() -> None:
    ranks = {"r0": rank("a", running=200, waiting=100), "r1": rank("a", running=200, waiting=100)}
    ctx = context(ranks, running_replicas=2, target_replicas=2, now=50.0, state={"serve_internal": 1})
    replicas, state = policy()(ctx)
    assert replicas == 4 * 2  # 600 requests on groups of 128 slots: the maximum, 4 groups
    assert state["serve_internal"] == 1  # Ray Serve's own keys are kept
    assert state["rule"] == ScaleRule.SCALE_UP
    assert state["target_groups"] == 4
    assert "scale up to 4" in state["reason"]
    assert ScalingState.from_dict(state[POLICY_STATE_KEY]).starts == (50.0, 50.0, 50.0)


def test_a_change_of_the_group_count_is_logged_once_as_json(caplog: pytest.LogCaptureFixture) -> None:
    ranks = {"r0": rank("a", running=200), "r1": rank("a", running=200)}
    scaler = policy()
    with caplog.at_level(logging.INFO, logger="ray.serve"):
        _, state = scaler(context(ranks, running_replicas=2, target_replicas=2, now=10.0))
        scaler(context(ranks, running_replicas=2, target_replicas=8, now=20.0, state=state))
    # As the controller's log file holds them: among Serve's own lines, with its line prefix.
    lines = [f"INFO 2026-12-03 controller 1 -- {r.getMessage()}\n" for r in caplog.records]
    cut_off = lines[0][: len(lines[0]) // 2]  # a line being written, or a tail cut mid-line
    logged = decisions_in_log(["INFO controller -- Upscaling from 1 to 4 replicas\n", cut_off, *lines])
    assert len(logged) == 1
    assert logged[0] | {"reason": ""} == {
        "application": "chat",
        "deployment": "chat",
        "version": "v1",
        "time_s": 10.0,
        "from_groups": 1,
        "to_groups": 4,
        "ready_groups": 1,
        "queue_depth": 400.0,
        "rule": "ScaleUp",
        "reason": "",
    }
    assert "scale up to 4" in logged[0]["reason"]


def test_the_operator_reads_each_logged_decision_back_as_its_scaling_record(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """The contract between the policy's log line and the operator's `Scaled` Event: the newest
    decision of the version that set the count the operator sees."""
    from deepseek_operator.k8s.observe import last_scaling

    busy = {"r0": rank("a", running=200), "r1": rank("a", running=200)}
    now = 1_796_290_230.0  # Serve's clock: Unix time
    scaler = policy()
    with caplog.at_level(logging.INFO, logger="ray.serve"):
        scaler(context(busy, running_replicas=2, target_replicas=2, now=now))
    lines = [f"INFO 2026-12-03 controller 1 -- {r.getMessage()}" for r in caplog.records]

    record = last_scaling(decisions_in_log(["Controller starting", *lines]), version="v1", to_groups=4)
    assert record is not None
    assert (record.from_groups, record.to_groups, record.rule, record.queue_depth) == (1, 4, "ScaleUp", 400)
    assert record.decided_at is not None
    assert record.decided_at.timestamp() == now
    assert record.describe().startswith("ScaleUp at queue depth 400: level 400 req")
    decisions = decisions_in_log(lines)
    assert last_scaling(decisions, version="v2", to_groups=4) is None  # another version's
    assert last_scaling(decisions, version="v1", to_groups=3) is None  # not the count seen
    garbled = decisions_in_log([lines[0].replace('"rule"', '"rules"')])
    assert last_scaling(garbled, version="v1", to_groups=4) is None


def test_settings_from_the_contract() -> None:
    settings = scaling_settings(AutoscalingSettings(min_groups=2, max_groups=5, headroom_percent=25))
    assert (settings.min_groups, settings.max_groups, settings.headroom) == (2, 5, 0.25)
    assert (settings.cold_start_s, settings.upscale_delay_s, settings.downscale_delay_s) == (600, 15, 600)
    assert settings.target_per_group is None


def _serve_wrapped(scaler: QueueDepthPolicy, autoscaling_config: dict[str, Any], gang_size: int) -> Any:
    """The policy as Ray Serve 2.60 runs it: its config wrapper, then gang rounding."""
    from ray.serve._private.gang_scheduling_autoscaling_policy import GangSchedulingAutoscalingPolicy
    from ray.serve.autoscaling_policy import _apply_autoscaling_config

    return GangSchedulingAutoscalingPolicy(_apply_autoscaling_config(scaler), gang_size)


def _rendered_config(**autoscaling: Any) -> dict[str, Any]:
    args = ServingArgs.model_validate(
        {
            "deploymentName": "chat",
            "versionName": "v1",
            "modelSource": "/models/ds",
            "servedModelName": "ds",
            "dataParallelSize": 2,
            "placement": {"bundles": [{"GPU": 1}] * 2},
            "autoscaling": {"minGroups": 1, "maxGroups": 4, **autoscaling},
        }
    )
    config: dict[str, Any] = render_llm_config(args)["deployment_config"]["autoscaling_config"]
    return config


def test_serve_applies_each_answer_on_the_tick_it_is_given() -> None:
    """With the rendered config (Serve's delays 0), Serve adds no delay of its own to ours."""
    rendered = _rendered_config(upscaleDelayS=0)
    config = AutoscalingConfig(**{k: v for k, v in rendered.items() if k != "policy"})
    kwargs = rendered["policy"]["policy_kwargs"]
    wrapped = _serve_wrapped(QueueDepthPolicy(**kwargs), rendered, gang_size=2)
    ranks = {"r0": rank("a", running=200, waiting=100), "r1": rank("a", running=200, waiting=100)}
    replicas, _ = wrapped(context(ranks, running_replicas=2, target_replicas=2, now=10.0, config=config))
    assert replicas == 8


def test_serve_defaults_would_hold_our_answer_back() -> None:
    """The same answer under Serve's default delays (30 s up) is held: why llm_config sets them to 0."""
    rendered = _rendered_config(upscaleDelayS=0)
    config = AutoscalingConfig(min_replicas=1, max_replicas=8)  # upscale_delay_s=30 by default
    kwargs = rendered["policy"]["policy_kwargs"]
    wrapped = _serve_wrapped(QueueDepthPolicy(**kwargs), rendered, gang_size=2)
    ranks = {"r0": rank("a", running=200, waiting=100), "r1": rank("a", running=200, waiting=100)}
    replicas, _ = wrapped(context(ranks, running_replicas=2, target_replicas=2, now=10.0, config=config))
    assert replicas == 2
