"""`dsd rollout status|promote|abort|retry|undo NAME`: watch and steer a rollout through the API.

Every action is what `kubectl` alone can do too (docs/rollouts.md): promote, abort and retry set
an annotation to a new value (`kubectl annotate dsd NAME deepseek.serving.dev/promote=$(date +%s)
--overwrite`), which the operator acts on once; undo edits `spec.versions` (the spec stays the
source of truth, so GitOps sees the change). The user's kubeconfig decides where and as whom.
"""

from __future__ import annotations

import time
from datetime import UTC, datetime
from typing import Annotated, Any

import typer
from rich.console import Group
from rich.live import Live
from rich.table import Table

from deepseek_operator.api import constants
from deepseek_operator.api.constants import ManualAction
from deepseek_operator.api.v1alpha1 import DeepSeekDeploymentStatus, ScalingRecord
from deepseek_operator.cli._app import app, console, err_console

rollout_app = typer.Typer(help="Watch and steer canary rollouts.", no_args_is_help=True)
app.add_typer(rollout_app, name="rollout")

Namespace = Annotated[
    str | None, typer.Option("--namespace", "-n", help="Namespace (the kubeconfig's by default).")
]
Name = Annotated[str, typer.Argument(help="The DeepSeekDeployment.")]


def _api(namespace: str | None) -> tuple[Any, str]:
    """The custom-objects API of the user's kubeconfig and the namespace to use."""
    from kubernetes import client, config

    try:
        config.load_kube_config()  # type: ignore[no-untyped-call]
        _, active = config.list_kube_config_contexts()  # type: ignore[no-untyped-call]
    except config.ConfigException as error:
        err_console.print(f"[red]✗[/red] no usable kubeconfig: {error}")
        raise typer.Exit(2) from None
    default = (active or {}).get("context", {}).get("namespace") or "default"
    return client.CustomObjectsApi(), namespace or default


def _get(api: Any, namespace: str, name: str) -> dict[str, Any]:
    from kubernetes.client import ApiException

    try:
        found: dict[str, Any] = api.get_namespaced_custom_object(
            constants.GROUP, constants.VERSION, namespace, constants.PLURAL, name
        )
    except ApiException as error:
        err_console.print(f"[red]✗[/red] {namespace}/{name}: {error.reason} ({error.status})")
        raise typer.Exit(1) from None
    return found


def _patch(api: Any, namespace: str, name: str, patch: dict[str, Any]) -> None:
    api.patch_namespaced_custom_object(
        constants.GROUP, constants.VERSION, namespace, constants.PLURAL, name, patch
    )


def _annotate(namespace: str | None, name: str, action: ManualAction, what: str) -> None:
    api, namespace = _api(namespace)
    _get(api, namespace, name)
    value = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")  # noqa: TID251 - a fresh token, not a decision
    _patch(api, namespace, name, {"metadata": {"annotations": {action.annotation: value}}})
    console.print(f"{what} requested for {namespace}/{name} ({action.annotation}={value})")


@rollout_app.command("promote")
def promote(
    name: Name,
    namespace: Namespace = None,
    full: Annotated[bool, typer.Option("--full", help="Skip every remaining step.")] = False,
) -> None:
    """Skip the current pause (or accept an inconclusive analysis); with --full, every step."""
    action = ManualAction.PROMOTE_FULL if full else ManualAction.PROMOTE
    _annotate(namespace, name, action, "full promotion" if full else "promotion")


@rollout_app.command("abort")
def abort(name: Name, namespace: Namespace = None) -> None:
    """Send all traffic back to the stable version; the canary drains and is removed."""
    _annotate(namespace, name, ManualAction.ABORT, "abort")


@rollout_app.command("retry")
def retry(name: Name, namespace: Namespace = None) -> None:
    """Start an aborted or rolled-back rollout of the desired version again."""
    _annotate(namespace, name, ManualAction.RETRY, "retry")


@rollout_app.command("undo")
def undo(
    name: Name,
    namespace: Namespace = None,
    to_version: Annotated[
        str | None, typer.Option("--to-version", help="Version to make desired (default: the one before).")
    ] = None,
) -> None:
    """Make an earlier version desired again: it is rolled out like any new version.

    The version is taken from `spec.versions` when listed there, else from `status.history`
    (which keeps each rolled-out version's spec).
    """
    api, namespace = _api(namespace)
    body = _get(api, namespace, name)
    versions: list[dict[str, Any]] = list(body["spec"]["versions"])
    status = DeepSeekDeploymentStatus.model_validate(body.get("status") or {})
    target = to_version or _previous_version(status, versions)
    if target is None:
        err_console.print(
            f"[red]✗[/red] {namespace}/{name}: no earlier version in spec.versions or status.history"
        )
        raise typer.Exit(1)
    listed = next((version for version in versions if version["name"] == target), None)
    if listed is None:
        remembered = next(
            (h for h in reversed(status.history) if h.version == target and h.version_spec), None
        )
        if remembered is None or remembered.version_spec is None:
            known = sorted(
                {v["name"] for v in versions} | {h.version for h in status.history if h.version_spec}
            )
            err_console.print(
                f"[red]✗[/red] {target}: not in spec.versions or status.history; known: {', '.join(known)}"
            )
            raise typer.Exit(1)
        listed = remembered.version_spec.to_dict()
    if versions[-1]["name"] == target:
        console.print(f"{target} is already the desired version of {namespace}/{name}")
        return
    reordered = [version for version in versions if version["name"] != target] + [listed]
    _patch(api, namespace, name, {"spec": {"versions": reordered}})
    console.print(f"{namespace}/{name}: {target} is the desired version again; the operator rolls it out")


def _previous_version(status: DeepSeekDeploymentStatus, versions: list[dict[str, Any]]) -> str | None:
    """The version the last promotion replaced, else the one listed before the desired one."""
    for entry in reversed(status.history):
        if entry.outcome == "Promoted" and entry.from_version and entry.from_version != versions[-1]["name"]:
            return entry.from_version
    return versions[-2]["name"] if len(versions) > 1 else None


@rollout_app.command("status")
def status(
    name: Name,
    namespace: Namespace = None,
    watch: Annotated[bool, typer.Option("--watch", "-w", help="Keep the view live until Ctrl-C.")] = False,
    interval: Annotated[float, typer.Option(help="Seconds between refreshes with --watch.")] = 2.0,
) -> None:
    """Versions with their weights and groups, the rollout's step and analysis, history."""
    api, namespace = _api(namespace)
    if not watch:
        console.print(rollout_view(_get(api, namespace, name)))
        return
    try:
        with Live(rollout_view(_get(api, namespace, name)), console=console, refresh_per_second=2) as live:
            while True:
                time.sleep(interval)
                live.update(rollout_view(_get(api, namespace, name)))
    except KeyboardInterrupt:
        pass


def _scaling(record: ScalingRecord | None) -> str:
    """'3 → 4 ScaleUp at 1630, 11:50:00' (the reason in full is in the Event and the status)."""
    if record is None:
        return ""
    at = f", {record.decided_at:%H:%M:%S}" if record.decided_at else ""
    return f"{record.from_groups} → {record.to_groups} {record.rule} at {record.queue_depth:g}{at}"


def rollout_view(body: dict[str, Any]) -> Group:
    """A deployment's rollout as tables (pure: the body in, rich renderables out)."""
    status = DeepSeekDeploymentStatus.model_validate(body.get("status") or {})
    metadata = body["metadata"]
    headline = (
        f"[bold]{metadata.get('namespace', 'default')}/{metadata['name']}[/bold]: {status.phase or 'Pending'}"
    )
    parts: list[Any] = [f"{headline} — {status.message or ''}"]

    traffic = Table(title="versions", title_justify="left")
    columns = ("version", "revision", "role", "weight", "ready groups", "desired groups", "queue depth")
    for column in columns:
        traffic.add_column(column, justify="left" if column in ("version", "revision", "role") else "right")
    traffic.add_column("last scaling (queue depth)")
    for entry in status.traffic:
        traffic.add_row(
            entry.version,
            entry.revision or "",
            entry.role,
            f"{entry.weight}%",
            str(entry.ready_groups),
            "" if entry.desired_groups is None else str(entry.desired_groups),
            "" if entry.queue_depth is None else f"{entry.queue_depth:g}",
            _scaling(entry.last_scaling),
        )
    parts.append(traffic)

    rollout = status.rollout
    if rollout is not None:
        steps = len(body["spec"].get("rollout", {}).get("steps") or [])
        where = f"step {rollout.step_index + 1}/{steps}" if rollout.step_index < steps else "promotion"
        parts.append(
            f"rollout {rollout.revision}: {rollout.stable_version} → {rollout.canary_version}, {where}, "
            f"{rollout.phase}"
            + (f" ({rollout.reason})" if rollout.reason else "")
            + (f": {rollout.message}" if rollout.message else "")
        )
        if rollout.analysis is not None:
            analysis = Table(
                title=f"analysis at step {rollout.analysis.step_index + 1}: {rollout.analysis.phase}",
                title_justify="left",
            )
            for column in ("metric", "phase", "value", "stable", "limit", "at"):
                analysis.add_column(column)
            for measurement in rollout.analysis.measurements:
                analysis.add_row(
                    measurement.metric,
                    measurement.phase,
                    _number(measurement.value),
                    _number(measurement.stable_value),
                    _number(measurement.limit),
                    measurement.measured_at.strftime("%H:%M:%S"),
                )
            parts.append(analysis)
    if status.history:
        history = Table(title="history", title_justify="left")
        for column in ("revision", "version", "from", "outcome", "steps", "finished", "reason"):
            history.add_column(column)
        for finished in reversed(status.history):
            history.add_row(
                str(finished.revision),
                finished.version,
                finished.from_version or "",
                finished.outcome,
                str(finished.steps_reached),
                finished.finish_time.strftime("%Y-%m-%d %H:%M:%S"),
                finished.reason + (f": {finished.message}" if finished.message else ""),
            )
        parts.append(history)
    return Group(*parts)


def _number(value: float | None) -> str:
    return "" if value is None else f"{value:.4g}"
