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

import numpy as np
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
    regime: Annotated[list[str] | None, typer.Option(help="decode and/or prefill (default both).")] = None,
    load_file: Annotated[
        list[Path] | None,
        typer.Option(
            help="Extra load: an expert-load/v1 document (scored on itself) or a JSON list of them "
            "(a trace: planned on the windows so far, scored on the next). Repeatable."
        ),
    ] = None,
    reference: Annotated[
        str, typer.Option(help="vllm: the installed vLLM's EPLB code; port: our exact numpy port of it.")
    ] = "vllm",
    migration: Annotated[bool, typer.Option(help="Include the re-planning rows.")] = True,
) -> None:
    """Predicted MoE step and cross-node bytes: ours vs vLLM's default, DeepSeek's hierarchical and global.

    DeepSeek-V3 on 32/64/144 H100s (4/8/18 nodes) in decode and prefill, on seeded loads, a
    drifting trace and the given files; references run the installed vLLM's own EPLB code.
    """
    from deepseek_operator.bench.eplb import (
        BENCH_REGIMES,
        NUM_EXPERTS,
        BenchLoad,
        format_eplb_bench,
        run_eplb_bench,
    )
    from deepseek_operator.planner.eplb import Regime
    from deepseek_operator.planner.eplb_load import ExpertLoadError, parse_expert_load

    by_name: dict[str, Regime] = {r.name: r for r in BENCH_REGIMES}
    unknown = sorted(set(regime or ()) - set(by_name))
    if unknown or reference not in ("vllm", "port"):
        wrong = unknown or reference
        err_console.print(
            f"[red]✗[/red] --regime: decode or prefill; --reference: vllm or port (got {wrong})"
        )
        raise typer.Exit(2)
    loads = []
    for path in load_file or ():
        try:
            document = json.loads(path.read_text(encoding="utf-8"))
            documents = document if isinstance(document, list) else [document]
            windows = [
                parse_expert_load(d, num_layers=layers, num_logical_experts=NUM_EXPERTS) for d in documents
            ]
        except (OSError, ValueError, ExpertLoadError) as error:
            err_console.print(f"[red]✗[/red] {path}: {error}")
            raise typer.Exit(2) from None
        loads.append(BenchLoad(path.name, np.stack(windows)))
    regimes = [by_name[name] for name in regime] if regime else list(BENCH_REGIMES)
    with err_console.status("planning 3 group shapes × loads × regimes (ours, vLLM's, DeepSeek's)…"):
        rows = run_eplb_bench(
            clock=time.perf_counter,
            seed=seed,
            num_layers=layers,
            regimes=regimes,
            loads=loads,
            reference="vllm" if reference == "vllm" else "port",
            migration=migration,
        )
    if as_json:
        console.print(json.dumps(rows, indent=2), markup=False)
    else:
        console.print(format_eplb_bench(rows), markup=False, soft_wrap=True)


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
    drift = result["drift_corrected_ms"]
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
        ("hand edit → reverted p50 (ms)", _ms(drift["p50"]), ""),
        ("hand edit → reverted p99 (ms)", _ms(drift["p99"]), ""),
        ("hand edits reverted", f"{drift['corrected']} / {drift['edits']}", "all"),
        (
            "operator RSS / peak (MiB)",
            f"{result['operator_rss_mib']:.0f} / {result['operator_peak_rss_mib']:.0f}",
            "≤ 250",
        ),
    ]
    for row in rows:
        table.add_row(*row)
    console.print(table)
    console.print(f"requests during convergence: {result['requests_by_resource']}")
    console.print(f"requests in steady state: {result['steady_requests_by_resource'] or 'none'}")


def _ms(value: float | None) -> str:
    return "-" if value is None else f"{value:.0f}"


@bench_app.command("autoscale")
def bench_autoscale(
    as_json: Annotated[bool, typer.Option("--json", help="Print the rows as one JSON array.")] = False,
    trace: Annotated[
        Path | None,
        typer.Option(help="CSV trace (arrival_s,prompt_tokens,output_tokens) instead of the seeded ones."),
    ] = None,
    seed: Annotated[int, typer.Option(help="Seed of the traces and of the cold starts.")] = 0,
    headroom_percent: Annotated[
        float | None,
        typer.Option(
            min=0,
            max=100,
            help="Run ours with this autoscaling.headroomPercent (default: the spec's default, 10): "
            "what headroom a trace needs, and what it costs.",
        ),
    ] = None,
) -> None:
    """TTFT-SLO attainment, GPU-hours, scale events and reversals: our group autoscaler against
    Ray Serve's default, HPA/KEDA on waiting requests, llm-d's saturation autoscaler and a
    clairvoyant oracle, on the same traces and cold starts (a discrete-event simulation)."""
    from deepseek_operator.bench.autoscale import TTFT_SLO_S, load_trace_csv, run_autoscale_bench

    try:
        traces = [load_trace_csv(trace)] if trace else None
    except (OSError, ValueError) as bad:
        err_console.print(f"[red]✗[/red] {bad}")
        raise typer.Exit(2) from None
    with err_console.status("simulating") as status:
        rows = run_autoscale_bench(
            seed=seed,
            traces=traces,
            headroom_percent=headroom_percent,
            progress=lambda text: status.update(text),
        )
    if as_json:
        console.print(json.dumps(rows, indent=2), markup=False)
        return
    headroom = "" if headroom_percent is None else f", ours at headroom {headroom_percent:g} %"
    table = Table(title=f"dsd bench autoscale (seed {seed}, TTFT SLO {TTFT_SLO_S:g} s{headroom})")
    columns = (
        ("trace", "trace", "{}"),
        ("cold start", "cold_start", "{}"),
        ("policy", "policy", "{}"),
        ("SLO met", "slo_attainment", "{:.2%}"),
        ("TTFT p99 s", "ttft_p99_s", "{:.2f}"),
        ("GPU-h", "gpu_hours", "{:.0f}"),
        ("× oracle", "gpu_hours_vs_oracle", "{:.3f}"),
        ("× ray-serve", "gpu_hours_vs_ray-serve", "{:.3f}"),
        ("× hpa-keda", "gpu_hours_vs_hpa-keda", "{:.3f}"),
        ("events", "scale_events", "{}"),
        ("reversals", "direction_changes", "{}"),
        ("mean groups", "mean_groups", "{:.2f}"),
    )
    for title, key, _ in columns:
        table.add_column(title, justify="left" if key in ("trace", "cold_start", "policy") else "right")
    for row in rows:
        cells = ["" if row.get(key) is None else fmt.format(row[key]) for _, key, fmt in columns]
        table.add_row(*cells, style="bold" if row["policy"] == "ours" else None)
    console.print(table)
    goals = Table(title="ours against the goal")
    for title in ("trace", "cold start", "SLO ≥ 99 %", "≤ 1.15 × oracle", "ahead of ray-serve"):
        goals.add_column(title)
    goals.add_column("ahead of hpa-keda")

    def mark(value: object) -> str:
        return "[green]yes[/green]" if value else "[red]no[/red]"

    for row in rows:
        if row["policy"] == "ours":
            goals.add_row(
                row["trace"],
                row["cold_start"],
                mark(row["goal_slo"]),
                mark(row["goal_cost"]),
                mark(row.get("goal_ahead_of_ray-serve")),
                mark(row.get("goal_ahead_of_hpa-keda")),
            )
    console.print(goals)
    console.print(
        "ahead = ≥ 10 % fewer GPU-hours at an equal or better SLO, or ≥ 30 % fewer reversals "
        "(direction changes of the group count)"
    )


@bench_app.command("rollout")
def bench_rollout(
    as_json: Annotated[bool, typer.Option("--json", help="Print the rows as one JSON array.")] = False,
    runs: Annotated[int, typer.Option(min=1, help="Seeded rollouts per scenario.")] = 100,
    seed: Annotated[int, typer.Option(help="Seed of the first run.")] = 0,
    scenarios: Annotated[
        Path | None, typer.Option("--scenarios", help="JSON list of scenarios instead of the built-in ones.")
    ] = None,
) -> None:
    """Canary analysis on simulated noisy metrics: detection time, false rollbacks, capacity held,
    against KubeRay's blue/green and incremental upgrades."""
    from deepseek_operator.bench.rollout import load_scenarios, run_rollout_bench

    chosen = load_scenarios(scenarios) if scenarios is not None else None
    with err_console.status(f"simulating {runs} rollouts per scenario…"):
        rows = run_rollout_bench(chosen, runs=runs, seed=seed)
    if as_json:
        console.print(json.dumps(rows, indent=2), markup=False)
        return
    table = Table(
        title=f"dsd bench rollout: {runs} seeded rollouts per scenario (interval = one analysis window)"
    )
    for column in (
        "scenario", "N", "promoted", "rolled back", "false rollbacks", "detection p50/p90/max",
        "extra groups (ratio)", "KubeRay blue/green", "KubeRay incremental",
    ):  # fmt: skip
        table.add_column(column, justify="left" if column == "scenario" else "right")
    for row in rows:
        detection = "/".join(
            "-" if row[key] is None else f"{row[key]:.1f}"
            for key in ("detection_p50", "detection_p90", "detection_max")
        )
        table.add_row(
            row["scenario"],
            str(row["settings"]["groups"]),
            str(row["promoted"]),
            str(row["rolled_back"]),
            "-" if row["false_rollbacks"] is None else f"{row['false_rollbacks']}/{row['runs']}",
            detection,
            f"{row['extra_groups_max']} ({row['extra_ratio']:.2f})",
            f"{row['kuberay_blue_green']} (1.00)",
            f"{row['kuberay_incremental_surge_100']} (1.00)",
        )
    console.print(table)
