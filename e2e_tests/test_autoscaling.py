"""Queue-depth autoscaling end to end: a burst adds a group, the quiet after it removes one.

Real Ray Serve runs our policy over real vLLM engines; the operator only observes. A client
sending one short request a second throughout (the witness) must see no failure, also while the
second group drains and stops; the status, `kubectl get dsd`'s columns and the Events (with the
policy's reason) follow the group count. When a Prometheus scrapes the engines, the test also
measures how long after the burst started the second group answered its first request.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from e2e_tests.conftest import Environment
from e2e_tests.support import (
    BURST_CLIENTS,
    GROUP,
    PLURAL,
    VERSION,
    Cluster,
    Load,
    eventually,
    manifest,
    one_to_two_groups,
)

SERVE_TIMEOUT = 900  # a cold start loads Ray, vLLM and the model; two busy cores are slow


@pytest.fixture
def witness(cluster: Cluster) -> Iterator[list[Load]]:
    loads: list[Load] = []
    yield loads
    for load in loads:
        load.stop()


def _status(cluster: Cluster) -> dict[str, Any]:
    return dict(cluster.deployment("tiny").get("status") or {})


def _printed_columns(cluster: Cluster) -> dict[str, Any]:
    """The row `kubectl get dsd tiny` prints (the API server's Table of the printer columns)."""
    host = cluster.api_client.configuration.host.rstrip("/")
    url = f"{host}/apis/{GROUP}/{VERSION}/namespaces/{cluster.namespace}/{PLURAL}/tiny"
    with cluster.http() as http:
        table = http.get(url, headers={"Accept": "application/json;as=Table;v=1;g=meta.k8s.io"}).json()
    names = [column["name"] for column in table["columnDefinitions"]]
    return dict(zip(names, table["rows"][0]["cells"], strict=True))


def _replicas_answering(prometheus: str) -> int:
    """Engine replicas that finished a request in the last 30 s (vLLM's counter, per Serve replica)."""
    query = "count(sum by (ReplicaId) (increase(ray_vllm_request_success_total[30s])) > 0)"
    result = httpx.get(f"{prometheus}/api/v1/query", params={"query": query}, timeout=10).json()
    samples = result["data"]["result"]
    return int(float(samples[0]["value"][1])) if samples else 0


def test_a_burst_adds_a_group_and_the_quiet_removes_it_without_a_failed_request(
    cluster: Cluster, environment: Environment, witness: list[Load]
) -> None:
    body = manifest(
        "tiny.yaml", MODEL_SOURCE=environment.model_source, SERVING_IMAGE=environment.serving_image
    )
    spec = body["spec"]
    del spec["groups"]
    spec["autoscaling"] = one_to_two_groups()
    # The group that leaves drains its longest request before it stops.
    spec["serving"]["limits"]["requestTimeoutSeconds"] = 30
    cluster.create_deployment(body)
    eventually(
        lambda: _status(cluster).get("phase") == "Serving", timeout=SERVE_TIMEOUT, interval=2, what="serving"
    )
    assert (_status(cluster)["readyGroups"], _status(cluster)["desiredGroups"]) == (1, 1)
    ray_service = cluster.ray_service_of("tiny", "v1")["metadata"]["name"]
    url = cluster.service_base_url(f"{ray_service}-serve-svc")
    with cluster.http() as http:
        headers = dict(http.headers)
    witness.append(Load(url, clients=1, max_tokens=4, pause_s=1.0, headers=headers).start())

    # The burst: more than one group is planned to carry, in long generations.
    burst = Load(url, clients=BURST_CLIENTS, max_tokens=64, pause_s=0.0, headers=headers)
    witness.append(burst)
    burst_started = time.monotonic()
    burst.start()
    second_answering_s = None
    if environment.prometheus_url is not None:
        eventually(
            lambda: _replicas_answering(environment.prometheus_url or "") >= 2,
            timeout=SERVE_TIMEOUT,
            interval=1,
            what="the second group answering",
        )
        second_answering_s = time.monotonic() - burst_started
    eventually(
        lambda: _status(cluster).get("readyGroups") == 2, timeout=SERVE_TIMEOUT, interval=2, what="2 groups"
    )
    two_groups_s = time.monotonic() - burst_started
    columns = _printed_columns(cluster)
    assert (columns["Ready"], columns["Desired"], columns["Phase"]) == (2, 2, "Serving"), columns
    burst.stop()
    print(
        f"\nburst → second group answering: "
        f"{'n/a (no Prometheus)' if second_answering_s is None else f'{second_answering_s:.0f} s'}; "
        f"→ status readyGroups 2: {two_groups_s:.0f} s; burst answered {burst.answered}"
    )

    # The quiet: the witness alone fits one group; after the delay the second drains and leaves.
    quiet_started = time.monotonic()
    eventually(
        lambda: _status(cluster).get("readyGroups") == 1 and _status(cluster).get("desiredGroups") == 1,
        timeout=600,
        interval=2,
        what="back to 1 group",
    )
    print(f"quiet → status back to 1 group: {time.monotonic() - quiet_started:.0f} s")
    time.sleep(10)  # requests keep flowing after the group left
    witness[0].stop()
    columns = _printed_columns(cluster)
    assert (columns["Ready"], columns["Desired"]) == (1, 1), columns

    assert burst.failures == [], burst.failures[:5]
    assert witness[0].failures == [], witness[0].failures[:5]
    assert witness[0].answered >= 30, witness[0].answered
    # Every change of the group count is an Event with the policy's reason, read from the Serve
    # controller's log; the status keeps the last one.
    scaled = [event.message for event in cluster.events("tiny") if event.reason == "Scaled"]
    assert any("1 → 2 group(s) (ScaleUp at queue depth" in message for message in scaled), scaled
    assert any("2 → 1 group(s) (ScaleDown at queue depth" in message for message in scaled), scaled
    assert _status(cluster)["traffic"][0]["lastScaling"]["rule"] == "ScaleDown"
