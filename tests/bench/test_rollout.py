"""`dsd bench rollout`'s simulation: the real lifecycle and analysis on drawn metrics."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from deepseek_operator.bench.rollout import Scenario, load_scenarios, run_rollout_bench


def test_regressions_are_rolled_back_and_healthy_canaries_promoted() -> None:
    rows = run_rollout_bench([Scenario("healthy"), Scenario("slow", ttft_factor=2.0)], runs=5, seed=1)
    healthy, slow = rows
    assert (healthy["promoted"], healthy["false_rollbacks"], healthy["missed"]) == (5, 0, None)
    assert (slow["rolled_back"], slow["missed"]) == (5, 0)
    assert slow["detection_p50"] is not None
    assert slow["detection_p50"] <= 2.0
    # The surge budget: one group beyond the stable version's four (KubeRay's upgrades hold four).
    assert (healthy["extra_groups_max"], healthy["kuberay_blue_green"]) == (1, 4)


def test_scenarios_come_from_a_file(tmp_path: Path) -> None:
    path = tmp_path / "scenarios.json"
    path.write_text(json.dumps([{"name": "errors", "errorFactor": 5}]))
    with pytest.raises(ValueError, match="unknown keys"):
        load_scenarios(path)
    path.write_text(json.dumps([{"name": "errors", "error_factor": 5, "groups": 2}]))
    (scenario,) = load_scenarios(path)
    assert (scenario.name, scenario.error_factor, scenario.groups) == ("errors", 5, 2)
