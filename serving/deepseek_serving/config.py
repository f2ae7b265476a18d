"""``ServingArgs``: the one contract between the operator and the serving data plane.

The operator renders a ``ServingArgs`` into a RayService's ``serveConfigV2`` as
``applications[].args`` (camelCase, as every other Kubernetes field), KubeRay hands that dict to
``deepseek_serving.app:build_app``, and ``dsd run`` builds the same object locally. Keeping the
schema here, importable without Ray, vLLM or torch, lets the operator import it for rendering and
validation while the serving image needs nothing from the operator.

``engine_kwargs(args)`` is the pure mapping from the contract to vLLM engine arguments. The planner
owns the parallel layout (TP/DP/EP, EPLB, context length, dtype, quantization); ``engineArgs`` is a
passthrough for everything else (``max_num_seqs``, ``enforce_eager``, ...) and may never override a
planner-owned key: such a spec is refused with an error naming the key. ``PLANNER_OWNED_ENGINE_ARGS``
is the one list of those keys: the operator's validation refuses the same keys, with the same words,
before anything starts.

Words (DESIGN.md): a *rank* is one engine process (one GPU, or one CPU core here); a *group* is the
DP x TP ranks that together hold every routed expert once. Ray Serve runs one replica per DP rank
and gang-schedules the ranks of a group; ``groups`` counts those gangs.

``faultInjection`` (``FaultInjection``) is for tests only: it makes a version answer a share of
its generation requests with HTTP 500 and/or wait before forwarding them, so rollout tests can
build a bad canary that fails its analysis. Production versions never set it.
"""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType
from typing import Any, Final, Literal, Self

from pydantic import BaseModel, ConfigDict, Field, model_validator
from pydantic.alias_generators import to_camel

__all__ = [
    "OPERATOR_RENDERED_ENGINE_ARGS",
    "PLANNER_OWNED_ENGINE_ARGS",
    "AutoscalingSettings",
    "EngineArgsConflict",
    "EplbSettings",
    "FaultInjection",
    "PlacementSettings",
    "RequestLimits",
    "ServingArgs",
    "engine_kwargs",
    "owned_engine_arg_message",
    "planner_owned_keys",
]

CPU_WORKER_EXTENSION: Final = "deepseek_serving.cpu_compat.CpuCompatWorkerExtension"
"""vLLM ``worker_extension_cls`` that loads our CPU-only fixes in vLLM's worker processes."""

PLANNER_OWNED_ENGINE_ARGS: Final[Mapping[str, str]] = MappingProxyType(
    {
        # Model identity: the model source, its revision and tokenizer, the name clients send.
        "model": "spec.model.source",
        "revision": "spec.versions[].modelRevision",
        "tokenizer": "spec.model.tokenizer.source",
        "tokenizer_mode": "spec.model.tokenizer.mode",
        "served_model_name": "spec.model.servedModelName",
        "trust_remote_code": "DeepSeek V2/V3 run without remote code",
        # Parallel layout, and its runtime wiring: the serving app and Ray Serve LLM set each
        # rank's index, address and ports, and Ray places the ranks on nodes.
        "tensor_parallel_size": "spec.parallelism.tensorParallelSize",
        "pipeline_parallel_size": "spec.parallelism (pipeline parallelism is not used)",
        "data_parallel_size": "spec.parallelism.dataParallelSize",
        "data_parallel_rank": "spec.parallelism.dataParallelSize",
        "data_parallel_start_rank": "spec.parallelism.dataParallelSize",
        "data_parallel_size_local": "spec.parallelism.dataParallelSize",
        "data_parallel_address": "spec.parallelism.dataParallelSize",
        "data_parallel_rpc_port": "spec.parallelism.dataParallelSize",
        "data_parallel_backend": "spec.parallelism.dataParallelSize",
        "data_parallel_external_lb": "spec.parallelism.dataParallelSize",
        "data_parallel_hybrid_lb": "spec.parallelism.dataParallelSize",
        "data_parallel_multi_port_external_lb": "spec.parallelism.dataParallelSize",
        "distributed_executor_backend": "spec.resources.accelerator",
        "nnodes": "spec.resources.gpusPerNode (Ray places the ranks of a group on its nodes)",
        "node_rank": "spec.resources.gpusPerNode (Ray places the ranks of a group on its nodes)",
        "master_addr": "spec.resources.gpusPerNode (Ray places the ranks of a group on its nodes)",
        "master_port": "spec.resources.gpusPerNode (Ray places the ranks of a group on its nodes)",
        "enable_expert_parallel": "spec.parallelism.expertParallelSize",
        "enable_eplb": "spec.parallelism.eplb.enabled",
        "eplb_config": "spec.parallelism.eplb",
        # An engine argument of older vLLM (eplb_config.num_redundant_experts in 0.32).
        "num_redundant_experts": "spec.parallelism.eplb.redundantExperts",
        # Sizing decisions of the planner's memory fit.
        "max_model_len": "spec.model.maxModelLen",
        "dtype": "spec.model.dtype",
        "quantization": "spec.model.quantization",
        # The default completion length is the request limit (see engine_kwargs).
        "override_generation_config.max_new_tokens": "spec.serving.limits.maxTokens",
        # Platform glue set by engine_kwargs itself.
        "worker_extension_cls": "the serving app sets its own (the CPU compatibility fixes)",
        # Secrets never travel in engine arguments (see apiKeyEnv); an argument of vLLM's OpenAI
        # server, which users coming from `vllm serve --api-key` try here.
        "api_key": "spec.serving.apiKeySecretRef",
    }
)
"""vLLM engine arguments that ``engineArgs`` may not set, each with what sets it instead: the
field of a DeepSeekDeployment a user changes (``spec.…``), or who does and why.

The one list of them: ``engine_kwargs`` refuses these keys at deploy time and the operator's
validation (``dsd validate``, the admission webhook, the reconciler) refuses them before anything
starts. A dotted key (``override_generation_config.max_new_tokens``) names a key inside a mapping
argument.
"""

OPERATOR_RENDERED_ENGINE_ARGS: Final[frozenset[str]] = frozenset({"revision"})
"""Planner-owned keys the operator itself writes into ``ServingArgs.engine_args``: the model
revision of an ``hf://`` source (``spec.versions[].modelRevision``). A user's ``engineArgs`` may
not set them (the operator's validation refuses them); ``engine_kwargs`` accepts them, since it
cannot tell who wrote them. Empty once ``ServingArgs`` carries the revision as a field of its own."""


class _ContractModel(BaseModel):
    """Base for every contract model: camelCase on the wire, snake_case in Python, no unknown keys."""

    model_config = ConfigDict(
        alias_generator=to_camel,
        populate_by_name=True,
        extra="forbid",
        frozen=True,
    )


class EplbSettings(_ContractModel):
    """vLLM's expert-parallel load balancer (runtime rebalancing of experts between ranks)."""

    enabled: bool = Field(False, description="Turn on EPLB (vLLM supports it on CUDA/ROCm/XPU only).")
    num_redundant_experts: int = Field(
        0, ge=0, description="Extra physical expert slots per MoE layer, summed over the group's ranks."
    )
    window_size: int = Field(1000, gt=0, description="Engine steps of expert load kept for rebalancing.")
    step_interval: int = Field(3000, gt=0, description="Engine steps between two rebalancing passes.")
    policy_settings: str | None = Field(
        None,
        description=(
            "The step-time settings our EPLB policy plans with (``eplb.policy_config.EplbPolicyConfig`` "
            "JSON: regime, GPU, the layer's dimensions), set as ``DSD_EPLB_POLICY`` for the engine's "
            "processes; vLLM's own calls carry none of them. vLLM 0.32 cannot seed its initial expert map, "
            "so the planned map takes effect at the first rebalance, re-planned from measured load."
        ),
    )

    @model_validator(mode="after")
    def _policy_settings_parse(self) -> Self:
        if self.policy_settings is not None:
            from deepseek_serving.eplb.policy_config import EplbPolicyConfig

            EplbPolicyConfig.from_json(self.policy_settings)
        return self


class AutoscalingSettings(_ContractModel):
    """Queue-depth autoscaling in whole groups (queue depth = waiting + running over a group's ranks).

    The policy (``autoscaling_policy.decide_scale``) sizes the group count for the demand expected
    one cold start ahead, with headroom; the defaults suit DeepSeek-class groups (minutes to start).
    """

    min_groups: int = Field(1, ge=0, description="Fewest groups kept running (0 needs scaleToZero).")
    max_groups: int = Field(1, ge=1, description="Most groups allowed.")
    target_queue_depth_per_group: float | None = Field(
        None,
        gt=0,
        description=(
            "Requests (waiting + running) one group is planned to carry; None: the slots the group "
            "reports (max_num_seqs capped by the admission limit, summed over its ranks, fewer when "
            "its KV cache fills first)."
        ),
    )
    headroom_percent: float = Field(
        10.0,
        ge=0,
        le=100,
        description=(
            "Demand kept free above the forecast, percent (plus 3 standard deviations of the "
            "fluctuation of the number of requests in the system)."
        ),
    )
    cold_start_s: float = Field(
        600.0,
        ge=0,
        le=86_400,
        description=(
            "Seconds from adding a group to its serving, the policy's look-ahead until it has "
            "measured the groups it started itself."
        ),
    )
    upscale_delay_s: float = Field(15.0, ge=0, description="How long a scale-up decision must hold.")
    downscale_delay_s: float = Field(600.0, ge=0, description="How long a scale-down decision must hold.")
    scale_to_zero: bool = Field(False, description="Allow 0 groups when idle (minGroups 0).")

    @model_validator(mode="after")
    def _bounds_are_ordered(self) -> Self:
        if self.max_groups < self.min_groups:
            raise ValueError(f"maxGroups ({self.max_groups}) must be >= minGroups ({self.min_groups})")
        if self.min_groups == 0 and not self.scale_to_zero:
            raise ValueError("minGroups 0 needs scaleToZero")
        return self


class PlacementSettings(_ContractModel):
    """Ray placement of one group: its bundles are gang-reserved together on one placement group."""

    accelerator: Literal["gpu", "cpu"] = Field("gpu", description="Device kind the ranks run on.")
    bundles: list[dict[str, float]] = Field(
        default_factory=lambda: [{"GPU": 1.0}],
        min_length=1,
        description=(
            "Resource bundles of one group, one per rank device (DP x TP bundles, rank-major: the "
            "first TP bundles belong to DP rank 0). Each rank's Serve replica actor joins its first bundle."
        ),
    )
    strategy: Literal["PACK", "SPREAD"] = Field(
        "PACK", description="Ray Serve gang placement strategy for the group's ranks."
    )


class RequestLimits(_ContractModel):
    """Admission limits enforced by the serving app before a request reaches the engine."""

    max_concurrent_requests_per_rank: int = Field(
        256, ge=1, description="Requests one rank accepts at once; more wait in Ray Serve's queue."
    )
    max_queued_requests: int = Field(
        -1,
        ge=-1,
        description="Requests allowed to wait in Ray Serve per caller (-1: unbounded); beyond: 503.",
    )
    request_timeout_s: float = Field(600.0, gt=0, description="Wall-clock budget of one request.")
    max_tokens: int = Field(
        4096, ge=1, description="Largest max_tokens a request may ask for; also the default when absent."
    )


class FaultInjection(_ContractModel):
    """TEST ONLY: deliberate failures and latency, so tests can build a bad canary version.

    Applied by the serving app's HTTP guard (``http_guards.ServingGuard``) to generation requests
    (``/v1/completions``, ``/v1/chat/completions``) that passed authentication and the
    ``max_tokens`` cap; nothing else is affected. Never set it on a production version.
    """

    error_percent: float = Field(
        0.0,
        ge=0,
        le=100,
        description=(
            "Share (percent) of generation requests answered with HTTP 500 in OpenAI error format "
            "(type `fault_injection`) before they reach the engine."
        ),
    )
    delay_s: float = Field(
        0.0,
        ge=0,
        description=(
            "Seconds waited before a generation request is forwarded to the engine (counted in "
            "limits.requestTimeoutS, so a delay beyond it ends in 408)."
        ),
    )


class ServingArgs(_ContractModel):
    """Everything one version of a DeepSeek deployment needs to serve (serveConfigV2 ``args``)."""

    deployment_name: str = Field(min_length=1, description="DeepSeekDeployment name; metric label.")
    namespace: str = Field("default", min_length=1, description="Kubernetes namespace of the deployment.")
    version_name: str = Field(min_length=1, description="Version name; metric label.")
    revision: str = Field(
        "", description="Content hash of the version's RayService (set by the operator); metric label."
    )
    model_source: str = Field(min_length=1, description="Model directory (local path) or URI.")
    served_model_name: str = Field(min_length=1, description="Model id clients send as `model`.")
    dtype: Literal["auto", "bfloat16", "float16", "float32"] = Field("auto", description="Weight dtype.")
    quantization: str | None = Field(None, description="vLLM quantization method (None: as stored).")
    max_model_len: int | None = Field(None, ge=1, description="Context length (None: the model's).")
    tensor_parallel_size: int = Field(1, ge=1, description="Ranks sharing one attention replica (TP).")
    data_parallel_size: int = Field(1, ge=1, description="Attention replicas in one group (DP).")
    enable_expert_parallel: bool = Field(False, description="Shard routed experts over the group's ranks.")
    eplb: EplbSettings = Field(default_factory=EplbSettings, description="Expert load balancing.")
    groups: int = Field(1, ge=1, description="Groups to run when autoscaling is off.")
    autoscaling: AutoscalingSettings | None = Field(None, description="Queue-depth autoscaling in groups.")
    placement: PlacementSettings = Field(default_factory=PlacementSettings, description="Group placement.")
    engine_args: dict[str, Any] = Field(
        default_factory=dict, description="Extra vLLM engine arguments (snake_case, not planner-owned)."
    )
    api_key_env: str | None = Field(
        None, min_length=1, description="Name of the environment variable holding the API key (None: open)."
    )
    limits: RequestLimits = Field(default_factory=RequestLimits, description="Admission limits.")
    route_prefix: str = Field("/", pattern=r"^/", description="HTTP route prefix of the application.")
    fault_injection: FaultInjection | None = Field(
        None,
        description=(
            "TEST ONLY: inject errors and latency into generation requests to build a bad canary "
            "(None: off). Never set on a production version."
        ),
    )

    @model_validator(mode="after")
    def _layout_is_consistent(self) -> Self:
        ranks_per_group = self.data_parallel_size * self.tensor_parallel_size
        if len(self.placement.bundles) != ranks_per_group:
            raise ValueError(
                f"placement.bundles has {len(self.placement.bundles)} bundles; a group of "
                f"dataParallelSize x tensorParallelSize = {ranks_per_group} ranks needs one per rank device"
            )
        if self.eplb.enabled and not self.enable_expert_parallel:
            raise ValueError("eplb.enabled requires enableExpertParallel")
        return self

    @property
    def ranks_per_group(self) -> int:
        """Engine ranks (devices) in one group: DP x TP."""
        return self.data_parallel_size * self.tensor_parallel_size

    def rank_bundles(self, dp_rank: int) -> list[dict[str, float]]:
        """The placement bundles of one DP rank: its TP slice of the group's bundles."""
        tp = self.tensor_parallel_size
        return [dict(bundle) for bundle in self.placement.bundles[dp_rank * tp : (dp_rank + 1) * tp]]


class EngineArgsConflict(ValueError):
    """``engineArgs`` tried to set a vLLM argument that the planner or the serving app owns."""

    def __init__(self, keys: list[str]) -> None:
        self.keys = keys
        super().__init__("; ".join(f"engineArgs.{key}: {owned_engine_arg_message(key)}" for key in keys))


def owned_engine_arg_message(key: str) -> str:
    """What is said about ``engineArgs.<key>`` for a key of ``PLANNER_OWNED_ENGINE_ARGS``.

    ``engine_kwargs`` and the operator's validation both say it, so a refusal reads the same
    wherever it happens, e.g. ``set by the operator; use spec.parallelism.tensorParallelSize``.
    """
    instead = PLANNER_OWNED_ENGINE_ARGS[key]
    if instead.startswith("spec."):
        return f"set by the operator; use {instead}"
    return f"set by the operator: {instead}"


def planner_owned_keys(engine_args: Mapping[str, Any]) -> list[str]:
    """The keys of ``PLANNER_OWNED_ENGINE_ARGS`` that ``engine_args`` sets (dotted ones too), sorted."""
    found = []
    for key in PLANNER_OWNED_ENGINE_ARGS:
        outer, _, inner = key.partition(".")
        value = engine_args.get(outer)
        if outer in engine_args and (not inner or (isinstance(value, Mapping) and inner in value)):
            found.append(key)
    return sorted(found)


def engine_kwargs(args: ServingArgs) -> dict[str, Any]:
    """Map the contract to vLLM engine keyword arguments (model identity excluded).

    Parameters:
        args: the serving contract.

    Returns:
        ``AsyncEngineArgs`` keywords for one rank: the planner's layout (``tensor_parallel_size``,
        ``data_parallel_size``, ``enable_expert_parallel``, ``enable_eplb`` + ``eplb_config``,
        ``max_model_len``, ``dtype``, ``quantization``), the CPU worker extension on CPU, the
        ``engineArgs`` passthrough, and ``limits.maxTokens`` as the default completion length
        (``override_generation_config.max_new_tokens``). ``model``/``served_model_name`` and the
        per-rank DP wiring are added by the server that starts the engine.

    Raises:
        EngineArgsConflict: ``engineArgs`` sets a key of ``PLANNER_OWNED_ENGINE_ARGS`` (such as
            ``override_generation_config.max_new_tokens``) other than the ones the operator renders
            itself (``OPERATOR_RENDERED_ENGINE_ARGS``).
    """
    conflicts = [
        key for key in planner_owned_keys(args.engine_args) if key not in OPERATOR_RENDERED_ENGINE_ARGS
    ]
    if conflicts:
        raise EngineArgsConflict(conflicts)

    planned: dict[str, Any] = {
        "tensor_parallel_size": args.tensor_parallel_size,
        "data_parallel_size": args.data_parallel_size,
        "enable_expert_parallel": args.enable_expert_parallel,
        "enable_eplb": args.eplb.enabled,
        "dtype": args.dtype,
        "quantization": args.quantization,
        "max_model_len": args.max_model_len,
    }
    if args.eplb.enabled:
        planned["eplb_config"] = {
            "window_size": args.eplb.window_size,
            "step_interval": args.eplb.step_interval,
            "num_redundant_experts": args.eplb.num_redundant_experts,
        }
    if args.placement.accelerator == "cpu":
        planned["worker_extension_cls"] = CPU_WORKER_EXTENSION
        # On CPUs with AMX vLLM picks its AMX MLA kernels, which take bf16 weights only and fail
        # at load on float32; the reference CPU MLA backend runs every dtype.
        if args.dtype == "float32" and not {"attention_backend", "attention_config"} & set(args.engine_args):
            planned["attention_backend"] = "CPU_MLA"
    planned = {key: value for key, value in planned.items() if value is not None}

    # limits.maxTokens is the default completion length too (vLLM takes the smaller of it and the
    # room left in the context); other generation-config overrides stay the user's.
    generation_overrides = dict(args.engine_args.get("override_generation_config") or {})
    generation_overrides["max_new_tokens"] = args.limits.max_tokens
    return planned | args.engine_args | {"override_generation_config": generation_overrides}
