"""The rank server: one Ray Serve replica per DP rank, serving vLLM's own OpenAI app directly.

Built on Ray Serve LLM's building blocks, not beside them: ``LLMServer`` (starts vLLM's
``AsyncLLM`` from an ``LLMConfig``, health checks, placement bundles) and, for groups of several DP
ranks, ``DPServer`` (gang-scheduled replicas, rank 0 publishes the DP master address, the whole
gang restarts together). On top of them this module adds what ``ServingArgs`` asks for:

- the replica is itself the HTTP ingress (``serve.ingress()`` with a late-bound app): the ASGI app
  is vLLM's OpenAI app (``/v1/models``, ``/v1/completions``, ``/v1/chat/completions``, SSE
  streaming, usage, OpenAI errors, ``X-Request-Id``) wrapped in ``ServingGuard`` (API key,
  ``max_tokens`` cap, deadline, test-only fault injection) and ``VersionHeaders`` (every response
  names the deployment and version that answered), plus ``/ready``, which answers 200 only after
  the engine generated a token. With ``RAY_SERVE_ENABLE_HA_PROXY=1`` HAProxy forwards HTTP
  straight to these replicas; app.py records the measurements behind this layout;
- vLLM's metrics carry ``deployment``/``version``/``group`` labels (``metrics.labeled_stat_logger``)
  and each rank reports its queue depth to the autoscaler (``record_autoscaling_stats``);
- on CPU, each rank of a multi-rank group binds its own core (``VLLM_CPU_OMP_THREADS_BIND``).

Graceful drain is Ray Serve's: a stopping replica takes no new requests and waits up to
``limits.requestTimeoutS`` (``graceful_shutdown_timeout_s``) for in-flight ones before its engine
stops.
"""

from __future__ import annotations

import asyncio
import functools
import os
from typing import Any, Final

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse
from ray import serve
from ray.llm._internal.serve.engines.vllm.vllm_engine import VLLMEngine
from ray.serve.llm.deployment import DPServer, LLMServer
from vllm.sampling_params import SamplingParams
from vllm.v1.metrics.ray_wrappers import RayPrometheusStatLogger

from deepseek_serving.autoscaling import rank_autoscaling_metrics
from deepseek_serving.config import ServingArgs
from deepseek_serving.eplb.policy_config import ENV_VAR as EPLB_POLICY_ENV
from deepseek_serving.http_guards import ServingGuard, VersionHeaders, openai_error, wrap_middleware_stack
from deepseek_serving.llm_config import cpu_binding_for_rank
from deepseek_serving.metrics import RankLoad, ServingLabels, labeled_stat_logger
from deepseek_serving.request_metrics import RequestCounter, ray_request_metrics

__all__ = ["GroupRankServer", "LabeledVLLMEngine", "RankServer", "ranks_server_class"]

READINESS_TIMEOUT_S: Final = 30.0


class LabeledVLLMEngine(VLLMEngine):
    """Ray Serve LLM's vLLM engine whose stat logger labels metrics and tracks the rank's load.

    ``VLLMEngine`` hands ``AsyncLLM`` the class ``vllm.v1.metrics.ray_wrappers.RayPrometheusStatLogger``,
    looked up when the engine starts; it is our labeled subclass for the length of that call. On
    replica shutdown (after the drain) the engine's processes are stopped explicitly.
    """

    def __init__(self, llm_config: Any, *, stat_logger_cls: type[RayPrometheusStatLogger]) -> None:
        super().__init__(llm_config)
        self._stat_logger_cls = stat_logger_cls

    def _start_async_llm_engine(self, *args: Any, **kwargs: Any) -> Any:
        from vllm.v1.metrics import ray_wrappers

        default_logger = ray_wrappers.RayPrometheusStatLogger
        ray_wrappers.RayPrometheusStatLogger = self._stat_logger_cls  # type: ignore[misc]
        try:
            return super()._start_async_llm_engine(*args, **kwargs)
        finally:
            ray_wrappers.RayPrometheusStatLogger = default_logger  # type: ignore[misc]

    async def shutdown(self) -> None:
        """Stop the engine processes too (Ray Serve LLM leaves them to die with the replica)."""
        await super().shutdown()
        if self._engine_client is not None:
            self._engine_client.shutdown()


class _RankServerMixin:
    """What every rank adds to Ray Serve LLM's server: labels, load reports, guards, readiness."""

    async def __init__(self, llm_config: Any, *, serving_args: dict[str, Any]) -> None:  # type: ignore[misc]
        args = ServingArgs.model_validate(serving_args)
        context = serve.get_replica_context()
        gang = context.gang_context
        dp_rank = gang.rank if gang is not None else 0
        self._group = gang.gang_id if gang is not None else context.replica_id.unique_id
        self._args = args
        self._api_key = _api_key(args.api_key_env)
        self._load = RankLoad()
        if args.eplb.enabled and args.eplb.policy_settings:
            # Read by our EPLB policy in every vLLM process this rank starts (eplb.vllm_policy).
            os.environ[EPLB_POLICY_ENV] = args.eplb.policy_settings
        if args.placement.accelerator == "cpu" and args.ranks_per_group > 1:
            os.environ["VLLM_CPU_OMP_THREADS_BIND"] = cpu_binding_for_rank(
                dp_rank, args.tensor_parallel_size, os.cpu_count() or 1
            )
        labels = ServingLabels(
            deployment=args.deployment_name,
            version=args.version_name,
            revision=args.revision,
            group=self._group,
        )
        self._labels = labels
        engine_factory = functools.partial(
            LabeledVLLMEngine, stat_logger_cls=labeled_stat_logger(labels, self._load)
        )
        await super().__init__(llm_config, engine_cls=engine_factory)  # type: ignore[call-arg, misc]

    async def record_autoscaling_stats(self) -> dict[str, float]:
        """Ray Serve custom autoscaling metrics of this rank (``autoscaling.rank_autoscaling_metrics``):
        running and waiting requests, slots, KV-cache usage and the arrivals counter."""
        load = self._load
        engine_client = getattr(getattr(self, "engine", None), "_engine_client", None)
        scheduler_config = getattr(getattr(engine_client, "vllm_config", None), "scheduler_config", None)
        max_num_seqs = getattr(scheduler_config, "max_num_seqs", None) or self._args.engine_args.get(
            "max_num_seqs"
        )
        return rank_autoscaling_metrics(
            self._group,
            running=load.running,
            waiting=load.waiting,
            kv_usage=load.kv_usage,
            arrivals_total=load.arrivals_total,
            max_num_seqs=int(max_num_seqs) if max_num_seqs else None,
            admission_limit=self._args.limits.max_concurrent_requests_per_rank,
        )

    async def __serve_build_asgi_app__(self) -> FastAPI:
        app: FastAPI = await super().__serve_build_asgi_app__()  # type: ignore[misc]
        app.add_api_route("/ready", _readiness, methods=["GET"])
        limits = self._args.limits
        # vLLM's build_app already built the middleware stack; let Starlette rebuild it lazily.
        app.middleware_stack = None
        app.add_middleware(
            ServingGuard,
            api_key=self._api_key,
            max_tokens=limits.max_tokens,
            request_timeout_s=limits.request_timeout_s,
            fault_injection=self._args.fault_injection,
        )
        # Outermost, so every response says which version answered and is counted by its status
        # (the guard's errors and Starlette's 500s too).
        counter, duration = ray_request_metrics(self._labels)
        wrap_middleware_stack(
            app,
            lambda inner: RequestCounter(
                VersionHeaders(inner, deployment=self._args.deployment_name, version=self._args.version_name),
                counter=counter,
                duration=duration,
            ),
        )
        return app


def _api_key(variable: str | None) -> str | None:
    """The API key from the environment variable the contract names; checked before the engine starts."""
    if variable is None:
        return None
    key = os.environ.get(variable)
    if not key:
        raise RuntimeError(
            f"apiKeyEnv names {variable!r}, which is unset or empty in this replica's environment"
        )
    return key


async def _readiness(request: Request) -> JSONResponse:
    """200 once the engine generates a token, 503 otherwise ("the engine answers")."""
    engine_client = request.app.state.engine_client
    probe = engine_client.generate(
        {"prompt_token_ids": [0]},
        SamplingParams(max_tokens=1, temperature=0.0),
        request_id=f"readiness-{os.urandom(6).hex()}",
    )
    try:
        async with asyncio.timeout(READINESS_TIMEOUT_S):
            async for _ in probe:
                pass
    except Exception as error:  # any failure to answer means not ready
        message = f"engine did not answer: {error!r}"
        return JSONResponse(
            status_code=503, content=openai_error(message, error_type="service_unavailable", code=503)
        )
    return JSONResponse({"status": "ready"})


class RankServer(_RankServerMixin, LLMServer):
    """A group of one DP rank (``dataParallelSize == 1``): each replica is its own group."""


class GroupRankServer(_RankServerMixin, DPServer):
    """One DP rank of a gang-scheduled group (``dataParallelSize > 1``)."""


def ranks_server_class(args: ServingArgs) -> type:
    """The Serve ingress class for ``args``' ranks (late-bound ASGI app: vLLM's, guarded)."""
    server_cls = GroupRankServer if args.data_parallel_size > 1 else RankServer
    return serve.ingress()(server_cls)  # type: ignore[no-any-return]
