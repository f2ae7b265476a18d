"""The example CI job (`examples/gitops/ci/deepseek-deployments.yaml`), run here: each `run:` step
of the workflow, as written, in order, with bash as GitHub Actions runs it (`bash -e -o pipefail`),
in a copy of this repository's examples/ (MANIFESTS=examples). The `uses:` steps (checkout, Python,
the artifact upload) are the runner's and are not run; the install step runs with pip's index off,
where deepseek-operator is already installed (so it must be a pin this checkout satisfies).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

ROOT = Path(__file__).parents[2]
WORKFLOW = ROOT / "examples" / "gitops" / "ci" / "deepseek-deployments.yaml"
pytestmark = pytest.mark.skipif(
    shutil.which("kubectl") is None, reason="kubectl (kustomize) is not installed"
)


def _job() -> dict[str, Any]:
    workflow = yaml.safe_load(WORKFLOW.read_text())
    (job,) = workflow["jobs"].values()
    return dict(job)


def _run_job(workdir: Path) -> list[tuple[str, subprocess.CompletedProcess[str]]]:
    """Run the job's shell steps in `workdir` until one fails; (step name, result) of each run."""
    job = _job()
    env = {
        **os.environ,
        **{key: str(value) for key, value in job["env"].items()},
        "MANIFESTS": "examples",
        "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}",
        "PIP_NO_INDEX": "1",
        "PIP_DISABLE_PIP_VERSION_CHECK": "1",
    }
    ran = []
    for step in job["steps"]:
        if "run" not in step:
            assert step["uses"].split("@")[0] in (
                "actions/checkout",
                "actions/setup-python",
                "actions/upload-artifact",
            ), step
            continue
        done = subprocess.run(
            ["bash", "--noprofile", "--norc", "-eo", "pipefail", "-c", step["run"]],
            cwd=workdir, env=env, capture_output=True, text=True, timeout=300, check=False,
        )  # fmt: skip
        ran.append((step["name"], done))
        if done.returncode != 0:
            break
    return ran


@pytest.fixture
def repository(tmp_path: Path) -> Path:
    shutil.copytree(ROOT / "examples", tmp_path / "examples")
    return tmp_path


def test_the_job_passes_on_the_examples(repository: Path) -> None:
    ran = _run_job(repository)
    names = [name for name, _ in ran]
    assert names == [
        "Install dsd",
        "Build kustomizations, gather plain manifests",
        "Validate",
        "Render what the operator would apply",
    ]
    for name, done in ran:
        assert done.returncode == 0, (name, done.stdout, done.stderr)
    built = sorted(path.name for path in (repository / "build").iterdir())
    assert "kustomize-examples_gitops_deployments_production.yaml" in built
    assert "file-examples_deepseek-r1-h100.yaml" in built
    assert not [name for name in built if "deployments_base_r1" in name], "files a kustomization owns"
    validated = ran[2][1].stdout
    for origin in (
        "file-examples_tiny-local.yaml",
        "kustomize-examples_gitops_deployments_production.yaml#1",
    ):
        assert f"build/{origin}: " in validated, validated
    rendered = (repository / "rendered" / "kustomize-examples_gitops_deployments_production.yaml").read_text()
    kinds = [doc["kind"] for doc in yaml.safe_load_all(rendered) if doc]
    assert "RayService" in kinds
    assert "RayServices: 5" in ran[3][1].stdout


def test_the_job_fails_on_an_invalid_deployment(repository: Path) -> None:
    broken = yaml.safe_load((repository / "examples" / "tiny-local.yaml").read_text())
    broken["metadata"]["name"] = "broken"
    broken["spec"]["parallelism"] = {"tensorParallelSize": 1, "expertParallelSize": 3}
    (repository / "examples" / "broken.yaml").write_text(yaml.safe_dump(broken))
    ran = _run_job(repository)
    name, done = ran[-1]
    assert name == "Validate"
    assert done.returncode == 1
    assert (
        "build/file-examples_broken.yaml: spec.parallelism.expertParallelSize: 3 does not divide"
        in done.stdout
    )


def test_the_job_fails_on_a_broken_kustomization(repository: Path) -> None:
    kustomization = repository / "examples" / "gitops" / "deployments" / "base" / "kustomization.yaml"
    kustomization.write_text(kustomization.read_text().replace("r1.yaml", "missing.yaml"))
    name, done = _run_job(repository)[-1]
    assert name == "Build kustomizations, gather plain manifests"
    assert done.returncode != 0
    assert "missing.yaml" in done.stderr
