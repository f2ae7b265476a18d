"""`dsd run FILE`: serve a DeepSeekDeployment on an embedded Ray, no Kubernetes.

validate → plan → the same `ServingArgs` the operator renders into serveConfigV2 → `serve.run`.
Ray, vLLM and the serving package are imported here, inside the command, so the operator's
light install keeps every other command.
"""

from __future__ import annotations

import json
import logging
import signal
import time
from pathlib import Path
from types import FrameType
from typing import Annotated

import httpx
import typer
from prometheus_client.parser import text_string_to_metric_families
from rich.console import Group
from rich.live import Live
from rich.table import Table

from deepseek_operator.cli._app import app, console, err_console
from deepseek_operator.cli.plan import render_plan
from deepseek_operator.cli.validate import validate_document
from deepseek_operator.errors import FieldError, InvalidSpec
from deepseek_operator.manifests import load_manifests
from deepseek_operator.planner.plan import plan_deployment
from deepseek_operator.render.serving_args import serving_args_for

_GAUGES = {
    "running": "num_requests_running",
    "waiting": "num_requests_waiting",
    "generated tokens": "generation_tokens_total",
    "prompt tokens": "prompt_tokens_total",
}


@app.command()
def run(
    file: Annotated[Path, typer.Argument(help="A YAML file with one DeepSeekDeployment.")],
    host: Annotated[str, typer.Option(help="Address to serve on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port of the OpenAI endpoint.")] = 8000,
    refresh: Annotated[float, typer.Option(help="Seconds between live status updates.")] = 2.0,
    ray_logs: Annotated[
        bool, typer.Option(help="Stream Ray's and vLLM's logs here (off: only the plan and live status).")
    ] = False,
) -> None:
    """Serve a DeepSeekDeployment locally (Ctrl-C stops it, letting in-flight requests finish)."""
    manifests = load_manifests([file])
    if len(manifests.deployments) != 1:
        err_console.print(
            f"[red]✗[/red] {file}: expected one DeepSeekDeployment, found {len(manifests.deployments)}"
        )
        raise typer.Exit(1)
    document = manifests.deployments[0]
    try:
        validated = validate_document(document, manifests)
        if validated.spec.resources.accelerator != "cpu":
            raise InvalidSpec(
                [
                    FieldError(
                        "spec.resources.accelerator",
                        "dsd run serves accelerator cpu deployments on this machine",
                    )
                ]
            )
        plan = plan_deployment(validated)
        args = serving_args_for(validated, plan, validated.spec.desired_version)
    except InvalidSpec as invalid:
        for error in invalid.errors:
            err_console.print(f"[red]✗[/red] {document.origin}: {error}")
        raise typer.Exit(1) from None
    console.print(render_plan(plan))

    from deepseek_serving.local import serve_locally

    # Ray configures the root logger; the live view's own polling is not news.
    logging.getLogger("httpx").setLevel(logging.WARNING)

    started = time.monotonic()
    with err_console.status("starting Ray and loading the model (about 30 s on a laptop CPU)…"):
        served = serve_locally(args, host=host, port=port, log_to_driver=ray_logs)
    request = json.dumps(
        {"model": args.served_model_name, "messages": [{"role": "user", "content": "Hello"}]}
    )
    with served:
        console.print(
            f"[green]serving[/green] {args.served_model_name} at [bold]{served.base_url}/v1[/bold] "
            f"(ready in {time.monotonic() - started:.0f} s); metrics at {served.metrics_url}; try:\n"
            f"  curl {served.base_url}/v1/chat/completions -H 'Content-Type: application/json' -d '{request}'"
        )
        previous = signal.signal(signal.SIGTERM, _interrupt)
        try:
            with Live(
                _status(served.base_url, served.metrics_url), console=console, refresh_per_second=1
            ) as live:
                while True:
                    time.sleep(refresh)
                    live.update(_status(served.base_url, served.metrics_url))
        except KeyboardInterrupt:
            err_console.print("\nstopping: in-flight requests finish first…")
        finally:
            signal.signal(signal.SIGTERM, previous)


def _interrupt(signum: int, frame: FrameType | None) -> None:
    raise KeyboardInterrupt


def _status(base_url: str, metrics_url: str) -> Group:
    """One live view: health and the engines' queue gauges summed over ranks."""
    table = Table(title="live status (Ctrl-C to stop)", show_header=True)
    table.add_column("endpoint")
    table.add_column("health")
    for label in _GAUGES:
        table.add_column(label, justify="right")
    try:
        healthy = httpx.get(f"{base_url}/v1/models", timeout=2).status_code == 200
        totals = _sum_gauges(httpx.get(metrics_url, timeout=2).text)
    except httpx.HTTPError as error:
        healthy, totals = False, {}
        table.caption = f"[yellow]{error}[/yellow]"
    table.add_row(
        base_url,
        "[green]ok[/green]" if healthy else "[red]down[/red]",
        *(f"{totals.get(name, 0):.0f}" for name in _GAUGES),
    )
    return Group(table)


def _sum_gauges(text: str) -> dict[str, float]:
    totals: dict[str, float] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            for label, fragment in _GAUGES.items():
                if fragment in sample.name and "vllm" in sample.name and not sample.name.endswith("_created"):
                    totals[label] = totals.get(label, 0.0) + float(sample.value)
    return totals
