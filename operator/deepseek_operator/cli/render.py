"""`dsd render FILE`: exactly what the operator would apply, offline, for review in a pull request."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any, Literal

import typer

from deepseek_operator.cli._app import app, console, err_console
from deepseek_operator.cli.validate import validate_document
from deepseek_operator.errors import InvalidSpec
from deepseek_operator.manifests import dump_yaml_stream, load_manifests
from deepseek_operator.planner.plan import plan_deployment
from deepseek_operator.render import render_deployment


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
    """Print the RayService, Services, ConfigMaps and HTTPRoute the operator would apply."""
    manifests = load_manifests(files)
    objects: list[dict[str, Any]] = []
    failed = bool(manifests.unreadable)
    for origin, error in manifests.unreadable:
        err_console.print(f"[red]✗[/red] {origin}: {error}")
    for document in manifests.deployments:
        try:
            validated = validate_document(document, manifests)
            objects += render_deployment(validated, plan_deployment(validated)).objects
        except InvalidSpec as invalid:
            for error in invalid.errors:
                err_console.print(f"[red]✗[/red] {document.origin}: {error}")
            failed = True
    if failed:
        raise typer.Exit(1)
    console.print(dump_objects(objects, output), markup=False, end="")
