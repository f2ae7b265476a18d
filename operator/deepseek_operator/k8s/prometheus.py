"""Prometheus' HTTP API for canary analysis: one instant query, one number."""

from __future__ import annotations

import math

import httpx

__all__ = ["PrometheusError", "query_value"]


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
