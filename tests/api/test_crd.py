"""The generated CRD: committed copy up to date, accepted by Kubernetes' own rules, and complete."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest
import yaml
from typer.testing import CliRunner

from deepseek_operator.api.constants import CRD_NAME
from deepseek_operator.cli import app
from deepseek_operator.cli.crd import SCHEMA_FILENAME
from deepseek_operator.crdgen import CRD_FILENAME, crd_yaml, editor_json_schema, render_crd
from deepseek_operator.testing import cel
from deepseek_operator.testing.structural import check_structural

ROOT = Path(__file__).parents[2]
VERSION = render_crd()["spec"]["versions"][0]
SCHEMA = VERSION["schema"]["openAPIV3Schema"]


def _walk(node: dict[str, Any], path: str = "") -> list[tuple[str, dict[str, Any]]]:
    found = [(path, node)]
    for name, sub in node.get("properties", {}).items():
        found += _walk(sub, f"{path}.{name}")
    if "items" in node:
        found += _walk(node["items"], f"{path}[]")
    if isinstance(node.get("additionalProperties"), dict):
        found += _walk(node["additionalProperties"], f"{path}{{}}")
    return found


def test_committed_crd_matches_the_models() -> None:
    committed = (ROOT / "crds" / CRD_FILENAME).read_text()
    assert committed == crd_yaml(), "crds/ is stale: run `dsd crd` and commit the result"


def test_committed_editor_schema_matches_the_models() -> None:
    committed = (ROOT / "schemas" / SCHEMA_FILENAME).read_text()
    assert committed == editor_json_schema(), "schemas/ is stale: run `dsd schema` and commit the result"


def test_dsd_crd_check_fails_on_drift(tmp_path: Path) -> None:
    dirs = ["--output-dir", str(tmp_path), "--chart-dir", str(tmp_path / "chart")]
    assert CliRunner().invoke(app, ["crd", *dirs]).exit_code == 0
    assert CliRunner().invoke(app, ["crd", "--check", *dirs]).exit_code == 0
    (tmp_path / CRD_FILENAME).write_text(crd_yaml().replace("maxLength: 63", "maxLength: 64", 1))
    result = CliRunner().invoke(app, ["crd", "--check", *dirs])
    assert result.exit_code == 1
    assert "out of date" in result.output
    assert CliRunner().invoke(app, ["crd", *dirs]).exit_code == 0
    assert CliRunner().invoke(app, ["crd", "--check", *dirs]).exit_code == 0


def test_crd_object_is_a_valid_apiextensions_v1_object() -> None:
    document = yaml.safe_load(crd_yaml())
    kubernetes_validate.validate(document, kubernetes_validate.latest_version(), strict=True)


def test_the_object_validator_catches_openapi_v2020_leftovers() -> None:
    """The check above can fail: a JSON Schema 2020 numeric exclusiveMinimum is refused."""
    document = copy.deepcopy(render_crd())
    document["spec"]["versions"][0]["schema"]["openAPIV3Schema"]["properties"]["spec"]["exclusiveMinimum"] = 0
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(document, kubernetes_validate.latest_version(), strict=True)


def test_schema_is_structural() -> None:
    assert check_structural(SCHEMA, status_subresource=True) == []


def test_every_cel_rule_compiles() -> None:
    rules = [
        (path, rule["rule"])
        for path, node in _walk(SCHEMA)
        for rule in node.get("x-kubernetes-validations", [])
    ]
    assert len(rules) >= 10
    for path, expression in rules:
        cel.compile_rule(expression), path


def test_every_field_is_documented() -> None:
    undocumented = [
        path
        for path, node in _walk(SCHEMA["properties"]["spec"], "spec")
        + _walk(SCHEMA["properties"]["status"], "status")
        if not node.get("description") and not path.endswith("[]") and not path.endswith("{}")
    ]
    assert undocumented == []


def test_printer_columns_and_scale_paths_point_at_schema_fields() -> None:
    fields = dict(_walk(SCHEMA))
    columns = {column["name"]: column for column in VERSION["additionalPrinterColumns"]}
    assert {"Version", "Ready", "Desired", "Weight", "Age"} <= set(columns)
    for column in columns.values():
        if column["jsonPath"].startswith(".metadata"):
            continue
        assert column["jsonPath"] in fields, column
    scale = VERSION["subresources"]["scale"]
    assert fields[scale["specReplicasPath"]]["type"] == "integer"
    assert fields[scale["statusReplicasPath"]]["type"] == "integer"
    assert fields[scale["labelSelectorPath"]]["type"] == "string"
    assert VERSION["subresources"]["status"] == {}


def test_names_categories_and_list_keys() -> None:
    crd = render_crd()
    assert crd["metadata"]["name"] == CRD_NAME
    assert crd["spec"]["names"]["shortNames"] == ["dsd"]
    spec = SCHEMA["properties"]["spec"]["properties"]
    assert spec["versions"]["x-kubernetes-list-type"] == "map"
    assert spec["versions"]["x-kubernetes-list-map-keys"] == ["name"]
    # Defaults reach the API server, so objects stored without them read back complete.
    assert spec["serving"]["properties"]["port"]["default"] == 8000


def test_editor_schema_is_json_schema_2020() -> None:
    schema = json.loads(editor_json_schema())
    assert schema["$schema"].endswith("2020-12/schema")
    assert set(schema["required"]) >= {"apiVersion", "kind", "metadata", "spec"}
