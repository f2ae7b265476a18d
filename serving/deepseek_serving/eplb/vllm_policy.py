"""vLLM plugin: our expert placement as the policy of vLLM's runtime EPLB.

Registration (``pyproject.toml``)::

    [project.entry-points."vllm.general_plugins"]
    deepseek_eplb = "deepseek_serving.eplb.vllm_policy:register"

vLLM loads every ``vllm.general_plugins`` entry point in each of its processes (API server,
engine core, workers: ``vllm/plugins/__init__.py``, ``load_general_plugins``), all of them when
``VLLM_PLUGINS`` is unset, or those it names. `register` then installs `DsdEplbPolicy` in vLLM's
policy registry, so the runtime EPLB (``EplbState.rearrange`` in sync mode, the async worker's
``eplb_state.policy`` in async mode) rebalances with the planner's algorithm, judged by the same
step-time model, with the settings of ``DSD_EPLB_POLICY`` (`policy_config`).

What vLLM 0.32 allows, and what it does not:

- A policy is chosen by ``eplb_config.policy``, typed ``Literal["default"]`` (``EPLBPolicyOption``
  in ``vllm/config/parallel.py``, validated by pydantic), and looked up once per model in
  ``EplbState.add_model`` as ``EPLB_POLICIES[policy]``. A new name cannot be selected, so
  `register` installs ours under ``"default"`` (vLLM's `DefaultEplbPolicy` stays reachable as
  `DsdEplbPolicy.fallback`, used if ours ever fails). This is the registry's public name
  (``vllm.distributed.eplb.policy.EPLB_POLICIES``); tests fail when a vLLM release lets
  ``eplb_config.policy`` name a plugin policy, the API that should replace the override.
- Async EPLB (vLLM's default ``use_async``) requires ``policy == "default"``: satisfied.
- The initial map cannot be seeded: ``EplbState.add_model`` always starts from
  ``build_initial_global_physical_to_logical_map`` (experts in order, redundant slots
  round-robin), and the weight loader (``routed_experts.make_expert_params_mapping``) loads
  weights by the same static map; there is no engine argument or hook to load another. The
  planned map therefore takes effect at the first rebalance, which vLLM runs a quarter of
  ``step_interval`` after start (``expert_rearrangement_step`` starts at 3/4 of the interval),
  planned by this policy from the load measured until then.
- Empty slots (-1) are supported by vLLM's map handling (elastic EP pads with them):
  ``compute_logical_maps``, ``rearrange_expert_weights_inplace`` and the router's load
  recording skip them, so trimmed placements run as planned.

Nothing here runs at import: vLLM and torch are imported inside `register` and `policy_class`.
"""

from __future__ import annotations

import logging
import os
from functools import cache
from typing import TYPE_CHECKING, Any

import numpy as np

from deepseek_serving.eplb.placement import EplbTopology
from deepseek_serving.eplb.plan import plan_expert_placement
from deepseek_serving.eplb.policy_config import EplbPolicyConfig

if TYPE_CHECKING:
    import torch

__all__ = ["PLUGIN_NAME", "policy_class", "rebalance", "register"]

PLUGIN_NAME = "deepseek_eplb"
"""The entry point's name: what ``VLLM_PLUGINS`` must include when it is set."""
REGISTRY_KEY = "default"
"""The one policy name vLLM 0.32 can select (``EPLBPolicyOption``)."""

logger = logging.getLogger(__name__)


def rebalance(
    load: np.ndarray,
    num_replicas: int,
    num_groups: int,
    num_nodes: int,
    num_ranks: int,
    old_map: np.ndarray | None,
    config: EplbPolicyConfig,
) -> np.ndarray:
    """Our placement for vLLM's arguments, in numpy (the policy's pure core).

    Parameters:
        load: ``[layers, logical experts]`` load window (tokens).
        num_replicas: physical slots per layer.
        num_groups: the model's expert groups (``n_group``).
        num_nodes: nodes of the EP group (vLLM passes 1 when they do not divide the ranks).
        num_ranks: EP ranks.
        old_map: ``[layers, num_replicas]`` the map in service (-1 empty), or None.
        config: the settings (`EplbPolicyConfig`).

    Returns:
        ``[layers, num_replicas]`` int64 physical-to-logical map (-1 for an empty slot).
    """
    weight = np.asarray(load, dtype=np.float64)
    topology = EplbTopology(weight.shape[1], num_groups, num_nodes, num_ranks, num_replicas)
    previous = None
    if old_map is not None and old_map.shape == (weight.shape[0], num_replicas):
        previous = np.asarray(old_map, dtype=np.int64)
    placement = plan_expert_placement(
        weight,
        topology,
        policy=config.policy,
        cost=config.cost_model(),
        previous=previous,
        migration_slack=config.migration_slack,
    )
    logger.info("EPLB rebalance (%s): %s", __name__, placement.reason)
    return np.array(placement.physical_to_logical, dtype=np.int64)


@cache
def policy_class() -> type[Any]:
    """`DsdEplbPolicy`: an ``AbstractEplbPolicy`` of the installed vLLM running `rebalance`."""
    import torch
    from vllm.distributed.eplb.policy import AbstractEplbPolicy, DefaultEplbPolicy

    class DsdEplbPolicy(AbstractEplbPolicy):
        """Expert placement judged by predicted step time (``deepseek_serving.eplb``)."""

        fallback = DefaultEplbPolicy
        """vLLM's own policy, used if ours fails (logged): the engine never stops rebalancing."""
        config: EplbPolicyConfig | None = None
        """Settings; None reads ``DSD_EPLB_POLICY`` on first use."""

        @classmethod
        def settings(cls) -> EplbPolicyConfig:
            if cls.config is None:
                cls.config = EplbPolicyConfig.from_env(os.environ)
            return cls.config

        @classmethod
        def rebalance_experts(
            cls,
            weight: torch.Tensor,
            num_replicas: int,
            num_groups: int,
            num_nodes: int,
            num_ranks: int,
            old_global_expert_indices: torch.Tensor | None = None,
        ) -> torch.Tensor:
            """vLLM's policy interface (``AbstractEplbPolicy.rebalance_experts``)."""
            try:
                old = None if old_global_expert_indices is None else old_global_expert_indices.cpu().numpy()
                mapped = rebalance(
                    weight.float().cpu().numpy(),
                    num_replicas,
                    num_groups,
                    num_nodes,
                    num_ranks,
                    old,
                    cls.settings(),
                )
            except ValueError:
                logger.exception("deepseek EPLB policy failed; rebalancing with vLLM's default policy")
                result: torch.Tensor = cls.fallback.rebalance_experts(
                    weight, num_replicas, num_groups, num_nodes, num_ranks, old_global_expert_indices
                )
                return result
            return torch.from_numpy(mapped)

    return DsdEplbPolicy


def register() -> None:
    """The ``vllm.general_plugins`` entry point: make our policy vLLM's EPLB policy.

    Idempotent (vLLM may load plugins more than once per process). A vLLM without the EPLB
    policy registry is logged and left alone.
    """
    try:
        from vllm.distributed.eplb import policy as eplb_policy
    except ImportError:
        logger.warning("deepseek EPLB policy not registered: this vLLM has no EPLB policy registry")
        return
    ours = policy_class()
    registry = eplb_policy.EPLB_POLICIES
    if registry.get(REGISTRY_KEY) is not ours:
        registry[REGISTRY_KEY] = ours
        logger.info("deepseek EPLB policy registered as vLLM's %r EPLB policy", REGISTRY_KEY)
