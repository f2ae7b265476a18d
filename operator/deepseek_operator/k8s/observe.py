"""What a RayService says about its version, from KubeRay's status and Ray Serve's REST view (pure).

KubeRay reports whether a RayService serves (its `Ready` condition, serve endpoints, the Serve
applications' statuses) but not how many groups run: those are Ray Serve's running replicas of
the version's `engine-ranks` deployment (one replica per DP rank), read from Ray's dashboard
(`/api/serve/applications/`, as KubeRay itself reads it). Without that view (dashboard not reached
yet) a serving RayService counts its configured groups, and one that does not serve counts none.
Why the group count changed is in the Serve controller's log, one line per decision of our
autoscaling policy (`deepseek_serving.autoscaling.decisions_in_log`), read through the same
dashboard's log API (`dsd run` reads the log file).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

import pydantic
import yaml

from deepseek_operator.api import constants
from deepseek_operator.api.v1alpha1 import ScalingRecord
from deepseek_operator.render import ray_service_name
from deepseek_operator.rollout import ObservedVersion, VersionRef
from deepseek_operator.status.serve_errors import FAILED_STATUSES, application_root_error
from deepseek_serving.llm_config import SERVE_DEPLOYMENT_NAME

__all__ = ["child_version", "last_scaling", "observe_version", "version_ref_of"]

_Loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


def version_ref_of(body: Mapping[str, Any]) -> VersionRef:
    """The (version, revision) a child's labels name."""
    labels = (body.get("metadata") or {}).get("labels") or {}
    return VersionRef(
        str(labels.get(constants.LABEL_VERSION, "")), str(labels.get(constants.LABEL_REVISION, ""))
    )


def child_version(
    child: Mapping[str, Any], deployment: str, known: Mapping[str, VersionRef]
) -> VersionRef | None:
    """Which version a RayService runs: by its name, as the status recorded it, or from its labels
    when they agree with its name. Labels alone are never trusted: a version
    label edited by hand is drift to revert, not a reason to retire a serving RayService.

    Parameters:
        child: an object of the deployment.
        deployment: the deployment's name.
        known: RayService name -> version, from `status.traffic`.

    Returns:
        The version, or None for an object that is not a version's (a Service, an HTTPRoute) or
        whose labels contradict its name.
    """
    name = str(child["metadata"]["name"])
    if child["kind"] != "RayService":
        return None
    if name in known:
        return known[name]
    labelled = version_ref_of(child)
    return labelled if ray_service_name(deployment, labelled) == name else None


def observe_version(
    ray_service: Mapping[str, Any],
    serve_details: Mapping[str, Any] | None,
    *,
    ref: VersionRef,
    now: datetime,
) -> ObservedVersion:
    """One RayService as the lifecycle sees it.

    Parameters:
        ray_service: the RayService object (KubeRay v1.7 status).
        serve_details: Ray's `ServeInstanceDetails` JSON for its cluster, or None when unknown.
        ref: the version it runs (`child_version`).
        now: when `serve_details` was read.
    """
    metadata, status = ray_service.get("metadata") or {}, ray_service.get("status") or {}
    conditions = {condition.get("type"): condition for condition in status.get("conditions") or []}
    ready_condition = conditions.get("Ready") or {}
    # A cluster that never became active reports its applications under pendingServiceStatus.
    applications = {
        **((status.get("pendingServiceStatus") or {}).get("applicationStatuses") or {}),
        **((status.get("activeServiceStatus") or {}).get("applicationStatuses") or {}),
    }
    failed = [
        f"{name}: {application_root_error(app)}"
        for name, app in sorted(applications.items())
        if app.get("status") in FAILED_STATUSES
    ]
    ready = ready_condition.get("status") == "True" and status.get("numServeEndpoints", 0) > 0 and not failed
    application = _first_application(ray_service)
    args = application.get("args") or {}
    ranks = int(args.get("dataParallelSize") or 1)
    deployment = _serve_deployment(serve_details, str(args.get("deploymentName") or ""))
    if deployment is not None:
        running = sum(1 for replica in deployment.get("replicas") or [] if replica.get("state") == "RUNNING")
        ready_groups, desired_groups = (
            running // ranks,
            int(deployment.get("target_num_replicas", 0)) // ranks,
        )
    else:
        configured = _configured_replicas(application) // ranks
        ready_groups, desired_groups = (configured if ready else 0), None
    return ObservedVersion(
        ref=ref,
        ray_service=str(metadata.get("name", "")),
        ready=ready,
        failed=bool(failed),
        message="; ".join(failed)
        or str(ready_condition.get("message") or status.get("serviceStatus") or "pending"),
        ready_groups=ready_groups,
        desired_groups=desired_groups,
        observed_at=now if serve_details is not None else None,
    )


def last_scaling(
    decisions: Sequence[Mapping[str, Any]], *, version: str, to_groups: int
) -> ScalingRecord | None:
    """The newest of the autoscaler's logged decisions (``decisions_in_log``, oldest first) that set
    `version`'s target to `to_groups`; None when none did (Ray's own cold-start path from zero
    groups, a log rotated away or unreadable) or it does not read as one."""
    for decision in reversed(decisions):
        if decision.get("version") == version and decision.get("to_groups") == to_groups:
            try:
                decided_s = float(decision["time_s"])
                return ScalingRecord(
                    from_groups=decision["from_groups"],
                    to_groups=to_groups,
                    rule=str(decision["rule"]),
                    queue_depth=decision.get("queue_depth") or 0.0,
                    reason=str(decision["reason"]),
                    # Serve's clock is Unix time; a monotonic one (no `current_time`) tells no date.
                    decided_at=(
                        datetime.fromtimestamp(decided_s, UTC).replace(microsecond=0)
                        if decided_s > 1e9
                        else None
                    ),
                )
            except (KeyError, TypeError, ValueError, pydantic.ValidationError):
                return None
    return None


def _first_application(ray_service: Mapping[str, Any]) -> Mapping[str, Any]:
    """The first application of `serveConfigV2` (`args` are its `ServingArgs`, camelCase).

    Parsed with libyaml: every pass observes every RayService, and PyYAML's pure-Python parser
    made this most of a thousand deployments' reconcile time."""
    try:
        config = yaml.load((ray_service.get("spec") or {}).get("serveConfigV2") or "", Loader=_Loader) or {}
        first = (config.get("applications") or [{}])[0]
        return first if isinstance(first, Mapping) else {}
    except (yaml.YAMLError, AttributeError, IndexError, TypeError):
        return {}


def _configured_replicas(application: Mapping[str, Any]) -> int:
    """The rank deployment's minimum replicas in the serveConfigV2 override (what runs at least)."""
    try:
        overrides = application.get("deployments") or []
        return int(
            next(o for o in overrides if o.get("name") == SERVE_DEPLOYMENT_NAME)["autoscaling_config"][
                "min_replicas"
            ]
        )
    except (AttributeError, KeyError, StopIteration, TypeError, ValueError):
        return 0


def _serve_deployment(details: Mapping[str, Any] | None, application: str) -> Mapping[str, Any] | None:
    if details is None:
        return None
    app = (details.get("applications") or {}).get(application) or {}
    deployment = (app.get("deployments") or {}).get(SERVE_DEPLOYMENT_NAME)
    return deployment if isinstance(deployment, Mapping) else None
