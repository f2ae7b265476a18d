"""`dsd validate FILE…`: every error of every file, exactly as the admission webhook words it."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from deepseek_operator.cli._app import app, console
from deepseek_operator.errors import InvalidSpec
from deepseek_operator.manifests import Document, ManifestSet, load_manifests
from deepseek_operator.modelcfg import ArchitectureContext
from deepseek_operator.validation import ValidatedDeployment, validate_deployment


def context_for(document: Document, manifests: ManifestSet) -> ArchitectureContext:
    """What an offline command can read: ConfigMaps among the files, files beside the manifest."""
    config_maps = manifests.config_map_data(document.namespace)
    return ArchitectureContext(config_maps=config_maps.get, base_dir=document.directory)


def validate_document(document: Document, manifests: ManifestSet) -> ValidatedDeployment:
    """Validate one deployment document of a file set (InvalidSpec on any error)."""
    return validate_deployment(document.body, context_for(document, manifests))


@app.command()
def validate(
    files: Annotated[list[Path], typer.Argument(help="YAML files or directories.", show_default=False)],
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="Print errors only.")] = False,
) -> None:
    """Check DeepSeekDeployment resources against the API and their model's real config.

    Prints every error of every file as `FILE: FIELD: MESSAGE` and exits 1 if any; ConfigMaps
    among the given files resolve `configMapRef`s.
    """
    manifests = load_manifests(files)
    error_count = 0
    for origin, error in manifests.unreadable:
        console.print(
            f"[red]✗[/red] {origin}: {error}" if error.path else f"[red]✗[/red] {origin}: {error.message}"
        )
        error_count += 1
    for document in manifests.deployments:
        try:
            validated = validate_document(document, manifests)
        except InvalidSpec as invalid:
            for error in invalid.errors:
                console.print(f"[red]✗[/red] {document.origin}: {error}")
            error_count += len(invalid.errors)
            continue
        if not quiet:
            spec = validated.spec
            console.print(
                f"[green]✓[/green] {document.origin}: {document.name} is valid "
                f"([bold]{validated.architecture.name}[/bold], version {spec.desired_version.name})"
            )
    if not manifests.deployments and not manifests.unreadable:
        console.print("[yellow]no DeepSeekDeployment found[/yellow]")
        raise typer.Exit(1)
    if error_count:
        console.print(f"{error_count} error{'s' if error_count != 1 else ''}")
        raise typer.Exit(1)
