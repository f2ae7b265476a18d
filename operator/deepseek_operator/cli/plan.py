"""`dsd plan FILE`: the planner's decisions as tables, JSON, or an expert-map heat map."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Group
from rich.panel import Panel
from rich.table import Table

from deepseek_operator.cli._app import app, console, err_console
from deepseek_operator.cli.validate import context_for
from deepseek_operator.errors import InvalidSpec
from deepseek_operator.manifests import Document, load_manifests
from deepseek_operator.planner.eplb_load import ExpertLoadError, parse_expert_load
from deepseek_operator.planner.eplb_view import render_expert_map_svg, summarize_placement
from deepseek_operator.planner.memory import expert_bytes
from deepseek_operator.planner.plan import Plan, plan_deployment
from deepseek_operator.quantity import format_bytes, parse_quantity
from deepseek_operator.validation import validate_deployment

_MEMORY_ROWS = (
    ("attention", "MLA attention"),
    ("dense_mlp", "dense MLPs"),
    ("routed_experts", "routed experts"),
    ("shared_experts", "shared experts"),
    ("embeddings", "embeddings + LM head"),
    ("router_and_norms", "router + norms"),
    ("activation_reserve", "activations"),
    ("runtime_reserve", "CUDA context, graphs"),
    ("kv_cache", "KV cache"),
    ("free", "free margin"),
)


def _with_overrides(
    document: Document, gpus_per_node: int | None, gpu_memory: str | None, gpu_type: str | None
) -> dict[str, Any]:
    """The document with `--gpus-per-node/--gpu-memory/--gpu-type` in `spec.resources`."""
    body = copy.deepcopy(document.body)
    resources = body.setdefault("spec", {}).setdefault("resources", {})
    if gpus_per_node is not None:
        resources["gpusPerNode"] = gpus_per_node
    if gpu_type is not None:
        resources["gpuType"] = gpu_type
        if gpu_memory is None:
            resources.pop("gpuMemory", None)
    if gpu_memory is not None:
        resources["gpuMemory"] = f"{parse_quantity(gpu_memory) // 2**20}Mi"
    return body


@app.command()
def plan(
    file: Annotated[Path, typer.Argument(help="A YAML file with one or more DeepSeekDeployments.")],
    gpus_per_node: Annotated[
        int | None, typer.Option(min=1, help="Override spec.resources.gpusPerNode.")
    ] = None,
    gpu_memory: Annotated[str | None, typer.Option(help="Override GPU memory, e.g. 80GiB or 141Gi.")] = None,
    gpu_type: Annotated[str | None, typer.Option(help="Override spec.resources.gpuType, e.g. H200.")] = None,
    load_stats: Annotated[
        Path | None, typer.Option(help="Expert-load statistics (deepseek.serving.dev/expert-load/v1).")
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print one JSON object per deployment.")] = False,
    svg: Annotated[Path | None, typer.Option(help="Write the expert-to-GPU map as an SVG heat map.")] = None,
) -> None:
    """Plan parallel sizes, memory per GPU, Ray placement, and the EPLB expert map with its predicted step."""
    manifests = load_manifests([file])
    plans: list[Plan] = []
    failed = False
    for origin, error in manifests.unreadable:
        console.print(f"[red]✗[/red] {origin}: {error}")
        failed = True
    for document in manifests.deployments:
        body = _with_overrides(document, gpus_per_node, gpu_memory, gpu_type)
        try:
            validated = validate_deployment(body, context_for(document, manifests))
            arch = validated.architecture
            load, source = None, "uniform"
            if load_stats is not None:
                load = parse_expert_load(
                    load_stats.read_text(encoding="utf-8"),
                    num_layers=arch.num_moe_layers,
                    num_logical_experts=arch.n_routed_experts,
                )
                source = str(load_stats)
            plans.append(plan_deployment(validated, expert_load=load, load_source=source))
        except InvalidSpec as invalid:
            for error in invalid.errors:
                console.print(f"[red]✗[/red] {document.origin}: {error}")
            failed = True
        except ExpertLoadError as error:
            console.print(f"[red]✗[/red] {load_stats}: {error}")
            failed = True
    if as_json:
        payload = [p.to_json() for p in plans]
        console.print(json.dumps(payload[0] if len(payload) == 1 else payload, indent=2), markup=False)
    else:
        for each in plans:
            console.print(render_plan(each))
    if svg is not None:
        _write_svg(svg, plans)
    if failed or not plans:
        raise typer.Exit(1)


def _write_svg(path: Path, plans: list[Plan]) -> None:
    with_map = [each for each in plans if each.expert_placement is not None]
    if not with_map:
        err_console.print("[yellow]no expert map to draw: the group has a single rank[/yellow]")
        return
    each = with_map[0]
    assert each.expert_placement is not None
    title = f"{each.deployment} {each.version}: {each.architecture.name}, {each.sizes}"
    path.write_text(render_expert_map_svg(each.expert_placement, title=title), encoding="utf-8")
    err_console.print(f"wrote {path}")


def render_plan(plan: Plan) -> Group:
    """The plan as rich tables: sizes, memory per GPU, placement, expert balance."""
    return Group(_sizes_table(plan), _memory_table(plan), _placement_table(plan), *_expert_tables(plan))


def _sizes_table(plan: Plan) -> Table:
    sizes, group = plan.sizes, plan.group
    table = Table(title=f"Plan for {plan.deployment}, version {plan.version}", show_header=False)
    table.add_column(style="bold")
    table.add_column()
    fits = "[green]yes[/green]" if group.fits else "[red]no[/red]"
    rows = [
        ("model", f"{plan.architecture.name} ({plan.weight_format.name} weights)"),
        ("nodes", plan.inventory.describe()),
        ("tensor / data / expert parallel", f"{sizes.tensor} / {sizes.data} / {sizes.expert}"),
        ("GPUs per group", f"{sizes.ranks} on {sizes.nodes} node(s)"),
        ("groups", f"{plan.groups} (min {plan.min_groups}, max {plan.max_groups})"),
        (
            "expert slots per GPU",
            f"{group.memory.slots_per_rank} ({plan.redundant_experts} redundant per layer)",
        ),
        ("max model length", f"{group.max_model_len:,} tokens"),
        (
            "KV cache",
            f"{group.memory.kv_cache_tokens:,} tokens per GPU, {group.kv_cache_tokens_per_group:,} per group",
        ),
        ("fits", fits),
    ]
    for label, value in rows:
        table.add_row(label, value)
    return table


def _memory_table(plan: Plan) -> Table:
    memory = plan.group.memory.as_dict()
    device = memory["device_memory"]
    table = Table(title="Memory per GPU")
    table.add_column("component")
    table.add_column("size", justify="right")
    table.add_column("share of device", justify="right")
    table.add_column("", no_wrap=True)
    for key, label in _MEMORY_ROWS:
        share = memory[key] / device
        table.add_row(label, format_bytes(memory[key]), f"{share:.1%}", "█" * round(share * 40))
    headroom = device - memory["usable"]
    table.add_row("[dim]outside the engine[/dim]", format_bytes(headroom), f"{headroom / device:.1%}", "")
    table.add_row("[bold]device[/bold]", format_bytes(device), "100.0%", "")
    return table


def _placement_table(plan: Plan) -> Table:
    placement, worker, sizes = plan.placement, plan.worker_group, plan.sizes
    table = Table(
        title=f"Ray placement: {placement.slices} tensor-parallel slice(s) per group, gang-scheduled "
        f"({placement.gang_strategy}), each {placement.slice_strategy} on one node; KubeRay worker pods: "
        f"{worker.pods_per_group} per group × {worker.gpus_per_pod} GPU, replicas {worker.replicas} "
        f"({worker.min_replicas}..{worker.max_replicas})"
    )
    for column in ("node", "DP ranks", "bundles per slice", "GPU", "CPU", "memory"):
        table.add_column(column, justify="left" if column in ("node", "DP ranks") else "right")
    bundle = placement.slice_bundles[0]
    for node in range(sizes.nodes):
        replicas = sorted(
            {rank // sizes.tensor for rank in range(sizes.ranks) if placement.node_of_rank(rank) == node}
        )
        shown = ", ".join(map(str, replicas)) if len(replicas) <= 8 else f"{replicas[0]}..{replicas[-1]}"
        table.add_row(
            str(node),
            shown,
            str(sizes.tensor),
            str(bundle.gpus),
            str(bundle.cpus),
            format_bytes(bundle.memory_bytes),
        )
    return table


def _expert_tables(plan: Plan) -> list[Table | Panel]:
    placement = plan.expert_placement
    if placement is None:
        return [Panel("single-rank group: every expert on the one GPU, nothing to balance", title="Experts")]
    summary = summarize_placement(placement, expert_bytes=expert_bytes(plan.architecture, plan.weight_format))
    table = Table(
        title=f"Expert balance ({summary.policy}, load: {plan.load_source}): balancedness "
        f"{summary.balancedness:.3f} of at most {summary.balancedness_bound:.3f} (reported, not optimised)",
    )
    table.add_column("MoE layer", justify="right")
    table.add_column("balancedness", justify="right")
    table.add_column("", no_wrap=True)
    worst = sorted(range(len(summary.layer_balancedness)), key=lambda i: summary.layer_balancedness[i])[:5]
    for index in sorted(worst):
        value = summary.layer_balancedness[index]
        table.add_row(
            str(plan.architecture.moe_layer_indices[index]), f"{value:.3f}", "█" * round(value * 30)
        )
    table.add_row("[dim]mean of all[/dim]", f"{summary.balancedness:.3f}", "")
    return [_step_table(plan), table]


_CANDIDATE_LABELS = {
    "deepseek-hierarchical": "DeepSeek hierarchical",
    "deepseek-global": "DeepSeek global",
}


def _step_table(plan: Plan) -> Table:
    """Predicted MoE layer step of the planned map and of every candidate, vLLM's default marked."""
    placement = plan.expert_placement
    assert placement is not None
    cost = placement.cost
    figures = cost.gpu.name
    if plan.inventory.gpu_type != figures:
        figures += (
            f" figures ({'CPU ranks' if plan.inventory.accelerator == 'cpu' else 'gpuType not in the table'})"
        )
    table = Table(
        title=f"Predicted MoE layer step, slowest GPU ({cost.regime} on {figures}; µs per layer, mean of "
        f"{placement.num_layers} layers)",
        caption=placement.reason,
    )
    for column in ("placement", "step", "compute", "NVLink", "RDMA", "RDMA MB/GPU", "balancedness", "layers"):
        table.add_column(column, justify="left" if column == "placement" else "right")
    reference = placement.reference.policy
    for score in (placement.score, *placement.candidates):
        label = (
            "[bold]planned map[/bold]"
            if score.policy == "chosen"
            else _CANDIDATE_LABELS.get(score.policy, score.policy)
        )
        if score.policy == reference:
            label += " (vLLM's default)"
        table.add_row(
            label,
            f"{score.step_us:,.0f}",
            f"{score.compute_us:,.0f}",
            f"{score.nvlink_us:,.0f}",
            f"{score.rdma_us:,.0f}",
            f"{score.cross_node_mb_per_gpu:.1f}",
            f"{score.balancedness:.3f}",
            str(score.layers_chosen),
        )
    return table
