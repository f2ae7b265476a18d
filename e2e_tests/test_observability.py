"""The chart's Grafana dashboard and PrometheusRule on a real run: every panel query and every alert
expression parses and returns data from the metrics a real operator and a real serving stack export.

The run, on the local environment (the suite's test API server, KubeRay stand-in on an embedded Ray
with real vLLM, `dsd operator` as a process):
- a real Prometheus of this test scrapes the embedded Ray's metrics endpoint (every serving metric:
  vLLM's through Ray, the queue depth per rank and per group) and the operator's metrics endpoint,
  with the chart's rules (rendered by the real Helm engine) loaded;
- `tiny` serves the tiny model (with test-only fault injection, so some answers are HTTP 500), and
  gets completions and streamed chats;
- `tiny-eplb` is planned with EPLB for GPUs the embedded Ray does not have: it never gets a ready
  group (the expert-balance panel, the no-ready-group alert);
- `broken` is invalid (the Degraded alert);
- a rollout of `tiny` to `v2` is started, measured, then aborted (the rollout panels).
Each query is evaluated at the moments the run reached (after the traffic, during the rollout, at
the end), with the dashboard's variables set as a person would (`$namespace` the test's namespace,
`$deployment` All). Alerts are evaluated as written, and as their signal (every comparison made a
`bool` one: the data the alert looks at, whatever the threshold); the rule manager's own view
(`/api/v1/rules`, `/api/v1/alerts`) must show every rule healthy.

Queries over the serving app's request counter (`ray_deepseek_serving_requests_total`) are reported,
not failed, while no serving metric of that name exists yet (it is being added).
"""

from __future__ import annotations

import contextlib
import copy
import json
import re
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest

from e2e_tests.conftest import Environment
from e2e_tests.support import Cluster, eventually, manifest

ROOT = Path(__file__).parents[1]
DASHBOARD = ROOT / "charts" / "deepseek-operator" / "files" / "grafana-dashboard.json"
SERVE_TIMEOUT = 900  # a cold start loads Ray, vLLM and the model; two busy cores are slow
PENDING_METRICS = ("ray_deepseek_serving_requests_total",)
"""Serving metrics being added by another change: their queries are reported while absent."""
RATE_INTERVAL = "1m"
pytestmark = pytest.mark.timeout(2400)


def signal(expression: str) -> str:
    """`expression` with every comparison outside label matchers made a `bool` one (`x > 3` ->
    `x > bool 3`): it returns the series the alert compares, whether or not they cross the line."""
    out: list[str] = []
    depth, index, quote = 0, 0, ""
    while index < len(expression):
        char = expression[index]
        if quote:
            out.append(char)
            if char == quote and expression[index - 1] != "\\":
                quote = ""
            index += 1
            continue
        if char in "\"'`":
            quote = char
        elif char == "{":
            depth += 1
        elif char == "}":
            depth -= 1
        elif depth == 0:
            matched = re.match(r"==|!=|>=|<=|>|<", expression[index:])
            if matched:
                out.append(matched.group(0))
                index += len(matched.group(0))
                if not re.match(r"\s*bool\b", expression[index:]):
                    out.append(" bool")
                continue
        out.append(char)
        index += 1
    return "".join(out)


def test_signal_makes_comparisons_bool_outside_matchers() -> None:
    assert signal('a{code=~"5..",x!="y"} / b > 0.05') == 'a{code=~"5..",x!="y"} / b > bool 0.05'
    assert signal("x == 0 and on (a) y > bool 1") == "x == bool 0 and on (a) y > bool 1"


def inline_recording_rules(expression: str, records: dict[str, str]) -> str:
    """`expression` with each recorded series replaced by the expression recording it."""
    for name, recorded in sorted(records.items(), key=lambda item: -len(item[0])):
        expression = re.sub(rf"(?<![\w:]){re.escape(name)}(?![\w:])", f"({recorded})", expression)
    return expression


@dataclass
class Moments:
    """When the run reached each state (Unix seconds)."""

    at: dict[str, float] = field(default_factory=dict)

    def mark(self, name: str) -> None:
        self.at[name] = time.time()  # noqa: TID251 - Prometheus query times are wall-clock


@dataclass
class Verdict:
    query: str
    data_at: str | None
    series: int = 0
    note: str = ""


class Evaluator:
    """Instant queries at each moment of the run; the first moment with data wins."""

    def __init__(self, prometheus: Any, moments: Moments) -> None:
        self.prometheus = prometheus
        self.moments = moments

    def evaluate(self, query: str) -> Verdict:
        for name, at in self.moments.at.items():
            result = self.prometheus.query(query, at=at)  # raises on a parse error
            if result and isinstance(result[0], dict):
                return Verdict(query, name, len(result))
        return Verdict(query, None)


@pytest.fixture
def local(environment: Environment) -> Environment:
    if environment.operator_metrics_url is None:
        pytest.skip("needs the local environment's metrics endpoints (a cluster's Prometheus is yours)")
    pytest.importorskip("helm_sdkpy", reason="the rules are rendered with the real Helm engine (helm-sdkpy)")
    return environment


def _ray_metrics_url() -> str:
    import ray

    node = ray.nodes()[0]  # the embedded Ray of the local environment runs in this process
    return f"http://{node['NodeManagerAddress']}:{node['MetricsExportPort']}/metrics"


@pytest.fixture
def prometheus(local: Environment, cluster: Cluster, tmp_path: Path) -> Iterator[Any]:
    from deepseek_operator.testing.prometheus import PrometheusServer, ScrapeTarget, find_prometheus
    from tests.chart.rules import render_prometheus_rule, rule_file_text

    if find_prometheus() is None:
        pytest.skip("prometheus is not installed")
    rules = tmp_path / "rules.yaml"
    rules.write_text(rule_file_text(render_prometheus_rule()))
    targets = [
        # A PodMonitor labels a pod's series with its namespace; one Ray serves every namespace here.
        ScrapeTarget(_ray_metrics_url(), {"namespace": cluster.namespace, "job": "ray"}),
        ScrapeTarget(str(local.operator_metrics_url), {"job": "operator"}),
    ]
    with PrometheusServer(targets, rule_files=[rules]) as server:
        server.wait_until_scraped(timeout_s=60)
        yield server


def _deployments(cluster: Cluster, environment: Environment) -> dict[str, dict[str, Any]]:
    base = manifest(
        "tiny.yaml", MODEL_SOURCE=environment.model_source, SERVING_IMAGE=environment.serving_image
    )
    tiny = copy.deepcopy(base)
    # Test only: a share of the answers are HTTP 500, for the error-rate panels and alert.
    tiny["spec"]["versions"][0]["faultInjection"] = {"errorPercent": 20}
    eplb = copy.deepcopy(base)
    eplb["metadata"]["name"] = "tiny-eplb"
    eplb["spec"]["parallelism"] = {
        "tensorParallelSize": 1,
        "dataParallelSize": 2,
        "expertParallelSize": 2,
        "eplb": {"enabled": True, "redundantExperts": 2},
    }
    eplb["spec"]["resources"] = {"gpuType": "H100", "gpusPerNode": 2}
    broken = copy.deepcopy(base)
    broken["metadata"]["name"] = "broken"
    broken["spec"]["parallelism"] = {"tensorParallelSize": 1, "expertParallelSize": 3}
    return {"tiny": tiny, "tiny-eplb": eplb, "broken": broken}


def _warm_up(base_url: str, prometheus: Any) -> dict[int, int]:
    """A few requests until one succeeded and one failed (fault injection is random), then wait until
    their series are in Prometheus: a counter's first sample carries what came before it, which
    `rate()` cannot see, so the measured traffic must come after the series exist."""
    statuses: dict[int, int] = {}
    with httpx.Client(timeout=300) as http:
        for index in range(40):
            status = http.post(
                f"{base_url}/v1/completions",
                json={"model": "tiny", "prompt": f"warm-up {index}", "max_tokens": 4, "temperature": 0},
            ).status_code
            statuses[status] = statuses.get(status, 0) + 1
            if {200, 500} <= set(statuses):
                break
    eventually(
        lambda: prometheus.query('ray_vllm_time_to_first_token_seconds_bucket{deployment="tiny"}'),
        timeout=120,
        interval=2,
        what="the TTFT series in Prometheus",
    )
    # The request counter is being added to the serving app: wait for it only where it exists.
    with contextlib.suppress(AssertionError):
        eventually(
            lambda: prometheus.query('ray_deepseek_serving_requests_total{deployment="tiny",code="500"}'),
            timeout=60,
            interval=2,
            what="the request counter in Prometheus",
        )
    return statuses


def _traffic(base_url: str, requests: int = 24, workers: int = 3) -> dict[int, int]:
    """Completions and streamed chats from a few concurrent clients; HTTP status counts."""
    statuses: dict[int, int] = {}
    lock = threading.Lock()

    def client(worker: int) -> None:
        with httpx.Client(timeout=300) as http:
            for index in range(worker, requests, workers):
                if index % 2:
                    with http.stream(
                        "POST",
                        f"{base_url}/v1/chat/completions",
                        json={
                            "model": "tiny",
                            "messages": [{"role": "user", "content": f"Count to {index}"}],
                            "max_tokens": 16,
                            "stream": True,
                        },
                    ) as answer:
                        for _ in answer.iter_lines():
                            pass
                        status = answer.status_code
                else:
                    status = http.post(
                        f"{base_url}/v1/completions",
                        json={
                            "model": "tiny",
                            "prompt": f"def f{index}(x):",
                            "max_tokens": 16,
                            "temperature": 0,
                        },
                    ).status_code
                with lock:
                    statuses[status] = statuses.get(status, 0) + 1

    threads = [threading.Thread(target=client, args=(worker,)) for worker in range(workers)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return statuses


def _dashboard_queries(namespace: str) -> list[tuple[str, str]]:
    """(panel title, PromQL with the variables set) of every dashboard target."""
    dashboard = json.loads(DASHBOARD.read_text())
    queries = []
    for panel in dashboard["panels"]:
        for target in panel.get("targets") or []:
            expression = (
                target["expr"]
                .replace("$__rate_interval", RATE_INTERVAL)
                .replace("$namespace", namespace)
                .replace("$deployment", ".*")
            )
            assert "$" not in expression, expression
            queries.append((f"{panel['title']} [{target['refId']}]", expression))
    return queries


def _pending(prometheus: Any, query: str) -> str:
    """The pending metrics a query names that Prometheus has no series of."""
    missing = [name for name in PENDING_METRICS if name in query and not prometheus.query(f"count({name})")]
    return ", ".join(missing)


def test_every_panel_and_alert_returns_data_on_a_real_run(
    local: Environment, cluster: Cluster, prometheus: Any, tmp_path: Path
) -> None:
    from tests.chart.rules import alerting_rules, recording_rules, render_prometheus_rule

    moments = Moments()
    deployments = _deployments(cluster, local)
    for body in deployments.values():
        cluster.create_deployment(body)

    def ready() -> bool:
        condition = cluster.condition("tiny", "Ready")
        return condition["status"] == "True"

    eventually(ready, timeout=SERVE_TIMEOUT, interval=2, what="tiny Ready=True")
    eventually(
        lambda: cluster.deployment("broken")["status"]["phase"] == "Invalid", timeout=60, what="broken"
    )
    eventually(
        lambda: cluster.deployment("tiny-eplb")["status"]["plan"]["eplbBalancedness"] is not None,
        timeout=60,
        what="tiny-eplb planned with EPLB",
    )

    # Traffic, then wait until Ray has exported it and Prometheus has scraped it.
    ray_service = cluster.ray_service_of("tiny", "v1")["metadata"]["name"]
    base_url = cluster.service_base_url(f"{ray_service}-serve-svc")
    warm_up = _warm_up(base_url, prometheus)
    statuses = _traffic(base_url)
    assert statuses.get(200, 0) >= 12, statuses
    answered = sum(statuses.values())
    served = statuses.get(200, 0) + warm_up.get(200, 0)
    eventually(
        lambda: (
            (prometheus.value('sum(ray_vllm_time_to_first_token_seconds_count{deployment="tiny"})') or 0)
            >= served
        ),
        timeout=120,
        interval=2,
        what="the traffic in Prometheus",
    )
    time.sleep(5)
    moments.mark("after traffic")

    # A rollout to v2: measured while it runs, then aborted.
    body = cluster.deployment("tiny")
    versions = body["spec"]["versions"]
    cluster.patch_spec(
        "tiny",
        {
            "versions": [
                *versions,
                {**{k: v for k, v in versions[0].items() if k != "faultInjection"}, "name": "v2"},
            ],
            "rollout": {"steps": [{"setWeight": 50}, {"pause": {}}]},
        },
    )
    eventually(
        lambda: prometheus.value('max(deepseek_operator_rollout_step{deployment="tiny"})') is not None,
        timeout=120,
        what="the rollout in Prometheus",
    )
    time.sleep(5)
    moments.mark("during the rollout")
    cluster.custom.patch_namespaced_custom_object(
        "deepseek.serving.dev", "v1alpha1", cluster.namespace, "deepseekdeployments", "tiny",
        {"metadata": {"annotations": {"deepseek.serving.dev/abort": "observability"}}},
    )  # fmt: skip
    eventually(
        lambda: (cluster.deployment("tiny")["status"].get("rollout") or {}).get("phase") == "Aborted",
        timeout=120,
        what="the rollout aborted",
    )
    time.sleep(5)
    moments.mark("end")

    evaluator = Evaluator(prometheus, moments)
    report: list[str] = [f"traffic: warm-up {warm_up}, then {answered} requests, HTTP statuses {statuses}"]

    # The dashboard: its variables, then every target.
    for variable, match in (
        ("namespace", "deepseek_operator_condition"),
        ("deployment", "deepseek_operator_condition"),
    ):
        values = httpx.get(
            f"{prometheus.url}/api/v1/label/{variable}/values", params={"match[]": match}, timeout=30
        ).json()["data"]
        assert values, f"the ${variable} variable has no values"
        report.append(f"variable ${variable}: {values}")
    panels = [(title, evaluator.evaluate(query)) for title, query in _dashboard_queries(cluster.namespace)]

    # The alerts: as written and as their signal, recording rules inlined; the defaults, and with
    # thresholds the run crosses (a 1 s step deadline, the smallest TTFT bucket, a 1% error rate).
    smallest = min(
        (float(s["metric"]["le"]), s["metric"]["le"])
        for s in prometheus.query("count by (le) (ray_vllm_time_to_first_token_seconds_bucket)")
        if s["metric"]["le"] != "+Inf"
    )[1]
    renderings = {
        "defaults": render_prometheus_rule(),
        "lowered": render_prometheus_rule(
            {
                "metrics": {
                    "prometheusRule": {
                        "rolloutStepDeadlineSeconds": 1,
                        "ttftSlo": {"thresholdSeconds": smallest},
                        "errorRate": {"threshold": 0.01},
                    }
                }
            }
        ),
    }
    alerts: list[tuple[str, Verdict, Verdict, Verdict]] = []
    for name, rule in alerting_rules(renderings["defaults"]).items():
        records = {record: r["expr"] for record, r in recording_rules(renderings["defaults"]).items()}
        lowered_records = {record: r["expr"] for record, r in recording_rules(renderings["lowered"]).items()}
        written = inline_recording_rules(rule["expr"], records)
        lowered = inline_recording_rules(alerting_rules(renderings["lowered"])[name]["expr"], lowered_records)
        alerts.append(
            (
                name,
                evaluator.evaluate(written),
                evaluator.evaluate(lowered),
                evaluator.evaluate(signal(written)),
            )
        )
    recorded = [(record, evaluator.evaluate(record)) for record in recording_rules(renderings["defaults"])]

    # The rule manager's view: every rule evaluated without error; which alerts are pending or firing.
    groups = httpx.get(f"{prometheus.url}/api/v1/rules", timeout=30).json()["data"]["groups"]
    unhealthy = [(r["name"], r.get("lastError")) for g in groups for r in g["rules"] if r["health"] != "ok"]
    alerts_now = httpx.get(f"{prometheus.url}/api/v1/alerts", timeout=30).json()["data"]["alerts"]
    active = sorted({(alert["labels"]["alertname"], alert["state"]) for alert in alerts_now})

    # The report, then the verdicts.
    def line(label: str, verdict: Verdict) -> str:
        found = f"data at {verdict.data_at} ({verdict.series} series)" if verdict.data_at else "NO DATA"
        pending = _pending(prometheus, verdict.query)
        return f"  {label}: {found}" + (
            f" [pending metric: {pending}]" if pending and not verdict.data_at else ""
        )

    report.append(f"dashboard targets ({len(panels)}):")
    report += [line(title, verdict) for title, verdict in panels]
    report.append("recording rules:")
    report += [line(name, verdict) for name, verdict in recorded]
    report.append("alerts (as written / lowered thresholds / signal):")
    for name, written_verdict, lowered_verdict, signal_verdict in alerts:
        report.append(
            f"  {name}: written {'fires' if written_verdict.data_at else 'quiet'}, "
            f"lowered {'fires' if lowered_verdict.data_at else 'quiet'}; "
            + line("signal", signal_verdict).strip()
        )
    report.append(f"rule manager: unhealthy {unhealthy}; active alerts {active}")
    with_data = sum(v.data_at is not None for _, v in panels)
    signals = sum(s.data_at is not None for _, _, _, s in alerts)
    written_count = sum(w.data_at is not None for _, w, _, _ in alerts)
    lowered_count = sum(lo.data_at is not None for _, _, lo, _ in alerts)
    report.append(
        f"SUMMARY: dashboard {with_data}/{len(panels)} targets with data; alerts {signals}/{len(alerts)} "
        f"signals with data, {written_count}/{len(alerts)} firing as written, "
        f"{lowered_count}/{len(alerts)} with lowered thresholds; "
        f"recording rules {sum(v.data_at is not None for _, v in recorded)}/{len(recorded)}"
    )
    text = "\n".join(report)
    print("\n" + text)
    (tmp_path / "observability-report.txt").write_text(text)

    assert not unhealthy, text
    missing = [
        title
        for title, verdict in panels
        if verdict.data_at is None and not _pending(prometheus, verdict.query)
    ]
    assert not missing, f"panels without data: {missing}\n{text}"
    silent = [
        name for name, _, lowered_verdict, signal_verdict in alerts
        if (signal_verdict.data_at is None or lowered_verdict.data_at is None)
        and not _pending(prometheus, signal_verdict.query)
    ]  # fmt: skip
    assert not silent, f"alerts whose data is missing: {silent}\n{text}"
    assert [v for _, v in recorded if v.data_at is None] == [], text
    firing = {name for name, written_verdict, _, _ in alerts if written_verdict.data_at}
    assert {"DeepSeekNoReadyGroup", "DeepSeekDeploymentDegraded"} <= firing, text
    assert {name for name, state in active} >= {"DeepSeekNoReadyGroup", "DeepSeekDeploymentDegraded"}, text

    for name in deployments:
        cluster.delete_deployment(name)


def test_inline_recording_rules_keeps_neighbouring_names() -> None:
    records = {"a:b:rate5m": "sum(rate(x[5m]))", "a:b:rate5m1": "y"}
    assert inline_recording_rules("a:b:rate5m > 1 and a:b:rate5m1 < 2", records) == (
        "(sum(rate(x[5m]))) > 1 and (y) < 2"
    )
