"""The local view: a deployment's whole lifecycle on an embedded Ray (`dsd run`), no Kubernetes.

The same path as the operator, with Ray Serve in KubeRay's place and a local HAProxy in a
Gateway's: `plan_desired` → `decide_lifecycle` → each live version's Serve application, exactly
the `serveConfigV2` entry the operator renders into its RayService → `LocalCluster.apply`; the
weights program a `WeightedProxy` in front of Ray Serve's ingress, as an HTTPRoute's weights
program a Gateway. The status lives in memory (a `DeepSeekDeploymentStatus`, as the operator keeps
it in the resource), and analysis queries the Prometheus the spec names.

A resource listing several versions starts with the one before the last and then rolls out the
last, as appending a version to a running deployment does.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import httpx
import yaml

from deepseek_operator.api.constants import Reason
from deepseek_operator.api.v1alpha1 import DeepSeekDeploymentStatus
from deepseek_operator.desired import DesiredDeployment, DesiredVersion
from deepseek_operator.k8s.observe import last_scaling
from deepseek_operator.k8s.prometheus import measure_due
from deepseek_operator.render import ray_service_name
from deepseek_operator.rollout import (
    LifecycleDecision,
    LifecycleInput,
    ObservedVersion,
    VersionRef,
    decide_lifecycle,
)
from deepseek_operator.status.compute import PassOutcome, compute_status
from deepseek_operator.status.serve_errors import root_error
from deepseek_serving.local import LocalCluster
from deepseek_serving.weighted_proxy import Backend, Listener, Route, WeightedProxy

__all__ = ["LocalRollout"]

LOCAL_NAMESPACE = "local"
"""The namespace analysis queries name (`dsd run` has none)."""
RECENT_DECISIONS = 100
"""Autoscaler decisions remembered: more than the live versions' last ones."""


@dataclass
class LocalRollout:
    """One deployment's lifecycle on a `LocalCluster`, its traffic through a `WeightedProxy`."""

    desired: DesiredDeployment
    cluster: LocalCluster
    proxy: WeightedProxy
    listen: tuple[str, int]
    """Where clients connect (host, port)."""
    now: Callable[[], datetime]
    prometheus: httpx.AsyncClient = field(default_factory=lambda: httpx.AsyncClient(timeout=10))
    status: DeepSeekDeploymentStatus = field(default_factory=DeepSeekDeploymentStatus)
    decision: LifecycleDecision | None = None
    scaling_decisions: list[dict[str, Any]] = field(default_factory=list)
    """The autoscaler's decisions the last step read from the Serve controller's log, oldest first."""
    _decisions: list[dict[str, Any]] = field(default_factory=list)
    """Its recent decisions (``RECENT_DECISIONS``), where each version's last scaling is found."""
    _apps: dict[VersionRef, dict[str, Any]] = field(default_factory=dict)
    """The application config each live version runs, by version."""
    _rolled_out: bool = False

    @property
    def target(self) -> DesiredVersion:
        """The version the lifecycle moves to now: the one before the last until it serves."""
        versions = self.desired.versions
        if len(versions) == 1 or self._rolled_out:
            return versions[-1]
        return versions[-2]

    async def step(self) -> LifecycleDecision:
        """One pass: observe Ray Serve, decide, deploy, route; the status is updated in place."""
        now = self.now().replace(microsecond=0)
        self.scaling_decisions = self.cluster.new_scaling_decisions()
        self._decisions = [*self._decisions, *self.scaling_decisions][-RECENT_DECISIONS:]
        observed = self._observe(now)
        spec = self.desired.validated.spec
        measurements = await measure_due(
            self.prometheus,
            spec,
            self.status.rollout,
            namespace=LOCAL_NAMESPACE,
            deployment=self.desired.validated.resource.metadata.name,
            namespace_label="",
            now=now,
        )
        target = self.target
        decision = decide_lifecycle(
            LifecycleInput(
                desired=target.ref,
                desired_spec=target.spec,
                renderable=frozenset(version.ref for version in self.desired.versions),
                groups=self.desired.groups,
                rollout=spec.rollout,
                status=self.status,
                observed=observed,
                actions={},
                measurements=measurements,
                drain_seconds=spec.serving.limits.request_timeout_seconds,
                now=now,
            )
        )
        self._deploy(decision)
        self.status = compute_status(
            self.status,
            PassOutcome(
                observed,
                decision,
                plan=target.summary,
                steps=len(spec.rollout.steps),
                desired=target.ref,
            ),
            generation=1,
            now=now,
        )
        if decision.stable == target.ref and target is not self.desired.versions[-1]:
            self._rolled_out = True  # the first version serves: now roll out the last one
        self.decision = decision
        return decision

    def _observe(self, now: datetime) -> dict[VersionRef, ObservedVersion]:
        applications = self.cluster.applications()
        try:
            depths = self.cluster.queue_depths()
        except httpx.HTTPError:
            depths = {}  # the metrics agent is still starting: unknown, not zero
        observed = {}
        for ref, config in self._apps.items():
            app = applications.get(config["name"])
            if app is None:
                continue
            ranks = int(config["args"].get("dataParallelSize") or 1)
            desired_groups = app.target_replicas // ranks
            failed = app.status in ("DEPLOY_FAILED", "UNHEALTHY")
            observed[ref] = ObservedVersion(
                ref=ref,
                ray_service=config["name"],
                ready=app.status == "RUNNING" and app.running_replicas > 0,
                failed=failed,
                message=root_error(app.message) if failed else app.status.lower(),
                ready_groups=app.running_replicas // ranks,
                desired_groups=desired_groups,
                queue_depth=depths.get((ref.name, ref.revision)),
                last_scaling=last_scaling(self._decisions, version=ref.name, to_groups=desired_groups),
                observed_at=now,
            )
        return observed

    def _deploy(self, decision: LifecycleDecision) -> None:
        """Run exactly the live versions (each at its groups) and send the traffic by weight."""
        wanted: dict[VersionRef, dict[str, Any]] = {}
        for live in decision.live:
            version = self.desired.find(live.ref)
            if live.groups is not None and version is not None:
                wanted[live.ref] = self._application(version, live.groups)
            elif live.ref in self._apps:
                wanted[live.ref] = self._apps[live.ref]  # draining: left as it runs
        if wanted != self._apps:
            self.cluster.apply(list(wanted.values()))
            self._apps = wanted
        prefix = self.desired.validated.spec.serving.route_prefix
        backends = tuple(
            Backend(f"http://127.0.0.1:{self.cluster.port}/{wanted[live.ref]['name']}", live.weight)
            for live in decision.live
            if live.weight > 0 and live.ref in wanted
        )
        host, port = self.listen
        self.proxy.apply([Listener(port, (Route(prefix, backends),) if backends else (), host=host)])

    def _application(self, version: DesiredVersion, groups: Any) -> dict[str, Any]:
        """The version's serveConfigV2 application (as its RayService carries it), under a name
        and route prefix of its own on the shared Serve."""
        rendered = self.desired.render(version, groups)
        config = yaml.safe_load(rendered.ray_service["spec"]["serveConfigV2"])
        (application,) = config["applications"]
        name = ray_service_name(self.desired.validated.resource.metadata.name, version.ref)
        prefix = application["route_prefix"].rstrip("/")
        return {**application, "name": name, "route_prefix": f"/{name}{prefix}"}

    def serving(self) -> bool:
        """Whether a version takes traffic."""
        return any(entry.weight > 0 and entry.ready_groups > 0 for entry in self.status.traffic)

    def problem(self) -> str | None:
        """What stops the deployment, when something does (a version failed, a rollback)."""
        degraded = next((c for c in self.status.conditions if c.type == "Degraded"), None)
        if degraded is not None and degraded.status == "True" and degraded.reason != Reason.AS_EXPECTED:
            return degraded.message
        return None
