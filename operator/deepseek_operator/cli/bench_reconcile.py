"""`dsd bench reconcile`: the operator reconciling many deployments, against the server's own floor."""

from __future__ import annotations

import json
import tempfile
from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from deepseek_operator.cli._app import bench_app, console, err_console


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
    from deepseek_operator.testing.bench_reconcile import run_reconcile_bench

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
