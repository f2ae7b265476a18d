"""An invalid resource never reaches KubeRay: refused at admission, or Degraded with the field path."""

from __future__ import annotations

from kubernetes import client

from e2e_tests.conftest import Environment
from e2e_tests.support import Cluster, eventually, manifest


def test_invalid_parallelism_is_refused_with_its_field_path(
    cluster: Cluster, environment: Environment
) -> None:
    body = manifest(
        "tiny.yaml", MODEL_SOURCE=environment.model_source, SERVING_IMAGE=environment.serving_image
    )
    body["spec"]["parallelism"]["tensorParallelSize"] = 3
    expected = "spec.parallelism.tensorParallelSize: 3 does not divide num_attention_heads=4 of deepseek-tiny"
    try:
        cluster.create_deployment(body)
    except client.ApiException as error:
        refused: client.ApiException | None = error
    else:
        refused = None
    if refused is not None:  # a cluster with the admission webhook installed
        assert refused.status in (400, 422)
        assert expected in str(refused.body)
        return

    def degraded() -> dict[str, str]:
        condition = cluster.condition("tiny", "Degraded")
        assert (condition["status"], condition["reason"]) == ("True", "ValidationFailed"), condition
        return condition

    condition = eventually(degraded, timeout=60, what="Degraded=True")
    assert expected in condition["message"]
    # The Event is posted after the status is written.
    eventually(lambda: [e.type for e in cluster.events("tiny")] == ["Warning"], timeout=30, what="a Warning")
    assert cluster.ray_service_names() == set()
