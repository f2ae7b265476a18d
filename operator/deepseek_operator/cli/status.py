"""`dsd status NAME [-n NS] [--watch]`: one deployment as a person checks it, live from the cluster.

The versions with their weights, groups and queue depth, the rollout's step and its last analysis
(`cli.rollout.rollout_view`, the same tables `dsd rollout status` prints), the conditions with
their reasons and ages, and the deployment's recent Events. Read through the user's kubeconfig,
like `kubectl`; nothing is written.
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import Annotated, Any

import typer
from rich.console import Group
from rich.live import Live
from rich.table import Table

from deepseek_operator.api import constants
from deepseek_operator.api.v1alpha1 import DeepSeekDeploymentStatus
from deepseek_operator.cli._app import app, console

# The kubeconfig loading and the error reporting of `dsd rollout …`, shared rather than repeated.
from deepseek_operator.cli.rollout import Name, Namespace, rollout_view
from deepseek_operator.cli.rollout import _api as custom_objects_api
from deepseek_operator.cli.rollout import _get as get_deployment

__all__ = ["format_age", "status", "status_view"]

EVENT_LIMIT = 10
"""Events shown, newest first."""


@app.command("status")
def status(
    name: Name,
    namespace: Namespace = None,
    watch: Annotated[bool, typer.Option("--watch", "-w", help="Keep the view live until Ctrl-C.")] = False,
    interval: Annotated[float, typer.Option(help="Seconds between refreshes with --watch.")] = 2.0,
    events: Annotated[int, typer.Option(help="Recent Events to show.")] = EVENT_LIMIT,
) -> None:
    """Versions, weights, groups, queue depth, the rollout and its analysis, conditions, Events."""
    api, namespace = custom_objects_api(namespace)

    def view() -> Group:
        body = get_deployment(api, namespace, name)
        now = datetime.now(UTC)  # noqa: TID251 - ages for people, read at the edge
        return status_view(body, _events(namespace, name, events), now=now)

    if not watch:
        console.print(view())
        return
    try:
        with Live(view(), console=console, refresh_per_second=2) as live:
            while True:
                time.sleep(interval)
                live.update(view())
    except KeyboardInterrupt:
        pass


def _events(namespace: str, name: str, limit: int) -> list[dict[str, Any]]:
    """The deployment's Events as JSON dicts, newest first (empty when they cannot be read)."""
    from kubernetes import client

    core = client.CoreV1Api()
    selector = f"involvedObject.kind={constants.KIND},involvedObject.name={name}"
    try:
        listed = core.list_namespaced_event(namespace, field_selector=selector)
    except client.ApiException:
        return []
    items: list[dict[str, Any]] = core.api_client.sanitize_for_serialization(listed.items)
    mine = [
        event
        for event in items
        if (event.get("involvedObject") or {}).get("name") == name
        and (event.get("involvedObject") or {}).get("kind") == constants.KIND
    ]
    return sorted(mine, key=_event_order, reverse=True)[:limit]


def status_view(body: Mapping[str, Any], events: Sequence[Mapping[str, Any]], *, now: datetime) -> Group:
    """The deployment as tables (pure: the object, its Events and the time in; rich renderables out)."""
    status = DeepSeekDeploymentStatus.model_validate(body.get("status") or {})
    metadata = body.get("metadata") or {}
    generation = metadata.get("generation")
    parts: list[Any] = [rollout_view(dict(body))]
    observed = status.observed_generation
    if generation is not None and observed != generation:
        parts.append(
            f"[yellow]the operator has not observed generation {generation} yet "
            f"(status is of {observed if observed is not None else 'none'})[/yellow]"
        )
    if status.plan is not None:
        plan = status.plan
        parts.append(
            f"plan: {plan.gpus_per_group} GPU(s) per group on {plan.nodes_per_group} node(s): "
            f"tensor {plan.tensor_parallel_size} × data {plan.data_parallel_size} parallel, "
            f"experts over {plan.expert_parallel_size} ranks"
            + (f", {plan.redundant_experts} redundant" if plan.redundant_experts else "")
            + (f", EPLB balance {plan.eplb_balancedness:.2f}" if plan.eplb_balancedness is not None else "")
        )
    parts.append(
        f"groups: {status.ready_groups if status.ready_groups is not None else 0} ready of "
        f"{status.desired_groups if status.desired_groups is not None else 0} desired"
    )

    conditions = Table(title="conditions", title_justify="left")
    for column in ("type", "status", "reason", "age", "message"):
        conditions.add_column(column)
    for condition in status.conditions:
        conditions.add_row(
            condition.type,
            condition.status,
            condition.reason,
            format_age(condition.last_transition_time, now),
            condition.message,
        )
    parts.append(conditions)

    recent = Table(title="events", title_justify="left")
    for column in ("last seen", "type", "reason", "count", "message"):
        recent.add_column(column)
    for event in events:
        seen = _event_time(event)
        recent.add_row(
            format_age(seen, now) if seen > _EPOCH else "",
            str(event.get("type") or ""),
            str(event.get("reason") or ""),
            str(event.get("count") or 1),
            str(event.get("message") or ""),
        )
    parts.append(recent if events else "events: none")
    return Group(*parts)


_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def _event_time(event: Mapping[str, Any]) -> datetime:
    """When an Event last happened: lastTimestamp, eventTime or its creation (JSON or datetimes)."""
    for field in ("lastTimestamp", "eventTime", "firstTimestamp"):
        value = event.get(field)
        if value:
            return _parse(value)
    created = (event.get("metadata") or {}).get("creationTimestamp")
    return _parse(created) if created else _EPOCH


def _event_order(event: Mapping[str, Any]) -> tuple[datetime, int]:
    """Newest last: by time, then (Event times have one-second steps) by the order of writes."""
    version = str((event.get("metadata") or {}).get("resourceVersion") or "")
    return _event_time(event), int(version) if version.isdigit() else 0


def _parse(value: Any) -> datetime:
    if isinstance(value, datetime):
        return value if value.tzinfo else value.replace(tzinfo=UTC)
    return datetime.fromisoformat(str(value).replace("Z", "+00:00"))


def format_age(then: datetime, now: datetime) -> str:
    """Like kubectl: `45s`, `3m`, `2h`, `4d` (`5m10s` and `2h5m` below ten of the larger unit)."""
    seconds = max(0, int((now - then).total_seconds()))
    if seconds < 60:
        return f"{seconds}s"
    minutes, hours, days = seconds // 60, seconds // 3600, seconds // 86400
    if minutes < 10:
        return f"{minutes}m{seconds % 60}s" if seconds % 60 else f"{minutes}m"
    if hours < 1:
        return f"{minutes}m"
    if hours < 10:
        return f"{hours}h{minutes % 60}m" if minutes % 60 else f"{hours}h"
    if days < 1:
        return f"{hours}h"
    return f"{days}d"
