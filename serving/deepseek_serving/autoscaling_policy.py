"""The group-count decision of queue-depth autoscaling: pure, state in and state out.

Why look ahead: a DeepSeek-class group (a whole model instance over one or more GPU nodes) takes
minutes to become ready — weights of ~700 GB to load, DeepGEMM/CUDA-graph warm-up, EP all-to-all
set-up: 2-7 min in llm-d's autoscaler notes, ~8 min for TP8+EP on H20 and up to ~20 min with a
model download (DSRI's DeepSeek-R1 write-up). A policy that adds a group only once requests queue
serves the whole start-up time late. This one sizes the group count for the demand expected when
a group started *now* would be ready, and keeps what is starting as capacity so it never
re-triggers while a group starts.

Glossary
    demand
        Requests in the system: vLLM's running + waiting over every rank of every group, plus
        requests queued in front of the groups (Ray Serve's handle queue).
    offered load
        What the system would hold if nobody waited. While requests wait for a slot (saturated),
        running + waiting counts a backlog piling up, not the load, so the offered load is then
        arrival rate × service time (Little's law; the service time measured while nothing
        waited); otherwise it is the demand.
    level
        The offered load averaged over the last minute of samples. A fresher estimate replaces it
        when it lies beyond the fluctuation band above it (it is then a new level, not noise):
        the latest sample, or arrival rate × service time, which shows a jump of arrivals a
        service time before the queues do.
    fluctuation band
        ``3 · sqrt(level)``: three standard deviations of the number of requests in the system,
        which is Poisson for Poisson arrivals whatever the service times (M/G/∞).
    capacity (of a group)
        Request slots: ``max_num_seqs`` (capped by the rank's admission limit) summed over the
        group's ranks, or fewer when the KV cache fills first (``running / kv_usage``). A group
        carrying more than its slots makes requests wait, i.e. TTFT grows.
    cold start
        Seconds from raising the target to the new group serving. Configured, then learnt from
        the groups this policy started (time from the target change to the group reporting ready).
    forecast
        Level one cold start ahead: level + ramp × cold start + drain. A ramp counts only when it
        is real: on both halves of the trend window (the cold start, within 5-20 min) the fitted
        slope is positive and significant (> 2 standard errors), and the smaller slope rises by
        more than twice the fluctuation band over the window. A step (flash crowd) has a flat
        half, a burst has halves of opposite signs, a steady load neither a significant slope
        nor such a rise: none of them is extrapolated.
    drain
        Slots that clear, within one cold start, the backlog there will be when added capacity
        arrives (what waits now, plus what piles up until then). Under FIFO every new request
        waits behind a backlog, so an undrained one costs the SLO of everything after it.
    groups needed
        ``ceil((x · (1 + headroom) + band(x)) / capacity)`` for demand ``x``: headroom for what
        the forecast misses, and the fluctuation band.

Rules (each decision names one, ``ScaleRule``):
    1. bounds first: a target outside ``[min_groups, max_groups]`` is brought inside at once;
    2. scale up when the forecast needs more groups than ready + starting (what starts counts),
       to the number needed, once that has held for ``upscale_delay_s`` (at once from zero);
    3. scale down when the level has fitted in fewer groups with headroom and *two* fluctuation
       bands (the second is the hysteresis), and the forecast too, for ``downscale_delay_s``;
       the new target is the most groups so needed over the last ``downscale_delay_s`` (a
       sliding window, as Kubernetes' HPA stabilises), so a long descent steps down without
       waiting anew. With ``min_groups`` 0 (scale to zero) an idle deployment goes to 0;
    4. otherwise hold. Between adding (one band) and removing (two bands) lies a band of
       ``3 · sqrt(level)`` requests: a load that stays within one standard deviation of its mean
       never makes the target go up and then down, or down and then up.

State (``ScalingState``) is a value: the caller stores ``state.to_dict()`` (Ray Serve's
``policy_state``) and hands it back on the next call. Losing it (a Serve controller restart,
which resets ``policy_state``) only costs the trend and the learnt cold start for a while.

Worked example: 6 ready groups of 512 slots, none starting, a level of 3120 requests rising on
both halves of the window by +0.6 req/s, cold start 600 s, headroom 10 %: forecast
3120 + 0.6 × 600 = 3480; needed = ceil((3480 × 1.1 + 3 × 59) / 512) = ceil(7.82) = 8 → scale up
to 8 (rule ``ScaleUp``) once that has held for ``upscale_delay_s``. Had the level been 2200 for
the last 10 minutes, 6 groups would scale down to ceil((2200 × 1.1 + 6 × 47) / 512) = 6 → hold.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from enum import StrEnum
from typing import Any, Final

__all__ = [
    "FLUCTUATION_Z",
    "SAMPLE_INTERVAL_S",
    "GroupLoad",
    "ScaleDecision",
    "ScaleRule",
    "ScalingObservation",
    "ScalingSettings",
    "ScalingState",
    "decide_scale",
    "fluctuation_band",
    "groups_needed",
]

SAMPLE_INTERVAL_S: Final = 10.0
"""Seconds between two remembered demand samples: Ray Serve's replicas push their autoscaling
metrics every 10 s (``RAY_SERVE_REPLICA_AUTOSCALING_METRIC_PUSH_INTERVAL_S``), while its control
loop calls the policy every 0.1 s on the same numbers."""
RATE_WINDOW_S: Final = 30.0
"""Seconds of the arrivals counter the arrival rate is measured over."""
LEVEL_WINDOW_S: Final = 60.0
"""Seconds of demand samples averaged into the level."""
FLUCTUATION_Z: Final = 3.0
"""Standard deviations of the Poisson fluctuation of demand kept free (≈ 99.9 % one-sided)."""
TREND_WINDOW_BOUNDS_S: Final = (300.0, 1200.0)
"""The trend window is the cold start, clamped to these bounds."""
MIN_HALF_SAMPLES: Final = 3
"""Samples each half of the trend window needs before its slope counts."""
SERVICE_EMA_ALPHA: Final = 0.2
"""Weight of a new service-time measurement (one per sample)."""
COLD_START_EMA_ALPHA: Final = 0.5
"""Weight of a new cold-start measurement (one per group that became ready)."""
KV_USAGE_MEASURABLE: Final = 0.05
"""KV-cache usage below which ``running / kv_usage`` is too noisy to bound a group's slots."""


class ScaleRule(StrEnum):
    """Which rule made the decision (a small, fixed vocabulary: metric labels, Event reasons)."""

    HOLD = "Hold"
    SCALE_UP = "ScaleUp"
    SCALE_UP_PENDING = "ScaleUpPending"
    SCALE_DOWN = "ScaleDown"
    SCALE_DOWN_PENDING = "ScaleDownPending"
    BOUNDS = "Bounds"
    NO_CAPACITY_KNOWN = "NoCapacityKnown"


@dataclass(frozen=True)
class ScalingSettings:
    """The spec's autoscaling settings, as the policy reads them."""

    min_groups: int
    """Fewest groups (0 only with scale-to-zero)."""
    max_groups: int
    """Most groups."""
    target_per_group: float | None = None
    """Requests one group should carry; ``None``: its reported slots (``max_num_seqs`` × ranks)."""
    headroom: float = 0.1
    """Fraction of demand kept free above the forecast, e.g. 0.1 for 10 %."""
    cold_start_s: float = 600.0
    """Seconds from adding a group to its serving, until the policy has measured its own."""
    upscale_delay_s: float = 15.0
    """Seconds a scale-up must stay needed before it happens."""
    downscale_delay_s: float = 600.0
    """Seconds the load must fit in fewer groups before they are removed."""

    def __post_init__(self) -> None:
        if not 0 <= self.min_groups <= self.max_groups or self.max_groups < 1:
            raise ValueError(f"need 0 <= min_groups ({self.min_groups}) <= max_groups ({self.max_groups})")
        if self.target_per_group is not None and self.target_per_group <= 0:
            raise ValueError("target_per_group must be > 0")
        if self.headroom < 0 or self.cold_start_s < 0:
            raise ValueError("headroom and cold_start_s must be >= 0")
        if self.upscale_delay_s < 0 or self.downscale_delay_s < 0:
            raise ValueError("delays must be >= 0")


@dataclass(frozen=True)
class GroupLoad:
    """What one ready group reports (sums over its ranks)."""

    running: float
    """Requests being prefilled or decoded (vLLM ``num_requests_running``)."""
    waiting: float
    """Requests waiting in the engines (vLLM ``num_requests_waiting``)."""
    capacity: float = 0.0
    """Request slots: ``max_num_seqs`` (capped by the admission limit) over the ranks; 0: unknown."""
    kv_usage: float = 0.0
    """Mean KV-cache usage of the ranks, 0..1 (vLLM ``kv_cache_usage_perc``)."""


@dataclass(frozen=True)
class ScalingObservation:
    """One look at the deployment: the loads of the ready groups and where the target stands."""

    now_s: float
    """Clock, seconds (any epoch, increasing)."""
    groups: tuple[GroupLoad, ...]
    """Loads of the ready groups that reported (a group that just became ready may not yet)."""
    ready_groups: int
    """Groups serving."""
    target_groups: int
    """Groups asked for now: ready + starting."""
    arrivals_total: float | None = None
    """Requests that ever reached the ranks (a counter; None: not reported). Restarts may reset it."""
    queued: float = 0.0
    """Requests waiting in front of every group (Ray Serve's handle queue)."""

    @property
    def starting_groups(self) -> int:
        return max(0, self.target_groups - self.ready_groups)

    @property
    def demand(self) -> float:
        """Requests in the system: running + waiting over the groups + queued in front."""
        return sum(g.running + g.waiting for g in self.groups) + self.queued


@dataclass(frozen=True)
class ScalingState:
    """What the policy remembers between calls (a value; ``to_dict``/``from_dict`` for storage)."""

    samples: tuple[tuple[float, float], ...] = ()
    """``(time_s, demand)`` every ``SAMPLE_INTERVAL_S`` over the trend window, oldest first."""
    arrivals: tuple[tuple[float, float], ...] = ()
    """``(time_s, arrivals_total)`` over the last ``RATE_WINDOW_S``, oldest first."""
    service_s: float | None = None
    """Mean seconds a request holds a slot (Little: running / arrival rate, measured unsaturated)."""
    capacity: float | None = None
    """Last known slots of a group."""
    pending_direction: int = 0
    """+1 / -1 while a scale-up / scale-down waits for its delay, else 0."""
    pending_since_s: float | None = None
    """When the pending condition started to hold."""
    pending_groups: int = 0
    """Groups the pending change would go to."""
    fits: tuple[tuple[float, int], ...] = ()
    """``(time_s, groups the level fits in with two bands)`` at each sample of the last downscale delay."""
    starts: tuple[float | None, ...] = ()
    """When each starting group was asked for (oldest first; None: before this state existed)."""
    last_ready: int = 0
    """Ready groups at the previous call (a rise means started groups became ready)."""
    cold_start_s: float | None = None
    """Learnt seconds from asking for a group to its serving."""
    last_change_s: float | None = None
    """When this policy last changed the target."""

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form, e.g. for Ray Serve's ``policy_state``."""
        return {
            "samples": [list(s) for s in self.samples],
            "arrivals": [list(a) for a in self.arrivals],
            "service_s": self.service_s,
            "capacity": self.capacity,
            "pending_direction": self.pending_direction,
            "pending_since_s": self.pending_since_s,
            "pending_groups": self.pending_groups,
            "fits": [list(f) for f in self.fits],
            "starts": list(self.starts),
            "last_ready": self.last_ready,
            "cold_start_s": self.cold_start_s,
            "last_change_s": self.last_change_s,
        }

    @classmethod
    def from_dict(cls, stored: Mapping[str, Any] | None) -> ScalingState:
        """The state ``to_dict`` wrote; an empty state for ``None``, ``{}`` or a foreign layout."""
        if not stored:
            return cls()
        try:
            return cls(
                samples=tuple((float(t), float(d)) for t, d in stored.get("samples", ())),
                arrivals=tuple((float(t), float(a)) for t, a in stored.get("arrivals", ())),
                service_s=_optional_float(stored.get("service_s")),
                capacity=_optional_float(stored.get("capacity")),
                pending_direction=int(stored.get("pending_direction", 0)),
                pending_since_s=_optional_float(stored.get("pending_since_s")),
                pending_groups=int(stored.get("pending_groups", 0)),
                fits=tuple((float(t), int(g)) for t, g in stored.get("fits", ())),
                starts=tuple(_optional_float(s) for s in stored.get("starts", ())),
                last_ready=int(stored.get("last_ready", 0)),
                cold_start_s=_optional_float(stored.get("cold_start_s")),
                last_change_s=_optional_float(stored.get("last_change_s")),
            )
        except (TypeError, ValueError):
            return cls()


@dataclass(frozen=True)
class ScaleDecision:
    """How many groups to run, which rule said so, and why in words."""

    target_groups: int
    rule: ScaleRule
    reason: str
    level: float = 0.0
    """Requests in the system the decision planned for now (see "level")."""
    forecast: float = 0.0
    """Level expected one cold start ahead."""
    needed_groups: int = 0
    """Groups the forecast needs, before bounds and delays."""
    capacity_per_group: float = 0.0
    """Requests one group is planned to carry (0: unknown)."""
    cold_start_s: float = 0.0
    """The look-ahead used."""


def fluctuation_band(demand: float) -> float:
    """``3 · sqrt(demand)``: 3 standard deviations of a Poisson number of requests in the system."""
    return FLUCTUATION_Z * math.sqrt(max(demand, 0.0))


def groups_needed(demand: float, capacity_per_group: float, headroom: float, *, bands: int = 1) -> int:
    """Whole groups that carry ``demand`` with ``headroom`` and ``bands`` fluctuation bands.

    >>> groups_needed(3480, 512, 0.1)
    8
    >>> groups_needed(2200, 512, 0.1, bands=2)
    6
    >>> groups_needed(0, 512, 0.1)
    0
    """
    if capacity_per_group <= 0:
        raise ValueError("capacity_per_group must be > 0")
    if demand <= 0:
        return 0
    return math.ceil((demand * (1 + headroom) + bands * fluctuation_band(demand)) / capacity_per_group)


def decide_scale(
    observation: ScalingObservation, state: ScalingState, settings: ScalingSettings
) -> tuple[ScaleDecision, ScalingState]:
    """Groups to run, looking one cold start ahead; whole groups, within bounds.

    Parameters:
        observation: the ready groups' loads, ready and target group counts, arrivals, clock.
        state: what the previous call returned (``ScalingState()`` the first time).
        settings: bounds, headroom, delays, cold start, optional target per group.

    Returns:
        ``(decision, new_state)``. ``decision.target_groups`` is within the bounds; it differs
        from ``observation.target_groups`` only by a rule of the module docstring, named in
        ``decision.rule`` and told in ``decision.reason``.
    """
    now, current = observation.now_s, observation.target_groups
    # Step 1: remember what changed since the last call (started groups, samples, rates).
    state = _track_starts(observation, state)
    state = _record_samples(observation, state)
    cold_start_s = state.cold_start_s if state.cold_start_s is not None else settings.cold_start_s
    capacity = _capacity_per_group(observation, state, settings)
    if settings.target_per_group is None and capacity is not None:
        state = replace(state, capacity=capacity)

    # Step 2: the level of the offered load now, and one cold start ahead (plus what it takes to
    # drain a backlog within one cold start).
    rate = _arrival_rate(state)
    offered = _offered(observation, rate, state.service_s)
    recent = [d for t, d in state.samples if t > now - LEVEL_WINDOW_S] or [offered]
    mean = sum(recent) / len(recent)
    by_rate = rate * state.service_s if rate is not None and state.service_s is not None else 0.0
    level = max(mean, offered - fluctuation_band(mean), by_rate - fluctuation_band(mean))
    trend = _ramp_slope(state.samples, _trend_window_s(cold_start_s))
    drain = _drain_slots(observation, state, level, offered, capacity, cold_start_s)
    forecast = level + trend * cold_start_s + drain
    words = (
        f"level {level:.0f} req (in system {observation.demand:.0f}"
        + (f", arrivals {rate:.2f}/s x {state.service_s:.1f} s = {by_rate:.0f}" if by_rate else "")
        + ")"
        + (f", ramp +{trend:.3f} req/s x {cold_start_s:.0f} s cold start" if trend else "")
        + (f", backlog drained within a cold start +{drain:.0f}" if drain else "")
        + f" -> forecast {forecast:.0f}"
    )

    def decided(
        target: int, rule: ScaleRule, why: str, new_state: ScalingState, needed: int
    ) -> tuple[ScaleDecision, ScalingState]:
        if target != current:
            new_state = _record_change(new_state, current, target, now)
        decision = ScaleDecision(
            target_groups=target,
            rule=rule,
            reason=f"{words}; {why}",
            level=level,
            forecast=forecast,
            needed_groups=needed,
            capacity_per_group=capacity or 0.0,
            cold_start_s=cold_start_s,
        )
        return decision, new_state

    # Step 3: bounds first.
    bounded = min(max(current, settings.min_groups), settings.max_groups)
    if bounded != current:
        why = f"{current} group(s) outside [{settings.min_groups}, {settings.max_groups}] -> {bounded}"
        return decided(bounded, ScaleRule.BOUNDS, why, _no_pending(state), bounded)
    if capacity is None:
        # Nothing has reported its slots and no target is set: only "demand, but no group" is
        # decidable (one group; the next decisions know its size).
        wanted = min(
            max(1 if level > 0 and current == 0 else current, settings.min_groups), settings.max_groups
        )
        return decided(
            wanted, ScaleRule.NO_CAPACITY_KNOWN, "no group has reported its slots yet", state, wanted
        )

    # Step 4: scale up to what the forecast needs, counting what starts as capacity.
    needed_up = groups_needed(forecast, capacity, settings.headroom)
    sizes = (
        f"{capacity:.0f} req/group, headroom {settings.headroom:.0%} + {FLUCTUATION_Z:g} sigma -> "
        f"{needed_up} group(s) needed; {observation.ready_groups} ready + "
        f"{observation.starting_groups} starting"
    )
    if needed_up > current and current < settings.max_groups:
        target = min(needed_up, settings.max_groups)
        since = (
            state.pending_since_s
            if state.pending_direction > 0 and state.pending_since_s is not None
            else now
        )
        pending = replace(state, pending_direction=1, pending_since_s=since, pending_groups=target)
        waited = now - since
        if current == 0 or waited + 1e-6 >= settings.upscale_delay_s:
            why = f"{sizes} -> scale up to {target}"
            return decided(target, ScaleRule.SCALE_UP, why, _no_pending(pending), needed_up)
        why = f"{sizes} -> scale up to {target} after {settings.upscale_delay_s:g} s ({waited:.0f} s so far)"
        return decided(current, ScaleRule.SCALE_UP_PENDING, why, pending, needed_up)

    # Step 5: scale down once the level has fitted in fewer groups with the hysteresis band for the
    # whole delay; the target is the most groups needed over the last delay (a sliding window,
    # as Kubernetes' HPA stabilises), so a long descent steps down without waiting anew.
    fits_in = max(groups_needed(level, capacity, settings.headroom, bands=2), needed_up, settings.min_groups)
    if state.samples and state.samples[-1][0] == now:
        kept = tuple(f for f in state.fits if f[0] > now - settings.downscale_delay_s - SAMPLE_INTERVAL_S)
        state = replace(state, fits=(*kept, (now, fits_in)))
    if fits_in < current:
        continuing = state.pending_direction < 0 and state.pending_since_s is not None
        since = state.pending_since_s if continuing and state.pending_since_s is not None else now
        window = [f for t, f in state.fits if t >= now - settings.downscale_delay_s]
        floor = max([fits_in, *window])
        pending = replace(state, pending_direction=-1, pending_since_s=since, pending_groups=floor)
        waited = now - since
        if floor < current and waited + 1e-6 >= settings.downscale_delay_s:
            why = f"{sizes}; the level has fitted in {floor} (two bands) for {waited:.0f} s -> scale down"
            return decided(floor, ScaleRule.SCALE_DOWN, why, pending, needed_up)
        why = f"{sizes}; fits in {floor} (two bands) for {waited:.0f} of {settings.downscale_delay_s:g} s"
        return decided(current, ScaleRule.SCALE_DOWN_PENDING, why, pending, needed_up)
    return decided(current, ScaleRule.HOLD, f"{sizes} -> hold {current}", _no_pending(state), needed_up)


# ─── helpers (pure) ──────────────────────────────────────────────────────────────────────────


def _optional_float(value: Any) -> float | None:
    return None if value is None else float(value)


def _no_pending(state: ScalingState) -> ScalingState:
    return replace(state, pending_direction=0, pending_since_s=None, pending_groups=0)


def _record_change(state: ScalingState, current: int, target: int, now: float) -> ScalingState:
    """A new target: remember when each added group was asked for; forget cancelled ones (newest)."""
    starts = state.starts + (now,) * (target - current) if target > current else state.starts
    if target < current:
        starting_left = max(0, len(starts) - (current - target))
        starts = starts[:starting_left]
    return replace(state, starts=starts, last_change_s=now)


def _track_starts(observation: ScalingObservation, state: ScalingState) -> ScalingState:
    """Match the starting groups with their start times; learn the cold start from those now ready."""
    starts, cold_start = list(state.starts), state.cold_start_s
    became_ready = max(0, observation.ready_groups - state.last_ready)
    for _ in range(min(became_ready, len(starts))):
        started = starts.pop(0)
        if started is not None:
            measured = max(0.0, observation.now_s - started)
            cold_start = (
                measured
                if cold_start is None
                else (1 - COLD_START_EMA_ALPHA) * cold_start + COLD_START_EMA_ALPHA * measured
            )
    starting = observation.starting_groups
    if len(starts) > starting:
        starts = starts[len(starts) - starting :]  # the oldest became ready unseen, or were replaced
    elif len(starts) < starting:
        unknown: list[float | None] = [None] * (starting - len(starts))
        starts = unknown + starts  # started before this state existed
    return replace(state, starts=tuple(starts), cold_start_s=cold_start, last_ready=observation.ready_groups)


def _record_samples(observation: ScalingObservation, state: ScalingState) -> ScalingState:
    """Append an offered-load sample and an arrivals sample at most every ``SAMPLE_INTERVAL_S``."""
    now = observation.now_s
    if state.samples and now - state.samples[-1][0] < SAMPLE_INTERVAL_S:
        return state
    arrivals = state.arrivals
    if observation.arrivals_total is not None:
        total = observation.arrivals_total
        if arrivals and total < arrivals[-1][1]:
            arrivals = ()  # the counter fell (ranks restarted, waiting requests aborted): start over
        arrivals = (*tuple(a for a in arrivals if a[0] >= now - RATE_WINDOW_S), (now, total))
    service_s = state.service_s
    rate = _arrival_rate(replace(state, arrivals=arrivals))
    running = sum(g.running for g in observation.groups)
    if rate and rate > 0 and running > 0 and not _saturated(observation):
        # Nothing waits: every arrival is admitted at once, so running = rate x service (Little).
        measured = running / rate
        service_s = (
            measured
            if service_s is None
            else (1 - SERVICE_EMA_ALPHA) * service_s + SERVICE_EMA_ALPHA * measured
        )
    keep_after = now - TREND_WINDOW_BOUNDS_S[1]
    sample = (now, _offered(observation, rate, service_s))
    samples = (*(s for s in state.samples if s[0] >= keep_after), sample)
    return replace(state, samples=samples, arrivals=arrivals, service_s=service_s)


def _drain_slots(
    observation: ScalingObservation,
    state: ScalingState,
    level: float,
    offered: float,
    capacity: float | None,
    cold_start_s: float,
) -> float:
    """Slots that drain, within one cold start, the backlog there will be when capacity arrives.

    Requests waiting now (``in system - offered``) plus those piling up until the first starting
    group is ready (or one started now, a cold start away): ``level - ready slots`` more requests
    per service time. Draining them within one cold start takes ``backlog x service / cold start``
    slots on top of the level. Under FIFO every new request waits behind the backlog, so a
    backlog left to the spare capacity of the level alone can cost a whole peak.
    """
    service_s = state.service_s
    if service_s is None or capacity is None or cold_start_s <= 0:
        return 0.0
    backlog = max(0.0, observation.demand - offered)
    excess = max(0.0, level - observation.ready_groups * capacity)
    if backlog <= 0 and excess <= 0:
        return 0.0
    started = [t for t in state.starts if t is not None]
    until_ready = max(0.0, cold_start_s - (observation.now_s - min(started))) if started else cold_start_s
    backlog_then = backlog + excess / service_s * until_ready
    return backlog_then * service_s / cold_start_s


def _saturated(observation: ScalingObservation) -> bool:
    """Requests wait for a slot (more than the odd one): the queue, not the load, is growing."""
    running = sum(g.running for g in observation.groups)
    waiting = sum(g.waiting for g in observation.groups) + observation.queued
    return waiting > max(1.0, 0.01 * running)


def _offered(observation: ScalingObservation, rate: float | None, service_s: float | None) -> float:
    """Requests the system would hold if none waited: the demand, or arrivals x service when saturated.

    While requests wait, running + waiting counts the backlog piling up, not the load: extrapolating
    it would size for a queue that the added groups will have drained by the time they are ready.
    """
    if _saturated(observation) and rate is not None and service_s is not None:
        return rate * service_s
    return observation.demand


def _arrival_rate(state: ScalingState) -> float | None:
    """Requests per second over the arrivals window; None before two samples 20 s apart."""
    if len(state.arrivals) < 2:
        return None
    (t0, a0), (t1, a1) = state.arrivals[0], state.arrivals[-1]
    if t1 - t0 < 2 * SAMPLE_INTERVAL_S:
        return None
    return max(0.0, (a1 - a0) / (t1 - t0))


def _capacity_per_group(
    observation: ScalingObservation, state: ScalingState, settings: ScalingSettings
) -> float | None:
    """Requests one group is planned to carry: the target if set, else its slots (KV-bound)."""
    if settings.target_per_group is not None:
        return settings.target_per_group
    bounds = []
    for group in observation.groups:
        if group.capacity <= 0:
            continue
        slots = group.capacity
        if group.kv_usage >= KV_USAGE_MEASURABLE and group.running > 0:
            slots = min(slots, group.running / group.kv_usage)
        bounds.append(slots)
    if bounds:
        return sum(bounds) / len(bounds)
    return state.capacity


def _trend_window_s(cold_start_s: float) -> float:
    low, high = TREND_WINDOW_BOUNDS_S
    return min(max(cold_start_s, low), high)


def _ramp_slope(samples: Sequence[tuple[float, float]], window_s: float) -> float:
    """Requests/s of a ramp that holds over the whole window, else 0 (see "forecast" above)."""
    if not samples:
        return 0.0
    end = samples[-1][0]
    recent = [s for s in samples if s[0] > end - window_s]
    middle = end - window_s / 2
    slopes = []
    for half in ([s for s in recent if s[0] <= middle], [s for s in recent if s[0] > middle]):
        fitted = _significant_slope(half)
        if fitted is None or fitted <= 0:
            return 0.0
        slopes.append(fitted)
    slope = min(slopes)
    level = sum(d for _, d in recent) / len(recent)
    return slope if slope * window_s > 2 * fluctuation_band(level) else 0.0


def _significant_slope(points: Sequence[tuple[float, float]]) -> float | None:
    """Least-squares slope when it exceeds two standard errors, else None."""
    n = len(points)
    if n < MIN_HALF_SAMPLES:
        return None
    mean_t = sum(t for t, _ in points) / n
    mean_y = sum(y for _, y in points) / n
    sxx = sum((t - mean_t) ** 2 for t, _ in points)
    if sxx <= 0:
        return None
    slope = sum((t - mean_t) * (y - mean_y) for t, y in points) / sxx
    residual = sum((y - mean_y - slope * (t - mean_t)) ** 2 for t, y in points)
    stderr = math.sqrt(residual / (n - 2) / sxx) if n > 2 else math.inf
    return slope if abs(slope) > 2 * stderr else None
