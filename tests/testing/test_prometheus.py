"""The test environment's Prometheus: its config as a table (pure), then the real binary scraping a
real ``prometheus_client`` endpoint and answering PromQL."""

from __future__ import annotations

import socket
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
import yaml
from prometheus_client import CollectorRegistry, Gauge, start_http_server

from deepseek_operator.testing.clock import system_clock
from deepseek_operator.testing.prometheus import (
    PROMETHEUS_INSTALL,
    PrometheusServer,
    ScrapeTarget,
    find_prometheus,
    render_prometheus_config,
)
from tests.http_backends import wait_until


@pytest.mark.parametrize(
    ("target", "static_config"),
    [
        pytest.param(
            ScrapeTarget("http://127.0.0.1:9100/metrics"),
            {"targets": ["127.0.0.1:9100"], "labels": {"__scheme__": "http", "__metrics_path__": "/metrics"}},
            id="url",
        ),
        pytest.param(
            ScrapeTarget("127.0.0.1:8080"),
            {"targets": ["127.0.0.1:8080"], "labels": {"__scheme__": "http", "__metrics_path__": "/metrics"}},
            id="host-port-defaults-to-metrics",
        ),
        pytest.param(
            ScrapeTarget("http://10.0.0.1:8265/api/prometheus", {"version": "canary"}),
            {
                "targets": ["10.0.0.1:8265"],
                "labels": {"version": "canary", "__scheme__": "http", "__metrics_path__": "/api/prometheus"},
            },
            id="own-path-and-labels",
        ),
    ],
)
def test_each_target_is_a_static_config_of_its_own(
    target: ScrapeTarget, static_config: dict[str, Any]
) -> None:
    config = render_prometheus_config([target], scrape_interval_s=0.5, rule_files=[Path("/rules/a.yml")])
    assert config["global"] == {
        "scrape_interval": "500ms",
        "scrape_timeout": "500ms",
        "evaluation_interval": "1000ms",
    }
    assert config["rule_files"] == ["/rules/a.yml"]
    assert config["scrape_configs"] == [{"job_name": "dsd", "static_configs": [static_config]}]


def test_scrape_url_is_what_prometheus_reports() -> None:
    assert ScrapeTarget("127.0.0.1:9100").scrape_url == "http://127.0.0.1:9100/metrics"
    assert ScrapeTarget("http://h:1/x").scrape_url == "http://h:1/x"


# --- the real binary --------------------------------------------------------------------------------


@pytest.fixture
def metrics() -> Iterator[tuple[str, Gauge]]:
    """A real ``prometheus_client`` endpoint exposing ``dsd_test_queue_depth`` (42 to start)."""
    registry = CollectorRegistry()
    gauge = Gauge("dsd_test_queue_depth", "waiting + running requests", ["group"], registry=registry)
    gauge.labels(group="0").set(42)
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    server, thread = start_http_server(port, addr="127.0.0.1", registry=registry)
    yield f"http://127.0.0.1:{port}/metrics", gauge
    server.shutdown()
    thread.join(timeout=5)


def test_prometheus_scrapes_a_real_endpoint_and_answers_promql(
    prometheus: PrometheusServer, metrics: tuple[str, Gauge]
) -> None:
    url, gauge = metrics
    prometheus.set_targets([ScrapeTarget(url, {"version": "canary"})])
    prometheus.wait_until_scraped()
    assert wait_until(lambda: prometheus.value('dsd_test_queue_depth{group="0"}') == 42.0)
    [series] = prometheus.query("dsd_test_queue_depth")
    assert series["metric"] | {"instance": ""} == {
        "__name__": "dsd_test_queue_depth",
        "group": "0",
        "job": "dsd",
        "version": "canary",
        "instance": "",
    }
    gauge.labels(group="0").set(7)
    assert wait_until(lambda: prometheus.value("sum(dsd_test_queue_depth)") == 7.0)
    [ranged] = prometheus.query_range("dsd_test_queue_depth", start=system_clock() - timedelta(seconds=30))
    assert {float(value) for _, value in ranged["values"]} >= {42.0, 7.0}


def test_rule_files_are_evaluated(tmp_path: Path, metrics: tuple[str, Gauge]) -> None:
    if find_prometheus() is None:
        pytest.skip(f"prometheus is not installed: {PROMETHEUS_INSTALL}")
    url, _ = metrics
    rules = tmp_path / "rules.yml"
    rule = {"record": "group:dsd_test_queue_depth:doubled", "expr": "2 * dsd_test_queue_depth"}
    rules.write_text(yaml.safe_dump({"groups": [{"name": "test", "rules": [rule]}]}))
    with PrometheusServer([url], rule_files=[rules]) as prometheus:
        assert wait_until(lambda: prometheus.value("group:dsd_test_queue_depth:doubled") == 84.0)
