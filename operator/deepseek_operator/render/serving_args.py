"""The serving contract of one version: `ServingArgs` from a validated resource and its plan.

The operator renders it into a RayService's `serveConfigV2`, and `dsd run` serves the same object
on an embedded Ray, so both views run identical engine arguments.
"""

from __future__ import annotations

import math

from deepseek_operator.api.v1alpha1 import VersionSpec
from deepseek_operator.modelsource import parse_model_source
from deepseek_operator.planner.plan import Plan
from deepseek_operator.rollout.types import GroupTarget
from deepseek_operator.validation import ValidatedDeployment
from deepseek_serving.config import (
    AutoscalingSettings,
    EplbSettings,
    FaultInjection,
    PlacementSettings,
    RequestLimits,
    ServingArgs,
)
from deepseek_serving.eplb.policy_config import EplbPolicyConfig

__all__ = ["API_KEY_ENV", "MODEL_MOUNT_ROOT", "model_location", "serving_args_for"]

API_KEY_ENV = "DEEPSEEK_API_KEY"
"""Environment variable the serving pods read the API key from (filled from the Secret)."""
MODEL_MOUNT_ROOT = "/models"
"""Where `pvc://claim/path` sources are mounted in serving pods."""


def model_location(source_uri: str, revision: str | None) -> tuple[str, dict[str, object]]:
    """What vLLM loads, and the engine arguments that source needs.

    `hf://org/name@rev` -> `org/name` with `revision`; `s3://…` stays a URI streamed by Run:ai's
    loader; `pvc://claim/path` -> the mounted path; `file:///path` -> the path.
    """
    source = parse_model_source(source_uri).with_revision(revision)
    if source.scheme == "hf":
        return source.location, ({"revision": source.revision} if source.revision else {})
    if source.scheme == "s3":
        return str(source), {"load_format": "runai_streamer"}
    if source.scheme == "pvc":
        return f"{MODEL_MOUNT_ROOT}/{source.location}".rstrip("/"), {}
    return source.location, {}


def serving_args_for(
    deployment: ValidatedDeployment,
    plan: Plan,
    version: VersionSpec,
    groups: GroupTarget | None = None,
) -> ServingArgs:
    """The `ServingArgs` of `version` (planned by `plan`) of `deployment`, running `groups`
    (the spec's own when None; a rollout fixes each version's count)."""
    spec, metadata = deployment.spec, deployment.resource.metadata
    groups = groups or GroupTarget(plan.groups, plan.min_groups, plan.max_groups)
    model, source_args = model_location(spec.model.source, version.model_revision)
    eplb = spec.parallelism.eplb
    limits = spec.serving.limits
    sizes = plan.sizes
    return ServingArgs(
        deployment_name=metadata.name,
        namespace=metadata.namespace or "default",
        version_name=version.name,
        model_source=model,
        served_model_name=spec.model.served_model_name or metadata.name,
        dtype=spec.model.dtype,
        quantization=None if spec.model.quantization in ("auto", "none") else spec.model.quantization,
        max_model_len=plan.group.max_model_len,
        tensor_parallel_size=sizes.tensor,
        data_parallel_size=sizes.data,
        enable_expert_parallel=sizes.expert > 1,
        eplb=EplbSettings(
            enabled=eplb.enabled,
            num_redundant_experts=plan.redundant_experts,
            policy_settings=(
                EplbPolicyConfig.from_cost_model(plan.expert_placement.cost, policy=eplb.policy).to_json()
                if eplb.enabled and plan.expert_placement is not None
                else None
            ),
            **({"window_size": eplb.window_size} if eplb.window_size else {}),
            **({"step_interval": eplb.step_interval} if eplb.step_interval else {}),
        ),
        groups=groups.initial,
        autoscaling=(
            AutoscalingSettings(
                min_groups=groups.minimum,
                max_groups=groups.maximum,
                target_queue_depth_per_group=spec.autoscaling.target_queue_depth_per_group,
                headroom_percent=spec.autoscaling.headroom_percent,
                cold_start_s=spec.autoscaling.cold_start_seconds,
                upscale_delay_s=spec.autoscaling.upscale_delay_seconds,
                downscale_delay_s=spec.autoscaling.downscale_delay_seconds,
                scale_to_zero=spec.autoscaling.scale_to_zero,
            )
            if spec.autoscaling
            else None
        ),
        placement=PlacementSettings(
            accelerator=plan.inventory.accelerator,
            bundles=plan.placement.group_bundles,
            strategy=plan.placement.gang_strategy,
        ),
        engine_args={**source_args, **version.engine_args},
        api_key_env=API_KEY_ENV if spec.serving.api_key_secret_ref else None,
        limits=RequestLimits(
            # The API bounds a group; the serving app admits per rank.
            max_concurrent_requests_per_rank=math.ceil(limits.max_concurrent_requests / sizes.data),
            request_timeout_s=limits.request_timeout_seconds,
            **({"max_tokens": limits.max_tokens} if limits.max_tokens else {}),
        ),
        route_prefix=spec.serving.route_prefix,
        fault_injection=(
            FaultInjection(
                error_percent=version.fault_injection.error_percent,
                delay_s=version.fault_injection.delay_seconds,
            )
            if version.fault_injection
            else None
        ),
    )
