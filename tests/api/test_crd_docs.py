"""What `kubectl` shows a person about a DeepSeekDeployment: a description for every field
(`kubectl explain`), and the printer columns of `kubectl get dsd` and `-o wide`.

The CRD file is walked as the API server serves it; `kubectl` itself runs against the test API
server (skipped without kubectl) to show that the descriptions and columns reach a real client.
"""

from __future__ import annotations

import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from deepseek_operator.api.v1alpha1 import DeepSeekDeploymentSpec
from deepseek_operator.testing.server import ApiServer
from tests.api.resources import example

ROOT = Path(__file__).parents[2]
CRD = yaml.safe_load((ROOT / "crds" / "deepseek.serving.dev_deepseekdeployments.yaml").read_text())
(VERSION,) = CRD["spec"]["versions"]
SCHEMA = VERSION["schema"]["openAPIV3Schema"]
COLUMNS = VERSION["additionalPrinterColumns"]
KUBECTL = shutil.which("kubectl")


def _fields(schema: dict[str, Any], path: str) -> Iterator[tuple[str, dict[str, Any]]]:
    """Every property below `schema` (list items and map values included), with its dotted path."""
    for name, child in (schema.get("properties") or {}).items():
        yield f"{path}.{name}", child
        yield from _fields(child, f"{path}.{name}")
    if isinstance(schema.get("items"), dict):
        yield from _fields(schema["items"], f"{path}[]")
    if isinstance(schema.get("additionalProperties"), dict):
        yield from _fields(schema["additionalProperties"], f"{path}{{}}")


@pytest.mark.parametrize("part", ["spec", "status"])
def test_every_field_has_a_description(part: str) -> None:
    fields = list(_fields(SCHEMA["properties"][part], part))
    assert len(fields) > (100 if part == "spec" else 50)  # the walk reaches the nested fields
    missing = [path for path, field in fields if not str(field.get("description", "")).strip()]
    assert not missing, f"fields without a description (a docstring in v1alpha1.py): {missing}"
    assert SCHEMA["properties"][part]["description"].strip()


def test_descriptions_are_the_models_docstrings() -> None:
    spec = SCHEMA["properties"]["spec"]["properties"]
    for name, field in DeepSeekDeploymentSpec.model_fields.items():
        alias = field.alias or name
        assert field.description or field.json_schema_extra or spec[alias]["description"], name
        assert spec[alias]["description"].split()[0] in (field.description or spec[alias]["description"])


def _resolves(json_path: str) -> bool:
    node: dict[str, Any] = SCHEMA
    for part in json_path.strip(".").split("."):
        if part == "metadata":
            return True  # ObjectMeta: the API server's own
        properties = node.get("properties") or {}
        if part not in properties:
            return False
        node = properties[part]
    return True


def test_printer_columns_show_what_a_person_checks_first() -> None:
    default = [c["name"] for c in COLUMNS if c.get("priority", 0) == 0]
    wide = [c["name"] for c in COLUMNS if c.get("priority", 0) == 1]
    assert default == ["Version", "Ready", "Desired", "Canary", "Weight", "Step", "Phase", "Age"]
    assert wide == ["Rollout", "Reason", "GPUs/Group", "Message"]
    for column in COLUMNS:
        assert _resolves(column["jsonPath"]), column
        # Plain field paths: what every API server (and the test one) prints without JSONPath filters.
        assert set(column["jsonPath"]) <= set(".abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"), column


@pytest.fixture(scope="module")
def kubectl(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    if KUBECTL is None:
        pytest.skip("kubectl is not installed")
    directory = tmp_path_factory.mktemp("kubectl")
    with ApiServer() as server:
        server.install_crds([ROOT / "crds" / "deepseek.serving.dev_deepseekdeployments.yaml"])
        kubeconfig = server.write_kubeconfig(directory / "kubeconfig")

        def run(*args: str, stdin: str | None = None) -> str:
            assert KUBECTL is not None
            done = subprocess.run(
                [KUBECTL, "--kubeconfig", str(kubeconfig), *args],
                input=stdin, capture_output=True, text=True, timeout=60, check=False,
            )  # fmt: skip
            assert done.returncode == 0, done.stderr
            return done.stdout

        yield run


@pytest.mark.parametrize(
    "field", ["spec", "spec.groups", "spec.rollout.steps.pause", "status.rollout.reason"]
)
def test_kubectl_explain_reads_the_descriptions(kubectl: Any, field: str) -> None:
    shown = kubectl("explain", f"dsd.{field}")
    node = SCHEMA
    for part in field.split("."):
        node = node["properties"][part]
        node = node.get("items", node)
    first_words = " ".join(node["description"].split()[:4])
    assert first_words in " ".join(shown.split()), shown


def test_kubectl_get_wide_shows_the_rollout_and_the_message(kubectl: Any) -> None:
    body = example("tiny-local")
    kubectl("apply", "-f", "-", stdin=yaml.safe_dump(body))
    status = {
        "status": {
            "phase": "Paused",
            "message": "v2 step 2/3, paused: paused until promoted",
            "currentVersion": "v1",
            "canaryVersion": "v2",
            "canaryWeight": 50,
            "canaryStep": "2/3",
            "readyGroups": 2,
            "desiredGroups": 2,
            "plan": {
                "tensorParallelSize": 1,
                "dataParallelSize": 1,
                "expertParallelSize": 1,
                "gpusPerGroup": 1,
                "nodesPerGroup": 1,
            },
            "rollout": {
                "revision": 1,
                "stableVersion": "v1",
                "canaryVersion": "v2",
                "phase": "Paused",
                "reason": "AnalysisInconclusive",
                "startTime": "2026-12-01T12:00:00Z",
                "stepStartTime": "2026-12-01T12:00:00Z",
            },
        }
    }
    kubectl("patch", "dsd", "tiny", "--subresource=status", "--type=merge", "-p", yaml.safe_dump(status))
    narrow = kubectl("get", "dsd", "tiny").splitlines()
    assert narrow[0].split()[:8] == [
        "NAME",
        "VERSION",
        "READY",
        "DESIRED",
        "CANARY",
        "WEIGHT",
        "STEP",
        "PHASE",
    ]
    assert narrow[1].split()[:8] == ["tiny", "v1", "2", "2", "v2", "50", "2/3", "Paused"]
    wide = kubectl("get", "dsd", "tiny", "-o", "wide").splitlines()
    for header in ("ROLLOUT", "REASON", "GPUS/GROUP", "MESSAGE"):
        assert header in wide[0].split(), wide[0]
    assert "AnalysisInconclusive" in wide[1].split()
    assert "v2 step 2/3, paused: paused until promoted" in wide[1]
