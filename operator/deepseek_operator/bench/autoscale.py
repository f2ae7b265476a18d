"""`dsd bench autoscale`: our group autoscaler against Ray Serve's, HPA/KEDA's and llm-d's, and an oracle.

A discrete-event simulation replays the same request traces under every policy and counts what a
user and an operator pay: the share of requests whose time to first token (TTFT) met the SLO, the
GPU-hours held (a group holds its GPUs from the moment it is asked for, starting included), how
many times the group count changed and how many of those changes reversed the previous one.

Service model (one *group* = one DeepSeek-V3/R1 fp8 instance on one 8 × H200 node: DP 8 attention
ranks, EP 8 experts, TP 1, the layout of ``examples/deepseek-r1-h200.yaml``):

- 512 request slots (``max_num_seqs`` 64 per rank); a request holds a slot for its prefill
  (50 ms + prompt / 25 k tokens/s) and its decode (output / 25 tokens/s). At a full batch the
  group decodes 512 × 25 = 12.8 k tokens/s, 1.6 k tokens/s per GPU: between vLLM's wide-EP
  figures of ~1.5 k and 2.2 k tokens/s per H200 (vLLM blog, "Large Scale Serving: DeepSeek @
  2.2k tok/s/H200 with Wide-EP", Dec 2025) and under DeepSeek's own 14.8 k output tokens/s per
  H800 node for disaggregated decode at 20-22 tokens/s per user ("DeepSeek-V3/R1 Inference System
  Overview", open-infra-index, Mar 2025).
- KV cache: 2.5 M tokens per group (MLA, 576 × 61 × 2 bytes = 70 KB per token; ~22 GB per H200
  left after ~100 GB of fp8 weights at 0.92 memory utilisation), so ``kv_cache_usage`` is
  prompt + output tokens of the running requests / 2.5 M (~60 % at a full batch here).
- Requests: prompts log-normal (median 1.2 k, mean ~2 k tokens, ≤ 16 k), outputs log-normal
  (mean ~0.9 k tokens, ≤ 8 k, V3 chat and R1 reasoning mixed); Poisson arrivals. All groups
  share one FIFO queue (ideal balancing, the same for every policy). TTFT = queueing + prefill;
  SLO 2 s.
- Cold start of an added group: uniform in 120-180 s (``fast``: weights cached on the node) or
  480-900 s (``slow``: 8 min for TP8+EP on H20 as reported, up to 15 min with image and weight
  pulls; llm-d's autoscaler notes give 2-7 min). Each policy draws from the same seeded
  generator. A removed group is gone at once (its running requests finish on it, unseen).

Traces (seeded; or ``--trace FILE``, a CSV ``arrival_s,prompt_tokens,output_tokens``):

- ``diurnal``: 24 h, a day curve with peak/average drawn in [1.2, 3] (DeepSeek's own service
  ran 278 nodes at peak for 226.75 on average: 1.23), plus bursts (one per ~2 h on average,
  +20-60 % for 2-10 min, rising within a minute: shorter than a slow cold start, so only
  standing headroom serves them);
- ``flash-crowd``: 3 h; arrivals triple within a minute at 1 h, hold for 40 min, ease back over
  10 min;
- ``steady``: 3 h of a constant arrival rate (no change of the group count should be seen).

Policies, side by side on the same traces and cold starts:

- ``ours``: ``deepseek_serving.autoscaling_policy.decide_scale`` with the serving defaults of
  ``AutoscalingSettings`` (the very function the Ray Serve adapter runs), every 10 s (Serve's
  replica metrics push interval), its state carried as the adapter carries ``policy_state``;
- ``ray-serve``: Ray Serve 2.60's default, ``replica_queue_length_autoscaling_policy`` with
  ``target_ongoing_requests`` 2 per replica (= per rank), 30 s look-back mean, its delay logic
  (30 s up, 600 s down) and gang rounding to whole groups, ported in ``ray_serve_default``
  (checked against Ray's own functions in the tests);
- ``ray-serve-tuned``: the same with ``target_ongoing_requests`` = our plan point (64 per rank),
  to separate "reactive" from "mis-targeted";
- ``hpa-keda``: KEDA's Prometheus scaler on ``sum(vllm:num_requests_waiting)`` with threshold 5
  per engine (vLLM production-stack's KEDA guide), Kubernetes HPA's ``AverageValue`` formula with
  its 10 % tolerance, 15 s sync, 300 s scale-down stabilisation, default scale-up limit
  (max(100 %, 4) per 15 s);
- ``llm-d-wva``: llm-d workload-variant-autoscaler's saturation analyser (docs/saturation-analyzer):
  every 60 s on 1-minute peaks, a group saturated at KV ≥ 0.8 or ≥ 5 waiting per engine, +1 group
  when spare KV < 0.1 or spare queue < 3 (pending groups counted), -1 when removal is safe;
- ``oracle``: knows every future request; holds ``ceil(concurrency / 512)`` groups for the busiest
  second of the next cold start (upper bound), so no request ever waits for a slot, and pays the
  same start-up lead. It is the floor of GPU-hours at full SLO.

Purity: no clock, no I/O (``load_trace_csv`` reads a file the CLI names); randomness is a seed.
"""

from __future__ import annotations

import csv
import heapq
import itertools
import math
from collections import deque
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final, Protocol

import numpy as np
import numpy.typing as npt

from deepseek_serving.autoscaling import scaling_settings
from deepseek_serving.autoscaling_policy import GroupLoad, ScalingObservation, ScalingState, decide_scale
from deepseek_serving.config import AutoscalingSettings

__all__ = [
    "COLD_STARTS",
    "POLICY_NAMES",
    "ColdStart",
    "GroupModel",
    "RunResult",
    "SimView",
    "Trace",
    "diurnal_trace",
    "flash_crowd_trace",
    "format_autoscale_bench",
    "load_trace_csv",
    "oracle_schedule",
    "ray_serve_default",
    "run_autoscale_bench",
    "simulate",
    "steady_trace",
    "write_trace_csv",
]

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]

TICK_S: Final = 5.0
"""Simulation step for decisions and observations (every policy period is a multiple)."""
TTFT_SLO_S: Final = 2.0
"""Time-to-first-token objective per request."""
WARMUP_S: Final = 300.0
"""No policy decides before this: the simulation starts with empty queues and the initial groups."""


@dataclass(frozen=True)
class GroupModel:
    """One group's service model (see the module docstring for the sources)."""

    gpus: int = 8
    slots: int = 512
    data_parallel_size: int = 8
    decode_tokens_per_s: float = 25.0
    prefill_base_s: float = 0.05
    prefill_tokens_per_s: float = 25_000.0
    kv_tokens: float = 2_500_000.0

    def prefill_s(self, prompt_tokens: FloatArray) -> FloatArray:
        result: FloatArray = self.prefill_base_s + prompt_tokens / self.prefill_tokens_per_s
        return result

    def service_s(self, prompt_tokens: FloatArray, output_tokens: FloatArray) -> FloatArray:
        result: FloatArray = self.prefill_s(prompt_tokens) + output_tokens / self.decode_tokens_per_s
        return result


@dataclass(frozen=True)
class ColdStart:
    """Seconds from asking for a group to its serving: uniform in ``[low_s, high_s]``."""

    name: str
    low_s: float
    high_s: float


COLD_STARTS: Final = (ColdStart("fast 2-3 min", 120.0, 180.0), ColdStart("slow 8-15 min", 480.0, 900.0))


@dataclass(frozen=True)
class Trace:
    """Requests sorted by arrival."""

    name: str
    arrival_s: FloatArray
    prompt_tokens: FloatArray
    output_tokens: FloatArray
    duration_s: float
    description: str = ""

    def __len__(self) -> int:
        return len(self.arrival_s)


# ─── traces ──────────────────────────────────────────────────────────────────────────────────


def _token_lengths(rng: np.random.Generator, n: int) -> tuple[FloatArray, FloatArray]:
    prompts = np.minimum(rng.lognormal(math.log(1200), 1.0, n), 16_000).round().clip(16)
    outputs = np.minimum(rng.lognormal(math.log(550), 1.0, n), 8_000).round().clip(1)
    return prompts, outputs


def _poisson_arrivals(rng: np.random.Generator, rate_per_s: FloatArray) -> FloatArray:
    """Arrivals of a Poisson process whose rate is constant within each second."""
    counts = rng.poisson(rate_per_s)
    seconds = np.repeat(np.arange(len(rate_per_s), dtype=np.float64), counts)
    arrivals: FloatArray = np.sort(seconds + rng.random(len(seconds)))
    return arrivals


def _trace(name: str, rng: np.random.Generator, rate: FloatArray, description: str) -> Trace:
    arrivals = _poisson_arrivals(rng, rate)
    prompts, outputs = _token_lengths(rng, len(arrivals))
    return Trace(name, arrivals, prompts, outputs, float(len(rate)), description)


def _rate_for_groups(groups_in_use: float, model: GroupModel) -> float:
    """Arrivals per second that keep ``groups_in_use`` groups' slots busy on average."""
    rng = np.random.default_rng(12345)
    prompts, outputs = _token_lengths(rng, 200_000)
    mean_service = float(np.mean(model.service_s(prompts, outputs)))
    return groups_in_use * model.slots / mean_service


def diurnal_trace(
    seed: int = 0, *, hours: float = 24.0, peak_groups: float = 6.5, model: GroupModel | None = None
) -> Trace:
    """A day: ``peak * (f + (1 - f) * ((1 + cos)/2)**3)`` with peak/average in [1.2, 3], plus bursts."""
    model = model or GroupModel()
    rng = np.random.default_rng(seed)
    seconds = np.arange(int(hours * 3600), dtype=np.float64)
    peak_to_average = rng.uniform(1.2, 3.0)
    # mean(((1 + cos)/2)**3) over a day is 5/16; solve f for the drawn peak/average.
    floor = (1 / peak_to_average - 5 / 16) / (1 - 5 / 16)
    peak_at = rng.uniform(0.4, 0.7) * 86_400
    shape = ((1 + np.cos(2 * np.pi * (seconds - peak_at) / 86_400)) / 2) ** 3
    multiplier = floor + (1 - floor) * shape
    # Bursts on top of the day (they add up where they overlap): Poisson starts, one per ~2 h,
    # +20-60 % of the rate of the moment, rising over 60 s, holding 2-10 min, decaying over 120 s.
    bursts = np.zeros_like(seconds)
    start = rng.exponential(7200.0)
    while start < len(seconds):
        amplitude, hold = rng.uniform(0.2, 0.6), rng.uniform(120.0, 600.0)
        rise = np.clip((seconds - start) / 60.0, 0, 1)
        fall = np.exp(-np.clip(seconds - start - 60.0 - hold, 0, None) / 120.0)
        bursts += amplitude * rise * fall
        start += rng.exponential(7200.0)
    multiplier = multiplier * (1 + bursts)
    rate = _rate_for_groups(peak_groups, model) * multiplier
    return _trace(
        "diurnal",
        rng,
        rate,
        f"{hours:g} h, peak/average {peak_to_average:.2f} (before bursts), bursts +20-60 %",
    )


def flash_crowd_trace(seed: int = 0, *, base_groups: float = 3.0, model: GroupModel | None = None) -> Trace:
    """3 h: arrivals triple within a minute at 1 h, hold 40 min, ease back over 10 min."""
    model = model or GroupModel()
    rng = np.random.default_rng(seed + 1)
    seconds = np.arange(3 * 3600, dtype=np.float64)
    rise = np.clip((seconds - 3600.0) / 60.0, 0, 1)
    ease = np.clip(1 - (seconds - 3660.0 - 2400.0) / 600.0, 0, 1)
    rate = _rate_for_groups(base_groups, model) * (1 + 2 * rise * ease)
    return _trace("flash-crowd", rng, rate, "x3 within 60 s at 1 h, 40 min, 10 min back")


def steady_trace(seed: int = 0, *, groups: float = 4.2, model: GroupModel | None = None) -> Trace:
    """3 h of one arrival rate."""
    model = model or GroupModel()
    rng = np.random.default_rng(seed + 2)
    rate = np.full(3 * 3600, _rate_for_groups(groups, model))
    return _trace("steady", rng, rate, f"{groups:g} groups' worth of arrivals, constant")


TRACE_HEADER: Final = ("arrival_s", "prompt_tokens", "output_tokens")


def load_trace_csv(path: Path) -> Trace:
    """A trace from a CSV with the header ``arrival_s,prompt_tokens,output_tokens``.

    Raises:
        ValueError: another header, a negative or non-numeric value, or no requests.
    """
    with path.open(newline="") as handle:
        reader = csv.reader(handle)
        header = tuple(cell.strip() for cell in next(reader, ()))
        if header != TRACE_HEADER:
            raise ValueError(f"{path}: the header must be {','.join(TRACE_HEADER)}, got {','.join(header)}")
        rows = []
        for line, row in enumerate(reader, start=2):
            if not row:
                continue
            try:
                arrival, prompt, output = (float(cell) for cell in row)
            except ValueError as bad:
                raise ValueError(f"{path}:{line}: three numbers expected, got {row}") from bad
            if arrival < 0 or prompt < 0 or output < 1:
                raise ValueError(f"{path}:{line}: arrival_s, prompt_tokens >= 0 and output_tokens >= 1")
            rows.append((arrival, prompt, output))
    if not rows:
        raise ValueError(f"{path}: no requests")
    table = np.array(sorted(rows, key=lambda row: row[0]), dtype=np.float64)
    return Trace(
        path.stem, table[:, 0], table[:, 1], table[:, 2], float(math.ceil(table[-1, 0]) + 1), str(path)
    )


def write_trace_csv(trace: Trace, path: Path) -> None:
    """Write a trace in the format ``load_trace_csv`` reads."""
    with path.open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(TRACE_HEADER)
        for arrival, prompt, output in zip(
            trace.arrival_s, trace.prompt_tokens, trace.output_tokens, strict=True
        ):
            writer.writerow((f"{arrival:.3f}", int(prompt), int(output)))


# ─── the simulated deployment ────────────────────────────────────────────────────────────────


@dataclass(frozen=True)
class SimView:
    """What a policy sees at a tick (the pooled queue split evenly over the ready groups)."""

    now_s: float
    ready_groups: int
    target_groups: int
    running: int
    waiting: int
    kv_usage: float
    """Mean KV-cache usage of the ready groups, 0..1."""
    arrivals_total: int
    slots_per_group: int
    data_parallel_size: int


class Policy(Protocol):
    """A scaling policy under simulation: called every ``period_s``, answers a group count."""

    name: str
    period_s: float

    def decide(self, view: SimView) -> int: ...


@dataclass(frozen=True)
class RunResult:
    """One policy on one trace and cold-start case."""

    trace: str
    cold_start: str
    policy: str
    requests: int
    slo_attainment: float
    ttft_p99_s: float
    gpu_hours: float
    scale_events: int
    direction_changes: int
    mean_groups: float
    max_groups: int
    timeline: tuple[tuple[float, int], ...] = field(default=(), repr=False)
    """``(time_s, groups asked for)`` at every change."""

    def as_row(self) -> dict[str, Any]:
        return {
            "trace": self.trace,
            "cold_start": self.cold_start,
            "policy": self.policy,
            "requests": self.requests,
            "slo_attainment": self.slo_attainment,
            "ttft_p99_s": self.ttft_p99_s,
            "gpu_hours": self.gpu_hours,
            "scale_events": self.scale_events,
            "direction_changes": self.direction_changes,
            "mean_groups": self.mean_groups,
            "max_groups": self.max_groups,
        }


def simulate(
    trace: Trace,
    policy: Policy,
    cold_start: ColdStart,
    *,
    initial_groups: int,
    min_groups: int,
    max_groups: int,
    model: GroupModel | None = None,
    seed: int = 0,
) -> RunResult:
    """Replay ``trace`` under ``policy``: a FIFO queue in front of the ready groups' slots.

    Step 1: every ``TICK_S``, groups that become ready before the next tick join the slot heap
    (each slot free from the group's ready time) and the policy, when its period is due, sets the
    number of groups asked for: new ones start (ready after a cold start drawn from
    ``cold_start``), removed ones are the newest starting groups first, then ready groups (their
    earliest-free slots leave). Step 2: requests of the tick are admitted in arrival order, each
    to the earliest-free slot, or wait in the queue until one frees. TTFT = wait + prefill.
    """
    model = model or GroupModel()
    rng = np.random.default_rng(seed)
    arrivals = trace.arrival_s
    prefill = model.prefill_s(trace.prompt_tokens)
    service = model.service_s(trace.prompt_tokens, trace.output_tokens)
    kv = trace.prompt_tokens + trace.output_tokens
    n = len(arrivals)
    ttft = np.full(n, np.inf)
    slots: list[float] = [0.0] * (initial_groups * model.slots)
    running: list[tuple[float, float]] = []  # (end_s, kv tokens)
    running_kv = 0.0
    waiting: deque[int] = deque()
    ready_at: list[float] = [0.0] * initial_groups  # every group asked for, sorted by ready time
    committed = initial_groups  # ready_at[:committed] have their slots in the heap
    timeline: list[tuple[float, int]] = [(0.0, initial_groups)]
    group_seconds = 0.0
    next_decision = 0.0
    i = 0
    steps = math.ceil(trace.duration_s / TICK_S)

    def admit(index: int, at: float) -> None:
        nonlocal running_kv
        heapq.heapreplace(slots, at + service[index])
        heapq.heappush(running, (at + service[index], kv[index]))
        running_kv += kv[index]
        ttft[index] = at - arrivals[index] + prefill[index]

    def drain(until: float) -> None:
        while waiting and slots and slots[0] <= until:
            admit(waiting.popleft(), slots[0])

    for step in range(steps):
        now = step * TICK_S
        drain(now)
        while running and running[0][0] <= now:
            running_kv -= heapq.heappop(running)[1]
        ready = sum(1 for at in ready_at if at <= now)
        if now >= max(next_decision, WARMUP_S) - 1e-9:
            next_decision = now + policy.period_s
            view = SimView(
                now_s=now,
                ready_groups=ready,
                target_groups=len(ready_at),
                running=len(running),
                waiting=len(waiting),
                kv_usage=running_kv / (ready * model.kv_tokens) if ready else 0.0,
                arrivals_total=i,
                slots_per_group=model.slots,
                data_parallel_size=model.data_parallel_size,
            )
            target = min(max(policy.decide(view), min_groups), max_groups)
            if target != len(ready_at):
                timeline.append((now, target))
            while len(ready_at) < target:
                # Later than every committed group (those are ready before this tick): the
                # committed prefix of the sorted list stays a prefix.
                ready_at.append(now + rng.uniform(cold_start.low_s, cold_start.high_s))
                ready_at.sort()
            while len(ready_at) > target:
                ready_at.pop()  # the last to be ready: a starting group if any
                if committed > len(ready_at):
                    committed = len(ready_at)
                    slots.sort()
                    del slots[: model.slots]
        # Groups ready before the next tick take requests from their ready time.
        end = now + TICK_S
        while committed < len(ready_at) and ready_at[committed] < end:
            slots.extend([ready_at[committed]] * model.slots)
            committed += 1
            heapq.heapify(slots)
        group_seconds += len(ready_at) * TICK_S
        while i < n and arrivals[i] < end:
            at = arrivals[i]
            drain(at)
            if not waiting and slots and slots[0] <= at:
                admit(i, at)
            else:
                waiting.append(i)
            i += 1
    # Requests still waiting at the end have waited since their arrival.
    horizon = steps * TICK_S
    for index in waiting:
        ttft[index] = horizon - arrivals[index] + prefill[index]
    return _result(trace, policy.name, cold_start, ttft, group_seconds, timeline, model)


def _result(
    trace: Trace,
    policy: str,
    cold_start: ColdStart,
    ttft: FloatArray,
    group_seconds: float,
    timeline: Sequence[tuple[float, int]],
    model: GroupModel,
) -> RunResult:
    changes = [b - a for (_, a), (_, b) in itertools.pairwise(timeline)]
    flips = sum(1 for a, b in itertools.pairwise(changes) if (a > 0) != (b > 0))
    counts = [groups for _, groups in timeline]
    return RunResult(
        trace=trace.name,
        cold_start=cold_start.name,
        policy=policy,
        requests=len(ttft),
        slo_attainment=float(np.mean(ttft <= TTFT_SLO_S)) if len(ttft) else 1.0,
        ttft_p99_s=float(np.quantile(np.minimum(ttft, 1e9), 0.99)) if len(ttft) else 0.0,
        gpu_hours=group_seconds * model.gpus / 3600,
        scale_events=len(changes),
        direction_changes=flips,
        mean_groups=group_seconds / max(trace.duration_s, 1.0),
        max_groups=max(counts),
        timeline=tuple(timeline),
    )


# ─── the policies ────────────────────────────────────────────────────────────────────────────


class OursPolicy:
    """``decide_scale`` with the serving defaults (or another headroom); the state carried between calls."""

    name = "ours"
    period_s = 10.0

    def __init__(self, min_groups: int, max_groups: int, *, headroom_percent: float | None = None) -> None:
        # The contract's defaults, mapped as the Ray Serve adapter maps them.
        chosen = {} if headroom_percent is None else {"headroom_percent": headroom_percent}
        contract = AutoscalingSettings(min_groups=min_groups, max_groups=max_groups, **chosen)
        self.settings = scaling_settings(contract)
        self.state = ScalingState()

    def decide(self, view: SimView) -> int:
        per_group = 1 / view.ready_groups if view.ready_groups else 0.0
        load = GroupLoad(
            running=view.running * per_group,
            waiting=view.waiting * per_group,
            capacity=float(view.slots_per_group),
            kv_usage=view.kv_usage,
        )
        observation = ScalingObservation(
            now_s=view.now_s,
            groups=(load,) * view.ready_groups,
            ready_groups=view.ready_groups,
            target_groups=view.target_groups,
            arrivals_total=float(view.arrivals_total),
            queued=0.0 if view.ready_groups else float(view.waiting),
        )
        decision, self.state = decide_scale(observation, self.state, self.settings)
        return decision.target_groups


@dataclass
class RayDelayState:
    """Ray Serve's internal ``policy_state`` keys of the delay logic."""

    counter: int = 0
    timestamp: float | None = None


def ray_serve_default(
    *,
    total_requests: float,
    current_replicas: int,
    target_replicas: int,
    target_ongoing_requests: float,
    upscale_delay_s: float,
    downscale_delay_s: float,
    gang_size: int,
    min_replicas: int,
    max_replicas: int,
    state: RayDelayState,
    now_s: float,
) -> int:
    """Ray Serve 2.60's default decision for one tick, in replicas (a port; see the tests).

    ``replica_queue_length_autoscaling_policy`` (desired = total ongoing / target, from running
    replicas), wrapped by ``_apply_autoscaling_config`` (scaling factors of 1, then
    ``_apply_delay_logic`` against the current target), then ``GangSchedulingAutoscalingPolicy``
    (round up to whole gangs) and the bounds.
    """
    if current_replicas == 0:
        # The cold-start fast path (some requests), else the target as it is; either way the
        # delay logic is skipped and its state left as it was.
        decision = max(1, target_replicas) if total_requests > 0 else target_replicas
    else:
        desired = total_requests / target_ongoing_requests
        # _apply_scaling_factors with factors of 1.
        scaled = math.ceil(desired)
        if math.ceil(desired) < current_replicas and scaled == current_replicas:
            scaled -= 1
        desired_replicas = max(0, scaled)
        # _apply_delay_logic against the current target.
        decision = target_replicas
        if desired_replicas > target_replicas:
            if state.counter < 0:
                state.counter, state.timestamp = 0, None
            state.counter += 1
            state.timestamp = now_s if state.timestamp is None else state.timestamp
            if now_s - state.timestamp + 1e-6 >= upscale_delay_s:
                state.counter, state.timestamp, decision = 0, None, desired_replicas
        elif desired_replicas < target_replicas:
            if state.counter > 0:
                state.counter, state.timestamp = 0, None
            state.counter -= 1
            desired_replicas = max(1, desired_replicas) if target_replicas != 1 else desired_replicas
            state.timestamp = now_s if state.timestamp is None else state.timestamp
            if now_s - state.timestamp + 1e-6 >= downscale_delay_s:
                state.counter, state.timestamp, decision = 0, None, desired_replicas
        else:
            state.counter, state.timestamp = 0, None
    if gang_size > 1 and decision > 0:
        decision = math.ceil(decision / gang_size) * gang_size
    return min(max(decision, min_replicas), max_replicas)


class RayServePolicy:
    """Ray Serve's default policy on whole groups (one replica per DP rank)."""

    period_s = TICK_S
    look_back_s = 30.0

    def __init__(
        self, min_groups: int, max_groups: int, *, target_ongoing_requests: float, name: str
    ) -> None:
        self.name = name
        self.min_groups, self.max_groups = min_groups, max_groups
        self.target = target_ongoing_requests
        self.history: deque[tuple[float, float]] = deque()
        self.state = RayDelayState()

    def decide(self, view: SimView) -> int:
        dp = view.data_parallel_size
        self.history.append((view.now_s, float(view.running + view.waiting)))
        while self.history[0][0] < view.now_s - self.look_back_s:
            self.history.popleft()
        total = sum(value for _, value in self.history) / len(self.history)
        replicas = ray_serve_default(
            total_requests=total,
            current_replicas=view.ready_groups * dp,
            target_replicas=view.target_groups * dp,
            target_ongoing_requests=self.target,
            upscale_delay_s=30.0,
            downscale_delay_s=600.0,
            gang_size=dp,
            min_replicas=self.min_groups * dp,
            max_replicas=self.max_groups * dp,
            state=self.state,
            now_s=view.now_s,
        )
        return math.ceil(replicas / dp)


class HpaKedaPolicy:
    """KEDA Prometheus scaler on waiting requests driving a Kubernetes HPA (``AverageValue``)."""

    name = "hpa-keda"
    period_s = 15.0
    tolerance = 0.1
    down_stabilisation_s = 300.0

    def __init__(self, min_groups: int, max_groups: int, *, waiting_per_engine: float = 5.0) -> None:
        self.min_groups, self.max_groups = min_groups, max_groups
        self.waiting_per_engine = waiting_per_engine
        self.recommendations: deque[tuple[float, int]] = deque()

    def decide(self, view: SimView) -> int:
        current = view.target_groups  # the scale target's status.replicas: groups incl. starting
        target_per_group = self.waiting_per_engine * view.data_parallel_size
        usage = float(view.waiting)
        proposal = current
        if current > 0:
            ratio = usage / (target_per_group * current)
            if abs(1.0 - ratio) > self.tolerance:
                proposal = math.ceil(usage / target_per_group)
        # Stabilisation: scale-up window 0 s (the proposal), scale-down window 300 s (their max).
        self.recommendations.append((view.now_s, proposal))
        while self.recommendations[0][0] <= view.now_s - self.down_stabilisation_s:
            self.recommendations.popleft()
        down = max(value for _, value in self.recommendations)
        recommendation = current
        if proposal > current:
            recommendation = proposal
        elif down < current:
            recommendation = down
        # Default scale-up limit: the larger of +100 % and +4 pods per 15 s period.
        recommendation = min(recommendation, max(2 * current, current + 4))
        return min(max(recommendation, self.min_groups), self.max_groups)


class WvaSaturationPolicy:
    """llm-d workload-variant-autoscaler's saturation analyser, one variant, groups as replicas."""

    name = "llm-d-wva"
    period_s = 60.0
    kv_threshold, queue_threshold = 0.80, 5.0
    kv_spare_trigger, queue_spare_trigger = 0.1, 3.0

    def __init__(self, min_groups: int, max_groups: int) -> None:
        self.min_groups, self.max_groups = min_groups, max_groups
        self.peaks: deque[tuple[float, float, float]] = deque()  # (time, kv, waiting per engine)

    def observe(self, view: SimView) -> None:
        engines = max(1, view.ready_groups * view.data_parallel_size)
        self.peaks.append((view.now_s, view.kv_usage, view.waiting / engines))
        while self.peaks[0][0] <= view.now_s - 60.0:
            self.peaks.popleft()

    def decide(self, view: SimView) -> int:
        self.observe(view)
        ready, current = view.ready_groups, view.target_groups
        kv = max(p[1] for p in self.peaks)
        queue = max(p[2] for p in self.peaks)
        saturated = kv >= self.kv_threshold or queue >= self.queue_threshold
        non_saturated = 0 if saturated or ready == 0 else ready  # pooled: groups look alike
        if non_saturated == 0:
            scale_up = True
        else:
            scale_up = (self.kv_threshold - kv) < self.kv_spare_trigger or (
                self.queue_threshold - queue
            ) < self.queue_spare_trigger
        scale_down_safe = non_saturated >= 2 and (
            self.kv_threshold - kv * non_saturated / (non_saturated - 1) >= self.kv_spare_trigger
            and self.queue_threshold - queue * non_saturated / (non_saturated - 1) >= self.queue_spare_trigger
        )
        if scale_up:
            target = max(current, ready + 1)  # pending groups count: no second +1 while one starts
        elif scale_down_safe:
            target = ready - 1
        else:
            target = current
        return min(max(target, self.min_groups), self.max_groups)


def oracle_schedule(
    trace: Trace, *, lead_s: float, min_groups: int, max_groups: int, model: GroupModel | None = None
) -> IntArray:
    """Groups to hold at each second so every request finds a slot, started ``lead_s`` ahead.

    ``need[s] = ceil(requests in service during second s (upper bound) / slots)``; the schedule
    holds ``max(need[s .. s + lead_s])``: a group needed within one start-up lead is kept (stopping
    and restarting it would cost at least as much).
    """
    model = model or GroupModel()
    seconds = math.ceil(trace.duration_s)
    ends = np.sort(trace.arrival_s + model.service_s(trace.prompt_tokens, trace.output_tokens))
    grid = np.arange(seconds, dtype=np.float64)
    started_by_end = np.searchsorted(trace.arrival_s, grid + 1.0, side="left")
    ended_by_start = np.searchsorted(ends, grid, side="right")
    concurrency = started_by_end - ended_by_start
    need = np.ceil(concurrency / model.slots).astype(np.int64)
    lead = math.ceil(lead_s)
    padded = np.concatenate([need, np.full(lead, need[-1] if len(need) else 0)])
    window = np.lib.stride_tricks.sliding_window_view(padded, lead + 1)
    schedule: IntArray = np.clip(window.max(axis=1)[:seconds], min_groups, max_groups).astype(np.int64)
    return schedule


class OraclePolicy:
    """Follows ``oracle_schedule`` (clairvoyant)."""

    name = "oracle"
    period_s = TICK_S

    def __init__(self, schedule: IntArray) -> None:
        self.schedule = schedule

    def decide(self, view: SimView) -> int:
        second = min(int(view.now_s), len(self.schedule) - 1)
        return int(self.schedule[second])


POLICY_NAMES: Final = ("ours", "ray-serve", "ray-serve-tuned", "hpa-keda", "llm-d-wva", "oracle")
DEFAULT_BASELINES: Final = ("ray-serve", "hpa-keda")
"""The two defaults the goal compares against."""


def _policies(
    names: Iterable[str],
    trace: Trace,
    cold_start: ColdStart,
    min_groups: int,
    max_groups: int,
    model: GroupModel,
    headroom_percent: float | None,
) -> list[Policy]:
    per_rank_plan = model.slots / model.data_parallel_size
    makers: dict[str, Callable[[], Policy]] = {
        "ours": lambda: OursPolicy(min_groups, max_groups, headroom_percent=headroom_percent),
        "ray-serve": lambda: RayServePolicy(
            min_groups, max_groups, target_ongoing_requests=2.0, name="ray-serve"
        ),
        "ray-serve-tuned": lambda: RayServePolicy(
            min_groups, max_groups, target_ongoing_requests=per_rank_plan, name="ray-serve-tuned"
        ),
        "hpa-keda": lambda: HpaKedaPolicy(min_groups, max_groups),
        "llm-d-wva": lambda: WvaSaturationPolicy(min_groups, max_groups),
        "oracle": lambda: OraclePolicy(
            oracle_schedule(
                trace,
                lead_s=cold_start.high_s + TICK_S,
                min_groups=min_groups,
                max_groups=max_groups,
                model=model,
            )
        ),
    }
    return [makers[name]() for name in names]


# ─── the bench ───────────────────────────────────────────────────────────────────────────────


def run_autoscale_bench(
    *,
    seed: int = 0,
    traces: Sequence[Trace] | None = None,
    cold_starts: Sequence[ColdStart] = COLD_STARTS,
    policies: Sequence[str] = POLICY_NAMES,
    model: GroupModel | None = None,
    min_groups: int = 1,
    max_groups: int | None = None,
    headroom_percent: float | None = None,
    progress: Callable[[str], None] = lambda _: None,
) -> list[dict[str, Any]]:
    """Every policy on every trace and cold-start case; one row each, with ratios and goal checks.

    ``headroom_percent`` runs ours with another ``autoscaling.headroomPercent`` than the default:
    what headroom a trace needs, and what it costs.

    Rows carry ``gpu_hours_vs_oracle``, ``gpu_hours_vs_<baseline>`` and, on ``ours`` rows,
    ``meets_goal`` (≥ 99 % SLO, ≤ 1.15 × the oracle's GPU-hours, and ahead of each default by
    ≥ 10 % GPU-hours at equal or better SLO or by ≥ 30 % fewer direction changes).
    """
    model = model or GroupModel()
    traces = (
        traces if traces is not None else (diurnal_trace(seed), flash_crowd_trace(seed), steady_trace(seed))
    )
    rows: list[dict[str, Any]] = []
    for trace in traces:
        bound = max_groups or _max_groups_for(trace, model)
        for case_index, cold_start in enumerate(cold_starts):
            oracle_start = oracle_schedule(
                trace, lead_s=cold_start.high_s + TICK_S, min_groups=min_groups, max_groups=bound, model=model
            )
            # Every policy starts with what the oracle holds over the warm-up (no decisions then).
            initial = int(oracle_start[: int(WARMUP_S) + 1].max(initial=min_groups))
            results = {}
            for policy in _policies(policies, trace, cold_start, min_groups, bound, model, headroom_percent):
                progress(f"{trace.name} / {cold_start.name} / {policy.name} ({len(trace):,} requests)")
                results[policy.name] = simulate(
                    trace,
                    policy,
                    cold_start,
                    initial_groups=initial,
                    min_groups=min_groups,
                    max_groups=bound,
                    model=model,
                    seed=seed * 1000 + case_index,
                )
            rows.extend(_compare(results))
    return rows


def _max_groups_for(trace: Trace, model: GroupModel) -> int:
    """Twice the groups the busiest second needs (at least 4): room to over- and under-shoot."""
    need = oracle_schedule(trace, lead_s=0, min_groups=0, max_groups=10_000, model=model)
    return max(4, 2 * int(need.max(initial=1)))


def _compare(results: dict[str, RunResult]) -> list[dict[str, Any]]:
    rows = []
    oracle = results.get("oracle")
    for name, result in results.items():
        row = result.as_row()
        row["gpu_hours_vs_oracle"] = result.gpu_hours / oracle.gpu_hours if oracle else None
        for baseline in DEFAULT_BASELINES:
            other = results.get(baseline)
            row[f"gpu_hours_vs_{baseline}"] = result.gpu_hours / other.gpu_hours if other else None
        if name == "ours":
            row |= _goal(result, oracle, [results[b] for b in DEFAULT_BASELINES if b in results])
        rows.append(row)
    return rows


def _goal(ours: RunResult, oracle: RunResult | None, defaults: Sequence[RunResult]) -> dict[str, Any]:
    slo_ok = ours.slo_attainment >= 0.99
    cost_ok = oracle is not None and ours.gpu_hours <= 1.15 * oracle.gpu_hours
    ahead = {}
    for other in defaults:
        cheaper = ours.gpu_hours <= 0.9 * other.gpu_hours and ours.slo_attainment >= other.slo_attainment
        calmer = ours.direction_changes <= 0.7 * other.direction_changes and other.direction_changes > 0
        ahead[other.policy] = cheaper or calmer
    return {
        "goal_slo": slo_ok,
        "goal_cost": cost_ok,
        **{f"goal_ahead_of_{name}": value for name, value in ahead.items()},
        "meets_goal": slo_ok and cost_ok and all(ahead.values()),
    }


# ─── plain-text rendering (the CLI draws a rich table from the same rows) ─────────────────────

COLUMNS: Final = (
    ("trace", "trace", "{}"),
    ("cold start", "cold_start", "{}"),
    ("policy", "policy", "{}"),
    ("SLO %", "slo_attainment", "{:.2%}"),
    ("TTFT p99 s", "ttft_p99_s", "{:.2f}"),
    ("GPU-h", "gpu_hours", "{:.0f}"),
    ("x oracle", "gpu_hours_vs_oracle", "{:.3f}"),
    ("x ray-serve", "gpu_hours_vs_ray-serve", "{:.3f}"),
    ("x hpa-keda", "gpu_hours_vs_hpa-keda", "{:.3f}"),
    ("events", "scale_events", "{}"),
    ("reversals", "direction_changes", "{}"),
    ("mean groups", "mean_groups", "{:.2f}"),
    ("goal", "meets_goal", "{}"),
)


def format_autoscale_bench(rows: Sequence[dict[str, Any]]) -> str:
    """The rows as one plain-text table."""
    table = [[title for title, _, _ in COLUMNS]]
    for row in rows:
        table.append(["" if row.get(key) is None else fmt.format(row[key]) for _, key, fmt in COLUMNS])
    widths = [max(len(line[i]) for line in table) for i in range(len(COLUMNS))]
    lines = [
        "  ".join(cell.ljust(w) for cell, w in zip(line, widths, strict=True)).rstrip() for line in table
    ]
    return "\n".join(lines) + "\n"
