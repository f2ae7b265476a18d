"""`dsd validate`: every error of every file, exit 1 on any, ConfigMaps resolved among the files."""

from __future__ import annotations

from pathlib import Path

import yaml
from typer.testing import CliRunner

from deepseek_operator.cli import app
from tests.api.resources import EXAMPLES, example, with_changes

runner = CliRunner()


def _write(path: Path, *documents: dict[str, object]) -> Path:
    path.write_text(yaml.safe_dump_all(documents, sort_keys=False))
    return path


def test_valid_files_exit_zero() -> None:
    result = runner.invoke(app, ["validate", str(EXAMPLES)])
    assert result.exit_code == 0, result.output
    # Every DeepSeekDeployment under examples/ (the GitOps examples' included).
    deployments = sum(
        isinstance(document, dict) and document.get("kind") == "DeepSeekDeployment"
        for path in EXAMPLES.rglob("*.yaml")
        for document in yaml.safe_load_all(path.read_text())
    )
    assert deployments >= 4
    assert result.output.count("is valid") == deployments


def test_every_error_of_every_file_is_printed(tmp_path: Path) -> None:
    first = _write(
        tmp_path / "first.yaml",
        with_changes(example("deepseek-r1-h100"), {"spec.model.maxModelLen": 10**6, "spec.serving.port": 0}),
    )
    second = _write(
        tmp_path / "second.yaml",
        example("deepseek-r1-h200"),
        with_changes(example("tiny-local"), {"spec.versions[0].name": "Bad_Name"}),
    )
    result = runner.invoke(app, ["validate", str(first), str(second)])
    assert result.exit_code == 1
    lines = [line for line in result.output.splitlines() if line.startswith("✗")]
    assert [line.split(": ")[0:2] for line in lines] == [
        [f"✗ {first}", "spec.model.maxModelLen"],
        [f"✗ {first}", "spec.serving.port"],
        [f"✗ {second}#1", "spec.versions[0].name"],
    ]
    assert f"✓ {second}#0: r1 is valid" in result.output
    assert "3 errors" in result.output


def test_config_map_among_the_files_resolves_the_architecture(tmp_path: Path) -> None:
    config_json = (
        Path(__file__).parents[2] / "operator/deepseek_operator/modelcfg/catalog/deepseek-v2-lite.json"
    ).read_text()
    config_map = {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {"name": "lite-config", "namespace": "llm"},
        "data": {"config.json": config_json},
    }
    deployment = with_changes(
        example("deepseek-r1-h200"),
        {
            "spec.model.source": "s3://models/deepseek-v2-lite",
            "spec.model.architecture": {"configMapRef": {"name": "lite-config"}},
            "spec.model.maxModelLen": 32768,
            "spec.serving.limits.maxTokens": 8192,
            "spec.parallelism": {"tensorParallelSize": 1, "dataParallelSize": 2},
        },
    )
    path = _write(tmp_path / "lite.yaml", config_map, deployment)
    result = runner.invoke(app, ["validate", str(path)])
    assert result.exit_code == 0, result.output
    assert "lite-config" in result.output

    other_namespace = {**config_map, "metadata": {"name": "lite-config", "namespace": "elsewhere"}}
    path = _write(tmp_path / "lite.yaml", other_namespace, deployment)
    result = runner.invoke(app, ["validate", str(path)])
    assert result.exit_code == 1
    assert "spec.model.architecture.configMapRef.name: ConfigMap 'lite-config' not found" in result.output


def test_unreadable_and_unserved_documents_are_errors(tmp_path: Path) -> None:
    broken = tmp_path / "broken.yaml"
    broken.write_text("spec: [unclosed\n")
    old = _write(
        tmp_path / "old.yaml", {**example("tiny-local"), "apiVersion": "deepseek.serving.dev/v1beta9"}
    )
    result = runner.invoke(app, ["validate", str(broken), str(old), str(tmp_path / "missing.yaml")])
    assert result.exit_code == 1
    assert "not valid YAML" in result.output
    assert "'deepseek.serving.dev/v1beta9' is not served" in result.output
    assert "cannot read" in result.output


def test_a_file_without_deployments_fails(tmp_path: Path) -> None:
    path = _write(tmp_path / "cm.yaml", {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "x"}})
    result = runner.invoke(app, ["validate", str(path)])
    assert result.exit_code == 1
    assert "no DeepSeekDeployment found" in result.output
