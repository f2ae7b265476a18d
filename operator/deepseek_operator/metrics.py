"""The operator's own Prometheus metrics (served on `settings.server.metrics_port`)."""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram

__all__ = [
    "API_REQUESTS",
    "DECISIONS",
    "QUEUE_DEPTH",
    "QUEUE_WAIT_SECONDS",
    "RECONCILES",
    "RECONCILE_SECONDS",
]

API_REQUESTS = Counter(
    "deepseek_operator_api_requests_total",
    "Kubernetes API requests by verb and status code",
    ["verb", "code"],
)
RECONCILES = Counter("deepseek_operator_reconciles_total", "Reconciles by result", ["result"])
RECONCILE_SECONDS = Histogram(
    "deepseek_operator_reconcile_seconds",
    "Time of one reconcile",
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
)
DECISIONS = Counter("deepseek_operator_decisions_total", "Decisions taken, by Event reason", ["reason"])
QUEUE_DEPTH = Gauge("deepseek_operator_queue_depth", "Deployments waiting to be reconciled")
QUEUE_WAIT_SECONDS = Histogram(
    "deepseek_operator_queue_wait_seconds",
    "From the first event that queued a deployment to the start of its reconcile",
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30),
)
