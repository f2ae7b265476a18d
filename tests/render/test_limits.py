"""Rendered objects are checked against the API server's size limits before they are applied."""

from __future__ import annotations

import base64
from typing import Any

import pytest

from deepseek_operator.modelcfg import ArchitectureContext
from deepseek_operator.planner.plan import plan_deployment
from deepseek_operator.render import render_deployment
from deepseek_operator.render.limits import (
    MAX_RENDERED_OBJECT_BYTES,
    ObjectsTooLarge,
    ObjectTooLarge,
    check_object_sizes,
    ensure_object_sizes,
    object_size,
)
from deepseek_operator.validation import validate_deployment
from tests.api.resources import EXAMPLES, example

MiB = 1024 * 1024


def _sized(kind: str, name: str, total: int, **fields: Any) -> dict[str, Any]:
    """An object of `kind` whose JSON is exactly `total` bytes (padded in its spec)."""
    obj: dict[str, Any] = {"kind": kind, "metadata": {"name": name}, "spec": {"pad": ""}, **fields}
    obj["spec"]["pad"] = "p" * (total - object_size(obj))
    assert object_size(obj) == total
    return obj


def _config_map(name: str, **fields: Any) -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": name}, **fields}


@pytest.mark.parametrize(
    ("obj", "expected"),
    [
        pytest.param(_sized("RayService", "r1-v1", MAX_RENDERED_OBJECT_BYTES - 300_000), [], id="fits"),
        pytest.param(
            {"kind": "RayService", "metadata": {"name": "r1-v1"}, "spec": {"serveConfigV2": "x" * 200_000}},
            [],
            id="large-but-fits",
        ),
        pytest.param(
            {"kind": "RayService", "metadata": {"name": "r1-v2"}, "spec": {"serveConfigV2": "x" * MiB}},
            [("RayService", "r1-v2", "object", 1_048_653, MAX_RENDERED_OBJECT_BYTES)],
            id="object-over",
        ),
        pytest.param(
            _config_map("map", data={"a": "x" * (512 * 1024), "b": "é" * (256 * 1024 + 1)}),
            [
                ("ConfigMap", "map", "object", 1_048_665, MAX_RENDERED_OBJECT_BYTES),
                ("ConfigMap", "map", "data", MiB + 2, MiB),
            ],
            id="configmap-data-in-utf8-bytes",
        ),
        pytest.param(
            _config_map("bin", binaryData={"blob": base64.b64encode(b"\0" * (MiB + 1)).decode()}),
            [
                ("ConfigMap", "bin", "object", 1_398_193, MAX_RENDERED_OBJECT_BYTES),
                ("ConfigMap", "bin", "data", MiB + 1, MiB),
            ],
            id="configmap-binary-data-decoded",
        ),
        pytest.param(
            {
                "kind": "Secret",
                "metadata": {"name": "key"},
                "data": {"k": base64.b64encode(b"k" * (700 * 1024)).decode()},
            },
            [],
            id="secret-counts-decoded-bytes",
        ),
        pytest.param(
            {"kind": "Service", "metadata": {"name": "svc", "annotations": {"note": "n" * (256 * 1024)}}},
            [("Service", "svc", "metadata.annotations", 262_148, 262_144)],
            id="annotations",
        ),
    ],
)
def test_check_object_sizes(obj: dict[str, Any], expected: list[tuple[str, str, str, int, int]]) -> None:
    assert check_object_sizes([obj]) == [ObjectTooLarge(*finding) for finding in expected]


def test_the_object_limit_is_inclusive() -> None:
    assert check_object_sizes([_sized("RayService", "edge", MAX_RENDERED_OBJECT_BYTES)]) == []
    (finding,) = check_object_sizes([_sized("RayService", "edge", MAX_RENDERED_OBJECT_BYTES + 1)])
    assert (finding.size, finding.limit) == (MAX_RENDERED_OBJECT_BYTES + 1, MAX_RENDERED_OBJECT_BYTES)


def test_the_error_names_each_object_its_size_and_the_limit() -> None:
    objects = [
        {"kind": "RayService", "metadata": {"name": "r1-v2"}, "spec": {"serveConfigV2": "x" * MiB}},
        {"kind": "Service", "metadata": {"name": "ok"}},
    ]
    with pytest.raises(ObjectsTooLarge) as raised:
        ensure_object_sizes(objects)
    assert str(raised.value) == (
        "RayService r1-v2 is 1,048,653 bytes, more than the limit of 1,048,576 bytes (etcd stores at most "
        "1,572,864 bytes per object; the rest is kept for status and managedFields)"
    )
    assert [finding.name for finding in raised.value.findings] == ["r1-v2"]
    ensure_object_sizes(objects[1:])


@pytest.mark.parametrize("name", ["tiny-local", "deepseek-r1-h100", "deepseek-r1-h200"])
def test_what_the_operator_renders_for_the_examples_fits(name: str) -> None:
    validated = validate_deployment(example(name), ArchitectureContext(base_dir=EXAMPLES))
    rendered = render_deployment(validated, plan_deployment(validated))
    assert check_object_sizes(rendered.objects) == []
