"""Rendered objects: valid against KubeRay's real CRD, carrying the plan, stable for GitOps."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import yaml
from typer.testing import CliRunner

from deepseek_operator.cli import app
from deepseek_operator.desired import plan_desired
from deepseek_operator.modelcfg import ArchitectureContext
from deepseek_operator.planner.plan import plan_deployment
from deepseek_operator.render import (
    RenderConfig,
    RenderedDeployment,
    ray_service_name,
    render_deployment,
    render_version,
)
from deepseek_operator.render.serving_args import model_location
from deepseek_operator.rollout import GroupTarget, VersionRef
from deepseek_operator.testing.openapi import validate_custom_resource
from deepseek_operator.validation import validate_deployment
from deepseek_serving.config import ServingArgs
from tests.api.resources import EXAMPLES, example, with_changes

KUBERAY_CRDS = Path(__file__).parents[3] / "shared" / "kuberay-crds" / "v1.7.0"


def _schema(kind_file: str) -> dict[str, Any]:
    crd = yaml.safe_load((KUBERAY_CRDS / kind_file).read_text())
    version = next(v for v in crd["spec"]["versions"] if v["name"] == "v1")
    return version["schema"]["openAPIV3Schema"]  # type: ignore[no-any-return]


RAY_SERVICE_SCHEMA = _schema("ray.io_rayservices.yaml")


def _render(name: str, changes: dict[str, Any] | None = None) -> RenderedDeployment:
    document = with_changes(example(name), changes or {})
    validated = validate_deployment(document, ArchitectureContext(base_dir=EXAMPLES))
    return render_deployment(validated, plan_deployment(validated))


def _serving_args(rendered: RenderedDeployment) -> ServingArgs:
    (ray_service,) = rendered.of_kind("RayService")
    serve_config = yaml.safe_load(ray_service["spec"]["serveConfigV2"])
    (application,) = serve_config["applications"]
    assert application["import_path"] == "deepseek_serving.app:build_app"
    return ServingArgs.model_validate(application["args"])


@pytest.mark.parametrize("name", ["tiny-local", "deepseek-r1-h100", "deepseek-r1-h200"])
def test_ray_service_is_valid_for_kuberay_v1_7(name: str) -> None:
    (ray_service,) = _render(name).of_kind("RayService")
    validated = validate_custom_resource(RAY_SERVICE_SCHEMA, ray_service)
    assert [str(error) for error in validated.errors] == []
    assert validated.unknown_fields == [], "KubeRay would prune these fields"


def test_serving_args_carry_the_plan() -> None:
    args = _serving_args(_render("deepseek-r1-h100"))
    assert (args.tensor_parallel_size, args.data_parallel_size, args.enable_expert_parallel) == (8, 2, True)
    assert args.eplb.enabled
    assert args.eplb.num_redundant_experts == 32
    assert len(args.placement.bundles) == 16
    assert args.model_source == "deepseek-ai/DeepSeek-R1"
    assert args.engine_args["revision"] == "56d4cbbb4d29f4355bab4b9a39ccb717a14ad5ad"
    assert args.api_key_env == "DEEPSEEK_API_KEY"
    assert args.limits.max_concurrent_requests_per_rank == 256  # 512 per group over 2 DP ranks
    assert args.autoscaling is not None


def test_group_counts_are_a_deployment_override_never_args() -> None:
    """Ray Serve restarts an application whose args change: the counts must live elsewhere."""
    (ray_service,) = _render("deepseek-r1-h100").of_kind("RayService")
    (application,) = yaml.safe_load(ray_service["spec"]["serveConfigV2"])["applications"]
    assert "groups" not in application["args"]
    assert "minGroups" not in application["args"]["autoscaling"]
    (override,) = application["deployments"]
    scaling = override["autoscaling_config"]
    # 1..4 groups of 2 DP ranks each, in Serve replicas.
    assert (override["name"], scaling["min_replicas"], scaling["max_replicas"]) == ("engine-ranks", 2, 8)
    assert "min_groups" not in scaling["policy"]["policy_kwargs"]["autoscaling"]


def test_worker_pods_hold_whole_groups_of_gpus() -> None:
    (ray_service,) = _render("deepseek-r1-h100").of_kind("RayService")
    (workers,) = ray_service["spec"]["rayClusterConfig"]["workerGroupSpecs"]
    # A replica is a whole group of 2 nodes (KubeRay multi-host), between 1 and 4 groups.
    assert (workers["replicas"], workers["minReplicas"], workers["maxReplicas"]) == (1, 1, 4)
    assert workers["numOfHosts"] == 2
    container = workers["template"]["spec"]["containers"][0]
    assert container["resources"]["limits"]["nvidia.com/gpu"] == "8"
    assert workers["template"]["spec"]["tolerations"] == [
        {"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"}
    ]
    assert container["securityContext"]["runAsNonRoot"] is True
    assert ray_service["spec"]["rayClusterConfig"]["enableInTreeAutoscaling"] is True


def test_cpu_deployments_ask_for_no_gpus() -> None:
    (ray_service,) = _render("tiny-local").of_kind("RayService")
    (workers,) = ray_service["spec"]["rayClusterConfig"]["workerGroupSpecs"]
    assert "nvidia.com/gpu" not in workers["template"]["spec"]["containers"][0]["resources"]["limits"]


@pytest.mark.parametrize(
    ("source", "revision", "expected"),
    [
        pytest.param(
            "hf://deepseek-ai/DeepSeek-V3@main",
            None,
            ("deepseek-ai/DeepSeek-V3", {"revision": "main"}),
            id="hf",
        ),
        pytest.param(
            "hf://deepseek-ai/DeepSeek-V3@main",
            "abc",
            ("deepseek-ai/DeepSeek-V3", {"revision": "abc"}),
            id="hf-override",
        ),
        pytest.param("s3://models/r1", None, ("s3://models/r1", {"load_format": "runai_streamer"}), id="s3"),
        pytest.param("pvc://weights/r1", None, ("/models/weights/r1", {}), id="pvc"),
        pytest.param("file:///data/r1", None, ("/data/r1", {}), id="file"),
    ],
)
def test_model_location(source: str, revision: str | None, expected: tuple[str, dict[str, object]]) -> None:
    assert model_location(source, revision) == expected


def test_pvc_sources_are_mounted_read_only() -> None:
    (ray_service,) = _render("deepseek-r1-h200", {"spec.model.source": "pvc://weights/deepseek-r1"}).of_kind(
        "RayService"
    )
    pod = ray_service["spec"]["rayClusterConfig"]["workerGroupSpecs"][0]["template"]["spec"]
    assert {"name": "model", "persistentVolumeClaim": {"claimName": "weights", "readOnly": True}} in pod[
        "volumes"
    ]
    assert _serving_args(
        _render("deepseek-r1-h200", {"spec.model.source": "pvc://weights/deepseek-r1"})
    ).model_source == ("/models/weights/deepseek-r1")


def test_eplb_policy_settings_and_http_route() -> None:
    rendered = _render("deepseek-r1-h100")
    assert rendered.of_kind("ConfigMap") == []  # vLLM cannot be seeded with a map: none is rendered
    settings = json.loads(_serving_args(rendered).eplb.policy_settings or "{}")
    assert (settings["regime"], settings["gpuType"], settings["policy"]) == ("decode", "H100", "auto")
    (ray_service,) = rendered.of_kind("RayService")
    (route,) = rendered.of_kind("HTTPRoute")
    assert route["spec"]["rules"][0]["backendRefs"] == [
        {"name": f"{ray_service['metadata']['name']}-serve-svc", "port": 8000, "weight": 100}
    ]
    assert _render("deepseek-r1-h200").of_kind("HTTPRoute") == []


def _ray_service_name(changes: dict[str, Any]) -> str:
    (ray_service,) = _render("tiny-local", changes).of_kind("RayService")
    return str(ray_service["metadata"]["name"])


def test_a_revision_is_the_content_group_counts_aside() -> None:
    name = _ray_service_name({})
    assert name == _ray_service_name({})
    assert name.startswith("tiny-v1-")
    # Scaling is an in-place update of the same RayService...
    assert _ray_service_name({"spec.groups": 2}) == name
    # ...any other change of what runs is a new revision, rolled out beside the old one.
    assert _ray_service_name({"spec.versions[0].engineArgs.max_num_seqs": 4}) != name
    assert _ray_service_name({"spec.model.maxModelLen": 1024}) != name


@pytest.mark.parametrize(
    ("name", "groups"),
    [
        pytest.param("tiny-local", [GroupTarget.fixed(1), GroupTarget.fixed(3)], id="fixed"),
        pytest.param(
            "deepseek-r1-h100",
            [GroupTarget.fixed(2), GroupTarget(1, 1, 4), GroupTarget(2, 1, 5), GroupTarget(1, 0, 3)],
            id="autoscaled-multi-node",
        ),
    ],
)
def test_a_version_resized_is_the_version_rendered_at_those_groups(
    name: str, groups: list[GroupTarget]
) -> None:
    """The operator keeps each version rendered once and resizes it during rollouts: that must be
    what rendering it at the new groups gives, so no pass ever sees a difference to apply."""
    document = with_changes(example(name), {"spec.autoscaling.scaleToZero": True} if "r1" in name else {})
    desired = plan_desired(document, ArchitectureContext(base_dir=EXAMPLES), {}, RenderConfig())
    kept = desired.without_expert_maps()
    version = desired.desired
    for target in groups:
        rendered = render_version(desired.validated, version.plan, version.spec, RenderConfig(), target)
        assert kept.render(kept.desired, target) == rendered, target
    assert kept.desired.summary == version.plan.summary()
    assert kept.desired.rendered == version.rendered


@pytest.mark.parametrize(
    ("first", "second"),
    [
        pytest.param(("a", "b-v1"), ("a-b", "v1"), id="dash-in-either-name"),
        pytest.param(("x" * 30, "v1"), ("x" * 30, "v2"), id="names-cut-to-fit"),
    ],
)
def test_names_never_collide_and_fit_kuberay(first: tuple[str, str], second: tuple[str, str]) -> None:
    names = {
        ray_service_name(deployment, VersionRef(version, "0abc1234"))
        for deployment, version in (first, second)
    }
    assert len(names) == 2
    assert all(len(name) <= 40 and name[-1] != "-" for name in names)


def test_dsd_render_prints_the_same_objects() -> None:
    result = CliRunner().invoke(app, ["render", str(EXAMPLES / "deepseek-r1-h200.yaml"), "-o", "json"])
    assert result.exit_code == 0, result.output
    listed = json.loads(result.output)
    assert listed["kind"] == "List"
    assert listed["items"] == [json.loads(json.dumps(obj)) for obj in _render("deepseek-r1-h200").objects]
    yaml_result = CliRunner().invoke(app, ["render", str(EXAMPLES / "deepseek-r1-h200.yaml")])
    assert list(yaml.safe_load_all(yaml_result.output)) == listed["items"]
    assert "&id" not in yaml_result.output
