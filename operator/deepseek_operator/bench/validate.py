"""`dsd bench validate`: is full validation cheap enough for an admission webhook (< 50 ms)?

Baseline: parsing the same file's YAML, timed in the same run.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import yaml

from deepseek_operator.cli.validate import validate_document
from deepseek_operator.manifests import load_manifests
from deepseek_operator.modelcfg import catalog

__all__ = ["WEBHOOK_BUDGET_MS", "run_validate_bench"]

WEBHOOK_BUDGET_MS = 50.0


def _timings_ms(action: Callable[[], object], runs: int) -> list[float]:
    timings = []
    for _ in range(runs):
        start = time.perf_counter()
        action()
        timings.append((time.perf_counter() - start) * 1000)
    return timings


def _summary(timings: list[float]) -> dict[str, float]:
    ordered = sorted(timings)
    return {
        "p50_ms": statistics.median(ordered),
        "p95_ms": ordered[min(len(ordered) - 1, round(0.95 * (len(ordered) - 1)))],
        "max_ms": ordered[-1],
    }


def run_validate_bench(file: Path, runs: int) -> dict[str, Any]:
    """Time `validate_deployment` on one file against the named baseline: parsing its YAML."""
    manifests = load_manifests([file])
    document = manifests.deployments[0]
    text = file.read_text(encoding="utf-8")
    # A webhook process validates its first request with cold caches: measure that once.
    catalog.load_catalog_architecture.cache_clear()
    catalog._catalog_text.cache_clear()
    cold = _timings_ms(lambda: validate_document(document, manifests), 1)[0]
    validate = _summary(_timings_ms(lambda: validate_document(document, manifests), runs))
    parse = _summary(_timings_ms(lambda: list(yaml.safe_load_all(text)), runs))
    return {
        "file": str(file),
        "runs": runs,
        "validate": validate,
        "validate_cold_ms": cold,
        "baseline_yaml_parse": parse,
        "validate_over_parse_p50": validate["p50_ms"] / parse["p50_ms"],
        "webhook_budget_ms": WEBHOOK_BUDGET_MS,
        "within_budget": validate["p95_ms"] < WEBHOOK_BUDGET_MS and cold < WEBHOOK_BUDGET_MS,
    }
