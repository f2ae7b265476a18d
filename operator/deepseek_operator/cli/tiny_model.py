"""`dsd tiny-model OUT_DIR`: build the tiny DeepSeek-V3-architecture model, offline."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from deepseek_operator.cli._app import app, console, err_console


@app.command("tiny-model")
def tiny_model(
    out_dir: Annotated[Path, typer.Argument(help="Directory to write the checkpoint into.")],
    seed: Annotated[int, typer.Option(help="Seed of the random weights.")] = 0,
) -> None:
    """Build a ~2 M-parameter DeepSeek-V3 model (random weights, local BPE tokenizer); cached."""
    from deepseek_serving.tiny_model import build_tiny_model

    with err_console.status(f"building the tiny model into {out_dir}…"):
        path = build_tiny_model(out_dir, seed=seed)
    console.print(f"tiny DeepSeek-V3 model ready in [bold]{path}[/bold]")
