"""Rendered objects the API server would refuse for their size, found before anything is applied (pure).

The limits a real cluster enforces on every write (checked against kube-apiserver and etcd):
- etcd refuses a write over its `--max-request-bytes`, 1.5 MiB by default, and the API server
  answers 500 "etcdserver: request is too large" (custom resources are stored as JSON, built-in
  objects as protobuf, which is smaller);
- request bodies over 3 MiB get 413 (never reached below the etcd limit);
- a ConfigMap's `data` plus `binaryData` (decoded) and a Secret's `data` may total 1 MiB
  (`core.MaxSecretSize`: "Too long: may not be more than 1048576 bytes");
- `metadata.annotations` keys and values may total 256 KiB (`TotalAnnotationSizeLimitB`).

A rendered object gets less than etcd's limit: after the operator applies it, others write into the
same object (KubeRay the RayService's status, with Ray Serve's messages; server-side apply its
`managedFields`), so `MAX_RENDERED_OBJECT_BYTES` keeps 512 KiB for them.

`check_object_sizes` is the decision (a list of findings, empty when all fit);
`ensure_object_sizes` raises `ObjectsTooLarge` for a caller that wants an error.
"""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Final

from deepseek_operator.errors import DeepSeekOperatorError

__all__ = [
    "MAX_ANNOTATIONS_BYTES",
    "MAX_DATA_BYTES",
    "MAX_RENDERED_OBJECT_BYTES",
    "ObjectTooLarge",
    "ObjectsTooLarge",
    "check_object_sizes",
    "ensure_object_sizes",
    "object_size",
]

ETCD_MAX_REQUEST_BYTES: Final = 1536 * 1024
"""etcd's default `--max-request-bytes` (1.5 MiB)."""
MAX_RENDERED_OBJECT_BYTES: Final = 1024 * 1024
"""A rendered object as JSON: etcd's 1.5 MiB less 512 KiB for status and `managedFields` others add."""
MAX_DATA_BYTES: Final = 1024 * 1024
"""A ConfigMap's `data` + `binaryData`, or a Secret's `data` (`core.MaxSecretSize`)."""
MAX_ANNOTATIONS_BYTES: Final = 256 * 1024
"""`metadata.annotations`, keys and values (`TotalAnnotationSizeLimitB`)."""


@dataclass(frozen=True)
class ObjectTooLarge:
    """One rendered object (or part of it) over a limit of the API server."""

    kind: str
    name: str
    part: str
    """What was measured: `object` (its JSON), `data` or `metadata.annotations`."""
    size: int
    """Bytes."""
    limit: int
    """Bytes."""

    def __str__(self) -> str:
        what = "" if self.part == "object" else f" {self.part}"
        return (
            f"{self.kind} {self.name}{what} is {self.size:,} bytes, more than the limit of "
            f"{self.limit:,} bytes ({_why(self.part)})"
        )


class ObjectsTooLarge(DeepSeekOperatorError):
    """The rendered objects include some the API server would refuse for their size."""

    def __init__(self, findings: Iterable[ObjectTooLarge]) -> None:
        self.findings = tuple(findings)
        super().__init__("; ".join(str(finding) for finding in self.findings))


def object_size(obj: Any) -> int:
    """Bytes of `obj` as compact JSON (UTF-8), as the API server stores a custom resource."""
    return len(json.dumps(obj, separators=(",", ":"), ensure_ascii=False, default=str).encode("utf-8"))


def check_object_sizes(objects: Iterable[Mapping[str, Any]]) -> list[ObjectTooLarge]:
    """Every limit of the module docstring each object breaks, in the objects' order.

    Parameters:
        objects: rendered Kubernetes objects (`kind`, `metadata.name`, …) as they would be applied.

    Returns:
        One `ObjectTooLarge` per broken limit; empty when every object fits.
    """
    findings: list[ObjectTooLarge] = []
    for obj in objects:
        metadata = obj.get("metadata") or {}
        kind, name = str(obj.get("kind", "?")), str(metadata.get("name", "?"))
        findings += [
            ObjectTooLarge(kind, name, part, size, limit)
            for part, size, limit in _measures(obj, kind, metadata)
            if size > limit
        ]
    return findings


def _measures(obj: Mapping[str, Any], kind: str, metadata: Mapping[str, Any]) -> list[tuple[str, int, int]]:
    """(part, bytes, limit) of every limit that applies to `obj`."""
    annotations = metadata.get("annotations") or {}
    measures = [
        ("object", object_size(obj), MAX_RENDERED_OBJECT_BYTES),
        (
            "metadata.annotations",
            sum(_utf8(k) + _utf8(v) for k, v in annotations.items()),
            MAX_ANNOTATIONS_BYTES,
        ),
    ]
    if kind == "ConfigMap":
        data = sum(_utf8(value) for value in (obj.get("data") or {}).values())
        binary = sum(_decoded(value) for value in (obj.get("binaryData") or {}).values())
        measures.append(("data", data + binary, MAX_DATA_BYTES))
    elif kind == "Secret":
        data = sum(_decoded(value) for value in (obj.get("data") or {}).values())
        strings = sum(_utf8(value) for value in (obj.get("stringData") or {}).values())
        measures.append(("data", data + strings, MAX_DATA_BYTES))
    return measures


def ensure_object_sizes(objects: Iterable[Mapping[str, Any]]) -> None:
    """Raise `ObjectsTooLarge` naming every object over a limit; return when all fit."""
    findings = check_object_sizes(objects)
    if findings:
        raise ObjectsTooLarge(findings)


def _utf8(value: Any) -> int:
    return len(str(value).encode("utf-8"))


def _decoded(value: Any) -> int:
    """Bytes of a base64 value once decoded (what validation counts); its length if not base64."""
    try:
        return len(base64.b64decode(str(value), validate=True))
    except (binascii.Error, ValueError):
        return _utf8(value)


def _why(part: str) -> str:
    if part == "object":
        return (
            f"etcd stores at most {ETCD_MAX_REQUEST_BYTES:,} bytes per object; the rest is kept for "
            "status and managedFields"
        )
    if part == "data":
        return "the API server's limit on ConfigMap and Secret data"
    return "the API server's limit on annotations"
