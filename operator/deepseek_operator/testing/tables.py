"""``meta.k8s.io/v1`` Table responses, which ``kubectl get`` asks for: Name, then the CRD's printer
columns, or Age alone when it declares none (as the apiextensions server does)."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any

from deepseek_operator.testing.resources import ResourceType

__all__ = ["table", "wants_table"]


def wants_table(accept: str) -> bool:
    return "as=Table" in accept


def _age(created: str, now: datetime) -> str:
    try:
        then = datetime.fromisoformat(created.replace("Z", "+00:00"))
    except ValueError:
        return "<unknown>"
    seconds = max(0, int((now - then).total_seconds()))
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size * 2 or (unit == "m" and seconds >= size):
            return f"{seconds // size}{unit}"
    return f"{seconds}s"


def _cell(obj: Mapping[str, Any], column: Mapping[str, Any], now: datetime) -> Any:
    node: Any = obj
    for part in filter(None, str(column.get("jsonPath", "")).split(".")):
        node = node.get(part) if isinstance(node, Mapping) else None
    if node is not None and column.get("type") == "date":
        return _age(str(node), now)
    return node


_AGE_COLUMN = {"name": "Age", "type": "date", "jsonPath": ".metadata.creationTimestamp", "description": "Age"}


def table(rt: ResourceType, items: list[dict[str, Any]], rv: str, now: datetime) -> dict[str, Any]:
    printer_columns = rt.printer_columns or (_AGE_COLUMN,)
    columns = [{"name": "Name", "type": "string", "format": "name", "description": "Name", "priority": 0}]
    columns += [
        {
            "name": c["name"],
            "type": c.get("type", "string"),
            "format": c.get("format", ""),
            "description": c.get("description", ""),
            "priority": c.get("priority", 0),
        }
        for c in printer_columns
    ]
    rows = [
        {
            "cells": [obj["metadata"]["name"], *(_cell(obj, c, now) for c in printer_columns)],
            "object": {
                "kind": "PartialObjectMetadata",
                "apiVersion": "meta.k8s.io/v1",
                "metadata": obj["metadata"],
            },
        }
        for obj in items
    ]
    return {
        "kind": "Table",
        "apiVersion": "meta.k8s.io/v1",
        "metadata": {"resourceVersion": rv},
        "columnDefinitions": columns,
        "rows": rows,
    }
