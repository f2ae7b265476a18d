"""`dsd bench eplb`: our expert placement against vLLM's installed EPLB on the same loads."""

from __future__ import annotations

import json
import time
from typing import Annotated

import typer

from deepseek_operator.cli._app import bench_app, console, err_console
from deepseek_operator.planner.eplb_bench import format_eplb_bench, run_eplb_bench


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
    with err_console.status("planning 9 cases, a drifting trace and re-plans (ours and vLLM's)…"):
        rows = run_eplb_bench(clock=time.perf_counter, seed=seed, num_layers=layers)
    if as_json:
        console.print(json.dumps(rows, indent=2), markup=False)
    else:
        console.print(format_eplb_bench(rows), markup=False)
