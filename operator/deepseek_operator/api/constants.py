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
LABEL_REVISION = f"{GROUP}/revision"
LABEL_MANAGED_BY = "app.kubernetes.io/managed-by"
MANAGED_BY = "deepseek-operator"


class ManualAction(StrEnum):
    """Rollout actions a person takes with an annotation (or `dsd rollout …`):
    `kubectl annotate dsd NAME deepseek.serving.dev/<action>=<new value> --overwrite`. Each value is
    acted on once (`status.acknowledgedActions` remembers the last one)."""

    PROMOTE = "promote"
    """Skip the current pause, or accept an inconclusive analysis."""
    PROMOTE_FULL = "promote-full"
    """Skip every remaining step."""
    ABORT = "abort"
    """Traffic back to the stable version; the canary drains and is removed."""
    RETRY = "retry"
    """Start an aborted or rolled-back rollout again."""

    @property
    def annotation(self) -> str:
        return f"{GROUP}/{self.value}"


class ConditionType(StrEnum):
    READY = "Ready"
    PROGRESSING = "Progressing"
    DEGRADED = "Degraded"


class ConditionStatus(StrEnum):
    TRUE = "True"
    FALSE = "False"
    UNKNOWN = "Unknown"


class Phase(StrEnum):
    """`status.phase`: one word for people (and `kubectl get dsd`)."""

    PENDING = "Pending"
    DEPLOYING = "Deploying"
    SERVING = "Serving"
    SCALED_TO_ZERO = "ScaledToZero"
    ROLLING_OUT = "RollingOut"
    PAUSED = "Paused"
    ROLLED_BACK = "RolledBack"
    DEGRADED = "Degraded"
    INVALID = "Invalid"
    INFEASIBLE = "Infeasible"


class Reason(StrEnum):
    """CamelCase reasons carried by conditions."""

    INITIALIZING = "Initializing"
    VALIDATION_FAILED = "ValidationFailed"
    PLAN_INFEASIBLE = "PlanInfeasible"
    NAME_CONFLICT = "NameConflict"
    """A child's name is taken by an object this deployment does not own."""
    APPLY_REFUSED = "ApplyRefused"
    """The API server refused a child (invalid, too large, its kind not installed, forbidden)."""
    WAITING_FOR_RAY_SERVICE = "WaitingForRayService"
    SERVING = "Serving"
    SCALED_TO_ZERO = "ScaledToZero"
    """Idle with autoscaling.scaleToZero: no group runs; the first request waits for one to start."""
    ROLLING_OUT = "RollingOut"
    ROLLOUT_PAUSED = "RolloutPaused"
    ANALYZING = "Analyzing"
    ANALYSIS_FAILED = "AnalysisFailed"
    ANALYSIS_INCONCLUSIVE = "AnalysisInconclusive"
    PROGRESS_DEADLINE_EXCEEDED = "ProgressDeadlineExceeded"
    ROLLED_BACK = "RolledBack"
    ABORTED = "Aborted"
    STABLE = "Stable"
    RAY_SERVICE_UNHEALTHY = "RayServiceUnhealthy"
    AS_EXPECTED = "AsExpected"


class EventReason(StrEnum):
    """Reasons of the Kubernetes Events the operator posts, one per decision."""

    VALIDATION_FAILED = "ValidationFailed"
    NAME_CONFLICT = "NameConflict"
    PLANNED = "Planned"
    APPLIED = "Applied"
    DRIFT_CORRECTED = "DriftCorrected"
    ADOPTED = "Adopted"
    READY = "Ready"
    DEGRADED = "Degraded"
    SCALED = "Scaled"
    ROLLOUT_STARTED = "RolloutStarted"
    ROLLOUT_STEP = "RolloutStep"
    ROLLOUT_PAUSED = "RolloutPaused"
    ANALYSIS = "Analysis"
    ROLLOUT_PROMOTED = "RolloutPromoted"
    ROLLOUT_ABORTED = "RolloutAborted"
    ROLLED_BACK = "RolledBack"
    DELETED = "Deleted"
