"""Our EPLB policy inside vLLM: the plugin entry point, vLLM's loader, and vLLM's runtime EPLB on CPU.

The end-to-end test runs `tests.serving.eplb_engine_probe` in its own processes: two EP ranks over
gloo in vLLM's parallel state, vLLM's ``EplbState`` (``add_model`` picks the policy,
``rearrange`` runs it, moves the expert weights between the ranks and commits the maps).
"""

from __future__ import annotations

import importlib
import inspect
import json
import os
import subprocess
import sys
import tomllib
from collections.abc import Iterator
from pathlib import Path
from typing import Any, get_args

import numpy as np
import pytest

from deepseek_serving.eplb import vllm_policy
from deepseek_serving.eplb.placement import count_expert_moves
from deepseek_serving.eplb.policy_config import ENV_VAR, EplbPolicyConfig
from deepseek_serving.eplb.vllm_policy import PLUGIN_NAME, rebalance
from tests.serving import eplb_engine_probe as probe

ROOT = Path(__file__).parents[2]


def test_pyproject_declares_the_plugin() -> None:
    table = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["entry-points"]
    plugins = table["vllm.general_plugins"]
    assert plugins == {PLUGIN_NAME: "deepseek_serving.eplb.vllm_policy:register"}
    module, _, attribute = plugins[PLUGIN_NAME].partition(":")
    assert getattr(importlib.import_module(module), attribute) is vllm_policy.register


# --------------------------------------------------------------------------------------------
# Settings the operator hands to the engine
# --------------------------------------------------------------------------------------------


def test_policy_config_round_trips_through_the_environment() -> None:
    from deepseek_serving.eplb.cost import PREFILL, StepCostModel, gpu_figures

    model = StepCostModel(gpu_figures()["H200"], regime=PREFILL)
    config = EplbPolicyConfig.from_cost_model(model, policy="global", migration_slack=0.02)
    again = EplbPolicyConfig.from_env(config.to_env())
    assert again == config
    assert again.cost_model() == model
    assert json.loads(config.to_env()[ENV_VAR])["tokensPerGpu"] == 8192
    assert EplbPolicyConfig.from_env({}) == EplbPolicyConfig()


@pytest.mark.parametrize(
    ("text", "message"),
    [
        pytest.param('{"tokensPerGPU": 1}', "unknown key 'tokensPerGPU'", id="unknown-key"),
        pytest.param('{"tokensPerGpu": "128"}', "tokensPerGpu: expected int", id="string-number"),
        pytest.param('{"tokensPerGpu": true}', "tokensPerGpu: expected int", id="bool"),
        pytest.param('{"regime": "mixed"}', "regime: expected decode or prefill", id="regime"),
        pytest.param('{"tokensPerGpu": 0}', "tokens_per_gpu: expected >= 1", id="zero-tokens"),
        pytest.param("[1]", "expected a JSON object", id="not-an-object"),
    ],
)
def test_policy_config_names_what_is_wrong(text: str, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        EplbPolicyConfig.from_env({ENV_VAR: text})


# --------------------------------------------------------------------------------------------
# In this process: vLLM's plugin loader and the policy interface
# --------------------------------------------------------------------------------------------


@pytest.fixture
def vllm_registry(monkeypatch: pytest.MonkeyPatch) -> Iterator[dict[str, Any]]:
    """vLLM's policy registry, restored afterwards; plugins loadable again."""
    pytest.importorskip("vllm")
    import vllm.plugins
    from vllm.distributed.eplb import policy as eplb_policy

    saved = dict(eplb_policy.EPLB_POLICIES)
    monkeypatch.setattr(vllm.plugins, "plugins_loaded", False)
    yield eplb_policy.EPLB_POLICIES
    eplb_policy.EPLB_POLICIES.clear()
    eplb_policy.EPLB_POLICIES.update(saved)


def test_vllms_loader_registers_our_policy(
    vllm_registry: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    import importlib.metadata as metadata

    from vllm.distributed.eplb.policy import DefaultEplbPolicy
    from vllm.plugins import load_general_plugins

    entry_point = probe.plugin_entry_point()
    listed = metadata.entry_points
    monkeypatch.setattr(
        metadata,
        "entry_points",
        lambda **kw: (
            metadata.EntryPoints([entry_point]) if kw.get("group") == "vllm.general_plugins" else listed(**kw)
        ),
    )
    monkeypatch.setenv("VLLM_PLUGINS", PLUGIN_NAME)
    assert vllm_registry["default"] is DefaultEplbPolicy
    load_general_plugins()
    ours = vllm_policy.policy_class()
    assert vllm_registry["default"] is ours
    assert set(vllm_registry) == {"default"}
    vllm_policy.register()  # vLLM may load plugins again: idempotent
    assert vllm_registry["default"] is ours
    assert ours.fallback is DefaultEplbPolicy


def test_only_default_can_be_selected_in_this_vllm() -> None:
    # Why `register` overrides "default": eplb_config.policy cannot name another policy. When a vLLM
    # release accepts other names (or plugin policies), select ours by name instead.
    pytest.importorskip("vllm")
    from vllm.config.parallel import EPLBConfig, EPLBPolicyOption

    assert get_args(EPLBPolicyOption) == ("default",)
    with pytest.raises(ValueError, match="policy"):
        EPLBConfig(policy="deepseek")  # type: ignore[arg-type]


def test_this_vllm_cannot_seed_the_initial_map() -> None:
    # Why the plan's map is not handed to the engine: the initial map and the weight loader's
    # mapping are one static function, and add_model takes no map. When this fails, vLLM has grown
    # a way to seed it: hand it the planned map.
    pytest.importorskip("vllm")
    from vllm.distributed.eplb.eplb_state import EplbState

    assert list(inspect.signature(EplbState.add_model).parameters) == [
        "self",
        "model",
        "model_config",
        "model_name",
    ]
    assert EplbState.build_initial_global_physical_to_logical_map(4, 2) == [0, 1, 2, 3, 0, 1]


@pytest.mark.parametrize("regime", ["decode", "prefill"])
def test_policy_interface_matches_vllms_default(regime: str) -> None:
    pytest.importorskip("vllm")
    import torch
    from vllm.distributed.eplb.policy import DefaultEplbPolicy

    from deepseek_operator.planner.eplb_load import zipf_expert_load

    ours = vllm_policy.policy_class()
    ours.config = EplbPolicyConfig(regime=regime, tokens_per_gpu=128 if regime == "decode" else 8192)  # type: ignore[arg-type]
    try:
        weight = torch.from_numpy(zipf_expert_load(4, 256, exponent=1.0, seed=3))
        args = (weight, 288, 8, 4, 32)
        mine, theirs = ours.rebalance_experts(*args), DefaultEplbPolicy.rebalance_experts(*args)
        assert (mine.shape, mine.dtype, mine.device) == (theirs.shape, theirs.dtype, theirs.device)
        again = ours.rebalance_experts(*args, old_global_expert_indices=mine)
        assert torch.equal(again, mine)  # same load, map in service: nothing moves
    finally:
        ours.config = None


def test_policy_falls_back_to_vllms_default(monkeypatch: pytest.MonkeyPatch) -> None:
    pytest.importorskip("vllm")
    import torch
    from vllm.distributed.eplb.policy import DefaultEplbPolicy

    def broken(*args: object) -> np.ndarray:
        raise ValueError("load: expected finite non-negative numbers")

    monkeypatch.setattr(vllm_policy, "rebalance", broken)
    weight = torch.rand(2, 16)
    mapped = vllm_policy.policy_class().rebalance_experts(weight, 20, 4, 1, 4)
    assert torch.equal(mapped, DefaultEplbPolicy.rebalance_experts(weight, 20, 4, 1, 4))


# --------------------------------------------------------------------------------------------
# vLLM's runtime EPLB on CPU, two ranks (own processes)
# --------------------------------------------------------------------------------------------


def _logical_load(window: np.ndarray, physical_to_logical: np.ndarray) -> np.ndarray:
    """What EplbState.rearrange hands the policy: the window's counts summed per logical expert."""
    counts = window.sum(axis=0)  # [layers, slots]
    load = np.zeros((counts.shape[0], probe.EXPERTS + 1))
    np.add.at(
        load,
        (
            np.arange(counts.shape[0])[:, None],
            np.where(physical_to_logical >= 0, physical_to_logical, probe.EXPERTS),
        ),
        counts,
    )
    return load[:, :-1]


@pytest.mark.parametrize(
    "settings",
    [
        pytest.param(EplbPolicyConfig(), id="decode-trims"),
        pytest.param(EplbPolicyConfig(regime="prefill", tokens_per_gpu=8192), id="prefill"),
    ],
)
def test_vllm_runtime_eplb_rebalances_with_our_policy(settings: EplbPolicyConfig, tmp_path: Path) -> None:
    pytest.importorskip("vllm")
    env = {**os.environ, **settings.to_env(), "PYTHONPATH": str(ROOT)}
    env.pop("VLLM_PLUGINS", None)
    ran = subprocess.run(
        [sys.executable, "-m", "tests.serving.eplb_engine_probe", str(tmp_path)],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert ran.returncode == 0, ran.stderr[-4000:]
    ranks = [json.loads((tmp_path / f"rank{rank}.json").read_text()) for rank in range(probe.RANKS)]
    for result in ranks:
        assert result["policy"].endswith("DsdEplbPolicy")
        assert result["weights_follow_map"]  # vLLM moved the weights to where the map says
    first, second = (np.array(ranks[0][key]) for key in ("first_map", "second_map"))
    assert all(np.array_equal(first, np.array(r["first_map"])) for r in ranks)
    # vLLM handed our policy the load of its window (all-reduced over the ranks) and its map.
    window = probe.skewed_window(0) + probe.skewed_window(1)
    initial = np.tile(
        [*range(probe.EXPERTS), *(i % probe.EXPERTS for i in range(probe.REDUNDANT))], (probe.LAYERS, 1)
    )
    expected_first = rebalance(
        _logical_load(window, initial), probe.SLOTS, probe.GROUPS, 1, probe.RANKS, initial, settings
    )
    np.testing.assert_array_equal(first, expected_first)
    expected_second = rebalance(
        _logical_load(window, first), probe.SLOTS, probe.GROUPS, 1, probe.RANKS, first, settings
    )
    np.testing.assert_array_equal(second, expected_second)
    if settings.regime == "decode":
        assert (first == -1).any()  # redundant slots left empty, and vLLM runs the map
    assert count_expert_moves(first, second, probe.SLOTS // probe.RANKS) <= count_expert_moves(
        initial, first, probe.SLOTS // probe.RANKS
    )
