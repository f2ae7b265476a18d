"""Pure rendering of the serving contract into Ray Serve LLM's ``LLMConfig`` (as a plain dict).

Why a separate, Ray-free module: every choice that turns ``ServingArgs`` into Ray Serve and vLLM
settings (bundles per rank, replica counts in groups, admission limits, the autoscaling policy) is a
decision worth testing in a table without starting Ray. ``app.build_app`` only validates this dict
into an ``LLMConfig`` and binds it to the rank server.

Group counts never reach the application's code version. Ray Serve restarts every replica of an
application whose ``args`` (or autoscaling policy) change, and a resize must not reload a
DeepSeek-class model: so a serveConfigV2 application carries ``code_args`` (the contract without
``groups`` and the autoscaling bounds) and the counts as a ``deployments`` override of the rank
deployment's ``autoscaling_config`` (``render_deployment_override``), which Ray Serve applies as a
lightweight update; the policy reads its bounds from Ray Serve's context, not from its kwargs.
"""

from __future__ import annotations

from typing import Any, Final

from deepseek_serving.config import AutoscalingSettings, ServingArgs, engine_kwargs

__all__ = [
    "SERVE_DEPLOYMENT_NAME",
    "code_args",
    "cpu_binding_for_rank",
    "render_deployment_override",
    "render_gang_scheduling",
    "render_llm_config",
]

SERVE_DEPLOYMENT_NAME: Final = "engine-ranks"
"""Ray Serve deployment holding the ranks (one replica per DP rank) of every group of a version."""

AUTOSCALING_POLICY: Final = "deepseek_serving.autoscaling:QueueDepthPolicy"


def render_llm_config(args: ServingArgs) -> dict[str, Any]:
    """``LLMConfig`` fields for one version's ranks.

    Parameters:
        args: the serving contract.

    Returns:
        A dict for ``ray.serve.llm.LLMConfig``: model id/source, engine kwargs, the
        accelerator kind, the bundles of one rank (its TP slice of the group's bundles), and the
        Serve deployment options (replica counts in groups: Ray Serve LLM's ``DPServer`` multiplies
        them by ``data_parallel_size``).

    Raises:
        ValueError: the group's bundles differ between DP ranks (Ray Serve LLM reserves the same
            bundles for every rank of a gang).
    """
    rank_bundles = [args.rank_bundles(dp_rank) for dp_rank in range(args.data_parallel_size)]
    if any(bundles != rank_bundles[0] for bundles in rank_bundles):
        raise ValueError(f"every DP rank needs the same bundles; got {rank_bundles}")
    return {
        "model_loading_config": {"model_id": args.served_model_name, "model_source": args.model_source},
        "engine_kwargs": engine_kwargs(args),
        "accelerator_config": {"kind": args.placement.accelerator},
        # A rank's TP workers share one node; the gang strategy (placement.strategy) spreads ranks.
        "placement_group_config": {"bundles": rank_bundles[0], "strategy": "STRICT_PACK"},
        "deployment_config": _render_deployment_config(args),
        "log_engine_metrics": True,
    }


def code_args(args: ServingArgs) -> dict[str, Any]:
    """``args`` as a serveConfigV2 application carries them: camelCase, without the group counts
    (``groups``, ``autoscaling.minGroups``/``maxGroups``), which ``render_deployment_override`` sets."""
    dumped = args.model_dump(mode="json", by_alias=True, exclude_none=True)
    dumped.pop("groups", None)
    for bound in ("minGroups", "maxGroups"):
        (dumped.get("autoscaling") or {}).pop(bound, None)
    return dumped


def render_deployment_override(args: ServingArgs) -> dict[str, Any]:
    """The serveConfigV2 ``deployments`` entry sizing the rank deployment to ``args``' groups (in
    Serve replicas: groups × ``data_parallel_size``); a change of it alone resizes in place."""
    return {
        "name": SERVE_DEPLOYMENT_NAME,
        "autoscaling_config": _autoscaling_config(args, args.data_parallel_size),
    }


def _autoscaling_config(args: ServingArgs, replicas_per_group: int) -> dict[str, Any]:
    # Without autoscaling the policy still runs, with minGroups == maxGroups: it exports the
    # per-group queue depth and the decisions for every deployment.
    scaling = args.autoscaling or AutoscalingSettings(min_groups=args.groups, max_groups=args.groups)
    return {
        "min_replicas": scaling.min_groups * replicas_per_group,
        "initial_replicas": max(scaling.min_groups, 1) * replicas_per_group,
        "max_replicas": scaling.max_groups * replicas_per_group,
        # The policy holds the delays, the look-ahead and the hysteresis itself: Ray Serve's own
        # delay logic, applied after every custom policy, would hold each answer back again
        # (30 s up / 600 s down by default). At 0 it passes every answer on the same tick.
        "upscale_delay_s": 0.0,
        "downscale_delay_s": 0.0,
        "downscale_to_zero_delay_s": 0.0,
        "policy": {
            "policy_function": AUTOSCALING_POLICY,
            # No group counts here: they are part of the code version (see the module docstring).
            "policy_kwargs": {
                "data_parallel_size": args.data_parallel_size,
                "autoscaling": scaling.model_dump(mode="json", exclude={"min_groups", "max_groups"}),
                "deployment": args.deployment_name,
                "version": args.version_name,
            },
        },
    }


def _render_deployment_config(args: ServingArgs) -> dict[str, Any]:
    return {
        "max_ongoing_requests": args.limits.max_concurrent_requests_per_rank,
        "max_queued_requests": args.limits.max_queued_requests,
        "graceful_shutdown_timeout_s": args.limits.request_timeout_s,
        "graceful_shutdown_wait_loop_s": 1.0,
        # The replica actor joins its rank's first bundle; the engine owns the bundle's devices.
        "ray_actor_options": {"num_cpus": 0},
        # In groups: Ray Serve LLM's DPServer multiplies the replica counts by data_parallel_size.
        "autoscaling_config": _autoscaling_config(args, 1),
    }


def render_gang_scheduling(args: ServingArgs) -> dict[str, Any] | None:
    """Ray Serve gang scheduling of a group's DP ranks (``None`` for single-rank groups).

    Ray Serve LLM's ``DPServer`` sets the same gang size and restart policy but always packs;
    this applies ``placement.strategy`` from the planner.
    """
    if args.data_parallel_size == 1:
        return None
    return {
        "gang_size": args.data_parallel_size,
        "gang_placement_strategy": args.placement.strategy,
        "runtime_failure_policy": "RESTART_GANG",
    }


def cpu_binding_for_rank(dp_rank: int, tensor_parallel_size: int, cpu_count: int) -> str:
    """``VLLM_CPU_OMP_THREADS_BIND`` for one DP rank of a multi-rank group on CPU.

    Each TP worker of the rank gets one core, ranks taking consecutive cores (wrapping around), e.g.
    rank 1 with TP 2 on 8 cores -> ``"2|3"``. Without it vLLM refuses to start more ranks than NUMA
    nodes ("Not enough allowed NUMA nodes").
    """
    first_core = dp_rank * tensor_parallel_size
    return "|".join(str((first_core + worker) % cpu_count) for worker in range(tensor_parallel_size))
