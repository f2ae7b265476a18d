"""A kubeconfig that points real clients (kubectl, the kubernetes client, kopf, client-go) at the server."""

from __future__ import annotations

from pathlib import Path

import yaml

__all__ = ["CONTEXT", "write_kubeconfig"]

CONTEXT = "deepseek-testing"


def write_kubeconfig(server_url: str, path: Path, *, namespace: str = "default") -> Path:
    """Write a single-context kubeconfig (plain HTTP, no credentials: the server trusts everyone)."""
    config = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{"name": CONTEXT, "cluster": {"server": server_url}}],
        "users": [{"name": CONTEXT, "user": {}}],
        "contexts": [
            {"name": CONTEXT, "context": {"cluster": CONTEXT, "user": CONTEXT, "namespace": namespace}}
        ],
        "current-context": CONTEXT,
        "preferences": {},
    }
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    return path
