"""``run_apiserver_bench`` end to end, small: it starts ``python -m deepseek_operator.testing up``."""

from __future__ import annotations

from deepseek_operator.bench.apiserver import run_apiserver_bench


def test_bench_reports_latency_and_throughput() -> None:
    result = run_apiserver_bench(latency_samples=20, objects=100, concurrency=4)
    assert result["server"] == "subprocess"
    latency = result["watch_latency_ms"]
    assert 0 < latency["p50"] <= latency["p99"] <= latency["max"]
    assert result["create_per_s"] > 0
    assert result["watched_events_per_s"] > 0
