"""`deepseek.serving.dev/v1alpha1` `DeepSeekDeployment`: the pydantic models ARE the CRD.

Field names are snake_case in Python and camelCase in YAML (an alias generator does the
mapping). Every field's docstring becomes its `description` in the CRD and in the published
JSON Schema, so `kubectl explain deepseekdeployment.spec.parallelism` reads like this file.
Unknown fields are rejected everywhere except inside `engineArgs` and inline `config`, which
are passed through to vLLM and Hugging Face verbatim.

Validation happens in layers (see `deepseek_operator.validation`):
1. structure: these models (types, bounds, enums, patterns);
2. cross-field rules that the API server can also check alone (`cross_field_rules`, with a CEL
   twin copied into the CRD);
3. checks that need the model's real `config.json` (`deepseek_operator.validation`).
"""

from __future__ import annotations

import re
from datetime import datetime
from typing import Annotated, Any, ClassVar, Literal

from pydantic import BaseModel, ConfigDict, Field, GetJsonSchemaHandler
from pydantic.alias_generators import to_camel
from pydantic.json_schema import JsonSchemaValue
from pydantic_core import CoreSchema

from deepseek_operator.api.rules import CrossFieldRule
from deepseek_operator.quantity import QUANTITY_PATTERN

__all__ = [
    "AnalysisMeasurement",
    "AnalysisMetric",
    "AnalysisSpec",
    "AnalysisStatus",
    "AnalysisStep",
    "ApiModel",
    "ArchitectureSource",
    "AutoscalingSpec",
    "CanaryStep",
    "Condition",
    "ConfigMapKeyRef",
    "DeepSeekDeployment",
    "DeepSeekDeploymentSpec",
    "DeepSeekDeploymentStatus",
    "EplbSpec",
    "FaultInjectionSpec",
    "HistoryEntry",
    "HttpRouteSpec",
    "ModelSpec",
    "ObjectMeta",
    "ParallelismSpec",
    "PauseStep",
    "PlanSummary",
    "PrometheusSpec",
    "RequestLimits",
    "ResourcesSpec",
    "RolloutSpec",
    "RolloutStatus",
    "SecretKeyRef",
    "ServingSpec",
    "TokenizerSpec",
    "Toleration",
    "VersionSpec",
    "VersionTraffic",
]

DNS_LABEL_PATTERN = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$"
DNS_SUBDOMAIN_PATTERN = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$"
MODEL_SOURCE_PATTERN = (
    r"^(hf://[A-Za-z0-9][A-Za-z0-9._-]*/[A-Za-z0-9][A-Za-z0-9._-]*(@[A-Za-z0-9][A-Za-z0-9._/-]*)?"
    r"|s3://[a-z0-9][a-z0-9.-]{1,61}[a-z0-9](/.*)?"
    r"|pvc://[a-z0-9]([-a-z0-9]*[a-z0-9])?(/.*)?"
    r"|file:///.*)$"
)
ENGINE_ARG_PATTERN = re.compile(r"^[a-z][a-z0-9_]*$")

# Bounds that also keep the API server's CEL cost estimate finite (it rejects a CRD whose rules
# iterate over unbounded lists).
MAX_VERSIONS = 16
MAX_STEPS = 64
MAX_METRICS = 16
MAX_TOLERATIONS = 32
MAX_MEASUREMENTS_PER_METRIC = 20
"""Every measurement of the current analysis is kept in status: at most 16 metrics × 20."""
# `<deployment>-<version>` names a RayService; KubeRay derives longer names (head service,
# RayCluster) from it, so it must stay short. See validation.check_object_names.
MAX_VERSION_NAME_LENGTH = 20
# Free-form maps get a key limit the CRD enforces (`maxProperties`); `validation._check_sizes`
# checks the same counts and, what a structural schema cannot express, their size in bytes.
MAX_ENGINE_ARGS = 128
"""Keys of one version's `engineArgs`: vLLM 0.32 has 255 engine arguments, deployments set ~10."""
MAX_INLINE_CONFIG_KEYS = 256
"""Top-level keys of an inline `config.json`: DeepSeek V2/V3 configs have 34 to 46."""
MAX_NODE_SELECTOR_LABELS = 64
"""Labels a GPU worker pod's `nodeSelector` may require."""
MAX_LABEL_VALUE_LENGTH = 63
"""A Kubernetes label value (a pod's `nodeSelector` values must be valid label values)."""


def _count_set(*values: object) -> int:
    return sum(value is not None for value in values)


class ApiModel(BaseModel):
    """Base of every API object: camelCase YAML, unknown fields rejected, docstrings documented."""

    model_config = ConfigDict(
        alias_generator=to_camel,
        validate_by_name=True,
        validate_by_alias=True,
        serialize_by_alias=True,
        extra="forbid",
        use_attribute_docstrings=True,
        validate_default=False,
    )

    cross_field_rules: ClassVar[tuple[CrossFieldRule, ...]] = ()

    @classmethod
    def __get_pydantic_json_schema__(
        cls, core_schema: CoreSchema, handler: GetJsonSchemaHandler
    ) -> JsonSchemaValue:
        """Publish the cross-field rules as `x-kubernetes-validations` (CEL) on the object's schema."""
        json_schema = handler(core_schema)
        if cls.cross_field_rules:
            target = handler.resolve_ref_schema(json_schema)
            target["x-kubernetes-validations"] = [rule.to_kubernetes() for rule in cls.cross_field_rules]
        return json_schema

    def to_dict(self) -> dict[str, Any]:
        """The YAML/JSON form: camelCase keys, unset optional fields left out."""
        return self.model_dump(mode="json", by_alias=True, exclude_none=True)


class ConfigMapKeyRef(ApiModel):
    """A key of a ConfigMap in the deployment's namespace."""

    name: str = Field(min_length=1, max_length=253, pattern=DNS_SUBDOMAIN_PATTERN)
    """ConfigMap name."""
    key: str = Field(default="config.json", min_length=1, max_length=253)
    """Key holding the document."""


class SecretKeyRef(ApiModel):
    """A key of a Secret in the deployment's namespace."""

    name: str = Field(min_length=1, max_length=253, pattern=DNS_SUBDOMAIN_PATTERN)
    """Secret name."""
    key: str = Field(default="api-key", min_length=1, max_length=253)
    """Key holding the value."""


# ─── spec.model ──────────────────────────────────────────────────────────────────────────────


class ArchitectureSource(ApiModel):
    """Where the model's Hugging Face `config.json` comes from: exactly one of the fields."""

    cross_field_rules = (
        CrossFieldRule(
            cel="[has(self.catalog), has(self.config), has(self.configMapRef), has(self.path)]"
            ".filter(x, x).size() == 1",
            message="set exactly one of catalog, config, configMapRef, path",
            check=lambda s: (
                None
                if _count_set(s.catalog, s.config, s.config_map_ref, s.path) == 1
                else "set exactly one of catalog, config, configMapRef, path"
            ),
        ),
    )

    catalog: str | None = Field(default=None, max_length=63)
    """Name of a built-in architecture (`dsd catalog` lists them), e.g. `deepseek-r1`."""
    config: dict[str, Any] | None = Field(
        default=None, json_schema_extra={"maxProperties": MAX_INLINE_CONFIG_KEYS}
    )
    """The `config.json` mapping inline (at most 256 top-level keys and 256 KiB as JSON)."""
    config_map_ref: ConfigMapKeyRef | None = None
    """A ConfigMap key holding `config.json`."""
    path: str | None = Field(default=None, min_length=1, max_length=4096)
    """Path of a `config.json` (or of the directory holding it) on the machine that validates;
    for local runs and offline review."""


class TokenizerSpec(ApiModel):
    """Tokenizer overrides; by default the tokenizer is loaded from the model source."""

    source: str | None = Field(default=None, pattern=MODEL_SOURCE_PATTERN, max_length=4096)
    """Load the tokenizer from another source (same URI schemes as `model.source`)."""
    mode: Literal["auto", "slow"] = "auto"
    """vLLM `tokenizer_mode`."""
    chat_template: str | None = Field(default=None, max_length=65536)
    """Jinja chat template replacing the tokenizer's own."""


class ModelSpec(ApiModel):
    """The model to serve: where its weights are and what its architecture is."""

    source: str = Field(pattern=MODEL_SOURCE_PATTERN, max_length=4096)
    """Where the weights are: `hf://org/name@revision`, `s3://bucket/prefix`, `pvc://claim/path`
    or `file:///absolute/path`."""
    architecture: ArchitectureSource | None = None
    """Where the model's `config.json` comes from. When omitted it is inferred from `source`:
    well-known Hugging Face repositories map to the built-in catalog and `file://` sources are
    read from disk; other sources must say."""
    served_model_name: str | None = Field(default=None, min_length=1, max_length=253)
    """Model name clients pass in OpenAI requests; defaults to the resource's name."""
    dtype: Literal["auto", "bfloat16", "float16"] = "auto"
    """Activation and unquantized-weight dtype."""
    quantization: Literal["auto", "none", "fp8", "awq", "gptq", "compressed-tensors"] = "auto"
    """Weight quantization; `auto` follows the checkpoint's `quantization_config`."""
    max_model_len: int | None = Field(default=None, ge=16, le=16_777_216)
    """Longest prompt plus completion in tokens; defaults to the model's `max_position_embeddings`."""
    tokenizer: TokenizerSpec | None = None
    """Tokenizer overrides."""


# ─── spec.versions ───────────────────────────────────────────────────────────────────────────


class FaultInjectionSpec(ApiModel):
    """TEST ONLY: deliberate failures of one version's generation requests."""

    error_percent: float = Field(default=0.0, ge=0, le=100)
    """Share of completion and chat requests answered with HTTP 500, in percent."""
    delay_seconds: float = Field(default=0.0, ge=0, le=600)
    """Latency added before each completion or chat request reaches the engine."""


class VersionSpec(ApiModel):
    """One version of the serving stack. The last entry of `versions` is the desired one; the one
    before it is what a canary rolls out from."""

    name: str = Field(min_length=1, max_length=MAX_VERSION_NAME_LENGTH, pattern=DNS_LABEL_PATTERN)
    """Short DNS label naming the version, e.g. `v1`; part of the RayService's name."""
    image: str | None = Field(default=None, min_length=1, max_length=512)
    """Serving image (Ray + vLLM + `deepseek_serving`); defaults to the operator's configured image."""
    model_revision: str | None = Field(default=None, min_length=1, max_length=255)
    """Model revision (branch, tag or commit) overriding the one in `model.source`."""
    fault_injection: FaultInjectionSpec | None = None
    """TEST ONLY: make this version answer a share of its requests with errors or add latency, to
    rehearse a rollback (the serving application's `faultInjection`). Never in production."""
    engine_args: dict[str, Any] = Field(
        default_factory=dict, json_schema_extra={"maxProperties": MAX_ENGINE_ARGS}
    )
    """Extra vLLM engine arguments (`AsyncEngineArgs` names, snake_case), passed through verbatim;
    names and value types are checked against the serving image's vLLM. Arguments the planner owns
    (parallel sizes, `max_model_len`, …) are rejected here. At most 128 keys and 64 KiB as JSON."""


# ─── spec.parallelism ────────────────────────────────────────────────────────────────────────


class EplbSpec(ApiModel):
    """Expert-parallel load balancing: redundant expert copies placed by measured load."""

    cross_field_rules = (
        CrossFieldRule(
            cel="self.redundantExperts == 0 || self.enabled",
            message="redundant experts need EPLB: set enabled: true",
            field="redundantExperts",
            check=lambda s: (
                None
                if s.redundant_experts == 0 or s.enabled
                else f"{s.redundant_experts} redundant experts need EPLB: set enabled: true"
            ),
        ),
    )

    enabled: bool = False
    """Run vLLM's EPLB (GPU only): measure expert load and rebalance periodically."""
    redundant_experts: int = Field(default=0, ge=0, le=1024)
    """Extra physical expert slots per MoE layer, filled with copies of the busiest experts."""
    policy: Literal["auto", "hierarchical", "global"] = "auto"
    """Placement policy of the expert map: `auto` keeps, per MoE layer, the candidate with the least
    predicted step time; `hierarchical` (replicas on their group's node) or `global` (anywhere)
    restrict the candidates to that family."""
    optimize_for: Literal["decode", "prefill"] = "decode"
    """Engine step the placement is judged by: `decode` (few tokens per GPU: a replica costs a
    weight read) or `prefill` (a full token budget per GPU: compute and all-to-all volume)."""
    tokens_per_gpu: int | None = Field(default=None, ge=1, le=1_048_576)
    """Tokens each GPU contributes to one step of that kind; default 128 for decode, the engine's
    `max_num_batched_tokens` (8192 unless set) for prefill."""
    load_stats: ConfigMapKeyRef | None = None
    """Expert-load statistics (documented format, see docs) to plan the initial map from;
    uniform load when absent."""
    window_size: int | None = Field(default=None, ge=1, le=100_000)
    """Engine steps of load history EPLB keeps."""
    step_interval: int | None = Field(default=None, ge=1, le=10_000_000)
    """Engine steps between rebalances."""


class ParallelismSpec(ApiModel):
    """Hints for the planner; every size is optional and the planner fills what is missing.

    In a data-parallel group, attention runs `dataParallelSize` replicas each split over
    `tensorParallelSize` GPUs of one node, and the routed experts are sharded over all
    `dataParallelSize × tensorParallelSize` ranks (vLLM `enable_expert_parallel`), so the
    expert-parallel size, when given, must equal that product.
    """

    cross_field_rules = (
        CrossFieldRule(
            cel="!has(self.expertParallelSize) || !has(self.tensorParallelSize) || "
            "!has(self.dataParallelSize) || "
            "self.expertParallelSize == self.tensorParallelSize * self.dataParallelSize",
            message="expertParallelSize must equal tensorParallelSize × dataParallelSize",
            field="expertParallelSize",
            check=lambda s: (
                None
                if None in (s.expert_parallel_size, s.tensor_parallel_size, s.data_parallel_size)
                or s.expert_parallel_size == s.tensor_parallel_size * s.data_parallel_size
                else (
                    f"{s.expert_parallel_size} must equal tensorParallelSize × dataParallelSize = "
                    f"{s.tensor_parallel_size} × {s.data_parallel_size} = "
                    f"{s.tensor_parallel_size * s.data_parallel_size}: experts are sharded over "
                    "every rank of a group"
                )
            ),
        ),
    )

    tensor_parallel_size: int | None = Field(default=None, ge=1, le=64)
    """GPUs one attention replica is split over; they stay inside one node."""
    data_parallel_size: int | None = Field(default=None, ge=1, le=1024)
    """Attention replicas per group, each taking requests."""
    expert_parallel_size: int | None = Field(default=None, ge=1, le=1024)
    """Ranks the routed experts are sharded over (= tensor × data parallel size)."""
    eplb: EplbSpec = Field(default_factory=EplbSpec)
    """Expert-parallel load balancing."""


# ─── spec.resources ──────────────────────────────────────────────────────────────────────────


class Toleration(ApiModel):
    """A Kubernetes toleration, copied onto GPU worker pods."""

    key: str | None = Field(default=None, max_length=317)
    """Taint key; empty with operator Exists tolerates everything."""
    operator: Literal["Exists", "Equal"] = "Equal"
    """How `value` is compared."""
    value: str | None = Field(default=None, max_length=63)
    """Taint value for operator Equal."""
    effect: Literal["NoSchedule", "PreferNoSchedule", "NoExecute"] | None = None
    """Taint effect to match; all effects when empty."""
    toleration_seconds: int | None = None
    """How long a NoExecute taint is tolerated."""


class ResourcesSpec(ApiModel):
    """The GPU nodes a group runs on."""

    cross_field_rules = (
        CrossFieldRule(
            cel="self.accelerator == 'gpu' || (!has(self.gpuType) && !has(self.gpuMemory))",
            message="gpuType and gpuMemory apply to accelerator gpu only",
            field="accelerator",
            check=lambda s: (
                None
                if s.accelerator == "gpu" or (s.gpu_type is None and s.gpu_memory is None)
                else "cpu ranks have no gpuType or gpuMemory: remove them or use accelerator: gpu"
            ),
        ),
    )

    accelerator: Literal["gpu", "cpu"] = "gpu"
    """`gpu` for production; `cpu` runs each rank on CPU cores (local demos and tests)."""
    gpus_per_node: int = Field(default=8, ge=1, le=64)
    """GPUs (ranks, for accelerator cpu) per worker node."""
    gpu_type: str | None = Field(default=None, max_length=63)
    """Known GPU type (A100, H100, H200, H20, B200, MI300X, …); sets the memory when `gpuMemory`
    is not given."""
    gpu_memory: str | None = Field(default=None, pattern=QUANTITY_PATTERN, max_length=64)
    """Usable memory of one GPU as a quantity, e.g. `80Gi`; overrides the `gpuType` default."""
    cpus_per_gpu: int = Field(default=8, ge=1, le=256)
    """CPU cores reserved per GPU (per rank)."""
    memory_per_gpu: str = Field(default="64Gi", pattern=QUANTITY_PATTERN, max_length=64)
    """Host memory reserved per GPU (per rank)."""
    node_selector: dict[str, Annotated[str, Field(max_length=MAX_LABEL_VALUE_LENGTH)]] = Field(
        default_factory=dict, json_schema_extra={"maxProperties": MAX_NODE_SELECTOR_LABELS}
    )
    """Node labels GPU worker pods must match (at most 64)."""
    tolerations: list[Toleration] = Field(default_factory=list, max_length=MAX_TOLERATIONS)
    """Tolerations of GPU worker pods."""
    priority_class_name: str | None = Field(default=None, max_length=253)
    """PriorityClass of GPU worker pods."""


# ─── spec.autoscaling ────────────────────────────────────────────────────────────────────────


class AutoscalingSpec(ApiModel):
    """Scale the number of data-parallel groups on queue depth (waiting + running requests)."""

    cross_field_rules = (
        CrossFieldRule(
            cel="self.minGroups <= self.maxGroups",
            message="maxGroups must be at least minGroups",
            field="maxGroups",
            check=lambda s: (
                None
                if s.min_groups <= s.max_groups
                else f"{s.max_groups} is less than minGroups={s.min_groups}"
            ),
        ),
        CrossFieldRule(
            cel="self.minGroups > 0 || self.scaleToZero",
            message="minGroups 0 needs scaleToZero: true",
            field="minGroups",
            check=lambda s: (
                None
                if s.min_groups > 0 or s.scale_to_zero
                else "0 needs scaleToZero: true (a cold start loads the whole model)"
            ),
        ),
    )

    min_groups: int = Field(default=1, ge=0, le=1024)
    """Fewest groups; 0 needs `scaleToZero`."""
    max_groups: int = Field(ge=1, le=1024)
    """Most groups."""
    target_queue_depth_per_group: float | None = Field(default=None, gt=0, le=1_000_000)
    """Waiting + running requests one group is planned to carry. Omit it (the default) to plan
    for the slots each group reports: `max_num_seqs` × its ranks, capped by
    `serving.limits.maxConcurrentRequests`, fewer when its KV cache fills first. Set it only to
    keep groups below a full batch (e.g. for a tighter inter-token latency)."""
    headroom_percent: int = Field(default=10, ge=0, le=100)
    """Spare capacity kept above the forecast demand, percent, on top of three standard deviations
    of the random fluctuation of requests in flight. It absorbs what the forecast misses
    (bursts, a ramp steeper than the recent trend) while a new group starts; 10 keeps DeepSeek-
    class groups busy at about 85 % of their slots. Raise it for bursty traffic with long cold
    starts: a burst shorter than a cold start can only be met by headroom."""
    cold_start_seconds: int = Field(default=600, ge=0, le=86_400)
    """Expected seconds from adding a group to its serving (scheduling, image and weights pull,
    model load, warm-up): how far ahead the autoscaler sizes for demand. DeepSeek-V3/R1 groups
    take 2-15 minutes (weights cached on the node vs. pulled). The autoscaler replaces it with
    the start times it measures on the groups it adds."""
    upscale_delay_seconds: int = Field(default=15, ge=0, le=86_400)
    """How long the forecast must need more groups before they are added (filters one noisy
    sample; the look-ahead already anticipates the cold start)."""
    downscale_delay_seconds: int = Field(default=600, ge=0, le=86_400)
    """How long the demand must fit in fewer groups (with headroom and a hysteresis band)
    before they are removed; the count then drops to the most groups needed in that time."""
    scale_to_zero: bool = False
    """Allow zero groups (with `minGroups: 0`) once no request has come for
    `downscaleDelaySeconds`. The first request after that is held by Ray Serve's head-node proxy
    (HAProxy's fallback while no group serves) and answered after a whole cold start, minutes
    for DeepSeek-class models: clients need timeouts longer than `coldStartSeconds`, and the
    requests held meanwhile are bounded by the serving app's queue limit (beyond it: HTTP 503)."""


# ─── spec.rollout ────────────────────────────────────────────────────────────────────────────


class PauseStep(ApiModel):
    """Hold the current weight."""

    duration_seconds: int | None = Field(default=None, ge=1, le=2_592_000)
    """How long; until promoted by hand (`dsd rollout promote`) when omitted."""


class AnalysisStep(ApiModel):
    """Measure the canary with Prometheus; a failed analysis rolls back."""

    metrics: list[Annotated[str, Field(max_length=63)]] = Field(default_factory=list, max_length=MAX_METRICS)
    """Names of `rollout.analysis.metrics` to evaluate; all of them when empty."""


class CanaryStep(ApiModel):
    """One step of a canary rollout: exactly one of `setWeight`, `pause`, `analysis`."""

    cross_field_rules = (
        CrossFieldRule(
            cel="[has(self.setWeight), has(self.pause), has(self.analysis)].filter(x, x).size() == 1",
            message="a step sets exactly one of setWeight, pause, analysis",
            check=lambda s: (
                None
                if _count_set(s.set_weight, s.pause, s.analysis) == 1
                else "a step sets exactly one of setWeight, pause, analysis"
            ),
        ),
    )

    set_weight: int | None = Field(default=None, ge=0, le=100)
    """Percent of requests sent to the new version. The canary first runs the groups that share
    needs (a group carries 1/N of the traffic, N the groups the stable version ran when the
    rollout started), and the weight never runs ahead of its ready groups."""
    pause: PauseStep | None = None
    """Hold the current weight for a while or until promoted."""
    analysis: AnalysisStep | None = None
    """Evaluate metrics at the current weight; continue on success, roll back on failure."""


class AnalysisMetric(ApiModel):
    """A PromQL measurement of the canary, judged against an absolute threshold, against the stable
    version measured over the same window, or both (then the threshold is a floor: the canary fails
    only beyond both, so noise between two tiny values is never a regression)."""

    cross_field_rules = (
        CrossFieldRule(
            cel="has(self.builtin) != has(self.query)",
            message="set exactly one of builtin, query",
            check=lambda s: (
                None if _count_set(s.builtin, s.query) == 1 else "set exactly one of builtin, query"
            ),
        ),
        CrossFieldRule(
            cel="has(self.threshold) || has(self.stableTolerance)",
            message="set threshold, stableTolerance or both",
            check=lambda s: (
                None
                if s.threshold is not None or s.stable_tolerance is not None
                else "set threshold (an absolute limit), stableTolerance (relative to the stable "
                "version) or both"
            ),
        ),
    )

    name: str = Field(min_length=1, max_length=63, pattern=DNS_LABEL_PATTERN)
    """Name referenced by analysis steps."""
    builtin: Literal["errorRate", "ttftP50", "ttftP95", "itlP95", "e2eLatencyP95", "queueDepth"] | None = None
    """A query the operator writes over the serving metrics of one version: `errorRate` (share of
    HTTP 5xx answers), `ttftP50`/`ttftP95` (time to first token, s), `itlP95` (inter-token
    latency, s), `e2eLatencyP95` (request latency, s), `queueDepth` (running + waiting requests
    per group)."""
    query: str | None = Field(default=None, min_length=1, max_length=4096)
    """Custom PromQL returning one number; `{{namespace}}`, `{{deployment}}`, `{{version}}` and
    `{{window}}` (the interval, e.g. `60s`) are substituted, for the canary and, with
    `stableTolerance`, again for the stable version."""
    threshold: float | None = None
    """Absolute limit the canary's value is compared with (with `stableTolerance`: a floor)."""
    stable_tolerance: float | None = Field(default=None, ge=0, le=100)
    """Relative limit: the canary passes while its value is at most `1 + stableTolerance` times
    the stable version's (`passWhen: below`), or at least `1 - stableTolerance` times it
    (`above`), both measured over the same window. E.g. 0.2 for "no more than 20% worse"."""
    pass_when: Literal["below", "above"] = "below"
    """The measurement passes when the value is below (latency, errors) or above the limit."""
    interval_seconds: int = Field(default=60, ge=5, le=86_400)
    """Time between measurements; also the window each one covers."""
    count: int = Field(default=3, ge=1, le=MAX_MEASUREMENTS_PER_METRIC)
    """Measurements per analysis step."""
    failure_limit: int = Field(default=0, ge=0, le=MAX_MEASUREMENTS_PER_METRIC)
    """Failed measurements tolerated; one more fails the analysis (and rolls back)."""
    inconclusive_limit: int = Field(default=0, ge=0, le=MAX_MEASUREMENTS_PER_METRIC)
    """Inconclusive measurements (no data, e.g. no traffic yet) tolerated; one more pauses the
    rollout until promoted or aborted by hand. No data is never a success."""


class PrometheusSpec(ApiModel):
    """The Prometheus server analysis queries."""

    address: str = Field(pattern=r"^https?://[^\s]+$", max_length=2048)
    """Base URL, e.g. `http://prometheus.monitoring:9090`."""


class AnalysisSpec(ApiModel):
    """Metrics a canary is judged by."""

    prometheus: PrometheusSpec
    """Where to query."""
    metrics: list[AnalysisMetric] = Field(min_length=1, max_length=MAX_METRICS)
    """The measurements."""


class RolloutSpec(ApiModel):
    """How a new version replaces the current one: weighted canary steps, analysis, rollback.

    The last entry of `versions` is the desired one; appending a version, or changing the last
    one, starts a rollout from the version that serves (the stable one) to it. Without steps the
    new version takes the traffic once its groups are ready (a cut-over); with steps it goes
    through them in order. Manual control: annotate the resource (`dsd rollout promote|abort|retry`
    does it) with `deepseek.serving.dev/promote` (skip the current pause or inconclusive analysis),
    `deepseek.serving.dev/promote-full` (skip every remaining step), `deepseek.serving.dev/abort`
    (send the traffic back to the stable version and remove the canary) or
    `deepseek.serving.dev/retry` (start an aborted or rolled-back rollout again), each set to a
    new value (e.g. the time) every time.
    """

    cross_field_rules = (
        CrossFieldRule(
            cel="has(self.analysis) || !has(self.steps) || self.steps.all(s, !has(s.analysis))",
            message="analysis steps need rollout.analysis (prometheus and metrics)",
            field="steps",
            check=lambda s: (
                None
                if s.analysis is not None or all(step.analysis is None for step in s.steps)
                else "analysis steps need rollout.analysis with prometheus and metrics"
            ),
        ),
        CrossFieldRule(
            cel="!has(self.analysis) || !has(self.steps) || self.steps.all(s, !has(s.analysis) "
            "|| !has(s.analysis.metrics) "
            "|| s.analysis.metrics.all(m, self.analysis.metrics.exists(d, d.name == m)))",
            message="analysis steps may only name metrics defined in rollout.analysis.metrics",
            field="steps",
            check=lambda s: _undefined_metric_message(s),
        ),
    )

    steps: list[CanaryStep] = Field(default_factory=list, max_length=MAX_STEPS)
    """Steps from the stable version to the new one; none (the default) switches once the new
    version's groups are ready."""
    analysis: AnalysisSpec | None = None
    """Metrics analysis steps evaluate."""
    auto_rollback: bool = True
    """Roll back automatically when an analysis fails or the canary misses its progress deadline;
    when false the rollout pauses instead, for a person to abort or promote."""
    surge_groups: int = Field(default=1, ge=1, le=1024)
    """Groups a rollout may run beyond the stable version's: the stable version shrinks as the
    canary grows, so a rollout never holds more than this many extra groups of GPUs (a blue/green
    switch would hold twice the deployment)."""
    progress_deadline_seconds: int = Field(default=1800, ge=60, le=86_400)
    """How long the canary may take to have its groups ready at a step (a DeepSeek-class group
    takes minutes to load); past it the rollout rolls back (or pauses, without `autoRollback`)."""
    history_limit: int = Field(default=10, ge=1, le=100)
    """Finished rollouts kept in `status.history`."""


def _undefined_metric_message(rollout: RolloutSpec) -> str | None:
    defined = {metric.name for metric in rollout.analysis.metrics} if rollout.analysis else set()
    for index, step in enumerate(rollout.steps):
        if step.analysis is None or rollout.analysis is None:
            continue
        unknown = [name for name in step.analysis.metrics if name not in defined]
        if unknown:
            return (
                f"[{index}].analysis.metrics names {', '.join(unknown)}, not defined in "
                f"rollout.analysis.metrics (defined: {', '.join(sorted(defined))})"
            )
    return None


# ─── spec.serving ────────────────────────────────────────────────────────────────────────────


class RequestLimits(ApiModel):
    """Per-request and per-group admission limits of the OpenAI endpoint."""

    max_concurrent_requests: int = Field(default=1024, ge=1, le=1_000_000)
    """Requests one group admits at once; more get HTTP 429."""
    request_timeout_seconds: int = Field(default=600, ge=1, le=86_400)
    """Longest a request may take end to end."""
    max_tokens: int | None = Field(default=None, ge=1, le=16_777_216)
    """Upper bound on a request's `max_tokens`; larger values get HTTP 400."""


class HttpRouteParentRef(ApiModel):
    """A Gateway API Gateway (listener) the route attaches to."""

    name: str = Field(min_length=1, max_length=253)
    """Gateway name."""
    namespace: str | None = Field(default=None, max_length=63)
    """Gateway namespace; the deployment's when empty."""
    section_name: str | None = Field(default=None, max_length=253)
    """Listener name."""


class HttpRouteSpec(ApiModel):
    """Expose the deployment through a Gateway API HTTPRoute (canary weights live there)."""

    parent_refs: list[HttpRouteParentRef] = Field(min_length=1, max_length=32)
    """Gateways to attach to."""
    hostnames: list[Annotated[str, Field(max_length=253)]] = Field(default_factory=list, max_length=16)
    """Host names the route answers."""


class ServingSpec(ApiModel):
    """The OpenAI-compatible endpoint."""

    port: int = Field(default=8000, ge=1, le=65535)
    """Port of Ray Serve's HTTP proxy."""
    route_prefix: str = Field(default="/", pattern=r"^/[A-Za-z0-9._~/-]*$", max_length=256)
    """Path prefix the OpenAI API is served under."""
    api_key_secret_ref: SecretKeyRef | None = None
    """When set, requests must carry `Authorization: Bearer <key>` with this key."""
    limits: RequestLimits = Field(default_factory=RequestLimits)
    """Admission limits."""
    http_route: HttpRouteSpec | None = None
    """Gateway API exposure; required for weighted canaries on Kubernetes."""


# ─── spec ────────────────────────────────────────────────────────────────────────────────────


class DeepSeekDeploymentSpec(ApiModel):
    """Desired state of a DeepSeek MoE model served by KubeRay, Ray Serve and vLLM."""

    cross_field_rules = (
        CrossFieldRule(
            cel="!has(self.groups) || self.groups > 0 || "
            "(has(self.autoscaling) && self.autoscaling.scaleToZero)",
            message="groups 0 needs autoscaling with scaleToZero",
            field="groups",
            check=lambda s: (
                None
                if s.groups != 0 or (s.autoscaling is not None and s.autoscaling.scale_to_zero)
                else "0 stops serving: set at least 1, or autoscaling with scaleToZero: true"
            ),
        ),
        CrossFieldRule(
            cel="!has(self.groups) || !has(self.autoscaling) || "
            "(self.groups >= self.autoscaling.minGroups && self.groups <= self.autoscaling.maxGroups)",
            message="groups must lie within autoscaling minGroups..maxGroups",
            field="groups",
            check=lambda s: (
                None
                if s.groups is None
                or s.autoscaling is None
                or s.autoscaling.min_groups <= s.groups <= s.autoscaling.max_groups
                else (
                    f"{s.groups} lies outside autoscaling bounds "
                    f"{s.autoscaling.min_groups}..{s.autoscaling.max_groups}"
                )
            ),
        ),
    )

    model: ModelSpec
    """The model."""
    versions: list[VersionSpec] = Field(min_length=1, max_length=MAX_VERSIONS)
    """Versions in order; the last is desired. Appending one starts a canary rollout from the one
    before it. Names are unique (the CRD declares `name` the list's map key)."""
    groups: int | None = Field(default=None, ge=0, le=1024)
    """Data-parallel groups (the scale subresource's replicas: `kubectl scale dsd NAME --replicas N`,
    HPA or KEDA write it). Without autoscaling: exactly this many, 1 when omitted. With autoscaling:
    the fewest the autoscaler keeps (a raised floor, e.g. to pre-warm before a known peak),
    `minGroups` when omitted; it must lie within `minGroups..maxGroups`."""
    parallelism: ParallelismSpec = Field(default_factory=ParallelismSpec)
    """Tensor/data/expert-parallel hints and EPLB."""
    resources: ResourcesSpec = Field(default_factory=ResourcesSpec)
    """Node shape."""
    autoscaling: AutoscalingSpec | None = None
    """Queue-depth autoscaling of whole groups; fixed `groups` when omitted."""
    rollout: RolloutSpec = Field(default_factory=RolloutSpec)
    """Canary rollout of new versions."""
    serving: ServingSpec = Field(default_factory=ServingSpec)
    """The endpoint."""

    @property
    def desired_version(self) -> VersionSpec:
        return self.versions[-1]

    @property
    def initial_groups(self) -> int:
        """Groups to start with: `groups`, else `minGroups`, and at least one (scale to zero
        starts with one group too)."""
        if self.groups is not None:
            return max(self.groups, 1)
        return max(self.autoscaling.min_groups, 1) if self.autoscaling else 1


# ─── status ──────────────────────────────────────────────────────────────────────────────────


class Condition(ApiModel):
    """A `metav1.Condition`."""

    type: str = Field(max_length=316)
    """Ready, Progressing or Degraded."""
    status: Literal["True", "False", "Unknown"]
    """Whether the condition holds."""
    reason: str = Field(max_length=1024)
    """CamelCase machine-readable reason."""
    message: str = Field(default="", max_length=32768)
    """Human-readable detail."""
    last_transition_time: datetime
    """When `status` last changed."""
    observed_generation: int | None = Field(default=None, ge=0)
    """`metadata.generation` the condition was computed from."""


class PlanSummary(ApiModel):
    """What the planner decided for the desired version."""

    tensor_parallel_size: int
    """GPUs per attention replica."""
    data_parallel_size: int
    """Attention replicas per group."""
    expert_parallel_size: int
    """Ranks the experts are sharded over."""
    gpus_per_group: int
    """GPUs (ranks) in one group."""
    nodes_per_group: int
    """Whole nodes one group spans."""
    redundant_experts: int = 0
    """Extra expert slots per MoE layer."""
    fits: bool = True
    """Whether weights and KV cache fit in GPU memory."""
    kv_cache_tokens_per_group: int | None = None
    """Tokens of KV cache one group holds."""
    eplb_balancedness: float | None = None
    """Mean over max GPU load of the initial expert map (1.0 is perfect)."""
    eplb_policy: str | None = None
    """Placement candidate chosen on most MoE layers (e.g. `hierarchical-trimmed`)."""
    eplb_regime: str | None = None
    """What the prediction assumes, e.g. `decode, 128 tokens/GPU on H100`."""
    eplb_step_us: float | None = None
    """Predicted MoE layer step of the planned map: its slowest GPU, µs, mean over layers."""
    eplb_compute_us: float | None = None
    """Expert compute of that slowest GPU (µs)."""
    eplb_nvlink_us: float | None = None
    """NVLink dispatch + combine of that slowest GPU (µs)."""
    eplb_rdma_us: float | None = None
    """RDMA dispatch + combine of that slowest GPU (µs)."""
    eplb_reference_step_us: float | None = None
    """The same prediction for vLLM's default policy (DeepSeek's EPLB) on the same load (µs)."""


class ScalingRecord(ApiModel):
    """One change of a version's group count by its autoscaler, as the Serve controller logged it."""

    from_groups: int = Field(ge=0)
    """Groups it aimed for before."""
    to_groups: int = Field(ge=0)
    """Groups it aims for since."""
    rule: str
    """The policy's rule: ScaleUp, ScaleDown, Bounds, NoCapacityKnown."""
    queue_depth: float = Field(ge=0)
    """Running + waiting requests (plus Serve's queue) over its groups when it decided."""
    reason: str
    """The policy's reasoning: the level of demand, its forecast one cold start ahead, the groups
    that needs."""
    decided_at: datetime | None = None
    """When it decided."""

    def describe(self) -> str:
        """One line, as Events say it."""
        return f"{self.rule} at queue depth {self.queue_depth:g}: {self.reason}"


class VersionTraffic(ApiModel):
    """One live version: its share of the traffic and its groups."""

    version: str
    """Version name."""
    revision: str | None = None
    """Hash of what the version runs (its RayService's content, group counts aside); a change of
    the last version's content is a new revision, rolled out like a new version."""
    role: Literal["Stable", "Canary", "Starting", "Draining"] = "Stable"
    """Stable serves the stable share; Canary is being rolled out; Starting is a version no traffic
    reaches yet; Draining has left the route and is deleted once its in-flight requests finished."""
    weight: int = Field(ge=0, le=100)
    """Percent of requests."""
    ray_service: str | None = None
    """RayService serving it."""
    ready_groups: int = 0
    """Groups serving: running replicas of its Ray Serve application, whole groups."""
    desired_groups: int | None = None
    """Groups its Ray Serve application aims for (the autoscaler's target)."""
    queue_depth: float | None = None
    """Running + waiting requests over its groups, live (`dsd run`). The operator leaves it unset:
    a live number would rewrite the status at every pass. The queue depth at each change of the
    group count is in `lastScaling`, and the dashboard's panel shows it live."""
    last_scaling: ScalingRecord | None = None
    """Its autoscaler's last change of the group count, read from the Serve controller's log when
    the operator saw the count change (`dsd run` prints the same decisions)."""
    draining_since: datetime | None = None
    """When it left the route (role Draining)."""


class AnalysisMeasurement(ApiModel):
    """One measurement of an analysis metric."""

    metric: str
    """Metric name."""
    phase: Literal["Successful", "Failed", "Inconclusive", "Error"]
    """Outcome; no data is Inconclusive."""
    value: float | None = None
    """The canary's value."""
    stable_value: float | None = None
    """The stable version's value over the same window (with `stableTolerance`)."""
    limit: float | None = None
    """The limit the value was judged against (the tighter one when both apply)."""
    message: str = ""
    """Why, in words."""
    measured_at: datetime
    """When."""


class AnalysisStatus(ApiModel):
    """The analysis of the current step."""

    step_index: int
    """Index of the analysis step."""
    phase: Literal["Running", "Successful", "Failed", "Inconclusive"] = "Running"
    """Worst of its metrics: Failed beyond a failure limit, Inconclusive beyond an inconclusive
    limit, Successful once every metric took its count."""
    start_time: datetime
    """When the analysis started."""
    message: str = ""
    """The deciding metric, its value and its limit."""
    measurements: list[AnalysisMeasurement] = Field(
        default_factory=list, max_length=MAX_METRICS * MAX_MEASUREMENTS_PER_METRIC
    )
    """Every measurement so far, oldest first."""


class RolloutStatus(ApiModel):
    """Where the current (or the last stopped) rollout stands."""

    revision: int = Field(ge=1)
    """Rollout number, counting every rollout of this deployment."""
    stable_version: str
    """Version serving when the rollout started."""
    stable_revision: str | None = None
    """Its revision."""
    canary_version: str
    """Version rolled out."""
    canary_revision: str | None = None
    """Its revision."""
    phase: Literal["Progressing", "Paused", "Analyzing", "RolledBack", "Aborted"] = "Progressing"
    """Progressing through steps; Paused (by a pause step, an inconclusive analysis, or a missed
    deadline without autoRollback); Analyzing; RolledBack or Aborted: stopped, the stable version
    serves, until the spec or `deepseek.serving.dev/retry` changes."""
    reason: str | None = None
    """CamelCase reason of a stop or of a pause that needs a person (AnalysisFailed,
    AnalysisInconclusive, ProgressDeadlineExceeded, Aborted)."""
    message: str = ""
    """Human-readable detail."""
    step_index: int = Field(default=0, ge=0)
    """Index into `spec.rollout.steps` of the step in progress (= the step count when promoting)."""
    step_hash: str | None = None
    """Hash of the steps the index refers to; edited steps restart from the first."""
    weight: int = Field(default=0, ge=0, le=100)
    """Canary weight the steps ask for now (the route may still be behind it while groups start)."""
    initial_groups: int = Field(default=1, ge=0)
    """Groups the stable version ran at the start: a group carries 1/initialGroups of the traffic."""
    start_time: datetime
    """When the rollout started."""
    step_start_time: datetime
    """When the current step started."""
    analysis: AnalysisStatus | None = None
    """The analysis of the current step."""


class HistoryEntry(ApiModel):
    """A finished rollout."""

    revision: int = Field(ge=1)
    """Rollout number."""
    version: str
    """Version rolled out."""
    version_revision: str | None = None
    """Its revision."""
    from_version: str | None = None
    """Version it replaced."""
    outcome: Literal["Promoted", "RolledBack", "Aborted"]
    """How it ended."""
    reason: str = ""
    """CamelCase reason."""
    message: str = ""
    """Detail, e.g. the failed metric, its value and its limit."""
    steps_reached: int = 0
    """Steps completed before it ended."""
    start_time: datetime | None = None
    """When it started."""
    finish_time: datetime
    """When it ended."""
    version_spec: VersionSpec | None = None
    """The version as it was rolled out, so `dsd rollout undo` can make it desired again after it
    left `spec.versions`."""


class DeepSeekDeploymentStatus(ApiModel):
    """Observed state, written by the operator."""

    observed_generation: int | None = None
    """`metadata.generation` of the last reconcile."""
    conditions: list[Condition] = Field(default_factory=list, max_length=16)
    """Ready, Progressing, Degraded."""
    phase: str | None = None
    """One-word summary for people: Pending, Deploying, Serving, RollingOut, Paused, RolledBack,
    Degraded, Invalid, Infeasible."""
    message: str | None = None
    """One-line summary for people."""
    current_version: str | None = None
    """Version serving the stable share of traffic."""
    canary_version: str | None = None
    """Version being rolled out, if any."""
    canary_weight: int | None = Field(default=None, ge=0, le=100)
    """Percent of requests the canary gets now."""
    canary_step: str | None = None
    """Rollout step, e.g. `2/5`."""
    desired_groups: int | None = None
    """Groups wanted (scale subresource replicas)."""
    ready_groups: int | None = None
    """Groups serving, over every live version (scale subresource)."""
    selector: str | None = None
    """Label selector of the rank pods (scale subresource)."""
    plan: PlanSummary | None = None
    """The planner's decision for the desired version."""
    traffic: list[VersionTraffic] = Field(default_factory=list, max_length=MAX_VERSIONS)
    """Live versions: weights, groups, queue depth."""
    rollout: RolloutStatus | None = None
    """The rollout in progress, or the last one if it stopped (rolled back or aborted)."""
    history: list[HistoryEntry] = Field(default_factory=list, max_length=100)
    """Finished rollouts, newest last."""
    acknowledged_actions: dict[str, str] = Field(default_factory=dict)
    """The last value of each manual-control annotation acted on (promote, promote-full, abort,
    retry), so each is acted on once."""


# ─── the resource ────────────────────────────────────────────────────────────────────────────


class ObjectMeta(BaseModel):
    """The parts of `metadata` the operator reads; everything else is kept as is."""

    model_config = ConfigDict(extra="allow", validate_by_name=True, validate_by_alias=True)

    name: str = Field(min_length=1, max_length=253, pattern=DNS_SUBDOMAIN_PATTERN)
    namespace: str | None = Field(default=None, max_length=63, pattern=DNS_LABEL_PATTERN)
    generation: int | None = None
    labels: dict[str, str] = Field(default_factory=dict)
    annotations: dict[str, str] = Field(default_factory=dict)


class DeepSeekDeployment(ApiModel):
    """A DeepSeek MoE model served on Kubernetes through KubeRay, Ray Serve and vLLM."""

    model_config = ConfigDict(extra="forbid")

    api_version: Literal["deepseek.serving.dev/v1alpha1"] = Field(alias="apiVersion")
    kind: Literal["DeepSeekDeployment"]
    metadata: ObjectMeta
    spec: DeepSeekDeploymentSpec
    status: DeepSeekDeploymentStatus | None = None
