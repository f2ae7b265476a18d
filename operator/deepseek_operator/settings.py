"""Operator settings (STYLE.md rule 20): grouped, documented, read from `DSD_*` environment variables.

Example: `DSD_KUBERNETES__QPS=50 DSD_RECONCILE__RESYNC_SECONDS=60 dsd operator`.
"""

from __future__ import annotations

from pydantic import BaseModel, Field
from pydantic_settings import BaseSettings, SettingsConfigDict

__all__ = ["OperatorSettings"]


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


class OperatorSettings(BaseSettings):
    """Everything configurable about the operator process."""

    model_config = SettingsConfigDict(env_prefix="DSD_", env_nested_delimiter="__", extra="ignore")

    namespace: str | None = None
    """Watch only this namespace; all namespaces when empty."""
    peering_name: str = "deepseek-operator"
    """kopf peering object shared by the operator's replicas (one is active at a time)."""
    kubernetes: KubernetesSettings = Field(default_factory=KubernetesSettings)
    reconcile: ReconcileSettings = Field(default_factory=ReconcileSettings)
    render: RenderSettings = Field(default_factory=RenderSettings)
    server: ServerSettings = Field(default_factory=ServerSettings)
