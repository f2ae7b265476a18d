"""The `ray.io/v1` RayService of one version: a Ray cluster in whole groups, serving `build_app`.

- head: no GPUs and no rank work (`num-cpus: 0`), Ray Serve's controller and proxy, the dashboard;
- one worker group of whole-node pods whose replicas are whole groups (KubeRay's multi-host
  replicas: `numOfHosts` = nodes per group), scaled by KubeRay's in-tree autoscaler between
  `minGroups` and `maxGroups` as Ray Serve asks for rank replicas;
- `serveConfigV2` imports `deepseek_serving.app:build_app` with the version's `ServingArgs`.
Every container runs as a non-root user with no privilege escalation; `/dev/shm` is a memory
volume because NCCL and vLLM's shared-memory broadcast need more than Docker's 64 MiB default.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass
from typing import Any

import yaml

from deepseek_operator.api.v1alpha1 import VersionSpec
from deepseek_operator.hardware import GPU_TYPES
from deepseek_operator.modelsource import parse_model_source
from deepseek_operator.planner.plan import Plan
from deepseek_operator.render.serving_args import API_KEY_ENV, MODEL_MOUNT_ROOT
from deepseek_operator.rollout.types import GroupTarget
from deepseek_operator.validation import ValidatedDeployment
from deepseek_serving.config import ServingArgs
from deepseek_serving.local import APP_IMPORT_PATH, application_config

__all__ = [
    "APP_IMPORT_PATH",
    "SERVE_PORT",
    "RenderConfig",
    "render_ray_service",
    "render_serve_config",
    "rescale_ray_service",
]

SERVE_PORT = 8000
WORKER_GROUP = "ranks"
NON_ROOT_USER = 1000


@dataclass(frozen=True)
class RenderConfig:
    """Operator-wide rendering defaults (from the operator's settings)."""

    default_image: str = "ghcr.io/deepseek-operator/serving:0.1.0"
    """Serving image of versions that name none."""
    ray_version: str = "2.60.0"
    head_cpu: str = "4"
    head_memory: str = "16Gi"
    autoscaler_idle_timeout_seconds: int = 60
    """How long a worker pod sits idle before the autoscaler removes it."""


def render_serve_config(args: ServingArgs, application: str) -> str:
    """`serveConfigV2` text: one application importing `build_app` with `args`."""
    config = {
        "proxy_location": "EveryNode",
        "http_options": {"host": "0.0.0.0", "port": SERVE_PORT},
        "applications": [application_config(args, name=application)],
    }
    return yaml.safe_dump(config, sort_keys=False, width=120)


def render_ray_service(
    deployment: ValidatedDeployment,
    plan: Plan,
    version: VersionSpec,
    args: ServingArgs,
    *,
    name: str,
    labels: dict[str, str],
    config: RenderConfig,
) -> dict[str, Any]:
    """The RayService object (no owner reference: the operator adds it at apply time)."""
    spec = deployment.spec
    image = version.image or config.default_image
    pod_labels = {**labels, "app.kubernetes.io/component": "ray"}
    environment = _environment(deployment)
    volumes, mounts = _volumes(deployment)
    worker = plan.worker_group
    scaling = args.autoscaling
    worker_resources: dict[str, str] = {
        "cpu": str(worker.cpus_per_pod),
        "memory": f"{worker.memory_per_pod_bytes // 2**20}Mi",
    }
    if plan.inventory.accelerator == "gpu":
        gpu_type = GPU_TYPES.get(plan.inventory.gpu_type or "")
        worker_resources[gpu_type.resource_name if gpu_type else "nvidia.com/gpu"] = str(worker.gpus_per_pod)
    return {
        "apiVersion": "ray.io/v1",
        "kind": "RayService",
        "metadata": {"name": name, "namespace": args.namespace, "labels": labels},
        "spec": {
            "serveConfigV2": render_serve_config(args, application=deployment.resource.metadata.name),
            "rayClusterConfig": {
                "rayVersion": config.ray_version,
                "enableInTreeAutoscaling": True,
                "autoscalerOptions": {
                    "upscalingMode": "Default",
                    "idleTimeoutSeconds": config.autoscaler_idle_timeout_seconds,
                    "securityContext": _security_context(),
                },
                "headGroupSpec": {
                    "rayStartParams": {"num-cpus": "0", "dashboard-host": "0.0.0.0"},
                    "template": _pod_template(
                        "ray-head",
                        image,
                        {"cpu": config.head_cpu, "memory": config.head_memory},
                        pod_labels,
                        environment,
                        volumes,
                        mounts,
                        ports=[
                            {"name": "gcs", "containerPort": 6379, "protocol": "TCP"},
                            {"name": "dashboard", "containerPort": 8265, "protocol": "TCP"},
                            {"name": "client", "containerPort": 10001, "protocol": "TCP"},
                            {"name": "serve", "containerPort": SERVE_PORT, "protocol": "TCP"},
                            {"name": "metrics", "containerPort": 8080, "protocol": "TCP"},
                        ],
                    ),
                },
                "workerGroupSpecs": [
                    {
                        "groupName": WORKER_GROUP,
                        # A replica is a whole group: `numOfHosts` pods (one per node), which the
                        # Ray autoscaler adds and removes together.
                        "replicas": args.groups,
                        "minReplicas": scaling.min_groups if scaling else args.groups,
                        "maxReplicas": scaling.max_groups if scaling else args.groups,
                        "numOfHosts": worker.pods_per_group,
                        "priority": 0,
                        "rayStartParams": {},
                        "template": _pod_template(
                            "ray-worker",
                            image,
                            worker_resources,
                            pod_labels,
                            environment,
                            volumes,
                            mounts,
                            ports=[{"name": "metrics", "containerPort": 8080, "protocol": "TCP"}],
                            node_selector=spec.resources.node_selector,
                            tolerations=[t.to_dict() for t in spec.resources.tolerations],
                            priority_class=spec.resources.priority_class_name,
                        ),
                    }
                ],
            },
        },
    }


def _environment(deployment: ValidatedDeployment) -> list[dict[str, Any]]:
    environment: list[dict[str, Any]] = [
        # Ray Serve's HAProxy ingress sends HTTP straight to the rank replicas (deepseek_serving.app).
        {"name": "RAY_SERVE_ENABLE_HA_PROXY", "value": "1"},
    ]
    secret = deployment.spec.serving.api_key_secret_ref
    if secret is not None:
        environment.append(
            {"name": API_KEY_ENV, "valueFrom": {"secretKeyRef": {"name": secret.name, "key": secret.key}}}
        )
    return environment


def _volumes(deployment: ValidatedDeployment) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    volumes: list[dict[str, Any]] = [{"name": "dshm", "emptyDir": {"medium": "Memory"}}]
    mounts: list[dict[str, Any]] = [{"name": "dshm", "mountPath": "/dev/shm"}]
    source = parse_model_source(deployment.spec.model.source)
    if source.scheme == "pvc":
        claim = source.location.split("/", 1)[0]
        volumes.append({"name": "model", "persistentVolumeClaim": {"claimName": claim, "readOnly": True}})
        mounts.append({"name": "model", "mountPath": f"{MODEL_MOUNT_ROOT}/{claim}", "readOnly": True})
    return volumes, mounts


def _security_context() -> dict[str, Any]:
    return {
        "runAsNonRoot": True,
        "runAsUser": NON_ROOT_USER,
        "allowPrivilegeEscalation": False,
        "capabilities": {"drop": ["ALL"]},
    }


def _pod_template(
    container: str,
    image: str,
    resources: dict[str, str],
    labels: dict[str, str],
    environment: list[dict[str, Any]],
    volumes: list[dict[str, Any]],
    mounts: list[dict[str, Any]],
    *,
    ports: list[dict[str, Any]],
    node_selector: dict[str, str] | None = None,
    tolerations: list[dict[str, Any]] | None = None,
    priority_class: str | None = None,
) -> dict[str, Any]:
    pod: dict[str, Any] = {
        "securityContext": {"runAsNonRoot": True, "runAsUser": NON_ROOT_USER, "fsGroup": NON_ROOT_USER},
        "containers": [
            {
                "name": container,
                "image": image,
                "resources": {"requests": resources, "limits": resources},
                "env": environment,
                "ports": ports,
                "volumeMounts": mounts,
                "securityContext": _security_context(),
            }
        ],
        "volumes": volumes,
    }
    if node_selector:
        pod["nodeSelector"] = node_selector
    if tolerations:
        pod["tolerations"] = tolerations
    if priority_class:
        pod["priorityClassName"] = priority_class
    return {"metadata": {"labels": labels}, "spec": pod}


def rescale_ray_service(ray_service: dict[str, Any], groups: GroupTarget) -> dict[str, Any]:
    """A copy of `ray_service` running `groups`: its worker replicas (whole groups) and its rank
    deployment's replica bounds (the serveConfigV2 override; never the application's `args`, so
    Ray Serve resizes in place). Also for a version whose content the current spec no longer
    renders (a rollout's stable version after the spec moved on): only its size changes."""
    scaled = copy.deepcopy(ray_service)
    spec = scaled["spec"]
    for worker_group in spec["rayClusterConfig"]["workerGroupSpecs"]:
        worker_group.update(replicas=groups.initial, minReplicas=groups.minimum, maxReplicas=groups.maximum)
    serve_config = yaml.safe_load(spec["serveConfigV2"])
    for application in serve_config["applications"]:
        ranks = int(application["args"].get("dataParallelSize") or 1)
        for override in application.get("deployments") or []:
            override["autoscaling_config"].update(
                min_replicas=groups.minimum * ranks,
                initial_replicas=max(groups.minimum, 1) * ranks,
                max_replicas=groups.maximum * ranks,
            )
    spec["serveConfigV2"] = yaml.safe_dump(serve_config, sort_keys=False, width=120)
    return scaled
