"""Pure manifest builders: what the operator applies for a deployment, and `dsd render` prints.

- `render_version`: one version's RayService at the groups the lifecycle gives it. Its
  *revision* is a hash of that content with the group counts left out, so
  a resize is an in-place update and any other change is a new RayService, rolled out;
- `render_routing`: the stable Service and the HTTPRoute with one weighted backend per version
  taking traffic;
- `render_deployment`: the steady state (the desired version, all traffic), which `dsd render`
  prints and the operator converges to (a test proves the operator applies exactly it).

Names are unique per (deployment, version, revision), e.g. `chat-v2-3f2a1c`: a deployment `a`
with version `b-v1` and a deployment `a-b` with version `v1` never share a RayService.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import yaml

from deepseek_operator.api import constants
from deepseek_operator.api.v1alpha1 import VersionSpec
from deepseek_operator.planner.plan import Plan
from deepseek_operator.render.rayservice import (
    SERVE_PORT,
    RenderConfig,
    render_ray_service,
    rescale_ray_service,
)
from deepseek_operator.render.serving_args import serving_args_for
from deepseek_operator.rollout.types import GroupTarget, VersionRef
from deepseek_operator.validation import ValidatedDeployment

__all__ = [
    "Backend",
    "RenderConfig",
    "RenderedDeployment",
    "RenderedVersion",
    "labels_for",
    "ray_service_name",
    "render_deployment",
    "render_routing",
    "render_version",
    "rescale_ray_service",
    "revision_of",
]

MAX_RAY_SERVICE_NAME = 40
"""KubeRay derives longer names (RayCluster, head and serve Services) from a RayService's."""


def ray_service_name(deployment: str, ref: VersionRef) -> str:
    """`<deployment>-<version>-<6 hex>`, the readable part cut to fit KubeRay's 40 characters; the
    hash covers deployment, version and revision, so names never collide."""
    digest = hashlib.sha256(f"{deployment}\0{ref.name}\0{ref.revision}".encode()).hexdigest()[:6]
    readable = f"{deployment}-{ref.name}"[: MAX_RAY_SERVICE_NAME - len(digest) - 1].rstrip("-")
    return f"{readable}-{digest}"


def labels_for(deployment: str, ref: VersionRef | None = None) -> dict[str, str]:
    labels = {
        constants.LABEL_MANAGED_BY: constants.MANAGED_BY,
        "app.kubernetes.io/name": "deepseek",
        "app.kubernetes.io/instance": deployment,
        constants.LABEL_DEPLOYMENT: deployment,
    }
    if ref is not None:
        labels[constants.LABEL_VERSION] = ref.name
        if ref.revision:
            labels[constants.LABEL_REVISION] = ref.revision
    return labels


@dataclass(frozen=True)
class RenderedVersion:
    """One version's objects: its RayService (the EPLB policy's settings ride in its Serve args;
    vLLM cannot be seeded with a planned map, so none is rendered)."""

    ref: VersionRef
    ray_service: dict[str, Any]

    @property
    def objects(self) -> list[dict[str, Any]]:
        return [self.ray_service]


@dataclass(frozen=True)
class RenderedDeployment:
    """The objects of one deployment, in apply order."""

    objects: tuple[dict[str, Any], ...]

    def of_kind(self, kind: str) -> list[dict[str, Any]]:
        return [obj for obj in self.objects if obj["kind"] == kind]


@dataclass(frozen=True)
class Backend:
    """A version the route sends traffic to."""

    ref: VersionRef
    ray_service: str
    weight: int


def render_version(
    deployment: ValidatedDeployment,
    plan: Plan,
    version: VersionSpec,
    config: RenderConfig,
    groups: GroupTarget | None = None,
) -> RenderedVersion:
    """The objects of `version` running `groups` (the spec's when None), named by revision."""
    name = deployment.resource.metadata.name
    args = serving_args_for(deployment, plan, version, groups)
    unnamed = render_ray_service(
        deployment, plan, version, args, name="", labels=labels_for(name, VersionRef(version.name, "")),
        config=config,
    )  # fmt: skip
    ref = VersionRef(version.name, revision_of(unnamed))
    return RenderedVersion(ref, _stamped(unnamed, name, ref))


def revision_of(ray_service: dict[str, Any]) -> str:
    """Hash of a RayService's content without its name, revision labels and group counts."""
    content = rescale_ray_service(ray_service, GroupTarget.fixed(0))
    content["metadata"] = {
        key: value for key, value in content["metadata"].items() if key not in ("name", "annotations")
    }
    content["metadata"]["labels"] = _without_revision(content["metadata"].get("labels") or {})
    cluster = content["spec"]["rayClusterConfig"]
    for template in _pod_templates(cluster):
        template["metadata"]["labels"] = _without_revision(template["metadata"].get("labels") or {})
    serve_config = yaml.safe_load(content["spec"]["serveConfigV2"])
    for application in serve_config["applications"]:
        application["args"].pop("revision", None)
    content["spec"]["serveConfigV2"] = serve_config
    return hashlib.sha256(json.dumps(content, sort_keys=True).encode()).hexdigest()[:8]


def render_routing(deployment: ValidatedDeployment, backends: Sequence[Backend]) -> list[dict[str, Any]]:
    """The stable Service (`<deployment>`, selecting the serving pods of the version with the most
    traffic) and, with `spec.serving.httpRoute`, the HTTPRoute with one weighted backend per
    version taking traffic; nothing while no version does."""
    taking = [backend for backend in backends if backend.weight > 0]
    if not taking:
        return []
    stable = max(taking, key=lambda backend: (backend.weight, backend.ref))
    return [_stable_service(deployment, stable.ref), *_http_route(deployment, taking)]


def render_deployment(
    deployment: ValidatedDeployment, plan: Plan, config: RenderConfig | None = None
) -> RenderedDeployment:
    """The steady state: the desired version at the spec's groups with all the traffic."""
    rendered = render_version(deployment, plan, deployment.spec.desired_version, config or RenderConfig())
    backend = Backend(rendered.ref, rendered.ray_service["metadata"]["name"], 100)
    return RenderedDeployment((*rendered.objects, *render_routing(deployment, [backend])))


def _without_revision(labels: dict[str, str]) -> dict[str, str]:
    return {key: value for key, value in labels.items() if key != constants.LABEL_REVISION}


def _pod_templates(cluster: dict[str, Any]) -> list[dict[str, Any]]:
    return [
        cluster["headGroupSpec"]["template"],
        *(group["template"] for group in cluster.get("workerGroupSpecs") or []),
    ]


def _stamped(ray_service: dict[str, Any], deployment: str, ref: VersionRef) -> dict[str, Any]:
    """Name the RayService after its revision; label it, its pods and its metrics with the revision."""
    ray_service["metadata"]["name"] = ray_service_name(deployment, ref)
    ray_service["metadata"]["labels"] = labels_for(deployment, ref)
    serve_config = yaml.safe_load(ray_service["spec"]["serveConfigV2"])
    for application in serve_config["applications"]:
        application["args"]["revision"] = ref.revision
    ray_service["spec"]["serveConfigV2"] = yaml.safe_dump(serve_config, sort_keys=False, width=120)
    for template in _pod_templates(ray_service["spec"]["rayClusterConfig"]):
        template["metadata"]["labels"] = {**template["metadata"]["labels"], **labels_for(deployment, ref)}
    return ray_service


def _namespace(deployment: ValidatedDeployment) -> str:
    return deployment.resource.metadata.namespace or "default"


def _stable_service(deployment: ValidatedDeployment, ref: VersionRef) -> dict[str, Any]:
    """`<deployment>`: one address for clients across versions, selecting serving pods of the
    version with the most traffic (canaries split traffic with the HTTPRoute instead)."""
    name = deployment.resource.metadata.name
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {"name": name, "namespace": _namespace(deployment), "labels": labels_for(name)},
        "spec": {
            "type": "ClusterIP",
            "selector": {**labels_for(name, ref), "ray.io/serve": "true"},
            "ports": [{"name": "http", "port": SERVE_PORT, "targetPort": SERVE_PORT, "protocol": "TCP"}],
        },
    }


def _http_route(deployment: ValidatedDeployment, backends: Sequence[Backend]) -> list[dict[str, Any]]:
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
                                # KubeRay's Service in front of the RayService's serving pods.
                                "name": f"{backend.ray_service}-serve-svc",
                                "port": SERVE_PORT,
                                "weight": backend.weight,
                            }
                            for backend in sorted(backends, key=lambda backend: backend.ref)
                        ],
                    }
                ],
            },
        }
    ]
