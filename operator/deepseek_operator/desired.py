"""What a deployment asks for, validated, planned and rendered per version (pure).

The operator, `dsd render` and `dsd run` all start here, so they plan the same versions from the
same inputs: the resource, the ConfigMaps it names (architecture, expert-load statistics) and the
operator's rendering defaults. Every entry of `spec.versions` is planned (its engine arguments
shape its memory fit) and rendered once at the spec's groups, which fixes its revision.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from deepseek_operator.api.v1alpha1 import DeepSeekDeploymentSpec, PlanSummary, VersionSpec
from deepseek_operator.errors import FieldError, InvalidSpec
from deepseek_operator.modelcfg import ArchitectureContext
from deepseek_operator.planner.eplb_load import ExpertLoadError, parse_expert_load
from deepseek_operator.planner.plan import Plan, plan_deployment
from deepseek_operator.render import RenderConfig, RenderedVersion, render_version, rescale_ray_service
from deepseek_operator.rollout.types import GroupTarget, VersionRef
from deepseek_operator.validation import ValidatedDeployment, validate_deployment

__all__ = ["DesiredDeployment", "DesiredVersion", "plan_desired", "spec_groups"]

ConfigMaps = Mapping[str, Mapping[str, str]]
"""ConfigMap data by name, in the deployment's namespace."""


def spec_groups(spec: DeepSeekDeploymentSpec) -> GroupTarget:
    """The groups a version runs outside rollouts: exactly `groups` (1 when omitted), or with
    autoscaling between a floor (`groups`, else `minGroups`, 0 with scale to zero) and `maxGroups`,
    starting with at least one."""
    if spec.autoscaling is None:
        return GroupTarget.fixed(spec.groups if spec.groups is not None else 1)
    floor = spec.groups if spec.groups is not None else spec.autoscaling.min_groups
    # A deployment that may scale to zero still starts with one group: the first request after
    # zero waits for a cold start; the first deployment need not.
    return GroupTarget(max(floor, 1), floor, spec.autoscaling.max_groups)


@dataclass(frozen=True)
class DesiredVersion:
    """One entry of `spec.versions`, planned and rendered at the spec's groups."""

    spec: VersionSpec
    plan: Plan
    rendered: RenderedVersion
    summary: PlanSummary
    """`plan.summary()`, what `status.plan` shows (kept when the expert maps are dropped)."""

    @property
    def ref(self) -> VersionRef:
        return self.rendered.ref


@dataclass(frozen=True)
class DesiredDeployment:
    validated: ValidatedDeployment
    versions: tuple[DesiredVersion, ...]
    """In `spec.versions` order."""
    groups: GroupTarget
    render_config: RenderConfig

    @property
    def desired(self) -> DesiredVersion:
        return self.versions[-1]

    def find(self, ref: VersionRef) -> DesiredVersion | None:
        return next((version for version in self.versions if version.ref == ref), None)

    def render(self, version: DesiredVersion, groups: GroupTarget) -> RenderedVersion:
        """`version` at other groups: its RayService resized. Group counts are not part of its
        revision, so this is what rendering it at `groups` gives (a test compares the two)."""
        if groups == self.groups:
            return version.rendered
        return RenderedVersion(version.ref, rescale_ray_service(version.rendered.ray_service, groups))

    def without_expert_maps(self) -> DesiredDeployment:
        """A copy for a long-lived cache (the operator keeps one per deployment): every plan
        without its per-layer expert maps, several hundred KiB for a DeepSeek-V3 group, which
        nothing after rendering reads. Summaries and rendered objects are kept."""
        versions = tuple(
            dataclasses.replace(version, plan=dataclasses.replace(version.plan, expert_placement=None))
            for version in self.versions
        )
        return dataclasses.replace(self, versions=versions)


def plan_desired(
    document: Mapping[str, Any],
    context: ArchitectureContext,
    config_maps: ConfigMaps,
    render_config: RenderConfig,
) -> DesiredDeployment:
    """Validate, plan and render every version of a resource.

    Raises:
        InvalidSpec: with every problem at its field path (`PlanInfeasible` when no shape fits).
    """
    validated = validate_deployment(document, context)
    groups = spec_groups(validated.spec)
    versions = []
    for version in validated.spec.versions:
        plan = _plan(validated, version, config_maps)
        rendered = render_version(validated, plan, version, render_config, groups)
        versions.append(DesiredVersion(version, plan, rendered, plan.summary()))
    return DesiredDeployment(validated, tuple(versions), groups, render_config)


def _plan(validated: ValidatedDeployment, version: VersionSpec, config_maps: ConfigMaps) -> Plan:
    """Plan one version, from the expert-load statistics the spec names (uniform without)."""
    reference = validated.spec.parallelism.eplb.load_stats
    if reference is None:
        return plan_deployment(validated, version=version)
    path = "spec.parallelism.eplb.loadStats"
    data = config_maps.get(reference.name)
    if data is None or reference.key not in data:
        message = f"ConfigMap {reference.name!r} key {reference.key!r} not found"
        raise InvalidSpec([FieldError(f"{path}.name", message)])
    arch = validated.architecture
    try:
        load = parse_expert_load(
            data[reference.key], num_layers=arch.num_moe_layers, num_logical_experts=arch.n_routed_experts
        )
    except ExpertLoadError as error:
        raise InvalidSpec([FieldError(path, f"ConfigMap {reference.name!r}: {error}")]) from None
    return plan_deployment(
        validated, version=version, expert_load=load, load_source=f"ConfigMap {reference.name}"
    )
