"""Drive vLLM's own runtime EPLB on CPU with our policy loaded as a plugin: two EP ranks over gloo.

Run by ``tests/serving/test_eplb_vllm_policy.py`` as ``python -m tests.serving.eplb_engine_probe
OUT_DIR`` (its own processes: torch.distributed and vLLM's parallel state are process-global).
Each rank:

1. loads plugins through vLLM's loader (``vllm.plugins.load_general_plugins``) with the entry
   point exactly as ``pyproject.toml`` declares it (``importlib.metadata.entry_points`` answers
   with it; an editable install made before the entry point existed does not list it);
2. joins a 2-rank gloo world and vLLM's EP and EPLB groups (``initialize_model_parallel``);
3. builds vLLM's ``EplbState`` for a small MoE model stand-in (``add_model``: the policy is looked
   up there), whose expert weights hold their logical expert id;
4. records a skewed expert load in vLLM's load window and calls ``EplbState.rearrange()``: our
   policy plans, ``rearrange_expert_weights_inplace`` moves the weights between the ranks through
   vLLM's gloo communicator, ``_commit_eplb_maps`` installs the maps;
5. rearranges again on the same load (a re-plan from the map in service);
6. writes ``rank<r>.json``: the policy's name, the maps and whether every local slot's weights
   hold the expert the map says.

The only stand-ins for GPU behaviour: ``torch.Event`` (rearrange times itself with device
events) and ``torch.accelerator.current_stream`` (the gloo communicator waits for device copies
before sending) become no-ops: the CPU backend has neither events nor streams.
"""

from __future__ import annotations

import json
import os
import socket
import sys
import tomllib
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import numpy as np

ROOT = Path(__file__).parents[2]
LAYERS, EXPERTS, GROUPS, REDUNDANT, HIDDEN, RANKS = 3, 16, 4, 4, 8, 2
SLOTS = EXPERTS + REDUNDANT


def skewed_window(rank: int) -> np.ndarray:
    """``[window 2, layers, physical slots]`` int32 counts this rank recorded (seeded, skewed)."""
    rng = np.random.default_rng(100 + rank)
    popularity = np.exp(1.5 * np.random.default_rng(7).standard_normal((LAYERS, SLOTS)))
    return rng.poisson(40 * popularity, size=(2, LAYERS, SLOTS)).astype(np.int32)


def plugin_entry_point() -> Any:
    """The ``vllm.general_plugins`` entry point as pyproject.toml declares it."""
    import importlib.metadata as metadata

    table = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["entry-points"]
    ((name, value),) = table["vllm.general_plugins"].items()
    return metadata.EntryPoint(name=name, value=value, group="vllm.general_plugins")


class _CpuEvent:
    def __init__(self, *args: object, **kwargs: object) -> None: ...

    def record(self, *args: object) -> None: ...

    def synchronize(self) -> None: ...

    def elapsed_time(self, other: object) -> float:
        return 0.0


def run_rank(rank: int, port: int, out_dir: str) -> None:
    import importlib.metadata as metadata

    import torch

    torch.Event = _CpuEvent  # type: ignore[misc,assignment]
    torch.accelerator.current_stream = lambda *args, **kwargs: SimpleNamespace(synchronize=lambda: None)
    entry_point = plugin_entry_point()
    listed = metadata.entry_points
    metadata.entry_points = lambda **kw: (  # type: ignore[assignment]
        metadata.EntryPoints([entry_point]) if kw.get("group") == "vllm.general_plugins" else listed(**kw)
    )
    os.environ["VLLM_PLUGINS"] = entry_point.name
    from vllm.config import ParallelConfig, VllmConfig, set_current_vllm_config
    from vllm.config.parallel import EPLBConfig
    from vllm.distributed import parallel_state
    from vllm.distributed.eplb.eplb_state import EplbState
    from vllm.plugins import load_general_plugins

    load_general_plugins()

    config = VllmConfig(parallel_config=ParallelConfig(enable_expert_parallel=True))
    parallel = config.parallel_config
    # VllmConfig refuses EPLB on CPU platforms; the state machine below does not care.
    object.__setattr__(parallel, "enable_eplb", True)
    object.__setattr__(
        parallel,
        "eplb_config",
        EPLBConfig(
            use_async=False,
            num_redundant_experts=REDUNDANT,
            window_size=2,
            step_interval=4,
            communicator="torch_gloo",
        ),
    )
    with set_current_vllm_config(config):
        parallel_state.init_distributed_environment(
            world_size=RANKS,
            rank=rank,
            distributed_init_method=f"tcp://127.0.0.1:{port}",
            local_rank=rank,
            backend="gloo",
        )
        parallel_state.initialize_model_parallel(tensor_model_parallel_size=RANKS, backend="gloo")
        local = SLOTS // RANKS
        initial = EplbState.build_initial_global_physical_to_logical_map(EXPERTS, REDUNDANT)
        ids = torch.tensor(initial[rank * local : (rank + 1) * local], dtype=torch.float32)
        weights = [
            [ids[:, None].repeat(1, HIDDEN).clone(), -ids[:, None].repeat(1, 2 * HIDDEN)]
            for _ in range(LAYERS)
        ]
        model = SimpleNamespace(
            num_routed_experts=EXPERTS,
            num_redundant_experts=REDUNDANT,
            num_physical_experts=SLOTS,
            num_logical_experts=EXPERTS,
            num_expert_groups=GROUPS,
            num_moe_layers=LAYERS,
            num_local_physical_experts=local,
            num_shared_experts=0,
            expert_weights=weights,
            moe_layers=[],
            set_eplb_state=lambda *args: None,
        )
        state = EplbState(parallel, torch.device("cpu"))
        state.add_model(model, SimpleNamespace(compute_hash=lambda: "probe", model="probe"))  # type: ignore[arg-type]
        model_state = state.model_states["probe"]
        window = torch.from_numpy(skewed_window(rank))
        maps = []
        for _ in range(2):
            model_state.expert_load_window.copy_(window)
            state.rearrange()
            maps.append(model_state.physical_to_logical_map.clone())
        final = maps[-1][:, rank * local : (rank + 1) * local]
        held = torch.stack([layer[0][:, 0] for layer in weights])
        held_too = torch.stack([-layer[1][:, 0] for layer in weights])
        filled = final >= 0
        result = {
            "policy": f"{state.policy.__module__}.{state.policy.__qualname__}",
            "first_map": maps[0].tolist(),
            "second_map": maps[1].tolist(),
            "weights_follow_map": bool(
                torch.equal(held[filled], final[filled].float())
                and torch.equal(held_too[filled], final[filled].float())
            ),
            "replica_count": model_state.logical_replica_count.tolist(),
            "nodes": parallel_state.get_node_count(),
        }
        Path(out_dir, f"rank{rank}.json").write_text(json.dumps(result))
        parallel_state.destroy_model_parallel()
        parallel_state.destroy_distributed_environment()


def main(out_dir: str) -> None:
    import torch.multiprocessing as mp

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    mp.start_processes(run_rank, args=(port, out_dir), nprocs=RANKS, start_method="spawn", join=True)


if __name__ == "__main__":
    main(sys.argv[1])
