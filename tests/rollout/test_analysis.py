"""Canary analysis judgements and queries (rollout/analysis.py)."""

from __future__ import annotations

import math
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from deepseek_operator.api.v1alpha1 import AnalysisMeasurement, AnalysisMetric, AnalysisStatus
from deepseek_operator.rollout.analysis import (
    QueryLabels,
    assess_analysis,
    assess_measurement,
    due_measurements,
    next_measurement_time,
    render_query,
)

NOW = datetime(2026, 12, 1, 12, tzinfo=UTC)


def metric(**fields: Any) -> AnalysisMetric:
    return AnalysisMetric.model_validate({"name": "m", "builtin": "ttftP95", **fields})


@pytest.mark.parametrize(
    ("fields", "canary", "stable", "phase", "message"),
    [
        pytest.param({"threshold": 0.5}, 0.4, None, "Successful", "m = 0.4 ≤ 0.5 (threshold)", id="below"),
        pytest.param({"threshold": 0.5}, 0.6, None, "Failed", "m = 0.6 > 0.5 (threshold)", id="above-limit"),
        pytest.param(
            {"threshold": 100, "passWhen": "above"},
            90,
            None,
            "Failed",
            "m = 90 < 100 (threshold)",
            id="too-low",
        ),
        pytest.param(
            {"threshold": 0.5}, None, None, "Inconclusive", "m: no data for the canary", id="no-data"
        ),
        pytest.param(
            {"threshold": 0.5}, math.nan, None, "Inconclusive", "m: no data for the canary", id="nan"
        ),
        pytest.param(
            {"stableTolerance": 0.2},
            1.3,
            1.0,
            "Failed",
            "m = 1.3 > 1.2 (stable 1 × 1.2)",
            id="worse-than-stable",
        ),
        pytest.param(
            {"stableTolerance": 0.2},
            1.1,
            1.0,
            "Successful",
            "m = 1.1 ≤ 1.2 (stable 1 × 1.2)",
            id="near-stable",
        ),
        pytest.param(
            {"stableTolerance": 0.2},
            1.1,
            None,
            "Inconclusive",
            "m: no data for the stable version to compare with",
            id="no-stable-data",
        ),
        pytest.param(
            {"stableTolerance": 0.5, "threshold": 1.2},
            1.3,
            1.0,
            "Successful",
            "m = 1.3 ≤ 1.5 (stable 1 × 1.5)",
            id="both-limits-the-looser-decides",
        ),
        pytest.param(
            {"stableTolerance": 1.0, "threshold": 0.01},
            0.008,
            0.002,
            "Successful",
            "m = 0.008 ≤ 0.01 (threshold)",
            id="a-floor-below-which-ratios-do-not-count",
        ),
        pytest.param(
            {"stableTolerance": 1.0, "threshold": 0.01},
            0.03,
            0.01,
            "Failed",
            "m = 0.03 > 0.02 (stable 0.01 × 2)",
            id="beyond-both-fails",
        ),
    ],
)
def test_assess_measurement(
    fields: dict[str, Any], canary: float | None, stable: float | None, phase: str, message: str
) -> None:
    measured = assess_measurement(metric(**fields), canary, stable, now=NOW)
    assert (measured.phase, measured.message) == (phase, message)


def test_a_prometheus_error_is_an_error_not_a_verdict() -> None:
    measured = assess_measurement(metric(threshold=1), None, None, now=NOW, error="connection refused")
    assert (measured.phase, measured.message) == ("Error", "m: Prometheus: connection refused")


def _measured(phases: list[str], name: str = "m") -> list[AnalysisMeasurement]:
    return [
        AnalysisMeasurement.model_validate(
            {"metric": name, "phase": phase, "measuredAt": NOW, "message": phase}
        )
        for phase in phases
    ]


@pytest.mark.parametrize(
    ("limits", "phases", "expected"),
    [
        pytest.param({}, ["Successful"], "Running", id="more-to-take"),
        pytest.param({}, ["Successful"] * 3, "Successful", id="all-taken"),
        pytest.param({}, ["Successful", "Failed"], "Failed", id="one-failure-over-limit-0"),
        pytest.param(
            {"failureLimit": 1}, ["Failed", "Successful", "Successful"], "Successful", id="tolerated"
        ),
        pytest.param({"failureLimit": 1}, ["Failed", "Failed"], "Failed", id="beyond-tolerance"),
        pytest.param({}, ["Inconclusive"], "Inconclusive", id="no-data-pauses"),
        pytest.param(
            {"inconclusiveLimit": 1}, ["Inconclusive", "Successful"], "Running", id="one-no-data-ok"
        ),
        pytest.param({}, ["Error"], "Inconclusive", id="errors-count-as-inconclusive"),
        pytest.param({}, ["Inconclusive", "Failed"], "Failed", id="failed-is-worst"),
    ],
)
def test_assess_analysis(limits: dict[str, Any], phases: list[str], expected: str) -> None:
    phase, _ = assess_analysis([metric(threshold=1, count=3, **limits)], _measured(phases))
    assert phase == expected


def test_the_worst_metric_decides() -> None:
    metrics = [metric(name="a", threshold=1, count=1), metric(name="b", threshold=1, count=2)]
    measured = _measured(["Successful"], "a") + _measured(["Successful"], "b")
    assert assess_analysis(metrics, measured)[0] == "Running"
    assert assess_analysis(metrics, [*measured, *_measured(["Failed"], "b")])[0] == "Failed"


LABELS = QueryLabels("serving", "chat", "v2", "7c1f0a2d")


def test_builtin_queries_select_the_version_over_the_interval() -> None:
    query = render_query(metric(threshold=1, intervalSeconds=30), LABELS)
    assert query == (
        "histogram_quantile(0.95, sum by (le) (rate(ray_vllm_time_to_first_token_seconds_bucket"
        '{namespace="serving",deployment="chat",version="v2",revision="7c1f0a2d"}[30s])))'
    )
    without_namespace = QueryLabels("serving", "chat", "v2", "7c1f0a2d", namespace_label="")
    assert "namespace" not in render_query(metric(threshold=1), without_namespace)


def test_custom_queries_get_their_placeholders_filled() -> None:
    custom = AnalysisMetric.model_validate(
        {"name": "q", "query": 'sum(rate(x{ns="{{namespace}}",v="{{version}}"}[{{window}}]))', "threshold": 1}
    )
    assert render_query(custom, LABELS) == 'sum(rate(x{ns="serving",v="v2"}[60s]))'


def test_measurements_fall_due_one_interval_apart_and_stop_at_count() -> None:
    ttft = metric(threshold=1, intervalSeconds=30, count=2, stableTolerance=0.1)
    analysis = AnalysisStatus(step_index=1, start_time=NOW)
    stable = QueryLabels("serving", "chat", "v1", "aaaa1111")
    assert (
        due_measurements([ttft], analysis, canary=LABELS, stable=stable, now=NOW + timedelta(seconds=29))
        == []
    )
    (due,) = due_measurements([ttft], analysis, canary=LABELS, stable=stable, now=NOW + timedelta(seconds=30))
    assert 'version="v2"' in due.canary_query
    assert due.stable_query is not None
    assert 'version="v1"' in due.stable_query
    taken = analysis.model_copy(update={"measurements": _measured(["Successful"])})
    assert next_measurement_time([ttft], taken) == NOW + timedelta(seconds=60)
    done = analysis.model_copy(update={"measurements": _measured(["Successful", "Successful"])})
    assert next_measurement_time([ttft], done) is None
