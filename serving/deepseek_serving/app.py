"""``build_app``: the import target of serveConfigV2 (``import_path: deepseek_serving.app:build_app``).

KubeRay (or ``dsd run`` locally) calls ``build_app(args)`` with the ``applications[].args`` dict,
i.e. a camelCase ``ServingArgs``. The application is a single Ray Serve deployment of rank servers
(``server.RankServer``/``GroupRankServer``): one replica per DP rank, ``groups`` gangs of
``dataParallelSize`` replicas, each replica serving vLLM's OpenAI app over HTTP itself.

Why this layout (measured on the 2-core CPU machine, tiny model, same vLLM engine arguments,
streaming completions of 128 tokens; output tokens/s at concurrency 1 / 8 / 32, TTFT p50):

=====================================================  ======================  ==================
layout                                                 tokens/s                TTFT p50 (ms)
=====================================================  ======================  ==================
bare vLLM OpenAI server                                410 / 2720 / 6250       6 / 12 / 33
``build_openai_app`` (OpenAiIngress -> LLMServer)      340 / 1770 / 2830       63 / 85 / 165
LLMServer as ingress, Serve's Python proxy             340 / 1700 / 3400       12 / 40 / 120
LLMServer as ingress, HAProxy (chosen)                 407 / 2340 / 5390       6 / 15 / 42
=====================================================  ======================  ==================

The stock ``build_openai_app``/``build_dp_openai_app`` put an ``OpenAiIngress`` deployment in
front of the engine replicas: every streamed chunk crosses a second Ray hop and Ray Serve LLM's
50 ms stream batcher, which costs ~57 ms of TTFT and more than half the throughput at concurrency
32 on two cores. Serving vLLM's app from the engine replica removes the hop; with Ray Serve's
HAProxy ingress (``RAY_SERVE_ENABLE_HA_PROXY=1`` in the Ray cluster's environment, which
``local.serve_locally`` sets and the operator must set on RayCluster pods) HTTP goes straight from
HAProxy to the replicas. Ray Serve LLM's ``LLMServer``/``DPServer`` still start the engine, wire DP
ranks and gang-schedule groups.

``bench.run_serving_bench`` re-measures the finished application (labels, guards, autoscaling
policy included) against bare vLLM: over five runs on the shared 2-core machine the throughput ratio
was 0.79-1.00 at concurrency 1, 0.84-0.95 at 8 and 0.68-0.80 at 32, with TTFT p50 within +20 ms
everywhere. The gap at 32 is CPU, not waiting: both sides saturate the two cores (vLLM's engine
processes busy-poll), and per 49k streamed tokens the rank replica spends ~2.8 s of CPU where vLLM's
API server spends ~1.8 s, Ray's metrics agent ~0.6 s and HAProxy ~0.4 s; every such second is taken
from the engine here, while on a GPU node it runs on otherwise idle host cores.
"""

from __future__ import annotations

from typing import Any

from ray.serve.deployment import Application

from deepseek_serving.config import ServingArgs
from deepseek_serving.llm_config import SERVE_DEPLOYMENT_NAME, render_gang_scheduling, render_llm_config

__all__ = ["build_app"]


def build_app(args: dict[str, Any] | ServingArgs) -> Application:
    """Build the Ray Serve application of one version of a DeepSeek deployment.

    Parameters:
        args: ``ServingArgs`` or its dict form (camelCase, as rendered into serveConfigV2).

    Returns:
        An application whose single deployment (``engine-ranks``) is the HTTP ingress.
    """
    from ray.serve.config import GangSchedulingConfig
    from ray.serve.llm import LLMConfig, build_dp_deployment, build_llm_deployment

    from deepseek_serving.server import ranks_server_class

    serving_args = args if isinstance(args, ServingArgs) else ServingArgs.model_validate(args)
    llm_config = LLMConfig(**render_llm_config(serving_args))
    serve_options: dict[str, Any] = {"name": SERVE_DEPLOYMENT_NAME}
    build = build_llm_deployment
    if gang := render_gang_scheduling(serving_args):
        serve_options["gang_scheduling_config"] = GangSchedulingConfig(**gang)
        build = build_dp_deployment
    return build(
        llm_config,
        deployment_cls=ranks_server_class(serving_args),
        bind_kwargs={"serving_args": serving_args.model_dump(mode="json", by_alias=True)},
        override_serve_options=serve_options,
    )
