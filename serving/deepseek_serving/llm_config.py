"""Pure rendering of the serving contract into Ray Serve LLM's ``LLMConfig`` (as a plain dict).

Why a separate, Ray-free module: every choice that turns ``ServingArgs`` into Ray Serve and vLLM
settings (bundles per rank, replica counts in groups, admission limits, the autoscaling policy) is a
decision worth testing in a table without starting Ray. ``app.build_app`` only validates this dict
into an ``LLMConfig`` and binds it to the rank server.
"""

from __future__ import annotations

from typing import Any, Final

from deepseek_serving.config import ServingArgs, engine_kwargs

__all__ = [
    "SERVE_DEPLOYMENT_NAME",
    "cpu_binding_for_rank",
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


def _render_deployment_config(args: ServingArgs) -> dict[str, Any]:
    scaling = args.autoscaling
    min_groups = scaling.min_groups if scaling else args.groups
    max_groups = scaling.max_groups if scaling else args.groups
    autoscaling_config: dict[str, Any] = {
        "min_replicas": min_groups,
        "initial_replicas": min_groups,
        "max_replicas": max_groups,
        "policy": {
            "policy_function": AUTOSCALING_POLICY,
            "policy_kwargs": {
                "data_parallel_size": args.data_parallel_size,
                "min_groups": min_groups,
                "max_groups": max_groups,
                # Without autoscaling min == max, so the target only matters for the decision's reason.
                "target_queue_depth_per_group": scaling.target_queue_depth_per_group if scaling else 1.0,
                "deployment": args.deployment_name,
                "version": args.version_name,
            },
        },
    }
    if scaling:
        autoscaling_config |= {
            "upscale_delay_s": scaling.upscale_delay_s,
            "downscale_delay_s": scaling.downscale_delay_s,
        }
    return {
        "max_ongoing_requests": args.limits.max_concurrent_requests_per_rank,
        "max_queued_requests": args.limits.max_queued_requests,
        "graceful_shutdown_timeout_s": args.limits.request_timeout_s,
        "graceful_shutdown_wait_loop_s": 1.0,
        # The replica actor joins its rank's first bundle; the engine owns the bundle's devices.
        "ray_actor_options": {"num_cpus": 0},
        "autoscaling_config": autoscaling_config,
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
