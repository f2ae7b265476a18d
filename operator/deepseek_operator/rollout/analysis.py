"""Canary analysis (pure): which measurements are due, their PromQL, and how they are judged.

A metric of an analysis step is measured `count` times, every `interval` seconds, each over the
window since the previous one (the first one interval after the step started, so its window
holds canary traffic). A measurement is

- *Successful* when the canary's value is on the right side of its limit: the absolute
  `threshold`, or `stableTolerance` × the stable version's value over the same window; with both,
  the looser of the two (the threshold is then a floor under which no difference from the stable
  version counts, e.g. error rates of 0.1% vs 0.2%, and the tolerance catches regressions above it);
- *Failed* when it is not;
- *Inconclusive* when there is no data (no traffic, a metric not exported yet, a stable version
  without data to compare with): never a success;
- *Error* when Prometheus could not answer; counted with the inconclusive ones (an unreachable
  Prometheus must pause a rollout, not roll back a good canary).

A metric fails once its failed measurements exceed `failureLimit`, and is inconclusive once its
inconclusive ones exceed `inconclusiveLimit` (Argo Rollouts' semantics). The analysis takes the
worst of its metrics: Failed > Inconclusive > Running > Successful.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from deepseek_operator.api.v1alpha1 import (
    AnalysisMeasurement,
    AnalysisMetric,
    AnalysisStatus,
    CanaryStep,
    RolloutSpec,
)

__all__ = [
    "BUILTIN_QUERIES",
    "MeasurementRequest",
    "QueryLabels",
    "assess_analysis",
    "assess_measurement",
    "due_measurements",
    "next_measurement_time",
    "render_query",
    "step_metrics",
]

# Over the serving metrics every version exports (`deepseek_serving.metrics`): vLLM's own, through
# Ray (`ray_vllm_*`), and the serving app's request counter, all labelled with deployment,
# version and revision. `{selector}` is the label selector, `{window}` the range.
BUILTIN_QUERIES: dict[str, str] = {
    "errorRate": (
        'sum(rate(ray_deepseek_serving_requests_total{{{selector},code=~"5.."}}[{window}])) / '
        "sum(rate(ray_deepseek_serving_requests_total{{{selector}}}[{window}]))"
    ),
    "ttftP50": (
        "histogram_quantile(0.5, sum by (le) "
        "(rate(ray_vllm_time_to_first_token_seconds_bucket{{{selector}}}[{window}])))"
    ),
    "ttftP95": (
        "histogram_quantile(0.95, sum by (le) "
        "(rate(ray_vllm_time_to_first_token_seconds_bucket{{{selector}}}[{window}])))"
    ),
    "itlP95": (
        "histogram_quantile(0.95, sum by (le) "
        "(rate(ray_vllm_inter_token_latency_seconds_bucket{{{selector}}}[{window}])))"
    ),
    # As clients see it: from arrival at the replica to the end of the response (the serving app's).
    "e2eLatencyP95": (
        "histogram_quantile(0.95, sum by (le) "
        "(rate(ray_deepseek_serving_request_duration_seconds_bucket{{{selector}}}[{window}])))"
    ),
    "queueDepth": (
        "(sum(avg_over_time(ray_vllm_num_requests_running{{{selector}}}[{window}])) + "
        "sum(avg_over_time(ray_vllm_num_requests_waiting{{{selector}}}[{window}]))) / "
        "count(count by (group) (ray_vllm_num_requests_running{{{selector}}}))"
    ),
}


@dataclass(frozen=True)
class QueryLabels:
    """Who a query is about."""

    namespace: str
    deployment: str
    version: str
    revision: str
    namespace_label: str = "namespace"
    """The label Prometheus puts the Kubernetes namespace in (its scrape configuration decides);
    empty when it puts none."""

    def selector(self) -> str:
        labels = [
            *([f'{self.namespace_label}="{self.namespace}"'] if self.namespace_label else []),
            f'deployment="{self.deployment}"',
            f'version="{self.version}"',
            f'revision="{self.revision}"',
        ]
        return ",".join(labels)


def render_query(metric: AnalysisMetric, labels: QueryLabels) -> str:
    """The PromQL of `metric` for one version, over one interval."""
    window = f"{metric.interval_seconds}s"
    if metric.builtin is not None:
        return BUILTIN_QUERIES[metric.builtin].format(selector=labels.selector(), window=window)
    query = metric.query or ""
    for name, value in (
        ("namespace", labels.namespace),
        ("deployment", labels.deployment),
        ("version", labels.version),
        ("revision", labels.revision),
        ("window", window),
    ):
        query = query.replace("{{" + name + "}}", value)
    return query


@dataclass(frozen=True)
class MeasurementRequest:
    """A measurement due now: the canary's query, and the stable version's when compared with it."""

    metric: AnalysisMetric
    canary_query: str
    stable_query: str | None


def step_metrics(rollout: RolloutSpec, step: CanaryStep) -> list[AnalysisMetric]:
    """The metrics an analysis step evaluates (all of them when it names none)."""
    if step.analysis is None or rollout.analysis is None:
        return []
    names = step.analysis.metrics
    return [metric for metric in rollout.analysis.metrics if not names or metric.name in names]


def _taken(analysis: AnalysisStatus, metric: AnalysisMetric) -> int:
    return sum(1 for measurement in analysis.measurements if measurement.metric == metric.name)


def _due_at(analysis: AnalysisStatus, metric: AnalysisMetric) -> datetime | None:
    taken = _taken(analysis, metric)
    if taken >= metric.count:
        return None
    return analysis.start_time + timedelta(seconds=metric.interval_seconds * (taken + 1))


def due_measurements(
    metrics: Sequence[AnalysisMetric],
    analysis: AnalysisStatus,
    *,
    canary: QueryLabels,
    stable: QueryLabels,
    now: datetime,
) -> list[MeasurementRequest]:
    """The measurements of a running analysis whose time has come (one per metric at most)."""
    if analysis.phase != "Running":
        return []
    due = []
    for metric in metrics:
        at = _due_at(analysis, metric)
        if at is not None and at <= now:
            stable_query = render_query(metric, stable) if metric.stable_tolerance is not None else None
            due.append(MeasurementRequest(metric, render_query(metric, canary), stable_query))
    return due


def next_measurement_time(metrics: Sequence[AnalysisMetric], analysis: AnalysisStatus) -> datetime | None:
    """When the next measurement of a running analysis falls due."""
    if analysis.phase != "Running":
        return None
    times = [at for metric in metrics if (at := _due_at(analysis, metric)) is not None]
    return min(times, default=None)


def _no_data(value: float | None) -> bool:
    return value is None or math.isnan(value) or math.isinf(value)


def assess_measurement(
    metric: AnalysisMetric,
    canary_value: float | None,
    stable_value: float | None,
    *,
    now: datetime,
    error: str | None = None,
) -> AnalysisMeasurement:
    """Judge one measurement (see the module docstring); the message names value and limit."""

    def measured(phase: str, message: str, limit: float | None = None) -> AnalysisMeasurement:
        return AnalysisMeasurement.model_validate(
            {
                "metric": metric.name,
                "phase": phase,
                "value": None if _no_data(canary_value) else canary_value,
                "stableValue": None if _no_data(stable_value) else stable_value,
                "limit": limit,
                "message": message,
                "measuredAt": now,
            }
        )

    if error is not None:
        return measured("Error", f"{metric.name}: Prometheus: {error}")
    if canary_value is None or _no_data(canary_value):
        return measured("Inconclusive", f"{metric.name}: no data for the canary")
    below = metric.pass_when == "below"
    limits: list[tuple[float, str]] = []
    if metric.threshold is not None:
        limits.append((metric.threshold, "threshold"))
    if metric.stable_tolerance is not None:
        if stable_value is None or _no_data(stable_value):
            return measured("Inconclusive", f"{metric.name}: no data for the stable version to compare with")
        factor = 1 + metric.stable_tolerance if below else 1 - metric.stable_tolerance
        limits.append((stable_value * factor, f"stable {stable_value:.4g} × {factor:g}"))
    # With both limits the looser decides (the highest for `below`, the lowest for `above`).
    limit, source = max(limits) if below else min(limits)
    passed = canary_value <= limit if below else canary_value >= limit
    relation = ("≤" if passed else ">") if below else ("≥" if passed else "<")
    message = f"{metric.name} = {canary_value:.4g} {relation} {limit:.4g} ({source})"
    return measured("Successful" if passed else "Failed", message, limit)


_ORDER = {"Successful": 0, "Running": 1, "Inconclusive": 2, "Failed": 3}


def assess_analysis(
    metrics: Sequence[AnalysisMetric], measurements: Sequence[AnalysisMeasurement]
) -> tuple[str, str]:
    """The phase of an analysis from its measurements, and the deciding metric in words.

    Returns:
        `(phase, message)` with phase one of Running, Successful, Failed, Inconclusive.
    """
    worst, message = "Successful", "every metric passed"
    for metric in metrics:
        mine = [m for m in measurements if m.metric == metric.name]
        failed = [m for m in mine if m.phase == "Failed"]
        inconclusive = [m for m in mine if m.phase in ("Inconclusive", "Error")]
        if len(failed) > metric.failure_limit:
            phase, why = (
                "Failed",
                f"{failed[-1].message} ({len(failed)} failed, limit {metric.failure_limit})",
            )
        elif len(inconclusive) > metric.inconclusive_limit:
            phase = "Inconclusive"
            limit = metric.inconclusive_limit
            why = f"{inconclusive[-1].message} ({len(inconclusive)} inconclusive, limit {limit})"
        elif len(mine) < metric.count:
            phase, why = "Running", f"{metric.name}: {len(mine)}/{metric.count} measurements"
        else:
            phase, why = "Successful", f"{metric.name}: passed"
        if _ORDER[phase] > _ORDER[worst]:
            worst, message = phase, why
    return worst, message
