"""What the e2e tests use on any cluster: a client, waits, and the way to reach a Service."""

from __future__ import annotations

import os
import string
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import httpx
import yaml
from kubernetes import client

GROUP, VERSION, PLURAL = "deepseek.serving.dev", "v1alpha1", "deepseekdeployments"
URL_ANNOTATION = "testing.deepseek.serving.dev/url"
MANIFESTS = Path(__file__).parent / "manifests"
T = TypeVar("T")


def eventually(check: Callable[[], T], *, timeout: float, interval: float = 0.5, what: str = "") -> T:
    """Poll `check` until it returns something truthy without raising; fail with its last error."""
    deadline = time.monotonic() + timeout
    last: BaseException | None = None
    while time.monotonic() < deadline:
        try:
            result = check()
            if result:
                return result
        except (AssertionError, LookupError, client.ApiException, httpx.HTTPError) as error:
            last = error
        time.sleep(interval)
    raise AssertionError(f"{what or check.__name__} not true within {timeout:.0f}s") from last


def manifest(name: str, **values: str) -> dict[str, Any]:
    """A manifest from `manifests/`, with `${NAME}` placeholders filled from `values` and the env."""
    text = string.Template((MANIFESTS / name).read_text()).substitute({**os.environ, **values})
    document: dict[str, Any] = yaml.safe_load(text)
    return document


class Cluster:
    """The e2e tests' view of one namespace of a cluster."""

    def __init__(self, api_client: Any, namespace: str) -> None:
        self.api_client = api_client
        self.custom: Any = client.CustomObjectsApi(api_client)
        self.core: Any = client.CoreV1Api(api_client)
        self.namespace = namespace

    def create_deployment(self, body: dict[str, Any]) -> dict[str, Any]:
        created: dict[str, Any] = self.custom.create_namespaced_custom_object(
            GROUP, VERSION, self.namespace, PLURAL, body
        )
        return created

    def deployment(self, name: str) -> dict[str, Any]:
        found: dict[str, Any] = self.custom.get_namespaced_custom_object(
            GROUP, VERSION, self.namespace, PLURAL, name
        )
        return found

    def patch_spec(self, name: str, spec: dict[str, Any]) -> None:
        self.custom.patch_namespaced_custom_object(
            GROUP, VERSION, self.namespace, PLURAL, name, {"spec": spec}
        )

    def delete_deployment(self, name: str) -> None:
        self.custom.delete_namespaced_custom_object(GROUP, VERSION, self.namespace, PLURAL, name)

    def condition(self, name: str, kind: str) -> dict[str, Any]:
        conditions = (self.deployment(name).get("status") or {}).get("conditions") or []
        found = next((condition for condition in conditions if condition["type"] == kind), None)
        if found is None:
            raise LookupError(f"{name} has no {kind} condition yet")
        return found

    def ray_services(self) -> dict[str, dict[str, Any]]:
        listed = self.custom.list_namespaced_custom_object("ray.io", "v1", self.namespace, "rayservices")
        return {item["metadata"]["name"]: item for item in listed["items"]}

    def ray_service_names(self) -> set[str]:
        return set(self.ray_services())

    def ray_services_by_version(self, deployment: str) -> dict[str, dict[str, Any]]:
        """The deployment's RayServices by version name (the operator names them by revision)."""
        found = {}
        for item in self.ray_services().values():
            labels = item["metadata"].get("labels") or {}
            if labels.get(f"{GROUP}/deployment") == deployment:
                found[labels[f"{GROUP}/version"]] = item
        return found

    def ray_service_of(self, deployment: str, version: str) -> dict[str, Any]:
        return self.ray_services_by_version(deployment)[version]

    def events(self, name: str) -> list[Any]:
        return [
            e for e in self.core.list_namespaced_event(self.namespace).items if e.involved_object.name == name
        ]

    def service_base_url(self, service: str, port: int = 8000) -> str:
        """How this test process reaches a Service: the test environment's published URL, or the
        API server's service proxy on a real cluster."""
        found = self.core.read_namespaced_service(service, self.namespace)
        published = (found.metadata.annotations or {}).get(URL_ANNOTATION)
        if published:
            return str(published).rstrip("/")
        host = self.api_client.configuration.host.rstrip("/")
        return f"{host}/api/v1/namespaces/{self.namespace}/services/{service}:{port}/proxy"

    def http(self) -> httpx.Client:
        """An HTTP client carrying the kubeconfig's credentials (the service proxy needs them)."""
        configuration = self.api_client.configuration
        headers = {}
        token = configuration.api_key.get("authorization") or configuration.api_key.get("BearerToken")
        if token:
            headers["Authorization"] = token if token.startswith("Bearer") else f"Bearer {token}"
        verify: Any = configuration.ssl_ca_cert or configuration.verify_ssl
        cert = (configuration.cert_file, configuration.key_file) if configuration.cert_file else None
        return httpx.Client(headers=headers, verify=verify, cert=cert, timeout=120)


BURST_CLIENTS = 12
"""Clients of the burst, each always waiting for a long generation."""


def one_to_two_groups() -> dict[str, Any]:
    """`spec.autoscaling` of the burst tests: 1..2 groups that react within a minute.

    At 16 requests per group the witness alone (one short request a second, a level of 1-2 in
    flight on two busy cores) fits one group even with the two fluctuation bands and the headroom
    a scale-down asks for (1.1 L + 2 x 3 sqrt(L) <= 16 holds up to L = 3.8), while the burst's
    twelve need two (12 x 1.1 + 3 sqrt(12) > 16). At 8 the witness had to stay at L <= 1.2: on the
    clean-clone CI machine it did not, and the second group never left.
    """
    return {
        "minGroups": 1,
        "maxGroups": 2,
        "targetQueueDepthPerGroup": 16,
        "coldStartSeconds": 60,
        "upscaleDelaySeconds": 0,
        "downscaleDelaySeconds": 30,
    }


class Load:
    """Completions in a loop from `clients` threads until stopped: every answer (when, HTTP status,
    the version that answered) and every failure is kept."""

    def __init__(
        self,
        url: str,
        *,
        clients: int = 1,
        max_tokens: int = 4,
        pause_s: float = 0.2,
        headers: dict[str, str] | None = None,
    ):
        """`url`: the OpenAI server's base URL (without `/v1`)."""
        self.url, self.clients, self.max_tokens, self.pause_s = url, clients, max_tokens, pause_s
        self.headers = headers or {}
        self.answers: list[tuple[float, int, str]] = []
        """(monotonic time, HTTP status, the `x-deepseek-version` that answered)."""
        self.failures: list[str] = []
        """Every error and every answer other than 200, in words."""
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []

    @property
    def answered(self) -> int:
        return sum(status == 200 for _, status, _ in self.answers)

    def share(self, version: str, since: float, until: float) -> tuple[float, int]:
        """(fraction of the answers between `since` and `until` that `version` gave, their count)."""
        window = [answered for at, _, answered in self.answers if since <= at <= until]
        return (sum(answered == version for answered in window) / len(window) if window else 0.0), len(window)

    def start(self) -> Load:
        self._threads = [threading.Thread(target=self._run, daemon=True) for _ in range(self.clients)]
        for thread in self._threads:
            thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join(timeout=180)

    def _run(self) -> None:
        body = {"model": "tiny", "prompt": "def f(x):", "max_tokens": self.max_tokens, "ignore_eos": True}
        with httpx.Client(timeout=120, headers=self.headers) as http:
            while not self._stop.is_set():
                try:
                    answer = http.post(f"{self.url}/v1/completions", json=body)
                    version = answer.headers.get("x-deepseek-version", "")
                    self.answers.append((time.monotonic(), answer.status_code, version))
                    if answer.status_code != 200:
                        self.failures.append(f"HTTP {answer.status_code} from {version}: {answer.text[:200]}")
                except httpx.HTTPError as error:
                    self.failures.append(repr(error))
                self._stop.wait(self.pause_s)
