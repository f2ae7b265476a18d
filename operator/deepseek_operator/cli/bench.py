"""`dsd bench …`: print the measurements of `deepseek_operator.bench` as tables or JSON.

Every bench module is imported inside its command: the serving stack and the test environment
stay out of the operator's light install, and a missing part is named, not a traceback.
"""

from __future__ import annotations

import json
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from deepseek_operator.bench import MissingExtra, require_testing
from deepseek_operator.cli._app import bench_app, console, err_console


def _require_serving_stack() -> None:
    import importlib.util

    if importlib.util.find_spec("ray") is None or importlib.util.find_spec("vllm") is None:
        raise MissingExtra(
            "`dsd bench serving` runs Ray Serve and vLLM: install the `serving` and `cpu` extras, e.g. "
            "`pip install 'deepseek-operator[serving,cpu]'`"
        )


@contextmanager
def _explained_missing_extra() -> Iterator[None]:
    """Turn a missing install into one line and exit status 2."""
    try:
        yield
    except MissingExtra as missing:
        err_console.print(f"[red]✗[/red] {missing}")
        raise typer.Exit(2) from None


@bench_app.command("validate")
def bench_validate(
    file: Annotated[Path, typer.Argument(help="DeepSeekDeployment file.")] = Path(
        "examples/deepseek-r1-h100.yaml"
    ),
    runs: Annotated[int, typer.Option(min=1, help="Timed runs.")] = 200,
    as_json: Annotated[bool, typer.Option("--json", help="Print one JSON object.")] = False,
) -> None:
    """Time full validation of one file (with its real model config) against parsing its YAML."""
    from deepseek_operator.bench.validate import WEBHOOK_BUDGET_MS, run_validate_bench

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


@bench_app.command("eplb")
def bench_eplb(
    as_json: Annotated[bool, typer.Option("--json", help="Print the rows as one JSON array.")] = False,
    seed: Annotated[int, typer.Option(help="Seed of every load generator.")] = 0,
    layers: Annotated[int, typer.Option(min=1, help="MoE layers (DeepSeek-V3: 58).")] = 58,
) -> None:
    """Balancedness, runtime, next-window quality and migration cost, ours vs vLLM's EPLB.

    vLLM's rebalancing algorithm (the port of DeepSeek's EPLB inside the installed vLLM) is the
    named baseline, run on the same expert-load statistics in the same process.
    """
    from deepseek_operator.bench.eplb import format_eplb_bench, run_eplb_bench

    with err_console.status("planning 9 cases, a drifting trace and re-plans (ours and vLLM's)…"):
        rows = run_eplb_bench(clock=time.perf_counter, seed=seed, num_layers=layers)
    if as_json:
        console.print(json.dumps(rows, indent=2), markup=False)
    else:
        console.print(format_eplb_bench(rows), markup=False)


@bench_app.command("serving")
def bench_serving(
    as_json: Annotated[bool, typer.Option("--json", help="Print the rows as one JSON array.")] = False,
    max_tokens: Annotated[int, typer.Option(help="Completion length of every request.")] = 128,
) -> None:
    """Tokens/s and TTFT at concurrency 1, 8 and 32: our Serve application vs bare vLLM (tiny model,
    same engine arguments, same prompts, one run)."""
    with _explained_missing_extra():
        _require_serving_stack()
    from deepseek_operator.bench.serving import run_serving_bench

    rows = run_serving_bench(max_tokens=max_tokens, log=(lambda line: err_console.print(line, markup=False)))
    if as_json:
        console.print(json.dumps(rows, indent=2), markup=False)


@bench_app.command("apiserver")
def bench_apiserver(
    as_json: Annotated[bool, typer.Option("--json", help="Print one JSON object.")] = False,
    objects: Annotated[int, typer.Option(help="Objects created in the throughput phase.")] = 2000,
    in_process: Annotated[bool, typer.Option(help="Run the server on a thread of this process.")] = False,
) -> None:
    """The test API server's watch latency and create/watch throughput (the floor of `bench reconcile`)."""
    with _explained_missing_extra():
        require_testing("apiserver")
    from deepseek_operator.bench.apiserver import run_apiserver_bench

    with err_console.status("measuring the test API server…"):
        result = run_apiserver_bench(objects=objects, in_process=in_process)
    if as_json:
        console.print(json.dumps(result, indent=2), markup=False)
        return
    latency = result["watch_latency_ms"]
    console.print(
        f"watch latency p50 {latency['p50']:.2f} ms, p99 {latency['p99']:.2f} ms (n={latency['samples']}); "
        f"{result['create_per_s']:.0f} creates/s, {result['watched_events_per_s']:.0f} watched events/s "
        f"({result['server']})"
    )


@bench_app.command("reconcile")
def bench_reconcile(
    resources: Annotated[int, typer.Option(min=1, help="DeepSeekDeployments to reconcile.")] = 1000,
    qps: Annotated[float, typer.Option(help="The operator client's rate limit.")] = 20.0,
    burst: Annotated[int, typer.Option(help="The operator client's burst.")] = 30,
    events_per_s: Annotated[float, typer.Option(help="Spec changes per second in the latency phase.")] = 10.0,
    resync: Annotated[float, typer.Option(help="The operator's resync interval, seconds.")] = 20.0,
    as_json: Annotated[bool, typer.Option("--json", help="Print one JSON object.")] = False,
) -> None:
    """Convergence, requests and writes per resource, steady state, event latency and RSS."""
    with _explained_missing_extra():
        require_testing("reconcile")
    from deepseek_operator.bench.reconcile import run_reconcile_bench

    with (
        tempfile.TemporaryDirectory(prefix="dsd-bench-") as workdir,
        err_console.status("starting") as status,
    ):
        result = run_reconcile_bench(
            resources=resources,
            qps=qps,
            burst=burst,
            events_per_s=events_per_s,
            resync_s=resync,
            workdir=Path(workdir),
            progress=lambda text: status.update(text),
        )
    if as_json:
        console.print(json.dumps(result, indent=2), markup=False)
        return
    latency, start = result["event_to_status_ms"], result["event_to_reconcile_start_ms"]
    table = Table(title=f"dsd bench reconcile: {resources} deployments, client {qps:g} qps / burst {burst}")
    table.add_column("measurement")
    table.add_column("value", justify="right")
    table.add_column("goal", justify="right")
    rows = [
        ("baseline: one client creates + watches all (s)", f"{result['baseline_floor_s']:.1f}", ""),
        ("convergence from process start (s)", f"{result['convergence_s']:.1f}", ""),
        ("  of which operator start-up (s)", f"{result['operator_startup_s']:.1f}", ""),
        ("limiter floor: requests / qps (s)", f"{result['limiter_floor_s']:.1f}", ""),
        (
            "convergence after start-up / limiter floor",
            f"{result['convergence_over_limiter_floor']:.2f}",
            "≤ 1.25",
        ),
        ("requests per resource (convergence)", f"{result['requests_per_resource']:.2f}", ""),
        ("writes per resource (convergence)", f"{result['writes_per_resource']:.2f}", "≤ 3"),
        ("reads per resource (steady state)", f"{result['steady_reads_per_resource']:.2f}", "≤ 1"),
        ("writes per resource (steady state)", f"{result['steady_writes_per_resource']:.2f}", "0"),
        ("event → reconcile start p50 (ms)", f"{start['p50']:.1f}", ""),
        ("event → reconcile start p99 (ms)", f"{start['p99']:.1f}", "≤ 1000"),
        ("write → status written p50 (ms)", f"{latency['p50']:.0f}", ""),
        ("write → status written p99 (ms)", f"{latency['p99']:.0f}", ""),
        (
            "operator RSS / peak (MiB)",
            f"{result['operator_rss_mib']:.0f} / {result['operator_peak_rss_mib']:.0f}",
            "≤ 250",
        ),
    ]
    for row in rows:
        table.add_row(*row)
    console.print(table)
    console.print(f"requests by method during convergence: {result['requests_by_method']}")
