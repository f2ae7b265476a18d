"""Flux's health check of a DeepSeekDeployment: the `healthCheckExprs` of the example Flux
Kustomization, evaluated as kustomize-controller evaluates them (fluxcd/pkg runtime/cel, RFC 0009).

1. `status.observedGeneration` present and not `metadata.generation`: InProgress;
2. then the expressions in order `inProgress`, `failed`, `current`; the first true one decides;
3. none true: InProgress.
The object's top-level fields are the CEL variables (the expressions are parsed, not compiled);
cel-expr-python (Google's C++ CEL, optionals and strings as cel-go's) evaluates them here.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).parents[2]
FLUX_KUSTOMIZATIONS = ROOT / "examples" / "gitops" / "flux" / "kustomizations.yaml"
_VARIABLES = ("apiVersion", "kind", "metadata", "spec", "status")
FLUX_OF_ARGO = {
    "Healthy": "Current",
    "Progressing": "InProgress",
    "Suspended": "Current",
    "Degraded": "Failed",
}
"""Argo CD's health and Flux's verdict for the same status: Flux has no Suspended, and a rollout
paused for a person keeps the stable version serving, so Flux may go on (Current)."""


def health_check_exprs(kind: str = "DeepSeekDeployment") -> dict[str, str]:
    """The example's expressions for `kind`."""
    for document in yaml.safe_load_all(FLUX_KUSTOMIZATIONS.read_text()):
        for exprs in document["spec"].get("healthCheckExprs") or []:
            if exprs["kind"] == kind:
                return {key: exprs[key] for key in ("inProgress", "failed", "current") if key in exprs}
    raise LookupError(f"no healthCheckExprs for {kind}")


def flux_health(obj: dict[str, Any], exprs: dict[str, str] | None = None) -> str:
    """Current, Failed or InProgress, as Flux would judge `obj` (an error means Flux waits: InProgress)."""
    from cel_expr_python import cel
    from cel_expr_python.ext import ext_optional, ext_strings

    exprs = exprs or health_check_exprs()
    status = obj.get("status") or {}
    generation = (obj.get("metadata") or {}).get("generation")
    if (
        "observedGeneration" in status
        and generation is not None
        and status["observedGeneration"] != generation
    ):
        return "InProgress"
    env = cel.NewEnv(
        variables=dict.fromkeys(_VARIABLES, cel.Type.DYN),
        extensions=[ext_strings.ExtStrings(), ext_optional.ExtOptional()],
    )
    data = {name: obj[name] for name in _VARIABLES if name in obj}
    for key, verdict in (("inProgress", "InProgress"), ("failed", "Failed"), ("current", "Current")):
        if key not in exprs:
            continue
        result = env.compile(exprs[key]).eval(data=data)
        if result.type().name() == "ERROR":
            return "InProgress"  # kustomize-controller reports the error and keeps waiting
        if result.value() is True:
            return verdict
    return "InProgress"
