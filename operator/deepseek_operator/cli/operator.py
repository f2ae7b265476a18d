"""`dsd operator`: run the operator (kopf) against the cluster of the kubeconfig or in-cluster."""

from __future__ import annotations

import asyncio
from typing import Annotated

import typer

from deepseek_operator.cli._app import app


@app.command("operator")
def run_operator(
    namespace: Annotated[
        list[str] | None, typer.Option("--namespace", "-n", help="Watch only these namespaces (repeatable).")
    ] = None,
    liveness: Annotated[str, typer.Option(help="kopf liveness endpoint.")] = "http://0.0.0.0:8080/healthz",
    standalone: Annotated[bool, typer.Option(help="Skip peering with other replicas.")] = False,
    verbose: Annotated[bool, typer.Option("--verbose", "-v")] = False,
    log_format: Annotated[
        str, typer.Option(help="plain, full, or json (one object per line, for log pipelines).")
    ] = "plain",
) -> None:
    """Reconcile DeepSeekDeployments into KubeRay RayServices until interrupted."""
    import kopf

    import deepseek_operator.handlers  # noqa: F401 - registers the handlers with kopf

    kopf.configure(verbose=verbose, log_format=kopf.LogFormat[log_format.upper()])
    asyncio.run(
        kopf.operator(
            clusterwide=not namespace,
            namespaces=namespace or [],
            liveness_endpoint=liveness,
            standalone=standalone,
        )
    )
