"""The project's generated CRDs (crds/) against the test API server: a real server must accept
them (structural, CEL rules compile) and the examples must validate against them."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.testing.conftest import Http

ROOT = Path(__file__).resolve().parents[2]
CRDS = sorted((ROOT / "crds").glob("*.yaml"))
EXAMPLES = sorted((ROOT / "examples").glob("*.yaml"))


@pytest.fixture(scope="module")
def project_crds(http: Http) -> list[dict[str, Any]]:
    if not CRDS:
        pytest.skip("crds/ has no generated CRDs yet")
    installed = []
    for path in CRDS:
        for crd in yaml.safe_load_all(path.read_text()):
            if crd.get("kind") != "CustomResourceDefinition":
                continue  # crds/rbac.yaml: the operator's ClusterRole
            response = http.request("POST", "/apis/apiextensions.k8s.io/v1/customresourcedefinitions", crd)
            assert response.status_code in (201, 409), response.text
            installed.append(crd)
    return installed


def test_project_crds_are_established(http: Http, project_crds: list[dict[str, Any]]) -> None:
    for crd in project_crds:
        stored = http.ok(
            "GET", f"/apis/apiextensions.k8s.io/v1/customresourcedefinitions/{crd['metadata']['name']}"
        )
        assert {c["type"]: c["status"] for c in stored["status"]["conditions"]}["Established"] == "True"


@pytest.mark.parametrize("path", EXAMPLES, ids=lambda p: p.name)
def test_examples_validate_against_the_crds(
    http: Http, project_crds: list[dict[str, Any]], path: Path
) -> None:
    served = {(c["spec"]["group"], c["spec"]["names"]["kind"]): c for c in project_crds}
    for obj in yaml.safe_load_all(path.read_text()):
        group = str(obj.get("apiVersion", "")).split("/")[0]
        crd = served.get((group, obj.get("kind")))
        if crd is None:
            continue
        namespace = obj["metadata"].get("namespace", "default")
        http.request("POST", "/api/v1/namespaces", {"metadata": {"name": namespace}})
        plural = crd["spec"]["names"]["plural"]
        url = f"/apis/{obj['apiVersion']}/namespaces/{namespace}/{plural}"
        response = http.request("POST", url, obj, dryRun="All", fieldValidation="Strict")
        assert response.status_code == 201, response.text
