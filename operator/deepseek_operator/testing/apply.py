"""Server-side apply and ``metadata.managedFields`` (the parts of structured-merge-diff tests meet).

Every write records which manager owns which fields (``fieldsV1`` sets). An *Update* (create,
PUT, non-apply PATCH) silently takes the fields it changed. An *Apply* owns exactly the fields
of its configuration: it merges them into the live object, removes fields it owned before and
no longer applies (unless another manager owns them too), and conflicts (409) when it would
change a field another manager owns, unless ``force=true`` takes it over.

Lists follow the schema: ``x-kubernetes-list-type: map`` merges by keys, ``set`` by value,
everything else is atomic; for built-in types the strategic-merge keys play the map role.
"""

from __future__ import annotations

import copy
import json
from collections.abc import Iterable, Mapping
from typing import Any

from deepseek_operator.testing.apierrors import ApiError
from deepseek_operator.testing.resources import ResourceType

__all__ = ["FieldManagerConflict", "Shape", "apply", "record_update"]

Path = tuple[str, ...]
_MISSING: Any = object()
# Metadata the server owns; never part of a field set.
_SERVER_FIELDS = frozenset(
    {
        "name",
        "namespace",
        "generateName",
        "uid",
        "resourceVersion",
        "generation",
        "creationTimestamp",
        "deletionTimestamp",
        "deletionGracePeriodSeconds",
        "managedFields",
        "selfLink",
    }
)


class Shape:
    """How to walk one node: list type and keys, and whether a map is atomic."""

    def __init__(
        self,
        schema: Mapping[str, Any] | None,
        merge_keys: Mapping[str, str],
        path: str,
        atomic_maps: frozenset[str] = frozenset(),
    ) -> None:
        self.schema = schema
        self.merge_keys = merge_keys
        self.path = path
        self.atomic_maps = atomic_maps

    @classmethod
    def of(cls, rt: ResourceType) -> Shape:
        return cls(rt.schema, rt.merge_keys, "", rt.atomic_maps)

    def child(self, name: str) -> Shape:
        sub: Mapping[str, Any] | None = None
        if self.schema is not None:
            props = self.schema.get("properties") or {}
            additional = self.schema.get("additionalProperties")
            sub = props.get(name, additional if isinstance(additional, Mapping) else None)
        return Shape(sub, self.merge_keys, f"{self.path}.{name}" if self.path else name, self.atomic_maps)

    def item(self) -> Shape:
        items = self.schema.get("items") if self.schema is not None else None
        return Shape(
            items if isinstance(items, Mapping) else None, self.merge_keys, f"{self.path}[]", self.atomic_maps
        )

    def list_type(self) -> tuple[str, list[str]]:
        if self.schema is not None and self.schema.get("x-kubernetes-list-type"):
            return str(self.schema["x-kubernetes-list-type"]), list(
                self.schema.get("x-kubernetes-list-map-keys") or []
            )
        if self.path == "metadata.finalizers":
            return "set", []
        if self.path in self.merge_keys:
            return "map", [self.merge_keys[self.path]]
        return "atomic", []

    def atomic_map(self) -> bool:
        if self.path in self.atomic_maps:
            return True
        return self.schema is not None and self.schema.get("x-kubernetes-map-type") == "atomic"


def _item_key(item: Mapping[str, Any], keys: list[str]) -> str:
    return "k:" + json.dumps({k: item[k] for k in keys if k in item}, sort_keys=True, separators=(",", ":"))


def field_set(obj: Mapping[str, Any], shape: Shape) -> set[Path]:
    """The owned-field paths of an object (``f:``/``k:``/``v:`` elements, ``.`` for list-map items)."""
    out: set[Path] = set()
    for name, value in obj.items():
        if name in ("apiVersion", "kind"):
            continue
        if name == "metadata" and isinstance(value, Mapping):
            meta = {k: v for k, v in value.items() if k not in _SERVER_FIELDS}
            if meta:
                _walk(meta, shape.child("metadata"), ("f:metadata",), out)
        else:
            _walk(value, shape.child(name), (f"f:{name}",), out)
    return out


def _walk(value: Any, shape: Shape, path: Path, out: set[Path]) -> None:
    if isinstance(value, Mapping) and value and not shape.atomic_map():
        for name, sub in value.items():
            _walk(sub, shape.child(name), (*path, f"f:{name}"), out)
        return
    if isinstance(value, list) and value:
        kind, keys = shape.list_type()
        if kind == "map":
            for item in value:
                if isinstance(item, Mapping):
                    item_path = (*path, _item_key(item, keys))
                    out.add((*item_path, "."))
                    for name, sub in item.items():
                        _walk(sub, shape.item().child(name), (*item_path, f"f:{name}"), out)
            return
        if kind == "set":
            out.update((*path, "v:" + json.dumps(item, separators=(",", ":"))) for item in value)
            return
    out.add(path)


def _lookup(obj: Any, path: Path) -> Any:
    node = obj
    for element in path:
        if element == ".":
            return True
        kind, _, rest = element.partition(":")
        if kind == "f" and isinstance(node, Mapping):
            node = node.get(rest, _MISSING)
        elif kind == "k" and isinstance(node, list):
            wanted = json.loads(rest)
            node = next(
                (i for i in node if isinstance(i, Mapping) and all(i.get(k) == v for k, v in wanted.items())),
                _MISSING,
            )
        elif kind == "v" and isinstance(node, list):
            node = True if json.loads(rest) in node else _MISSING
        else:
            return _MISSING
        if node is _MISSING:
            return _MISSING
    return node


def _remove(obj: Any, path: Path) -> None:
    if path and path[-1] == ".":
        path = path[:-1]
    parent = _lookup(obj, path[:-1]) if len(path) > 1 else obj
    kind, _, rest = path[-1].partition(":")
    if kind == "f" and isinstance(parent, dict):
        parent.pop(rest, None)
    elif kind == "k" and isinstance(parent, list):
        wanted = json.loads(rest)
        parent[:] = [
            i
            for i in parent
            if not (isinstance(i, Mapping) and all(i.get(k) == v for k, v in wanted.items()))
        ]
    elif kind == "v" and isinstance(parent, list):
        value = json.loads(rest)
        parent[:] = [i for i in parent if i != value]


def _merge(live: Any, applied: Any, shape: Shape) -> Any:
    if isinstance(applied, Mapping) and isinstance(live, Mapping) and not shape.atomic_map():
        out = dict(copy.deepcopy(live))
        for name, value in applied.items():
            out[name] = _merge(live.get(name, _MISSING), value, shape.child(name))
        return out
    if isinstance(applied, list) and isinstance(live, list):
        kind, keys = shape.list_type()
        if kind == "set":
            return copy.deepcopy(live) + [v for v in applied if v not in live]
        if kind == "map":
            out_list = copy.deepcopy(live)
            for item in applied:
                if not isinstance(item, Mapping):
                    continue
                marker = _item_key(item, keys)
                at = next(
                    (
                        i
                        for i, v in enumerate(out_list)
                        if isinstance(v, Mapping) and _item_key(v, keys) == marker
                    ),
                    None,
                )
                if at is None:
                    out_list.append(copy.deepcopy(item))
                else:
                    out_list[at] = _merge(out_list[at], item, shape.item())
            return out_list
    return copy.deepcopy(applied)


# --- fieldsV1 encoding -------------------------------------------------------------------------


def to_fields_v1(paths: Iterable[Path]) -> dict[str, Any]:
    root: dict[str, Any] = {}
    for path in sorted(paths):
        node = root
        for element in path:
            node = node.setdefault(element, {})
    return root


def from_fields_v1(tree: Mapping[str, Any], prefix: Path = ()) -> set[Path]:
    out: set[Path] = set()
    for element, sub in tree.items():
        path = (*prefix, element)
        if sub:
            out |= from_fields_v1(sub, path)
        else:
            out.add(path)
    return out


def _show(path: Path) -> str:
    text = ""
    for element in path:
        kind, _, rest = element.partition(":")
        if kind == "f":
            text += f".{rest}"
        elif kind == "k":
            text += "[" + ",".join(f"{k}={json.dumps(v)}" for k, v in json.loads(rest).items()) + "]"
        elif kind == "v":
            text += f"[={rest}]"
    return text


# --- managers ----------------------------------------------------------------------------------


def _entries(obj: Mapping[str, Any]) -> list[dict[str, Any]]:
    return [dict(e) for e in obj.get("metadata", {}).get("managedFields") or []]


def _entry(
    manager: str, operation: str, api_version: str, paths: set[Path], now: str, subresource: str
) -> dict[str, Any]:
    entry: dict[str, Any] = {
        "manager": manager,
        "operation": operation,
        "apiVersion": api_version,
        "time": now,
        "fieldsType": "FieldsV1",
        "fieldsV1": to_fields_v1(paths),
    }
    if subresource:
        entry["subresource"] = subresource
    return entry


def _same(entry: Mapping[str, Any], manager: str, operation: str, subresource: str) -> bool:
    return (
        entry.get("manager") == manager
        and entry.get("operation") == operation
        and entry.get("subresource", "") == subresource
    )


def record_update(
    rt: ResourceType,
    old: Mapping[str, Any] | None,
    new: dict[str, Any],
    manager: str,
    now: str,
    subresource: str = "",
) -> None:
    """Give ``manager`` the fields this non-apply write changed; others keep the rest."""
    shape = Shape.of(rt)
    new_fields = field_set(new, shape)
    old_fields = field_set(old, shape) if old is not None else set()
    changed = {p for p in new_fields if p not in old_fields or _lookup(old, p) != _lookup(new, p)}
    entries = []
    mine: set[Path] = set(changed)
    for entry in _entries(old or new):
        paths = from_fields_v1(entry.get("fieldsV1") or {}) & new_fields
        if _same(entry, manager, "Update", subresource):
            mine |= paths
        elif paths - changed:
            entries.append({**entry, "fieldsV1": to_fields_v1(paths - changed)})
    if mine:
        entries.append(_entry(manager, "Update", rt.api_version, mine, now, subresource))
    new.setdefault("metadata", {})["managedFields"] = entries


class FieldManagerConflict(ApiError):
    """409 listing each field another manager owns with a different value."""

    def __init__(self, conflicts: list[tuple[str, Path]], api_version: str) -> None:
        lines = [(manager, _show(path)) for manager, path in conflicts]
        if len(lines) == 1:
            manager, field = lines[0]
            message = f'Apply failed with 1 conflict: conflict with "{manager}" using {api_version}: {field}'
        else:
            message = f"Apply failed with {len(lines)} conflicts: " + "\n".join(
                f'conflict with "{m}" using {api_version}: {p}' for m, p in lines
            )
        causes = [
            {
                "reason": "FieldManagerConflict",
                "message": f'conflict with "{m}" using {api_version}',
                "field": p,
            }
            for m, p in lines
        ]
        super().__init__(409, "Conflict", message, {"causes": causes})


def apply(
    rt: ResourceType,
    live: Mapping[str, Any] | None,
    config: Mapping[str, Any],
    manager: str,
    *,
    force: bool,
    now: str,
    subresource: str = "",
) -> dict[str, Any]:
    """The object after ``manager`` applies ``config`` to ``live`` (None: the object is created)."""
    shape = Shape.of(rt)
    applied = field_set(config, shape)
    base: dict[str, Any] = copy.deepcopy(dict(live)) if live is not None else {"metadata": {}}
    previously: set[Path] = set()
    others: list[tuple[dict[str, Any], set[Path]]] = []
    for entry in _entries(base):
        paths = from_fields_v1(entry.get("fieldsV1") or {})
        if _same(entry, manager, "Apply", subresource):
            previously = paths
        else:
            others.append((entry, paths))
    conflicts = [
        (str(entry["manager"]), path)
        for entry, paths in others
        for path in sorted(applied & paths)
        if path[-1] != "." and _lookup(base, path) != _lookup(config, path)
    ]
    if conflicts and not force:
        raise FieldManagerConflict(conflicts, rt.api_version)
    merged: dict[str, Any] = _merge(
        base, {k: v for k, v in config.items() if k not in ("apiVersion", "kind")}, shape
    )
    owned_by_others = set().union(*(paths for _, paths in others)) if others else set()
    taken = {p for _, p in conflicts}
    for path in sorted(previously - applied - (owned_by_others - taken), key=len, reverse=True):
        _remove(merged, path)
    entries = []
    placed = False
    for entry in _entries(base):
        paths = from_fields_v1(entry.get("fieldsV1") or {})
        if _same(entry, manager, "Apply", subresource):
            # An apply that changes nothing keeps its entry as it was (time included): a no-op.
            when = str(entry.get("time", now)) if paths == applied else now
            entries.append(_entry(manager, "Apply", rt.api_version, applied, when, subresource))
            placed = True
        elif paths - taken:
            entries.append({**entry, "fieldsV1": to_fields_v1(paths - taken)})
    if not placed:
        entries.append(_entry(manager, "Apply", rt.api_version, applied, now, subresource))
    merged["metadata"]["managedFields"] = entries
    return merged
