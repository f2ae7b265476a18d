"""apply → RayService ready → an OpenAI completion through the serve Service → delete cleans up."""

from __future__ import annotations

from e2e_tests.conftest import Environment
from e2e_tests.support import Cluster, eventually, manifest

SERVE_TIMEOUT = 900  # a cold start loads Ray, vLLM and the model; two busy cores are slow


def test_tiny_model_is_served_through_the_operator(cluster: Cluster, environment: Environment) -> None:
    body = manifest(
        "tiny.yaml", MODEL_SOURCE=environment.model_source, SERVING_IMAGE=environment.serving_image
    )
    created = cluster.create_deployment(body)

    def ready() -> bool:
        condition = cluster.condition("tiny", "Ready")
        degraded = cluster.condition("tiny", "Degraded")
        assert degraded["status"] != "True", degraded["message"]
        return condition["status"] == "True"

    eventually(ready, timeout=SERVE_TIMEOUT, interval=2, what="Ready=True")
    status = cluster.deployment("tiny")["status"]
    assert status["observedGeneration"] == created["metadata"]["generation"]
    assert (status["currentVersion"], status["phase"]) == ("v1", "Serving")
    assert set(cluster.ray_services_by_version("tiny")) == {"v1"}
    ray_service = cluster.ray_service_of("tiny", "v1")["metadata"]["name"]

    base = cluster.service_base_url(f"{ray_service}-serve-svc")
    with cluster.http() as http:
        models = http.get(f"{base}/v1/models")
        assert models.status_code == 200, models.text
        assert [model["id"] for model in models.json()["data"]] == ["tiny"]
        answer = http.post(
            f"{base}/v1/completions",
            json={"model": "tiny", "prompt": "def add(a, b):", "max_tokens": 8, "temperature": 0},
        )
        assert answer.status_code == 200, answer.text
        completion = answer.json()
        assert completion["choices"][0]["text"]
        assert 0 < completion["usage"]["completion_tokens"] <= 8

    # The Event follows the status write that announced Ready.
    eventually(
        lambda: "Ready" in {event.reason for event in cluster.events("tiny")}, timeout=30, what="Ready Event"
    )
    cluster.delete_deployment("tiny")
    eventually(lambda: cluster.ray_service_names() == set(), timeout=120, what="RayServices deleted")
