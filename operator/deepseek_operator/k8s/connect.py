"""Credentials: the in-cluster service account, else the kubeconfig (`KUBECONFIG` or ~/.kube/config)."""

from __future__ import annotations

import os
from typing import Any

from kubernetes.aio import config
from kubernetes.aio.client import ApiClient

__all__ = ["connect"]


async def connect() -> ApiClient:
    loader: Any = config  # the generated config loaders are untyped
    try:
        loader.load_incluster_config()
    except loader.ConfigException:
        # The generated loader reads $KUBECONFIG once, at import; honour it as it is now.
        await loader.load_kube_config(config_file=os.environ.get("KUBECONFIG"))
    return ApiClient()
