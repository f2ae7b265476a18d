"""A cluster of one's own for tests that drive `dsd operator` as a user does: the test API server,
the KubeRay stand-in with the `InstantServe` backend (applications RUNNING at once, or as its
hooks say), and the operator as its own process (`testing.process.OperatorProcess`).

Its own API server, not the session one of `tests/operator`: two KubeRay stand-ins must not
watch the same server, and these tests may run in the same session as those.
"""

from __future__ import annotations

import contextlib
import json
import tempfile
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml
from kubernetes import config

from deepseek_operator.testing.kuberay import KubeRayStandIn, find_kuberay_crds
from deepseek_operator.testing.process import OperatorProcess
from deepseek_operator.testing.server import ApiServer
from tests.operator.conftest import InstantServe

ROOT = Path(__file__).parents[2]

OPERATOR_ENV = {
    "DSD_RECONCILE__RESYNC_SECONDS": "300",
    "DSD_RECONCILE__SETTLE_SECONDS": "0.5",
    "DSD_RAY__SERVE_TTL_SECONDS": "0.5",
}


@dataclass
class OperatorEnvironment:
    server: ApiServer
    kubeconfig: Path
    instant_serve: InstantServe
    operator: OperatorProcess
    api_client: Any


@contextlib.contextmanager
def operator_environment(
    workdir: Path, env: Mapping[str, str] | None = None
) -> Iterator[OperatorEnvironment]:
    """The API server (KubeRay's and our CRDs installed), the stand-in and a running operator."""
    crds = find_kuberay_crds()
    if crds is None:
        pytest.skip("KubeRay CRDs not found: set KUBERAY_CRDS to shared/kuberay-crds/v1.7.0")
    with ApiServer(bookmark_interval_s=0.2) as server:
        kubeconfig = server.write_kubeconfig(workdir / "kubeconfig")
        server.install_crds([*sorted(crds.glob("*.yaml")), *sorted((ROOT / "crds").glob("*.yaml"))])
        backend = InstantServe()
        with KubeRayStandIn(kubeconfig, backend, resync_s=0.2) as standin:
            settings = {
                **OPERATOR_ENV,
                "DSD_RAY__DASHBOARD_URL_TEMPLATE": standin.dashboard_url_template,
                **(env or {}),
            }
            with OperatorProcess(kubeconfig, workdir / "operator.log", env=settings, standalone=True) as op:
                api_client = config.new_client_from_config(str(kubeconfig))  # type: ignore[no-untyped-call]
                try:
                    yield OperatorEnvironment(server, kubeconfig, backend, op, api_client)
                finally:
                    api_client.close()


def ray_service_name(document: Mapping[str, Any]) -> str:
    """The RayService name the operator gives the desired version (what `dsd render` prints)."""
    from typer.testing import CliRunner

    from deepseek_operator.cli import app

    with tempfile.TemporaryDirectory() as directory:
        path = Path(directory, "deployment.yaml")
        path.write_text(yaml.safe_dump(dict(document)))
        rendered = CliRunner().invoke(app, ["render", str(path), "-o", "json"])
    assert rendered.exit_code == 0, rendered.output
    (ray_service,) = [item for item in json.loads(rendered.output)["items"] if item["kind"] == "RayService"]
    return str(ray_service["metadata"]["name"])
