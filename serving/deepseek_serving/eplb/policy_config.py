"""The engine's EPLB policy settings: what the operator plans with, handed to every vLLM process.

vLLM calls a policy as ``rebalance_experts(load, slots, groups, nodes, ranks, old_map)``: nothing
about the regime, the GPU or the layer's dimensions, which the step-time model needs. The
operator renders them (from the same `StepCostModel` its plan used) into the environment
variable ``DSD_EPLB_POLICY`` of the serving pods, as one JSON object; every vLLM process (engine
core and workers inherit the environment) reads it in `deepseek_serving.eplb.vllm_policy`.
Without the variable the policy plans for DeepSeek-V3 fp8 on H100 in decode
(`StepCostModel.default`).

Example: ``DSD_EPLB_POLICY={"regime":"decode","tokensPerGpu":128,"gpuType":"H200",
"hiddenSize":7168,"moeIntermediateSize":2048,"numExpertsPerTok":8,"topkGroup":4,
"expertWeightBytes":44050944,"dispatchBytesPerToken":7392,"combineBytesPerToken":14336,
"policy":"auto","migrationSlack":0.01}`` (every key optional).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import asdict, dataclass, fields
from typing import Literal, get_args

from deepseek_serving.eplb.cost import DEEPSEEK_V3, DEFAULT_GPU, MoeShape, Regime, StepCostModel, gpu_figures
from deepseek_serving.eplb.placement import DEFAULT_MIGRATION_SLACK
from deepseek_serving.eplb.plan import EplbPolicyName

__all__ = ["ENV_VAR", "EplbPolicyConfig"]

ENV_VAR = "DSD_EPLB_POLICY"
"""The environment variable holding the JSON settings."""


@dataclass(frozen=True, slots=True)
class EplbPolicyConfig:
    """Settings of the runtime policy (JSON keys are the camelCase field names)."""

    regime: Literal["decode", "prefill"] = "decode"
    """Engine step to optimise for (`Regime.name`)."""
    tokens_per_gpu: int = 128
    """Tokens each GPU contributes to one such step."""
    gpu_type: str = DEFAULT_GPU
    """Key of ``gpu_figures.json`` (H100 when unknown)."""
    hidden_size: int = DEEPSEEK_V3.hidden_size
    moe_intermediate_size: int = DEEPSEEK_V3.moe_intermediate_size
    num_experts_per_tok: int = DEEPSEEK_V3.num_experts_per_tok
    topk_group: int = DEEPSEEK_V3.topk_group
    expert_weight_bytes: int = DEEPSEEK_V3.expert_weight_bytes
    dispatch_bytes_per_token: int = DEEPSEEK_V3.dispatch_bytes_per_token
    combine_bytes_per_token: int = DEEPSEEK_V3.combine_bytes_per_token
    policy: EplbPolicyName = "auto"
    """Candidates allowed (`plan_expert_placement`'s ``policy``)."""
    migration_slack: float = DEFAULT_MIGRATION_SLACK
    """Predicted-time slack a re-plan may spend to move fewer expert weights."""

    def __post_init__(self) -> None:
        if self.regime not in ("decode", "prefill"):
            raise ValueError(f"regime: expected decode or prefill, got {self.regime!r}")
        if self.policy not in get_args(EplbPolicyName):
            raise ValueError(f"policy: expected one of {list(get_args(EplbPolicyName))}, got {self.policy!r}")
        if not 0.0 <= self.migration_slack < 1.0:
            raise ValueError(f"migrationSlack: expected 0 <= slack < 1, got {self.migration_slack}")
        self.cost_model()  # validates the numbers

    def cost_model(self) -> StepCostModel:
        """The `StepCostModel` these settings describe."""
        figures = gpu_figures()
        shape = MoeShape(
            hidden_size=self.hidden_size,
            moe_intermediate_size=self.moe_intermediate_size,
            num_experts_per_tok=self.num_experts_per_tok,
            topk_group=self.topk_group,
            expert_weight_bytes=self.expert_weight_bytes,
            dispatch_bytes_per_token=self.dispatch_bytes_per_token,
            combine_bytes_per_token=self.combine_bytes_per_token,
        )
        gpu = figures.get(self.gpu_type, figures[DEFAULT_GPU])
        return StepCostModel(gpu, shape, Regime(self.regime, self.tokens_per_gpu))

    @classmethod
    def from_cost_model(
        cls,
        model: StepCostModel,
        *,
        policy: EplbPolicyName = "auto",
        migration_slack: float = DEFAULT_MIGRATION_SLACK,
    ) -> EplbPolicyConfig:
        """The settings that reproduce ``model`` in the engine (what the operator renders)."""
        shape = model.shape
        return cls(
            regime=model.regime.name,
            tokens_per_gpu=model.regime.tokens_per_gpu,
            gpu_type=model.gpu.name,
            hidden_size=shape.hidden_size,
            moe_intermediate_size=shape.moe_intermediate_size,
            num_experts_per_tok=shape.num_experts_per_tok,
            topk_group=shape.topk_group,
            expert_weight_bytes=shape.expert_weight_bytes,
            dispatch_bytes_per_token=shape.dispatch_bytes_per_token,
            combine_bytes_per_token=shape.combine_bytes_per_token,
            policy=policy,
            migration_slack=migration_slack,
        )

    def to_json(self) -> str:
        """Compact JSON with camelCase keys."""
        return json.dumps({_camel(key): value for key, value in asdict(self).items()}, separators=(",", ":"))

    def to_env(self) -> dict[str, str]:
        """``{"DSD_EPLB_POLICY": <json>}`` for a pod's or a Ray runtime_env's ``env_vars``."""
        return {ENV_VAR: self.to_json()}

    @classmethod
    def from_json(cls, text: str) -> EplbPolicyConfig:
        """Parse the JSON; unknown keys and ill-typed values are a ValueError naming the key."""
        document = json.loads(text)
        if not isinstance(document, Mapping):
            raise ValueError(f"{ENV_VAR}: expected a JSON object, got {type(document).__name__}")
        known = {_camel(f.name): f.name for f in fields(cls)}
        values: dict[str, object] = {}
        for key, value in document.items():
            if key not in known:
                raise ValueError(f"{ENV_VAR}: unknown key {key!r} (expected one of {sorted(known)})")
            kind = _KINDS.get(known[key], int)
            number = isinstance(value, int | float) and not isinstance(value, bool)
            if not (
                isinstance(value, str)
                if kind is str
                else number and (kind is float or isinstance(value, int))
            ):
                raise ValueError(f"{ENV_VAR}: {key}: expected {kind.__name__}, got {value!r}")
            values[known[key]] = value
        return cls(**values)  # type: ignore[arg-type]

    @classmethod
    def from_env(cls, environ: Mapping[str, str]) -> EplbPolicyConfig:
        """The settings in ``environ`` (pass ``os.environ``), or the defaults when unset."""
        text = environ.get(ENV_VAR, "").strip()
        return cls.from_json(text) if text else cls()


_KINDS: dict[str, type] = {"regime": str, "gpu_type": str, "policy": str, "migration_slack": float}
"""JSON type of each field that is not an int."""


def _camel(name: str) -> str:
    head, *rest = name.split("_")
    return head + "".join(part.title() for part in rest)
