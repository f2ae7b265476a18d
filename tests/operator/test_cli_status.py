"""`dsd status NAME`: the live view of one deployment, read through the user's kubeconfig from the
test API server while `dsd operator` (its own process) and the KubeRay stand-in run it.

The view itself is pure (`status_view`), tested on a status with an analysis; the command on the
states a real operator wrote: serving, a rollout paused by a pause step, a spec not observed yet.
"""

from __future__ import annotations

import copy
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from rich.console import Console
from typer.testing import CliRunner

from deepseek_operator.cli import app
from deepseek_operator.cli import status as status_module
from deepseek_operator.cli.status import format_age, status_view
from deepseek_operator.testing.kuberay import KubeRayStandIn
from deepseek_operator.testing.process import OperatorProcess
from e2e_tests.support import Cluster
from tests.api.resources import example
from tests.operator.conftest import eventually

pytestmark = pytest.mark.timeout(180)
NOW = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)
WIDE = {"COLUMNS": "220"}


def _text(renderable: Any) -> str:
    console = Console(width=220, record=True, highlight=False)
    console.print(renderable)
    return console.export_text()


@pytest.mark.parametrize(
    ("seconds", "shown"),
    [(0, "0s"), (59, "59s"), (60, "1m"), (310, "5m10s"), (600, "10m"), (3600, "1h"), (7500, "2h5m"),
     (36000, "10h"), (90000, "1d")],
)  # fmt: skip
def test_ages_read_like_kubectl(seconds: int, shown: str) -> None:
    assert format_age(NOW - timedelta(seconds=seconds), NOW) == shown


def test_the_view_shows_versions_rollout_analysis_conditions_and_events() -> None:
    body = {
        "metadata": {"name": "r1", "namespace": "prod", "generation": 4},
        "spec": {"rollout": {"steps": [{"setWeight": 20}, {"analysis": {}}, {"setWeight": 100}]}},
        "status": {
            "observedGeneration": 4,
            "phase": "RollingOut",
            "message": "v2 step 2/3, analyzing",
            "readyGroups": 5,
            "desiredGroups": 5,
            "plan": {
                "tensorParallelSize": 8,
                "dataParallelSize": 4,
                "expertParallelSize": 32,
                "gpusPerGroup": 32,
                "nodesPerGroup": 4,
                "redundantExperts": 32,
                "eplbBalancedness": 0.93,
            },
            "traffic": [
                {
                    "version": "v1",
                    "revision": "aa",
                    "role": "Stable",
                    "weight": 80,
                    "readyGroups": 4,
                    "desiredGroups": 4,
                    "queueDepth": 61.5,
                    "lastScaling": {
                        "fromGroups": 3,
                        "toGroups": 4,
                        "rule": "ScaleUp",
                        "queueDepth": 1630,
                        "reason": "level 1630 req -> forecast 1900; ... -> scale up to 4",
                        "decidedAt": "2026-12-01T11:50:00Z",
                    },
                },
                {
                    "version": "v2",
                    "revision": "bb",
                    "role": "Canary",
                    "weight": 20,
                    "readyGroups": 1,
                    "desiredGroups": 1,
                    "queueDepth": 14,
                },
            ],
            "rollout": {
                "revision": 3,
                "stableVersion": "v1",
                "canaryVersion": "v2",
                "phase": "Analyzing",
                "stepIndex": 1,
                "weight": 20,
                "startTime": "2026-12-01T11:50:00Z",
                "stepStartTime": "2026-12-01T11:58:00Z",
                "analysis": {
                    "stepIndex": 1,
                    "phase": "Running",
                    "startTime": "2026-12-01T11:58:00Z",
                    "measurements": [
                        {
                            "metric": "ttft-p95",
                            "phase": "Successful",
                            "value": 0.412,
                            "stableValue": 0.398,
                            "limit": 1.0,
                            "measuredAt": "2026-12-01T11:59:00Z",
                        },
                        {
                            "metric": "errors",
                            "phase": "Inconclusive",
                            "message": "no data",
                            "measuredAt": "2026-12-01T11:59:00Z",
                        },
                    ],
                },
            },
            "conditions": [
                {
                    "type": "Ready",
                    "status": "True",
                    "reason": "Serving",
                    "message": "v1 serves 4 group(s) at 80%",
                    "lastTransitionTime": "2026-12-01T10:00:00Z",
                },
                {
                    "type": "Progressing",
                    "status": "True",
                    "reason": "Analyzing",
                    "message": "v2 step 2/3",
                    "lastTransitionTime": "2026-12-01T11:50:00Z",
                },
                {
                    "type": "Degraded",
                    "status": "False",
                    "reason": "AsExpected",
                    "message": "",
                    "lastTransitionTime": "2026-12-01T10:00:00Z",
                },
            ],
        },
    }
    events = [
        {"type": "Normal", "reason": "Analysis", "message": "ttft-p95 0.412 <= 1", "count": 2,
         "lastTimestamp": "2026-12-01T11:59:00Z"},
        {"type": "Normal", "reason": "RolloutStep", "message": "v2 at 20%",
         "lastTimestamp": "2026-12-01T11:58:00Z"},
    ]  # fmt: skip
    text = _text(status_view(body, events, now=NOW))
    for expected in (
        "prod/r1: RollingOut — v2 step 2/3, analyzing",
        "rollout 3: v1 → v2, step 2/3, Analyzing",
        "analysis at step 2: Running",
        "ttft-p95",
        "0.412",
        "Inconclusive",
        "plan: 32 GPU(s) per group on 4 node(s): tensor 8 × data 4 parallel, experts over 32 ranks, "
        "32 redundant, EPLB balance 0.93",
        "groups: 5 ready of 5 desired",
        "61.5",
        "3 → 4 ScaleUp at 1630",
    ):
        assert expected in text, text
    rows = {line.split("│")[1].strip(): line for line in text.splitlines() if line.count("│") >= 5}
    assert "True" in rows["Ready"]
    assert "Serving" in rows["Ready"]
    assert "2h" in rows["Ready"]
    assert "Analyzing" in rows["Progressing"]
    assert "10m" in rows["Progressing"]
    assert text.index("Analysis") < text.index("RolloutStep"), "newest Event first"
    assert "1m" in rows["1m"]
    assert "ttft-p95 0.412 <= 1" in rows["1m"]
    assert "not observed" not in text


def test_a_status_behind_the_spec_says_so() -> None:
    body = {"metadata": {"name": "r1", "generation": 5}, "spec": {}, "status": {"observedGeneration": 4}}
    text = _text(status_view(body, [], now=NOW))
    assert "the operator has not observed generation 5 yet (status is of 4)" in text
    assert "events: none" in text


@pytest.fixture(scope="module")
def operator_process(
    kubeconfig: Path, kuberay_standin: KubeRayStandIn, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[OperatorProcess]:
    env = {
        "DSD_RECONCILE__RESYNC_SECONDS": "300",
        "DSD_RECONCILE__SETTLE_SECONDS": "0.5",
        "DSD_RAY__SERVE_TTL_SECONDS": "0.5",
        "DSD_RAY__DASHBOARD_URL_TEMPLATE": kuberay_standin.dashboard_url_template,
    }
    log = tmp_path_factory.mktemp("operator") / "operator.log"
    with OperatorProcess(kubeconfig, log, env=env, standalone=True) as process:
        yield process


@pytest.fixture
def cluster(
    k8s_client: Any, namespace: str, operator_process: OperatorProcess, kubeconfig_env: Path
) -> Cluster:
    return Cluster(k8s_client, namespace)


def _tiny(namespace: str) -> dict[str, Any]:
    document = copy.deepcopy(example("tiny-local"))
    document["metadata"] = {"name": "tiny", "namespace": namespace}
    document["spec"]["groups"] = 2
    return document


def _phase(cluster: Cluster, phase: str) -> dict[str, Any]:
    body = cluster.deployment("tiny")
    status: dict[str, Any] = body.get("status") or {}
    assert status.get("phase") == phase, status.get("message")
    assert status.get("observedGeneration") == body["metadata"]["generation"]
    return status


def test_dsd_status_follows_a_deployment(cluster: Cluster) -> None:
    runner = CliRunner()
    document = _tiny(cluster.namespace)
    cluster.create_deployment(document)
    eventually(lambda: _phase(cluster, "Serving"), timeout=30)
    eventually(lambda: "Ready" in {event.reason for event in cluster.events("tiny")}, timeout=10)

    shown = runner.invoke(app, ["status", "tiny", "-n", cluster.namespace], env=WIDE)
    assert shown.exit_code == 0, shown.output
    output = shown.output
    assert f"{cluster.namespace}/tiny: Serving — v1 serves 2 group(s)" in output
    assert "groups: 2 ready of 2 desired" in output
    assert "plan: 1 GPU(s) per group on 1 node(s)" in output
    rows = {line.split("│")[1].strip(): line for line in output.splitlines() if line.count("│") >= 5}
    assert "Stable" in rows["v1"]
    assert "100%" in rows["v1"]
    assert "True" in rows["Ready"]
    assert "Serving" in rows["Ready"]
    assert "AsExpected" in rows["Degraded"]
    assert "Ready" in output.split("events")[1], "the Ready Event is listed"

    # A rollout paused by a pause step: the step, both versions' weights, the condition's reason.
    cluster.patch_spec(
        "tiny",
        {
            "versions": [*document["spec"]["versions"], {**document["spec"]["versions"][0], "name": "v2"}],
            "rollout": {"steps": [{"setWeight": 50}, {"pause": {}}, {"setWeight": 100}]},
        },
    )
    eventually(lambda: _phase(cluster, "Paused"), timeout=30)
    eventually(lambda: "RolloutStep" in {event.reason for event in cluster.events("tiny")}, timeout=10)
    shown = runner.invoke(app, ["status", "tiny", "-n", cluster.namespace], env=WIDE)
    assert shown.exit_code == 0, shown.output
    output = shown.output
    assert "rollout 1: v1 → v2, step 2/3, Paused: paused until promoted" in output
    rows = {line.split("│")[1].strip(): line for line in output.splitlines() if line.count("│") >= 5}
    assert "Canary" in rows["v2"]
    assert "50%" in rows["v2"]
    assert "Stable" in rows["v1"]
    assert "50%" in rows["v1"]
    assert "RolloutPaused" in rows["Progressing"]
    events = output.split("events")[1]
    assert "RolloutStep" in events
    assert "now at step 2/3" in events
    assert events.index("RolloutStep") < events.index("RolloutStarted"), "newest first"


def test_dsd_status_watch_refreshes_until_ctrl_c(cluster: Cluster, monkeypatch: pytest.MonkeyPatch) -> None:
    cluster.create_deployment(_tiny(cluster.namespace))
    eventually(lambda: _phase(cluster, "Serving"), timeout=30)
    reads = []
    original = status_module.get_deployment

    def counting_get(*args: Any) -> dict[str, Any]:
        reads.append(args)
        return original(*args)

    def sleep(seconds: float) -> None:
        if len(reads) >= 3:
            raise KeyboardInterrupt

    monkeypatch.setattr(status_module, "get_deployment", counting_get)
    monkeypatch.setattr(status_module.time, "sleep", sleep)
    shown = CliRunner().invoke(app, ["status", "tiny", "-n", cluster.namespace, "--watch"], env=WIDE)
    assert shown.exit_code == 0, shown.output
    assert len(reads) == 3, "the first view, then a refresh per interval until Ctrl-C"
    assert "Serving" in shown.output


def test_dsd_status_of_a_missing_deployment_fails(cluster: Cluster) -> None:
    shown = CliRunner().invoke(app, ["status", "nothing", "-n", cluster.namespace], env=WIDE)
    assert shown.exit_code == 1
    assert f"{cluster.namespace}/nothing: Not Found (404)" in shown.output
