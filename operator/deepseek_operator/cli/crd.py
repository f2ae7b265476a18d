"""`dsd crd` and `dsd schema`: the generated CRD and the editor JSON Schema, with drift checks."""

from __future__ import annotations

import difflib
from pathlib import Path
from typing import Annotated

import typer

from deepseek_operator.cli._app import app, console, err_console
from deepseek_operator.crdgen import CRD_FILENAME, crd_yaml, editor_json_schema, write_if_changed

SCHEMA_FILENAME = "deepseekdeployment.v1alpha1.schema.json"


def _write_or_check(path: Path, text: str, *, check: bool) -> None:
    if check:
        current = path.read_text(encoding="utf-8") if path.exists() else ""
        if current != text:
            diff = difflib.unified_diff(
                current.splitlines(keepends=True), text.splitlines(keepends=True), str(path), "generated"
            )
            err_console.print("".join(diff), markup=False)
            err_console.print(f"[red]{path} is out of date[/red]: run `dsd crd` / `dsd schema` and commit it")
            raise typer.Exit(1)
        console.print(f"[green]✓[/green] {path} is up to date")
        return
    written = write_if_changed(path, text)
    console.print(f"{'wrote' if written else 'unchanged'} {path}")


@app.command()
def crd(
    output_dir: Annotated[Path, typer.Option(help="Directory of the CRD file.")] = Path("crds"),
    check: Annotated[bool, typer.Option("--check", help="Fail if the file differs from the models.")] = False,
    stdout: Annotated[bool, typer.Option("--stdout", help="Print the CRD instead of writing it.")] = False,
) -> None:
    """Generate the CustomResourceDefinition from the API models."""
    if stdout:
        console.print(crd_yaml(), markup=False, end="")
        return
    _write_or_check(output_dir / CRD_FILENAME, crd_yaml(), check=check)


@app.command()
def schema(
    output_dir: Annotated[Path, typer.Option(help="Directory of the schema file.")] = Path("schemas"),
    check: Annotated[bool, typer.Option("--check", help="Fail if the file differs from the models.")] = False,
    stdout: Annotated[bool, typer.Option("--stdout", help="Print the schema instead of writing it.")] = False,
) -> None:
    """Publish the JSON Schema of a DeepSeekDeployment for editors (yaml-language-server)."""
    if stdout:
        console.print(editor_json_schema(), markup=False, end="")
        return
    _write_or_check(output_dir / SCHEMA_FILENAME, editor_json_schema(), check=check)
