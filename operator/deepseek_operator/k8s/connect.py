"""Credentials: the in-cluster service account, else the kubeconfig (`KUBECONFIG` or ~/.kube/config).

Requests say `User-Agent: deepseek-operator/<version>`: audit logs name the operator, and the API
server files its non-apply writes (status patches) under that manager in `managedFields`.
"""

from __future__ import annotations

import os
from importlib.metadata import PackageNotFoundError, version
from typing import Any

from kubernetes.aio import config
from kubernetes.aio.client import ApiClient

from deepseek_operator.api import constants

__all__ = ["USER_AGENT", "connect"]


def _version() -> str:
    try:
        return version("deepseek-operator")
    except PackageNotFoundError:
        return "unknown"


USER_AGENT = f"{constants.FIELD_MANAGER}/{_version()}"


async def connect() -> ApiClient:
    loader: Any = config  # the generated config loaders are untyped
    try:
        loader.load_incluster_config()
    except loader.ConfigException:
        # The generated loader reads $KUBECONFIG once, at import; honour it as it is now.
        await loader.load_kube_config(config_file=os.environ.get("KUBECONFIG"))
    client = ApiClient()
    client.user_agent = USER_AGENT
    return client
