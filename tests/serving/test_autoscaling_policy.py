"""The group-count decision: one table per rule, and properties (bounds, no reversal on a steady load)."""

from __future__ import annotations

import doctest
import itertools
import json
import math
from collections.abc import Sequence
from dataclasses import dataclass, replace

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from deepseek_serving import autoscaling_policy
from deepseek_serving.autoscaling_policy import (
    GroupLoad,
    ScaleDecision,
    ScaleRule,
    ScalingObservation,
    ScalingSettings,
    ScalingState,
    decide_scale,
    groups_needed,
)

SETTINGS = ScalingSettings(
    min_groups=1, max_groups=16, headroom=0.1, cold_start_s=600, upscale_delay_s=15, downscale_delay_s=600
)
SLOTS = 512.0


def observe(
    now: float,
    demand: float,
    *,
    ready: int,
    target: int | None = None,
    waiting: float = 0.0,
    arrivals: float | None = None,
    kv: float = 0.0,
    slots: float = SLOTS,
) -> ScalingObservation:
    """``ready`` groups sharing ``demand`` running and ``waiting`` waiting requests evenly."""
    now, share = float(now), 1 / ready if ready else 0.0
    load = GroupLoad(running=demand * share, waiting=waiting * share, capacity=slots, kv_usage=kv)
    return ScalingObservation(
        now_s=now,
        groups=(load,) * ready,
        ready_groups=ready,
        target_groups=ready if target is None else target,
        arrivals_total=arrivals,
        queued=0.0 if ready else demand + waiting,
    )


def run(
    observations: Sequence[ScalingObservation],
    *,
    scaling: ScalingSettings = SETTINGS,
    state: ScalingState | None = None,
) -> tuple[list[ScaleDecision], ScalingState]:
    state = state or ScalingState()
    decisions = []
    for observation in observations:
        decision, state = decide_scale(observation, state, scaling)
        decisions.append(decision)
    return decisions, state


def steady(demand: float, ready: int, seconds: float, *, start: float = 0.0) -> list[ScalingObservation]:
    return [observe(start + t, demand, ready=ready) for t in np.arange(0.0, seconds + 1, 10.0)]


# ─── groups needed ───────────────────────────────────────────────────────────────────────────


@pytest.mark.parametrize(
    ("demand", "capacity", "headroom", "bands", "expected"),
    [
        pytest.param(0, 512, 0.1, 1, 0, id="nothing-needs-nothing"),
        pytest.param(1, 512, 0.1, 1, 1, id="one-request-one-group"),
        pytest.param(2150, 512, 0.1, 1, 5, id="headroom-and-band"),
        pytest.param(2150, 512, 0.1, 2, 6, id="hysteresis-band"),
        pytest.param(3480, 512, 0.1, 1, 8, id="docstring-example"),
        pytest.param(512, 512, 0.0, 1, 2, id="a-full-group-plus-fluctuation"),
    ],
)
def test_groups_needed(demand: float, capacity: float, headroom: float, bands: int, expected: int) -> None:
    assert groups_needed(demand, capacity, headroom, bands=bands) == expected


def test_module_examples_hold() -> None:
    assert doctest.testmod(autoscaling_policy).failed == 0


# ─── the rules, one table each ───────────────────────────────────────────────────────────────


@pytest.mark.parametrize(
    ("target", "expected"),
    [pytest.param(20, 16, id="above-max"), pytest.param(0, 1, id="below-min")],
)
def test_bounds_come_first(target: int, expected: int) -> None:
    decision, _ = decide_scale(observe(0, 100, ready=min(target, 4), target=target), ScalingState(), SETTINGS)
    assert (decision.target_groups, decision.rule) == (expected, ScaleRule.BOUNDS)


def test_hold_within_the_band() -> None:
    decisions, _ = run(steady(1500, ready=4, seconds=1200))
    assert {d.rule for d in decisions} == {ScaleRule.HOLD}
    assert {d.target_groups for d in decisions} == {4}
    assert "hold 4" in decisions[-1].reason


@pytest.mark.parametrize(
    ("delay_s", "first_change_s"),
    [pytest.param(0.0, 0.0, id="no-delay"), pytest.param(15.0, 20.0, id="after-the-delay")],
)
def test_scale_up_to_what_the_demand_needs_after_the_delay(delay_s: float, first_change_s: float) -> None:
    decisions, _ = run(steady(2500, ready=4, seconds=60), scaling=replace(SETTINGS, upscale_delay_s=delay_s))
    changed = [(i * 10.0, d) for i, d in enumerate(decisions) if d.target_groups != 4]
    when, decision = changed[0]
    assert when == first_change_s
    assert (decision.target_groups, decision.rule) == (6, ScaleRule.SCALE_UP)
    assert all(d.rule == ScaleRule.SCALE_UP_PENDING for d in decisions[: int(first_change_s // 10)])


def test_scale_up_is_capped_at_max() -> None:
    decisions, _ = run(steady(20_000, ready=4, seconds=30))
    up = next(d for d in decisions if d.rule == ScaleRule.SCALE_UP)
    assert up.target_groups == 16
    assert up.needed_groups > 16


def test_from_zero_groups_at_once() -> None:
    scaling = replace(SETTINGS, min_groups=0, target_per_group=SLOTS)
    decision, _ = decide_scale(observe(0, 3, ready=0, target=0), ScalingState(), scaling)
    assert (decision.target_groups, decision.rule) == (1, ScaleRule.SCALE_UP)


def test_starting_groups_count_as_capacity() -> None:
    """6 asked for, 4 ready: the demand needs 6, so nothing more is started while they start."""
    observations = [observe(t, 2500, ready=4, target=6) for t in np.arange(0.0, 300, 10.0)]
    decisions, _ = run(observations)
    assert {d.target_groups for d in decisions} == {6}
    assert {d.rule for d in decisions} == {ScaleRule.HOLD}


def test_scale_down_after_the_delay_to_what_the_window_needed() -> None:
    decisions, _ = run(steady(1500, ready=8, seconds=700))
    before = list(decisions[:60])
    assert {d.rule for d in before} == {ScaleRule.SCALE_DOWN_PENDING}
    down = next(d for d in decisions if d.rule == ScaleRule.SCALE_DOWN)
    assert down.target_groups == groups_needed(1500, SLOTS, 0.1, bands=2) == 4
    assert decisions.index(down) == 60  # 600 s at 10 s per call


def test_scale_down_waits_anew_when_the_load_comes_back() -> None:
    observations = steady(1500, ready=8, seconds=300) + steady(3600, ready=8, seconds=20, start=310)
    observations += steady(1500, ready=8, seconds=400, start=340)
    decisions, _ = run(observations)
    assert all(d.target_groups == 8 for d in decisions)
    assert decisions[-1].rule == ScaleRule.SCALE_DOWN_PENDING


def test_the_hysteresis_band_keeps_a_group_added_for_this_load() -> None:
    """2150 requests need 5 groups to scale up to, but 6 to scale down from (a second band)."""
    decisions, _ = run(steady(2150, ready=6, seconds=1800))
    assert {d.target_groups for d in decisions} == {6}
    assert groups_needed(2150, SLOTS, 0.1) == 5


def test_a_steady_ramp_is_extrapolated_over_the_cold_start() -> None:
    ramp = [observe(t, 1000 + 1.0 * t, ready=4) for t in np.arange(0.0, 601, 10.0)]
    decisions, _ = run(ramp, scaling=replace(SETTINGS, upscale_delay_s=0))
    last = decisions[-1]
    assert last.forecast == pytest.approx(last.level + 600 * 1.0, rel=0.05)
    # Reactive sizing of the level alone would still hold 4 groups.
    assert groups_needed(last.level, SLOTS, 0.1) == 4
    assert last.target_groups == groups_needed(last.forecast, SLOTS, 0.1) > 4


@pytest.mark.parametrize(
    "shape",
    [
        pytest.param(lambda t: 1000 + (600 if t >= 300 else 0), id="step"),
        pytest.param(lambda t: 1000 + (600 if 200 <= t < 400 else 0), id="burst"),
        pytest.param(lambda t: 1000 + (600 if t >= 100 else 0) - (600 if t >= 500 else 0), id="plateau"),
    ],
)
def test_steps_and_bursts_are_not_extrapolated(shape: object) -> None:
    observations = [observe(t, shape(t), ready=6) for t in np.arange(0.0, 601, 10.0)]  # type: ignore[operator]
    decisions, _ = run(observations)
    assert all(d.forecast == d.level for d in decisions)


def test_a_backlog_is_sized_from_arrivals_and_drained_within_a_cold_start() -> None:
    # Unsaturated for a minute: 1000 running at 25 req/s -> 40 s of service.
    quiet = [observe(t, 1000, ready=4, arrivals=25.0 * t) for t in np.arange(0.0, 61, 10.0)]
    # Then saturated: 2048 slots full, 3000 waiting, arrivals at 75/s (3000 offered).
    busy = observe(70, 2048, ready=4, waiting=3000, arrivals=25.0 * 60 + 75.0 * 10)
    busy2 = observe(80, 2048, ready=4, waiting=3750, arrivals=25.0 * 60 + 75.0 * 20)
    busy3 = observe(90, 2048, ready=4, waiting=4500, arrivals=25.0 * 60 + 75.0 * 30)
    decisions, state = run([*quiet, busy, busy2, busy3])
    assert state.service_s == pytest.approx(40.0)
    last = decisions[-1]
    # Offered: arrivals/s over the last 30 s (75) x 40 s = 3000, not the 6548 in the system.
    assert last.level == pytest.approx(3000, rel=0.05)
    assert "backlog drained" in last.reason
    assert last.forecast > last.level
    assert last.target_groups > groups_needed(3000, SLOTS, 0.1)


def test_the_cold_start_is_learnt_from_the_groups_started() -> None:
    decisions, state = run(steady(2500, ready=4, seconds=0), scaling=replace(SETTINGS, upscale_delay_s=0))
    assert decisions[0].target_groups == 6
    assert state.starts == (0.0, 0.0)
    later = [observe(t, 2500, ready=4, target=6) for t in (100.0, 200.0)]
    later += [observe(250.0, 2500, ready=5, target=6), observe(400.0, 2500, ready=6, target=6)]
    decisions, state = run(later, state=state)
    assert state.cold_start_s == pytest.approx(0.5 * 250 + 0.5 * 400)
    assert state.starts == ()
    assert decisions[-1].cold_start_s == state.cold_start_s


def test_the_kv_cache_can_bound_a_group_before_its_slots() -> None:
    """200 running fill 90 % of the KV cache: a group holds ~222 such requests, not 512."""
    decision, _ = decide_scale(observe(0, 800, ready=4, kv=0.9), ScalingState(), SETTINGS)
    assert decision.capacity_per_group == pytest.approx(200 / 0.9)
    assert decision.needed_groups == groups_needed(800, 200 / 0.9, 0.1)


def test_a_target_per_group_overrides_the_reported_slots() -> None:
    decision, _ = decide_scale(
        observe(0, 800, ready=4), ScalingState(), replace(SETTINGS, target_per_group=100)
    )
    assert decision.capacity_per_group == 100
    assert decision.needed_groups == 10


def test_without_any_known_size_it_holds() -> None:
    decision, _ = decide_scale(observe(0, 800, ready=4, slots=0.0), ScalingState(), SETTINGS)
    assert (decision.target_groups, decision.rule) == (4, ScaleRule.NO_CAPACITY_KNOWN)


def test_the_state_is_a_json_value_and_survives_a_round_trip() -> None:
    _, state = run(steady(2500, ready=4, seconds=200))
    stored = json.loads(json.dumps(state.to_dict()))
    assert ScalingState.from_dict(stored) == state
    assert ScalingState.from_dict(None) == ScalingState()
    assert ScalingState.from_dict({"samples": "garbage"}) == ScalingState()


def test_a_lost_state_only_costs_the_history() -> None:
    """After a Serve controller restart (empty policy_state) starting groups are not re-triggered."""
    decision, state = decide_scale(observe(0, 2500, ready=4, target=6), ScalingState(), SETTINGS)
    assert decision.target_groups == 6
    assert state.starts == (None, None)


def test_settings_refuse_bad_values() -> None:
    with pytest.raises(ValueError, match="min_groups"):
        ScalingSettings(min_groups=3, max_groups=2)
    with pytest.raises(ValueError, match="target_per_group"):
        ScalingSettings(min_groups=1, max_groups=2, target_per_group=0)


# ─── properties ──────────────────────────────────────────────────────────────────────────────


@dataclass
class World:
    """Groups asked for become ready after a fixed cold start."""

    cold_start_s: float
    ready_at: list[float]

    def counts(self, now: float) -> tuple[int, int]:
        return sum(1 for at in self.ready_at if at <= now), len(self.ready_at)

    def apply(self, target: int, now: float) -> None:
        while len(self.ready_at) < target:
            self.ready_at.append(now + self.cold_start_s)
        while len(self.ready_at) > target:
            self.ready_at.pop()


def simulate(
    demands: Sequence[float], scaling: ScalingSettings, initial: int, cold_start_s: float
) -> list[int]:
    """Targets over time for in-system ``demands`` sampled every 10 s (waiting beyond the slots)."""
    world, state, targets = World(cold_start_s, [0.0] * initial), ScalingState(), []
    for step, demand in enumerate(demands):
        now = step * 10.0
        ready, target = world.counts(now)
        running = min(demand, ready * SLOTS)
        observation = observe(now, running, ready=ready, target=target, waiting=demand - running)
        decision, state = decide_scale(observation, state, scaling)
        assert scaling.min_groups <= decision.target_groups <= scaling.max_groups
        world.apply(decision.target_groups, now)
        targets.append(decision.target_groups)
    return targets


def reversals(targets: Sequence[int]) -> int:
    changes = [b - a for a, b in itertools.pairwise(targets) if b != a]
    return sum(1 for a, b in itertools.pairwise(changes) if (a > 0) != (b > 0))


scalings = st.builds(
    ScalingSettings,
    min_groups=st.integers(1, 4),
    max_groups=st.integers(4, 64),
    headroom=st.floats(0.0, 0.3),
    cold_start_s=st.sampled_from([0.0, 120.0, 600.0, 900.0]),
    upscale_delay_s=st.sampled_from([0.0, 15.0, 30.0]),
    downscale_delay_s=st.sampled_from([0.0, 60.0, 600.0]),
)


@settings(max_examples=60, deadline=None)
@given(
    scaling=scalings,
    seed=st.integers(0, 2**32 - 1),
    initial=st.integers(1, 64),
    cold_start_s=st.sampled_from([0.0, 150.0, 700.0]),
)
def test_targets_stay_within_bounds_whatever_the_load(
    scaling: ScalingSettings, seed: int, initial: int, cold_start_s: float
) -> None:
    rng = np.random.default_rng(seed)
    demands = rng.choice([0.0, 50.0, 500.0, 5000.0, 50_000.0], size=120) * rng.random(120)
    targets = simulate(
        demands.tolist(), scaling, min(max(initial, scaling.min_groups), scaling.max_groups), cold_start_s
    )
    assert all(scaling.min_groups <= t <= scaling.max_groups for t in targets)


@settings(max_examples=60, deadline=None)
@given(
    scaling=scalings,
    mean=st.floats(100.0, 30_000.0),
    seed=st.integers(0, 2**32 - 1),
    initial=st.integers(1, 64),
    cold_start_s=st.sampled_from([0.0, 150.0, 700.0]),
)
def test_a_steady_load_never_reverses_the_direction(
    scaling: ScalingSettings, mean: float, seed: int, initial: int, cold_start_s: float
) -> None:
    """A stationary load (within one standard deviation of its mean) moves the target one way at most."""
    rng = np.random.default_rng(seed)
    demands = mean + math.sqrt(mean) * rng.uniform(-1.0, 1.0, size=720)  # two hours every 10 s
    first = min(max(initial, scaling.min_groups), scaling.max_groups)
    targets = simulate(demands.tolist(), scaling, first, cold_start_s)
    assert reversals([first, *targets]) == 0
