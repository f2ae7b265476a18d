"""`dsd catalog`: the built-in architectures and their shapes."""

from __future__ import annotations

from rich.table import Table

from deepseek_operator.cli._app import app, console
from deepseek_operator.modelcfg import catalog_names, load_catalog_architecture


@app.command("catalog")
def show_catalog() -> None:
    """List the built-in DeepSeek architectures (`spec.model.architecture.catalog`)."""
    table = Table(title="Built-in architectures (published config.json, no weights)")
    for column in (
        "name",
        "type",
        "layers",
        "MoE layers",
        "hidden",
        "heads",
        "routed experts",
        "top-k",
        "groups",
        "shared",
        "context",
        "weights",
    ):
        table.add_column(column, justify="left" if column in ("name", "type", "weights") else "right")
    for name in catalog_names():
        arch = load_catalog_architecture(name)
        table.add_row(
            name,
            arch.model_type,
            str(arch.num_hidden_layers),
            str(arch.num_moe_layers),
            str(arch.hidden_size),
            str(arch.num_attention_heads),
            str(arch.n_routed_experts),
            str(arch.num_experts_per_tok),
            str(arch.n_group),
            str(arch.n_shared_experts),
            f"{arch.max_position_embeddings:,}",
            arch.quantization.method if arch.quantization else arch.torch_dtype,
        )
    console.print(table)
