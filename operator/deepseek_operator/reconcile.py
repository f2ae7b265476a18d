"""Reconcile one DeepSeekDeployment, told top to bottom (STYLE.md rule 5).

1. load the resource from the watch cache (deleted ones are garbage-collected by owner refs);
2. observe its RayServices as KubeRay reports them;
3. validate it with the model's real config, and plan it;
4. render the objects it needs, routing traffic to the version that serves (none until one does);
   steps 3-4 are remembered until the spec, the ConfigMaps it names or the serving version move;
5. apply those that changed (server-side apply; unchanged spec-hash means no write);
6. retire RayServices of older versions once the desired one serves;
7. compute the whole status and write it once, only if it changed;
8. post one Event naming the pass's decisions, after the status write.
A steady-state pass reads nothing from the API (the cache is fed by watches) and writes nothing.
"""

from __future__ import annotations

import itertools
import logging
import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from pydantic import ValidationError

from deepseek_operator.api import constants
from deepseek_operator.api.constants import Reason
from deepseek_operator.api.v1alpha1 import DeepSeekDeploymentStatus, PlanSummary
from deepseek_operator.errors import FieldError, InvalidSpec, PlanInfeasible
from deepseek_operator.k8s.cache import ObjectCache
from deepseek_operator.k8s.client import KubeClient
from deepseek_operator.k8s.references import References, read_references
from deepseek_operator.metrics import DECISIONS
from deepseek_operator.planner.eplb_load import ExpertLoadError, parse_expert_load
from deepseek_operator.planner.plan import Plan, plan_deployment
from deepseek_operator.render import RenderConfig, ray_service_name, render_deployment
from deepseek_operator.status.compute import (
    ObservedRayService,
    Rejected,
    Serving,
    compute_status,
    observe_ray_service,
)
from deepseek_operator.status.events import Decision, decide_event
from deepseek_operator.validation import ValidatedDeployment, validate_deployment
from deepseek_operator.workqueue import Key

__all__ = ["Reconciler", "status_patch"]

logger = logging.getLogger(__name__)


@dataclass
class Reconciler:
    """The reconcile loop's dependencies: the API client, the watch cache, settings and a clock."""

    client: KubeClient
    cache: ObjectCache
    render_config: RenderConfig
    now: Callable[[], datetime]
    _event_serial: itertools.count[int] = field(default_factory=itertools.count)
    _memo: dict[Key, tuple[tuple[object, ...], Desired | Rejected]] = field(default_factory=dict)

    async def reconcile(self, key: Key) -> float | None:
        """One pass; returns None (watch events and the periodic resync trigger the next one)."""
        # Step 1: load.
        body = self.cache.deployment(key)
        if body is None or body["metadata"].get("deletionTimestamp"):
            return None
        log = logging.LoggerAdapter(logger, {"deployment": f"{key[0]}/{key[1]}"})
        previous = _stored_status(body)
        applied: list[str] = []
        deleted: list[str] = []

        # Steps 2-4: validate, plan, observe, render.
        observed = self._observe(key)
        desired = await self._desired(key, body, observed)
        if isinstance(desired, Rejected):
            outcome: Rejected | Serving = desired
        else:
            # Steps 5-6: apply, retire.
            applied = await self._apply(key, body, desired.objects)
            if desired.serving_version == desired.version:
                deleted = await self._retire_old_versions(key, desired.version)
            outcome = Serving(
                plan=desired.plan,
                desired_version=desired.version,
                groups=desired.groups,
                ray_services=self._observe(key),
                selector=f"{constants.LABEL_DEPLOYMENT}={key[1]},{constants.LABEL_VERSION}={desired.version}",
            )

        # Step 7: status, written once and only when it changed.
        status = compute_status(
            previous,
            outcome,
            generation=body["metadata"].get("generation"),
            now=self.now().replace(microsecond=0),
        )
        patch = status_patch(body.get("status") or {}, status)
        if patch:
            await self.client.patch_status(key[0], key[1], patch)
            # Write through: a pass that runs before the watch delivers this write must not
            # compare against the old status and write (and announce) the same change again.
            self.cache.put_deployment({**body, "status": status.to_dict()})

        # Step 8: one Event for the pass's decisions, after the status is stored.
        decision = decide_event(previous, status, applied=applied, deleted=deleted)
        if decision is not None:
            DECISIONS.labels(reason=decision.reason.value).inc()
            log.info(
                "%s: %s", decision.reason.value, decision.message, extra={"reason": decision.reason.value}
            )
            await self.client.post_event(lambda: self._event(body, decision))
        return None

    def forget(self, key: Key) -> None:
        """Drop what was remembered of a deleted deployment."""
        self._memo.pop(key, None)

    async def _desired(
        self, key: Key, body: Mapping[str, Any], observed: Mapping[str, ObservedRayService]
    ) -> Desired | Rejected:
        """Validate, plan and render, or reuse the last pass's result when nothing it depends on
        moved: the spec (its generation), the ConfigMaps it names, and which version serves.
        Most passes are caused by our own writes or the resync; they cost a lookup, not a plan."""
        references = await read_references(self.client, key[0], body)
        metadata = body["metadata"]
        inputs = (metadata.get("uid"), metadata.get("generation"), references.digest)
        remembered = self._memo.get(key)
        if remembered is not None and remembered[0] == inputs:
            result = remembered[1]
            if isinstance(result, Rejected) or result.serving_version == _serving_version(
                observed, result.version
            ):
                return result
        result = self._plan_and_render(body, references, observed)
        self._memo[key] = (inputs, result)
        return result

    def _plan_and_render(
        self, body: Mapping[str, Any], references: References, observed: Mapping[str, ObservedRayService]
    ) -> Desired | Rejected:
        try:
            validated = validate_deployment(body, references.architecture_context())
            plan = _plan(validated, references)
        except PlanInfeasible as infeasible:
            return Rejected(Reason.PLAN_INFEASIBLE, infeasible.errors)
        except InvalidSpec as invalid:
            return Rejected(Reason.VALIDATION_FAILED, invalid.errors)
        version = validated.spec.desired_version.name
        serving = _serving_version(observed, version)
        rendered = render_deployment(validated, plan, self.render_config, serving_version=serving)
        return Desired(version, serving, plan.summary(), plan.groups, rendered.objects)

    def _observe(self, key: Key) -> dict[str, ObservedRayService]:
        observed = (observe_ray_service(body) for body in self.cache.children(key, "RayService"))
        return {ray_service.version: ray_service for ray_service in observed}

    async def _apply(
        self, key: Key, owner: Mapping[str, Any], objects: tuple[dict[str, Any], ...]
    ) -> list[str]:
        """Apply objects whose spec-hash differs from what the cache holds; returns what was applied."""
        applied = []
        for obj in objects:
            name, kind = obj["metadata"]["name"], obj["kind"]
            current = self.cache.child(key, kind, name)
            wanted = obj["metadata"]["annotations"][constants.ANNOTATION_SPEC_HASH]
            if current is not None and _annotation(current, constants.ANNOTATION_SPEC_HASH) == wanted:
                continue
            # Record the applied object at once: the next pass must not re-apply before the watch
            # event that carries it arrives.
            self.cache.put_child(await self.client.apply(obj, owner=owner))
            applied.append(f"{kind}/{name}")
        return applied

    async def _retire_old_versions(self, key: Key, desired: str) -> list[str]:
        """Delete RayServices (and their expert maps) of versions the desired one replaced."""
        deleted = []
        keep = {ray_service_name(key[1], desired), f"{ray_service_name(key[1], desired)}-expert-map"}
        for child in self.cache.children(key):
            labels = child["metadata"].get("labels") or {}
            version = labels.get(constants.LABEL_VERSION)
            if version is None or version == desired or child["metadata"]["name"] in keep:
                continue
            await self.client.delete(child)
            self.cache.drop_child(child)
            deleted.append(f"{child['kind']}/{child['metadata']['name']}")
        return deleted

    def _event(self, body: Mapping[str, Any], decision: Decision) -> dict[str, Any]:
        metadata = body["metadata"]
        now = self.now().strftime("%Y-%m-%dT%H:%M:%SZ")
        serial = next(self._event_serial)
        return {
            "apiVersion": "v1",
            "kind": "Event",
            "metadata": {
                "name": f"{metadata['name']}.{self.now().timestamp():.0f}{os.getpid():x}{serial:x}",
                "namespace": metadata.get("namespace") or "default",
            },
            "involvedObject": {
                "apiVersion": body["apiVersion"],
                "kind": body["kind"],
                "name": metadata["name"],
                "namespace": metadata.get("namespace") or "default",
                "uid": metadata.get("uid"),
                "resourceVersion": metadata.get("resourceVersion"),
            },
            "type": decision.type,
            "reason": decision.reason.value,
            "action": decision.reason.value,
            "message": decision.message[:1024],
            "source": {"component": constants.FIELD_MANAGER},
            "reportingComponent": f"{constants.GROUP}/operator",
            "reportingInstance": os.environ.get("HOSTNAME", "local"),
            "firstTimestamp": now,
            "lastTimestamp": now,
            "count": 1,
        }


@dataclass(frozen=True)
class Desired:
    """What the spec asks for, rendered for the version that serves now."""

    version: str
    serving_version: str | None
    plan: PlanSummary
    groups: int
    objects: tuple[dict[str, Any], ...]


def _plan(validated: ValidatedDeployment, references: References) -> Plan:
    """Plan, from the expert-load statistics the spec names (uniform without)."""
    reference = validated.spec.parallelism.eplb.load_stats
    if reference is None:
        return plan_deployment(validated)
    path = "spec.parallelism.eplb.loadStats"
    data = references.config_maps.get(reference.name)
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
    return plan_deployment(validated, expert_load=load, load_source=f"ConfigMap {reference.name}")


def _serving_version(observed: Mapping[str, ObservedRayService], desired: str) -> str | None:
    """The version that takes traffic: the desired one once ready, else any ready older one."""
    if desired in observed and observed[desired].ready:
        return desired
    return next((version for version, ray_service in sorted(observed.items()) if ray_service.ready), None)


def status_patch(stored: Mapping[str, Any], status: DeepSeekDeploymentStatus) -> dict[str, Any]:
    """A merge patch from `stored` to `status`: changed fields, and nulls for fields now unset."""
    desired = status.to_dict()
    patch = {name: value for name, value in desired.items() if stored.get(name) != value}
    patch.update({name: None for name in stored if name not in desired})
    return patch


def _stored_status(body: Mapping[str, Any]) -> DeepSeekDeploymentStatus:
    """The stored status; one that does not parse (edited by hand) is replaced as a whole."""
    try:
        return DeepSeekDeploymentStatus.model_validate(body.get("status") or {})
    except ValidationError:
        return DeepSeekDeploymentStatus()


def _annotation(body: Mapping[str, Any], name: str) -> str | None:
    value = (body.get("metadata", {}).get("annotations") or {}).get(name)
    return str(value) if value is not None else None
