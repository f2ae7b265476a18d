"""The GitOps examples (`examples/gitops/`): what Flux and Argo CD would read there is consistent.

- the kustomizations build (`kubectl kustomize`, kustomize itself) into DeepSeekDeployments that
  `dsd validate` accepts and `dsd render` renders;
- the Flux Kustomizations and the Argo CD Applications point at paths of this repository that
  exist, in the order the operator needs (operator first);
- the chart values in the HelmRelease and the Application pass the chart's values.schema.json,
  and the real Helm engine installs the chart with them;
- the Flux health expressions parse and name our kind.
"""

from __future__ import annotations

import asyncio
import json
import shutil
import subprocess
import uuid
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml
from typer.testing import CliRunner

from deepseek_operator.api import constants
from deepseek_operator.cli import app
from deepseek_operator.testing.server import ApiServer
from tests.chart.rules import STUB_CRDS
from tests.gitops.flux import health_check_exprs

ROOT = Path(__file__).parents[2]
GITOPS = ROOT / "examples" / "gitops"
CHART = ROOT / "charts" / "deepseek-operator"
KUBECTL = shutil.which("kubectl")
needs_kubectl = pytest.mark.skipif(KUBECTL is None, reason="kubectl (kustomize) is not installed")


def _documents(path: Path) -> list[dict[str, Any]]:
    return [doc for doc in yaml.safe_load_all(path.read_text()) if doc]


def _all_documents() -> dict[tuple[str, str], dict[str, Any]]:
    found = {}
    for path in sorted(GITOPS.rglob("*.yaml")):
        if path.parent.name == "ci":
            continue
        for document in _documents(path):
            if "metadata" in document:
                found[(document["kind"], document["metadata"]["name"])] = document
    return found


def _kustomize(directory: Path) -> list[dict[str, Any]]:
    assert KUBECTL is not None
    built = subprocess.run(
        [KUBECTL, "kustomize", str(directory)], capture_output=True, text=True, timeout=60, check=False
    )
    assert built.returncode == 0, built.stderr
    return [doc for doc in yaml.safe_load_all(built.stdout) if doc]


@needs_kubectl
@pytest.mark.parametrize("overlay", ["base", "production"])
def test_the_deployment_kustomizations_build_valid_deployments(overlay: str, tmp_path: Path) -> None:
    documents = _kustomize(GITOPS / "deployments" / overlay)
    deployments = [doc for doc in documents if doc["kind"] == constants.KIND]
    assert [doc["metadata"]["namespace"] for doc in deployments] == ["llm"]
    (tmp_path / "built.yaml").write_text(yaml.safe_dump_all(documents))
    validated = CliRunner().invoke(app, ["validate", str(tmp_path / "built.yaml")])
    assert validated.exit_code == 0, validated.output
    rendered = CliRunner().invoke(app, ["render", str(tmp_path / "built.yaml"), "-o", "json"])
    assert rendered.exit_code == 0, rendered.output
    kinds = sorted(item["kind"] for item in json.loads(rendered.output)["items"])
    assert "RayService" in kinds
    groups = deployments[0]["spec"].get("groups")
    assert groups == (2 if overlay == "production" else None), "the overlay raises the floor of groups"


def test_flux_applies_the_operator_then_the_deployments() -> None:
    documents = _all_documents()
    operator = documents[("Kustomization", "deepseek-operator")]
    deployments = documents[("Kustomization", "deepseek-deployments")]
    assert deployments["spec"]["dependsOn"] == [{"name": "deepseek-operator"}]
    for kustomization in (operator, deployments):
        assert kustomization["apiVersion"] == "kustomize.toolkit.fluxcd.io/v1"
        path = ROOT / kustomization["spec"]["path"]
        assert (path / "kustomization.yaml").exists(), path
        assert kustomization["spec"]["wait"] is True
    # The operator's path holds the chart source and the HelmRelease, nothing else.
    listed = yaml.safe_load((ROOT / operator["spec"]["path"] / "kustomization.yaml").read_text())["resources"]
    assert {doc["kind"] for name in listed for doc in _documents(ROOT / operator["spec"]["path"] / name)} == {
        "GitRepository",
        "HelmRelease",
        "Namespace",
    }
    release = documents[("HelmRelease", "deepseek-operator")]
    source = documents[("GitRepository", "deepseek-operator")]
    chart = release["spec"]["chart"]["spec"]
    assert chart["sourceRef"] == {
        "kind": "GitRepository",
        "name": "deepseek-operator",
        "namespace": "flux-system",
    }
    assert source["metadata"]["namespace"] == "flux-system"
    assert (ROOT / chart["chart"] / "Chart.yaml").exists()
    assert release["spec"]["install"]["crds"] == release["spec"]["upgrade"]["crds"] == "CreateReplace"


def test_the_flux_health_expressions_cover_our_kind() -> None:
    (deployments,) = [
        doc
        for doc in _documents(GITOPS / "flux" / "kustomizations.yaml")
        if doc["spec"].get("healthCheckExprs")
    ]
    (exprs,) = deployments["spec"]["healthCheckExprs"]
    assert (exprs["apiVersion"], exprs["kind"]) == (constants.API_VERSION, constants.KIND)
    assert set(health_check_exprs()) == {"inProgress", "failed", "current"}


def test_argo_cd_syncs_the_operator_before_the_deployments() -> None:
    documents = _all_documents()
    operator = documents[("Application", "deepseek-operator")]
    deployments = documents[("Application", "deepseek-deployments")]
    wave = "argocd.argoproj.io/sync-wave"
    assert int(operator["metadata"]["annotations"][wave]) < int(deployments["metadata"]["annotations"][wave])
    assert (ROOT / operator["spec"]["source"]["path"] / "Chart.yaml").exists()
    assert (ROOT / deployments["spec"]["source"]["path"] / "kustomization.yaml").exists()
    assert "ServerSideApply=true" in operator["spec"]["syncPolicy"]["syncOptions"]
    (ignored,) = deployments["spec"]["ignoreDifferences"]
    assert (ignored["group"], ignored["kind"], ignored["jsonPointers"]) == (
        constants.GROUP,
        constants.KIND,
        ["/spec/groups"],
    ), "the scale subresource's field is left to kubectl scale / an HPA"


def _chart_values() -> dict[str, dict[str, Any]]:
    documents = _all_documents()
    return {
        "flux HelmRelease": documents[("HelmRelease", "deepseek-operator")]["spec"]["values"],
        "Argo CD Application": documents[("Application", "deepseek-operator")]["spec"]["source"]["helm"][
            "valuesObject"
        ],
    }


@pytest.mark.parametrize("where", ["flux HelmRelease", "Argo CD Application"])
def test_chart_values_pass_the_charts_schema_and_install(where: str, tmp_path: Path) -> None:
    helm = pytest.importorskip(
        "helm_sdkpy", reason="install helm-sdkpy (see pyproject's testing extra notes)"
    )
    values = _chart_values()[where]
    jsonschema.Draft7Validator(json.loads((CHART / "values.schema.json").read_text())).validate(values)
    with ApiServer() as server:
        (tmp_path / "crds.yaml").write_text(yaml.safe_dump_all(STUB_CRDS))
        server.install_crds([tmp_path / "crds.yaml"])
        config = helm.Configuration(
            namespace="default", kubeconfig=str(server.write_kubeconfig(tmp_path / "kc"))
        )
        release = asyncio.run(
            helm.Install(config).run(f"gitops-{uuid.uuid4().hex[:6]}", str(CHART), values=values, wait=False)
        )
    kinds = {doc["kind"] for doc in yaml.safe_load_all(release["manifest"]) if doc}
    assert {"ServiceMonitor", "PrometheusRule", "ConfigMap", "Deployment"} <= kinds
