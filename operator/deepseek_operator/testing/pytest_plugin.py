"""Pytest fixtures for the test environment (register with ``pytest_plugins = [...]`` in a conftest).

- ``apiserver`` (session): the running ``ApiServer``; ``apiserver.store`` etc. via ``apiserver.call``.
- ``kubeconfig`` (session): path of a kubeconfig for it; give it to any client unchanged.
- ``kubeconfig_env`` (function): ``$KUBECONFIG`` pointing at it, for code that loads the default
  kubeconfig (kopf's login, ``kubernetes.config.load_kube_config()``); restored afterwards.
- ``kopf_registry`` (function): a fresh default kopf registry for the test, so handlers loaded by
  one ``KopfRunner`` (their startup settings included) do not run in the next one.
- ``k8s_client`` (function): a ``kubernetes.client.ApiClient`` built from that kubeconfig.
- ``namespace`` (function): a fresh namespace per test, deleted afterwards.
- ``kuberay_crds`` (session): KubeRay v1.7.0's CRDs installed (skips when they cannot be found).
- ``kuberay`` (session): the KubeRay stand-in on a real embedded Ray Serve (slow: ~10 s to start),
  watching every namespace of ``apiserver``: like two KubeRays in one cluster, it must not run
  beside another stand-in on the same server unless their ``namespaces`` are disjoint.
- ``gateway_crds`` (session): the Gateway API v1 standard CRDs (vendored, ``testing/crds/gateway-api``)
  installed, with the ``deepseek-testing`` GatewayClass (``gateway.GATEWAY_CLASS``).
- ``gateway`` (session): the Gateway API stand-in (a real HAProxy) for that class, watching every
  namespace (skips without an HAProxy binary). A test creates a Gateway of class
  ``GATEWAY_CLASS`` and reaches it at ``wait_for_gateway_url(custom, ns, name)`` (both from
  ``deepseek_operator.testing.gateway``).
- ``prometheus`` (function): a real Prometheus (``prometheus.PrometheusServer``) with no targets
  yet, scraping every second; ``prometheus.set_targets([...])`` (skips, naming the install
  command, when the binary is missing).
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from deepseek_operator.testing.kuberay import KubeRayStandIn, find_kuberay_crds
from deepseek_operator.testing.server import ApiServer

if TYPE_CHECKING:
    from deepseek_operator.testing.gateway import GatewayStandIn
    from deepseek_operator.testing.prometheus import PrometheusServer

__all__ = [
    "apiserver",
    "gateway",
    "gateway_crds",
    "k8s_client",
    "kubeconfig",
    "kuberay",
    "kuberay_crds",
    "namespace",
    "prometheus",
]


@pytest.fixture(scope="session")
def apiserver() -> Iterator[ApiServer]:
    with ApiServer(bookmark_interval_s=0.2) as server:
        yield server


@pytest.fixture(scope="session")
def kubeconfig(apiserver: ApiServer, tmp_path_factory: pytest.TempPathFactory) -> Path:
    return apiserver.write_kubeconfig(tmp_path_factory.mktemp("kube") / "config")


@pytest.fixture
def kubeconfig_env(kubeconfig: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    from kubernetes.config import kube_config

    monkeypatch.setenv("KUBECONFIG", str(kubeconfig))
    # The client reads $KUBECONFIG once, at import; follow the variable for this test.
    monkeypatch.setattr(kube_config, "KUBE_CONFIG_DEFAULT_LOCATION", str(kubeconfig))
    return kubeconfig


@pytest.fixture
def kopf_registry() -> Iterator[Any]:
    import kopf
    from kopf._core.intents.registries import SmartOperatorRegistry  # what kopf builds by default

    previous = kopf.get_default_registry()
    registry = SmartOperatorRegistry()  # with kopf's login handlers, unlike a bare OperatorRegistry
    kopf.set_default_registry(registry)
    yield registry
    kopf.set_default_registry(previous)


@pytest.fixture
def k8s_client(kubeconfig: Path) -> Iterator[Any]:
    from kubernetes import config

    client = config.new_client_from_config(str(kubeconfig))  # type: ignore[no-untyped-call]
    yield client
    client.close()


@pytest.fixture
def namespace(k8s_client: Any) -> Iterator[str]:
    from kubernetes import client

    name = f"test-{uuid.uuid4().hex[:8]}"
    core: Any = client.CoreV1Api(k8s_client)
    core.create_namespace({"metadata": {"name": name}})
    yield name
    core.delete_namespace(name)


@pytest.fixture(scope="session")
def kuberay_crds(apiserver: ApiServer) -> list[str]:
    crds = find_kuberay_crds()
    if crds is None:
        pytest.skip("KubeRay CRDs not found: set KUBERAY_CRDS to shared/kuberay-crds/v1.7.0")
    return apiserver.install_crds(sorted(crds.glob("*.yaml")))


@pytest.fixture(scope="session")
def kuberay(kubeconfig: Path, kuberay_crds: list[str]) -> Iterator[KubeRayStandIn]:
    pytest.importorskip("ray.serve")
    from deepseek_operator.testing.serve_backend import RayServeBackend

    with RayServeBackend(num_cpus=2) as backend, KubeRayStandIn(kubeconfig, backend) as standin:
        yield standin


@pytest.fixture(scope="session")
def gateway_crds(apiserver: ApiServer, kubeconfig: Path) -> list[str]:
    from kubernetes import client, config

    from deepseek_operator.testing.gateway import gateway_class, install_gateway_crds

    names = install_gateway_crds(apiserver)
    api_client = config.new_client_from_config(str(kubeconfig))  # type: ignore[no-untyped-call]
    custom: Any = client.CustomObjectsApi(api_client)
    try:
        custom.create_cluster_custom_object(
            "gateway.networking.k8s.io", "v1", "gatewayclasses", gateway_class()
        )
    except client.ApiException as err:
        if err.status != 409:
            raise
    finally:
        api_client.close()
    return names


@pytest.fixture(scope="session")
def gateway(kubeconfig: Path, gateway_crds: list[str]) -> Iterator[GatewayStandIn]:
    from deepseek_operator.testing.gateway import GatewayStandIn
    from deepseek_serving.weighted_proxy import HaproxyNotFound, find_haproxy

    try:
        haproxy = find_haproxy()
    except HaproxyNotFound as err:
        pytest.skip(str(err))
    with GatewayStandIn(kubeconfig, haproxy=haproxy, resync_s=0.5) as standin:
        yield standin


@pytest.fixture
def prometheus() -> Iterator[PrometheusServer]:
    from deepseek_operator.testing.prometheus import PROMETHEUS_INSTALL, PrometheusServer, find_prometheus

    if find_prometheus() is None:
        pytest.skip(f"prometheus is not installed: {PROMETHEUS_INSTALL}")
    with PrometheusServer() as server:
        yield server
