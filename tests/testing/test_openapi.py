"""Custom resource validation with Kubernetes semantics (CRD docs: "Validation", "Defaulting",
"Pruning versus preserving unknown fields", "Nullable", "IntOrString", "x-kubernetes-list-type")."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from deepseek_operator.testing.openapi import validate_custom_resource

KUBERAY = Path(__file__).resolve().parents[3] / "shared" / "kuberay-crds" / "v1.7.0"

SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {
        "spec": {
            "type": "object",
            "required": ["model"],
            "properties": {
                "model": {"type": "string", "minLength": 2, "maxLength": 8, "pattern": "^[a-z0-9-]+$"},
                "replicas": {"type": "integer", "minimum": 1, "maximum": 4, "default": 1},
                "ratio": {"type": "number", "exclusiveMaximum": True, "maximum": 1},
                "mode": {"type": "string", "enum": ["a", "b"]},
                "port": {"x-kubernetes-int-or-string": True},
                "note": {"type": "string", "nullable": True},
                "tags": {
                    "type": "array",
                    "maxItems": 2,
                    "x-kubernetes-list-type": "set",
                    "items": {"type": "string"},
                },
                "groups": {
                    "type": "array",
                    "x-kubernetes-list-type": "map",
                    "x-kubernetes-list-map-keys": ["name"],
                    "items": {
                        "type": "object",
                        "required": ["name"],
                        "properties": {"name": {"type": "string"}, "size": {"type": "integer", "default": 2}},
                    },
                },
                "extra": {"type": "object", "x-kubernetes-preserve-unknown-fields": True},
                "labels": {"type": "object", "additionalProperties": {"type": "string"}},
                "defaults": {
                    "type": "object",
                    "default": {},
                    "properties": {"x": {"type": "string", "default": "d"}},
                },
            },
        },
        "status": {"type": "object", "properties": {"ready": {"type": "boolean"}}},
    },
}


def cr(**spec: Any) -> dict[str, Any]:
    return {"apiVersion": "t.dev/v1", "kind": "T", "metadata": {"name": "n"}, "spec": {"model": "m1", **spec}}


def messages(spec: dict[str, Any]) -> list[str]:
    return [str(e) for e in validate_custom_resource(SCHEMA, cr(**spec)).errors]


def test_valid_object_is_defaulted() -> None:
    """Defaults apply to absent fields, and nested defaults inside a defaulted object too."""
    result = validate_custom_resource(SCHEMA, cr(groups=[{"name": "g"}]))
    assert result.errors == []
    assert result.obj["spec"]["replicas"] == 1
    assert result.obj["spec"]["defaults"] == {"x": "d"}
    assert result.obj["spec"]["groups"] == [{"name": "g", "size": 2}]


def test_unknown_fields_are_pruned_and_reported() -> None:
    """Pruning: fields not in the schema are dropped unless x-kubernetes-preserve-unknown-fields."""
    result = validate_custom_resource(SCHEMA, cr(bogus=1, extra={"free": {"form": 1}}, labels={"a": "b"}))
    assert result.unknown_fields == ["spec.bogus"]
    assert "bogus" not in result.obj["spec"]
    assert result.obj["spec"]["extra"] == {"free": {"form": 1}}
    assert result.obj["spec"]["labels"] == {"a": "b"}


def test_unknown_metadata_fields_are_dropped() -> None:
    obj = cr()
    obj["metadata"]["colour"] = "red"
    result = validate_custom_resource(SCHEMA, obj)
    assert result.unknown_fields == ["metadata.colour"]
    assert result.obj["metadata"] == {"name": "n"}


def test_null_for_non_nullable_field_is_pruned_then_defaulted() -> None:
    """Nullable docs: nulls of non-nullable fields are pruned before defaulting."""
    result = validate_custom_resource(SCHEMA, cr(replicas=None, mode=None, note=None))
    assert result.errors == []
    assert result.obj["spec"]["replicas"] == 1
    assert "mode" not in result.obj["spec"]
    assert result.obj["spec"]["note"] is None


@pytest.mark.parametrize(
    ("spec", "expected"),
    [
        pytest.param({"model": None}, "spec.model: Required value", id="required"),
        pytest.param(
            {"model": "x"},
            'spec.model: Invalid value: "x": spec.model in body should be at least 2 chars long',
            id="min-length",
        ),
        pytest.param(
            {"model": "much-too-long"}, "spec.model: Too long: may not be more than 8 bytes", id="max-length"
        ),
        pytest.param(
            {"model": "Ab"},
            "spec.model: Invalid value: \"Ab\": spec.model in body should match '^[a-z0-9-]+$'",
            id="pattern",
        ),
        pytest.param(
            {"replicas": 9},
            "spec.replicas: Invalid value: 9: spec.replicas in body should be less than or equal to 4",
            id="maximum",
        ),
        pytest.param(
            {"replicas": 0},
            "spec.replicas: Invalid value: 0: spec.replicas in body should be greater than or equal to 1",
            id="minimum",
        ),
        pytest.param(
            {"ratio": 1},
            "spec.ratio: Invalid value: 1: spec.ratio in body should be less than 1",
            id="exclusive-maximum",
        ),
        pytest.param(
            {"replicas": "2"},
            'spec.replicas: Invalid value: "2": spec.replicas in body must be of type integer: "string"',
            id="type",
        ),
        pytest.param(
            {"mode": "c"}, 'spec.mode: Unsupported value: "c": supported values: "a", "b"', id="enum"
        ),
        pytest.param(
            {"port": 1.5},
            'spec.port: Invalid value: 1.5: spec.port in body must be of type integer,string: "number"',
            id="int-or-string",
        ),
        pytest.param(
            {"tags": ["a", "b", "c"]}, "spec.tags: Too many: 3: must have at most 2 items", id="max-items"
        ),
        pytest.param({"tags": ["a", "a"]}, 'spec.tags[1]: Duplicate value: "a"', id="set-duplicate"),
        pytest.param(
            {"groups": [{"name": "g"}, {"name": "g"}]},
            'spec.groups[1]: Duplicate value: {"name":"g"}',
            id="map-duplicate",
        ),
        pytest.param({"groups": [{"size": 1}]}, "spec.groups[0].name: Required value", id="item-required"),
        pytest.param(
            {"labels": {"a": 1}},
            'spec.labels.a: Invalid value: 1: spec.labels.a in body must be of type string: "integer"',
            id="additional-properties",
        ),
    ],
)
def test_invalid(spec: dict[str, Any], expected: str) -> None:
    got = messages(spec)
    assert expected in got, got


def test_int_or_string_accepts_both() -> None:
    assert messages({"port": 80}) == []
    assert messages({"port": "http"}) == []


def test_causes_carry_reason_and_field() -> None:
    result = validate_custom_resource(SCHEMA, cr(mode="c"))
    assert result.causes == [
        {
            "reason": "FieldValueNotSupported",
            "message": 'Unsupported value: "c": supported values: "a", "b"',
            "field": "spec.mode",
        }
    ]


CEL_SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {
        "spec": {
            "type": "object",
            "x-kubernetes-validations": [
                {"rule": "self.min <= self.max", "message": "min must not exceed max"}
            ],
            "properties": {"min": {"type": "integer"}, "max": {"type": "integer"}},
        }
    },
}


def test_cel_rules_run_after_schema_validation() -> None:
    result = validate_custom_resource(CEL_SCHEMA, {"spec": {"min": 3, "max": 1}})
    assert [str(e) for e in result.errors] == ['spec: Invalid value: "object": min must not exceed max']


def test_type_errors_block_cel_rules() -> None:
    """The server skips CEL when the object has type errors and says so."""
    result = validate_custom_resource(CEL_SCHEMA, {"spec": {"min": "3", "max": 1}})
    assert "some validation rules were not checked" in str(result.errors[-1])


def test_kuberay_rayservice_sample_is_valid() -> None:
    crd = yaml.safe_load((KUBERAY / "ray.io_rayservices.yaml").read_text())
    schema = next(v for v in crd["spec"]["versions"] if v["name"] == "v1")["schema"]["openAPIV3Schema"]
    obj = {
        "apiVersion": "ray.io/v1",
        "kind": "RayService",
        "metadata": {"name": "rs"},
        "spec": {
            "serveConfigV2": "applications: []\n",
            "rayClusterConfig": {
                "headGroupSpec": {
                    "rayStartParams": {},
                    "template": {
                        "spec": {"containers": [{"name": "ray-head", "image": "rayproject/ray:2.60.0"}]}
                    },
                }
            },
        },
    }
    result = validate_custom_resource(schema, obj)
    assert result.errors == []
    assert result.unknown_fields == []
