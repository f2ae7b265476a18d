"""The e2e suite: one DeepSeekDeployment from `kubectl apply` to an answered OpenAI request.

With `E2E_KUBECONFIG` set, the suite runs against that cluster as it is: KubeRay and the operator
must already run there (see `kind/README.md`), and `E2E_MODEL_SOURCE` / `E2E_SERVING_IMAGE` say
where the tiny model and the serving image are; the rollout tests also need a Gateway API
implementation (`E2E_GATEWAY_CLASS`) and a Prometheus scraping the serving pods
(`E2E_PROMETHEUS_URL`). Without it (CI, a laptop), the suite starts the local test environment
itself: the test API server, the KubeRay stand-in serving on an embedded Ray with real Ray Serve
and vLLM, the Gateway stand-in (a real HAProxy), a real Prometheus scraping that Ray, and
`dsd operator` as its own process. The tests are the same.
"""

from __future__ import annotations

import contextlib
import os
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from kubernetes import client, config

from e2e_tests.support import Cluster

ROOT = Path(__file__).parents[1]


@dataclass(frozen=True)
class Environment:
    kubeconfig: Path
    model_source: str
    serving_image: str
    gateway_class: str | None = None
    """GatewayClass the rollout tests' Gateway uses (None: no Gateway API implementation)."""
    prometheus_url: str | None = None
    """A Prometheus scraping the serving metrics, for canary analysis (None: none)."""
    operator_metrics_url: str | None = None
    """The operator's own metrics endpoint, when the suite runs it."""


@pytest.fixture(scope="session")
def environment(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Environment]:
    existing = os.environ.get("E2E_KUBECONFIG")
    if existing:
        yield Environment(
            kubeconfig=Path(existing),
            model_source=os.environ.get("E2E_MODEL_SOURCE", "file:///models/deepseek-tiny"),
            serving_image=os.environ.get("E2E_SERVING_IMAGE", "deepseek-serving:e2e"),
            gateway_class=os.environ.get("E2E_GATEWAY_CLASS"),
            prometheus_url=os.environ.get("E2E_PROMETHEUS_URL"),
        )
        return
    yield from _local_environment(tmp_path_factory.mktemp("e2e"))


def _local_environment(workdir: Path) -> Iterator[Environment]:
    pytest.importorskip("vllm", reason="the local environment serves the tiny model with vLLM (extra: cpu)")
    from deepseek_operator.testing.gateway import (
        GATEWAY_CLASS,
        GatewayStandIn,
        gateway_class,
        install_gateway_crds,
    )
    from deepseek_operator.testing.kuberay import KubeRayStandIn, find_kuberay_crds
    from deepseek_operator.testing.process import OperatorProcess, free_port
    from deepseek_operator.testing.prometheus import PrometheusServer, ScrapeTarget, find_prometheus
    from deepseek_operator.testing.serve_backend import RayServeBackend
    from deepseek_operator.testing.server import ApiServer
    from deepseek_serving.tiny_model import build_tiny_model

    model = build_tiny_model(workdir / "deepseek-tiny")
    kuberay_crds = find_kuberay_crds()
    if kuberay_crds is None:
        pytest.skip("KubeRay's CRDs were not found (shared/kuberay-crds/v1.7.0 or $KUBERAY_CRDS)")
    metrics_port = free_port()
    with ApiServer() as server:
        kubeconfig = server.write_kubeconfig(workdir / "kubeconfig")
        server.install_crds([*sorted(kuberay_crds.glob("*.yaml")), *sorted((ROOT / "crds").glob("*.yaml"))])
        install_gateway_crds(server)
        with (
            RayServeBackend(num_cpus=2) as backend,
            KubeRayStandIn(kubeconfig, backend) as kuberay,
            GatewayStandIn(kubeconfig),
            PrometheusServer(
                [
                    ScrapeTarget(backend.metrics_url, {"job": "ray"}),
                    ScrapeTarget(f"http://127.0.0.1:{metrics_port}/metrics", {"job": "operator"}),
                ]
            )
            if find_prometheus()
            else _absent() as prometheus,
            OperatorProcess(
                kubeconfig,
                workdir / "operator.log",
                standalone=True,
                env={
                    "DSD_RAY__DASHBOARD_URL_TEMPLATE": kuberay.dashboard_url_template,
                    "DSD_SERVER__METRICS_PORT": str(metrics_port),
                    # One Ray serves every namespace here: its metrics carry no namespace label.
                    "DSD_ANALYSIS__NAMESPACE_LABEL": "",
                },
            ),
        ):
            api = config.new_client_from_config(str(kubeconfig))  # type: ignore[no-untyped-call]
            client.CustomObjectsApi(api).create_cluster_custom_object(
                "gateway.networking.k8s.io", "v1", "gatewayclasses", gateway_class()
            )
            api.close()
            yield Environment(
                kubeconfig,
                f"file://{model}",
                "unused-by-the-local-stand-in",
                gateway_class=GATEWAY_CLASS,
                prometheus_url=prometheus.url if prometheus is not None else None,
                operator_metrics_url=f"http://127.0.0.1:{metrics_port}/metrics",
            )


@contextlib.contextmanager
def _absent() -> Iterator[None]:
    yield None


@pytest.fixture(scope="session")
def api_client(environment: Environment) -> Iterator[client.ApiClient]:
    api = config.new_client_from_config(str(environment.kubeconfig))  # type: ignore[no-untyped-call]
    yield api
    api.close()


@pytest.fixture
def cluster(api_client: client.ApiClient) -> Iterator[Cluster]:
    """A fresh namespace per test, deleted afterwards (with everything in it)."""
    name = f"e2e-{uuid.uuid4().hex[:8]}"
    core = client.CoreV1Api(api_client)
    core.create_namespace({"metadata": {"name": name}})
    yield Cluster(api_client, name)
    core.delete_namespace(name)
