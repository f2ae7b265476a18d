"""The three non-apply PATCH flavours: JSON patch (RFC 6902), merge patch (RFC 7386) and strategic merge.

Strategic merge follows ``k8s.io/apimachinery/pkg/util/strategicpatch`` for what charts and
clients send: lists with a patch merge key merge by key, ``$patch: delete|replace|merge``,
``$deleteFromPrimitiveList/<field>``, ``$retainKeys``; ``$setElementOrder/<field>`` is accepted
and ignored (order of merged lists is the live order, then new items).
"""

from __future__ import annotations

import copy
from collections.abc import Mapping
from typing import Any

__all__ = ["PatchError", "json_patch", "merge_patch", "strategic_merge_patch"]


class PatchError(ValueError):
    """A patch that cannot be applied (422 for a failed ``test``/path, 400 for a malformed one)."""


# --- RFC 6902 ----------------------------------------------------------------------------------


def _pointer(path: str) -> list[str]:
    if path == "":
        return []
    if not path.startswith("/"):
        raise PatchError(f"invalid JSON pointer {path!r}")
    return [p.replace("~1", "/").replace("~0", "~") for p in path[1:].split("/")]


def _parent(doc: Any, parts: list[str]) -> tuple[Any, str]:
    node = doc
    for part in parts[:-1]:
        if isinstance(node, list):
            node = node[_list_index(node, part, allow_end=False)]
        elif isinstance(node, dict) and part in node:
            node = node[part]
        else:
            raise PatchError(f"doc is missing path: /{'/'.join(parts)}")
    return node, parts[-1]


def _list_index(node: list[Any], part: str, *, allow_end: bool) -> int:
    if part == "-" and allow_end:
        return len(node)
    if not part.isdigit():
        raise PatchError(f"invalid array index {part!r}")
    i = int(part)
    if i > len(node) or (i == len(node) and not allow_end):
        raise PatchError(f"array index {i} out of bounds")
    return i


def _get(doc: Any, parts: list[str]) -> Any:
    node = doc
    for part in parts:
        if isinstance(node, list):
            node = node[_list_index(node, part, allow_end=False)]
        elif isinstance(node, dict) and part in node:
            node = node[part]
        else:
            raise PatchError(f"doc is missing path: /{'/'.join(parts)}")
    return node


def _add(doc: Any, parts: list[str], value: Any) -> Any:
    if not parts:
        return value
    parent, last = _parent(doc, parts)
    if isinstance(parent, list):
        parent.insert(_list_index(parent, last, allow_end=True), value)
    elif isinstance(parent, dict):
        parent[last] = value
    else:
        raise PatchError(f"doc is missing path: /{'/'.join(parts)}")
    return doc


def _remove(doc: Any, parts: list[str]) -> Any:
    if not parts:
        raise PatchError("cannot remove the whole document")
    parent, last = _parent(doc, parts)
    if isinstance(parent, list):
        return parent.pop(_list_index(parent, last, allow_end=False))
    if isinstance(parent, dict) and last in parent:
        return parent.pop(last)
    raise PatchError(f"unable to remove nonexistent key: {last}: missing value")


def json_patch(doc: Any, operations: Any) -> Any:
    """Apply RFC 6902 operations to a copy of ``doc``."""
    if not isinstance(operations, list):
        raise PatchError("json patch must be a list of operations")
    doc = copy.deepcopy(doc)
    for op in operations:
        if not isinstance(op, dict) or "op" not in op or "path" not in op:
            raise PatchError(f"invalid operation {op!r}")
        parts = _pointer(op["path"])
        match op["op"]:
            case "add":
                doc = _add(doc, parts, copy.deepcopy(op.get("value")))
            case "remove":
                _remove(doc, parts)
            case "replace":
                _get(doc, parts)
                if parts:
                    _remove(doc, parts)
                doc = _add(doc, parts, copy.deepcopy(op.get("value")))
            case "move":
                value = _remove(doc, _pointer(op["from"]))
                doc = _add(doc, parts, value)
            case "copy":
                doc = _add(doc, parts, copy.deepcopy(_get(doc, _pointer(op["from"]))))
            case "test":
                if _get(doc, parts) != op.get("value"):
                    raise PatchError(f"testing value {op['path']} failed")
            case other:
                raise PatchError(f"unexpected kind of operation {other!r}")
    return doc


# --- RFC 7386 ----------------------------------------------------------------------------------


def merge_patch(doc: Any, patch: Any) -> Any:
    """RFC 7386: objects merge recursively, ``null`` deletes, anything else replaces."""
    if not isinstance(patch, dict):
        return copy.deepcopy(patch)
    result = copy.deepcopy(doc) if isinstance(doc, dict) else {}
    for key, value in patch.items():
        if value is None:
            result.pop(key, None)
        else:
            result[key] = merge_patch(result.get(key), value)
    return result


# --- strategic merge ---------------------------------------------------------------------------


def strategic_merge_patch(doc: Any, patch: Any, merge_keys: Mapping[str, str], path: str = "") -> Any:
    """Merge ``patch`` into a copy of ``doc``; ``merge_keys`` maps paths (``spec.ports``) to list keys."""
    if not isinstance(patch, dict):
        return copy.deepcopy(patch)
    if patch.get("$patch") == "replace":
        return {k: copy.deepcopy(v) for k, v in patch.items() if k != "$patch"}
    if patch.get("$patch") == "delete":
        return None
    result = copy.deepcopy(doc) if isinstance(doc, dict) else {}
    retain = patch.get("$retainKeys")
    for key, value in patch.items():
        if key in ("$patch", "$retainKeys") or key.startswith("$setElementOrder/"):
            continue
        if key.startswith("$deleteFromPrimitiveList/"):
            name = key.split("/", 1)[1]
            result[name] = [v for v in result.get(name) or [] if v not in value]
            continue
        sub = f"{path}.{key}" if path else key
        if value is None:
            result.pop(key, None)
        elif isinstance(value, list):
            result[key] = _merge_list(result.get(key), value, merge_keys, sub)
        else:
            merged = strategic_merge_patch(result.get(key), value, merge_keys, sub)
            if merged is None:
                result.pop(key, None)
            else:
                result[key] = merged
    if isinstance(retain, list):
        result = {k: v for k, v in result.items() if k in retain}
    return result


def _merge_list(live: Any, patch: list[Any], merge_keys: Mapping[str, str], path: str) -> list[Any]:
    merge_key = merge_keys.get(path)
    if path in _PRIMITIVE_MERGE_LISTS:
        current = list(live or [])
        return current + [v for v in patch if v not in current]
    if merge_key is None or not isinstance(live, list):
        return [_strip(v) for v in patch if not (isinstance(v, dict) and v.get("$patch") == "delete")]
    result = copy.deepcopy(live)
    if any(isinstance(v, dict) and v.get("$patch") == "replace" for v in patch):
        return [_strip(v) for v in patch if not (isinstance(v, dict) and "$patch" in v)]
    for item in patch:
        if not isinstance(item, dict):
            continue
        at = next(
            (
                i
                for i, v in enumerate(result)
                if isinstance(v, dict) and v.get(merge_key) == item.get(merge_key)
            ),
            None,
        )
        if item.get("$patch") == "delete":
            if at is not None:
                result.pop(at)
        elif at is None:
            result.append(_strip(item))
        else:
            result[at] = strategic_merge_patch(result[at], item, merge_keys, f"{path}[]")
    return result


# Primitive lists whose patch strategy is "merge" (union) rather than replace.
_PRIMITIVE_MERGE_LISTS = frozenset({"metadata.finalizers"})


def _strip(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _strip(v) for k, v in value.items() if not k.startswith("$")}
    if isinstance(value, list):
        return [_strip(v) for v in value]
    return value
