"""The Argo CD health check: each branch on statuses shaped as the operator writes them, and its
shipped copies (the argocd-cm snippet, docs/gitops.md) equal to the Lua file. The example Flux
Kustomization's `healthCheckExprs` must read each status the same way.

`test_argocd_health_live.py` runs both on statuses a real operator wrote.
"""

from __future__ import annotations

import re
from typing import Any

import pytest
import yaml

from deepseek_operator.api import constants
from deepseek_operator.api.v1alpha1 import DeepSeekDeploymentStatus
from tests.gitops.argocd import CUSTOMIZATION_KEY, HEALTH_LUA, ROOT, SNIPPET, health
from tests.gitops.flux import FLUX_OF_ARGO, flux_health

pytest.importorskip("lupa", reason="the dev extra has lupa (Lua for the Argo CD health check)")

T = "2026-12-01T12:00:00Z"


def _condition(kind: str, status: str, reason: str, message: str = "") -> dict[str, Any]:
    return {"type": kind, "status": status, "reason": reason, "message": message, "lastTransitionTime": T}


def _obj(status: dict[str, Any] | None, *, generation: int = 3, spec: dict[str, Any] | None = None) -> dict:
    if status is not None:
        DeepSeekDeploymentStatus.model_validate(status)  # shaped as the operator writes it
    body: dict[str, Any] = {
        "apiVersion": constants.API_VERSION,
        "kind": constants.KIND,
        "metadata": {"name": "r1", "namespace": "serving", "generation": generation},
        "spec": spec or {"model": {"source": "hf://deepseek-ai/DeepSeek-R1"}, "versions": [{"name": "v1"}]},
    }
    if status is not None:
        body["status"] = status
    return body


def _status(ready: str, progressing: str, degraded: str, **fields: Any) -> dict[str, Any]:
    reasons = {"Ready": "Serving", "Progressing": "Stable", "Degraded": "AsExpected"}
    reasons.update(fields.pop("reasons", {}))
    messages = fields.pop("messages", {})
    return {
        "observedGeneration": 3,
        "conditions": [
            _condition(kind, value, reasons[kind], messages.get(kind, ""))
            for kind, value in (("Ready", ready), ("Progressing", progressing), ("Degraded", degraded))
        ],
        **fields,
    }


CASES = [
    pytest.param(_obj(None), "Progressing", "Waiting for the operator to report a status", id="no-status"),
    pytest.param(
        _obj(_status("True", "False", "False", observedGeneration=2, phase="Serving")),
        "Progressing",
        "Waiting for the operator to observe generation 3 (observed: 2)",
        id="generation-not-observed",
    ),
    pytest.param(
        _obj({"phase": "Pending"}),
        "Progressing",
        "Waiting for the operator to observe generation 3 (observed: none)",
        id="no-observed-generation",
    ),
    pytest.param(
        _obj(
            _status(
                "False",
                "False",
                "True",
                reasons={
                    "Ready": "ValidationFailed",
                    "Progressing": "ValidationFailed",
                    "Degraded": "ValidationFailed",
                },
                messages={"Degraded": "spec.parallelism.expertParallelSize: 48 does not divide 256"},
                phase="Invalid",
            )
        ),
        "Degraded",
        "ValidationFailed: spec.parallelism.expertParallelSize: 48 does not divide 256",
        id="invalid",
    ),
    pytest.param(
        _obj(
            _status(
                "True",
                "False",
                "True",
                reasons={"Progressing": "ProgressDeadlineExceeded", "Degraded": "ProgressDeadlineExceeded"},
                messages={"Degraded": "v2 had no ready group within 1800s"},
                phase="RolledBack",
            )
        ),
        "Degraded",
        "ProgressDeadlineExceeded: v2 had no ready group within 1800s",
        id="rolled-back",
    ),
    pytest.param(
        _obj(
            _status(
                "True",
                "True",
                "False",
                reasons={"Progressing": "RolloutPaused"},
                phase="Paused",
                message="v2 step 2/3, paused",
            )
        ),
        "Suspended",
        "v2 step 2/3, paused (continue: dsd rollout promote r1; roll back: dsd rollout abort r1)",
        id="paused",
    ),
    pytest.param(
        _obj(
            _status(
                "True",
                "True",
                "True",
                reasons={"Progressing": "RolloutPaused", "Degraded": "ProgressDeadlineExceeded"},
                messages={"Degraded": "v2 missed its deadline"},
                phase="Degraded",
            )
        ),
        "Degraded",
        "ProgressDeadlineExceeded: v2 missed its deadline",
        id="paused-past-deadline-needs-a-person",
    ),
    pytest.param(
        _obj(
            _status(
                "False",
                "True",
                "False",
                reasons={"Ready": "WaitingForRayService", "Progressing": "WaitingForRayService"},
                phase="Deploying",
                message="v1: RayService starting",
            )
        ),
        "Progressing",
        "v1: RayService starting",
        id="first-version-starting",
    ),
    pytest.param(
        _obj(
            _status(
                "True",
                "True",
                "False",
                reasons={"Progressing": "RollingOut"},
                phase="RollingOut",
                message="v2 step 1/3, progressing",
            )
        ),
        "Progressing",
        "v2 step 1/3, progressing",
        id="rolling-out",
    ),
    pytest.param(
        _obj(_status("True", "False", "False", phase="Serving", message="v1 serves 2 group(s)")),
        "Healthy",
        "v1 serves 2 group(s)",
        id="serving",
    ),
    pytest.param(
        _obj(
            _status(
                "False",
                "False",
                "False",
                reasons={"Ready": "WaitingForRayService"},
                messages={"Ready": "v1: 0 of 2 groups running"},
                phase="Deploying",
                desiredGroups=2,
            )
        ),
        "Degraded",
        "Not serving: WaitingForRayService: v1: 0 of 2 groups running",
        id="lost-its-groups",
    ),
    pytest.param(
        _obj(
            _status(
                "False",
                "False",
                "False",
                reasons={"Ready": "WaitingForRayService"},
                phase="Deploying",
                desiredGroups=0,
            ),
            spec={
                "model": {"source": "hf://deepseek-ai/DeepSeek-R1"},
                "versions": [{"name": "v1"}],
                "autoscaling": {"minGroups": 0, "maxGroups": 4, "scaleToZero": True},
            },
        ),
        "Healthy",
        "Scaled to zero groups: the first request starts one",
        id="scaled-to-zero-before-its-reason",
    ),
    pytest.param(
        _obj(
            _status(
                "True",
                "False",
                "False",
                reasons={"Ready": "ScaledToZero"},
                phase="ScaledToZero",
                message="v1 is scaled to zero groups (idle)",
                desiredGroups=0,
            )
        ),
        "Healthy",
        "v1 is scaled to zero groups (idle)",
        id="scaled-to-zero",
    ),
    pytest.param(
        _obj({"observedGeneration": 3, "phase": "Pending", "message": "starting"}),
        "Progressing",
        "starting",
        id="no-conditions-yet",
    ),
]


@pytest.mark.parametrize(("obj", "status", "message"), CASES)
def test_health_of_each_state(obj: dict[str, Any], status: str, message: str) -> None:
    found = health(obj)
    assert (found.status, found.message) == (status, message)


@pytest.mark.parametrize(("obj", "status", "message"), CASES)
def test_flux_reads_each_state_as_argo_cd_does(obj: dict[str, Any], status: str, message: str) -> None:
    assert flux_health(obj) == FLUX_OF_ARGO[status]


def test_the_script_needs_only_what_argo_cd_allows() -> None:
    """No os/io/require (Argo CD's sandbox); `obj` is the only input."""
    script = HEALTH_LUA.read_text()
    assert not re.search(r"\b(os|io|debug|package)\.|\brequire\b|\bload(string|file)?\b", script)


def test_the_argocd_cm_snippet_is_the_lua_file() -> None:
    snippet = yaml.safe_load(SNIPPET.read_text())
    assert (snippet["kind"], snippet["metadata"]["name"]) == ("ConfigMap", "argocd-cm")
    expected_key = f"resource.customizations.health.{constants.GROUP}_{constants.KIND}"
    assert expected_key == CUSTOMIZATION_KEY
    assert snippet["data"] == {CUSTOMIZATION_KEY: HEALTH_LUA.read_text()}, (
        "files/argocd-cm-snippet.yaml differs from files/argocd-health.lua: copy the script into it"
    )


def test_the_gitops_guide_ships_the_same_snippet() -> None:
    guide = (ROOT / "docs" / "gitops.md").read_text()
    blocks = re.findall(r"```yaml\n(.*?)```", guide, flags=re.DOTALL)
    snippets = [yaml.safe_load(block) for block in blocks if CUSTOMIZATION_KEY in block]
    assert snippets, "docs/gitops.md shows the argocd-cm snippet"
    for snippet in snippets:
        assert snippet["data"][CUSTOMIZATION_KEY] == HEALTH_LUA.read_text(), (
            "docs/gitops.md's argocd-cm snippet differs from files/argocd-health.lua"
        )
