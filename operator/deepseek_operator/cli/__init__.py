"""The `dsd` command line: one typer app, one module per command group.

Commands that need the serving stack (Ray, vLLM) import `deepseek_serving` inside the command,
so the operator's light install keeps working for every other command.
"""

from deepseek_operator.cli import (
    bench,
    catalog,
    crd,
    operator,
    plan,
    render,
    rollout,
    run,
    status,
    tiny_model,
    validate,
)
from deepseek_operator.cli._app import app

__all__ = [
    "app",
    "bench",
    "catalog",
    "crd",
    "operator",
    "plan",
    "render",
    "rollout",
    "run",
    "status",
    "tiny_model",
    "validate",
]
