"""Reconcile one DeepSeekDeployment, told top to bottom (STYLE.md rule 5).

1. load the resource from the watch cache (deleted ones are garbage-collected by owner refs);
2. observe its RayServices as KubeRay and Ray Serve report them;
3. validate, plan and render every version it lists (remembered per generation and referenced
   ConfigMaps); a spec that cannot be served becomes status and one Warning Event;
4. take the analysis measurements that are due, then ask the lifecycle (`rollout`) what must run,
   where the traffic goes and what goes away;
5. render that: each live version's RayService at its groups, the weighted routing;
6. apply what differs from the cache (hand edits reverted, orphans adopted, names another owner
   holds refused), then delete what the lifecycle retired;
7. compute the whole status and write exactly what changed;
8. post the pass's Events, after the status write.
A steady-state pass makes no API request (the cache is fed by watches) and at most one read of
each live version's Ray Serve view, every `serve_ttl_seconds`.
"""

from __future__ import annotations

import functools
import hashlib
import itertools
import json
import logging
import os
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import Any

from kubernetes.aio.client.exceptions import ApiException
from pydantic import ValidationError

from deepseek_operator.api import constants
from deepseek_operator.api.constants import ManualAction, Reason
from deepseek_operator.api.v1alpha1 import AnalysisMeasurement, DeepSeekDeploymentStatus
from deepseek_operator.desired import DesiredDeployment, plan_desired
from deepseek_operator.errors import FieldError, InvalidSpec, PlanInfeasible
from deepseek_operator.k8s.cache import ObjectCache, referenced_config_maps
from deepseek_operator.k8s.client import KubeClient, is_refusal, refusal_message
from deepseek_operator.k8s.drift import differs
from deepseek_operator.k8s.observe import child_version, last_scaling, observe_version
from deepseek_operator.k8s.ownership import Ownership, ownership_of
from deepseek_operator.k8s.prometheus import measure_due
from deepseek_operator.k8s.serve_api import ServeObserver
from deepseek_operator.metrics import DECISIONS
from deepseek_operator.modelcfg import ArchitectureContext
from deepseek_operator.render import Backend, RenderConfig, render_routing, rescale_ray_service
from deepseek_operator.render.limits import check_object_sizes
from deepseek_operator.rollout import (
    LifecycleDecision,
    LifecycleInput,
    Note,
    ObservedVersion,
    VersionRef,
    decide_lifecycle,
)
from deepseek_operator.status.compute import PassOutcome, Rejected, compute_status
from deepseek_operator.status.events import Decision, decide_events
from deepseek_operator.status.export import export_status, forget_status
from deepseek_operator.workqueue import Key

__all__ = ["Reconciler", "status_patch"]

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class Child:
    """An object of the deployment (or an orphan it may adopt) and the version it runs, if any."""

    body: dict[str, Any]
    ownership: Ownership
    version: VersionRef | None


@dataclass
class Applied:
    """What one pass's apply did, for status and Events."""

    applied: list[str] = field(default_factory=list)
    corrected: list[str] = field(default_factory=list)
    """Hand edits of our fields reverted."""
    adopted: list[str] = field(default_factory=list)
    conflicts: list[str] = field(default_factory=list)
    """Names another owner holds."""
    refused: list[str] = field(default_factory=list)
    """Objects the API server refused."""

    @property
    def changed(self) -> bool:
        return bool(self.applied or self.corrected or self.adopted)


DRAIN_MARGIN_SECONDS = 10.0
"""Beyond `requestTimeoutSeconds`: the time a gateway takes to stop routing to a version."""


@dataclass
class Reconciler:
    """The reconcile loop's dependencies: API client, watch cache, observers, settings, clock."""

    client: KubeClient
    cache: ObjectCache
    render_config: RenderConfig
    now: Callable[[], datetime]
    serve: ServeObserver
    prometheus: Any
    """An `httpx.AsyncClient` for analysis queries."""
    namespace_label: str = "namespace"
    settle_seconds: float = 2.0
    _event_serial: itertools.count[int] = field(default_factory=itertools.count)
    _memo: dict[Key, tuple[tuple[object, ...], DesiredDeployment | Rejected]] = field(default_factory=dict)
    _seen: dict[Key, tuple[VersionRef, datetime]] = field(default_factory=dict)
    _applied: dict[tuple[str, str, str], str] = field(default_factory=dict)
    """(kind, namespace, name) -> hash of the content last applied: a later difference is drift."""
    _unappliable: dict[tuple[str, str, str], str] = field(default_factory=dict)
    """Content that did not stick when applied (rewritten on admission): not applied again."""

    async def reconcile(self, key: Key) -> float | None:
        """One pass; returns seconds until the lifecycle wants another look (None: on events)."""
        # Step 1: load.
        body = self.cache.deployment(key)
        if body is None or body["metadata"].get("deletionTimestamp"):
            return None
        previous = _stored_status(body)
        now = self.now().replace(microsecond=0)

        # Step 2: observe.
        children = self._children(key, body, previous)
        observed = await self._observe(children, previous)

        # Step 3: what the spec asks for.
        desired = await self._desired(key, body)
        if isinstance(desired, Rejected):
            outcome = PassOutcome(observed, None, rejected=desired)
            await self._write_status(
                key, body, previous, outcome, now, applied=Applied(), deleted=[], notes=()
            )
            return None

        # Step 4: measure, then decide.
        measurements = await measure_due(
            self.prometheus,
            desired.validated.spec,
            previous.rollout,
            namespace=key[0],
            deployment=key[1],
            namespace_label=self.namespace_label,
            now=now,
        )
        decision = decide_lifecycle(
            self._lifecycle_input(key, body, desired, previous, observed, measurements, now)
        )

        # Steps 5-6: render, apply, retire.
        objects = self._render(desired, decision, children)
        too_large = check_object_sizes(objects)
        if too_large:
            rejected = Rejected(
                Reason.VALIDATION_FAILED, [FieldError("spec", str(problem)) for problem in too_large]
            )
            await self._write_status(
                key, body, previous, PassOutcome(observed, None, rejected=rejected), now,
                applied=Applied(), deleted=[], notes=(),
            )  # fmt: skip
            return None
        applied = await self._apply(key, body, objects)
        deleted = await self._retire(key, children, decision)
        if decision.settling and not (applied.changed or deleted or decision.notes):
            # Edits in a burst: the pass after the spec settled writes the status, once.
            return decision.requeue_after
        if applied.applied:
            # What we just created counts as observed (not ready yet), so the pass its watch
            # event starts finds the same status and writes nothing.
            observed = await self._observe(self._children(key, body, previous), previous)

        # Steps 7-8: status and Events.
        outcome = PassOutcome(
            observed,
            decision,
            conflicts=applied.conflicts,
            refused=applied.refused,
            plan=desired.desired.summary,
            selector=_selector(key[1], decision),
            steps=len(desired.validated.spec.rollout.steps),
            desired=desired.desired.ref,
        )
        await self._write_status(
            key, body, previous, outcome, now, applied=applied, deleted=deleted, notes=decision.notes
        )
        return _sooner(decision.requeue_after, self._until_serve_settles(decision, observed))

    def _until_serve_settles(
        self, decision: LifecycleDecision, observed: Mapping[VersionRef, ObservedVersion]
    ) -> float | None:
        """Seconds until Ray Serve's view is worth reading again, while groups start or stop.

        A resize we applied, or one Serve's autoscaler decided, moves replicas without changing
        anything a watch sees (KubeRay's status does not count replicas), so the status would
        lag until the resync; a settled deployment asks for nothing."""
        for version in decision.live:
            seen = observed.get(version.ref)
            if seen is None or seen.desired_groups is None:
                continue
            resizing = version.groups is not None and not (
                version.groups.minimum <= seen.desired_groups <= version.groups.maximum
            )
            if resizing or seen.ready_groups != seen.desired_groups:
                return self.serve.ttl_seconds
        return None

    def forget(self, key: Key) -> None:
        """Drop what was remembered of a deleted deployment."""
        self._memo.pop(key, None)
        self._seen.pop(key, None)
        forget_status(*key)

    # ─── step 2 ──────────────────────────────────────────────────────────────────────────────

    def _children(self, key: Key, body: Mapping[str, Any], previous: DeepSeekDeploymentStatus) -> list[Child]:
        """The cached children labelled for this deployment that it owns or may adopt, each with
        the version it runs (by name: the status remembers which RayService runs which version)."""
        uid = body["metadata"].get("uid")
        known = {
            entry.ray_service: VersionRef(entry.version, entry.revision or "")
            for entry in previous.traffic
            if entry.ray_service
        }
        children = []
        for body_ in self.cache.children(key):
            ownership = ownership_of(body_, key[1], uid)
            if ownership != Ownership.FOREIGN:
                children.append(Child(body_, ownership, child_version(body_, key[1], known)))
        return children

    async def _observe(
        self, children: list[Child], previous: DeepSeekDeploymentStatus
    ) -> dict[VersionRef, ObservedVersion]:
        """Each version's RayService; why its group count changed, when it changed since the status
        (the only time the Serve controller's log is read), else the reason the status kept."""
        before = {VersionRef(entry.version, entry.revision or ""): entry for entry in previous.traffic}
        observed = {}
        for child in children:
            if child.body["kind"] != "RayService" or child.version is None:
                continue
            ready = _kuberay_ready(child.body)
            details = await self.serve.details(child.body) if ready else None
            now = self.now().replace(microsecond=0)
            seen = observe_version(child.body, details, ref=child.version, now=now)
            entry = before.get(child.version)
            why = entry.last_scaling if entry is not None else None
            was = entry.desired_groups if entry is not None else None
            if details is not None and None not in (was, seen.desired_groups) and seen.desired_groups != was:
                decisions = await self.serve.scaling_decisions(child.body, details) or []
                why = last_scaling(decisions, version=child.version.name, to_groups=seen.desired_groups or 0)
            observed[child.version] = replace(seen, last_scaling=why)
        return observed

    # ─── step 3 ──────────────────────────────────────────────────────────────────────────────

    async def _desired(self, key: Key, body: Mapping[str, Any]) -> DesiredDeployment | Rejected:
        """Validate, plan and render every version, or reuse the result while nothing it depends on
        moved: the spec (uid, generation) and the ConfigMaps it names."""
        config_maps = await self._config_maps(key[0], body)
        metadata = body["metadata"]
        inputs = (metadata.get("uid"), metadata.get("generation"), _digest(config_maps))
        remembered = self._memo.get(key)
        if remembered is not None and remembered[0] == inputs:
            return remembered[1]
        result: DesiredDeployment | Rejected
        try:
            result = plan_desired(
                body, ArchitectureContext(config_maps=config_maps.get), config_maps, self.render_config
            ).without_expert_maps()
        except PlanInfeasible as infeasible:
            result = Rejected(Reason.PLAN_INFEASIBLE, infeasible.errors)
        except InvalidSpec as invalid:
            result = Rejected(Reason.VALIDATION_FAILED, invalid.errors)
        except (ValueError, ValidationError) as error:
            # The renderer refused what validation let through: still the spec's problem to show.
            result = Rejected(Reason.VALIDATION_FAILED, [FieldError("spec", str(error).splitlines()[0])])
        self._memo[key] = (inputs, result)
        return result

    async def _config_maps(self, namespace: str, body: Mapping[str, Any]) -> dict[str, Mapping[str, str]]:
        """The ConfigMaps the spec names, from the cache (read once on first reference)."""
        found: dict[str, Mapping[str, str]] = {}
        for name in sorted(referenced_config_maps(body)):
            known, data = self.cache.config_map(namespace, name)
            if not known:
                data = await self.client.read_config_map(namespace, name)
                self.cache.remember_config_map(namespace, name, data)
            if data is not None:
                found[name] = data
        return found

    # ─── step 4 ──────────────────────────────────────────────────────────────────────────────

    def _lifecycle_input(
        self,
        key: Key,
        body: Mapping[str, Any],
        desired: DesiredDeployment,
        previous: DeepSeekDeploymentStatus,
        observed: Mapping[VersionRef, ObservedVersion],
        measurements: list[AnalysisMeasurement],
        now: datetime,
    ) -> LifecycleInput:
        spec = desired.validated.spec
        target = desired.desired.ref
        seen = self._seen.get(key)
        if seen is None or seen[0] != target:
            seen = self._seen[key] = (target, now)
        annotations = body["metadata"].get("annotations") or {}
        return LifecycleInput(
            desired=target,
            desired_spec=desired.desired.spec,
            renderable=frozenset(version.ref for version in desired.versions),
            groups=desired.groups,
            rollout=spec.rollout,
            status=previous,
            observed=observed,
            actions={
                action: annotations[action.annotation]
                for action in ManualAction
                if action.annotation in annotations
            },
            measurements=measurements,
            drain_seconds=spec.serving.limits.request_timeout_seconds + DRAIN_MARGIN_SECONDS,
            now=now,
            desired_seen_at=seen[1],
            settle_seconds=self.settle_seconds,
        )

    # ─── steps 5-6 ───────────────────────────────────────────────────────────────────────────

    def _render(
        self,
        desired: DesiredDeployment,
        decision: LifecycleDecision,
        children: list[Child],
    ) -> list[dict[str, Any]]:
        """Each live version's objects at its groups; a version the spec no longer renders keeps
        the content it runs and only changes size; then the routing."""
        running = {child.version: child.body for child in children if child.body["kind"] == "RayService"}
        objects: list[dict[str, Any]] = []
        backends = []
        for live in decision.live:
            version = desired.find(live.ref)
            current = running.get(live.ref)
            if version is not None and live.groups is not None:
                rendered = desired.render(version, live.groups)
                objects += rendered.objects
                name = rendered.ray_service["metadata"]["name"]
            elif current is not None:
                if live.groups is not None:
                    objects.append(_managed_part(rescale_ray_service(current, live.groups)))
                name = current["metadata"]["name"]
            else:
                continue
            backends.append(Backend(live.ref, name, live.weight))
        return [*objects, *render_routing(desired.validated, backends)]

    async def _apply(self, key: Key, owner: Mapping[str, Any], objects: list[dict[str, Any]]) -> Applied:
        """Apply what differs from what the cluster holds: new objects, our own changes, hand edits
        of our fields (drift), orphans to adopt; never another owner's object."""
        result = Applied()
        uid = owner["metadata"].get("uid")
        for obj in objects:
            name, kind = obj["metadata"]["name"], obj["kind"]
            where = (kind, key[0], name)
            wanted = _content_hash(obj)
            current = self.cache.child(key, kind, name)
            if current is None:
                # Not ours (not labelled, or not cached yet): never take over another owner's object.
                current = await self.client.get(obj)
            ownership = ownership_of(current, key[1], uid) if current is not None else None
            if ownership == Ownership.FOREIGN:
                assert current is not None
                result.conflicts.append(f"{kind} {name} exists and belongs to {_owner_words(current)}")
                continue
            if current is not None and ownership == Ownership.OURS and not differs(obj, current):
                continue
            if self._unappliable.get(where) == wanted:
                continue  # applying this did not stick (see below): not again until it changes
            try:
                stored = await self.client.apply(obj, owner=owner)
            except ApiException as error:
                if not is_refusal(error):
                    raise  # transient (5xx, 429, timeouts): the work queue retries with backoff
                result.refused.append(f"{kind} {name} refused by the API server: {refusal_message(error)}")
                continue
            self.cache.put_child(stored)
            label = f"{kind}/{name}"
            if ownership == Ownership.ORPHAN:
                result.adopted.append(label)
            elif current is not None and self._applied.get(where) == wanted:
                result.corrected.append(label)  # we applied this content before: someone changed it
            else:
                result.applied.append(label)
            self._applied[where] = wanted
            if differs(obj, stored):
                # Something rewrites our fields as they are stored (a mutating admission webhook):
                # applying again would loop; say so once and wait for our content to change.
                self._unappliable[where] = wanted
                logger.warning("%s/%s: the API server stores %s other than applied", key[0], key[1], label)
        return result

    async def _retire(self, key: Key, children: list[Child], decision: LifecycleDecision) -> list[str]:
        """Delete the objects of retired versions (only those this deployment owns)."""
        retired = set(decision.retire)
        deleted = []
        for child in children:
            if child.ownership != Ownership.OURS or child.version not in retired:
                continue
            await self.client.delete(child.body)
            self.cache.drop_child(child.body)
            name = child.body["metadata"]["name"]
            self._applied.pop((child.body["kind"], key[0], name), None)
            if child.body["kind"] == "RayService":
                self.serve.forget(key[0], name)
            deleted.append(f"{child.body['kind']}/{name}")
        return deleted

    # ─── steps 7-8 ───────────────────────────────────────────────────────────────────────────

    async def _write_status(
        self,
        key: Key,
        body: Mapping[str, Any],
        previous: DeepSeekDeploymentStatus,
        outcome: PassOutcome,
        now: datetime,
        *,
        applied: Applied,
        deleted: list[str],
        notes: Sequence[Note],
    ) -> None:
        status = compute_status(previous, outcome, generation=body["metadata"].get("generation"), now=now)
        export_status(key[0], key[1], status, outcome.steps)
        patch = status_patch(body.get("status") or {}, status.to_dict())
        if patch:
            await self.client.patch_status(key[0], key[1], patch)
            # Write through: a pass that runs before the watch delivers this write must not
            # compare against the old status and write (and announce) the same change again.
            self.cache.put_deployment({**body, "status": status.to_dict()})
        log = logging.LoggerAdapter(logger, {"deployment": f"{key[0]}/{key[1]}"})
        events = decide_events(
            previous,
            status,
            applied=applied.applied,
            corrected=applied.corrected,
            adopted=applied.adopted,
            deleted=deleted,
            notes=notes,
        )
        for decision in events:
            DECISIONS.labels(reason=decision.reason.value).inc()
            log.info(
                "%s: %s", decision.reason.value, decision.message, extra={"reason": decision.reason.value}
            )
            await self.client.post_event(functools.partial(self._event, body, decision))

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


def status_patch(stored: Mapping[str, Any], desired: Mapping[str, Any]) -> dict[str, Any]:
    """A JSON merge patch (RFC 7386) from `stored` to `desired`, at every depth: changed values,
    and nulls for keys now unset (lists are replaced whole, as merge patches do)."""
    patch: dict[str, Any] = {name: None for name in stored if name not in desired}
    for name, value in desired.items():
        old = stored.get(name)
        if isinstance(value, Mapping) and isinstance(old, Mapping):
            nested = status_patch(old, value)
            if nested:
                patch[name] = nested
        elif name not in stored or old != value:
            patch[name] = value
    return patch


def _sooner(first: float | None, second: float | None) -> float | None:
    return min((s for s in (first, second) if s is not None), default=None)


def _stored_status(body: Mapping[str, Any]) -> DeepSeekDeploymentStatus:
    """The stored status; one that does not parse (edited by hand) is replaced as a whole."""
    try:
        return DeepSeekDeploymentStatus.model_validate(body.get("status") or {})
    except ValidationError:
        return DeepSeekDeploymentStatus()


def _kuberay_ready(ray_service: Mapping[str, Any]) -> bool:
    conditions = (ray_service.get("status") or {}).get("conditions") or []
    return any(c.get("type") == "Ready" and c.get("status") == "True" for c in conditions)


def _managed_part(ray_service: Mapping[str, Any]) -> dict[str, Any]:
    """What we apply of a RayService read back from the cluster: our fields, no server fields."""
    metadata = ray_service["metadata"]
    return {
        "apiVersion": ray_service["apiVersion"],
        "kind": ray_service["kind"],
        "metadata": {
            key: metadata[key] for key in ("name", "namespace", "labels", "annotations") if key in metadata
        },
        "spec": ray_service["spec"],
    }


def _selector(deployment: str, decision: LifecycleDecision) -> str:
    labels = f"{constants.LABEL_DEPLOYMENT}={deployment}"
    if decision.stable is None:
        return labels
    return f"{labels},{constants.LABEL_VERSION}={decision.stable.name}"


def _owner_words(body: Mapping[str, Any]) -> str:
    references = (body.get("metadata") or {}).get("ownerReferences") or []
    controller = next((ref for ref in references if ref.get("controller")), None)
    if controller is not None:
        return f"{controller.get('kind')} {controller.get('name')}"
    return "no DeepSeekDeployment (created by someone else)"


def _content_hash(obj: Mapping[str, Any]) -> str:
    return hashlib.sha256(json.dumps(obj, sort_keys=True).encode()).hexdigest()


def _digest(
    config_maps: Mapping[str, Mapping[str, str]],
) -> tuple[tuple[str, tuple[tuple[str, str], ...]], ...]:
    return tuple(sorted((name, tuple(sorted(data.items()))) for name, data in config_maps.items()))
