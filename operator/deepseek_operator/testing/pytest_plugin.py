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
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from deepseek_operator.testing.kuberay import KubeRayStandIn, find_kuberay_crds
from deepseek_operator.testing.server import ApiServer

__all__ = ["apiserver", "k8s_client", "kubeconfig", "kuberay", "kuberay_crds", "namespace"]


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
