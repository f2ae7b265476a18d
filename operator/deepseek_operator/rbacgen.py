"""Least-privilege RBAC for the operator, generated beside the CRD (`dsd crd`).

`PERMISSIONS` lists every API call the operator process makes, its own (`k8s.client.KubeClient`)
and kopf's, each with the reason it is needed; nothing else is granted. Two outputs come from it:
`crds/rbac.yaml` (a plain ClusterRole for `kubectl apply`) and the chart's
`templates/clusterrole.yaml` (the same rules, with the chart's names and the optional parts behind
their values). A test runs the operator against the test API server, records every request, and
checks both directions: each request is allowed by these rules, and each rule was needed.

Notes on the verbs:
- server-side apply is a PATCH, and the API server authorizes an apply that creates the object as
  `create` too: every applied kind needs both;
- the operator reads its children from kopf's label-selected watches (`list`, `watch`); it GETs
  an object only before creating it (one it did not label may already hold the name: never taken
  over) and a ConfigMap a deployment names the first time (then the ConfigMap watch keeps it);
- it deletes only a retired version's RayService, with a uid precondition;
  the Service and HTTPRoute follow the deployment by owner reference (garbage collection);
- kopf, cluster-wide: its resync timer runs without kopf's finalizer
  (`handlers._without_finalizer`), so deployments are never patched; kopf scans CRDs (list,
  watch) to notice resources appear, keeps alive in the ClusterKopfPeering (list, watch, patch),
  and with a managed webhook creates both admission configurations (create cannot be limited to a
  name; kopf tries it on every start) and patches them by name. kopf's own Events are off (the
  reconciler posts one per decision).
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

from deepseek_operator.api import constants
from deepseek_operator.settings import WebhookSettings

__all__ = [
    "CHART_TEMPLATE",
    "PERMISSIONS",
    "RBAC_FILENAME",
    "Permission",
    "allows",
    "chart_cluster_role_template",
    "rbac_yaml",
    "render_cluster_role",
]

RBAC_FILENAME = "rbac.yaml"
CHART_TEMPLATE = "templates/clusterrole.yaml"
WEBHOOK_CONFIGURATION = WebhookSettings().managed_configuration or ""

Feature = Literal["always", "peering", "webhook"]


@dataclass(frozen=True)
class Permission:
    """One rule: verbs on one resource of one API group, and why the operator needs them."""

    group: str
    resource: str
    verbs: tuple[str, ...]
    why: str
    feature: Feature = "always"
    """`peering` and `webhook` rules are granted only when the chart turns that feature on."""
    names: tuple[str, ...] = ()
    """`resourceNames`; the chart's template puts its own webhook configuration name there."""


PERMISSIONS: tuple[Permission, ...] = (
    Permission(
        constants.GROUP,
        constants.PLURAL,
        ("list", "watch"),
        "kopf watches DeepSeekDeployments (the resync timer runs without kopf's finalizer)",
    ),
    Permission(
        constants.GROUP,
        f"{constants.PLURAL}/status",
        ("patch",),
        "the reconciler's one status write per pass",
    ),
    Permission(
        "ray.io",
        "rayservices",
        ("get", "list", "watch", "create", "patch", "delete"),
        "watched children; a name checked before creating; applied (server-side apply creates); "
        "retired versions deleted",
    ),
    Permission(
        "",
        "configmaps",
        ("get", "list", "watch"),
        "the architecture and load-statistics ConfigMaps a deployment names: read once, then watched",
    ),
    Permission(
        "",
        "services",
        ("get", "list", "watch", "create", "patch"),
        "the stable Service: watched, its name checked before creating, applied; owner references delete it",
    ),
    Permission(
        "gateway.networking.k8s.io",
        "httproutes",
        ("get", "list", "watch", "create", "patch"),
        "the HTTPRoute: watched, its name checked before creating, applied; owner references delete it",
    ),
    Permission("", "events", ("create",), "one Event per decision"),
    Permission(
        "apiextensions.k8s.io",
        "customresourcedefinitions",
        ("list", "watch"),
        "kopf notices resources (RayService, HTTPRoute) appear and go",
    ),
    Permission(
        "kopf.dev",
        "clusterkopfpeerings",
        ("list", "watch", "patch"),
        "kopf peering: one replica works, the others pause",
        feature="peering",
    ),
    Permission(
        "admissionregistration.k8s.io",
        "validatingwebhookconfigurations",
        ("create",),
        "kopf creates its managed configuration if absent (create takes no resourceNames)",
        feature="webhook",
    ),
    Permission(
        "admissionregistration.k8s.io",
        "validatingwebhookconfigurations",
        ("patch",),
        "kopf keeps the webhooks of its managed configuration current",
        feature="webhook",
        names=(WEBHOOK_CONFIGURATION,),
    ),
    Permission(
        "admissionregistration.k8s.io",
        "mutatingwebhookconfigurations",
        ("create",),
        "kopf also creates an (empty) mutating configuration of the same name",
        feature="webhook",
    ),
    Permission(
        "admissionregistration.k8s.io",
        "mutatingwebhookconfigurations",
        ("patch",),
        "kopf writes its (empty) webhook list",
        feature="webhook",
        names=(WEBHOOK_CONFIGURATION,),
    ),
)


def _rule(permission: Permission, names: Sequence[str]) -> dict[str, Any]:
    rule: dict[str, Any] = {
        "apiGroups": [permission.group],
        "resources": [permission.resource],
        "verbs": list(permission.verbs),
    }
    if names:
        rule["resourceNames"] = list(names)
    return rule


def render_cluster_role(
    name: str = constants.MANAGED_BY, *, webhook_configuration: str = WEBHOOK_CONFIGURATION
) -> dict[str, Any]:
    """The ClusterRole object of a cluster-wide operator with peering and the managed webhook."""
    rules = [_rule(p, [webhook_configuration] if p.names else ()) for p in PERMISSIONS]
    return {
        "apiVersion": "rbac.authorization.k8s.io/v1",
        "kind": "ClusterRole",
        "metadata": {"name": name, "labels": {"app.kubernetes.io/name": constants.MANAGED_BY}},
        "rules": rules,
    }


def _flow(values: Iterable[str]) -> str:
    return json.dumps(list(values))


def _rule_lines(permission: Permission, names: str | None) -> list[str]:
    lines = [
        f"  # {permission.why}",
        f"  - apiGroups: {_flow([permission.group])}",
        f"    resources: {_flow([permission.resource])}",
        f"    verbs: {_flow(permission.verbs)}",
    ]
    if names is not None:
        lines.append(f"    resourceNames: [{names}]")
    return lines


def rbac_yaml() -> str:
    """`crds/rbac.yaml`: the ClusterRole, one commented rule per permission."""
    role = render_cluster_role()
    lines = [
        "# Generated by `dsd crd` from deepseek_operator/rbacgen.py. Do not edit.",
        "# Bind it to the operator's ServiceAccount with a ClusterRoleBinding (the chart does).",
        f"apiVersion: {role['apiVersion']}",
        f"kind: {role['kind']}",
        "metadata:",
        f"  name: {role['metadata']['name']}",
        "  labels:",
        f"    app.kubernetes.io/name: {constants.MANAGED_BY}",
        "rules:",
    ]
    for permission in PERMISSIONS:
        lines += _rule_lines(permission, json.dumps(WEBHOOK_CONFIGURATION) if permission.names else None)
    return "\n".join(lines) + "\n"


def chart_cluster_role_template() -> str:
    """The chart's `templates/clusterrole.yaml`: the same rules, optional ones behind their values."""
    conditions: Mapping[Feature, str] = {
        "peering": ".Values.peering.enabled",
        "webhook": ".Values.webhook.enabled",
    }
    lines = [
        "{{- /* Generated by `dsd crd` from deepseek_operator/rbacgen.py. Do not edit. */}}",
        "{{- if .Values.rbac.create }}",
        "apiVersion: rbac.authorization.k8s.io/v1",
        "kind: ClusterRole",
        "metadata:",
        '  name: {{ include "deepseek-operator.fullname" . }}',
        "  labels:",
        '    {{- include "deepseek-operator.labels" . | nindent 4 }}',
        "rules:",
    ]
    for permission in PERMISSIONS:
        names = (
            '{{ include "deepseek-operator.webhookConfigurationName" . | quote }}'
            if permission.names
            else None
        )
        rule = _rule_lines(permission, names)
        if permission.feature == "always":
            lines += rule
        else:
            lines += [f"  {{{{- if {conditions[permission.feature]} }}}}", *rule, "  {{- end }}"]
    lines.append("{{- end }}")
    return "\n".join(lines) + "\n"


def allows(
    rules: Iterable[Mapping[str, Any]], *, group: str, resource: str, verb: str, name: str = ""
) -> bool:
    """RBAC's decision for one request (no wildcards are generated, but `*` is understood)."""
    for rule in rules:
        if not _matches(rule.get("apiGroups"), group) or not _matches(rule.get("resources"), resource):
            continue
        if not _matches(rule.get("verbs"), verb):
            continue
        names = rule.get("resourceNames") or []
        if names and name not in names:
            continue
        return True
    return False


def _matches(values: Iterable[str] | None, value: str) -> bool:
    allowed = list(values or [])
    return value in allowed or "*" in allowed
