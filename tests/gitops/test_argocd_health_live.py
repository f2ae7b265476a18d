"""The Argo CD health check on statuses a real operator wrote: `dsd operator` as its own process
drives DeepSeekDeployments through a deployment's life on the test API server (KubeRay stand-in
with `InstantServe`), and at each state the Lua runs on the whole object as Argo CD passes it
(and the example Flux Kustomization's CEL health expressions must agree with it).

States: a first version still starting; serving; a spec the operator has not observed yet (the
operator stopped with SIGSTOP); a canary rolling out; a rollout paused by a pause step; a rollout
aborted with `dsd rollout abort`; a failing canary, then rolled back past its progress deadline;
an invalid spec, on a new deployment and as an edit of a serving one.
"""

from __future__ import annotations

import copy
import os
import signal
import time
import uuid
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from kubernetes import client
from typer.testing import CliRunner

from deepseek_operator.cli import app
from e2e_tests.support import Cluster
from tests.api.resources import example
from tests.gitops.argocd import Health, health
from tests.gitops.environment import OperatorEnvironment, operator_environment, ray_service_name
from tests.gitops.flux import FLUX_OF_ARGO, flux_health
from tests.operator.conftest import eventually

pytest.importorskip("lupa", reason="the dev extra has lupa (Lua for the Argo CD health check)")
pytestmark = pytest.mark.timeout(420)


@pytest.fixture(scope="module")
def environment(tmp_path_factory: pytest.TempPathFactory) -> Iterator[OperatorEnvironment]:
    with operator_environment(tmp_path_factory.mktemp("argocd")) as env:
        yield env


@pytest.fixture
def cluster(environment: OperatorEnvironment, monkeypatch: pytest.MonkeyPatch) -> Iterator[Cluster]:
    from kubernetes.config import kube_config

    # `dsd rollout …` reads the user's kubeconfig, as on a laptop.
    monkeypatch.setenv("KUBECONFIG", str(environment.kubeconfig))
    monkeypatch.setattr(kube_config, "KUBE_CONFIG_DEFAULT_LOCATION", str(environment.kubeconfig))
    name = f"argocd-{uuid.uuid4().hex[:6]}"
    core = client.CoreV1Api(environment.api_client)
    core.create_namespace({"metadata": {"name": name}})
    yield Cluster(environment.api_client, name)
    core.delete_namespace(name)


def _tiny(namespace: str, name: str = "tiny") -> dict[str, Any]:
    document = copy.deepcopy(example("tiny-local"))
    document["metadata"] = {"name": name, "namespace": namespace}
    document["spec"]["groups"] = 2
    return document


def _with_versions(document: dict[str, Any], *names: str) -> dict[str, Any]:
    changed = copy.deepcopy(document)
    template = changed["spec"]["versions"][0]
    changed["spec"]["versions"] = [{**template, "name": name} for name in names]
    return changed


class Journal:
    """The health of each state reached, as Argo CD would show it."""

    def __init__(self, cluster: Cluster) -> None:
        self.cluster = cluster
        self.rows: list[tuple[str, Health, dict[str, Any]]] = []

    def reach(
        self, state: str, name: str, until: Callable[[dict[str, Any]], bool], *, timeout: float = 30
    ) -> Health:
        """Wait until the object satisfies `until` (with its status observed), then judge it."""

        def reached() -> dict[str, Any]:
            body = self.cluster.deployment(name)
            status = body.get("status") or {}
            assert status.get("observedGeneration") == body["metadata"]["generation"], status
            assert until(body), (status.get("phase"), status.get("message"))
            return body

        return self.judge(state, eventually(reached, timeout=timeout, interval=0.05))

    def judge(self, state: str, body: dict[str, Any]) -> Health:
        """Argo CD's health of the object, checked against Flux's reading of it."""
        found = health(body)
        self.rows.append((state, found, body))
        assert flux_health(body) == FLUX_OF_ARGO[found.status], (state, found)
        return found

    def report(self) -> str:
        return "\n".join(f"{state:32} {h.status:11} {h.message}" for state, h, _ in self.rows)


def _phase(phase: str) -> Callable[[dict[str, Any]], bool]:
    return lambda body: (body.get("status") or {}).get("phase") == phase


def _degraded(reason: str) -> Callable[[dict[str, Any]], bool]:
    def check(body: dict[str, Any]) -> bool:
        conditions = (body.get("status") or {}).get("conditions") or []
        return any(
            c["type"] == "Degraded" and c["status"] == "True" and c["reason"] == reason for c in conditions
        )

    return check


def test_health_through_a_deployments_life(environment: OperatorEnvironment, cluster: Cluster) -> None:
    journal = Journal(cluster)
    namespace, serve = cluster.namespace, environment.instant_serve
    first = _tiny(namespace)

    # A first version still starting: its groups are not running yet.
    v1_key = f"{namespace}/{ray_service_name(first)}"
    serve.replicas[v1_key] = 0
    cluster.create_deployment(first)
    starting = journal.reach("first version starting", "tiny", lambda b: v1_key.split("/")[1] in str(b))
    assert starting.status == "Progressing", journal.report()
    assert "v1" in starting.message

    # Serving.
    del serve.replicas[v1_key]
    serving = journal.reach("serving", "tiny", _phase("Serving"))
    assert serving.status == "Healthy", journal.report()
    assert serving.message == "v1 serves 2 group(s)"

    # A new version with a pause step, applied while the operator is stopped: the spec is ahead
    # of the status, whatever the status says.
    rollout = _with_versions(first, "v1", "v2")
    rollout["spec"]["rollout"] = {"steps": [{"setWeight": 50}, {"pause": {}}, {"setWeight": 100}]}
    v2_key = f"{namespace}/{ray_service_name(rollout)}"
    serve.replicas[v2_key] = 0  # the canary's groups start slowly
    os.kill(environment.operator.pid, signal.SIGSTOP)
    try:
        cluster.patch_spec(
            "tiny", {"versions": rollout["spec"]["versions"], "rollout": rollout["spec"]["rollout"]}
        )
        ahead = journal.judge("spec not observed yet", cluster.deployment("tiny"))
    finally:
        os.kill(environment.operator.pid, signal.SIGCONT)
    assert ahead.status == "Progressing", journal.report()
    assert ahead.message.startswith("Waiting for the operator to observe generation")

    rolling = journal.reach("canary rolling out", "tiny", _phase("RollingOut"))
    assert rolling.status == "Progressing", journal.report()
    assert "v2 step 1/3" in rolling.message

    # The canary's groups start; the pause step holds the rollout for a person.
    del serve.replicas[v2_key]
    paused = journal.reach("paused by a pause step", "tiny", _phase("Paused"))
    assert paused.status == "Suspended", journal.report()
    assert "dsd rollout promote tiny" in paused.message

    # Aborted by hand.
    aborted = CliRunner().invoke(app, ["rollout", "abort", "tiny", "-n", namespace])
    assert aborted.exit_code == 0, aborted.output
    stopped = journal.reach("aborted (dsd rollout abort)", "tiny", _degraded("Aborted"))
    assert stopped.status == "Degraded", journal.report()
    assert stopped.message.startswith("Aborted: ")

    # A canary that fails to start, with a short progress deadline: unhealthy, then rolled back.
    serve.failing_versions.add((namespace, "tiny", "v3"))
    failing = _with_versions(first, "v1", "v2", "v3")
    cluster.patch_spec(
        "tiny",
        {
            "versions": failing["spec"]["versions"],
            "rollout": {"steps": [{"setWeight": 50}, {"pause": {}}], "progressDeadlineSeconds": 60},
        },
    )
    unhealthy = journal.reach("canary failing", "tiny", _degraded("RayServiceUnhealthy"))
    assert unhealthy.status == "Degraded", journal.report()
    assert unhealthy.message.startswith("RayServiceUnhealthy: v3")
    started = time.monotonic()
    rolled_back = journal.reach(
        "rolled back past its deadline", "tiny", _degraded("ProgressDeadlineExceeded"), timeout=120
    )
    assert rolled_back.status == "Degraded", journal.report()
    assert rolled_back.message.startswith("ProgressDeadlineExceeded: ")
    assert time.monotonic() - started < 90

    # An invalid edit of a serving deployment: still serving, but a person must look.
    cluster.patch_spec("tiny", {"parallelism": {"dataParallelSize": None, "expertParallelSize": 3}})
    invalid_edit = journal.reach("invalid edit while serving", "tiny", _degraded("ValidationFailed"))
    assert invalid_edit.status == "Degraded", journal.report()
    assert "expertParallelSize: 3 does not divide" in invalid_edit.message

    # An invalid new deployment.
    broken = _tiny(namespace, "broken")
    broken["spec"]["parallelism"] = {"tensorParallelSize": 1, "expertParallelSize": 3}
    cluster.create_deployment(broken)
    invalid = journal.reach("invalid spec", "broken", _phase("Invalid"))
    assert invalid.status == "Degraded", journal.report()
    assert invalid.message.startswith("ValidationFailed: spec.parallelism.expertParallelSize: 3")

    print("\n" + journal.report())
    assert {h.status for _, h, _ in journal.rows} == {"Healthy", "Progressing", "Degraded", "Suspended"}


def test_the_generation_check_uses_the_real_metadata(
    environment: OperatorEnvironment, cluster: Cluster
) -> None:
    """metadata.generation is what the API server counts (spec changes only), as Argo CD sees it."""
    created = cluster.create_deployment(_tiny(cluster.namespace, "gen"))
    assert created["metadata"]["generation"] == 1
    journal = Journal(cluster)
    assert journal.reach("serving", "gen", _phase("Serving")).status == "Healthy"
    cluster.custom.patch_namespaced_custom_object(
        "deepseek.serving.dev", "v1alpha1", cluster.namespace, "deepseekdeployments", "gen",
        {"metadata": {"labels": {"team": "a"}}},
    )  # fmt: skip
    body = cluster.deployment("gen")
    assert body["metadata"]["generation"] == 1, "a metadata edit is not a new generation"
    assert health(body).status == "Healthy"
