"""Real clients against the test API server, unchanged: the kubernetes client, kopf, kubectl, Helm."""

from __future__ import annotations

import asyncio
import os
import shutil
import subprocess
import threading
import time
from pathlib import Path
from typing import Any

import pytest
from kubernetes import client, watch

from tests.testing.conftest import WIDGET_CRD

pytestmark = pytest.mark.usefixtures("widgets_crd")


def test_kubernetes_client_crud(k8s_client: Any, namespace: str) -> None:
    core = client.CoreV1Api(k8s_client)
    created = core.create_namespaced_config_map(
        namespace, {"metadata": {"name": "c", "labels": {"app": "x"}}, "data": {"k": "v"}}
    )
    assert created.metadata.uid
    assert core.read_namespaced_config_map("c", namespace).data == {"k": "v"}
    created.data["k"] = "w"
    replaced = core.replace_namespaced_config_map("c", namespace, created)
    assert replaced.data == {"k": "w"}
    patched = core.patch_namespaced_config_map("c", namespace, {"data": {"z": "1"}})
    assert patched.data == {"k": "w", "z": "1"}
    assert [
        c.metadata.name for c in core.list_namespaced_config_map(namespace, label_selector="app=x").items
    ] == ["c"]
    core.delete_namespaced_config_map("c", namespace)
    with pytest.raises(client.ApiException) as err:
        core.read_namespaced_config_map("c", namespace)
    assert err.value.status == 404


def test_kubernetes_client_typed_workloads(k8s_client: Any, namespace: str) -> None:
    apps = client.AppsV1Api(k8s_client)
    body = {
        "metadata": {"name": "d"},
        "spec": {
            "replicas": 2,
            "selector": {"matchLabels": {"app": "d"}},
            "template": {
                "metadata": {"labels": {"app": "d"}},
                "spec": {"containers": [{"name": "m", "image": "busybox"}]},
            },
        },
    }
    created = apps.create_namespaced_deployment(namespace, body)
    assert created.metadata.generation == 1
    status = apps.patch_namespaced_deployment_status(
        "d", namespace, {"status": {"readyReplicas": 2, "replicas": 2}}
    )
    assert status.status.ready_replicas == 2
    rbac = client.RbacAuthorizationV1Api(k8s_client)
    rbac.create_namespaced_role(
        namespace,
        {"metadata": {"name": "r"}, "rules": [{"apiGroups": [""], "resources": ["pods"], "verbs": ["get"]}]},
    )
    assert rbac.read_namespaced_role("r", namespace).rules[0].verbs == ["get"]
    leases = client.CoordinationV1Api(k8s_client)
    leases.create_namespaced_lease(namespace, {"metadata": {"name": "l"}, "spec": {"holderIdentity": "me"}})
    assert leases.read_namespaced_lease("l", namespace).spec.holder_identity == "me"


def test_kubernetes_client_watch(k8s_client: Any, namespace: str) -> None:
    custom = client.CustomObjectsApi(k8s_client)
    rv = custom.list_namespaced_custom_object("example.dev", "v1", namespace, "widgets")["metadata"][
        "resourceVersion"
    ]

    def writes() -> None:
        time.sleep(0.2)
        custom.create_namespaced_custom_object(
            "example.dev",
            "v1",
            namespace,
            "widgets",
            {
                "apiVersion": "example.dev/v1",
                "kind": "Widget",
                "metadata": {"name": "w"},
                "spec": {"size": 2},
            },
        )
        custom.patch_namespaced_custom_object(
            "example.dev", "v1", namespace, "widgets", "w", {"spec": {"size": 3}}
        )
        custom.delete_namespaced_custom_object("example.dev", "v1", namespace, "widgets", "w")

    writer = threading.Thread(target=writes)
    writer.start()
    seen = []
    stream = watch.Watch()
    for event in stream.stream(
        custom.list_namespaced_custom_object,
        "example.dev",
        "v1",
        namespace,
        "widgets",
        resource_version=rv,
        timeout_seconds=5,
    ):
        seen.append((event["type"], event["object"]["spec"]["size"]))
        if event["type"] == "DELETED":
            stream.stop()
    writer.join()
    assert seen == [("ADDED", 2), ("MODIFIED", 3), ("DELETED", 3)]


OPERATOR = """
import kopf

@kopf.on.startup()
def configure(settings, **_):
    settings.watching.server_timeout = 5

@kopf.on.create("example.dev", "v1", "widgets")
def created(body, spec, patch, logger, **_):
    logger.info("widget created")
    kopf.info(body, reason="Seen", message="a widget was created")
    patch.status["phase"] = "Seen"
    patch.status["replicas"] = spec.get("size", 0) * 2

@kopf.on.delete("example.dev", "v1", "widgets")
def deleted(**_):
    pass
"""


@pytest.mark.usefixtures("kubeconfig_env", "kopf_registry")
def test_kopf_handler_reacts_to_a_custom_resource(k8s_client: Any, namespace: str, tmp_path: Path) -> None:
    """kopf runs for real (KopfRunner): it sees the create, patches status, and handles deletion via its finalizer."""
    from kopf.testing import KopfRunner

    script = tmp_path / "widget_operator.py"  # not operator.py: that would shadow the stdlib module
    script.write_text(OPERATOR)
    custom = client.CustomObjectsApi(k8s_client)
    core = client.CoreV1Api(k8s_client)
    with KopfRunner(["run", "--standalone", f"--namespace={namespace}", str(script)], timeout=60) as runner:
        custom.create_namespaced_custom_object(
            "example.dev",
            "v1",
            namespace,
            "widgets",
            {
                "apiVersion": "example.dev/v1",
                "kind": "Widget",
                "metadata": {"name": "w"},
                "spec": {"size": 3},
            },
        )
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            obj = custom.get_namespaced_custom_object("example.dev", "v1", namespace, "widgets", "w")
            if (obj.get("status") or {}).get("phase") == "Seen":
                break
            time.sleep(0.1)
        assert obj["status"]["replicas"] == 6
        assert "kopf.zalando.org/KopfFinalizerMarker" in obj["metadata"]["finalizers"]
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:  # kopf posts core/v1 Events about its handlers
            events = core.list_namespaced_event(namespace).items
            if any(e.involved_object.name == "w" for e in events):
                break
            time.sleep(0.1)
        custom.delete_namespaced_custom_object("example.dev", "v1", namespace, "widgets", "w")
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            if not custom.list_namespaced_custom_object("example.dev", "v1", namespace, "widgets")["items"]:
                break
            time.sleep(0.1)
    assert runner.exit_code == 0, runner.output
    assert runner.exception is None
    assert "widget created" in runner.output
    assert not custom.list_namespaced_custom_object("example.dev", "v1", namespace, "widgets")["items"]
    assert any(e.involved_object.name == "w" and e.reason == "Seen" for e in events)


CHART = {
    "Chart.yaml": "apiVersion: v2\nname: tiny\nversion: 0.1.0\n",
    "values.yaml": "replicas: 1\n",
    "crds/widgets.yaml": "",
    "templates/all.yaml": """apiVersion: v1
kind: ServiceAccount
metadata:
  name: {{ .Release.Name }}
---
apiVersion: v1
kind: ConfigMap
metadata:
  name: {{ .Release.Name }}-config
data:
  replicas: "{{ .Values.replicas }}"
---
apiVersion: apps/v1
kind: Deployment
metadata:
  name: {{ .Release.Name }}
spec:
  replicas: {{ .Values.replicas }}
  selector:
    matchLabels: {app: {{ .Release.Name }}}
  template:
    metadata:
      labels: {app: {{ .Release.Name }}}
    spec:
      serviceAccountName: {{ .Release.Name }}
      containers: [{name: main, image: busybox}]
---
apiVersion: v1
kind: Service
metadata:
  name: {{ .Release.Name }}
spec:
  selector: {app: {{ .Release.Name }}}
  ports: [{port: 80, targetPort: 8080}]
---
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRole
metadata:
  name: {{ .Release.Name }}
rules: [{apiGroups: [example.dev], resources: [widgets], verbs: [get, list, watch]}]
---
apiVersion: example.dev/v1
kind: Widget
metadata:
  name: {{ .Release.Name }}
spec:
  size: 2
""",
}


def test_helm_installs_upgrades_and_uninstalls_a_chart(
    kubeconfig: Path, k8s_client: Any, namespace: str, tmp_path: Path
) -> None:
    """The real Helm engine (helm-sdkpy: Helm's Go code as a shared library) against the server."""
    helm = pytest.importorskip(
        "helm_sdkpy", reason="install helm-sdkpy (see pyproject's testing extra notes)"
    )
    import yaml

    chart = tmp_path / "tiny"
    for name, text in CHART.items():
        (chart / name).parent.mkdir(parents=True, exist_ok=True)
        (chart / name).write_text(text)
    (chart / "crds/widgets.yaml").write_text(yaml.safe_dump(WIDGET_CRD))
    config = helm.Configuration(namespace=namespace, kubeconfig=str(kubeconfig))
    release = asyncio.run(
        helm.Install(config).run("demo", str(chart), values={"replicas": 2}, wait=False, timeout=60)
    )
    assert release["info"]["status"] == "deployed"
    apps = client.AppsV1Api(k8s_client)
    assert apps.read_namespaced_deployment("demo", namespace).spec.replicas == 2
    custom = client.CustomObjectsApi(k8s_client)
    assert (
        custom.get_namespaced_custom_object("example.dev", "v1", namespace, "widgets", "demo")["spec"]["size"]
        == 2
    )
    asyncio.run(helm.Upgrade(config).run("demo", str(chart), values={"replicas": 3}, wait=False, timeout=60))
    assert apps.read_namespaced_deployment("demo", namespace).spec.replicas == 3
    assert [r["name"] for r in asyncio.run(helm.List(config).run())] == ["demo"]
    asyncio.run(helm.Uninstall(config).run("demo", wait=False))
    assert not apps.list_namespaced_deployment(namespace).items
    assert (
        not client.CoreV1Api(k8s_client).list_namespaced_secret(namespace, label_selector="owner=helm").items
    )


KUBECTL = shutil.which("kubectl")


@pytest.mark.skipif(KUBECTL is None, reason="kubectl is not installed")
def test_kubectl(kubeconfig: Path, namespace: str, tmp_path: Path) -> None:
    env = {**os.environ, "KUBECONFIG": str(kubeconfig), "KUBECACHEDIR": str(tmp_path / "cache")}

    def kubectl(*args: str, stdin: str | None = None) -> str:
        done = subprocess.run(
            [str(KUBECTL), "-n", namespace, *args],
            env=env,
            input=stdin,
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        assert done.returncode == 0, done.stderr
        return done.stdout

    kubectl("create", "configmap", "imperative", "--from-literal=a=b")
    manifest = "apiVersion: example.dev/v1\nkind: Widget\nmetadata:\n  name: w\nspec:\n  size: 4\n"
    assert "widget.example.dev/w created" in kubectl("apply", "-f", "-", stdin=manifest)
    conflict = subprocess.run(
        [str(KUBECTL), "-n", namespace, "apply", "--server-side", "-f", "-"],
        env=env,
        input=manifest.replace("4", "5"),
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert 'conflict with "kubectl-client-side-apply"' in conflict.stderr  # as on a real server
    assert "serverside-applied" in kubectl(
        "apply", "--server-side", "--force-conflicts", "-f", "-", stdin=manifest.replace("4", "5")
    )
    table = kubectl("get", "widgets")
    assert "SIZE" in table
    assert "5" in table
    assert kubectl("get", "wd", "w", "-o", "jsonpath={.spec.maxSize}") == "10"
    kubectl("scale", "widget", "w", "--replicas=3")
    assert kubectl("get", "widget", "w", "-o", "jsonpath={.spec.replicas}") == "3"
    kubectl("delete", "widget", "w")
    assert kubectl("auth", "can-i", "create", "pods").strip() == "yes"
