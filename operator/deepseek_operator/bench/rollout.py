"""`dsd bench rollout`: how fast a bad canary is caught, how rarely a good one is, and what it holds.

Simulated: the real lifecycle (`rollout.decide_lifecycle`) and the real analysis judgements
(`rollout.analysis.assess_measurement`) run against a simulated deployment whose metrics are drawn
per analysis window from a scenario:

- every window, each version serves `requests_per_s × weight × interval` requests; its measured
  error rate is binomial over them (`errors/requests`; no requests is no data), its TTFT p95 is
  its true p95 times log-normal noise (`ttft_noise`, the spread of a p95 over a minute of traffic);
- a regression multiplies the canary's error rate or p95 from a given weight on (`from_weight`: a
  bug only load shows);
- groups start `start_s` after they are asked for.

Scenarios come from seeds (the built-in ones below) or from a JSON file (`--scenarios FILE`, a list
of objects with the `Scenario` fields). Reported per scenario, over `runs` seeded runs:
detection-to-rollback (from the start of the first analysis window that includes the regression
to the rollback, in analysis intervals; goal <= 2), false rollbacks of healthy canaries (goal <= 1
in 100), and the extra capacity the rollout held: groups beyond the stable version's N at the
worst moment, against KubeRay's blue/green upgrade (N extra: 2x) and its incremental upgrade with
`maxSurgePercent: 100` (also N extra).
"""

from __future__ import annotations

import json
import math
import random
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field, fields
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from deepseek_operator.api.v1alpha1 import (
    AnalysisMeasurement,
    AnalysisMetric,
    DeepSeekDeploymentStatus,
    RolloutSpec,
    VersionSpec,
)
from deepseek_operator.rollout import (
    GroupTarget,
    LifecycleDecision,
    LifecycleInput,
    ObservedVersion,
    VersionRef,
    decide_lifecycle,
    traffic_entry,
)
from deepseek_operator.rollout.analysis import assess_measurement, step_metrics

__all__ = ["BENCH_ROLLOUT", "Scenario", "load_scenarios", "run_rollout_bench", "scenarios_for"]

T0 = datetime(2026, 1, 1, tzinfo=UTC)
STABLE, CANARY = VersionRef("v1", "stable00"), VersionRef("v2", "canary00")
TICK_S = 5.0

BENCH_ROLLOUT = RolloutSpec.model_validate(
    {
        "steps": [{"setWeight": 10}, {"analysis": {}}, {"setWeight": 50}, {"analysis": {}}],
        "analysis": {
            "prometheus": {"address": "http://prometheus:9090"},
            "metrics": [
                # Errors: beyond twice the stable version's rate, and beyond a 1% floor.
                {
                    "name": "errors",
                    "builtin": "errorRate",
                    "threshold": 0.01,
                    "stableTolerance": 1.0,
                    "intervalSeconds": 60,
                    "count": 3,
                    "failureLimit": 1,
                },
                # TTFT p95: more than 25% above the stable version's over the same minute.
                {
                    "name": "ttft",
                    "builtin": "ttftP95",
                    "stableTolerance": 0.25,
                    "intervalSeconds": 60,
                    "count": 3,
                    "failureLimit": 1,
                    "inconclusiveLimit": 1,
                },
            ],
        },
    }
)
"""The analysis the bench judges with: 10% then 50%, three one-minute measurements each, a
metric failing on two of them (one noisy minute is not a regression)."""


@dataclass(frozen=True)
class Scenario:
    """One kind of canary (a JSON object with these fields in a scenarios file)."""

    name: str
    groups: int = 4
    """N: the stable version's groups."""
    requests_per_s: float = 100.0
    """Traffic of the whole deployment (a few groups of DeepSeek-V3 serve hundreds at once)."""
    error_rate: float = 0.005
    """The stable version's true error rate."""
    ttft_p95_s: float = 0.8
    """The stable version's true TTFT p95."""
    ttft_noise: float = 0.08
    """Log-normal sigma of a measured p95 over one window."""
    error_factor: float = 1.0
    """The canary's error rate is this many times the stable's (a regression when > 1)."""
    ttft_factor: float = 1.0
    """The canary's TTFT p95 is this many times the stable's."""
    from_weight: int = 0
    """The regression shows only at this canary weight or more."""
    start_s: float = 120.0
    """Seconds until a new group serves."""

    @property
    def regression(self) -> bool:
        return self.error_factor > 1.0 or self.ttft_factor > 1.0


def scenarios_for() -> list[Scenario]:
    """The built-in scenarios: healthy canaries, and the three regressions the issue names."""
    return [
        Scenario("healthy"),
        Scenario("errors-x5", error_factor=5.0),
        Scenario("ttft-p95+50%", ttft_factor=1.5),
        Scenario("errors-x5-from-10%", error_factor=5.0, from_weight=10),
        Scenario("healthy-n1", groups=1),
        Scenario("healthy-n8", groups=8),
    ]


def load_scenarios(path: Path) -> list[Scenario]:
    """Scenarios from a JSON file: a list of objects with `Scenario`'s fields (`name` required)."""
    document = json.loads(path.read_text())
    if not isinstance(document, list):
        raise ValueError(f"{path}: expected a JSON list of scenarios")
    known = {f.name for f in fields(Scenario)}
    scenarios = []
    for index, item in enumerate(document):
        unknown = set(item) - known
        if unknown or "name" not in item:
            raise ValueError(
                f"{path}: [{index}]: unknown keys {sorted(unknown)} or no name (keys: {sorted(known)})"
            )
        scenarios.append(Scenario(**item))
    return scenarios


@dataclass
class _Run:
    """One simulated rollout."""

    scenario: Scenario
    rng: random.Random
    rollout: RolloutSpec
    now: datetime = T0
    status: DeepSeekDeploymentStatus = field(default_factory=DeepSeekDeploymentStatus)
    asked: dict[VersionRef, list[datetime]] = field(default_factory=dict)
    """When each group of each version was asked for."""
    regression_seen_at: datetime | None = None
    """Start of the first analysis window that included the regression."""
    extra_groups: int = 0

    def __post_init__(self) -> None:
        n = self.scenario.groups
        self.asked = {STABLE: [T0 - timedelta(hours=1)] * n}
        self.status = DeepSeekDeploymentStatus.model_validate(
            {
                "traffic": [
                    {
                        "version": "v1",
                        "revision": STABLE.revision,
                        "role": "Stable",
                        "weight": 100,
                        "readyGroups": n,
                    }
                ]
            }
        )

    def observed(self) -> dict[VersionRef, ObservedVersion]:
        found = {}
        for ref, asked in self.asked.items():
            ready = sum(1 for at in asked if self.now >= at + timedelta(seconds=self.scenario.start_s))
            found[ref] = ObservedVersion(
                ref, str(ref), ready > 0, False, "", ready, len(asked), 0.0, self.now
            )
        return found

    def carry_out(self, decision: LifecycleDecision) -> None:
        for live in decision.live:
            if live.groups is None:
                continue
            asked = self.asked.setdefault(live.ref, [])
            target = live.groups.minimum
            del asked[target:]
            asked += [self.now] * (target - len(asked))
        for ref in decision.retire:
            self.asked.pop(ref, None)
        self.extra_groups = max(
            self.extra_groups, sum(len(a) for a in self.asked.values()) - self.scenario.groups
        )

    def weight(self) -> int:
        return next((t.weight for t in self.status.traffic if t.version == CANARY.name), 0)

    def measure(self) -> list[AnalysisMeasurement]:
        """The measurements falling due now, drawn from the scenario (what Prometheus would say)."""
        rollout = self.status.rollout
        if rollout is None or rollout.analysis is None or rollout.analysis.phase != "Running":
            return []
        steps = self.rollout.steps
        metrics = step_metrics(self.rollout, steps[rollout.analysis.step_index])
        measured = []
        for metric in metrics:
            taken = sum(1 for m in rollout.analysis.measurements if m.metric == metric.name)
            due = rollout.analysis.start_time + timedelta(seconds=metric.interval_seconds * (taken + 1))
            if taken >= metric.count or due > self.now:
                continue
            window_start = due - timedelta(seconds=metric.interval_seconds)
            canary, stable = self._draw(metric, self.weight(), window_start)
            measured.append(assess_measurement(metric, canary, stable, now=self.now))
        return measured

    def _draw(
        self, metric: AnalysisMetric, weight: int, window_start: datetime
    ) -> tuple[float | None, float | None]:
        scenario = self.scenario
        regressed = scenario.regression and weight >= scenario.from_weight and weight > 0
        if regressed and self.regression_seen_at is None:
            self.regression_seen_at = window_start
        seconds = metric.interval_seconds

        def errors(share: float, factor: float) -> float | None:
            requests = self.rng.gauss(scenario.requests_per_s * share * seconds, 1.0)
            count = max(0, round(requests))
            if count == 0:
                return None
            rate = min(1.0, scenario.error_rate * factor)
            failed = sum(1 for _ in range(count) if self.rng.random() < rate)
            return failed / count

        def ttft(factor: float) -> float:
            return scenario.ttft_p95_s * factor * math.exp(self.rng.gauss(0.0, scenario.ttft_noise))

        if metric.builtin == "errorRate":
            return errors(weight / 100, scenario.error_factor if regressed else 1.0), errors(
                1 - weight / 100, 1.0
            )
        return ttft(scenario.ttft_factor if regressed else 1.0), ttft(1.0)


def _simulate(scenario: Scenario, seed: int, rollout: RolloutSpec) -> dict[str, Any]:
    """One rollout of `scenario` until it is promoted or rolled back (or 3 simulated hours)."""
    run = _Run(scenario, random.Random(seed), rollout)
    spec = VersionSpec(name=CANARY.name)
    for _ in range(int(3 * 3600 / TICK_S)):
        decision = decide_lifecycle(
            LifecycleInput(
                desired=CANARY,
                desired_spec=spec,
                renderable=frozenset({STABLE, CANARY}),
                groups=GroupTarget.fixed(scenario.groups),
                rollout=rollout,
                status=run.status,
                observed=run.observed(),
                actions={},
                measurements=run.measure(),
                drain_seconds=60,
                now=run.now,
            )
        )
        observed = run.observed()
        run.carry_out(decision)
        status = run.status.model_copy()
        status.traffic = [traffic_entry(live, observed.get(live.ref)) for live in decision.live]
        status.rollout, status.history = decision.rollout, list(decision.history)
        run.status = status
        if status.history:
            entry = status.history[-1]
            detection = None
            if entry.outcome == "RolledBack" and run.regression_seen_at is not None:
                interval = (
                    min(m.interval_seconds for m in rollout.analysis.metrics) if rollout.analysis else 60
                )
                detection = (entry.finish_time - run.regression_seen_at).total_seconds() / interval
            return {
                "outcome": entry.outcome,
                "detection_intervals": detection,
                "duration_s": (entry.finish_time - T0).total_seconds(),
                "extra_groups": run.extra_groups,
            }
        run.now += timedelta(seconds=TICK_S)
    return {
        "outcome": "Unfinished",
        "detection_intervals": None,
        "duration_s": None,
        "extra_groups": run.extra_groups,
    }


def run_rollout_bench(
    scenarios: Sequence[Scenario] | None = None,
    *,
    runs: int = 100,
    seed: int = 0,
    rollout: RolloutSpec = BENCH_ROLLOUT,
) -> list[dict[str, Any]]:
    """One row per scenario: outcomes over `runs` seeded runs, detection time, capacity held.

    Returns rows with `scenario`, `runs`, `promoted`, `rolled_back`, `false_rollbacks` (healthy
    scenarios), `missed` (regressions promoted), `detection_p50`/`_p90`/`_max` (analysis
    intervals), `extra_groups_max` (the worst moment, the drain after a rollback included), and
    the baselines' extra groups (`kuberay_blue_green`, `kuberay_incremental_surge_100`).
    """
    rows = []
    for scenario in scenarios if scenarios is not None else scenarios_for():
        results = [_simulate(scenario, seed * 100_003 + index, rollout) for index in range(runs)]
        promoted = sum(r["outcome"] == "Promoted" for r in results)
        rolled_back = sum(r["outcome"] == "RolledBack" for r in results)
        detections = sorted(r["detection_intervals"] for r in results if r["detection_intervals"] is not None)
        extra = max(r["extra_groups"] for r in results)
        rows.append(
            {
                "scenario": scenario.name,
                "settings": asdict(scenario),
                "runs": runs,
                "promoted": promoted,
                "rolled_back": rolled_back,
                "unfinished": runs - promoted - rolled_back,
                "false_rollbacks": None if scenario.regression else rolled_back,
                "missed": promoted if scenario.regression else None,
                "detection_p50": _quantile(detections, 0.5),
                "detection_p90": _quantile(detections, 0.9),
                "detection_max": detections[-1] if detections else None,
                "extra_groups_max": extra,
                "extra_ratio": extra / scenario.groups,
                "kuberay_blue_green": scenario.groups,
                "kuberay_incremental_surge_100": scenario.groups,
            }
        )
    return rows


def _quantile(ordered: list[float], q: float) -> float | None:
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))] if ordered else None
