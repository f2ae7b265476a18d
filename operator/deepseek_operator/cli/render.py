"""`dsd render FILE`: exactly what the operator would apply, offline, for review in a pull request."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any, Literal

import typer

from deepseek_operator.cli._app import app, console, err_console
from deepseek_operator.cli.validate import context_for
from deepseek_operator.desired import plan_desired
from deepseek_operator.errors import InvalidSpec
from deepseek_operator.manifests import dump_yaml_stream, load_manifests
from deepseek_operator.render import RenderConfig, render_deployment


def dump_objects(objects: list[dict[str, Any]], output: Literal["yaml", "json"]) -> str:
    """Objects as a YAML stream or a JSON `v1 List`, in apply order."""
    if output == "json":
        return json.dumps({"apiVersion": "v1", "kind": "List", "items": objects}, indent=2) + "\n"
    return dump_yaml_stream(objects)


@app.command()
def render(
    files: Annotated[list[Path], typer.Argument(help="YAML files or directories.", show_default=False)],
    output: Annotated[Literal["yaml", "json"], typer.Option("--output", "-o", help="yaml or json.")] = "yaml",
) -> None:
    """Print the RayService, Service and HTTPRoute the operator would apply.

    ConfigMaps among the files stand in for the cluster's: an architecture `configMapRef` and the
    expert-load statistics `eplb.loadStats` are planned from them, as the operator plans.
    """
    manifests = load_manifests(files)
    objects: list[dict[str, Any]] = []
    failed = bool(manifests.unreadable)
    for origin, error in manifests.unreadable:
        err_console.print(f"[red]✗[/red] {origin}: {error}")
    for document in manifests.deployments:
        try:
            desired = plan_desired(
                document.body,
                context_for(document, manifests),
                manifests.config_map_data(document.namespace),
                RenderConfig(),
            )
            objects += render_deployment(desired.validated, desired.desired.plan).objects
        except InvalidSpec as invalid:
            for error in invalid.errors:
                err_console.print(f"[red]✗[/red] {document.origin}: {error}")
            failed = True
    if failed:
        raise typer.Exit(1)
    console.print(dump_objects(objects, output), markup=False, end="")
