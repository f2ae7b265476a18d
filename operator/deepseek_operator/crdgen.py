"""Generate the CustomResourceDefinition from the pydantic models (STYLE.md rule 14).

pydantic writes JSON Schema (draft 2020-12); the API server wants a *structural* OpenAPI v3.0
schema. The differences handled here:
- `$defs`/`$ref` are inlined (the API server resolves no references);
- `anyOf: [X, {type: null}]` (an Optional field) becomes X with `nullable: true`, keeping the
  field's own keywords written beside `anyOf`;
- free-form mappings (`dict[str, Any]`) and `Any` become `x-kubernetes-preserve-unknown-fields`; a
  key limit given as `json_schema_extra={"maxProperties": n}` stays (pydantic does not enforce it:
  `validation` does, with the same number);
- `exclusiveMinimum: n` becomes `minimum: n` + `exclusiveMinimum: true` (OpenAPI v3.0 booleans);
- `const` becomes a one-value `enum`; `title`, `additionalProperties: false` and null defaults go.
The cross-field rules arrive as `x-kubernetes-validations` already (see `api.rules`).

`dsd crd` writes the file, kopf's peering CRDs, the operator's ClusterRole (`rbacgen`) and the
chart's copies (`generated_files`); `dsd crd --check` and a test fail when a committed file differs.
"""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import yaml

from deepseek_operator.api import constants
from deepseek_operator.api.v1alpha1 import (
    DeepSeekDeployment,
    DeepSeekDeploymentSpec,
    DeepSeekDeploymentStatus,
)

__all__ = [
    "CRD_FILENAME",
    "PEERING_CRD_FILENAME",
    "crd_yaml",
    "editor_json_schema",
    "generated_files",
    "peering_crds_yaml",
    "render_crd",
    "render_peering_crds",
    "to_structural",
]

CRD_FILENAME = f"{constants.GROUP}_{constants.PLURAL}.yaml"
PEERING_CRD_FILENAME = "kopf.dev_peerings.yaml"

PRINTER_COLUMNS: list[dict[str, Any]] = [
    {
        "name": "Version",
        "type": "string",
        "jsonPath": ".status.currentVersion",
        "description": "Stable version",
    },
    {"name": "Ready", "type": "integer", "jsonPath": ".status.readyGroups", "description": "Groups serving"},
    {
        "name": "Desired",
        "type": "integer",
        "jsonPath": ".status.desiredGroups",
        "description": "Groups wanted",
    },
    {
        "name": "Canary",
        "type": "string",
        "jsonPath": ".status.canaryVersion",
        "description": "Version rolling out",
    },
    {
        "name": "Weight",
        "type": "integer",
        "jsonPath": ".status.canaryWeight",
        "description": "Canary traffic %",
    },
    {"name": "Step", "type": "string", "jsonPath": ".status.canaryStep", "description": "Rollout step"},
    {"name": "Phase", "type": "string", "jsonPath": ".status.phase", "description": "Summary"},
    {"name": "Age", "type": "date", "jsonPath": ".metadata.creationTimestamp"},
    # `-o wide` adds what a person checks next: where the rollout stands, why it stopped or waits
    # for a person, the group size behind a capacity request, and the one-line summary.
    {
        "name": "Rollout",
        "type": "string",
        "jsonPath": ".status.rollout.phase",
        "description": "Phase of the current or last rollout",
        "priority": 1,
    },
    {
        "name": "Reason",
        "type": "string",
        "jsonPath": ".status.rollout.reason",
        "description": "Why the rollout stopped or waits for a person",
        "priority": 1,
    },
    {
        "name": "GPUs/Group",
        "type": "integer",
        "jsonPath": ".status.plan.gpusPerGroup",
        "description": "GPUs of one data-parallel group",
        "priority": 1,
    },
    {"name": "Message", "type": "string", "jsonPath": ".status.message", "priority": 1},
]

# OpenAPI v3.0 keywords a structural schema may carry, plus the Kubernetes extensions we use.
_KEPT_KEYWORDS = {
    "type", "description", "properties", "items", "additionalProperties", "required", "enum", "default",
    "minimum", "maximum", "exclusiveMinimum", "exclusiveMaximum", "minLength", "maxLength", "pattern",
    "minItems", "maxItems", "uniqueItems", "minProperties", "maxProperties", "format", "nullable",
    "x-kubernetes-validations", "x-kubernetes-preserve-unknown-fields", "x-kubernetes-list-type",
    "x-kubernetes-list-map-keys", "x-kubernetes-map-type", "x-kubernetes-int-or-string",
}  # fmt: skip


def to_structural(schema: dict[str, Any], definitions: dict[str, Any] | None = None) -> dict[str, Any]:
    """A pydantic JSON Schema node as a structural OpenAPI v3.0 schema node (see module docstring)."""
    definitions = definitions if definitions is not None else schema.get("$defs", {})
    node = _inline(schema, definitions)

    variants = node.pop("anyOf", None)
    if variants is not None:
        non_null = [variant for variant in variants if variant.get("type") != "null"]
        if len(non_null) != 1:
            raise ValueError(f"cannot express a union of {len(non_null)} types structurally: {variants}")
        inner = _inline(non_null[0], definitions)
        # The field's own keywords sit beside `anyOf`: its description and default, and limits
        # given as `json_schema_extra` (`maxProperties` of an optional free-form mapping).
        node = {**inner, **{k: v for k, v in node.items() if k in _KEPT_KEYWORDS}}
        if len(non_null) < len(variants):
            node["nullable"] = True

    if node.get("default", 0) is None:
        del node["default"]
    if "const" in node:
        node["enum"] = [node.pop("const")]
    if isinstance(node.get("exclusiveMinimum"), int | float) and not isinstance(
        node["exclusiveMinimum"], bool
    ):
        node["minimum"], node["exclusiveMinimum"] = node["exclusiveMinimum"], True
    if isinstance(node.get("exclusiveMaximum"), int | float) and not isinstance(
        node["exclusiveMaximum"], bool
    ):
        node["maximum"], node["exclusiveMaximum"] = node["exclusiveMaximum"], True

    if node.get("type") == "object" or "properties" in node:
        node["type"] = "object"
        extra = node.pop("additionalProperties", None)
        if "properties" in node:
            node["properties"] = {
                name: to_structural(sub, definitions) for name, sub in node["properties"].items()
            }
        elif extra is True or extra == {}:
            node["x-kubernetes-preserve-unknown-fields"] = True
        elif isinstance(extra, dict):
            node["additionalProperties"] = to_structural(extra, definitions)
    elif node.get("type") == "array":
        node["items"] = to_structural(node.get("items", {}), definitions)
    elif "type" not in node:
        node["x-kubernetes-preserve-unknown-fields"] = True

    if "description" in node:
        node["description"] = tidy_description(node["description"])
    ordered = {key: node[key] for key in ("type", "description") if key in node}
    return ordered | {key: value for key, value in node.items() if key in _KEPT_KEYWORDS}


def tidy_description(text: str) -> str:
    """Docstring line breaks are for the source; `kubectl explain` wraps text itself."""
    return "\n\n".join(" ".join(paragraph.split()) for paragraph in text.split("\n\n"))


def _inline(node: dict[str, Any], definitions: dict[str, Any]) -> dict[str, Any]:
    node = copy.deepcopy(node)
    while "$ref" in node:
        target = definitions[node.pop("$ref").rsplit("/", 1)[-1]]
        node = {**copy.deepcopy(target), **node}
    node.pop("$defs", None)
    return node


def _schema_of(model: type[DeepSeekDeploymentSpec] | type[DeepSeekDeploymentStatus]) -> dict[str, Any]:
    return to_structural(model.model_json_schema(by_alias=True, mode="validation"))


def render_crd() -> dict[str, Any]:
    """The `apiextensions.k8s.io/v1` CustomResourceDefinition object."""
    spec_schema = _schema_of(DeepSeekDeploymentSpec)
    status_schema = _schema_of(DeepSeekDeploymentStatus)
    versions = spec_schema["properties"]["versions"]
    versions["x-kubernetes-list-type"] = "map"
    versions["x-kubernetes-list-map-keys"] = ["name"]
    conditions = status_schema["properties"]["conditions"]
    conditions["x-kubernetes-list-type"] = "map"
    conditions["x-kubernetes-list-map-keys"] = ["type"]
    root = {
        "type": "object",
        "description": tidy_description(DeepSeekDeployment.__doc__ or ""),
        "required": ["spec"],
        "properties": {
            "apiVersion": {"type": "string"},
            "kind": {"type": "string"},
            "metadata": {"type": "object"},
            "spec": spec_schema,
            "status": status_schema,
        },
    }
    return {
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {
            "name": constants.CRD_NAME,
            "labels": {
                "app.kubernetes.io/name": "deepseek-operator",
                "app.kubernetes.io/part-of": "deepseek-operator",
            },
        },
        "spec": {
            "group": constants.GROUP,
            "scope": "Namespaced",
            "names": {
                "kind": constants.KIND,
                "listKind": f"{constants.KIND}List",
                "plural": constants.PLURAL,
                "singular": constants.SINGULAR,
                "shortNames": [constants.SHORT_NAME],
                "categories": list(constants.CATEGORIES),
            },
            "versions": [
                {
                    "name": constants.VERSION,
                    "served": True,
                    "storage": True,
                    "schema": {"openAPIV3Schema": root},
                    "subresources": {
                        "status": {},
                        "scale": {
                            "specReplicasPath": ".spec.groups",
                            "statusReplicasPath": ".status.readyGroups",
                            "labelSelectorPath": ".status.selector",
                        },
                    },
                    "additionalPrinterColumns": PRINTER_COLUMNS,
                }
            ],
        },
    }


def crd_yaml() -> str:
    """The CRD file's exact text (a header, then the object)."""
    header = "# Generated by `dsd crd` from deepseek_operator/api/v1alpha1.py. Do not edit.\n"
    return header + yaml.safe_dump(render_crd(), sort_keys=False, width=120, allow_unicode=True)


def render_peering_crds() -> list[dict[str, Any]]:
    """kopf's peering CRDs (`ClusterKopfPeering`, `KopfPeering` in `kopf.dev`), as kopf documents them.

    Replicas keep alive in the peering object's `status` (a map of replica id to priority and
    last-seen time, written with plain patches: no status subresource).
    """
    schema = {
        "type": "object",
        "x-kubernetes-preserve-unknown-fields": True,
        "properties": {"status": {"type": "object", "x-kubernetes-preserve-unknown-fields": True}},
    }
    return [
        {
            "apiVersion": "apiextensions.k8s.io/v1",
            "kind": "CustomResourceDefinition",
            "metadata": {"name": f"{plural}.kopf.dev"},
            "spec": {
                "scope": scope,
                "group": "kopf.dev",
                "names": {"kind": kind, "plural": plural, "singular": kind.lower()},
                "versions": [
                    {"name": "v1", "served": True, "storage": True, "schema": {"openAPIV3Schema": schema}}
                ],
            },
        }
        for kind, plural, scope in (
            ("ClusterKopfPeering", "clusterkopfpeerings", "Cluster"),
            ("KopfPeering", "kopfpeerings", "Namespaced"),
        )
    ]


def peering_crds_yaml() -> str:
    header = "# Generated by `dsd crd`: kopf's peering CRDs (the operator's replicas pause all but one).\n"
    return header + yaml.safe_dump_all(render_peering_crds(), sort_keys=False, width=120)


def generated_files(crd_dir: Path, chart_dir: Path) -> dict[Path, str]:
    """Every file `dsd crd` writes, by path: CRDs, the ClusterRole, and the chart's copies."""
    from deepseek_operator.rbacgen import (
        CHART_TEMPLATE,
        RBAC_FILENAME,
        chart_cluster_role_template,
        rbac_yaml,
    )

    crd, peering = crd_yaml(), peering_crds_yaml()
    return {
        crd_dir / CRD_FILENAME: crd,
        crd_dir / PEERING_CRD_FILENAME: peering,
        crd_dir / RBAC_FILENAME: rbac_yaml(),
        chart_dir / "crds" / CRD_FILENAME: crd,
        chart_dir / "crds" / PEERING_CRD_FILENAME: peering,
        chart_dir / CHART_TEMPLATE: chart_cluster_role_template(),
    }


def editor_json_schema() -> str:
    """JSON Schema (draft 2020-12) of a whole DeepSeekDeployment document, for editors."""
    schema = _tidy_all(DeepSeekDeployment.model_json_schema(by_alias=True, mode="validation"))
    schema = {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "$id": f"https://{constants.GROUP}/schemas/{constants.SINGULAR}.{constants.VERSION}.json",
        **schema,
    }
    return json.dumps(schema, indent=2, sort_keys=False) + "\n"


def _tidy_all(node: Any) -> Any:
    if isinstance(node, dict):
        return {
            key: tidy_description(value)
            if key == "description" and isinstance(value, str)
            else _tidy_all(value)
            for key, value in node.items()
        }
    if isinstance(node, list):
        return [_tidy_all(item) for item in node]
    return node


def write_if_changed(path: Path, text: str) -> bool:
    """Write `text` to `path` unless it already holds it; True when written."""
    if path.exists() and path.read_text(encoding="utf-8") == text:
        return False
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    return True
