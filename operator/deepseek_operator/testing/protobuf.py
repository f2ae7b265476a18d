"""Decode the Kubernetes protobuf bodies that client-go's typed clients send (``kubectl create
configmap|secret|namespace|serviceaccount``, Helm's release Secrets and their DeleteOptions).

Only request bodies of these few kinds are decoded (field numbers from ``k8s.io/api``
``generated.proto``); the server always answers JSON, which every client also accepts.
"""

from __future__ import annotations

import base64
from datetime import UTC, datetime
from typing import Any

__all__ = ["ProtobufError", "decode"]

MAGIC = b"k8s\x00"

# message -> field number -> (JSON name, type). Types: string, bytes, bool, int, time, msg:<M>,
# map:string, map:bytes, list:string, list:msg:<M>.
_MESSAGES: dict[str, dict[int, tuple[str, str]]] = {
    "Unknown": {
        1: ("typeMeta", "msg:TypeMeta"),
        2: ("raw", "raw"),
        3: ("contentEncoding", "string"),
        4: ("contentType", "string"),
    },
    "TypeMeta": {1: ("apiVersion", "string"), 2: ("kind", "string")},
    "ObjectMeta": {
        1: ("name", "string"),
        2: ("generateName", "string"),
        3: ("namespace", "string"),
        5: ("uid", "string"),
        6: ("resourceVersion", "string"),
        7: ("generation", "int"),
        8: ("creationTimestamp", "time"),
        9: ("deletionTimestamp", "time"),
        11: ("labels", "map:string"),
        12: ("annotations", "map:string"),
        13: ("ownerReferences", "list:msg:OwnerReference"),
        14: ("finalizers", "list:string"),
    },
    "OwnerReference": {
        1: ("kind", "string"),
        3: ("name", "string"),
        4: ("uid", "string"),
        5: ("apiVersion", "string"),
        6: ("controller", "bool"),
        7: ("blockOwnerDeletion", "bool"),
    },
    "Time": {1: ("seconds", "int"), 2: ("nanos", "int")},
    "ConfigMap": {
        1: ("metadata", "msg:ObjectMeta"),
        2: ("data", "map:string"),
        3: ("binaryData", "map:bytes"),
        4: ("immutable", "bool"),
    },
    "Secret": {
        1: ("metadata", "msg:ObjectMeta"),
        2: ("data", "map:bytes"),
        3: ("type", "string"),
        4: ("stringData", "map:string"),
        5: ("immutable", "bool"),
    },
    "Namespace": {1: ("metadata", "msg:ObjectMeta"), 2: ("spec", "msg:NamespaceSpec")},
    "NamespaceSpec": {1: ("finalizers", "list:string")},
    "ServiceAccount": {1: ("metadata", "msg:ObjectMeta"), 4: ("automountServiceAccountToken", "bool")},
    "DeleteOptions": {
        1: ("gracePeriodSeconds", "int"),
        2: ("preconditions", "msg:Preconditions"),
        4: ("propagationPolicy", "string"),
        5: ("dryRun", "list:string"),
    },
    "Preconditions": {1: ("uid", "string"), 2: ("resourceVersion", "string")},
}
_KINDS = {"ConfigMap", "Secret", "Namespace", "ServiceAccount", "DeleteOptions"}


class ProtobufError(ValueError):
    """A body this decoder does not understand (the server answers 415)."""


def _varint(data: bytes, pos: int) -> tuple[int, int]:
    result = shift = 0
    while True:
        if pos >= len(data):
            raise ProtobufError("truncated varint")
        byte = data[pos]
        pos += 1
        result |= (byte & 0x7F) << shift
        if not byte & 0x80:
            return result, pos
        shift += 7


def _fields(data: bytes) -> list[tuple[int, int | bytes]]:
    out: list[tuple[int, int | bytes]] = []
    pos = 0
    while pos < len(data):
        tag, pos = _varint(data, pos)
        number, wire = tag >> 3, tag & 7
        if wire == 0:
            value, pos = _varint(data, pos)
            out.append((number, value))
        elif wire == 2:
            length, pos = _varint(data, pos)
            out.append((number, data[pos : pos + length]))
            pos += length
        elif wire in (1, 5):
            size = 8 if wire == 1 else 4
            out.append((number, int.from_bytes(data[pos : pos + size], "little")))
            pos += size
        else:
            raise ProtobufError(f"unsupported wire type {wire}")
    return out


def _message(data: bytes, name: str) -> dict[str, Any]:
    spec = _MESSAGES[name]
    out: dict[str, Any] = {}
    for number, value in _fields(data):
        if number not in spec:
            continue
        key, kind = spec[number]
        if kind.startswith("map:"):
            entry = dict(_fields(value if isinstance(value, bytes) else b""))
            raw_key, raw_value = entry.get(1, b""), entry.get(2, b"")
            if not (isinstance(raw_key, bytes) and isinstance(raw_value, bytes)):
                raise ProtobufError(f"malformed map entry in {name}.{key}")
            decoded = raw_value.decode() if kind == "map:string" else base64.b64encode(raw_value).decode()
            out.setdefault(key, {})[raw_key.decode()] = decoded
        elif kind.startswith("list:"):
            out.setdefault(key, []).append(_scalar(value, kind[5:]))
        else:
            out[key] = _scalar(value, kind)
    return out


def _scalar(value: int | bytes, kind: str) -> Any:
    if kind == "int":
        return value
    if kind == "bool":
        return bool(value)
    if not isinstance(value, bytes):
        raise ProtobufError(f"expected bytes for {kind}")
    if kind == "string":
        return value.decode()
    if kind == "raw":
        return value
    if kind == "time":
        seconds = _message(value, "Time").get("seconds", 0)
        return datetime.fromtimestamp(seconds, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    return _message(value, kind.removeprefix("msg:"))


def decode(body: bytes) -> dict[str, Any]:
    """A protobuf-encoded object of a supported kind, as its JSON form."""
    if not body.startswith(MAGIC):
        raise ProtobufError("missing the k8s protobuf envelope")
    unknown = _message(body[len(MAGIC) :], "Unknown")
    type_meta = unknown.get("typeMeta", {})
    kind = type_meta.get("kind", "")
    if kind not in _KINDS:
        raise ProtobufError(f"protobuf bodies of kind {kind!r} are not supported; send JSON")
    obj = _message(unknown.get("raw", b""), kind)
    return {"apiVersion": type_meta.get("apiVersion", "v1"), "kind": kind, **obj}
