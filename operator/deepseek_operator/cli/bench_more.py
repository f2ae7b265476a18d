"""`dsd bench serving` and `dsd bench apiserver`: the data plane and the test environment's floor."""

from __future__ import annotations

import json
from typing import Annotated

import typer

from deepseek_operator.cli._app import bench_app, console, err_console


@bench_app.command("serving")
def bench_serving(
    as_json: Annotated[bool, typer.Option("--json", help="Print the rows as one JSON array.")] = False,
    max_tokens: Annotated[int, typer.Option(help="Completion length of every request.")] = 128,
) -> None:
    """Tokens/s and TTFT at concurrency 1, 8 and 32: our Serve application vs bare vLLM (tiny model,
    same engine arguments, same prompts, one run)."""
    from deepseek_serving.bench import run_serving_bench

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
    from deepseek_operator.testing.bench import run_apiserver_bench

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
