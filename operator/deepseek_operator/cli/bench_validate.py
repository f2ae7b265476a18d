"""`dsd bench validate`: is full validation cheap enough for an admission webhook (< 50 ms)?"""

from __future__ import annotations

import json
import statistics
import time
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any

import typer
import yaml
from rich.table import Table

from deepseek_operator.cli._app import bench_app, console
from deepseek_operator.cli.validate import validate_document
from deepseek_operator.manifests import load_manifests
from deepseek_operator.modelcfg import catalog

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


@bench_app.command("validate")
def bench_validate(
    file: Annotated[Path, typer.Argument(help="DeepSeekDeployment file.")] = Path(
        "examples/deepseek-r1-h100.yaml"
    ),
    runs: Annotated[int, typer.Option(min=1, help="Timed runs.")] = 200,
    as_json: Annotated[bool, typer.Option("--json", help="Print one JSON object.")] = False,
) -> None:
    """Time full validation of one file (with its real model config) against parsing its YAML."""
    result = run_validate_bench(file, runs)
    if as_json:
        console.print(json.dumps(result, indent=2), markup=False)
        return
    table = Table(title=f"dsd bench validate {file} ({runs} runs)")
    for column in ("measurement", "p50 ms", "p95 ms", "max ms"):
        table.add_column(column, justify="left" if column == "measurement" else "right")
    for label, numbers in (
        ("validate (warm)", result["validate"]),
        ("baseline: YAML parse", result["baseline_yaml_parse"]),
    ):
        table.add_row(
            label, f"{numbers['p50_ms']:.3f}", f"{numbers['p95_ms']:.3f}", f"{numbers['max_ms']:.3f}"
        )
    table.add_row("validate (cold, first call)", f"{result['validate_cold_ms']:.3f}", "", "")
    console.print(table)
    verdict = "[green]within[/green]" if result["within_budget"] else "[red]over[/red]"
    console.print(
        f"validate / parse (p50): {result['validate_over_parse_p50']:.2f}×; "
        f"{verdict} the {WEBHOOK_BUDGET_MS:.0f} ms admission-webhook budget"
    )
