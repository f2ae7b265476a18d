"""Prometheus metrics of the serving data plane: vLLM's own, labeled with who is serving.

Why: canary analysis and autoscaling compare versions and groups, so every series must say which
deployment, version and group it comes from. Under Ray Serve, vLLM's metrics are recorded through
Ray's metrics (``RayPrometheusStatLogger``) and exported on each node's Ray metrics port as
``ray_vllm_*`` (e.g. ``ray_vllm_num_requests_waiting``, ``ray_vllm_time_to_first_token_seconds``),
each with vLLM's ``model_name``/``engine`` labels and Ray's ``ReplicaId``. ``labeled_stat_logger``
builds a subclass of that logger whose every metric also carries ``deployment``, ``version`` and
``group`` (the gang of ranks), so a PromQL query never needs a join to tell versions apart.

The same logger remembers the last scheduler snapshot of its rank (``RankLoad``): running +
waiting requests, vLLM's definition of the queue. The rank reports it to Ray Serve's autoscaler
(see ``autoscaling``) and exports it as ``deepseek_serving_rank_queue_depth``; the autoscaling
policy, which sees every rank, exports the per-group sum ``deepseek_serving_group_queue_depth``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar, Final

if TYPE_CHECKING:
    from vllm.v1.metrics.ray_wrappers import RayPrometheusStatLogger

__all__ = [
    "GROUP_QUEUE_DEPTH_METRIC",
    "RANK_QUEUE_DEPTH_METRIC",
    "RankLoad",
    "ServingLabels",
    "labeled_stat_logger",
]

RANK_QUEUE_DEPTH_METRIC: Final = "deepseek_serving_rank_queue_depth"
"""Running + waiting requests of one rank (Ray exports it with a ``ray_`` prefix)."""
GROUP_QUEUE_DEPTH_METRIC: Final = "deepseek_serving_group_queue_depth"
"""Running + waiting requests summed over a group's ranks (Ray exports it with a ``ray_`` prefix)."""


@dataclass(frozen=True)
class ServingLabels:
    """Who is serving: the labels added to every serving metric."""

    deployment: str
    """DeepSeekDeployment name, e.g. ``"chat"``."""
    version: str
    """Version name, e.g. ``"v2"``."""
    revision: str
    """Content hash of the version's RayService, e.g. ``"7c1f0a2d"`` (two revisions of one version
    name run side by side while the second rolls out)."""
    group: str
    """Group (gang of ranks) id; a DP=1 rank is its own group."""

    def as_tags(self) -> dict[str, str]:
        return {
            "deployment": self.deployment,
            "version": self.version,
            "revision": self.revision,
            "group": self.group,
        }


@dataclass
class RankLoad:
    """The latest scheduler snapshot of one rank (mutable, updated by the stat logger)."""

    running: int = 0
    waiting: int = 0
    kv_usage: float = 0.0
    """KV-cache usage, 0..1 (vLLM's ``kv_cache_usage_perc``)."""
    started_total: int = 0
    """Requests that got their first token on this rank since it started (a counter)."""

    @property
    def queue_depth(self) -> int:
        """Requests the rank holds: running + waiting (vLLM's ``num_requests_*`` gauges)."""
        return self.running + self.waiting

    @property
    def arrivals_total(self) -> int:
        """Requests that reached the engine: started ones + those waiting now.

        Grows by one per arrival; falls only when a waiting request is aborted or the rank
        restarts (the autoscaling policy measures rates over differences and skips a fall).
        """
        return self.started_total + self.waiting

    def observe(self, scheduler_stats: Any, iteration_stats: Any) -> None:
        """Take one of vLLM's stat-logger snapshots (either may be ``None``)."""
        if scheduler_stats is not None:
            self.running = scheduler_stats.num_running_reqs
            self.waiting = scheduler_stats.num_waiting_reqs + scheduler_stats.num_skipped_waiting_reqs
            self.kv_usage = float(scheduler_stats.kv_cache_usage)
        if iteration_stats is not None:
            self.started_total += len(iteration_stats.time_to_first_tokens_iter)


def labeled_stat_logger(labels: ServingLabels, load: RankLoad) -> type[RayPrometheusStatLogger]:
    """A ``RayPrometheusStatLogger`` subclass whose metrics carry ``labels`` and which updates ``load``.

    Parameters:
        labels: constant labels added to every vLLM metric of this rank.
        load: updated on every scheduler snapshot the engine reports.

    Returns:
        A stat logger class to hand to ``AsyncLLM(stat_loggers=[...])``.
    """
    from ray.util.metrics import Gauge
    from vllm.v1.metrics import ray_wrappers

    constant_tags = labels.as_tags()

    class _LabeledMetric(ray_wrappers.RayPrometheusMetric):
        """Adds the constant serving labels to the tag keys and to every tag set."""

        _serving_tags: ClassVar[dict[str, str]] = constant_tags

        def __init__(self, *args: Any, **kwargs: Any) -> None:
            super().__init__(*args, **kwargs)  # type: ignore[no-untyped-call]
            self._tags = {**self._tags, **self._serving_tags}

        def _get_tag_keys(self, labelnames: list[str] | None) -> tuple[str, ...]:  # type: ignore[override]
            return (*ray_wrappers.RayPrometheusMetric._get_tag_keys(labelnames), *self._serving_tags)

        def _build_tags(self, *labels: Any, **labelskwargs: Any) -> dict[str, str]:
            vllm_keys = [
                key for key in self.metric._tag_keys if key != "ReplicaId" and key not in constant_tags
            ]
            if len(labels) not in (0, len(vllm_keys)):
                raise ValueError(f"expected {len(vllm_keys)} label values, got {len(labels)}")
            labelskwargs.update(zip(vllm_keys, labels, strict=False))
            labelskwargs.update(self._serving_tags)
            labelskwargs["ReplicaId"] = ray_wrappers._get_replica_id() or ""
            return {key: str(value) for key, value in labelskwargs.items()}

    class LabeledGauge(_LabeledMetric, ray_wrappers.RayGaugeWrapper):
        pass

    class LabeledCounter(_LabeledMetric, ray_wrappers.RayCounterWrapper):
        pass

    class LabeledHistogram(_LabeledMetric, ray_wrappers.RayHistogramWrapper):
        pass

    rank_queue_depth = Gauge(
        RANK_QUEUE_DEPTH_METRIC,
        description="Running + waiting requests of one engine rank.",
        tag_keys=tuple(constant_tags),
    )

    class LabeledRayPrometheusStatLogger(ray_wrappers.RayPrometheusStatLogger):
        _gauge_cls = LabeledGauge
        _counter_cls = LabeledCounter
        _histogram_cls = LabeledHistogram

        def record(self, scheduler_stats: Any, iteration_stats: Any, *args: Any, **kwargs: Any) -> None:
            super().record(scheduler_stats, iteration_stats, *args, **kwargs)
            load.observe(scheduler_stats, iteration_stats)
            if scheduler_stats is not None:
                rank_queue_depth.set(load.queue_depth, tags=constant_tags)

    return LabeledRayPrometheusStatLogger
