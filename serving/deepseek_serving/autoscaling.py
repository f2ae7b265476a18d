"""Queue-depth autoscaling in whole groups: the Ray Serve policy adapter around the pure decision.

Why groups: a group (DP x TP ranks holding every expert once) is the unit that can serve a
request end to end, so capacity is added and removed one gang at a time (DESIGN.md). The
decision itself is ``autoscaling_policy.decide_scale`` (pure, state in and out); this module is
the I/O around it:

- what a rank reports to Ray Serve (``rank_autoscaling_metrics``, called from the rank's
  ``record_autoscaling_stats``): custom metrics named ``<quantity>/<group>`` — running, waiting,
  slots, KV-cache usage, the arrivals counter, and the queue depth (running + waiting);
- ``QueueDepthPolicy``, the class Ray Serve calls with an ``AutoscalingContext``: it reads the
  latest sample of every rank's metrics, sums them per group, runs the decision with the state
  kept in ``policy_state`` and answers in replicas (groups x ``data_parallel_size``).

How Ray Serve 2.60 wraps a custom policy (``ray/serve/autoscaling_policy.py``,
``_apply_autoscaling_config``): it applies ``upscaling_factor``/``downscaling_factor`` and its
own ``upscale_delay_s``/``downscale_delay_s`` to whatever the policy answers, then rounds up to
whole gangs and clamps to ``min_replicas``/``max_replicas``. Our delays, look-ahead and
hysteresis live in the decision, so ``llm_config`` renders Ray's delays as 0 (its delay logic then
passes every answer through on the same tick). Ray's cold-start fast path still answers alone
when no replica runs and requests wait (``current_num_replicas == 0``).

Scale to zero (``minGroups: 0`` with ``scaleToZero``) works in this layout, proven on Ray 2.60 by
``tests/serving/test_autoscaling_on_ray.py``: while the ingress deployment has no replica,
HAProxy's backend for the application keeps Ray Serve's head-node proxy as a ``backup`` server
(``ray/serve/_private/haproxy_templates.py``); that proxy queues the request on its handle,
Serve's cold-start fast path (no running replica and requests waiting) asks for one replica —
rounded up to a whole gang — without calling this policy, and the request is answered a whole
cold start later. Requests beyond ``max_queued_requests`` get 503 meanwhile, and clients wait
the cold start out (HAProxy's client timeout is 3600 s by default). The decision takes an idle
deployment to 0 after ``downscale_delay_s``.

Where each decision is visible (Ray 2.60 has a ``ScalingDecision`` model with a ``reason`` in
``DeploymentDetails.autoscaling_detail``, but nothing fills it; the controller's status message
only says "Upscaling from 8 to 16 replicas"):

- ``policy_state`` keeps ``reason``, ``rule`` and ``target_groups`` of the last decision
  (in the controller's memory only);
- every change of the target is logged once by the Serve controller, a line starting with
  ``DECISION_LOG_PREFIX`` followed by a JSON object (deployment, version, Serve application,
  from/to groups, queue depth, rule, reason, time) — ``logs/serve/controller_*.log`` on the head
  node, which the operator reads through the Ray dashboard's log API for its ``Scaled`` Events;
- Ray metrics (``ray_`` prefix once exported): the per-group queue depth, target, ready and
  starting groups, level and forecast of the demand, and a counter of target changes by rule.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import math
import time
from collections.abc import Iterable, Mapping
from typing import Any, Final

from deepseek_serving.autoscaling_policy import (
    GroupLoad,
    ScaleDecision,
    ScalingObservation,
    ScalingSettings,
    ScalingState,
    decide_scale,
)
from deepseek_serving.config import AutoscalingSettings
from deepseek_serving.metrics import GROUP_QUEUE_DEPTH_METRIC

__all__ = [
    "AUTOSCALING_DECISIONS_METRIC",
    "DECISION_LOG_PREFIX",
    "POLICY_STATE_KEY",
    "QUEUE_DEPTH_METRIC_PREFIX",
    "QueueDepthPolicy",
    "decisions_in_log",
    "group_queue_depths",
    "observe_context",
    "queue_depth_metric_name",
    "rank_autoscaling_metrics",
    "rank_metric_name",
    "scaling_settings",
]

QUEUE_DEPTH_METRIC_PREFIX: Final = "queue_depth/"
RANK_QUANTITIES: Final = ("queue_depth", "running", "waiting", "slots", "kv_usage", "arrivals")
"""What a rank reports, each as ``<quantity>/<group>``."""
POLICY_STATE_KEY: Final = "deepseek"
"""The key of ``policy_state`` under which the decision's own state is kept."""
DECISION_LOG_PREFIX: Final = "deepseek-autoscaling-decision "
"""Start of the controller log line written for every change of the target group count."""
AUTOSCALING_DECISIONS_METRIC: Final = "deepseek_serving_autoscaling_decisions"
"""Counter of target changes, tagged with the rule (``ray_..._total`` once exported)."""
_GAUGES: Final = {
    "target": "deepseek_serving_autoscaling_target_groups",
    "ready": "deepseek_serving_autoscaling_ready_groups",
    "starting": "deepseek_serving_autoscaling_starting_groups",
    "level": "deepseek_serving_autoscaling_level_requests",
    "forecast": "deepseek_serving_autoscaling_forecast_requests",
}
_EXPORT_INTERVAL_S: Final = 5.0

logger = logging.getLogger("ray.serve")


def rank_metric_name(quantity: str, group: str) -> str:
    """The custom autoscaling metric a rank of ``group`` reports ``quantity`` under."""
    return f"{quantity}/{group}"


def queue_depth_metric_name(group: str) -> str:
    """The custom autoscaling metric a rank of ``group`` reports its queue depth under."""
    return rank_metric_name("queue_depth", group)


def rank_autoscaling_metrics(
    group: str,
    *,
    running: float,
    waiting: float,
    kv_usage: float,
    arrivals_total: float,
    max_num_seqs: int | None,
    admission_limit: int,
) -> dict[str, float]:
    """One rank's custom autoscaling metrics (what ``record_autoscaling_stats`` returns).

    ``slots`` is what the rank can run at once: vLLM's ``max_num_seqs``, capped by the requests
    Ray Serve admits to it (``max_ongoing_requests``); the admission limit alone when the engine's
    value is unknown.

    >>> rank_autoscaling_metrics("g", running=3, waiting=1, kv_usage=0.2, arrivals_total=40,
    ...                          max_num_seqs=64, admission_limit=128)["slots/g"]
    64.0
    """
    slots = admission_limit if max_num_seqs is None else min(max_num_seqs, admission_limit)
    values = {
        "queue_depth": running + waiting,
        "running": running,
        "waiting": waiting,
        "slots": slots,
        "kv_usage": kv_usage,
        "arrivals": arrivals_total,
    }
    return {rank_metric_name(quantity, group): float(value) for quantity, value in values.items()}


def group_queue_depths(per_replica_metrics: Mapping[str, Mapping[Any, float]]) -> dict[str, float]:
    """Sum the ranks' queue depths per group.

    Parameters:
        per_replica_metrics: ``{metric: {replica: value}}``, e.g. Ray Serve's aggregated metrics.

    Returns:
        ``{group: running + waiting requests over the group's ranks}``.
    """
    return {
        name.removeprefix(QUEUE_DEPTH_METRIC_PREFIX): float(sum(per_replica.values()))
        for name, per_replica in per_replica_metrics.items()
        if name.startswith(QUEUE_DEPTH_METRIC_PREFIX)
    }


def decisions_in_log(lines: Iterable[str]) -> list[dict[str, Any]]:
    """The target changes ``QueueDepthPolicy`` logged, oldest first, from Serve controller log
    lines (other lines are skipped): deployment, version, from/to groups, ready groups, queue
    depth, rule, reason, time. A line that is not whole JSON (cut off, garbled) is skipped."""
    decisions = []
    for line in lines:
        if DECISION_LOG_PREFIX not in line:
            continue
        try:
            decision = json.loads(line.split(DECISION_LOG_PREFIX, 1)[1])
        except json.JSONDecodeError:
            continue
        if isinstance(decision, dict):
            decisions.append(decision)
    return decisions


def scaling_settings(autoscaling: AutoscalingSettings) -> ScalingSettings:
    """The serving contract's autoscaling settings as the decision reads them."""
    return ScalingSettings(
        min_groups=autoscaling.min_groups,
        max_groups=autoscaling.max_groups,
        target_per_group=autoscaling.target_queue_depth_per_group,
        headroom=autoscaling.headroom_percent / 100,
        cold_start_s=autoscaling.cold_start_s,
        upscale_delay_s=autoscaling.upscale_delay_s,
        downscale_delay_s=autoscaling.downscale_delay_s,
    )


def _latest_per_replica(ctx: Any) -> dict[str, dict[Any, float]]:
    """``{metric: {replica: latest value}}``: the newest raw sample, else Serve's aggregate."""
    latest: dict[str, dict[Any, float]] = {}
    for name, per_replica in (ctx.aggregated_metrics or {}).items():
        latest[name] = {replica: float(value) for replica, value in per_replica.items()}
    for name, per_replica in (ctx.raw_metrics or {}).items():
        for replica, series in per_replica.items():
            if series:
                latest.setdefault(name, {})[replica] = float(max(series).value)
    return latest


def observe_context(ctx: Any, data_parallel_size: int) -> ScalingObservation:
    """What Ray Serve's ``AutoscalingContext`` tells about the groups, as an observation.

    Groups are counted from replicas: ready = running replicas // ``data_parallel_size``,
    target = ceil(target replicas / ``data_parallel_size``). Loads are the sums over each group's
    ranks of their latest reports; a group's KV usage is its ranks' mean.
    """
    latest = _latest_per_replica(ctx)
    sums: dict[str, dict[str, float]] = {}
    kv: dict[str, list[float]] = {}
    for name, per_replica in latest.items():
        quantity, _, group = name.partition("/")
        if quantity not in RANK_QUANTITIES or not group:
            continue
        if quantity == "kv_usage":
            kv.setdefault(group, []).extend(per_replica.values())
        else:
            sums.setdefault(group, {})[quantity] = sum(per_replica.values())
    loads = tuple(
        GroupLoad(
            running=values.get("running", values.get("queue_depth", 0.0)),
            waiting=values.get("waiting", 0.0),
            capacity=values.get("slots", 0.0),
            kv_usage=sum(kv.get(group, [0.0])) / max(1, len(kv.get(group, []))),
        )
        for group, values in sorted(sums.items())
    )
    arrivals = [values["arrivals"] for values in sums.values() if "arrivals" in values]
    try:
        queued = float(ctx.total_queued_requests or 0.0)
    except Exception:  # Serve computes it lazily from handle reports; none is fine
        queued = 0.0
    now = ctx.current_time if ctx.current_time is not None else time.monotonic()
    return ScalingObservation(
        now_s=float(now),
        groups=loads,
        ready_groups=ctx.current_num_replicas // data_parallel_size,
        target_groups=math.ceil(ctx.target_num_replicas / data_parallel_size),
        arrivals_total=sum(arrivals) if arrivals else None,
        queued=queued,
    )


class QueueDepthPolicy:
    """Ray Serve custom autoscaling policy (class form, built once with ``policy_kwargs``).

    Parameters:
        data_parallel_size: replicas (ranks) per group.
        autoscaling: ``AutoscalingSettings`` as a dict without the bounds (``policy_kwargs`` must be
            JSON); the bounds are Ray Serve's replica bounds of the moment, in groups.
        deployment, version: tags of the exported metrics and log lines.
    """

    def __init__(
        self, *, data_parallel_size: int, autoscaling: Mapping[str, Any], deployment: str, version: str
    ) -> None:
        self._data_parallel_size = data_parallel_size
        self._settings = scaling_settings(AutoscalingSettings.model_validate(autoscaling))
        self._tags = {"deployment": deployment, "version": version}
        self._exported_groups: set[str] = set()
        self._last_export_s = -math.inf
        self._metrics: dict[str, Any] | None = None

    def __call__(self, ctx: Any) -> tuple[int, dict[str, Any]]:
        observation = observe_context(ctx, self._data_parallel_size)
        state = ScalingState.from_dict(ctx.policy_state.get(POLICY_STATE_KEY))
        # The bounds are Ray Serve's (the serveConfigV2 override sets them): a resize must not change
        # the policy's kwargs, which are part of the application's code version.
        ranks = self._data_parallel_size
        settings = dataclasses.replace(
            self._settings,
            min_groups=ctx.capacity_adjusted_min_replicas // ranks,
            max_groups=max(1, ctx.capacity_adjusted_max_replicas // ranks),
        )
        decision, state = decide_scale(observation, state, settings)
        if decision.target_groups != observation.target_groups:
            self._log_change(str(ctx.app_name or ""), observation, decision)
        self._export(ctx, observation, decision)
        return decision.target_groups * self._data_parallel_size, {
            **ctx.policy_state,
            POLICY_STATE_KEY: state.to_dict(),
            "reason": decision.reason,
            "rule": str(decision.rule),
            "target_groups": decision.target_groups,
        }

    def _log_change(self, application: str, observation: ScalingObservation, decision: ScaleDecision) -> None:
        payload = {
            **self._tags,
            "application": application,
            "time_s": observation.now_s,
            "from_groups": observation.target_groups,
            "to_groups": decision.target_groups,
            "ready_groups": observation.ready_groups,
            "queue_depth": observation.demand,
            "rule": str(decision.rule),
            "reason": decision.reason,
        }
        logger.info(DECISION_LOG_PREFIX + json.dumps(payload, sort_keys=True))
        self._ray_metrics()["decisions"].inc(tags={**self._tags, "rule": str(decision.rule)})

    def _export(self, ctx: Any, observation: ScalingObservation, decision: ScaleDecision) -> None:
        """Ray metrics every few seconds; groups that vanished (restarted gangs) drop to 0."""
        if observation.now_s - self._last_export_s < _EXPORT_INTERVAL_S:
            return
        self._last_export_s = observation.now_s
        metrics = self._ray_metrics()
        depths = group_queue_depths(_latest_per_replica(ctx))
        for group in self._exported_groups - set(depths):
            metrics["depth"].set(0, tags={**self._tags, "group": group})
        for group, depth in depths.items():
            metrics["depth"].set(depth, tags={**self._tags, "group": group})
        self._exported_groups = set(depths)
        for key, value in (
            ("target", decision.target_groups),
            ("ready", observation.ready_groups),
            ("starting", observation.starting_groups),
            ("level", decision.level),
            ("forecast", decision.forecast),
        ):
            metrics[key].set(value, tags=self._tags)

    def _ray_metrics(self) -> dict[str, Any]:
        if self._metrics is None:
            from ray.util.metrics import Counter, Gauge

            tag_keys = ("deployment", "version")
            self._metrics = {
                "depth": Gauge(
                    GROUP_QUEUE_DEPTH_METRIC,
                    description="Running + waiting requests summed over a group's ranks.",
                    tag_keys=(*tag_keys, "group"),
                ),
                "decisions": Counter(
                    AUTOSCALING_DECISIONS_METRIC,
                    description="Changes of the target group count, by the rule that made them.",
                    tag_keys=(*tag_keys, "rule"),
                ),
                **{
                    key: Gauge(
                        name, description=f"Autoscaling: {key} (groups or requests).", tag_keys=tag_keys
                    )
                    for key, name in _GAUGES.items()
                },
            }
        return self._metrics
