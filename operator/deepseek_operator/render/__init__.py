"""Pure manifest builders: what the operator applies for a deployment, and `dsd render` prints.

`render_deployment` is the one function both call (a test proves the operator applies exactly
its output). Objects carry labels tying them to their deployment and version, and a spec-hash
annotation so the operator can tell an unchanged object without a write.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from typing import Any

from deepseek_operator.api import constants
from deepseek_operator.api.v1alpha1 import VersionSpec
from deepseek_operator.planner.plan import Plan
from deepseek_operator.render.rayservice import SERVE_PORT, RenderConfig, render_ray_service
from deepseek_operator.render.serving_args import serving_args_for
from deepseek_operator.validation import ValidatedDeployment

__all__ = [
    "STEADY_STATE",
    "RenderConfig",
    "RenderedDeployment",
    "labels_for",
    "ray_service_name",
    "render_deployment",
    "spec_hash",
]


@dataclass(frozen=True)
class RenderedDeployment:
    """The objects of one deployment, in apply order."""

    objects: tuple[dict[str, Any], ...]

    def of_kind(self, kind: str) -> list[dict[str, Any]]:
        return [obj for obj in self.objects if obj["kind"] == kind]


def ray_service_name(deployment: str, version: str) -> str:
    """`<deployment>-<version>`: validation keeps it within KubeRay's 40 characters."""
    return f"{deployment}-{version}"


def labels_for(deployment: str, version: str | None = None) -> dict[str, str]:
    labels = {
        constants.LABEL_MANAGED_BY: constants.MANAGED_BY,
        "app.kubernetes.io/name": "deepseek",
        "app.kubernetes.io/instance": deployment,
        constants.LABEL_DEPLOYMENT: deployment,
    }
    if version is not None:
        labels[constants.LABEL_VERSION] = version
    return labels


def spec_hash(obj: dict[str, Any]) -> str:
    """Short stable hash of an object's desired content (labels and spec, not status)."""
    content = {"labels": obj["metadata"].get("labels"), "spec": obj.get("spec"), "data": obj.get("data")}
    return hashlib.sha256(json.dumps(content, sort_keys=True).encode()).hexdigest()[:16]


STEADY_STATE = "<desired>"
"""`serving_version` of the steady state: the desired version takes the traffic."""


def render_deployment(
    deployment: ValidatedDeployment,
    plan: Plan,
    config: RenderConfig | None = None,
    *,
    serving_version: str | None = STEADY_STATE,
) -> RenderedDeployment:
    """The RayService of the desired version, its expert-map ConfigMap, and, once a version
    serves, the stable Service and (with `spec.serving.httpRoute`) the HTTPRoute pointing at it.

    `serving_version` is the version clients reach: the operator passes the one that serves (an
    older one while a new one starts) or None while none does (nothing to route to yet); the
    default is the steady state, which `dsd render` prints.
    """
    config = config or RenderConfig()
    version = deployment.spec.desired_version
    serving = version.name if serving_version == STEADY_STATE else serving_version
    routing = [_stable_service(deployment, serving), *_http_route(deployment, serving)] if serving else []
    objects = [
        *_expert_map(deployment, plan, version),
        _ray_service(deployment, plan, version, config),
        *routing,
    ]
    for obj in objects:
        obj["metadata"].setdefault("annotations", {})[constants.ANNOTATION_SPEC_HASH] = spec_hash(obj)
    return RenderedDeployment(tuple(objects))


def _namespace(deployment: ValidatedDeployment) -> str:
    return deployment.resource.metadata.namespace or "default"


def _ray_service(
    deployment: ValidatedDeployment, plan: Plan, version: VersionSpec, config: RenderConfig
) -> dict[str, Any]:
    name = deployment.resource.metadata.name
    return render_ray_service(
        deployment,
        plan,
        version,
        serving_args_for(deployment, plan, version),
        name=ray_service_name(name, version.name),
        labels=labels_for(name, version.name),
        config=config,
    )


def _expert_map(deployment: ValidatedDeployment, plan: Plan, version: VersionSpec) -> list[dict[str, Any]]:
    """The planned EPLB map for EPLB to start from, too big for `serveConfigV2` args (V3: 58 × 288
    slots); only with EPLB on: without it vLLM's static linear map is what runs."""
    if plan.expert_placement is None or not deployment.spec.parallelism.eplb.enabled:
        return []
    name = deployment.resource.metadata.name
    return [
        {
            "apiVersion": "v1",
            "kind": "ConfigMap",
            "metadata": {
                "name": f"{ray_service_name(name, version.name)}-expert-map",
                "namespace": _namespace(deployment),
                "labels": labels_for(name, version.name),
            },
            "data": {"expert-map.json": json.dumps(plan.expert_placement.to_dict(), separators=(",", ":"))},
        }
    ]


def _stable_service(deployment: ValidatedDeployment, version: str) -> dict[str, Any]:
    """`<deployment>`: one address for clients across versions, selecting serving pods of the
    version that takes the traffic (canaries split traffic with the HTTPRoute instead)."""
    name = deployment.resource.metadata.name
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {"name": name, "namespace": _namespace(deployment), "labels": labels_for(name)},
        "spec": {
            "type": "ClusterIP",
            "selector": {**labels_for(name, version), "ray.io/serve": "true"},
            "ports": [{"name": "http", "port": SERVE_PORT, "targetPort": SERVE_PORT, "protocol": "TCP"}],
        },
    }


def _http_route(deployment: ValidatedDeployment, version: str) -> list[dict[str, Any]]:
    route = deployment.spec.serving.http_route
    if route is None:
        return []
    name = deployment.resource.metadata.name
    return [
        {
            "apiVersion": "gateway.networking.k8s.io/v1",
            "kind": "HTTPRoute",
            "metadata": {"name": name, "namespace": _namespace(deployment), "labels": labels_for(name)},
            "spec": {
                "parentRefs": [parent.to_dict() for parent in route.parent_refs],
                **({"hostnames": route.hostnames} if route.hostnames else {}),
                "rules": [
                    {
                        "matches": [
                            {"path": {"type": "PathPrefix", "value": deployment.spec.serving.route_prefix}}
                        ],
                        "backendRefs": [
                            {
                                "name": f"{ray_service_name(name, version)}-serve-svc",
                                "port": SERVE_PORT,
                                "weight": 100,
                            }
                        ],
                    }
                ],
            },
        }
    ]
