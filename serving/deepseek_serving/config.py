"""``ServingArgs``: the one contract between the operator and the serving data plane.

The operator renders a ``ServingArgs`` into a RayService's ``serveConfigV2`` as
``applications[].args`` (camelCase, as every other Kubernetes field), KubeRay hands that dict to
``deepseek_serving.app:build_app``, and ``dsd run`` builds the same object locally. Keeping the
schema here, importable without Ray, vLLM or torch, lets the operator import it for rendering and
validation while the serving image needs nothing from the operator.

``engine_kwargs(args)`` is the pure mapping from the contract to vLLM engine arguments. The planner
owns the parallel layout (TP/DP/EP, EPLB, context length, dtype, quantization); ``engineArgs`` is a
passthrough for everything else (``max_num_seqs``, ``enforce_eager``, ...) and may never override a
planner-owned key: such a spec is refused with an error naming the key.

Words (DESIGN.md): a *rank* is one engine process (one GPU, or one CPU core here); a *group* is the
DP x TP ranks that together hold every routed expert once. Ray Serve runs one replica per DP rank
and gang-schedules the ranks of a group; ``groups`` counts those gangs.
"""

from __future__ import annotations

from typing import Any, Final, Literal, Self

from pydantic import BaseModel, ConfigDict, Field, model_validator
from pydantic.alias_generators import to_camel

__all__ = [
    "PLANNER_OWNED_ENGINE_KEYS",
    "AutoscalingSettings",
    "EngineArgsConflict",
    "EplbSettings",
    "PlacementSettings",
    "RequestLimits",
    "ServingArgs",
    "TrafficSplit",
    "engine_kwargs",
]

CPU_WORKER_EXTENSION: Final = "deepseek_serving.cpu_compat.CpuCompatWorkerExtension"
"""vLLM ``worker_extension_cls`` that loads our CPU-only fixes in vLLM's worker processes."""

PLANNER_OWNED_ENGINE_KEYS: Final[frozenset[str]] = frozenset(
    {
        # Model identity: from modelSource / servedModelName.
        "model",
        "served_model_name",
        # Parallel layout and its runtime wiring (the serving app sets rank and address per replica).
        "tensor_parallel_size",
        "pipeline_parallel_size",
        "data_parallel_size",
        "data_parallel_rank",
        "data_parallel_address",
        "data_parallel_rpc_port",
        "data_parallel_backend",
        "data_parallel_external_lb",
        "data_parallel_hybrid_lb",
        "distributed_executor_backend",
        "enable_expert_parallel",
        "enable_eplb",
        "eplb_config",
        # Sizing decisions of the planner's memory fit.
        "max_model_len",
        "dtype",
        "quantization",
        # Platform glue set by engine_kwargs itself.
        "worker_extension_cls",
        # Secrets never travel in engine arguments (see apiKeyEnv).
        "api_key",
    }
)
"""vLLM engine arguments that ``engineArgs`` may not set: the planner or the serving app owns them."""


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
    initial_expert_map: list[list[int]] | None = Field(
        None,
        description=(
            "Planner's initial placement: for each MoE layer, the logical expert id held by each "
            "physical slot (slot i lives on rank i // slots_per_rank). Carried for observability and "
            "future engines: vLLM 0.32 has no engine argument to seed it and starts from its linear map."
        ),
    )

    @model_validator(mode="after")
    def _rows_have_one_length(self) -> Self:
        rows = self.initial_expert_map or []
        if len({len(row) for row in rows}) > 1:
            raise ValueError("initialExpertMap rows must all have the same number of physical slots")
        if any(expert < 0 for row in rows for expert in row):
            raise ValueError("initialExpertMap holds logical expert ids, which are >= 0")
        return self


class AutoscalingSettings(_ContractModel):
    """Queue-depth autoscaling in whole groups (queue depth = waiting + running over a group's ranks)."""

    min_groups: int = Field(1, ge=1, description="Fewest groups kept running.")
    max_groups: int = Field(1, ge=1, description="Most groups allowed.")
    target_queue_depth_per_group: float = Field(
        32.0, gt=0, description="Requests (waiting + running) one group should carry on average."
    )
    upscale_delay_s: float = Field(30.0, ge=0, description="How long a scale-up decision must hold.")
    downscale_delay_s: float = Field(600.0, ge=0, description="How long a scale-down decision must hold.")

    @model_validator(mode="after")
    def _bounds_are_ordered(self) -> Self:
        if self.max_groups < self.min_groups:
            raise ValueError(f"maxGroups ({self.max_groups}) must be >= minGroups ({self.min_groups})")
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


class TrafficSplit(_ContractModel):
    """One version's share of traffic in the local view (Kubernetes splits with HTTPRoute weights)."""

    version_name: str = Field(min_length=1, description="Version (revision) the share goes to.")
    weight: int = Field(ge=0, le=100, description="Percentage of requests.")


class ServingArgs(_ContractModel):
    """Everything one version of a DeepSeek deployment needs to serve (serveConfigV2 ``args``)."""

    deployment_name: str = Field(min_length=1, description="DeepSeekDeployment name; metric label.")
    namespace: str = Field("default", min_length=1, description="Kubernetes namespace of the deployment.")
    version_name: str = Field(min_length=1, description="Version (revision) name; metric label.")
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
    traffic: list[TrafficSplit] = Field(
        default_factory=list, description="Local view: versions and weights for the weighted router."
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
        if self.traffic and sum(split.weight for split in self.traffic) != 100:
            raise ValueError("traffic weights must sum to 100")
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
        super().__init__(
            f"engineArgs may not set planner-owned vLLM argument(s) {', '.join(keys)}: "
            "set the corresponding ServingArgs field instead"
        )


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
        EngineArgsConflict: ``engineArgs`` names a key in ``PLANNER_OWNED_ENGINE_KEYS`` or sets
            ``override_generation_config.max_new_tokens``.
    """
    conflicts = sorted(PLANNER_OWNED_ENGINE_KEYS & set(args.engine_args))
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
    if "max_new_tokens" in generation_overrides:
        raise EngineArgsConflict(["override_generation_config.max_new_tokens"])
    generation_overrides["max_new_tokens"] = args.limits.max_tokens
    return planned | args.engine_args | {"override_generation_config": generation_overrides}
