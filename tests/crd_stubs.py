"""Minimal CRDs for tests: kinds the operator or the chart use but this repository does not own."""

from __future__ import annotations

from typing import Any


def preserve_unknown_crd(group: str, kind: str, plural: str, version: str = "v1") -> dict[str, Any]:
    """A namespaced CRD whose objects keep any field (Gateway API's HTTPRoute, ServiceMonitor)."""
    return {
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {"name": f"{plural}.{group}"},
        "spec": {
            "group": group,
            "scope": "Namespaced",
            "names": {"kind": kind, "plural": plural, "singular": kind.lower()},
            "versions": [
                {
                    "name": version,
                    "served": True,
                    "storage": True,
                    "schema": {
                        "openAPIV3Schema": {"type": "object", "x-kubernetes-preserve-unknown-fields": True}
                    },
                }
            ],
        },
    }
