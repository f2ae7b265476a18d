"""Canary rollouts end to end: real Ray Serve and vLLM, a real proxy splitting by the HTTPRoute's
weights, a real Prometheus judging the canary. A good version is promoted through its steps; a
slow one is rolled back by analysis; a client streaming requests through the Gateway all along
sees no failed request, and the share of answers from each version follows the weights.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from e2e_tests.conftest import Environment
from e2e_tests.support import Cluster, Load, eventually, manifest

SERVE_TIMEOUT = 900  # a cold start loads Ray, vLLM and the model; two busy cores are slow


@pytest.fixture
def gateway_url(cluster: Cluster, environment: Environment) -> str:
    if environment.gateway_class is None:
        pytest.skip("no Gateway API implementation (set E2E_GATEWAY_CLASS on a cluster)")
    from deepseek_operator.testing.gateway import wait_for_gateway_url

    cluster.custom.create_namespaced_custom_object(
        "gateway.networking.k8s.io", "v1", cluster.namespace, "gateways",
        {
            "apiVersion": "gateway.networking.k8s.io/v1",
            "kind": "Gateway",
            "metadata": {"name": "gw"},
            "spec": {
                "gatewayClassName": environment.gateway_class,
                "listeners": [{"name": "http", "port": 8080, "protocol": "HTTP"}],
            },
        },
    )  # fmt: skip
    return wait_for_gateway_url(cluster.custom, cluster.namespace, "gw", timeout_s=60)


@pytest.fixture
def client(gateway_url: str) -> Iterator[Load]:
    streaming = Load(gateway_url)
    yield streaming
    streaming.stop()


def _canary_deployment(environment: Environment) -> dict[str, Any]:
    body = manifest(
        "tiny.yaml", MODEL_SOURCE=environment.model_source, SERVING_IMAGE=environment.serving_image
    )
    spec = body["spec"]
    spec["serving"]["httpRoute"] = {"parentRefs": [{"name": "gw"}]}
    # A version leaving the route drains for the longest request before its RayService goes.
    spec["serving"]["limits"]["requestTimeoutSeconds"] = 30
    spec["rollout"] = {
        "steps": [{"setWeight": 50}, {"analysis": {}}],
        "analysis": {
            "prometheus": {"address": environment.prometheus_url},
            "metrics": [
                {
                    # As clients see it (the serving app's own histogram): the slow canary's delay shows.
                    "name": "latency",
                    "builtin": "e2eLatencyP95",
                    "threshold": 2.5,
                    "intervalSeconds": 15,
                    "count": 3,
                    "inconclusiveLimit": 2,
                }
            ],
        },
    }
    return body


def _status(cluster: Cluster) -> dict[str, Any]:
    return dict(cluster.deployment("tiny").get("status") or {})


def test_a_good_version_is_promoted_and_a_slow_one_rolled_back(
    cluster: Cluster, environment: Environment, gateway_url: str, client: Load
) -> None:
    if environment.prometheus_url is None:
        pytest.skip("no Prometheus scraping the serving pods (set E2E_PROMETHEUS_URL on a cluster)")
    body = _canary_deployment(environment)
    cluster.create_deployment(body)
    eventually(
        lambda: _status(cluster).get("phase") == "Serving",
        timeout=SERVE_TIMEOUT,
        interval=2,
        what="v1 serves",
    )
    eventually(
        lambda: httpx.get(f"{gateway_url}/v1/models", timeout=10).status_code == 200,
        timeout=120,
        what="route",
    )
    client.start()

    # A good v2: 50% once its group serves, judged by analysis, then promoted.
    versions = body["spec"]["versions"]
    cluster.patch_spec("tiny", {"versions": [*versions, {**versions[0], "name": "v2"}]})
    eventually(
        lambda: _status(cluster).get("canaryWeight") == 50, timeout=SERVE_TIMEOUT, interval=2, what="50%"
    )
    half_from = time.monotonic()
    eventually(
        lambda: _status(cluster).get("currentVersion") == "v2", timeout=600, interval=2, what="v2 promoted"
    )
    half_until = time.monotonic()
    status = _status(cluster)
    assert status["history"][-1]["outcome"] == "Promoted", status
    share, answered = client.share("v2", half_from + 5, half_until - 5)
    assert answered >= 20, answered
    assert 0.25 <= share <= 0.75, (share, answered)  # the route's 50%, measured at the client

    # A slow v3 (its requests wait 5 s before the engine): analysis fails, traffic goes back.
    slow = {**versions[0], "name": "v3", "faultInjection": {"delaySeconds": 5}}
    started = time.monotonic()
    cluster.patch_spec("tiny", {"versions": [*versions, {**versions[0], "name": "v2"}, slow]})

    def rolled_back() -> dict[str, Any]:
        status = _status(cluster)
        assert (status.get("rollout") or {}).get("phase") == "RolledBack", status.get("message")
        return status

    status = eventually(rolled_back, timeout=SERVE_TIMEOUT, interval=1, what="v3 rolled back")
    back_on_stable_s = time.monotonic() - started
    assert status["currentVersion"] == "v2"
    assert [(t["version"], t["weight"]) for t in status["traffic"] if t["weight"]] == [("v2", 100)]
    assert status["rollout"]["reason"] == "AnalysisFailed"
    assert "latency" in status["rollout"]["message"]
    degraded = cluster.condition("tiny", "Degraded")
    assert (degraded["status"], degraded["reason"]) == ("True", "AnalysisFailed")
    # The operator writes the status, then posts the pass's Events: the Event may trail the status.
    eventually(
        lambda: any(e.reason == "RolledBack" and e.type == "Warning" for e in cluster.events("tiny")),
        timeout=30,
        what="RolledBack Warning Event",
    )
    eventually(lambda: set(cluster.ray_services_by_version("tiny")) == {"v2"}, timeout=120, what="v3 removed")
    client.stop()
    time.sleep(1)
    assert client.failures == []
    print(
        f"\nrollout e2e: {len(client.answers)} answers, 0 failed; "
        f"bad version applied → 100% on stable in {back_on_stable_s:.0f} s"
    )
