"""The typer application objects every command module registers on."""

from __future__ import annotations

import typer
from rich.console import Console

app = typer.Typer(
    name="dsd",
    help="Plan, render, validate and run DeepSeekDeployment resources.",
    no_args_is_help=True,
    pretty_exceptions_show_locals=False,
    rich_markup_mode="rich",
)
bench_app = typer.Typer(
    help="Measure against a named baseline measured in the same run.", no_args_is_help=True
)
app.add_typer(bench_app, name="bench")

# soft_wrap: never break a `FILE: FIELD: MESSAGE` line; people grep these and terminals wrap anyway.
console = Console(highlight=False, soft_wrap=True)
"""Standard output: results."""
err_console = Console(stderr=True, highlight=False, soft_wrap=True)
"""Standard error: progress and diagnostics."""
