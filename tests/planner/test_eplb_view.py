"""What a person sees: the placement summary and the SVG heat map."""

from __future__ import annotations

import xml.etree.ElementTree as ET

import numpy as np
import pytest

from deepseek_operator.planner.eplb import EplbTopology, plan_expert_placement
from deepseek_operator.planner.eplb_load import zipf_expert_load
from deepseek_operator.planner.eplb_view import (
    EXPERT_BYTES_FP8_DEEPSEEK_V3,
    _colour,
    render_expert_map_svg,
    summarize_placement,
)

SVG = "{http://www.w3.org/2000/svg}"
TOPO = EplbTopology(
    num_logical_experts=16, num_expert_groups=4, num_nodes=2, num_gpus=4, num_physical_experts=20
)


def test_expert_bytes_is_44_mb() -> None:
    assert pytest.approx(44.04, abs=0.01) == EXPERT_BYTES_FP8_DEEPSEEK_V3 / 1e6


def test_summary() -> None:
    load = zipf_expert_load(3, 16, exponent=1.0, seed=0)
    first = plan_expert_placement(load, TOPO)
    replan = plan_expert_placement(load[::-1].copy(), TOPO, previous=first.physical_to_logical)
    summary = summarize_placement(replan)
    assert summary.policy == replan.policy
    assert summary.balancedness == pytest.approx(replan.balancedness)
    assert len(summary.layer_balancedness) == 3
    assert sum(summary.gpu_load_share) == pytest.approx(1.0)
    assert sum(summary.node_load_share) == pytest.approx(1.0)
    assert len(summary.node_load_share) == 2
    assert summary.max_replicas == replan.logical_replica_count.max()
    assert replan.moved_replicas is not None
    assert summary.moved_gb == pytest.approx(replan.moved_replicas * EXPERT_BYTES_FP8_DEEPSEEK_V3 / 1e9)
    assert summarize_placement(first).moved_gb is None


def test_summary_scores_another_window() -> None:
    load = zipf_expert_load(3, 16, exponent=1.0, seed=0)
    placement = plan_expert_placement(load, TOPO)
    later = summarize_placement(placement, zipf_expert_load(3, 16, exponent=1.0, seed=1))
    assert later.balancedness < placement.balancedness
    with pytest.raises(ValueError, match=r"load: expected shape \[3, 16\]"):
        summarize_placement(placement, np.ones((2, 16)))


@pytest.mark.parametrize(
    ("ratio", "colour"),
    [
        pytest.param(0.0, "#2166ac", id="cold"),
        pytest.param(1.0, "#f7f7f7", id="even"),
        pytest.param(2.0, "#b2182b", id="hot"),
        pytest.param(9.0, "#b2182b", id="clamped"),
        pytest.param(-1.0, "#2166ac", id="clamped-low"),
    ],
)
def test_colour_scale(ratio: float, colour: str) -> None:
    assert _colour(ratio) == colour


def test_svg_heat_map_is_well_formed_and_complete() -> None:
    load = zipf_expert_load(3, 16, exponent=1.0, seed=0)
    placement = plan_expert_placement(load, TOPO)
    svg = render_expert_map_svg(placement, title="tiny <group>")
    root = ET.fromstring(svg)
    texts = [t.text or "" for t in root.iter(f"{SVG}text")]
    assert texts[0] == "tiny <group>"
    assert f"balancedness {placement.balancedness:.3f}" in texts[1]
    assert {"n0", "n1", "MoE layer"} <= set(texts)
    cells = [r for r in root.iter(f"{SVG}rect") if r.find(f"{SVG}title") is not None]
    assert len(cells) == placement.num_layers * TOPO.num_gpus
    tooltip = cells[0].find(f"{SVG}title")
    assert tooltip is not None
    assert tooltip.text is not None
    assert tooltip.text.startswith("layer 0, GPU 0 (node 0): ")
    # Node groups are separated: GPU 2 (node 1) starts after a gap.
    xs = sorted({float(r.get("x", 0)) for r in cells})
    assert xs[2] - xs[1] > xs[1] - xs[0]
