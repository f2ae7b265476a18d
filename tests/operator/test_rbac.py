"""Least privilege, proved by running the operator: every request it makes is allowed by the
generated ClusterRole, and every permission the ClusterRole grants was used.

The operator runs as in the chart (peering on, the managed webhook on) against a test API server
of its own whose audit log records each request's RBAC attributes, through a deployment's whole
life: created with its architecture in a ConfigMap and a Gateway API route, served, upgraded to a
new version (the old RayService and its expert map retired), then the operator stops.
"""

from __future__ import annotations

import copy
import json
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from kubernetes import client, config

from deepseek_operator.api.constants import GROUP, PLURAL, VERSION
from deepseek_operator.k8s.connect import USER_AGENT
from deepseek_operator.modelcfg.catalog import catalog_config
from deepseek_operator.rbacgen import PERMISSIONS, allows, rbac_yaml, render_cluster_role
from deepseek_operator.testing.kuberay import KubeRayStandIn, find_kuberay_crds
from deepseek_operator.testing.server import ApiServer
from tests.api.resources import example
from tests.crd_stubs import preserve_unknown_crd
from tests.operator.audit import Attributes, AuditLog, request_attributes
from tests.operator.certs import make_certs, webhook_env
from tests.operator.conftest import ROOT, InstantServe, eventually
from tests.operator.process import OperatorProcess, free_port

HTTPROUTE_CRD = preserve_unknown_crd("gateway.networking.k8s.io", "HTTPRoute", "httproutes")


class Run:
    """What the operator did in one audited life of a deployment."""

    def __init__(self, requests: list[Attributes], webhook_configuration: str, output: str) -> None:
        self.requests = requests
        self.webhook_configuration = webhook_configuration
        self.output = output


@pytest.fixture(scope="module")
def audited_run(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Run]:
    crds = find_kuberay_crds()
    if crds is None:
        pytest.skip("KubeRay CRDs not found: set KUBERAY_CRDS to shared/kuberay-crds/v1.7.0")
    directory = tmp_path_factory.mktemp("rbac")
    audit = AuditLog(USER_AGENT, "kopf/")
    server = ApiServer(bookmark_interval_s=0.2)
    audit.install(server)
    with server:
        kubeconfig = server.write_kubeconfig(directory / "kubeconfig")
        server.install_crds([*sorted((ROOT / "crds").glob("*.yaml")), *sorted(crds.glob("*.yaml"))])
        (directory / "httproute.yaml").write_text(yaml.safe_dump(HTTPROUTE_CRD))
        server.install_crds([directory / "httproute.yaml"])
        api = config.new_client_from_config(str(kubeconfig))  # type: ignore[no-untyped-call]
        with KubeRayStandIn(kubeconfig, InstantServe(), resync_s=0.2):
            yield _run_deployment_life(api, kubeconfig, directory, audit)
        api.close()


def _run_deployment_life(api: Any, kubeconfig: Path, directory: Path, audit: AuditLog) -> Run:
    core, custom = client.CoreV1Api(api), client.CustomObjectsApi(api)
    peering = f"rbac-{uuid.uuid4().hex[:6]}"
    custom.create_cluster_custom_object(
        "kopf.dev",
        "v1",
        "clusterkopfpeerings",
        {"apiVersion": "kopf.dev/v1", "kind": "ClusterKopfPeering", "metadata": {"name": peering}},
    )
    namespace = "serving"
    core.create_namespace({"metadata": {"name": namespace}})
    core.create_namespaced_config_map(
        namespace,
        {
            "metadata": {"name": "tiny-arch"},
            "data": {"config.json": json.dumps(catalog_config("deepseek-tiny"))},
        },
    )
    document = copy.deepcopy(example("tiny-local"))
    spec = document["spec"]
    spec["model"]["architecture"] = {"configMapRef": {"name": "tiny-arch"}}
    # GPU ranks with EPLB (the stand-in fakes serving anyway), the architecture from a ConfigMap.
    spec["parallelism"] = {
        "tensorParallelSize": 1,
        "dataParallelSize": 2,
        "expertParallelSize": 2,
        "eplb": {"enabled": True, "redundantExperts": 2},
    }
    spec["resources"] = {"gpuType": "H100", "gpusPerNode": 2}
    spec["serving"]["httpRoute"] = {"parentRefs": [{"name": "gateway"}]}
    spec["serving"]["limits"] = {"requestTimeoutSeconds": 1}  # a short drain of the old version

    certs = make_certs(directory)
    configuration = f"{peering}.{GROUP}"
    env = {
        "DSD_PEERING__NAME": peering,
        "DSD_PEERING__MANDATORY": "true",
        **webhook_env(certs, configuration, free_port()),
    }
    operator = OperatorProcess(kubeconfig, directory / "operator.log", env=env)
    with operator:
        # The deployment comes after the ConfigMap's listing, so the operator reads the ConfigMap
        # it names with a GET (the permission under test) rather than keeping it from the watch.
        eventually(lambda: _watches(audit, "configmaps"), timeout=30)

        def status() -> dict[str, Any]:
            found = custom.get_namespaced_custom_object(GROUP, VERSION, namespace, PLURAL, "tiny")
            return dict(found.get("status") or {})

        def serving(version: str) -> bool:
            return status().get("phase") == "Serving" and status().get("currentVersion") == version

        custom.create_namespaced_custom_object(GROUP, VERSION, namespace, PLURAL, document)
        eventually(lambda: serving("v1"), timeout=30)
        versions = [*spec["versions"], {"name": "v2", "engineArgs": {"max_num_seqs": 4}}]
        custom.patch_namespaced_custom_object(
            GROUP, VERSION, namespace, PLURAL, "tiny", {"spec": {"versions": versions}}
        )
        eventually(lambda: serving("v2"), timeout=30)

        def retired() -> bool:
            listed = custom.list_namespaced_custom_object("ray.io", "v1", namespace, "rayservices")["items"]
            return {item["metadata"]["labels"][f"{GROUP}/version"] for item in listed} == {"v2"}

        eventually(retired, timeout=45)
    # Stopped (SIGTERM): kopf's clean-up requests are in the log too.
    return Run(list(audit.requests), configuration, operator.output)


def _watches(audit: AuditLog, resource: str) -> bool:
    return any(request.verb == "watch" and request.resource == resource for request in audit.requests)


def _granted(role: dict[str, Any]) -> set[tuple[str, str, str]]:
    return {
        (group, resource, verb)
        for rule in role["rules"]
        for group in rule["apiGroups"]
        for resource in rule["resources"]
        for verb in rule["verbs"]
    }


def test_every_request_of_the_operator_is_allowed(audited_run: Run) -> None:
    role = render_cluster_role(webhook_configuration=audited_run.webhook_configuration)
    denied = [
        request
        for request in audited_run.requests
        if not allows(
            role["rules"],
            group=request.group,
            resource=request.resource,
            verb=request.verb,
            name=request.name,
        )
    ]
    assert not denied, "\n".join(map(str, denied))


def test_every_permission_was_needed(audited_run: Run) -> None:
    role = render_cluster_role(webhook_configuration=audited_run.webhook_configuration)
    used = {(request.group, request.resource, request.verb) for request in audited_run.requests}
    assert _granted(role) - used == set()


def test_named_permissions_name_only_the_managed_configuration(audited_run: Run) -> None:
    """The webhook configurations are patched by name; another name would be refused."""
    rules = render_cluster_role(webhook_configuration=audited_run.webhook_configuration)["rules"]
    patched = {
        r.name
        for r in audited_run.requests
        if r.resource.endswith("webhookconfigurations") and r.verb == "patch"
    }
    assert patched == {audited_run.webhook_configuration}
    assert not allows(
        rules,
        group="admissionregistration.k8s.io",
        resource="validatingwebhookconfigurations",
        verb="patch",
        name="other",
    )


def test_generated_file_is_the_rendered_role() -> None:
    assert yaml.safe_load(rbac_yaml()) == render_cluster_role()
    assert (ROOT / "crds" / "rbac.yaml").read_text() == rbac_yaml(), "run `dsd crd` and commit"
    assert len({(p.group, p.resource, tuple(p.verbs), p.names) for p in PERMISSIONS}) == len(PERMISSIONS)


@pytest.mark.parametrize(
    ("method", "path", "query", "expected"),
    [
        ("GET", "/api/v1/namespaces/a/configmaps/x", {}, ("get", "", "configmaps", "x")),
        ("GET", "/api/v1/configmaps", {"watch": "true"}, ("watch", "", "configmaps", "")),
        ("GET", "/apis/ray.io/v1/namespaces/a/rayservices", {}, ("list", "ray.io", "rayservices", "")),
        (
            "PATCH",
            f"/apis/{GROUP}/v1alpha1/namespaces/a/{PLURAL}/t/status",
            {},
            ("patch", GROUP, f"{PLURAL}/status", "t"),
        ),
        ("POST", "/api/v1/namespaces/a/events", {}, ("create", "", "events", "")),
        ("DELETE", "/api/v1/namespaces/a", {}, ("delete", "", "namespaces", "a")),
        (
            "GET",
            "/apis/kopf.dev/v1/clusterkopfpeerings",
            {"watch": "1"},
            ("watch", "kopf.dev", "clusterkopfpeerings", ""),
        ),
    ],
)
def test_request_attributes_follow_the_api_servers_rules(
    method: str, path: str, query: dict[str, str], expected: tuple[str, str, str, str]
) -> None:
    attributes = request_attributes(method, path, query, "ua")
    assert attributes is not None
    assert (attributes.verb, attributes.group, attributes.resource, attributes.name) == expected
    assert request_attributes("GET", "/apis/ray.io/v1", {}, "ua") is None
