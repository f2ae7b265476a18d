"""Every string the cluster sees: API coordinates, label keys, condition types, reasons, events.

No other module spells these literals (STYLE.md rule 9): a reason typed twice is a reason
that drifts.
"""

from __future__ import annotations

from enum import StrEnum

GROUP = "deepseek.serving.dev"
VERSION = "v1alpha1"
API_VERSION = f"{GROUP}/{VERSION}"
KIND = "DeepSeekDeployment"
PLURAL = "deepseekdeployments"
SINGULAR = "deepseekdeployment"
SHORT_NAME = "dsd"
CATEGORIES = ("all", "deepseek")
CRD_NAME = f"{PLURAL}.{GROUP}"

FINALIZER = f"{GROUP}/finalizer"
FIELD_MANAGER = "deepseek-operator"

# Labels and annotations put on every object the operator renders.
LABEL_DEPLOYMENT = f"{GROUP}/deployment"
LABEL_VERSION = f"{GROUP}/version"
LABEL_MANAGED_BY = "app.kubernetes.io/managed-by"
MANAGED_BY = "deepseek-operator"
ANNOTATION_SPEC_HASH = f"{GROUP}/spec-hash"


class ConditionType(StrEnum):
    READY = "Ready"
    PROGRESSING = "Progressing"
    DEGRADED = "Degraded"


class ConditionStatus(StrEnum):
    TRUE = "True"
    FALSE = "False"
    UNKNOWN = "Unknown"


class Reason(StrEnum):
    """CamelCase reasons carried by conditions."""

    INITIALIZING = "Initializing"
    VALIDATION_FAILED = "ValidationFailed"
    PLAN_INFEASIBLE = "PlanInfeasible"
    WAITING_FOR_RAY_SERVICE = "WaitingForRayService"
    SERVING = "Serving"
    ROLLING_OUT = "RollingOut"
    ROLLED_BACK = "RolledBack"
    SCALING = "Scaling"
    STABLE = "Stable"
    RAY_SERVICE_UNHEALTHY = "RayServiceUnhealthy"
    AS_EXPECTED = "AsExpected"


class EventReason(StrEnum):
    """Reasons of the Kubernetes Events the operator posts, one per decision."""

    VALIDATION_FAILED = "ValidationFailed"
    PLANNED = "Planned"
    APPLIED = "Applied"
    READY = "Ready"
    DEGRADED = "Degraded"
    SCALED = "Scaled"
    ROLLOUT_STEP = "RolloutStep"
    ROLLOUT_PROMOTED = "RolloutPromoted"
    ROLLOUT_ABORTED = "RolloutAborted"
    ROLLED_BACK = "RolledBack"
    DELETED = "Deleted"
