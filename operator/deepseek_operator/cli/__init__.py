"""The `dsd` command line: one typer app, one module per command group."""

from __future__ import annotations

import typer

app = typer.Typer(
    name="dsd",
    help="Plan, render, validate and run DeepSeekDeployment resources.",
    no_args_is_help=True,
    pretty_exceptions_show_locals=False,
)
bench_app = typer.Typer(help="Measure against a named baseline measured in the same run.", no_args_is_help=True)
app.add_typer(bench_app, name="bench")
