"""`dsd bench autoscale`: the simulation's pure parts on small seeded cases."""

from __future__ import annotations

import json
import math
import random
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from pydantic import ValidationError

from deepseek_operator.bench.autoscale import (
    TICK_S,
    TTFT_SLO_S,
    ColdStart,
    GroupModel,
    HpaKedaPolicy,
    OraclePolicy,
    OursPolicy,
    RayDelayState,
    SimView,
    Trace,
    WvaSaturationPolicy,
    diurnal_trace,
    flash_crowd_trace,
    format_autoscale_bench,
    load_trace_csv,
    oracle_schedule,
    ray_serve_default,
    run_autoscale_bench,
    simulate,
    steady_trace,
    write_trace_csv,
)

TINY = GroupModel(gpus=1, slots=2, data_parallel_size=1, prefill_base_s=0.0, prefill_tokens_per_s=1e9)
INSTANT = ColdStart("instant", 0.0, 0.0)


class Fixed:
    """Always the same number of groups."""

    name = "fixed"
    period_s = TICK_S

    def __init__(self, groups: int) -> None:
        self.groups = groups

    def decide(self, view: SimView) -> int:
        return self.groups


def trace(arrivals: list[float], outputs: list[float], duration_s: float = 60.0) -> Trace:
    n = len(arrivals)
    return Trace("t", np.array(arrivals), np.zeros(n), np.array(outputs), duration_s)


def view(**fields: Any) -> SimView:
    base: dict[str, Any] = {
        "now_s": 0.0,
        "ready_groups": 2,
        "target_groups": 2,
        "running": 0,
        "waiting": 0,
        "kv_usage": 0.0,
        "arrivals_total": 0,
        "slots_per_group": 512,
        "data_parallel_size": 8,
    }
    return SimView(**(base | fields))


# ─── traces ──────────────────────────────────────────────────────────────────────────────────


@pytest.mark.parametrize("make", [diurnal_trace, flash_crowd_trace, steady_trace])
def test_traces_are_seeded(make: Any) -> None:
    kwargs = {"hours": 2.0} if make is diurnal_trace else {}
    first, again, other = make(3, **kwargs), make(3, **kwargs), make(4, **kwargs)
    assert np.array_equal(first.arrival_s, again.arrival_s)
    assert np.array_equal(first.output_tokens, again.output_tokens)
    assert not np.array_equal(first.arrival_s[:100], other.arrival_s[:100])
    assert np.all(np.diff(first.arrival_s) >= 0)
    assert first.prompt_tokens.max() <= 16_000
    assert first.output_tokens.max() <= 8_000


def test_the_flash_crowd_triples_the_arrivals() -> None:
    crowd = flash_crowd_trace(0)
    per_minute = np.histogram(crowd.arrival_s, bins=np.arange(0, 3 * 3600 + 1, 600))[0]
    assert per_minute[7] / per_minute[3] == pytest.approx(3.0, rel=0.1)  # 70-80 min vs 30-40 min
    assert per_minute[-1] / per_minute[3] == pytest.approx(1.0, rel=0.1)


def test_csv_traces_round_trip_and_refuse_other_headers(tmp_path: Path) -> None:
    original = steady_trace(0, groups=0.05)
    path = tmp_path / "trace.csv"
    write_trace_csv(original, path)
    loaded = load_trace_csv(path)
    assert np.allclose(loaded.arrival_s, original.arrival_s, atol=1e-3)
    assert np.array_equal(loaded.output_tokens, original.output_tokens)
    (tmp_path / "bad.csv").write_text("t,prompt,output\n1,2,3\n")
    with pytest.raises(ValueError, match="header"):
        load_trace_csv(tmp_path / "bad.csv")
    (tmp_path / "neg.csv").write_text("arrival_s,prompt_tokens,output_tokens\n-1,2,3\n")
    with pytest.raises(ValueError, match=r"neg\.csv:2"):
        load_trace_csv(tmp_path / "neg.csv")


# ─── the simulated deployment ────────────────────────────────────────────────────────────────


def test_requests_wait_in_fifo_order_for_the_earliest_free_slot() -> None:
    # One group of 2 slots; every request decodes 250 tokens at 25/s = 10 s.
    run = simulate(
        trace([0.0, 0.1, 0.2, 0.3], [250.0] * 4),
        Fixed(1),
        INSTANT,
        initial_groups=1,
        min_groups=1,
        max_groups=1,
        model=TINY,
    )
    # The third waits for the first (free at 10.0): TTFT 9.8 s; the fourth for the second: 9.8 s.
    assert run.slo_attainment == pytest.approx(0.5)
    assert run.ttft_p99_s == pytest.approx(9.8, abs=0.01)
    assert run.gpu_hours == pytest.approx(60 / 3600)


def test_more_groups_take_the_queue_away_and_cost_gpu_hours() -> None:
    requests = trace([0.0, 0.1, 0.2, 0.3], [250.0] * 4)
    run = simulate(requests, Fixed(2), INSTANT, initial_groups=2, min_groups=1, max_groups=2, model=TINY)
    assert run.slo_attainment == 1.0
    assert run.gpu_hours == pytest.approx(2 * 60 / 3600)
    assert (run.scale_events, run.direction_changes) == (0, 0)


def test_groups_serve_only_after_their_cold_start() -> None:
    """Asked for at 300 s (after the warm-up), ready 30 s later: a request at 310 s waits until 330 s."""

    class Later(Fixed):
        def decide(self, view: SimView) -> int:
            return 2 if view.now_s >= 300 else 1

    requests = trace([0.0, 0.1, 310.0], [25_000.0, 25_000.0, 25.0], duration_s=400.0)
    run = simulate(
        requests,
        Later(1),
        ColdStart("30 s", 30.0, 30.0),
        initial_groups=1,
        min_groups=1,
        max_groups=2,
        model=TINY,
    )
    assert run.timeline == ((0.0, 1), (300.0, 2))
    assert run.ttft_p99_s == pytest.approx(20.0, abs=0.5)
    assert run.gpu_hours == pytest.approx((400 + 100) / 3600)


def test_direction_changes_are_counted() -> None:
    class Flapping(Fixed):
        def decide(self, view: SimView) -> int:
            return 1 + int(view.now_s // 300) % 2

    requests = trace([0.0], [1.0], duration_s=1500.0)
    run = simulate(requests, Flapping(1), INSTANT, initial_groups=1, min_groups=1, max_groups=2, model=TINY)
    assert [groups for _, groups in run.timeline] == [1, 2, 1, 2, 1]
    assert (run.scale_events, run.direction_changes) == (4, 3)


# ─── the policies ────────────────────────────────────────────────────────────────────────────


def test_the_oracle_holds_what_the_next_lead_needs() -> None:
    # Two requests of 10 s at 100 s: 2 slots (one TINY group) busy during 100-110.
    requests = trace([100.0, 100.5], [250.0, 250.0], duration_s=200.0)
    schedule = oracle_schedule(requests, lead_s=30.0, min_groups=0, max_groups=5, model=TINY)
    assert schedule[69] == 0
    assert schedule[70] == 1
    assert schedule[110] == 1
    assert schedule[111] == 0
    run = simulate(
        requests,
        OraclePolicy(np.maximum(schedule, 1)),
        ColdStart("lead", 25.0, 25.0),
        initial_groups=1,
        min_groups=1,
        max_groups=5,
        model=TINY,
    )
    assert run.slo_attainment == 1.0


def test_hpa_follows_its_formula_tolerance_and_stabilisation() -> None:
    hpa = HpaKedaPolicy(1, 20)
    # 2 groups of 8 engines: target 40 waiting per group; 86 waiting -> ratio 1.075: within tolerance.
    assert hpa.decide(view(now_s=0, waiting=86)) == 2
    assert hpa.decide(view(now_s=15, waiting=200)) == 5  # ceil(200 / 40)
    assert hpa.decide(view(now_s=30, waiting=1000, target_groups=5)) == 10  # at most doubled
    # No waiting: the proposal is 0 (min 1), but the largest proposal of the last 300 s holds.
    assert hpa.decide(view(now_s=45, waiting=0, target_groups=10)) == 10
    assert hpa.decide(view(now_s=400, waiting=0, target_groups=10)) == 1


def test_wva_adds_one_group_at_a_time_and_counts_pending_ones() -> None:
    wva = WvaSaturationPolicy(1, 10)
    # 5 waiting per engine saturates every group: +1.
    assert wva.decide(view(now_s=0, waiting=80)) == 3
    # One group pending: no second +1.
    assert wva.decide(view(now_s=60, waiting=80, target_groups=3)) == 3
    # Idle: removing a group keeps the spare capacity above the triggers.
    fresh = WvaSaturationPolicy(1, 10)
    assert fresh.decide(view(now_s=0, waiting=0, kv_usage=0.1, ready_groups=3, target_groups=3)) == 2


def test_ours_runs_the_serving_policy_with_its_defaults() -> None:
    ours = OursPolicy(1, 16)
    assert ours.settings.cold_start_s == 600
    assert ours.settings.headroom == pytest.approx(0.1)
    assert OursPolicy(1, 16, headroom_percent=25).settings.headroom == pytest.approx(0.25)
    with pytest.raises(ValidationError, match="headroom_percent"):
        OursPolicy(1, 16, headroom_percent=150)
    first = ours.decide(view(now_s=0, running=5000, ready_groups=4, target_groups=4))
    assert first == 4  # pending: the upscale delay
    assert ours.decide(view(now_s=20, running=5000, ready_groups=4, target_groups=4)) == 12


@pytest.mark.parametrize("seed", range(60))
def test_ray_serve_default_is_ported_faithfully(seed: int, monkeypatch: pytest.MonkeyPatch) -> None:
    """Our port against Ray Serve 2.60's own functions, on random ticks."""
    serve_policy = pytest.importorskip("ray.serve.autoscaling_policy")
    from ray.serve._private.common import DeploymentID
    from ray.serve._private.gang_scheduling_autoscaling_policy import GangSchedulingAutoscalingPolicy
    from ray.serve.autoscaling_policy import (
        _apply_autoscaling_config,
        replica_queue_length_autoscaling_policy,
    )
    from ray.serve.config import AutoscalingConfig, AutoscalingContext

    rng = random.Random(seed)
    gang = rng.choice([1, 2, 8])
    config = AutoscalingConfig(min_replicas=gang, max_replicas=16 * gang, target_ongoing_requests=2.0)
    ray_policy = GangSchedulingAutoscalingPolicy(
        _apply_autoscaling_config(replica_queue_length_autoscaling_policy), gang
    )
    state: dict[str, Any] = {}
    ours = RayDelayState()
    target = gang * rng.randint(1, 8)
    for tick in range(40):
        now = 1000.0 + 5.0 * tick
        running = target if rng.random() < 0.8 else max(0, target - gang)
        total = rng.choice([0.0, 1.0, 5.0, 50.0, 500.0]) * rng.random()
        ctx = AutoscalingContext(
            deployment_id=DeploymentID(name="d", app_name="a"),
            deployment_name="d",
            app_name="a",
            current_num_replicas=running,
            target_num_replicas=target,
            running_replicas=[],
            total_num_requests=total,
            total_queued_requests=0.0,
            aggregated_metrics={},
            raw_metrics={},
            capacity_adjusted_min_replicas=config.min_replicas,
            capacity_adjusted_max_replicas=config.max_replicas,
            policy_state=dict(state),
            last_scale_up_time=None,
            last_scale_down_time=None,
            current_time=now,
            config=config,
        )
        # Serve's delay logic reads the wall clock: make it the tick's time.
        monkeypatch.setattr(serve_policy.time, "time", lambda now=now: now)
        expected, state = ray_policy(ctx)
        expected = min(max(math.ceil(expected), config.min_replicas), config.max_replicas)
        got = ray_serve_default(
            total_requests=total,
            current_replicas=running,
            target_replicas=target,
            target_ongoing_requests=2.0,
            upscale_delay_s=30.0,
            downscale_delay_s=600.0,
            gang_size=gang,
            min_replicas=config.min_replicas,
            max_replicas=config.max_replicas,
            state=ours,
            now_s=now,
        )
        assert got == expected, (seed, tick)
        target = got


# ─── the bench ───────────────────────────────────────────────────────────────────────────────


def test_the_bench_compares_every_policy_and_checks_the_goal() -> None:
    small = steady_trace(0, groups=1.5)
    short = Trace(
        small.name,
        *(a[small.arrival_s < 1800] for a in (small.arrival_s, small.prompt_tokens, small.output_tokens)),
        1800.0,
    )
    rows = run_autoscale_bench(traces=[short], cold_starts=[ColdStart("fast", 120.0, 180.0)])
    assert [row["policy"] for row in rows] == [
        "ours",
        "ray-serve",
        "ray-serve-tuned",
        "hpa-keda",
        "llm-d-wva",
        "oracle",
    ]
    by = {row["policy"]: row for row in rows}
    assert by["oracle"]["gpu_hours_vs_oracle"] == 1.0
    assert by["oracle"]["slo_attainment"] == 1.0
    assert {
        "goal_slo",
        "goal_cost",
        "goal_ahead_of_ray-serve",
        "goal_ahead_of_hpa-keda",
        "meets_goal",
    } <= set(by["ours"])
    assert by["ours"]["slo_attainment"] >= 0.99
    json.dumps(rows)
    text = format_autoscale_bench(rows)
    assert "x oracle" in text
    assert "llm-d-wva" in text
    assert TTFT_SLO_S == 2.0

    # Another headroom for ours: 1.5 groups of load need 2 groups at 10 %, 3 at 60 %.
    (wider,) = run_autoscale_bench(
        traces=[short], cold_starts=[ColdStart("fast", 120.0, 180.0)], policies=("ours",), headroom_percent=60
    )
    assert by["ours"]["max_groups"] == 2
    assert wider["max_groups"] == 3
