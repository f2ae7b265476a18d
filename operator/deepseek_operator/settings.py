"""Operator settings (STYLE.md rule 20): grouped, documented, read from `DSD_*` environment variables.

Example: `DSD_KUBERNETES__QPS=50 DSD_RECONCILE__RESYNC_SECONDS=60 dsd operator`.
"""

from __future__ import annotations

from pathlib import Path

from pydantic import BaseModel, Field
from pydantic_settings import BaseSettings, SettingsConfigDict

__all__ = ["OperatorSettings", "PeeringSettings", "WebhookSettings"]


class KubernetesSettings(BaseModel):
    """How the operator talks to the API server."""

    qps: float = Field(default=20.0, gt=0)
    """Sustained requests per second of the operator's client (client-go's default is 5; kopf has none)."""
    burst: int = Field(default=30, ge=1)
    """Requests the client may send at once after being idle."""
    request_timeout_seconds: float = Field(default=30.0, gt=0)
    """Timeout of one API request."""
    conflict_retries: int = Field(default=5, ge=0)
    """Retries of a write answered 409 Conflict, re-reading in between."""


class ReconcileSettings(BaseModel):
    """The reconcile loop."""

    workers: int = Field(default=4, ge=1)
    """Deployments reconciled concurrently (one key is never reconciled twice at once)."""
    resync_seconds: float = Field(default=30.0, gt=0)
    """Periodic re-reconcile of every deployment: catches drift; writes nothing when nothing changed."""
    backoff_initial_seconds: float = Field(default=1.0, gt=0)
    """First retry delay after a failed reconcile; doubles per failure."""
    backoff_max_seconds: float = Field(default=300.0, gt=0)
    """Longest retry delay."""
    settle_seconds: float = Field(default=2.0, ge=0)
    """A new version's RayService is created once the spec has not moved for this long: ten edits
    in two seconds start one RayService of GPUs, not ten."""


class RaySettings(BaseModel):
    """How the operator reads Ray Serve's view of each RayService (as KubeRay does)."""

    dashboard_url_template: str = "http://{name}-head-svc.{namespace}.svc:8265"
    """Base URL of a RayService's Ray dashboard; `{name}` is the RayService, `{namespace}` its
    namespace (KubeRay's head Service exposes the dashboard on 8265)."""
    serve_ttl_seconds: float = Field(default=10.0, gt=0)
    """How long one reading of Ray Serve's replicas is reused."""


class AnalysisSettings(BaseModel):
    """Canary analysis queries."""

    namespace_label: str = "namespace"
    """The label the cluster's Prometheus puts a scraped pod's namespace in (kube-prometheus and
    ServiceMonitors: `namespace`); empty when it puts none (queries then match by deployment,
    version and revision only)."""
    timeout_seconds: float = Field(default=10.0, gt=0)
    """Timeout of one Prometheus query."""


class RenderSettings(BaseModel):
    """Defaults of rendered objects."""

    default_image: str = "ghcr.io/deepseek-operator/serving:0.1.0"
    """Serving image of versions that name none."""
    ray_version: str = "2.60.0"
    head_cpu: str = "4"
    head_memory: str = "16Gi"
    autoscaler_idle_timeout_seconds: int = Field(default=60, ge=0)


class ServerSettings(BaseModel):
    """The operator's own HTTP endpoints."""

    metrics_port: int = Field(default=9090, ge=0, le=65535)
    """Prometheus metrics (0 disables)."""
    health_port: int = Field(default=8080, ge=0, le=65535)
    """`/healthz` liveness and readiness (0 disables)."""


class PeeringSettings(BaseModel):
    """kopf peering: the operator's replicas share one peering object and one of them is active."""

    name: str = "deepseek-operator"
    """The `ClusterKopfPeering` (all namespaces) or `KopfPeering` (per namespace) the replicas share."""
    mandatory: bool = False
    """Start paused until the peering object says no older replica is alive; the chart sets it
    whenever it runs more than one replica (without it a new replica acts before it has looked)."""
    priority: int | None = None
    """kopf priority (the highest live one works, the others pause). Unset: minus the start time
    in milliseconds, so the oldest replica stays active and a rolling update does not move work
    until the old replica leaves. A developer's `kopf run` (priority 0 or more) pauses them all."""
    lifetime_seconds: int = Field(default=60, ge=1)
    """A replica that sent no keep-alive for this long counts as dead (killed, not stopped)."""


class WebhookSettings(BaseModel):
    """The validating admission webhook (kopf's admission server)."""

    enabled: bool = False
    """Serve `/validate` for DeepSeekDeployments over HTTPS."""
    addr: str = "0.0.0.0"
    """Address the HTTPS server listens on."""
    port: int = Field(default=9443, ge=1, le=65535)
    """Port the HTTPS server listens on."""
    host: str | None = None
    """Host name the API server calls (URL client config) and the self-signed certificate names;
    unused with `service_name`."""
    service_name: str | None = None
    """In-cluster: the Service in front of the webhook; the configuration then names the Service
    (the API server cannot resolve cluster DNS names in URLs)."""
    service_namespace: str | None = None
    """Namespace of `service_name` (the operator's own namespace)."""
    service_port: int = Field(default=443, ge=1, le=65535)
    """Port of `service_name` that forwards to `port`."""
    cert_file: Path | None = None
    """PEM server certificate (with `key_file`); unset: kopf makes a self-signed one, which needs
    `pip install kopf[dev]` and suits a single replica outside a cluster only."""
    key_file: Path | None = None
    """PEM private key of `cert_file`."""
    ca_file: Path | None = None
    """PEM CA bundle the API server verifies the certificate with; unset: `cert_file` itself."""
    managed_configuration: str | None = "deepseek-operator.deepseek.serving.dev"
    """Name of the ValidatingWebhookConfiguration kopf creates and keeps up to date (the chart's
    ClusterRole may patch only this name); unset: configured by hand."""


class OperatorSettings(BaseSettings):
    """Everything configurable about the operator process."""

    model_config = SettingsConfigDict(env_prefix="DSD_", env_nested_delimiter="__", extra="ignore")

    namespace: str | None = None
    """Watch only this namespace; all namespaces when empty."""
    kubernetes: KubernetesSettings = Field(default_factory=KubernetesSettings)
    reconcile: ReconcileSettings = Field(default_factory=ReconcileSettings)
    render: RenderSettings = Field(default_factory=RenderSettings)
    ray: RaySettings = Field(default_factory=RaySettings)
    analysis: AnalysisSettings = Field(default_factory=AnalysisSettings)
    server: ServerSettings = Field(default_factory=ServerSettings)
    peering: PeeringSettings = Field(default_factory=PeeringSettings)
    webhook: WebhookSettings = Field(default_factory=WebhookSettings)
