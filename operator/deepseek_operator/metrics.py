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

# What the status says, per deployment, for dashboards and alerts (set after each status write).
DEPLOYMENT_LABELS = ["namespace", "deployment"]
VERSION_WEIGHT = Gauge(
    "deepseek_operator_version_weight_percent",
    "Percent of requests the route sends each live version",
    [*DEPLOYMENT_LABELS, "version", "revision", "role"],
)
VERSION_GROUPS = Gauge(
    "deepseek_operator_version_groups",
    "Groups of each live version: ready (serving) and desired (its autoscaler's target)",
    [*DEPLOYMENT_LABELS, "version", "revision", "state"],
)
ROLLOUT_STEP = Gauge(
    "deepseek_operator_rollout_step",
    "1-based step of the rollout in progress (steps + 1 while promoting); absent without a rollout",
    [*DEPLOYMENT_LABELS, "canary"],
)
ROLLOUT_STEP_STARTED = Gauge(
    "deepseek_operator_rollout_step_start_time_seconds",
    "Unix time the current rollout step started (a stuck rollout: time() minus this)",
    [*DEPLOYMENT_LABELS, "canary", "phase"],
)
CONDITION = Gauge(
    "deepseek_operator_condition",
    "1 for the status each condition has (Ready, Progressing, Degraded), with its reason",
    [*DEPLOYMENT_LABELS, "type", "status", "reason"],
)
EPLB_BALANCEDNESS = Gauge(
    "deepseek_operator_eplb_balancedness",
    "Mean over max GPU load of the desired version's expert map (1.0 is perfect)",
    DEPLOYMENT_LABELS,
)
