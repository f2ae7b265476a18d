"""The Helm chart with the real Helm engine (helm-sdkpy: Helm's Go code as a shared library).

Lint it; install it into the test API server with the default and the CI values (Helm renders,
validates the values against values.schema.json, creates the CRDs from crds/, then every object);
validate each rendered built-in object against the Kubernetes OpenAPI schemas
(`kubernetes-validate`), and check what the operator depends on: the ClusterRole is exactly the
generated one, the Deployment runs `dsd operator` non-root with kopf's /healthz probes, the
webhook certificate is valid for the webhook Service and survives upgrades.
"""

from __future__ import annotations

import asyncio
import base64
import json
import re
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import kubernetes_validate
import pytest
import yaml
from cryptography import x509

from deepseek_operator import metrics
from deepseek_operator.crdgen import CRD_FILENAME, PEERING_CRD_FILENAME
from deepseek_operator.rbacgen import render_cluster_role
from deepseek_operator.testing.server import ApiServer
from tests.crd_stubs import preserve_unknown_crd

helm = pytest.importorskip("helm_sdkpy", reason="install helm-sdkpy (see pyproject's testing extra notes)")

ROOT = Path(__file__).parents[2]
CHART = ROOT / "charts" / "deepseek-operator"
CI_VALUES = yaml.safe_load((CHART / "ci" / "ci-values.yaml").read_text())
SERVICE_MONITOR_CRD = preserve_unknown_crd("monitoring.coreos.com", "ServiceMonitor", "servicemonitors")
PROMETHEUS_RULE_CRD = preserve_unknown_crd("monitoring.coreos.com", "PrometheusRule", "prometheusrules")


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[ApiServer, Path]]:
    """A test API server of the chart's own (it installs cluster-scoped objects and CRDs)."""
    directory = tmp_path_factory.mktemp("chart")
    with ApiServer(bookmark_interval_s=0.2) as server:
        (directory / "servicemonitor-crd.yaml").write_text(yaml.safe_dump(SERVICE_MONITOR_CRD))
        (directory / "prometheusrule-crd.yaml").write_text(yaml.safe_dump(PROMETHEUS_RULE_CRD))
        server.install_crds([directory / "servicemonitor-crd.yaml", directory / "prometheusrule-crd.yaml"])
        yield server, server.write_kubeconfig(directory / "kubeconfig")


def _install(kubeconfig: Path, name: str, values: dict[str, Any] | None = None) -> dict[str, Any]:
    config = helm.Configuration(namespace="default", kubeconfig=str(kubeconfig))
    release: dict[str, Any] = asyncio.run(
        helm.Install(config).run(name, str(CHART), values=values, wait=False, timeout=60)
    )
    return release


def _objects(release: dict[str, Any]) -> dict[tuple[str, str], dict[str, Any]]:
    documents = [doc for doc in yaml.safe_load_all(release["manifest"]) if doc]
    return {(doc["kind"], doc["metadata"]["name"]): doc for doc in documents}


@pytest.fixture(scope="module")
def default_release(cluster: tuple[ApiServer, Path]) -> dict[str, Any]:
    return _install(cluster[1], "dso")


@pytest.fixture(scope="module")
def ci_release(cluster: tuple[ApiServer, Path]) -> dict[str, Any]:
    return _install(cluster[1], "ci", CI_VALUES)


def test_chart_lints_clean() -> None:
    config = helm.Configuration(namespace="default")
    result = asyncio.run(helm.Lint(config).run(str(CHART)))
    assert not result.get("Errors"), result
    # Severity: 1 info (an icon is recommended), 2 warning, 3 error.
    assert all(message["Severity"] < 2 for message in result.get("Messages") or []), result


@pytest.mark.parametrize("release_fixture", ["default_release", "ci_release"])
def test_every_rendered_object_is_valid_and_was_stored(
    release_fixture: str, request: pytest.FixtureRequest, cluster: tuple[ApiServer, Path]
) -> None:
    release: dict[str, Any] = request.getfixturevalue(release_fixture)
    assert release["info"]["status"] == "deployed"
    version = kubernetes_validate.latest_version()
    custom = {"ClusterKopfPeering", "ServiceMonitor", "PrometheusRule"}
    objects = _objects(release)
    for (kind, _), obj in objects.items():
        if kind not in custom:
            kubernetes_validate.validate(obj, version, strict=True)
    # The test API server stored every one (custom ones checked against their CRDs).
    server = cluster[0]
    for (kind, name), obj in objects.items():
        group_version, namespace = obj["apiVersion"], obj["metadata"].get("namespace")
        path = f"/api/{group_version}" if "/" not in group_version else f"/apis/{group_version}"
        path += f"/namespaces/{namespace}" if namespace else ""
        stored = httpx.get(f"{server.url}{path}/{kind.lower()}s/{name}", timeout=10)
        assert stored.status_code == 200, (kind, name, stored.text)


def test_default_values_render_what_the_operator_needs(default_release: dict[str, Any]) -> None:
    objects = _objects(default_release)
    kinds = sorted(kind for kind, _ in objects)
    assert kinds == sorted(
        [
            "ClusterKopfPeering",
            "ClusterRole",
            "ClusterRoleBinding",
            "Deployment",
            "MutatingWebhookConfiguration",
            "Secret",
            "Service",
            "Service",
            "ServiceAccount",
            "ValidatingWebhookConfiguration",
        ]
    )
    deployment = objects[("Deployment", "dso-deepseek-operator")]
    pod = deployment["spec"]["template"]["spec"]
    (container,) = pod["containers"]
    assert deployment["spec"]["replicas"] == 2
    assert container["command"] == ["dsd", "operator"]
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert pod["securityContext"]["runAsUser"] > 0
    assert container["securityContext"]["readOnlyRootFilesystem"] is True
    assert container["securityContext"]["allowPrivilegeEscalation"] is False
    for probe in ("livenessProbe", "readinessProbe"):
        assert container[probe]["httpGet"] == {"path": "/healthz", "port": "health"}
    ports = {port["name"]: port["containerPort"] for port in container["ports"]}
    assert container["args"] == [f"--liveness=http://0.0.0.0:{ports['health']}/healthz"]
    env = {var["name"]: var.get("value") for var in container["env"]}
    assert env["DSD_SERVER__METRICS_PORT"] == str(ports["metrics"])
    assert env["DSD_WEBHOOK__PORT"] == str(ports["webhook"])
    assert env["DSD_PEERING__NAME"] == "dso-deepseek-operator"
    assert env["DSD_PEERING__MANDATORY"] == "true"
    assert env["DSD_WEBHOOK__SERVICE_NAME"] == "dso-deepseek-operator-webhook"
    assert env["DSD_WEBHOOK__MANAGED_CONFIGURATION"] == "dso-deepseek-operator.deepseek.serving.dev"
    assert ("ClusterKopfPeering", env["DSD_PEERING__NAME"]) in objects
    assert ("ValidatingWebhookConfiguration", env["DSD_WEBHOOK__MANAGED_CONFIGURATION"]) in objects
    service = objects[("Service", "dso-deepseek-operator-webhook")]
    assert service["spec"]["ports"] == [
        {"name": "https", "port": 443, "targetPort": "webhook", "protocol": "TCP"}
    ]


def test_cluster_role_is_the_generated_one(
    default_release: dict[str, Any], ci_release: dict[str, Any]
) -> None:
    expected = render_cluster_role(webhook_configuration="dso-deepseek-operator.deepseek.serving.dev")
    assert _objects(default_release)[("ClusterRole", "dso-deepseek-operator")]["rules"] == expected["rules"]
    binding = _objects(default_release)[("ClusterRoleBinding", "dso-deepseek-operator")]
    assert binding["subjects"] == [
        {"kind": "ServiceAccount", "name": "dso-deepseek-operator", "namespace": "default"}
    ]


def test_optional_parts_follow_their_values(
    cluster: tuple[ApiServer, Path], ci_release: dict[str, Any]
) -> None:
    objects = _objects(ci_release)
    assert ("ServiceMonitor", "ci-deepseek-operator") in objects
    assert ("PrometheusRule", "ci-deepseek-operator") in objects
    dashboard = objects[("ConfigMap", "ci-deepseek-operator-dashboard")]
    assert dashboard["metadata"]["labels"]["grafana_dashboard"] == "1"
    assert json.loads(dashboard["data"]["deepseek-operator.json"])["uid"] == "deepseek-operator"
    assert objects[("Deployment", "ci-deepseek-operator")]["spec"]["replicas"] == 3

    # Without peering and webhook: no peering object, no webhook, and no RBAC for either.
    values = {"replicaCount": 1, "peering": {"enabled": False}, "webhook": {"enabled": False}}
    bare = _objects(_install(cluster[1], "bare", values))
    assert {kind for kind, _ in bare} == {
        "ClusterRole",
        "ClusterRoleBinding",
        "Deployment",
        "Service",
        "ServiceAccount",
    }
    groups = {rule["apiGroups"][0] for rule in bare[("ClusterRole", "bare-deepseek-operator")]["rules"]}
    assert "kopf.dev" not in groups
    assert "admissionregistration.k8s.io" not in groups
    (container,) = bare[("Deployment", "bare-deepseek-operator")]["spec"]["template"]["spec"]["containers"]
    assert "--standalone" in container["args"]


def test_webhook_certificate_is_valid_for_the_service_and_kept_on_upgrade(
    cluster: tuple[ApiServer, Path], default_release: dict[str, Any]
) -> None:
    secret = _objects(default_release)[("Secret", "dso-deepseek-operator-webhook-tls")]
    data = {key: base64.b64decode(value) for key, value in secret["data"].items()}
    ca, cert = x509.load_pem_x509_certificate(data["ca.crt"]), x509.load_pem_x509_certificate(data["tls.crt"])
    cert.verify_directly_issued_by(ca)
    names = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value.get_values_for_type(
        x509.DNSName
    )
    assert "dso-deepseek-operator-webhook.default.svc" in names

    config = helm.Configuration(namespace="default", kubeconfig=str(cluster[1]))
    upgraded = asyncio.run(helm.Upgrade(config).run("dso", str(CHART), wait=False, timeout=60))
    again = _objects(upgraded)[("Secret", "dso-deepseek-operator-webhook-tls")]
    assert again["data"] == secret["data"], (
        "an upgrade must not rotate the CA the webhook configuration trusts"
    )


@pytest.mark.parametrize(
    "values",
    [{"replicaCount": -1}, {"image": {"pullPolicy": "Sometimes"}}, {"env": {"RESYNC": "1"}}, {"unknown": 1}],
    ids=["negative-replicas", "pull-policy", "env-not-dsd", "unknown-key"],
)
def test_values_schema_refuses_bad_values(cluster: tuple[ApiServer, Path], values: dict[str, Any]) -> None:
    with pytest.raises(helm.HelmError, match=r"values don't meet the specifications|schema"):
        _install(cluster[1], f"bad-{uuid.uuid4().hex[:6]}", values)


def test_values_are_documented_for_helm_docs() -> None:
    """Every key of values.yaml has a `# --` comment (helm-docs), on itself or on an ancestor,
    unless it only groups documented keys."""
    lines = (CHART / "values.yaml").read_text().splitlines()
    keys = [
        (number, match)
        for number, line in enumerate(lines)
        if (match := re.match(r"^( *)([A-Za-z]\w*):", line))
    ]
    documented: list[tuple[int, bool]] = []  # (indent, documented) of the enclosing keys
    undocumented = []
    for position, (number, match) in enumerate(keys):
        indent = len(match.group(1))
        documented = [(level, doc) for level, doc in documented if level < indent]
        comments = []
        above = number - 1
        while above >= 0 and lines[above].lstrip().startswith("#"):
            comments.append(lines[above].strip())
            above -= 1
        doc = any(comment.startswith("# --") for comment in comments) or any(d for _, d in documented)
        groups = position + 1 < len(keys) and len(keys[position + 1][1].group(1)) > indent
        if not doc and not groups:
            undocumented.append(match.group(2))
        documented.append((indent, doc))
    assert not undocumented


def test_chart_copies_are_the_generated_files() -> None:
    for name in (CRD_FILENAME, PEERING_CRD_FILENAME):
        assert (CHART / "crds" / name).read_text() == (ROOT / "crds" / name).read_text()


def test_dashboard_queries_name_metrics_that_exist() -> None:
    from deepseek_serving.metrics import GROUP_QUEUE_DEPTH_METRIC, RANK_QUEUE_DEPTH_METRIC

    dashboard = json.loads((CHART / "files" / "grafana-dashboard.json").read_text())
    expressions = [target["expr"] for panel in dashboard["panels"] for target in panel.get("targets", [])]
    suffixes = {"counter": ("_total",), "histogram": ("_bucket", "_sum", "_count"), "gauge": ("",)}
    operator_metrics = {
        family.name + suffix
        for collector in (
            metrics.API_REQUESTS,
            metrics.RECONCILES,
            metrics.RECONCILE_SECONDS,
            metrics.DECISIONS,
            metrics.QUEUE_DEPTH,
            metrics.VERSION_WEIGHT,
            metrics.VERSION_GROUPS,
            metrics.ROLLOUT_STEP,
            metrics.ROLLOUT_STEP_STARTED,
            metrics.CONDITION,
            metrics.EPLB_BALANCEDNESS,
        )
        for family in collector.describe()
        for suffix in suffixes[family.type]
    }
    # Serving metrics: ours through Ray (`ray_` prefix) and vLLM's through Ray (`ray_vllm_*`);
    # e2e_tests/test_observability.py queries each on a real run.
    known = operator_metrics | {
        f"ray_{GROUP_QUEUE_DEPTH_METRIC}",
        f"ray_{RANK_QUEUE_DEPTH_METRIC}",
        "ray_deepseek_serving_requests_total",
        "ray_vllm_num_requests_waiting",
        "ray_vllm_num_requests_running",
        "ray_vllm_time_to_first_token_seconds_bucket",
        "ray_vllm_inter_token_latency_seconds_bucket",
        "ray_vllm_generation_tokens_total",
        "ray_vllm_prompt_tokens_total",
        "ray_vllm_kv_cache_usage_perc",
    }
    named = {name for expr in expressions for name in re.findall(r"\b((?:deepseek|ray)_[a-z_:]+)\b", expr)}
    assert named - known == set()
    assert f"ray_{GROUP_QUEUE_DEPTH_METRIC}" in named
