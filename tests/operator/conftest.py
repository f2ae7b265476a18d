"""The operator running for real (kopf) against the test API server and the KubeRay stand-in.

The stand-in's Serve backend here is `InstantServe`: it reports every application RUNNING at once
(or FAILED, when a test says so). It replaces Ray and vLLM, which are the environment, not the
code under test; `e2e_tests/` serve the tiny model for real.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import Any, TypeVar

import pytest
from kopf.testing import KopfRunner

from deepseek_operator.testing.kuberay import AppState, KubeRayStandIn
from deepseek_operator.testing.server import ApiServer

ROOT = Path(__file__).parents[2]
T = TypeVar("T")


class InstantServe:
    """A Serve backend whose applications are RUNNING as soon as they are deployed."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.configs: dict[str, Mapping[str, Any]] = {}
        self.failing: set[str] = set()
        """RayService keys (`ns/name`) whose applications report DEPLOY_FAILED."""

    def deploy(self, key: str, serve_config: Mapping[str, Any]) -> None:
        with self._lock:
            self.configs[key] = serve_config

    def delete(self, key: str) -> None:
        with self._lock:
            self.configs.pop(key, None)

    def deployed(self) -> set[str]:
        with self._lock:
            return set(self.configs)

    def url(self, key: str) -> str:
        return f"http://127.0.0.1:9/{key}"  # nothing listens: these tests never send requests

    def status(self, key: str) -> dict[str, AppState]:
        with self._lock:
            config = self.configs.get(key)
        if not config:
            return {}
        state = (
            AppState("DEPLOY_FAILED", "engine failed to start")
            if key in self.failing
            else AppState("RUNNING")
        )
        return {str(app.get("name")): state for app in config.get("applications") or []}


@pytest.fixture(scope="session")
def project_crds(apiserver: ApiServer, kuberay_crds: list[str]) -> list[str]:
    return apiserver.install_crds(sorted((ROOT / "crds").glob("*.yaml")))


@pytest.fixture(scope="session")
def instant_serve(kubeconfig: Path, project_crds: list[str]) -> Iterator[InstantServe]:
    backend = InstantServe()
    with KubeRayStandIn(kubeconfig, backend, resync_s=0.2):
        yield backend


OPERATOR_ENV = {
    "DSD_RECONCILE__RESYNC_SECONDS": "2",
    "DSD_SERVER__METRICS_PORT": "0",
    "DSD_RECONCILE__BACKOFF_INITIAL_SECONDS": "0.2",
}


@pytest.fixture
def operator(
    kubeconfig_env: Path, instant_serve: InstantServe, monkeypatch: pytest.MonkeyPatch
) -> Callable[[], KopfRunner]:
    """A factory of running operators (`with operator(): ...`), kopf as `kopf run` starts it."""
    for name, value in OPERATOR_ENV.items():
        monkeypatch.setenv(name, value)

    def start() -> KopfRunner:
        return KopfRunner(
            ["run", "--standalone", "--all-namespaces", "-m", "deepseek_operator.handlers"], timeout=60
        )

    return start


def eventually(check: Callable[[], T], *, timeout: float = 30.0, interval: float = 0.1) -> T:
    """Poll `check` until it returns a truthy value without raising; its last error otherwise."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            result = check()
            if result:
                return result
            error: BaseException | None = AssertionError(f"{check.__name__} returned {result!r}")
        except (AssertionError, KeyError, LookupError) as failure:
            error = failure
        if time.monotonic() > deadline:
            raise AssertionError(f"not true within {timeout}s") from error
        time.sleep(interval)
