"""What a person sees of an expert placement: a summary, and an SVG heat map.

Both are pure: `summarize_placement` returns a frozen dataclass the CLI prints as a table;
`render_expert_map_svg` returns a standalone SVG document (``dsd plan --svg``) with MoE layers
as rows and GPUs as columns grouped by node, each cell coloured by that GPU's load relative to
the layer's mean (blue under, white at, red over), with a legend and a title.
"""

from __future__ import annotations

from dataclasses import dataclass
from html import escape

import numpy as np
import numpy.typing as npt

from deepseek_operator.planner.eplb import ExpertPlacement, compute_balancedness, compute_gpu_load

__all__ = ["EXPERT_BYTES_FP8_DEEPSEEK_V3", "PlacementSummary", "render_expert_map_svg", "summarize_placement"]

EXPERT_BYTES_FP8_DEEPSEEK_V3 = 3 * 7168 * 2048
"""Bytes of one routed expert of DeepSeek-V3 in fp8 (gate, up, down: 3 × 7168 × 2048 ≈ 44 MB)."""


@dataclass(frozen=True, slots=True)
class PlacementSummary:
    """The numbers a person checks about a placement, planned load or a later window's load."""

    policy: str
    """Policy used (``hierarchical`` or ``global``)."""
    reason: str
    """Why, from the planner."""
    balancedness: float
    """vLLM's balancedness under the summarized load (1.0 is perfect)."""
    balancedness_bound: float
    """The planner's upper bound for the planned load."""
    layer_balancedness: tuple[float, ...]
    """Per MoE layer: mean GPU load / max GPU load."""
    gpu_load_share: tuple[float, ...]
    """Per GPU: share of all tokens over all layers (sums to 1; 1/num_gpus is even)."""
    node_load_share: tuple[float, ...]
    """Per node: share of all tokens (sums to 1)."""
    max_replicas: int
    """Largest replica count of any expert in any layer."""
    moved_replicas: int | None
    """Expert copies moved from the previous placement (None: planned fresh)."""
    moved_gb: float | None
    """``moved_replicas`` × the expert size in GB (1e9 bytes)."""


def summarize_placement(
    placement: ExpertPlacement,
    load: npt.ArrayLike | None = None,
    *,
    expert_bytes: int = EXPERT_BYTES_FP8_DEEPSEEK_V3,
) -> PlacementSummary:
    """Summarize ``placement`` under ``load`` (``[layers, experts]``; default: the planned load).

    Parameters:
        placement: from `plan_expert_placement`.
        load: another load to score the same placement against (e.g. the next window).
        expert_bytes: bytes per routed expert, for ``moved_gb`` (default: DeepSeek-V3 fp8).
    """
    gpu_load = _gpu_load(placement, load)
    per_layer = gpu_load.max(axis=1)
    layer_balance = np.where(
        per_layer > 0, gpu_load.mean(axis=1) / np.where(per_layer > 0, per_layer, 1), 1.0
    )
    per_gpu = gpu_load.sum(axis=0)
    total = float(per_gpu.sum())
    gpu_share = per_gpu / total if total > 0 else np.full(per_gpu.shape, 1.0 / per_gpu.size)
    node_share = gpu_share.reshape(placement.topology.num_nodes, -1).sum(axis=1)
    moved = placement.moved_replicas
    return PlacementSummary(
        policy=placement.policy,
        reason=placement.reason,
        balancedness=compute_balancedness(gpu_load),
        balancedness_bound=placement.balancedness_bound,
        layer_balancedness=tuple(float(v) for v in layer_balance),
        gpu_load_share=tuple(float(v) for v in gpu_share),
        node_load_share=tuple(float(v) for v in node_share),
        max_replicas=int(placement.logical_replica_count.max()),
        moved_replicas=moved,
        moved_gb=None if moved is None else moved * expert_bytes / 1e9,
    )


# Layout of the heat map, in SVG user units (pixels).
_CELL_W_MIN, _CELL_W_MAX, _GRID_TARGET_W, _CELL_H, _NODE_GAP = 10, 36, 560, 8, 6
_MIN_WIDTH = 640
_LEFT, _TOP, _RIGHT, _BOTTOM = 64, 56, 24, 92
_COLD, _EVEN, _HOT = (33, 102, 172), (247, 247, 247), (178, 24, 43)
_SCALE_MAX = 2.0
"""Ratios to the layer mean at or above this are drawn fully red."""


def render_expert_map_svg(
    placement: ExpertPlacement, load: npt.ArrayLike | None = None, *, title: str | None = None
) -> str:
    """A standalone SVG heat map of per-GPU load, one row per MoE layer.

    Parameters:
        placement: from `plan_expert_placement`.
        load: ``[layers, experts]`` load to colour by (default: the planned load).
        title: first title line (default: "EPLB expert map").

    Returns:
        SVG text. Columns are GPUs, grouped by node with a gap between nodes; a cell's colour is
        the GPU's load divided by the layer's mean GPU load (blue 0×, white 1×, red ≥ 2×); each
        cell has a tooltip with the layer, GPU, node, ratio and the experts it holds.
    """
    topo = placement.topology
    gpu_load = _gpu_load(placement, load)
    num_layers, num_gpus = gpu_load.shape
    gpus_per_node = topo.gpus_per_node
    mean = gpu_load.mean(axis=1, keepdims=True)
    ratio = np.where(mean > 0, gpu_load / np.where(mean > 0, mean, 1.0), 1.0)
    experts = placement.physical_to_logical.reshape(num_layers, num_gpus, topo.slots_per_gpu)
    # Wide cells for small groups; the page never narrower than its title and legend.
    cell_w: int = min(_CELL_W_MAX, max(_CELL_W_MIN, _GRID_TARGET_W // int(num_gpus)))
    width = max(_MIN_WIDTH, _LEFT + num_gpus * cell_w + (topo.num_nodes - 1) * _NODE_GAP + _RIGHT)
    height = _TOP + num_layers * _CELL_H + _BOTTOM
    heading = escape(title or "EPLB expert map")
    subtitle = escape(
        f"{placement.policy} policy · {topo.num_gpus} GPUs / {topo.num_nodes} nodes / "
        f"{topo.num_physical_experts} slots · balancedness {compute_balancedness(gpu_load):.3f} "
        f"(bound {placement.balancedness_bound:.3f})"
    )
    out = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
        f'viewBox="0 0 {width} {height}" font-family="sans-serif" font-size="11">',
        f'<rect width="{width}" height="{height}" fill="white"/>',
        f'<text x="{_LEFT}" y="20" font-size="15" font-weight="bold">{heading}</text>',
        f'<text x="{_LEFT}" y="38">{subtitle}</text>',
    ]

    def column_x(gpu: int) -> int:
        return _LEFT + gpu * cell_w + (gpu // gpus_per_node) * _NODE_GAP

    for layer in range(num_layers):
        y = _TOP + layer * _CELL_H
        if layer % 5 == 0:
            out.append(f'<text x="{_LEFT - 6}" y="{y + _CELL_H - 1}" text-anchor="end">{layer}</text>')
        for gpu in range(num_gpus):
            r = float(ratio[layer, gpu])
            held = " ".join(str(int(e)) for e in experts[layer, gpu])
            out.append(
                f'<rect x="{column_x(gpu)}" y="{y}" width="{cell_w}" height="{_CELL_H}" '
                f'fill="{_colour(r)}" stroke="#d9d9d9" stroke-width="0.5">'
                f"<title>layer {layer}, GPU {gpu} (node {gpu // gpus_per_node}): "
                f"{r:.2f}× mean; experts {held}</title></rect>"
            )
    grid_bottom = _TOP + num_layers * _CELL_H
    out.append(
        f'<text x="14" y="{_TOP + num_layers * _CELL_H // 2}" '
        f'transform="rotate(-90 14 {_TOP + num_layers * _CELL_H // 2})" text-anchor="middle">MoE layer</text>'
    )
    for node in range(topo.num_nodes):
        left = column_x(node * gpus_per_node)
        span = gpus_per_node * cell_w
        rule_y = grid_bottom + 4
        out.append(f'<line x1="{left}" y1="{rule_y}" x2="{left + span}" y2="{rule_y}" stroke="#555"/>')
        if node % max(1, -(-18 // span)) == 0:  # label every node unless they are too narrow
            out.append(
                f'<text x="{left + span / 2}" y="{grid_bottom + 17}" text-anchor="middle">n{node}</text>'
            )
    last = gpus_per_node - 1
    out.append(f'<text x="{_LEFT}" y="{grid_bottom + 32}">GPUs, grouped by node (n0 = GPUs 0-{last})</text>')
    # Legend: a gradient bar from 0× to ≥ 2× the layer mean.
    legend_y, legend_w = grid_bottom + 44, 200
    out.append(
        '<defs><linearGradient id="load-scale">'
        f'<stop offset="0" stop-color="{_colour(0.0)}"/><stop offset="0.5" stop-color="{_colour(1.0)}"/>'
        f'<stop offset="1" stop-color="{_colour(_SCALE_MAX)}"/></linearGradient></defs>'
    )
    out.append(
        f'<rect x="{_LEFT}" y="{legend_y}" width="{legend_w}" height="12" '
        'fill="url(#load-scale)" stroke="#555"/>'
    )
    for tick, label in ((0.0, "0×"), (0.5, "0.5×"), (1.0, "1× mean"), (1.5, "1.5×"), (2.0, "≥2×")):
        x = _LEFT + legend_w * tick / _SCALE_MAX
        out.append(f'<text x="{x}" y="{legend_y + 26}" text-anchor="middle">{escape(label)}</text>')
    out.append(
        f'<text x="{_LEFT + legend_w + 12}" y="{legend_y + 10}">GPU load ÷ the layer\'s mean GPU load</text>'
    )
    out.append("</svg>")
    return "\n".join(out) + "\n"


def _gpu_load(placement: ExpertPlacement, load: npt.ArrayLike | None) -> npt.NDArray[np.float64]:
    if load is None:
        return placement.gpu_load
    matrix = np.asarray(load, dtype=np.float64)
    expected = (placement.num_layers, placement.topology.num_logical_experts)
    if matrix.shape != expected:
        raise ValueError(f"load: expected shape {list(expected)}, got {list(matrix.shape)}")
    return compute_gpu_load(placement.physical_to_logical, matrix, placement.topology.num_gpus)


def _colour(ratio: float) -> str:
    """Diverging scale: blue (0×) → white (1×) → red (≥ 2×)."""
    t = min(max(ratio, 0.0), _SCALE_MAX)
    low, high, frac = (_COLD, _EVEN, t) if t <= 1.0 else (_EVEN, _HOT, (t - 1.0) / (_SCALE_MAX - 1.0))
    r, g, b = (round(a + (c - a) * frac) for a, c in zip(low, high, strict=True))
    return f"#{r:02x}{g:02x}{b:02x}"
