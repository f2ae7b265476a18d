"""Discovery documents (``/api``, ``/apis``, group and group-version resource lists) and ``/version``.

These are what the kubernetes client, kopf, kubectl and Helm's client-go read to map kinds to
URLs. The legacy (unaggregated) documents are enough: client-go falls back to them when the
answer to its aggregated-discovery ``Accept`` is plain JSON.
"""

from __future__ import annotations

import re
from typing import Any

from deepseek_operator.testing.resources import Registry

__all__ = ["KUBERNETES_VERSION", "api_group", "api_groups", "api_resources", "api_versions", "version_info"]

KUBERNETES_VERSION = ("1", "32", "v1.32.0")


def _priority(version: str) -> tuple[int, int, int, str]:
    """Kubernetes version priority: GA before beta before alpha, higher numbers first."""
    m = re.fullmatch(r"v(\d+)(?:(alpha|beta)(\d+))?", version)
    if not m:
        return (3, 0, 0, version)
    major, stage, minor = int(m.group(1)), m.group(2), int(m.group(3) or 0)
    return ({None: 0, "beta": 1, "alpha": 2}[stage], -major, -minor, version)


def version_info() -> dict[str, str]:
    major, minor, git = KUBERNETES_VERSION
    return {
        "major": major,
        "minor": minor,
        "gitVersion": git,
        "gitCommit": "deepseek-operator-testing",
        "gitTreeState": "clean",
        "buildDate": "2026-01-01T00:00:00Z",
        "goVersion": "go1.23.0",
        "compiler": "gc",
        "platform": "linux/amd64",
    }


def api_versions(server_address: str) -> dict[str, Any]:
    return {
        "kind": "APIVersions",
        "versions": ["v1"],
        "serverAddressByClientCIDRs": [{"clientCIDR": "0.0.0.0/0", "serverAddress": server_address}],
    }


def _group(registry: Registry, name: str) -> dict[str, Any]:
    versions = sorted(registry.groups()[name], key=_priority)
    entries = [{"groupVersion": f"{name}/{v}", "version": v} for v in versions]
    return {"name": name, "versions": entries, "preferredVersion": entries[0]}


def api_groups(registry: Registry) -> dict[str, Any]:
    names = [g for g in registry.groups() if g]
    return {"kind": "APIGroupList", "apiVersion": "v1", "groups": [_group(registry, g) for g in names]}


def api_group(registry: Registry, name: str) -> dict[str, Any] | None:
    if name not in registry.groups() or not name:
        return None
    return {"kind": "APIGroup", "apiVersion": "v1", **_group(registry, name)}


def api_resources(registry: Registry, group: str, version: str) -> dict[str, Any] | None:
    types = registry.in_group_version(group, version)
    if not types:
        return None
    resources = [entry for rt in types for entry in rt.discovery()["resources"]]
    return {
        "kind": "APIResourceList",
        "apiVersion": "v1",
        "groupVersion": f"{group}/{version}" if group else version,
        "resources": resources,
    }
