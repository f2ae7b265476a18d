"""The admission webhook for real: `dsd operator` serving kopf's HTTPS webhook, reviewed as the API
server reviews, and compared word for word with `dsd validate`.

The test API server cannot call admission webhooks itself (see `deepseek_operator.testing`), so
the test plays its part: it reads the ValidatingWebhookConfiguration kopf manages in the test API
server, and POSTs an AdmissionReview to the URL that configuration names, trusting only the CA
bundle it carries.
"""

from __future__ import annotations

import base64
import copy
import json
import ssl
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import kopf
import pytest
import yaml
from kubernetes import client
from typer.testing import CliRunner

from deepseek_operator.api.constants import GROUP, KIND, PLURAL, VERSION
from deepseek_operator.cli import app
from deepseek_operator.modelcfg.catalog import catalog_config
from deepseek_operator.settings import WebhookSettings
from deepseek_operator.webhook import ServiceWebhookServer, configure
from tests.api.resources import example
from tests.operator.certs import make_certs, webhook_env
from tests.operator.conftest import eventually
from tests.operator.process import OperatorProcess, free_port

TINY_CONFIG = json.dumps(catalog_config("deepseek-tiny"))


def _config_map(namespace: str) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {"name": "tiny-arch", "namespace": namespace},
        "data": {"config.json": TINY_CONFIG},
    }


def _deployment(namespace: str, **spec: Any) -> dict[str, Any]:
    document = copy.deepcopy(example("tiny-local"))
    document["metadata"]["namespace"] = namespace
    document["spec"]["model"]["architecture"] = {"configMapRef": {"name": "tiny-arch"}}
    for path, value in spec.items():
        node = document["spec"]
        *parents, leaf = path.split(".")
        for part in parents:
            node = node.setdefault(part, {})
        node[leaf] = value
    return document


INVALID = {
    "model.maxModelLen": 10**6,  # needs the architecture from the ConfigMap to be found wrong
    "parallelism.tensorParallelSize": 3,  # 4 attention heads
    "serving.port": 0,  # structural
}


@dataclass(frozen=True)
class Webhook:
    operator: OperatorProcess
    configuration: str
    """Name of the ValidatingWebhookConfiguration kopf manages."""
    config: dict[str, Any]
    """Its one webhook, as kopf wrote it."""
    namespace: str


@pytest.fixture(scope="module")
def webhook(
    kubeconfig: Path, project_crds: list[str], tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Webhook]:
    """The operator with its webhook on 127.0.0.1 (a CA-signed certificate, as the chart mounts)."""
    from kubernetes import config

    api_client = config.new_client_from_config(str(kubeconfig))  # type: ignore[no-untyped-call]
    core, admission = client.CoreV1Api(api_client), client.AdmissionregistrationV1Api(api_client)
    namespace = f"test-{uuid.uuid4().hex[:8]}"
    core.create_namespace({"metadata": {"name": namespace}})
    core.create_namespaced_config_map(namespace, _config_map(namespace))
    directory = tmp_path_factory.mktemp("webhook")
    certs = make_certs(directory)
    configuration = f"test-{uuid.uuid4().hex[:8]}.{GROUP}"
    env = {
        **webhook_env(certs, configuration, free_port()),
    }
    try:
        with OperatorProcess(kubeconfig, directory / "operator.log", env=env, standalone=True) as operator:
            managed = eventually(lambda: _managed_webhook(api_client, configuration), timeout=30)
            yield Webhook(operator, configuration, managed, namespace)
    finally:
        admission.delete_validating_webhook_configuration(configuration)
        admission.delete_mutating_webhook_configuration(configuration)
        core.delete_namespace(namespace)
        api_client.close()


def _managed_webhook(api_client: Any, name: str) -> dict[str, Any]:
    """The webhook kopf configured, once it has (the object exists before its webhooks do)."""
    try:
        found = client.AdmissionregistrationV1Api(api_client).read_validating_webhook_configuration(name)
    except client.ApiException as error:
        raise AssertionError(f"{name}: {error.reason}") from None
    (webhook,) = api_client.sanitize_for_serialization(found)["webhooks"]
    return dict(webhook)


def _review(
    obj: dict[str, Any], operation: str = "CREATE", old: dict[str, Any] | None = None
) -> dict[str, Any]:
    """An AdmissionReview as the API server sends it (admission.k8s.io/v1)."""
    gvk = {"group": GROUP, "version": VERSION, "kind": KIND}
    return {
        "apiVersion": "admission.k8s.io/v1",
        "kind": "AdmissionReview",
        "request": {
            "uid": str(uuid.uuid4()),
            "kind": gvk,
            "resource": {"group": GROUP, "version": VERSION, "resource": PLURAL},
            "requestKind": gvk,
            "requestResource": {"group": GROUP, "version": VERSION, "resource": PLURAL},
            "name": obj["metadata"]["name"],
            "namespace": obj["metadata"]["namespace"],
            "operation": operation,
            "userInfo": {
                "username": "kubernetes-admin",
                "groups": ["system:masters", "system:authenticated"],
            },
            "object": obj,
            "oldObject": old,
            "dryRun": False,
            "options": {"apiVersion": "meta.k8s.io/v1", "kind": f"{operation.title()}Options"},
        },
    }


def _send(webhook: dict[str, Any], review: dict[str, Any]) -> dict[str, Any]:
    """POST as the API server would: to the configured URL, trusting only the configured CA."""
    ca = base64.b64decode(webhook["clientConfig"]["caBundle"]).decode()
    context = ssl.create_default_context(cadata=ca)
    response = httpx.post(webhook["clientConfig"]["url"], json=review, verify=context, timeout=30)
    response.raise_for_status()
    answer: dict[str, Any] = response.json()
    assert answer["response"]["uid"] == review["request"]["uid"]
    return answer["response"]


def _dsd_validate_lines(tmp_path: Path, *documents: dict[str, Any]) -> list[str]:
    """`dsd validate` on the same documents: its `✗ FILE: path: message` lines, FILE removed."""
    manifest = tmp_path / "manifest.yaml"
    manifest.write_text(yaml.safe_dump_all(documents, sort_keys=False))
    result = CliRunner().invoke(app, ["validate", "--quiet", str(manifest)])
    origin = f"✗ {manifest}"  # then `#N` when the file holds several documents
    return [line.split(": ", 1)[1] for line in result.output.splitlines() if line.startswith(origin)]


def test_webhook_is_managed_and_denies_with_dsd_validate_words(webhook: Webhook, tmp_path: Path) -> None:
    namespace = webhook.namespace
    # What kopf wrote: our resource, creates and updates, refuse when unreachable, our CA.
    config = webhook.config
    (rule,) = config["rules"]
    assert (rule["apiGroups"], rule["apiVersions"], rule["resources"]) == ([GROUP], [VERSION], [PLURAL])
    assert sorted(rule["operations"]) == ["CREATE", "UPDATE"]
    assert config["failurePolicy"] == "Fail"
    assert config["sideEffects"] == "None"
    assert config["clientConfig"]["url"].startswith("https://127.0.0.1:")
    assert config["clientConfig"]["url"].endswith("/validate")

    # A valid resource whose architecture is a ConfigMap in the cluster: allowed.
    valid = _deployment(namespace)
    allowed = _send(webhook.config, _review(valid))
    assert allowed["allowed"] is True, allowed
    assert _dsd_validate_lines(tmp_path, _config_map(namespace), valid) == []

    # An invalid one: denied with every error, in exactly `dsd validate`'s words.
    invalid = _deployment(namespace, **INVALID)
    denied = _send(webhook.config, _review(invalid))
    assert denied["allowed"] is False
    assert denied["status"]["code"] == 422
    lines = denied["status"]["message"].splitlines()
    assert lines == _dsd_validate_lines(tmp_path, _config_map(namespace), invalid)
    assert len(lines) == 4, lines
    assert "spec.model.maxModelLen: 1000000 exceeds max_position_embeddings=4096 of tiny-arch" in lines
    assert webhook.operator.healthy()


def test_webhook_reads_the_configmap_at_admission_time(
    webhook: Webhook, k8s_client: Any, tmp_path: Path
) -> None:
    """The ConfigMap is read through the API per review: a missing one is an error at its field."""
    namespace = webhook.namespace
    document = _deployment(namespace)
    document["spec"]["model"]["architecture"] = {"configMapRef": {"name": "absent"}}
    denied = _send(webhook.config, _review(document))
    assert denied["allowed"] is False
    assert denied["status"]["message"].splitlines() == _dsd_validate_lines(tmp_path, document)
    assert (
        denied["status"]["message"]
        == "spec.model.architecture.configMapRef.name: ConfigMap 'absent' not found"
    )

    # The ConfigMap appears: the same review is now allowed.
    config_map = _config_map(namespace)
    config_map["metadata"]["name"] = "absent"
    client.CoreV1Api(k8s_client).create_namespaced_config_map(namespace, config_map)
    assert _send(webhook.config, _review(document))["allowed"] is True


def test_webhook_lets_invalid_objects_change_metadata_and_be_deleted(webhook: Webhook) -> None:
    """An object that became invalid (its ConfigMap changed) must still take labels and finalizer
    removal: only creates and spec changes are reviewed."""
    invalid = _deployment(webhook.namespace, **INVALID)
    relabeled = copy.deepcopy(invalid)
    relabeled["metadata"]["labels"] = {"team": "a"}
    assert _send(webhook.config, _review(relabeled, "UPDATE", old=invalid))["allowed"] is True
    deleting = copy.deepcopy(invalid)
    deleting["metadata"]["deletionTimestamp"] = "2026-01-01T00:00:00Z"
    deleting["spec"]["groups"] = -1
    assert _send(webhook.config, _review(deleting, "UPDATE", old=invalid))["allowed"] is True
    respecced = copy.deepcopy(invalid)
    respecced["spec"]["groups"] = 2
    assert _send(webhook.config, _review(respecced, "UPDATE", old=invalid))["allowed"] is False


async def test_in_cluster_server_announces_its_service_and_ca(tmp_path: Path) -> None:
    """In a cluster the API server must reach the webhook through the Service (it resolves no
    cluster DNS in URLs); kopf adds the handler id to the Service path."""
    certs = make_certs(tmp_path)
    server = ServiceWebhookServer(
        service_name="deepseek-operator-webhook",
        service_namespace="ops",
        service_port=443,
        addr="127.0.0.1",
        port=free_port(),
        certfile=certs.cert,
        pkeyfile=certs.key,
        cafile=certs.ca,
    )

    async def unused(*_: Any, **__: Any) -> Any:
        raise AssertionError("no review is sent")

    configs = server(unused)
    announced = await configs.__anext__()
    await configs.aclose()
    assert announced == {
        "service": {"name": "deepseek-operator-webhook", "namespace": "ops", "port": 443, "path": ""},
        "caBundle": base64.b64encode(certs.ca.read_bytes()).decode(),
    }


def test_configure_sets_kopf_admission_settings(tmp_path: Path) -> None:
    settings = kopf.OperatorSettings()
    configure(settings, WebhookSettings(enabled=True, service_name="svc", service_namespace="ops"))
    assert isinstance(settings.admission.server, ServiceWebhookServer)
    assert settings.admission.managed == "deepseek-operator.deepseek.serving.dev"
    configure(settings, WebhookSettings(enabled=True, managed_configuration=""))
    assert type(settings.admission.server) is kopf.WebhookServer
    assert settings.admission.managed is None
