"""Prometheus' HTTP API for canary analysis: one instant query, one number; the due measurements."""

from __future__ import annotations

import math
from datetime import datetime

import httpx

from deepseek_operator.api.v1alpha1 import AnalysisMeasurement, DeepSeekDeploymentSpec, RolloutStatus
from deepseek_operator.rollout.analysis import (
    QueryLabels,
    assess_measurement,
    due_measurements,
    step_metrics,
)

__all__ = ["PrometheusError", "measure_due", "query_value"]


class PrometheusError(Exception):
    """Prometheus could not answer (unreachable, an error status, a bad query)."""


async def query_value(client: httpx.AsyncClient, address: str, promql: str) -> float | None:
    """The value of an instant query: its single sample (or the sum of a vector's samples is
    ambiguous, so more than one series is an error); None when the result is empty or NaN."""
    try:
        response = await client.get(f"{address.rstrip('/')}/api/v1/query", params={"query": promql})
        payload = response.json()
    except (httpx.HTTPError, ValueError) as error:
        raise PrometheusError(str(error) or type(error).__name__) from None
    if payload.get("status") != "success":
        raise PrometheusError(
            f"{payload.get('errorType', 'error')}: {payload.get('error', response.text[:200])}"
        )
    data = payload.get("data") or {}
    result = data.get("result")
    if data.get("resultType") == "scalar":
        samples = [result]
    elif data.get("resultType") == "vector":
        samples = [series.get("value") for series in result or []]
    else:
        raise PrometheusError(f"the query returns a {data.get('resultType')}, not one number: {promql}")
    if len(samples) > 1:
        raise PrometheusError(f"the query returns {len(samples)} series, not one number: {promql}")
    if not samples or samples[0] is None:
        return None
    value = float(samples[0][1])
    return None if math.isnan(value) or math.isinf(value) else value


async def measure_due(
    client: httpx.AsyncClient,
    spec: DeepSeekDeploymentSpec,
    rollout: RolloutStatus | None,
    *,
    namespace: str,
    deployment: str,
    namespace_label: str,
    now: datetime,
) -> list[AnalysisMeasurement]:
    """The analysis measurements due now, taken (a query Prometheus cannot answer is an `Error`)."""
    if rollout is None or rollout.analysis is None or spec.rollout.analysis is None:
        return []
    steps = spec.rollout.steps
    if rollout.analysis.step_index >= len(steps):
        return []
    metrics = step_metrics(spec.rollout, steps[rollout.analysis.step_index])

    def labels(version: str, revision: str | None) -> QueryLabels:
        return QueryLabels(namespace, deployment, version, revision or "", namespace_label)

    due = due_measurements(
        metrics,
        rollout.analysis,
        canary=labels(rollout.canary_version, rollout.canary_revision),
        stable=labels(rollout.stable_version, rollout.stable_revision),
        now=now,
    )
    address = spec.rollout.analysis.prometheus.address
    measurements = []
    for request in due:
        try:
            canary = await query_value(client, address, request.canary_query)
            stable = (
                await query_value(client, address, request.stable_query) if request.stable_query else None
            )
            measurements.append(assess_measurement(request.metric, canary, stable, now=now))
        except PrometheusError as error:
            measurements.append(assess_measurement(request.metric, None, None, now=now, error=str(error)))
    return measurements
