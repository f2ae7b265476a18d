"""`dsd run FILE`: serve a DeepSeekDeployment on an embedded Ray, no Kubernetes.

validate → plan every version → the lifecycle (`local.LocalRollout`) runs the versions as the
operator would, each as the Serve application its RayService would carry, behind a local weighted
proxy. A resource with several versions serves the one before the last, then rolls out the last
through `spec.rollout`. Ray, vLLM and the serving package are imported here, inside the command,
so the operator's light install keeps every other command.
"""

from __future__ import annotations

import asyncio
import json
import logging
import math
import os
import signal
import time
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from pathlib import Path
from types import FrameType
from typing import TYPE_CHECKING, Annotated, Any

import httpx
import typer
from prometheus_client.parser import text_string_to_metric_families
from rich.console import Group
from rich.live import Live
from rich.markup import escape
from rich.table import Table

from deepseek_operator.cli._app import app, console, err_console
from deepseek_operator.cli.plan import render_plan
from deepseek_operator.cli.rollout import rollout_view
from deepseek_operator.cli.validate import context_for
from deepseek_operator.desired import DesiredDeployment, plan_desired
from deepseek_operator.errors import FieldError, InvalidSpec
from deepseek_operator.manifests import load_manifests
from deepseek_operator.modelsource import parse_model_source
from deepseek_operator.render import RenderConfig

if TYPE_CHECKING:
    from deepseek_serving.local import LocalCluster

_GAUGES = {
    "running": "num_requests_running",
    "waiting": "num_requests_waiting",
    "generated tokens": "generation_tokens_total",
    "prompt tokens": "prompt_tokens_total",
}
STEP_SECONDS = 1.0
"""How often the local lifecycle looks at Ray Serve (the operator's work queue, here a loop)."""


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
        desired = plan_desired(
            document.body,
            context_for(document, manifests),
            manifests.config_map_data(document.namespace),
            RenderConfig(),
        )
        _check_runs_here(desired)
    except InvalidSpec as invalid:
        for error in invalid.errors:
            err_console.print(f"[red]✗[/red] {document.origin}: {error}")
        raise typer.Exit(1) from None
    console.print(render_plan(desired.desired.plan))
    # Ray configures the root logger; the live view's own polling is not news.
    logging.getLogger("httpx").setLevel(logging.WARNING)
    previous = signal.signal(signal.SIGTERM, _interrupt)
    try:
        asyncio.run(_serve(desired, host=host, port=port, refresh=refresh, ray_logs=ray_logs))
    except KeyboardInterrupt:
        pass
    finally:
        signal.signal(signal.SIGTERM, previous)


def _check_runs_here(desired: DesiredDeployment) -> None:
    """What `dsd run` needs before starting Ray: CPU ranks, and a model that is on this machine."""
    spec = desired.validated.spec
    errors = []
    if spec.resources.accelerator != "cpu":
        errors.append(
            FieldError(
                "spec.resources.accelerator", "dsd run serves accelerator cpu deployments on this machine"
            )
        )
    for path, uri in (
        ("spec.model.source", spec.model.source),
        ("spec.model.tokenizer.source", _tokenizer(desired)),
    ):
        source = parse_model_source(uri) if uri else None
        if source is not None and source.scheme == "file" and not Path(source.location).exists():
            errors.append(
                FieldError(
                    path,
                    f"{uri} does not exist on this machine; build the tiny model with "
                    f"`dsd tiny-model {source.location}` or point it at a model directory",
                )
            )
    if errors:
        raise InvalidSpec(errors)


def _tokenizer(desired: DesiredDeployment) -> str | None:
    tokenizer = desired.validated.spec.model.tokenizer
    return tokenizer.source if tokenizer is not None else None


async def _serve(desired: DesiredDeployment, *, host: str, port: int, refresh: float, ray_logs: bool) -> None:
    from deepseek_operator.local import LocalRollout
    from deepseek_serving.local import LocalCluster
    from deepseek_serving.weighted_proxy import WeightedProxy

    started = time.monotonic()
    with err_console.status("starting Ray…"):
        cluster = LocalCluster(num_cpus=_cluster_cpus(desired), log_to_driver=ray_logs)
    # ray.init installs its own SIGTERM handler, which aborts the driver (exit -6, no drain): take
    # SIGTERM back so that `timeout`, systemd and `docker stop` stop it as Ctrl-C does.
    signal.signal(signal.SIGTERM, _interrupt)
    proxy = WeightedProxy().start()
    rollout = LocalRollout(desired, cluster, proxy, listen=(host, port), now=lambda: datetime.now(UTC))  # noqa: TID251 - the shell's clock
    name = desired.validated.resource.metadata.name
    base_url = f"http://{host}:{port}{desired.validated.spec.serving.route_prefix.rstrip('/')}"
    try:
        with err_console.status("loading the model (about 30 s on a laptop CPU)…"):
            while not rollout.serving():
                await rollout.step()
                _print_scaling(rollout.scaling_decisions)
                problem = rollout.problem()
                if (
                    problem
                    and not rollout.serving()
                    and rollout.status.traffic
                    and all(entry.role == "Starting" for entry in rollout.status.traffic)
                ):
                    err_console.print(f"[red]✗[/red] {name}: {problem}")
                await asyncio.sleep(STEP_SECONDS)
        served_model = desired.validated.spec.model.served_model_name or name
        request = json.dumps({"model": served_model, "messages": [{"role": "user", "content": "Hello"}]})
        console.print(
            f"[green]serving[/green] {served_model} at [bold]{base_url}/v1[/bold] "
            f"(ready in {time.monotonic() - started:.0f} s); metrics at {cluster.metrics_url}; try:\n"
            f"  curl {base_url}/v1/chat/completions -H 'Content-Type: application/json' -d '{request}'"
        )
        with Live(_view(rollout, base_url, cluster), console=console, refresh_per_second=1) as live:
            last = 0.0
            while True:
                await rollout.step()
                _print_scaling(rollout.scaling_decisions)
                if time.monotonic() - last >= refresh:
                    live.update(_view(rollout, base_url, cluster))
                    last = time.monotonic()
                await asyncio.sleep(STEP_SECONDS)
    except (KeyboardInterrupt, asyncio.CancelledError):
        err_console.print("\nstopping: in-flight requests finish first…")
    finally:
        cluster.shutdown()
        proxy.stop()
        await rollout.prometheus.aclose()


def _print_scaling(decisions: Sequence[Mapping[str, Any]]) -> None:
    """Each autoscaler decision, one line above the live view."""
    for decision in decisions:
        console.print(_scaling_line(decision))


def _scaling_line(decision: Mapping[str, Any]) -> str:
    at = datetime.fromtimestamp(float(decision["time_s"]), UTC).strftime("%H:%M:%S")
    return (
        f"{at} [bold]{decision['version']}[/bold]: {decision['from_groups']} → {decision['to_groups']} "
        f"group(s), queue depth {float(decision.get('queue_depth', 0)):g} "
        f"({decision['rule']}: {escape(str(decision['reason']))})"
    )


def _cluster_cpus(desired: DesiredDeployment) -> int:
    """Logical CPUs the embedded Ray declares: every version's groups at their most, plus the
    rollout's surge (bundles are scheduling tokens here; the cores are shared)."""
    spec = desired.validated.spec
    most = desired.groups.maximum + spec.rollout.surge_groups
    per_group = max(
        sum(bundle.get("CPU", 0.0) for bundle in version.plan.placement.group_bundles)
        for version in desired.versions
    )
    return max(os.cpu_count() or 1, math.ceil(per_group * most))


def _interrupt(signum: int, frame: FrameType | None) -> None:
    raise KeyboardInterrupt


def _view(rollout: Any, base_url: str, cluster: LocalCluster) -> Group:
    """The live view: the versions and the rollout as `dsd rollout status` draws them, and the
    engines' queue gauges summed over ranks."""
    spec = rollout.desired.validated.spec
    body = {
        "metadata": {"name": rollout.desired.validated.resource.metadata.name, "namespace": "local"},
        "spec": spec.to_dict(),
        "status": rollout.status.to_dict(),
    }
    table = Table(title="engines (Ctrl-C to stop)", show_header=True)
    table.add_column("endpoint")
    table.add_column("health")
    for label in _GAUGES:
        table.add_column(label, justify="right")
    try:
        healthy = httpx.get(f"{base_url}/v1/models", timeout=2).status_code == 200
        totals = _sum_gauges(cluster.metrics(max_age_s=STEP_SECONDS))  # what the step just read
    except httpx.HTTPError as error:
        healthy, totals = False, {}
        table.caption = f"[yellow]{error}[/yellow]"
    table.add_row(
        base_url,
        "[green]ok[/green]" if healthy else "[red]down[/red]",
        *(f"{totals.get(name, 0):.0f}" for name in _GAUGES),
    )
    return Group(rollout_view(body), table)


def _sum_gauges(text: str) -> dict[str, float]:
    totals: dict[str, float] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            for label, fragment in _GAUGES.items():
                if fragment in sample.name and "vllm" in sample.name and not sample.name.endswith("_created"):
                    totals[label] = totals.get(label, 0.0) + float(sample.value)
    return totals
